"""A namespace lab by name: its shape, its nodes, and running commands inside them.

The base of :class:`hasync_lab.ns.lab.Lab` (build.py builds on it, faults.py breaks and
heals, lab.py brings it up and down): what a node is made of on the host (network
namespace, bound mount and UTS namespace files, its processes) and how to enter it.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from hasync.effects.run import CommandError, ProcRunner, Result, kill_group
from hasync_lab.ns import procs
from hasync_lab.ns.runner import ShRunner
from hasync_lab.ns.serial import SerialCable, is_relay
from hasync_lab.ns.spec import (
    DISK_DEVICE,
    HEARTBEAT_IF,
    MOUNT_POINT,
    PREFIX,
    PUBLIC_IF,
    SERIAL_DEVICE,
    VIP,
    LabSpec,
)
from hasync_lab.ns.store import Store, default_lab_name

NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class LabError(RuntimeError):
    pass


class LabNodes:
    """One namespace lab on this host, by name (default: $HASYNC_LAB or "hl"): its nodes."""

    # -- description -----------------------------------------------------------
    def __init__(self, name: str | None = None, *, root: str | None = None, runner=None):
        self.store = Store(name or default_lab_name(), root)
        self.name = self.store.name
        self.runner = runner or ShRunner()  # building and breaking the lab
        self.node_runner = ProcRunner(inherit_env=False)  # exec() inside nodes: many calls, keep them lean
        self.cable = SerialCable(self.store.serial_dir)
        self._spawned: list[subprocess.Popen] = []

    @property
    def spec(self) -> LabSpec:
        st = self.store.load()
        if not st.get("spec"):
            raise LabError(f"lab {self.name!r} is not up (no {self.store.state_file})")
        return LabSpec(**st["spec"])

    def exists(self) -> bool:
        return self.store.state_file.exists()

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.spec.cluster_nodes

    @property
    def clients(self) -> tuple[str, ...]:
        return self.spec.client_nodes

    def public_addr(self, node: str) -> str:
        return self.spec.public_addr(node)

    def heartbeat_addr(self, node: str) -> str:
        return self.spec.heartbeat_addr(node)

    vip = VIP

    vip_cidr = f"{VIP}/{PREFIX}"

    public_if = PUBLIC_IF

    heartbeat_if = HEARTBEAT_IF

    serial_device = SERIAL_DEVICE  # inside node1 and node2

    disk_device = DISK_DEVICE  # inside every cluster node

    mount_point = MOUNT_POINT

    def disk(self, node: str) -> str:
        """The host loop device behind *node*'s /dev/vdb."""
        return self.store.load().get("loops", {})[node]

    def serial_pty(self, node: str) -> str:
        """The host-side path of *node*'s end of the serial cable (/dev/pts/N)."""
        return self._ttys()[node]

    def netns(self, node: str) -> str:
        return self.spec.netns(node)

    # -- entering nodes --------------------------------------------------------
    def enter_argv(self, node: str) -> tuple[str, ...]:
        """argv prefix that runs a command in all of *node*'s namespaces."""
        spec = self.spec
        spec.check_node(node)
        return (
            "nsenter",
            f"--net=/run/netns/{spec.netns(node)}",
            f"--mount={self.store.ns_file(node, 'mnt')}",
            f"--uts={self.store.ns_file(node, 'uts')}",
            "--",
        )

    def node_env(self, node: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SSH_", "VIRTUAL_ENV", "PYTEST_", "HASYNC_LAB"))
        }
        env.update(
            {
                "HOME": "/root",
                "PATH": NODE_PATH,
                "HASYNC_LAB": self.name,
                "HASYNC_LAB_NODE": node,
            }
        )
        env.pop("HASYNC_CONFIG", None)
        if extra:
            env.update(extra)
        return env

    def exec(
        self,
        node: str,
        argv: Sequence[str],
        *,
        input: str | bytes | None = None,
        timeout: float | None = 60,
        check: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> Result:
        """Run *argv* inside *node*; a Result (exit_code, stdout, stderr)."""
        full = self.enter_argv(node) + tuple(argv)
        env_ = self.node_env(node, env)
        res = self.node_runner.run(full, input=input, timeout=timeout, env=env_)
        res = Result(tuple(argv), res.exit_code, res.stdout, res.stderr, res.duration_s)
        if check and not res.ok:
            raise CommandError(res, f"on {node}")
        return res

    def sh(self, node: str, script: str, **kw) -> Result:
        """exec(node, ["/bin/sh", "-c", script])."""
        return self.exec(node, ["/bin/sh", "-c", script], **kw)

    def spawn(
        self,
        node: str,
        argv: Sequence[str],
        *,
        log: str | os.PathLike | None = None,
        env: Mapping[str, str] | None = None,
        stdin=subprocess.DEVNULL,
        stdout=None,
        stderr=None,
    ) -> subprocess.Popen:
        """Start *argv* in the background inside *node*; a Popen.

        Output goes to *log* (a host path) if given, else to stdout/stderr (e.g.
        subprocess.PIPE). Returns once the process is inside the node. reset() and down()
        kill what was spawned.
        """
        full = self.enter_argv(node) + tuple(argv)
        logf = None
        if log is not None:
            logf = open(log, "ab")  # noqa: SIM115 (kept by the Popen)
            stdout = stderr = logf
        try:
            p = subprocess.Popen(
                full,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                env=self.node_env(node, env),
                start_new_session=True,
            )
        finally:
            if logf is not None:
                logf.close()
        self._spawned.append(p)
        # Return once the process is inside the node (nsenter has entered its
        # namespaces), so a crash() right after spawn() is sure to catch it.
        want = procs.ns_inode(str(self.store.ns_file(node, "mnt")))
        deadline = time.monotonic() + 5
        while p.poll() is None and time.monotonic() < deadline:
            if procs.ns_inode(f"/proc/{p.pid}/ns/mnt") == want:
                break
            time.sleep(0.002)
        return p

    # -- a node's state --------------------------------------------------------
    def status_of(self, node: str) -> str:
        """"up", "crashed" or "down" (not running, e.g. after an interrupted up)."""
        self.spec.check_node(node)
        if node in self.store.load().get("crashed", []):
            return "crashed"
        return "up" if self._bound(self.store.ns_file(node, "mnt")) else "down"

    def pids(self, node: str) -> list[int]:
        """Every process of *node* (in its network or mount namespace)."""
        self.spec.check_node(node)
        return self._node_pids_finder(node)()

    def sshd_pid(self, node: str) -> int:
        return self._sshd_pid(node)

    def _link_is_cut(self, node: str, link: str) -> bool:
        return link in self.store.load().get("cuts", {}).get(node, [])

    def _is_relay(self, pid: int) -> bool:
        return is_relay(pid)

    def _ttys(self) -> dict[str, str]:
        return self.cable.ttys()

    def _serial_cut_sides(self) -> set[str]:
        return self.cable.cut_sides()

    # -- namespace files -------------------------------------------------------
    def _run(self, argv, check: bool = False, **kw) -> Result:
        return self.runner.run(argv, check=check, **kw)

    def _bound(self, path: Path) -> bool:
        try:
            return os.stat(path).st_dev != os.stat(path.parent).st_dev
        except OSError:
            return False

    def _unbind_ns(self, node: str) -> None:
        for kind in ("mnt", "uts"):
            f = self.store.ns_file(node, kind)
            while self._bound(f):
                if not self._run(("umount", str(f))).ok:
                    self._run(("umount", "-l", str(f)))
            try:
                f.unlink()
            except FileNotFoundError:
                pass

    def _lab_netns_names(self) -> list[str]:
        try:
            names = os.listdir("/run/netns")
        except FileNotFoundError:
            return []
        pat = re.compile(rf"^{self.name}-(sw|node\d+|client\d+)$")
        return sorted(n for n in names if pat.match(n))

    # -- processes -------------------------------------------------------------
    def _settle_node_commands(self, wait: float) -> None:
        """`hasync lab ...` commands that nodes started and that now run in the host's
        namespaces (fencing): let them finish (up to *wait* s), then kill them. Killing a
        node's daemon does not stop its fence, which would crash a node after the next
        test began."""
        marker = f"HASYNC_LAB_FROM_NODE={self.name}:".encode()
        deadline = time.monotonic() + wait
        while procs.pids_with_env(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        procs.kill_and_wait(lambda: procs.pids_with_env(marker))

    def _node_pids_finder(self, node: str):
        files = {"net": f"/run/netns/{self.name}-{node}", "mnt": str(self.store.ns_file(node, "mnt"))}

        def find() -> list[int]:
            return procs.pids_in(files)

        return find

    def _kill_node(self, node: str) -> None:
        left = procs.kill_and_wait(self._node_pids_finder(node))
        if left:
            raise LabError(f"{node}: processes survived SIGKILL: {left}")

    def _sshd_pid(self, node: str) -> int:
        pids = set(self._node_pids_finder(node)())
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)
                comm = fields[0].split("(", 1)[1]
                ppid = int(fields[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if comm == "sshd" and ppid not in pids:
                return pid
        return 0

    def _node_running(self, node: str) -> bool:
        return (
            os.path.exists(f"/run/netns/{self.name}-{node}")
            and self._bound(self.store.ns_file(node, "mnt"))
            and self._sshd_pid(node) > 0
        )

    def _kill_spawned(self) -> None:
        for p in self._spawned:
            if p.poll() is None:
                kill_group(p, 5)
            for s in (p.stdout, p.stderr, p.stdin):
                if s is not None:
                    s.close()
        self._spawned.clear()
