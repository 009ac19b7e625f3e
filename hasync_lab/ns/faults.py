"""Breaking and healing a namespace lab: power loss, fencing, pulled cables, heal, and the
reset and wipe between tests."""

from __future__ import annotations

import signal

from hasync_lab.ns import net, procs
from hasync_lab.ns.build import LabBuild
from hasync_lab.ns.nodes import LabError
from hasync_lab.ns.spec import (
    MOUNT_POINT,
)


class LabFaults(LabBuild):
    """Faults one command away (what `hasync lab crash|fence|cut|heal` run)."""

    # -- faults ----------------------------------------------------------------
    def crash(self, node: str) -> None:
        """Power loss: processes stopped, cables dead, then everything killed; disks kept."""
        spec = self.spec
        spec.check_node(node)
        with self.store.lock():
            # recorded first: a crash interrupted halfway (its processes stopped, not yet
            # killed) is a crashed node that heal/up boot again, not a frozen one
            st = self.store.load()
            st["crashed"] = sorted(set(st.get("crashed", [])) | {node})
            self.store.save(st)
            find = self._node_pids_finder(node)
            procs.signal_all(find(), signal.SIGSTOP)
            for link in spec.links_of(node):
                self._set_link(spec, node, link, up=False)
            left = procs.kill_and_wait(find)
            self._unbind_ns(node)
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

    def power_on(self, node: str) -> None:
        """A crashed node boots again with its cables as they are (a cut cable stays
        cut): a fenced machine whose power comes back. heal() also plugs cables in."""
        spec = self.spec
        spec.check_node(node)
        with self.store.lock():
            st = self.store.load()
            if node not in st.get("crashed", []):
                return
            self._ensure_serial(spec, rebind=True)
            st = self.store.load()
            st["crashed"] = sorted(set(st.get("crashed", [])) - {node})
            self.store.save(st)
            self._boot(spec, node)
            for n in spec.all_nodes:
                if n not in st["crashed"]:
                    self._run(("ip", "-n", spec.netns(n), "neigh", "flush", "all"))

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

    # -- between tests ---------------------------------------------------------
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
