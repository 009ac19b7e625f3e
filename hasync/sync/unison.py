"""unison as data: argv built by pure functions, exit codes and output parsed.

Both replicas are rooted at ``/`` and every run is limited with ``-path`` to the
configured paths (or to what changed inside them), so the same archive serves the
watcher's small runs and the full reconciliations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

from hasync.config.paths import normalize_path as normalize
from hasync.config.paths import sync_path_problem as path_problem

# The permission bits unison synchronizes: everything but setuid/setgid (its default,
# spelled out: a secret at 0600 stays 0600 on the peer).
PERMS_MASK = "0o1777"
MAX_BACKUPS = 5  # ordinary overwrites: a bounded history (conflict losers: hasync.sync.conflicts)
MIN_VERSION = (2, 52)


class Outcome(Enum):
    OK = 0  # all in sync
    SKIPPED = 1  # some paths skipped (conflicts in -batch mode)
    FAILED = 2  # non-fatal failures on some paths
    FATAL = 3  # nothing happened: connection lost, archive locked, bad arguments

    @property
    def retry(self) -> bool:
        """Whether the batch must stay in the journal and be tried again."""
        return self in (Outcome.FAILED, Outcome.FATAL)


def outcome(exit_code: int) -> Outcome:
    """unison's exit code as an Outcome (anything unknown, e.g. a signal, is fatal)."""
    try:
        return Outcome(exit_code)
    except ValueError:
        return Outcome.FATAL


def rel(path: str) -> str:
    """An absolute path as unison's -path argument (relative to the root /), refused when
    it names a tree never synced whole, however it is spelled (hasync.sync.paths)."""
    why = path_problem(path)
    if why:
        raise ValueError(why)
    return normalize(path).strip("/")


_GLOB_SPECIAL = set("*?[]{},\\")


def ignore_path(path: str) -> str:
    """unison's ``-ignore`` for exactly *path* and below it (glob characters escaped)."""
    r = normalize(path).strip("/")
    return "Path " + "".join("\\" + c if c in _GLOB_SPECIAL else c for c in r)


def ssh_root(address: str, user: str = "root") -> str:
    host = f"[{address}]" if ":" in address else address
    return f"ssh://{user}@{host}//" if user else f"ssh://{host}//"


def socket_root(socket_path: str) -> str:
    """A root served by a persistent ``unison -socket`` server (see transport.py)."""
    return "socket://{" + socket_path + "}//"


def unison_argv(
    *,
    remote_root: str,
    paths,
    backup_dir: str,
    ignore=(),
    prefer: str | None = None,
    ssh_args: tuple[str, ...] = (),
    unison: str = "unison",
    local_root: str = "/",
    backups: bool = True,
    readonly: bool = False,
    fastcheck: bool = False,
    node_local=(),
) -> tuple[str, ...]:
    """The unison command line for one run.

    *paths* are absolute paths (each becomes one ``-path``); *prefer* is ``"local"``,
    ``"remote"``, ``"newer"`` or None (conflicts are then skipped and reported);
    *readonly* forbids every change on both replicas (a dry run: unison only reports);
    *fastcheck* trusts size+mtime+inode instead of reading contents (for whole directories
    after a burst: rewriting a file in place with the same size within the same second
    goes unseen then, so runs over the exact changed paths read contents);
    *node_local*: paths ignored on both replicas (hasync.config.paths.node_local_paths).
    """
    argv: list[str] = [unison, local_root, remote_root]
    argv += [
        "-batch",
        "-ui", "text",
        "-dumbtty",
        "-terse",
        "-contactquietly",
        "-times",
        "-perms", PERMS_MASK,
        "-owner",
        "-group",
        "-numericids",
        "-links", "true",  # symlinks are copied as symlinks, never followed
        "-confirmbigdel=false",  # -path runs: a deleted file is a deliberate change
        "-fastcheck", "true" if fastcheck else "false",
        "-log=false",  # hasync logs what happened itself
        "-rsync=false",  # config files are small: whole-file transfer is faster
    ]
    if backups:
        argv += [
            "-backup", "Name *",
            "-backuploc", "central",
            "-backupdir", backup_dir,
            "-backupprefix", "./",  # an empty prefix makes unison drop the suffix
            "-backupsuffix", ".~$VERSION~",
            "-maxbackups", str(MAX_BACKUPS),
        ]
    for pattern in ignore:
        argv += ["-ignore", f"Name {pattern}"]
    for p in node_local:
        argv += ["-ignore", ignore_path(p)]
    if prefer == "local":
        argv += ["-prefer", local_root]
    elif prefer == "remote":
        argv += ["-prefer", remote_root]
    elif prefer == "newer":
        argv += ["-prefer", "newer"]
    elif prefer is not None:
        raise ValueError(f"prefer must be local, remote, newer or None, not {prefer!r}")
    if readonly:
        for root in (local_root, remote_root):
            argv += ["-nocreation", root, "-nodeletion", root, "-noupdate", root]
    if ssh_args:
        argv += ["-sshargs", " ".join(ssh_args)]
    seen = set()
    for p in paths:
        r = rel(p)
        if r not in seen:
            seen.add(r)
            argv += ["-path", r]
    if not seen:
        raise ValueError("a unison run needs at least one path")
    return tuple(argv)


