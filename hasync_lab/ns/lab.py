"""The namespace lab: build, enter, break, heal and remove it (the Python API).

    from hasync_lab.ns import Lab
    lab = Lab("t1"); lab.up(); lab.exec("node1", ["hostname"]).stdout  # "node1\\n"

See docs/lab.md for the layout and the addresses. The class is built up in layers:
nodes.py (a lab's nodes, entering them), build.py (the building steps), faults.py
(breaking and healing); this module brings a lab up, takes it down and reports on it.
"""

from __future__ import annotations

import os
import signal

from hasync_lab.ns import procs
from hasync_lab.ns.faults import LabFaults
from hasync_lab.ns.nodes import LabError
from hasync_lab.ns.serial import relays_of
from hasync_lab.ns.spec import (
    PREFIX,
    SERIAL_DEVICE,
    VIP,
    LabSpec,
)
from hasync_lab.ns.store import mounts_under

__all__ = ["Lab", "LabError"]


class Lab(LabFaults):
    """One namespace lab on this host, by name (default: $HASYNC_LAB or "hl")."""

    # -- life cycle ------------------------------------------------------------
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
            procs.kill_and_wait(lambda: relays_of(self.store.serial_dir))  # also one never recorded
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

    # -- status ----------------------------------------------------------------
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
