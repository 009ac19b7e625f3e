"""unison argv, exit codes, output parsing and the version check (pure)."""

from pathlib import Path

import pytest

from hasync.sync.unison import (
    Outcome,
    check_versions,
    outcome,
    parse_output,
    parse_version,
    rel,
    socket_root,
    ssh_root,
    unison_argv,
)

DATA = Path(__file__).parent / "data"


def _opt(argv, name):
    """Every value given to option *name*."""
    return [argv[i + 1] for i, a in enumerate(argv) if a == name]


def test_argv_has_the_safe_defaults():
    argv = unison_argv(
        remote_root="ssh://root@node2//",
        paths=["/etc/exports", "/etc/hasync"],
        backup_dir="/var/lib/hasync/backups",
        ignore=["*.swp", "*~"],
        ssh_args=("-i", "/etc/hasync/ssh/id_ed25519", "-o", "UserKnownHostsFile=/etc/hasync/ssh/known_hosts"),
    )
    assert argv[:3] == ("unison", "/", "ssh://root@node2//")
    for flag in ("-batch", "-times", "-owner", "-group", "-numericids", "-confirmbigdel=false"):
        assert flag in argv
    assert _opt(argv, "-perms") == ["0o1777"]
    assert _opt(argv, "-links") == ["true"]
    assert _opt(argv, "-path") == ["etc/exports", "etc/hasync"]
    assert _opt(argv, "-backuploc") == ["central"]
    assert _opt(argv, "-backupdir") == ["/var/lib/hasync/backups"]
    assert _opt(argv, "-backup") == ["Name *"]
    assert _opt(argv, "-ignore") == ["Name *.swp", "Name *~"]
    assert _opt(argv, "-sshargs") == [
        "-i /etc/hasync/ssh/id_ed25519 -o UserKnownHostsFile=/etc/hasync/ssh/known_hosts"
    ]
    assert "-prefer" not in argv  # conflicts are skipped and settled by hasync's policy
    assert "-follow" not in argv


@pytest.mark.parametrize(
    "prefer,expected",
    [("local", "/"), ("remote", "socket://{/run/x.sock}//"), ("newer", "newer")],
)
def test_prefer(prefer, expected):
    argv = unison_argv(remote_root=socket_root("/run/x.sock"), paths=["/etc/a"], backup_dir="/b", prefer=prefer)
    assert _opt(argv, "-prefer") == [expected]


def test_prefer_rejects_nonsense():
    with pytest.raises(ValueError):
        unison_argv(remote_root="ssh://n//", paths=["/etc/a"], backup_dir="/b", prefer="node1")


def test_readonly_forbids_every_change_on_both_roots():
    argv = unison_argv(remote_root="ssh://n//", paths=["/etc/a"], backup_dir="/b", readonly=True)
    for opt in ("-nocreation", "-nodeletion", "-noupdate"):
        assert sorted(_opt(argv, opt)) == ["/", "ssh://n//"]


def test_paths_deduplicated_and_required():
    argv = unison_argv(remote_root="ssh://n//", paths=["/etc/a", "/etc/a/"], backup_dir="/b")
    assert _opt(argv, "-path") == ["etc/a"]
    with pytest.raises(ValueError):
        unison_argv(remote_root="ssh://n//", paths=[], backup_dir="/b")


def test_rel_refuses_relative_and_root():
    assert rel("/etc/exports") == "etc/exports"
    with pytest.raises(ValueError):
        rel("etc/exports")
    with pytest.raises(ValueError):
        rel("/")


def test_roots():
    assert ssh_root("node2") == "ssh://root@node2//"
    assert ssh_root("fd00::2") == "ssh://root@[fd00::2]//"
    assert socket_root("/run/hasync/sync/u.sock") == "socket://{/run/hasync/sync/u.sock}//"


@pytest.mark.parametrize(
    "code,expected,retry",
    [
        (0, Outcome.OK, False),
        (1, Outcome.SKIPPED, False),
        (2, Outcome.FAILED, True),
        (3, Outcome.FATAL, True),
        (-9, Outcome.FATAL, True),
        (127, Outcome.FATAL, True),
    ],
)
def test_exit_codes(code, expected, retry):
    assert outcome(code) is expected
    assert outcome(code).retry is retry


def test_parse_captured_run():
    rep = parse_output((DATA / "unison_conflict_run.txt").read_text())
    assert rep.conflicts == ["/etc/f4"]
    assert rep.skipped == {"/etc/f4": "contents changed on both sides"}
    assert rep.changed_remote == ["/etc/d", "/etc/f3", "/etc/lnk", "/etc/new1"]
    assert rep.changed_local == ["/etc/f2"]
    actions = {t.path: t.action for t in rep.transfers}
    assert actions["/etc/f3"] == "delete" and actions["/etc/f2"] == "update"
    assert {p.path: p.arrow for p in rep.planned} == {
        "/etc/f4": "<-?->",
        "/etc/d": "---->",
        "/etc/f2": "<----",
        "/etc/f3": "---->",
        "/etc/lnk": "---->",
        "/etc/new1": "---->",
    }
    assert [p.path for p in rep.planned if p.conflict] == ["/etc/f4"]
    assert "5 items transferred, 1 skipped" in rep.summary
    assert rep.fatal == ""


def test_parse_failures_and_fatal():
    text = (
        "[BGN] Copying properties for etc/hasync/authkey from / to //node2//\n"
        "Synchronization incomplete at 10:00:00  (0 items transferred, 0 skipped, 1 failed)\n"
        "  failed: etc/hasync/big (Error in renaming: No space left on device)\n"
    )
    rep = parse_output(text)
    assert rep.failed == {"/etc/hasync/big": "Error in renaming: No space left on device"}
    assert rep.transfers[0].action == "props" and not rep.transfers[0].to_local
    fatal = parse_output("Fatal error: Lost connection with the server\n")
    assert fatal.fatal.startswith("Lost connection with the server")


def test_versions():
    assert parse_version("unison version 2.52.1 (ocaml 4.13.1)") == (2, 52, 1)
    assert parse_version("sh: unison: not found") is None
    assert check_versions("unison version 2.52.1 (ocaml 4.13.1)", "unison version 2.53.3 (ocaml 5.1.0)") == ""
    same_old = "unison version 2.48.4 (ocaml 4.05.0)"
    assert check_versions(same_old, same_old) == ""
    msg = check_versions("unison version 2.52.1 (ocaml 4.13.1)", same_old)
    assert "2.48.4" in msg and ">= 2.52" in msg
    assert "installed" in check_versions("unison version 2.52.1", "bash: unison: command not found")


def test_dry_run_plan_lines():
    text = (
        "changed  <=?=>            etc/a  \n"
        "         <=?=> changed    etc/b  \n"
        "changed  <=?=> changed    etc/c  \n"
        "  skipped: etc/a (would update a file with noupdate or noupdatepartial set)\n"
    )
    rep = parse_output(text)
    assert [(p.path, p.direction) for p in rep.planned] == [
        ("/etc/a", "to_remote"),
        ("/etc/b", "to_local"),
        ("/etc/c", "conflict"),
    ]
    assert rep.conflicts == []  # "would update ... noupdate" is not a conflict
