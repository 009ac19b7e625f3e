"""The namespace lab: build, enter, break, heal and remove it (the Python API).

    from hasync_lab.ns import Lab
    lab = Lab("t1"); lab.up(); lab.exec("node1", ["hostname"]).stdout  # "node1\\n"

See docs/lab.md for the layout and the addresses.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import hasync
from hasync.effects.files import atomic_write
from hasync.effects.run import CommandError, ProcRunner, Result
from hasync_lab.ns import net, procs
from hasync_lab.ns.nodefiles import LabKeys, dir_mode, hasync_wrapper, node_files, split_overlay
from hasync_lab.ns.runner import ShRunner
from hasync_lab.ns.serial import SerialCable, is_relay
from hasync_lab.ns.spec import (
    BASE_DEVS,
    DISK_DEVICE,
    HEARTBEAT_IF,
    MOUNT_POINT,
    OVERLAYS,
    PREFIX,
    PUBLIC_IF,
    SERIAL_DEVICE,
    VIP,
    DevNode,
    LabSpec,
    node_setup_script,
    rebind_serial_script,
)
from hasync_lab.ns.store import Store, all_lab_names, default_lab_name, is_mountpoint, mounts_under

NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Where the product package lives (a checkout or site-packages): nodes run this hasync.
PRODUCT_SRC = str(Path(hasync.__file__).resolve().parents[1])


class LabError(RuntimeError):
    pass


class Lab:
    """One namespace lab on this host, by name (default: $HASYNC_LAB or "hl")."""

    def __init__(self, name: str | None = None, *, root: str | None = None, runner=None):
        self.store = Store(name or default_lab_name(), root)
        self.name = self.store.name
        self.runner = runner or ShRunner()  # building and breaking the lab
        self.node_runner = ProcRunner(inherit_env=False)  # exec() inside nodes: many calls, keep them lean
        self.cable = SerialCable(self.store.serial_dir)
        self._spawned: list[subprocess.Popen] = []

    # ---------------------------------------------------------------- description
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

    # ---------------------------------------------------------------- entering nodes
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

    # ---------------------------------------------------------------- life cycle
    def up(
        self, nodes: int = 2, clients: int = 1, disk_size: str = "256M", *, hold: bool = False
    ) -> LabSpec:
        """Build the lab (idempotent: what already runs is left alone).

        hold=True records this process as the lab's holder: `hasync lab down --all` then
        leaves the lab alone while this process lives (the pytest fixture does this).
        """
        spec = LabSpec(self.name, nodes, clients, disk_size)
        with self.store.lock():
            self._ensure_root()
            st = self.store.load()
            if st.get("spec") and LabSpec(**st["spec"]) != spec:
                raise LabError(
                    f"lab {self.name!r} exists with another shape ({st['spec']}): "
                    f"`hasync lab down --name {self.name}` first"
                )
            if not st:
                st = {"kind": "ns", "spec": spec.__dict__, "crashed": [], "cuts": {}, "loops": {}}
                self.store.save(st)
            if hold:
                st = self.store.load()
                st["holder_pid"] = os.getpid()
                self.store.save(st)
            for d in ("ns", "nodes", "disks", "serial", "ssh"):
                (self.store.dir / d).mkdir(parents=True, exist_ok=True)
            self._ensure_keys(spec)
            self._ensure_switch(spec)
            self._ensure_disks(spec)
            self._ensure_serial(spec, rebind=False)
            crashed = set(self.store.load().get("crashed", []))
            for node in spec.all_nodes:
                if node in crashed:
                    continue
                if not self._node_running(node):
                    self._boot(spec, node)
        return spec

    def down(self) -> None:
        """Remove everything the lab made (also after a crash or an interrupted up)."""
        self._settle_node_commands(wait=0.0)
        with self.store.lock():
            self._kill_spawned()
            st = self.store.load()
            relay = st.get("relay_pid", 0)
            if relay and self._is_relay(relay):
                procs.signal_all([relay], signal.SIGKILL)
            names = self._lab_netns_names()
            node_names = [n[len(self.name) + 1 :] for n in names if not n.endswith("-sw")]
            for d in (self.store.dir / "ns").glob("*.mnt") if (self.store.dir / "ns").is_dir() else []:
                node_names.append(d.stem)
            problems: list[str] = []  # keep going: remove as much as possible
            for node in sorted(set(node_names)):
                left = procs.kill_and_wait(self._node_pids_finder(node))
                if left:
                    problems.append(f"{node}: processes survived SIGKILL: {left}")
                self._unbind_ns(node)
            for ns in names:
                r = self._run(("ip", "netns", "delete", ns))
                if not r.ok:
                    problems.append(f"ip netns delete {ns}: {r.stderr.strip()}")
            for img in sorted(self.store.dir.glob("disks/*.img")):
                for dev in self._loops_of(img):
                    self._run(("losetup", "-d", dev))  # a busy device is freed when released
            for m in mounts_under(self.store.dir):
                self._run(("umount", "-l", m))
            r = self._run(("rm", "-rf", "--one-file-system", str(self.store.dir)))
            if not r.ok:
                problems.append(f"rm {self.store.dir}: {r.stderr.strip()}")
        with self.store.root_lock():
            try:
                os.unlink(self.store.root / f".{self.name}.lock")
            except FileNotFoundError:
                pass
            self._maybe_release_root()
        if problems:
            raise LabError(f"lab {self.name!r} down, but: " + "; ".join(problems))

    def holder(self) -> int:
        """PID of the live process holding the lab (see up(hold=True)), else 0."""
        pid = int(self.store.load().get("holder_pid", 0) or 0)
        return pid if procs.alive(pid) else 0

    # ---------------------------------------------------------------- faults
    def crash(self, node: str) -> None:
        """Power loss: processes stopped, cables dead, then everything killed; disks kept."""
        spec = self.spec
        spec.check_node(node)
        with self.store.lock():
            find = self._node_pids_finder(node)
            procs.signal_all(find(), signal.SIGSTOP)
            for link in spec.links_of(node):
                self._set_link(spec, node, link, up=False)
            left = procs.kill_and_wait(find)
            self._unbind_ns(node)
            st = self.store.load()
            st["crashed"] = sorted(set(st.get("crashed", [])) | {node})
            self.store.save(st)
            if left:
                raise LabError(f"{node}: processes survived SIGKILL: {left}")

    def is_down(self, node: str) -> bool:
        """True when *node* has no process, no mount namespace and no live cable."""
        spec = self.spec
        if self._node_pids_finder(node)() or self._bound(self.store.ns_file(node, "mnt")):
            return False
        for link in spec.links_of(node):
            if self.link_state(node, link) == "up":
                return False
        return True

    def fence(self, node: str) -> bool:
        self.crash(node)
        return self.is_down(node)

    def cut(self, node: str, link: str) -> None:
        """Pull one cable of *node*: "public", "heartbeat" or "serial".

        "replication" (the VM lab's name for the dedicated link) means "heartbeat"."""
        link = "heartbeat" if link == "replication" else link
        spec = self.spec
        spec.check_node(node)
        if link not in spec.links_of(node):
            raise LabError(f"{node} has no {link!r} link (links: {', '.join(spec.links_of(node))})")
        with self.store.lock():
            st = self.store.load()
            cuts = st.setdefault("cuts", {})
            cuts[node] = sorted(set(cuts.get(node, [])) | {link})
            self.store.save(st)
            self._set_link(spec, node, link, up=False)

    def heal(self, node: str | None = None) -> None:
        """Cables back in; a crashed node boots again (fresh /run, its disks kept)."""
        spec = self.spec
        targets = [spec.check_node(node)] if node else list(spec.all_nodes)
        with self.store.lock():
            self._ensure_serial(spec, rebind=True)
            st = self.store.load()
            crashed = set(st.get("crashed", []))
            cuts = st.setdefault("cuts", {})
            for n in targets:
                cuts.pop(n, None)
            st["crashed"] = sorted(crashed - set(targets))
            self.store.save(st)
            for n in targets:
                if n not in crashed:  # a crash interrupted after SIGSTOP
                    procs.signal_all(self._node_pids_finder(n)(), signal.SIGCONT)
                if n in crashed or not self._node_running(n):
                    self._boot(spec, n)
                for link in spec.links_of(n):
                    if not self._link_is_cut(n, link):
                        self._set_link(spec, n, link, up=True)
            # Peers remember failed ARP lookups for a while ("No route to host"): a node
            # that comes back would be unreachable for a second or so. Forget them.
            for n in spec.all_nodes:
                if n not in st["crashed"]:
                    self._run(("ip", "-n", spec.netns(n), "neigh", "flush", "all"))

    def reset(self, files: bool = False) -> None:
        """Make the lab as fresh as after `up` for the next test: heal everything, kill
        every process in the nodes but sshd, drop extra addresses, unmount /srv/ha, empty
        the serial line. Files written into the nodes' /etc, /var/lib, ... stay, unless
        *files*: then every node reboots with pristine layers (see wipe())."""
        self._kill_spawned()
        self._settle_node_commands(wait=10.0)
        if files:
            self.wipe()
        self.heal()
        spec = self.spec
        with self.store.lock():
            for node in spec.all_nodes:
                sshd = self._sshd_pid(node)
                find = self._node_pids_finder(node)
                procs.kill_and_wait(lambda f=find, s=sshd: [p for p in f() if p != s])
                self._configure_addresses(spec, node)
                if spec.is_cluster_node(node):
                    self.exec(node, ["sh", "-c", f"! mountpoint -q {MOUNT_POINT} || umount -l {MOUNT_POINT}"])
            self.cable.reset_line()

    def wipe(self, node: str | None = None) -> None:
        """Reboot *node* (default: all) with its copy-on-write layers (/etc, /var/lib,
        /var/log, /root, /srv, /usr/local) back to the lab's pristine files. Its disk
        (/dev/vdb) is kept."""
        spec = self.spec
        targets = [spec.check_node(node)] if node else list(spec.all_nodes)
        with self.store.lock():
            for n in targets:
                self._kill_node(n)
                self._unbind_ns(n)
                self._run(("rm", "-rf", "--one-file-system", str(self.store.node_dir(n))), check=True)
                self._boot(spec, n)
                st = self.store.load()
                st["crashed"] = [c for c in st.get("crashed", []) if c != n]
                self.store.save(st)
                if n in spec.serial_nodes and not self._link_is_cut(n, "serial"):
                    self.cable.set_cut(n, cut=False)

    # ---------------------------------------------------------------- status
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

    def link_state(self, node: str, link: str) -> str:
        """"up", "cut" or "down" (crashed / missing)."""
        spec = self.spec
        if link == "serial":
            if node not in spec.serial_nodes:
                return "none"
            if self._link_is_cut(node, "serial"):
                return "cut"
            cut = self._serial_cut_sides()
            return "down" if node in cut else "up"
        if self._link_is_cut(node, link):
            return "cut"
        r = self._run(net.show_port_json(spec, node, link))
        return "up" if r.ok and net.parse_admin_up(r.stdout) else "down"

    def status(self) -> dict:
        """Everything about the lab as plain data (what `hasync lab status --json` prints)."""
        st = self.store.load()
        if not st:
            return {"name": self.name, "kind": self.store.kind() or "none", "up": False}
        spec = LabSpec(**st["spec"])
        nodes = {}
        vip_on = []
        for node in spec.all_nodes:
            crashed = node in st.get("crashed", [])
            pids = self._node_pids_finder(node)()
            addrs = self._addresses(spec, node)
            if VIP in addrs:
                vip_on.append(node)
            nodes[node] = {
                "role": "cluster" if spec.is_cluster_node(node) else "client",
                "state": "crashed" if crashed else ("up" if self._node_running(node) else "down"),
                "netns": spec.netns(node),
                "public": spec.public_addr(node),
                "heartbeat": spec.heartbeat_addr(node) if spec.is_cluster_node(node) else "",
                "addresses": addrs,
                "links": {link: self.link_state(node, link) for link in spec.links_of(node)},
                "processes": len(pids),
                "process_list": [
                    {"pid": p, "cmd": " ".join(procs.cmdline(p))[:200]} for p in pids
                ],
                "sshd_pid": self._sshd_pid(node),
                "disk": st.get("loops", {}).get(node, ""),
            }
        relay = st.get("relay_pid", 0)
        return {
            "name": self.name,
            "kind": "ns",
            "up": True,
            "dir": str(self.store.dir),
            "spec": st["spec"],
            "vip": f"{VIP}/{PREFIX}",
            "vip_on": vip_on,
            "serial": {
                "relay_pid": relay if self._is_relay(relay) else 0,
                "ttys": self._ttys(),
                "device": SERIAL_DEVICE,
            },
            "nodes": nodes,
        }

    # ================================================================ internals
    def _run(self, argv, check: bool = False, **kw) -> Result:
        return self.runner.run(argv, check=check, **kw)

    # -- root and namespace files ----------------------------------------------------
    def _ensure_root(self) -> None:
        """The lab root is a private bind mount: `unshare --mount=FILE` needs that."""
        with self.store.root_lock():
            root = str(self.store.root)
            if not is_mountpoint(root):
                self._run(("mount", "--bind", root, root), check=True)
                self._run(("mount", "--make-private", root), check=True)
            self.store.dir.mkdir(parents=True, exist_ok=True)

    def _maybe_release_root(self) -> None:
        root = self.store.root
        if all_lab_names(str(root)):
            return
        for m in mounts_under(root):
            if m != str(root):
                return  # someone's namespace files are still there
        while is_mountpoint(root):
            if not self._run(("umount", "-l", str(root))).ok:  # we hold a lock file in it
                return

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

    # -- processes -----------------------------------------------------------------
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
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            for s in (p.stdout, p.stderr, p.stdin):
                if s is not None:
                    s.close()
        self._spawned.clear()

    # -- network -------------------------------------------------------------------
    def _ensure_switch(self, spec: LabSpec) -> None:
        sw = spec.switch_ns
        if not os.path.exists(f"/run/netns/{sw}"):
            self._run(net.netns_add(sw), check=True)
        self._run(net.lo_up(sw), check=True)
        for link, br in net.BRIDGES.items():
            if not self._run(net.show_link(sw, br)).ok:
                self._run(net.bridge_add(spec, link), check=True)
            self._run(net.bridge_up(spec, link), check=True)

    def _ensure_node_net(self, spec: LabSpec, node: str) -> None:
        ns = spec.netns(node)
        if not os.path.exists(f"/run/netns/{ns}"):
            self._run(net.netns_add(ns), check=True)
        self._run(net.lo_up(ns), check=True)
        for link, (ifname, _addr) in spec.interfaces(node).items():
            if not self._run(net.show_link(spec.switch_ns, spec.switch_port(node, link))).ok:
                self._run(("ip", "-n", ns, "link", "del", ifname))  # half of a broken pair
                for argv in net.cable_add(spec, node, link):
                    self._run(argv, check=True)
            self._run(net.node_if_up(spec, node, link), check=True)
        self._configure_addresses(spec, node)

    def _configure_addresses(self, spec: LabSpec, node: str) -> None:
        for argv in net.addresses(spec, node):
            self._run(argv, check=True)
        self._run(net.neigh_flush(spec.netns(node)))

    def _set_link(self, spec: LabSpec, node: str, link: str, up: bool) -> None:
        if link == "serial":
            self.cable.set_cut(node, cut=not up)
        else:
            self._run(net.cable_state(spec, node, link, up))

    def _link_is_cut(self, node: str, link: str) -> bool:
        return link in self.store.load().get("cuts", {}).get(node, [])

    def _addresses(self, spec: LabSpec, node: str) -> list[str]:
        r = self._run(net.show_addrs_json(spec, node))
        return net.parse_addresses(r.stdout) if r.ok else []

    # -- disks ---------------------------------------------------------------------
    def _loops_of(self, img: Path) -> list[str]:
        r = self._run(("losetup", "-j", str(img), "-O", "NAME", "-n"))
        return [line.strip() for line in r.stdout.splitlines() if line.strip()] if r.ok else []

    def _ensure_disks(self, spec: LabSpec) -> None:
        st = self.store.load()
        loops = st.setdefault("loops", {})
        for node in spec.cluster_nodes:
            img = self.store.disk_image(node)
            if not img.exists():
                tmp = img.with_suffix(".new")
                self._run(("truncate", "-s", spec.disk_size, str(tmp)), check=True)
                self._run(("mkfs.ext4", "-q", "-F", "-L", f"lab-{node}", str(tmp)), check=True)
                tmp.rename(img)
            found = self._loops_of(img)
            if found:
                loops[node] = found[0]
            else:
                loops[node] = self._run(("losetup", "--find", "--show", str(img)), check=True).stdout.strip()
        self.store.save(st)

    # -- serial --------------------------------------------------------------------
    def _is_relay(self, pid: int) -> bool:
        return is_relay(pid)

    def _ttys(self) -> dict[str, str]:
        return self.cable.ttys()

    def _ensure_serial(self, spec: LabSpec, rebind: bool) -> None:
        st = self.store.load()
        if is_relay(st.get("relay_pid", 0)):
            return
        cut = set(st.get("crashed", []))
        cut |= {n for n, links in st.get("cuts", {}).items() if "serial" in links}
        st["relay_pid"] = self.cable.start(*spec.serial_nodes, cut=cut)
        self.store.save(st)
        if rebind:  # running nodes still point at the old relay's ptys
            ttys = self.cable.ttys()
            for node in spec.serial_nodes:
                if self._node_running(node):
                    self.exec(node, ["sh", "-ec", rebind_serial_script(ttys[node])], check=True)

    def _serial_cut_sides(self) -> set[str]:
        return self.cable.cut_sides()

    # -- ssh keys and per-node files -----------------------------------------------
    def _ensure_keys(self, spec: LabSpec) -> None:
        d = self.store.ssh_dir
        d.mkdir(parents=True, exist_ok=True)
        names = ["id_ed25519"] + [f"host_{n}" for n in spec.all_nodes]
        for n in names:
            key = d / n
            if not key.exists():
                key.with_suffix(".pub").unlink(missing_ok=True)
                self._run(
                    ("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"hasync-lab-{self.name}-{n}",
                     "-f", str(key)),
                    check=True,
                )
        auth = d / "authkey"
        if not auth.exists():
            atomic_write(auth, f"{secrets.token_hex(32)}\n", mode=0o600)

    def _keys(self, spec: LabSpec) -> LabKeys:
        d = self.store.ssh_dir
        return LabKeys(
            client_key=(d / "id_ed25519").read_text(),
            client_pub=(d / "id_ed25519.pub").read_text(),
            host_keys={n: (d / f"host_{n}").read_text() for n in spec.all_nodes},
            host_pubs={n: (d / f"host_{n}.pub").read_text() for n in spec.all_nodes},
            authkey=(d / "authkey").read_text(),
        )

    def _write_node_files(self, spec: LabSpec, node: str, uppers: dict[str, Path]) -> None:
        """Lay the node's files into its upper layers (before they are mounted)."""
        files = node_files(
            spec, node, self._keys(spec), root=str(self.store.root),
            hasync_wrapper=hasync_wrapper(PRODUCT_SRC, sys.executable),
        )
        for path, (content, mode) in files.items():
            base, rel = split_overlay(path)
            target = uppers[base] / rel
            parts = Path(rel).parts[:-1]
            for i in range(len(parts)):
                d = uppers[base].joinpath(*parts[: i + 1])
                if not d.exists():
                    d.mkdir(mode=dir_mode(base + "/" + "/".join(parts[: i + 1])))
            atomic_write(target, content, mode=mode)
        (uppers["/srv"] / MOUNT_POINT[len("/srv/") :]).mkdir(parents=True, exist_ok=True)

    # -- booting a node ------------------------------------------------------------
    def _boot(self, spec: LabSpec, node: str, attempts: int = 2) -> None:
        """Start *node* from nothing but its disks: net, mount+UTS namespace, files, sshd.

        A failed boot is retried once from scratch (on a shared machine a stray signal
        can hit a step)."""
        for attempt in range(attempts):
            try:
                self._boot_once(spec, node)
                return
            except Exception:  # CommandError, LabError, OSError, sh's SignalException
                if attempt == attempts - 1:
                    raise

    def _boot_once(self, spec: LabSpec, node: str) -> None:
        self._kill_node(node)
        self._unbind_ns(node)
        self._ensure_node_net(spec, node)
        nd = self.store.node_dir(node)
        uppers: dict[str, Path] = {}
        overlays: dict[str, tuple[str, str]] = {}
        for target in OVERLAYS:
            slug = target.strip("/").replace("/", "-")
            upper, work = nd / f"{slug}.upper", nd / f"{slug}.work"
            if not upper.exists():
                upper.mkdir(parents=True)
                os.makedirs(target, exist_ok=True)  # e.g. a host without /srv
                lower = os.stat(target)  # the merged root takes the upper dir's mode
                os.chmod(upper, lower.st_mode & 0o7777)
                os.chown(upper, lower.st_uid, lower.st_gid)
            work.mkdir(parents=True, exist_ok=True)
            uppers[target] = upper
            overlays[target] = (str(upper), str(work))
        self._write_node_files(spec, node, uppers)
        devs = list(BASE_DEVS)
        loop = self.store.load().get("loops", {}).get(node)
        if loop:
            rdev = os.stat(loop).st_rdev
            for name in (os.path.basename(loop), os.path.basename(DISK_DEVICE)):
                devs.append(DevNode(name, "b", os.major(rdev), os.minor(rdev), 0o660))
        pty = self._ttys().get(node, "") if node in spec.serial_nodes else ""
        script = node_setup_script(
            node=node,
            lab_dir=str(self.store.dir),
            root=str(self.store.root),
            overlays=overlays,
            devs=tuple(devs),
            serial_pty=pty,
        )
        mnt, uts = self.store.ns_file(node, "mnt"), self.store.ns_file(node, "uts")
        mnt.parent.mkdir(parents=True, exist_ok=True)
        mnt.touch()
        uts.touch()
        # The script goes in on stdin: a short argv stays out of the way of anybody's
        # `pkill -f` on this machine.
        self._run(
            ("nsenter", f"--net=/run/netns/{spec.netns(node)}", "unshare", f"--mount={mnt}",
             f"--uts={uts}", "--propagation", "private", "--", "/bin/sh", "-es"),
            input=script,
            check=True,
        )
        self.exec(node, ["/usr/sbin/sshd"], check=True)
        for link in spec.links_of(node):
            if not self._link_is_cut(node, link):
                self._set_link(spec, node, link, up=True)
