"""What the sync may touch: denied trees however spelled (issue 12 item 9: the rule is
hasync.config.paths', shared with `hasync check`), and the node-local files no run copies
(issue 13 item 1) -- in the scope, the unison command line and at the start of
`hasync watch`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from hasync.config import paths as P
from hasync.config.paths import normalize_path, sync_path_problem
from hasync.model import Sync
from hasync.sync.scope import Scope
from hasync.sync.unison import ignore_path, rel, unison_argv

ROOT = Path(__file__).resolve().parents[2]
SPELLINGS = ["/etc/.", "//etc", "/etc/hasync/..", "/.", "///etc/", "/var/lib/..", "/"]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_denied_trees_are_refused_however_spelled(spelling: str) -> None:
    why = sync_path_problem(spelling) or ""
    assert "refusing to sync all of" in why and repr(spelling) in why
    with pytest.raises(ValueError, match="refusing to sync"):
        Scope((spelling,))
    with pytest.raises(ValueError, match="refusing to sync"):
        rel(spelling)
    with pytest.raises(ValueError, match="refusing to sync"):
        unison_argv(remote_root="ssh://n//", paths=["/etc/exports", spelling], backup_dir="/b")


def test_normalize_and_allowed_paths() -> None:
    assert normalize_path("//etc/hasync/./ssh/../x.conf") == "/etc/hasync/x.conf"
    assert normalize_path("/etc/exports/") == "/etc/exports"
    assert sync_path_problem("/etc/exports") is None and sync_path_problem("/etc/hasync/") is None
    with pytest.raises(ValueError, match="absolute"):
        rel("etc/exports")
    assert rel("//etc//exports") == "etc/exports"
    assert Scope(("//etc/exports", "/etc/exports")).paths == ("/etc/exports",)


def test_node_local_paths_of_the_default_settings() -> None:
    local = P.node_local_paths(Sync())
    assert local == ("/etc/hasync/ssh", "/run/hasync", "/var/lib/hasync")
    assert P.node_local_within("/etc/hasync", local) == ("/etc/hasync/ssh",)
    assert P.node_local_within("/etc/hasync/ssh/known_hosts", local) == ("/etc/hasync/ssh/known_hosts",)
    assert P.node_local_within("/etc/exports", local) == ()
    # a key kept outside a directory of its own: the files alone, never /etc/hasync
    odd = P.node_local_paths(Sync(ssh_key="/etc/hasync/id_ed25519", known_hosts="/etc/hasync/known_hosts"))
    assert "/etc/hasync" not in odd
    assert {"/etc/hasync/id_ed25519", "/etc/hasync/id_ed25519.pub", "/etc/hasync/known_hosts"} <= set(odd)


def test_check_rule_names_the_node_local_files_a_path_contains() -> None:
    """The pure rule `hasync check` calls: a warning line per synced path holding them."""
    s = Sync(paths=("/etc/exports", "/etc/hasync"))
    assert P.node_local_notes(s) == ["/etc/hasync: never synced, each node keeps its own: /etc/hasync/ssh"]
    assert P.start_problems(s) == []
    [why] = P.start_problems(Sync(paths=("/etc/hasync/ssh",)))
    assert "node-local" in why


def test_scope_and_unison_exclude_node_local_files() -> None:
    local = P.node_local_paths(Sync())
    s = Scope(("/etc/hasync",), (), local)
    assert s.contains("/etc/hasync/cluster.toml")
    for p in ("/etc/hasync/ssh", "/etc/hasync/ssh/id_ed25519", "/etc/hasync/ssh/known_hosts"):
        assert not s.contains(p) and s.ignored(p)
    argv = unison_argv(remote_root="ssh://n//", paths=["/etc/hasync"], backup_dir="/b", node_local=local)
    ignores = [argv[i + 1] for i, a in enumerate(argv) if a == "-ignore"]
    assert {"Path etc/hasync/ssh", "Path run/hasync", "Path var/lib/hasync"} <= set(ignores)
    assert ignore_path("/etc/a*b/{x,y}") == r"Path etc/a\*b/\{x\,y\}"


def test_excluded_is_the_node_local_path_or_below_it_however_spelled() -> None:
    local = P.node_local_paths(Sync())
    for p in ("/run/hasync", "/run/hasync/sync/x.sock", "//run/./hasync/", "/var/lib/hasync/../hasync/sync"):
        assert P.excluded(p, local), p
    for p in ("/run/hasyncd", "/run", "/var/lib", "/etc/hasync/cluster.toml", "/etc/hasync/sshd"):
        assert not P.excluded(p, local), p


def write_config(tmp_path: Path, paths: list[str]) -> Path:
    text = (ROOT / "profiles" / "cluster" / "example.toml").read_text()
    text = re.sub(r"(?m)^paths = .*$", "paths = [" + ", ".join(f'"{p}"' for p in paths) + "]", text, count=1)
    text = text.replace('"/var/lib/hasync/backups"', f'"{tmp_path}/backups"').replace('"/var/lib/hasync/sync"', f'"{tmp_path}/sync"')
    text = re.sub(r"(?ms)^\[\[sync\.on_change\]\].*?(?=^\[storage\])", "", text)
    cfg = tmp_path / "cluster.toml"
    cfg.write_text(text)
    return cfg


@pytest.mark.parametrize("spelling", ["/.", "//etc", "/etc/hasync/.."])
def test_watch_refuses_a_denied_path_at_start_with_a_clear_message(tmp_path: Path, spelling: str) -> None:
    """`/.` crashed the watcher with a traceback; `//etc` started it on all of /etc."""
    cfg = write_config(tmp_path, ["/etc/exports", spelling])
    r = subprocess.run([sys.executable, "-m", "hasync", "-c", str(cfg), "watch", "--node", "node1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert "refusing to sync" in r.stderr and repr(spelling) in r.stderr
    assert not (tmp_path / "sync" / "unison").exists()  # refused before anything was set up
