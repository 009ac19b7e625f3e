"""Building a namespace lab: the root mount, the switch and cables, disks, the serial
relay, keys and node files, and booting a node from nothing but its disks.

Every step is idempotent (`up` finishes a half-built lab, `heal` boots a crashed node
again); the commands come from spec.py and net.py, run through the lab's runner.
"""

from __future__ import annotations

import os
import secrets
import sys
import uuid
from pathlib import Path

import hasync
from hasync.effects.files import atomic_write
from hasync_lab.ns import net, procs
from hasync_lab.ns.nodefiles import LabKeys, dir_mode, hasync_wrapper, node_files, split_overlay
from hasync_lab.ns.nodes import LabNodes
from hasync_lab.ns.serial import is_relay, relays_of
from hasync_lab.ns.spec import (
    BASE_DEVS,
    DISK_DEVICE,
    MOUNT_POINT,
    OVERLAYS,
    DevNode,
    LabSpec,
    node_setup_script,
    rebind_serial_script,
)
from hasync_lab.ns.store import all_lab_names, is_mountpoint, mounts_under

# Where the product package lives (a checkout or site-packages): nodes run this hasync.
PRODUCT_SRC = str(Path(hasync.__file__).resolve().parents[1])


class LabBuild(LabNodes):
    """The steps `up`, `heal` and `wipe` are made of."""

    # -- root ------------------------------------------------------------------
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

    # -- network ---------------------------------------------------------------
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

    def _addresses(self, spec: LabSpec, node: str) -> list[str]:
        r = self._run(net.show_addrs_json(spec, node))
        return net.parse_addresses(r.stdout) if r.ok else []

    # -- disks -----------------------------------------------------------------
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

    # -- serial ----------------------------------------------------------------
    def _ensure_serial(self, spec: LabSpec, rebind: bool) -> None:
        st = self.store.load()
        if is_relay(st.get("relay_pid", 0)):
            return
        # a relay an interrupted up started and never recorded: ended, its nodes rebound
        orphans = relays_of(self.cable.dir)
        procs.kill_and_wait(lambda: relays_of(self.cable.dir))
        cut = set(st.get("crashed", []))
        cut |= {n for n, links in st.get("cuts", {}).items() if "serial" in links}
        st["relay_pid"] = self.cable.start(*spec.serial_nodes, cut=cut)
        self.store.save(st)
        if rebind or orphans:  # running nodes still point at the old relay's ptys
            ttys = self.cable.ttys()
            for node in spec.serial_nodes:
                if self._node_running(node):
                    self.exec(node, ["sh", "-ec", rebind_serial_script(ttys[node])], check=True)

    # -- ssh keys and per-node files -------------------------------------------
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

    # -- booting a node --------------------------------------------------------
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
        self._new_boot_id(node)

    def _new_boot_id(self, node: str) -> None:
        """A fresh id for every boot (as /proc/sys/kernel/random/boot_id): whoever
        supervises a node tells a reboot from none by it. The mount namespace's inode
        cannot tell: the kernel hands a freed namespace inode number to the next one."""
        atomic_write(self.store.node_dir(node) / "boot-id", uuid.uuid4().hex + "\n")

    def boot_id(self, node: str) -> str | None:
        """The id of *node*'s current boot (None before its first)."""
        try:
            return (self.store.node_dir(node) / "boot-id").read_text().strip() or None
        except OSError:
            return None
