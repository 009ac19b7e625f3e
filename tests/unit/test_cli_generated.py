"""The man page and the bash completion, generated from the parsers: they hold every
command and option, and the completion completes in a real bash."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hasync import cli
from hasync.cli import completion, manpage, reference

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def commands():
    return reference.product_commands()


def test_the_walk_finds_every_verb_of_the_table(commands):
    top = {c.words[1] for c in commands if len(c.words) == 2}
    assert top == {v.name for v in cli.VERBS}
    assert ("hasync", "sync", "status") in {c.words for c in commands}
    migrate = next(c for c in commands if c.words == ("hasync", "migrate"))
    assert {"--to", "--dry-run", "-c", "--config"} <= migrate.flags


def test_the_man_page_environment_names_what_the_code_reads():
    source = "\n".join(p.read_text() for p in (REPO / "hasync").rglob("*.py") if p.name != "manpage.py")
    assert not [name for name, _ in manpage.ENVIRONMENT if name not in source]


def test_man_page_escapes_roff():
    assert manpage.escape(".x --json a-b \\n") == "\\&.x \\-\\-json a-b \\en"


def test_the_man_page_renders_without_warnings(commands):
    if not shutil.which("groff"):
        pytest.skip("groff is not installed")
    r = subprocess.run(["groff", "-man", "-ww", "-z", "-Tutf8"], input=manpage.render(commands), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and not r.stderr, r.stderr


def complete(script: str, *words: str) -> list[str]:
    """What bash's completion offers after *words* (the last one being completed)."""
    call = " ".join(f"'{w}'" for w in words)
    prog = f'{script}\nCOMP_WORDS=({call}); COMP_CWORD={len(words) - 1}; _hasync; printf "%s\\n" "${{COMPREPLY[@]}}"'
    r = subprocess.run(["bash", "--norc", "--noprofile"], input=prog, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return [w for w in r.stdout.split("\n") if w]


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_bash_completion_completes_verbs_subcommands_options_and_values(commands, tmp_path):
    script = completion.bash(commands)
    assert complete(script, "hasync", "sy") == ["sync"]
    assert complete(script, "hasync", "sync", "st") == ["status"]
    assert "--to" in complete(script, "hasync", "migrate", "--")
    assert set(complete(script, "hasync", "-c", "x.toml", "check", "--j")) == {"--json"}
    assert complete(script, "hasync", "export", "pacemaker", "--format", "") == ["cib", "crm", "pcs", "corosync"]
    assert complete(script, "hasync", "completion", "") == ["bash"]
    (tmp_path / "cluster.toml").write_text("")
    assert complete(script, "hasync", "check", "-c", str(tmp_path / "clu")) == [str(tmp_path / "cluster.toml")]


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_the_completion_offers_every_option_of_every_command(commands):
    script = completion.bash(commands)
    missing = {c.words: c.flags - set(complete(script, *c.words, "-")) for c in commands}
    assert not {w: m for w, m in missing.items() if m}


def test_hasync_completion_bash_prints_it(capsys):
    assert cli.main(["completion", "bash"]) == 0
    assert "complete -F _hasync hasync" in capsys.readouterr().out