# ---------------------------------------------------------------- output parsing


@dataclass(frozen=True)
class Transfer:
    path: str  # absolute
    action: str  # "copy", "update", "delete", "props"
    to_local: bool  # True: written on this node; False: written on the peer


@dataclass(frozen=True)
class Planned:
    """One line of unison's plan: ``changed  ---->            etc/x``."""

    path: str
    left: str  # local side: "new file", "changed", "deleted", "props", ""
    arrow: str  # "---->", "<----", "<-?->", ...
    right: str

    @property
    def direction(self) -> str:
        """"to_remote", "to_local" or "conflict" ("<=?=>" is a move the dry run's
        no-update preferences blocked: the changed side tells where it would go)."""
        if self.arrow in ("---->", "====>"):
            return "to_remote"
        if self.arrow in ("<----", "<===="):
            return "to_local"
        if self.arrow == "<=?=>":
            if self.left and not self.right:
                return "to_remote"
            if self.right and not self.left:
                return "to_local"
        return "conflict"

    @property
    def conflict(self) -> bool:
        return self.direction == "conflict"

    @property
    def to_remote(self) -> bool:
        return self.direction == "to_remote"


@dataclass
class Report:
    transfers: list[Transfer] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # absolute paths
    skipped: dict[str, str] = field(default_factory=dict)  # path -> reason
    failed: dict[str, str] = field(default_factory=dict)  # path -> reason
    planned: list[Planned] = field(default_factory=list)
    fatal: str = ""
    summary: str = ""

    @property
    def changed_local(self) -> list[str]:
        return sorted({t.path for t in self.transfers if t.to_local})

    @property
    def changed_remote(self) -> list[str]:
        return sorted({t.path for t in self.transfers if not t.to_local})


_ARROWS = r"(?:<-\?->|<=\?=>|<-M->|---->|<----|====>|<====|<==>|<-->)"
_PLAN = re.compile(r"^(?P<left>.{8}) (?P<arrow>" + _ARROWS + r") (?P<right>.{8})   (?P<path>.+?)\s*$")
_BGN = re.compile(
    r"^\[BGN\] (?P<what>Copying properties for|Copying|Updating file|Deleting) (?P<path>.+?)"
    r" from (?P<src>\S+)(?: to (?P<dst>\S+))?\s*$"
)
_CONFLICT = re.compile(r"^\[CONFLICT\] Skipping (?P<path>.+?)\s*$")
_SKIPPED = re.compile(r"^\s+(?P<kind>skipped|failed): (?P<path>.+?) \((?P<reason>.*)\)\s*$")
_SUMMARY = re.compile(r"^Synchronization (?:complete|incomplete) at .*$")
_FATAL = re.compile(r"^Fatal error: ?(?P<msg>.*)$")


