"""The user docs (README.md, CONTRIBUTING.md, docs/*.md) say only what is true of the code.

Three rules, each read off the code, not off a list kept here:

1. **Paths.** An absolute path in the docs is a path a cluster node (or the admin's box)
   really has, never one of the machine the docs were written on. Allowed: anything under
   the system's own directories -- /etc, /var, /usr, /dev, /proc, /sys, /run, /srv, /opt,
   /bin, /sbin, /lib, /lib64, /boot, /mnt, /media -- and the bare directories /, /tmp,
   /home and /root, and root's ssh files under /root/.ssh/ (bootstrap writes them).
   Refused: everything else, e.g. /work/..., /home/<user>/..., /tmp/<a run's files>,
   /root/<a working directory>, /some/dir: a path under /tmp, /home or /root belongs to one
   machine's one run or one person. Write a placeholder (DIR, `$(mktemp -d)`) or a
   relative path instead. What follows `<placeholder>/`, `{x}/`, `$(...)/` or a URL is
   not an absolute path.
2. **Flags.** Every `hasync VERB [SUB] --flag` (in a code block, or in inline code in the
   text) names a verb that exists and a flag that verb's --help lists. The parsers are
   the CLI's own, built in-process (hasync.cli.reference: the same table `--help`, the man
   page and the completion use); `hasync lab ...` is the harness's (hasync_lab.cli), and
   `hasync lab bench KIND` the benchmark's own parser.
3. **Config keys.** Every cluster.toml key the docs show (a `key = value` line under a
   `[section]` header in a code block, or `[section].key` anywhere) is one the config
   reader knows (hasync.config.sections' field tables), and docs/config.md's key
   reference lists exactly the keys the reader knows, each under its section.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import io
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from hasync import config, model
from hasync.cli import reference
from hasync.config import sections as S

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted([REPO / "README.md", REPO / "CONTRIBUTING.md", *(REPO / "docs").glob("*.md")])

# ------------------------------------------------------------------ reading markdown


def segments(text: str) -> Iterator[tuple[int, str, str]]:
    """(line, kind, text): each fenced code block's lines ("code:LANG") and each inline
    code span of the prose ("inline"); spans may run over a line break."""
    lines = text.split("\n")
    lang = None
    para: list[tuple[int, str]] = []

    def spans() -> Iterator[tuple[int, str, str]]:
        joined = "\n".join(t for _, t in para)
        for m in re.finditer(r"`([^`]+)`", joined):
            yield para[0][0] + joined.count("\n", 0, m.start()), "inline", m.group(1).replace("\n", " ")

    for no, line in enumerate(lines, 1):
        fence = re.match(r"^\s*```(\S*)", line)
        if fence:
            if lang is None:
                yield from spans()
                para = []
                lang = fence.group(1)
            else:
                lang = None
            continue
        if lang is not None:
            yield no, f"code:{lang}", line
        elif line.strip():
            para.append((no, line))
        else:
            yield from spans()
            para = []
    yield from spans()


# ------------------------------------------------------------------ 1. paths

SYSTEM_DIRS = {"etc", "var", "usr", "dev", "proc", "sys", "run", "srv", "opt", "bin", "sbin", "lib", "lib64", "boot",
               "mnt", "media"}
BARE_DIRS = {"/", "/tmp", "/home", "/root"}
PATH = re.compile(r"(?<![\w.~:/>}\])$%\\-])/[A-Za-z0-9._@+-]+(?:/[A-Za-z0-9._@+*{}<>%-]*)*")


def path_allowed(path: str) -> bool:
    path = path.rstrip(".,:;")
    top = path.split("/")[1]
    return top in SYSTEM_DIRS or path.rstrip("/") in BARE_DIRS or path.startswith("/root/.ssh/")


def test_path_rule():
    assert all(path_allowed(p) for p in ("/etc/hasync/cluster.toml", "/usr/lib/ocf/resource.d", "/dev/drbd0", "/tmp",
                                         "/home", "/root/.ssh/authorized_keys", "/var/tmp/hasync-lab", "/root."))
    assert not any(path_allowed(p) for p in ("/work/main", "/home/alice/x", "/tmp/runF/bench", "/root/pcmk",
                                             "/some/empty/dir", "/N"))
    found = PATH.findall("see /work/x, <state_dir>/epoch, https://a.b/c, 10.0.0.1/24, -p/-r, $(pwd)/x, (/etc/x)")
    assert found == ["/work/x", "/etc/x"]


def test_docs_name_no_path_of_a_build_machine():
    bad = []
    for doc in DOCS:
        for no, line in enumerate(doc.read_text().split("\n"), 1):
            bad += [f"{doc.relative_to(REPO)}:{no}: {p}" for p in PATH.findall(line) if not path_allowed(p)]
    assert not bad, "absolute paths that are not on a node (see the rule in this file's docstring):\n" + "\n".join(bad)


# ------------------------------------------------------------------ 2. flags


def _captured_parser(module: str, call: str) -> argparse.ArgumentParser:
    """The parser a harness program builds inside its main(): caught at parse_args."""

    class Caught(Exception):
        pass

    def catch(self, *a, **k):
        raise Caught(self)

    mod = importlib.import_module(module)
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(io.StringIO()):
        mp.setattr(argparse.ArgumentParser, "parse_args", catch)
        try:
            getattr(mod, call)(["--help"])
        except Caught as c:
            return c.args[0]
    raise AssertionError(f"{module}.{call} parsed no arguments")


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {f for a in parser._actions for f in a.option_strings}


def command_table() -> dict[tuple[str, ...], reference.Command]:
    from hasync_lab import cli as lab_cli

    out = {c.words: c for c in reference.product_commands()}
    lab = reference.walk(reference.full_parser(lab_cli.build_parser, lab_cli.VERBS), lab_cli.VERBS, ("hasync", "lab"))
    out.update({c.words: c for c in lab})
    return out


def bench_flags() -> dict[str, set[str]]:
    from hasync_lab import bench_verbs

    sync = _flags(_captured_parser(bench_verbs.BENCHES["sync"], "main"))
    failover = _flags(importlib.import_module(bench_verbs.BENCHES["failover"]).build_parser())
    vm = _flags(_captured_parser(bench_verbs.VM_FAILOVER, "parse")) | {"--vm"}
    return {"sync": sync, "failover": failover | vm}


STOP = {"|", "||", "&&", ";", ">", ">>", "2>", "2>&1", "<", "--", "&"}
FLAG = re.compile(r"^(--?[A-Za-z][A-Za-z0-9-]*)(=.*)?$")
# `hasync` as the command: at the start of a line or span (after a prompt such as `$ ` or
# `node1# `, VAR=value settings, sudo, a path such as .venv/bin/), or after a shell
# separator; not a word in a sentence or an argument of another command
INVOCATION = re.compile(r"(?:^\s*(?:[\w@.-]*[$#]\s+)?|(?:&&|;|\||\$\(|`)\s*)(?:[A-Z_]+=\S*\s+)*(?:sudo\s+)?"
                        r"(?:[\w./-]*/)?hasync(?=\s)")


def words_after(text: str) -> Iterator[list[str]]:
    """The words after each `hasync` command in *text*, up to a shell separator, a
    comment or the end of an inline code span."""
    for m in INVOCATION.finditer(text):
        out = []
        nested = 0  # inside $(...): another command's words
        for tok in text[m.end():].split():
            if nested or "$(" in tok:
                nested += tok.count("$(") - tok.count(")")
                continue
            if tok in STOP or tok.startswith("#") or tok.startswith(">"):
                break
            end = tok.endswith(";") or "`" in tok
            tok = tok.split("`")[0].removesuffix("'s").rstrip(":;")
            if tok:
                out.append(tok)
            if end:
                break
        yield out


def alternatives(tok: str) -> list[str]:
    """`[--ocf|--no-ocf]`, `--once/--dry-run/status`, `up|down`, `"--x,"` -> the words."""
    tok = tok.strip("[](){},;\"'`.…").replace("...", "")
    return [t for t in re.split(r"[|/]", tok) if t] if not tok.startswith("/") else [tok]


def check_invocation(words: list[str], table: dict, benches: dict) -> list[str]:
    """What is wrong with one `hasync WORDS` (empty: nothing)."""
    at = [("hasync",)]
    problems: list[str] = []
    rest = list(words)
    # options of the root, before the verb
    while rest and rest[0].startswith("-"):
        tok = rest.pop(0)
        for alt in alternatives(tok):
            m = FLAG.match(alt)
            if m and m.group(1) not in table[("hasync",)].flags:
                problems.append(f"hasync {m.group(1)}: not an option of hasync")
        if tok in ("-c", "--config") and rest:
            rest.pop(0)
    # the verb and its subcommands
    while rest:
        cmd_subs = {s for w in at for s in table[w].subcommands}
        if not cmd_subs:
            break
        alts = alternatives(rest[0])
        if not alts or all(FLAG.match(a) for a in alts):
            break
        if not all(a in cmd_subs for a in alts):
            if len(at[0]) == 1:  # `hasync NOSUCHVERB`
                problems.append(f"hasync {rest[0]}: no such verb")
                return problems
            break
        at = [w + (a,) for w in at for a in alts]
        rest.pop(0)
    known = set().union(*(table[w].flags for w in at))
    if at[0][:3] == ("hasync", "lab", "bench"):
        known |= set().union(*(benches.get(a, set()) for t in rest[:1] for a in alternatives(t)))
    takes_rest = any(a.nargs == argparse.REMAINDER for w in at for a in table[w].parser._actions
                     if not isinstance(a, argparse._SubParsersAction)) and at[0][:3] != ("hasync", "lab", "bench")
    for tok in rest:
        if takes_rest and not tok.startswith("-"):
            break  # NODE -- CMD ...: the rest is another program's
        for alt in alternatives(tok):
            m = FLAG.match(alt)
            if m and m.group(1) not in known:
                problems.append(f"{' '.join(at[0])} {m.group(1)}: not in its --help")
    return problems


def test_invocation_checker_catches_what_it_should():
    table, benches = command_table(), bench_flags()
    assert check_invocation(["migrate", "--to", "node2", "--dry-run"], table, benches) == []
    assert check_invocation(["-c", "x.toml", "sync", "status", "--json"], table, benches) == []
    assert check_invocation(["haresources", "import", "F", "[--ocf|--no-ocf]"], table, benches) == []
    assert check_invocation(["lab", "bench", "failover", "--vm", "--trials", "3"], table, benches) == []
    assert check_invocation(["lab", "exec", "node1", "ssh", "-o", "x"], table, benches) == []
    assert check_invocation(["standby|takeover", "--wait"], table, benches) == []
    assert check_invocation(["bootstrap", "--no-such-flag"], table, benches) == ["hasync bootstrap --no-such-flag: not in its --help"]
    assert check_invocation(["sync", "status", "--once"], table, benches) == ["hasync sync status --once: not in its --help"]
    assert check_invocation(["frobnicate"], table, benches) == ["hasync frobnicate: no such verb"]


def test_every_documented_hasync_flag_is_in_its_help():
    table, benches = command_table(), bench_flags()
    bad = []
    for doc in DOCS:
        for no, _kind, text in segments(doc.read_text()):
            for words in words_after(text):
                bad += [f"{doc.relative_to(REPO)}:{no}: {p}" for p in check_invocation(words, table, benches)]
    assert not bad, "documented verbs or flags that do not exist:\n" + "\n".join(bad)


# ------------------------------------------------------------------ 3. config keys

# [section] (as cluster.toml spells its header) -> the reader's field table
SECTIONS = {"cluster": S.CLUSTER, "node": S.NODE, "heartbeat": S.HEARTBEAT, "heartbeat.link": S.LINK, "sync": S.SYNC,
            "sync.on_change": S.ON_CHANGE, "storage": S.STORAGE, "nfs": S.NFS, "nfs.export": S.EXPORT,
            "resource": S.RESOURCE, "group": S.GROUP, "group.resource": S.RESOURCE, "group.storage": S.STORAGE,
            "group.nfs": S.GROUP_NFS, "group.nfs.export": S.EXPORT, "fencing": S.FENCING}
TOP_KEYS = {"haresources"}  # keys outside every section


def known_keys() -> dict[str, set[str]]:
    return {name: {f.key for f in table if f.kind != "tables"} for name, table in SECTIONS.items()}


def test_the_section_map_covers_the_reader():
    """A section added to the reader must be added to SECTIONS (and to docs/config.md)."""
    nested = {f"{name}.{f.key}" for name, table in SECTIONS.items() for f in table if f.kind == "tables"}
    assert {f.key for f in S.TOP} - TOP_KEYS == {n for n in SECTIONS if "." not in n}
    assert nested == {n for n in SECTIONS if "." in n}


HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?\s*(#.*)?$")
KEY_LINE = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")
DOTTED = re.compile(r"\[\[?([a-z_]+(?:\.[a-z_]+)?)\]\]?\.([a-z_]+)\b")


def documented_keys(text: str) -> Iterator[tuple[int, str, str]]:
    """(line, section, key) for each key in a TOML code block and each `[section].key`."""
    section: str | None = None
    for no, kind, line in segments(text):
        if kind.startswith("code:"):
            toml = kind == "code:toml"
            h = HEADER.match(line)
            if h:
                name = h.group(1)
                # a header of cluster.toml; any other (a distro profile's, lvm.conf's) ends it
                section = name if name.split(".")[0] in SECTIONS else None
                continue
            k = KEY_LINE.match(line)
            if k and section is not None:
                yield no, section, k.group(1)
            elif not k and line.strip() and not line.lstrip().startswith("#") and not toml:
                section = None  # no longer TOML (a prompt, other output)
        else:
            section = None
        for m in DOTTED.finditer(line):
            if m.group(1).split(".")[0] in SECTIONS:
                yield no, m.group(1), m.group(2)


def test_every_documented_config_key_is_known_to_the_reader():
    known = known_keys()
    bad = []
    for doc in DOCS:
        for no, section, key in documented_keys(doc.read_text()):
            ok = key in known.get(section, set()) or f"{section}.{key}" in SECTIONS
            if not ok:
                bad.append(f"{doc.relative_to(REPO)}:{no}: [{section}] {key}")
    assert not bad, "config keys the reader does not know:\n" + "\n".join(bad)


def config_md_reference() -> dict[str, dict[str, str]]:
    """docs/config.md's key reference: `### [section]` headings, each key the first
    column of its table (`key`), its default the second."""
    out: dict[str, dict[str, str]] = {}
    section = None
    for line in (REPO / "docs" / "config.md").read_text().split("\n"):
        h = re.match(r"^###\s+`\[\[?([a-z_.]+)\]\]?`", line)
        if h:
            section = h.group(1)
            out.setdefault(section, {})
        elif line.startswith("## "):
            section = None
        elif section and (row := re.match(r"^\|\s*`([a-z_]+)`\s*\|([^|]*)\|", line)):
            out[section][row.group(1)] = row.group(2).strip()
    return out


def test_config_md_lists_exactly_the_keys_the_reader_knows():
    documented = {s: set(keys) for s, keys in config_md_reference().items()}
    known = known_keys()
    assert documented == known, (
        "docs/config.md's key reference and the reader disagree: "
        f"missing {sorted((s, k) for s, ks in known.items() for k in ks - documented.get(s, set()))}, "
        f"unknown {sorted((s, k) for s, ks in documented.items() for k in ks - known.get(s, set()))}")


# the model class each section is read into (hasync/model.py), for the defaults
MODEL = {"cluster": model.ClusterInfo, "node": model.Node, "heartbeat": model.Heartbeat, "heartbeat.link": model.Link,
         "sync": model.Sync, "sync.on_change": model.OnChange, "storage": model.Storage, "nfs": model.Nfs,
         "nfs.export": model.Export, "resource": model.Resource, "group": model.Group, "group.resource": model.Resource,
         "group.storage": model.Storage, "group.nfs": model.Nfs, "group.nfs.export": model.Export, "fencing": model.Fencing}


def test_config_md_defaults_are_the_models():
    """A default written as a TOML value in backticks is the model's default; prose
    ("deadtime / 2", "required") is not compared."""
    bad = []
    for section, rows in config_md_reference().items():
        kinds = {f.key: f.kind for f in SECTIONS[section]}
        defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
                    for f in dataclasses.fields(MODEL[section])
                    if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
        for key, text in rows.items():
            lit = re.fullmatch(r"`(.+)`", text)
            if not lit:
                continue
            value = tomllib.loads(f"v = {lit.group(1)}")["v"]
            if kinds.get(key) == "duration":
                value = config.parse_duration(value)
            elif isinstance(value, list):
                value = tuple(value)
            if key not in defaults or defaults[key] != value:
                bad.append(f"[{section}] {key}: docs/config.md says {text}, hasync/model.py {defaults.get(key, 'nothing')!r}")
    assert not bad, "\n".join(bad)
