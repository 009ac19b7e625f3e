"""Where a lab lives on the host and what it remembers: paths, state.json, locks."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hasync.effects.files import atomic_write
from hasync_lab.ns.locks import FileLock
from hasync_lab.ns.nodefiles import NODE_INFO
from hasync_lab.ns.spec import check_name, lab_root


def default_lab_name() -> str:
    """--name default: $HASYNC_LAB, then the lab this process runs inside, then "hl"."""
    env = os.environ.get("HASYNC_LAB")
    if env:
        return env
    info = node_info()
    if info:
        return info["lab"]
    return "hl"


def node_info() -> dict | None:
    """{"lab", "node", "root"} when running inside a lab node, else None."""
    try:
        with open(NODE_INFO) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def inside_node() -> bool:
    """True inside a lab node: its /etc has the lab's note and /run/netns is not visible."""
    return node_info() is not None and not os.path.isdir("/run/netns")


def host_anchor_pid(root: str, lab: str) -> int:
    """A process in the namespaces the lab was built from, for `nsenter -t PID`.

    The lab's serial relay runs there. PID 1 would do on most machines, but its /proc/1/ns
    is not always readable (when PID 1 holds capabilities that we lack).
    """
    try:
        with open(os.path.join(root, lab, "state.json")) as f:
            pid = int(json.load(f).get("relay_pid", 0))
        if pid > 0:
            os.stat(f"/proc/{pid}/ns/mnt")
            return pid
    except (OSError, ValueError):
        pass
    return 1


class Store:
    def __init__(self, name: str, root: str | None = None):
        self.name = check_name(name)
        self.root = Path(root or lab_root())
        self.dir = self.root / name

    # -- paths ---------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    def ns_file(self, node: str, kind: str) -> Path:
        return self.dir / "ns" / f"{node}.{kind}"

    def node_dir(self, node: str) -> Path:
        return self.dir / "nodes" / node

    def disk_image(self, node: str) -> Path:
        return self.dir / "disks" / f"{node}.img"

    @property
    def serial_dir(self) -> Path:
        return self.dir / "serial"

    @property
    def ssh_dir(self) -> Path:
        return self.dir / "ssh"

    # -- state ---------------------------------------------------------------------
    def exists(self) -> bool:
        return self.state_file.exists() or (self.dir / "kind").exists()

    def kind(self) -> str:
        """"ns" or "vm" ("" when there is no such lab)."""
        try:
            return (self.dir / "kind").read_text().strip()
        except FileNotFoundError:
            pass
        if self.state_file.exists():
            return "ns"
        if (vm_run_root() / self.name / "lab.json").exists():
            return "vm"  # made through hasync_lab.vm's own API
        return ""

    def load(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}

    def save(self, state: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.state_file, json.dumps(state, indent=2, sort_keys=True) + "\n")

    def lock(self) -> FileLock:
        """Serialize changes to one lab (several processes: tests, CLI, fencing); this
        process may take it again (locks.py says why)."""
        return FileLock(self.root / f".{self.name}.lock", f"lab {self.name!r}")

    def root_lock(self) -> FileLock:
        return FileLock(self.root / ".root.lock", "the labs' root")


def vm_run_root() -> Path:
    """Where hasync_lab.vm keeps its labs (same default as hasync_lab.vm.driver.run_root)."""
    return Path(os.environ.get("HASYNC_VM_RUN") or "/var/tmp/hasync-vm")


def all_lab_names(root: str | None = None, *, with_vm: bool = False) -> list[str]:
    r = Path(root or lab_root())
    dirs = sorted(r.iterdir()) if r.is_dir() else []
    if with_vm and vm_run_root().is_dir():
        dirs += [p.parent for p in vm_run_root().glob("*/lab.json")]
    out = []
    for p in dirs:
        if p.is_dir():
            try:
                check_name(p.name)
            except ValueError:
                continue
            out.append(p.name)
    return sorted(set(out))


def is_mountpoint(path: str | os.PathLike) -> bool:
    p = os.path.abspath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if _unescape(line.split()[4]) == p:
                return True
    return False


def mounts_under(path: str | os.PathLike) -> list[str]:
    """Mount points at or below *path* in this mount namespace, deepest first."""
    p = os.path.abspath(path)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            m = _unescape(line.split()[4])
            if m == p or m.startswith(p + "/"):
                out.append(m)
    return sorted(set(out), key=len, reverse=True)


def _unescape(s: str) -> str:
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
