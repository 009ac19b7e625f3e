"""Start and stop one failover daemon (hasync, heartbeat 3, keepalived) on a lab node.

Every daemon runs in a private mount namespace of its own, nested in the lab node's
namespaces (`unshare -m -u` after entering the node): a tmpfs /run, and for heartbeat
its own /etc/ha.d and /var/lib/heartbeat. So several pairs of the same tool can run side
by side on one node (the soak runs all settings of a tool at once) and nothing leaks into
the node or the host. An instance is stopped by killing every process of its mount
namespace, which also catches the resource scripts a daemon forked.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from hasync.failover import client  # the product's own client: the document `hasync status` reads
from hasync_lab.bench import failover_settings as bs
from hasync_lab.ns import procs

HEARTBEAT_BIN = "/usr/libexec/heartbeat/heartbeat"
HA_D = "/etc/ha.d"
HB_VARLIB_DIRS = ("api", "casual", "ccm", "ckpt", "cores/hacluster", "cores/nobody", "cores/root", "crm", "pengine")


@dataclass(frozen=True)
class Net:
    """Where one pair of daemons lives: the lab's addresses and this pair's own VIP/ports."""

    nodes: tuple[str, str]  # (the preferred/active node, its peer)
    public_if: str
    heartbeat_if: str
    public: dict[str, str]  # node -> public address
    heartbeat: dict[str, str]  # node -> heartbeat-link address
    vip: str
    prefix: int
    slot: int  # 0.. : picks UDP ports / VRRP router id so pairs don't collide


@dataclass
class Instance:
    tool: str
    node: str
    setting: bs.Setting
    dir: Path
    vip: str
    popen: subprocess.Popen
    mnt_ns: tuple[int, int] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def pids(self) -> list[int]:
        if self.mnt_ns is None:
            return [self.popen.pid] if self.popen.poll() is None else []
        return pids_in_mnt_ns(self.mnt_ns)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """Kill every process of the instance (SIGKILL: we measure crashes, not stops)."""
        deadline = time.monotonic() + timeout
        while True:
            pids = [p for p in self.pids() if procs.alive(p)]
            if self.popen.poll() is None:
                pids.append(self.popen.pid)
            if not pids or time.monotonic() > deadline:
                break
            for p in set(pids):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
        try:
            self.popen.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass

    def log_tail(self, n: int = 20) -> str:
        out = []
        for name in ("out.log", "log/ha-log"):
            p = self.dir / name
            if p.exists():
                lines = p.read_text(errors="replace").splitlines()[-n:]
                out.append(f"--- {p}\n" + "\n".join(lines))
        return "\n".join(out)


# --------------------------------------------------------------------------- processes


def pids_in_mnt_ns(ns: tuple[int, int]) -> list[int]:
    out = []
    me = os.getpid()
    for e in os.listdir("/proc"):
        if e.isdigit() and int(e) != me and procs.ns_inode(f"/proc/{e}/ns/mnt") == ns:
            out.append(int(e))
    return out


def _launch(lab, node: str, tool: str, setting: bs.Setting, d: Path, vip: str, body: str, daemon: list[str], timeout: float = 15.0) -> Instance:
    """Write the start script, spawn it in *node* in a fresh mount+UTS namespace, wait for it."""
    ready = d / "ready"
    if ready.exists():
        ready.unlink()
    script = "\n".join(
        [
            "set -e",
            f"hostname {shlex.quote(node)}",
            "mount -t tmpfs -o mode=0755 tmpfs /run",
            body,
            f"echo $$ > {shlex.quote(str(ready))}",
            "exec " + shlex.join(daemon),
            "",
        ]
    )
    (d / "start.sh").write_text(script)
    p = lab.spawn(
        node,
        ["unshare", "-m", "-u", "--propagation", "private", "/bin/bash", str(d / "start.sh")],
        log=str(d / "out.log"),
    )
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if p.poll() is not None or time.monotonic() > deadline:
            inst = Instance(tool, node, setting, d, vip, p)
            inst.stop()
            raise RuntimeError(f"{tool} on {node} did not start (exit {p.poll()}):\n{inst.log_tail()}")
        time.sleep(0.01)
    inst = Instance(tool, node, setting, d, vip, p, mnt_ns=procs.ns_inode(f"/proc/{p.pid}/ns/mnt"))
    return inst


def fresh_dir(base: Path, name: str) -> Path:
    d = base / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


# --------------------------------------------------------------------------- heartbeat 3


def start_heartbeat(lab, node: str, setting: bs.Setting, net: Net, base: Path) -> Instance:
    d = fresh_dir(base, f"heartbeat-{net.slot}-{node}")
    had = d / "ha.d"
    shutil.copytree(HA_D, had, symlinks=True)
    (d / "log").mkdir()
    owner = net.nodes[0]
    media = [
        (net.heartbeat_if, [net.heartbeat[n] for n in net.nodes]),
        (net.public_if, [net.public[n] for n in net.nodes]),
    ]
    (had / "ha.cf").write_text(
        bs.heartbeat_ha_cf(setting, nodes=net.nodes, media=media, logdir=str(d / "log"))
    )
    (had / "haresources").write_text(bs.heartbeat_haresources(owner, net.vip, net.prefix, net.public_if))
    keys = had / "authkeys"
    keys.write_text(bs.heartbeat_authkeys(f"bench-{net.slot}"))
    os.chmod(keys, 0o600)
    services = d / "services"
    services.write_text(Path("/etc/services").read_text() + f"ha-cluster\t{16940 + net.slot}/udp\n")
    q = shlex.quote
    body = "\n".join(
        [
            f"mount --bind {q(str(services))} /etc/services",
            "mkdir -p /run/heartbeat/ccm /run/heartbeat/crm /run/heartbeat/dopd /run/crm /run/resource-agents",
            "chown -R hacluster:haclient /run/heartbeat /run/crm",
            "mount -t tmpfs -o mode=0755 tmpfs /var/lib/heartbeat",
            *[f"mkdir -p /var/lib/heartbeat/{x}" for x in HB_VARLIB_DIRS],
            "chown -R hacluster:haclient /var/lib/heartbeat",
            f"mount --bind {q(str(had))} {HA_D}",
        ]
    )
    return _launch(lab, node, "heartbeat", setting, d, net.vip, body, [HEARTBEAT_BIN, "-f"])


# --------------------------------------------------------------------------- keepalived


def start_keepalived(lab, node: str, setting: bs.Setting, net: Net, base: Path) -> Instance:
    d = fresh_dir(base, f"keepalived-{net.slot}-{node}")
    prio = 200 if node == net.nodes[0] else 100
    peer = net.nodes[1] if node == net.nodes[0] else net.nodes[0]
    conf = d / "keepalived.conf"
    conf.write_text(
        bs.keepalived_conf(
            setting,
            node=node,
            priority=prio,
            iface=net.public_if,
            src=net.public[node],
            peers=[net.public[peer]],
            vrid=10 + net.slot,
            vip=net.vip,
            prefix=net.prefix,
            auth=f"b{net.slot}",
        )
    )
    daemon = [
        "keepalived", "-n", "-l", "-D", "-P", "-f", str(conf),
        "-p", "/run/keepalived.pid", "-r", "/run/vrrp.pid", "-c", "/run/checkers.pid",
    ]
    return _launch(lab, node, "keepalived", setting, d, net.vip, "", daemon)


# --------------------------------------------------------------------------- hasync


def hasync_toml(setting: bs.Setting, net: Net, *, key_file: str, state_dir: str) -> str:
    """A cluster.toml for one bench pair: IPaddr2 only, both UDP links, fencing off.

    No serial link: the soak runs several pairs at once and a serial line has one pair
    of ends. Fencing is off because neither peer tool fences here either.
    """
    a, b = net.nodes
    lines = [
        "# written by hasync lab bench failover",
        "[cluster]",
        f'name = "bench{net.slot}"',
        'profile = "lab"',
        f'preferred_node = "{a}"',
        "",
    ]
    for n in net.nodes:
        lines += ["[[node]]", f'name = "{n}"', f'address = "{net.public[n]}"', ""]
    lines += ["[heartbeat]"]
    if not setting.default:
        dt = setting.deadtime
        lines += [
            f'keepalive = "{bs.fmt_s(setting.keepalive)}"',
            f'warntime = "{bs.fmt_s(setting.warntime)}"',
            f'deadtime = "{bs.fmt_s(dt)}"',
            f'initdead = "{bs.fmt_s(max(dt * 2, 1.0))}"',
        ]
    lines += [
        "auto_failback = true",
        f'auth_key = "{key_file}"',
        "",
        "[[heartbeat.link]]",
        'name = "heartbeat"',
        'kind = "udp-unicast"',
        f'interface = "{net.heartbeat_if}"',
        f"port = {17100 + 2 * net.slot}",
        "addresses = { " + ", ".join(f'{n} = "{net.heartbeat[n]}"' for n in net.nodes) + " }",
        "",
        "[[heartbeat.link]]",
        'name = "public"',
        'kind = "udp-unicast"',
        f'interface = "{net.public_if}"',
        f"port = {17101 + 2 * net.slot}",
        "addresses = { " + ", ".join(f'{n} = "{net.public[n]}"' for n in net.nodes) + " }",
        "",
        "[sync]",
        f'state_dir = "{state_dir}/sync"',
        "",
        "[storage]",
        "use_drbd = false",
        "use_lvm = false",
        "",
        "[[resource]]",
        'id = "vip"',
        'type = "ocf"',
        'agent = "heartbeat:IPaddr2"',
        f'params = {{ ip = "{net.vip}", cidr_netmask = "{net.prefix}", nic = "{net.public_if}" }}',
        "",
        "[fencing]",
        'mode = "off"',
        "",
    ]
    return "\n".join(lines)


def start_hasync(lab, node: str, setting: bs.Setting, net: Net, base: Path, *, run_argv: list[str]) -> Instance:
    """`hasync -c CONF failover run` (run_argv: how the daemon is started, CONF substituted)."""
    d = fresh_dir(base, f"hasync-{net.slot}-{node}")
    key = d / "authkey"
    key.write_text(f"bench-key-{net.slot}-0123456789abcdef\n")
    os.chmod(key, 0o600)
    conf = d / "cluster.toml"
    conf.write_text(hasync_toml(setting, net, key_file=str(key), state_dir=str(d / "state")))
    body = "\n".join(
        [
            "mkdir -p /run/resource-agents",
            "mkdir -p /var/lib/hasync && mount -t tmpfs -o mode=0755 tmpfs /var/lib/hasync",
        ]
    )
    argv = [a.replace("{config}", str(conf)).replace("{node}", node) for a in run_argv]
    return _launch(lab, node, "hasync", setting, d, net.vip, body, argv)


def hasync_status(inst: Instance, timeout: float = 5.0) -> dict:
    """The status document of a bench hasync daemon, through its control socket in its
    private mount namespace (/proc/PID/root: the daemon's own /run)."""
    return client.status(Path(f"/proc/{inst.pid}/root/run/hasync/failover.sock"), timeout=timeout)


STARTERS = {"heartbeat": start_heartbeat, "keepalived": start_keepalived}