def _abs(p: str) -> str:
    return "/" + p.strip().lstrip("/")


def _is_remote_root(root: str) -> bool:
    # unison prints remote roots as //host//path, local ones as a plain path
    return root.startswith("//")


def parse_output(text: str) -> Report:
    """Parse unison's combined stdout+stderr (text UI, -terse or not)."""
    rep = Report()
    lines = re.split(r"[\r\n]+", text)
    for i, line in enumerate(lines):
        if m := _BGN.match(line):
            what = m["what"]
            if what == "Deleting":
                dst = m["src"]  # "Deleting x from ROOT": ROOT is where it is deleted
                action = "delete"
            else:
                dst = m["dst"] or ""
                action = {"Copying": "copy", "Updating file": "update"}.get(what, "props")
            rep.transfers.append(Transfer(_abs(m["path"]), action, not _is_remote_root(dst)))
        elif m := _CONFLICT.match(line):
            p = _abs(m["path"])
            if p not in rep.conflicts:
                rep.conflicts.append(p)
        elif m := _SKIPPED.match(line):
            p = _abs(m["path"])
            if m["kind"] == "skipped":
                rep.skipped[p] = m["reason"]
                if "changed on both sides" in m["reason"] or "conflict" in m["reason"].lower():
                    if p not in rep.conflicts:
                        rep.conflicts.append(p)
            else:
                rep.failed[p] = m["reason"]
        elif m := _PLAN.match(line):
            rep.planned.append(
                Planned(_abs(m["path"]), m["left"].strip(), m["arrow"], m["right"].strip())
            )
        elif _SUMMARY.match(line.strip()):
            rep.summary = line.strip()
        elif m := _FATAL.match(line.strip()):
            rest = [m["msg"]] + [ln.strip() for ln in lines[i + 1 : i + 6] if ln.strip()]
            rep.fatal = " ".join(x for x in rest if x)
    return rep


# ---------------------------------------------------------------- versions

_VERSION = re.compile(r"unison version (\d+)\.(\d+)(?:\.(\d+))?", re.I)


def version_argv(unison: str = "unison") -> tuple[str, ...]:
    return (unison, "-version")


def parse_version(text: str) -> tuple[int, ...] | None:
    m = _VERSION.search(text or "")
    if not m:
        return None
    return tuple(int(x) for x in m.groups() if x is not None)


def is_locked(text: str) -> bool:
    """unison refused to run because an archive is locked (another run, or a stale lock)."""
    t = text.lower()
    return "locked" in t and "archive" in t


def is_collision(text: str) -> bool:
    """A file changed under unison while it ran (the peer's run, an editor): retry soon."""
    return "updated during synchronization" in text.lower()


def check_versions(local: str, remote: str) -> str:
    """'' when the two ``unison -version`` outputs can work together, else why not.

    Since 2.52 unison speaks a version-independent protocol; older versions must be
    identical builds (same unison and OCaml version).
    """
    lv, rv = parse_version(local), parse_version(remote)
    if lv is None:
        return f"cannot tell the local unison version from {local.strip()!r}: is unison installed?"
    if rv is None:
        return f"cannot tell the peer's unison version from {remote.strip()!r}: is unison installed there?"
    if lv[:2] >= MIN_VERSION and rv[:2] >= MIN_VERSION:
        return ""
    if local.strip() == remote.strip():
        return ""
    fmt = ".".join
    return (
        f"unison versions cannot talk to each other: this node has {fmt(map(str, lv))}, "
        f"the peer {fmt(map(str, rv))}. Both must be >= 2.52, or exactly the same build "
        f"(same unison and OCaml version). Install unison >= 2.52 on both nodes."
    )
