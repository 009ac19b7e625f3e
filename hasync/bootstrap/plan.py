"""The bootstrap plan: small pure steps that compare facts with the wanted state.

Each ``Step`` names the facts it needs (keys of hasync.bootstrap.facts) and, given the
wanted state and those facts (already parsed), returns the changes that would make the
node right -- and nothing when it already is. No I/O here: hasync.bootstrap.apply probes,
runs and writes, and probes again after every step that changed the node.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from hasync import model
from hasync.bootstrap import edit
from hasync.bootstrap.facts import peer_ssh

# --------------------------------------------------------------------------- changes


@dataclass(frozen=True)
class Change:
    """One thing to do. ``action`` is one of:

    run       run ``argv``
    write     write ``data`` to ``path`` (``mode`` if given); ``old`` is the current text
              (None: the file does not exist); ``secret``: never print the content
    generate  write a fresh random secret to ``path`` with ``mode``
    chmod     set ``mode`` on ``path``
    mkdir     create directory ``path`` (and parents) with ``mode``
    link      make ``path`` a symlink to ``target``; a directory there is moved aside
              to ``path + ".hasync-orig"``
    remove    delete file ``path`` (kept in the run's backup)
    wait-sync follow the DRBD initial sync of resource ``target`` to the end (progress bar)
    refuse    stop: ``why`` says what is unsafe and how to allow it
    """

    step: str
    action: str
    why: str = ""
    argv: tuple[str, ...] = ()
    path: str = ""
    data: str | None = None
    old: str | None = None
    mode: int | None = None
    target: str = ""
    secret: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        defaults = Change("", "")
        out = {k: v for k, v in d.items() if k in ("step", "action") or v != getattr(defaults, k)}
        if "argv" in out:
            out["argv"] = list(out["argv"])
        if "mode" in out:
            out["mode"] = oct(out["mode"])
        return out

    def summary(self) -> str:
        if self.action == "run":
            return "run " + shlex.join(self.argv)
        if self.action == "write":
            return f"{'create' if self.old is None else 'update'} {self.path}" + (
                f" (mode {self.mode:o})" if self.mode is not None else ""
            )
        if self.action == "generate":
            return f"generate secret {self.path} (mode {self.mode:o})"
        if self.action == "chmod":
            return f"chmod {self.mode:o} {self.path}"
        if self.action == "mkdir":
            return f"mkdir {self.path}" + (f" (mode {self.mode:o})" if self.mode is not None else "")
        if self.action == "link":
            return f"symlink {self.path} -> {self.target}"
        if self.action == "remove":
            return f"remove {self.path}"
        if self.action == "wait-sync":
            return f"wait for the DRBD sync of {self.target}"
        if self.action == "refuse":
            return f"REFUSED: {self.why}"
        return f"{self.action} {self.path}"


# --------------------------------------------------------------------------- wanted state


@dataclass(frozen=True)
class Wanted:
    """What this node should look like: the cluster config, the distro profile, who we are."""

    cluster: model.Cluster
    profile: model.Profile
    node: str
    first: bool  # the node that creates the data (primary --force, pvcreate, mkfs)
    allow_data_loss: frozenset[str] = frozenset()
    join: str = ""  # the first node's address when joining (peer facts come over ssh)
    authkey: str | None = None  # the cluster's key fetched from the first node (join)
    config_text: str | None = None  # the cluster config fetched from the first node (join)
    config_path: str = "/etc/hasync/cluster.toml"
    units: Mapping[str, str] = field(default_factory=dict)  # file name -> text (templates)
    fence_peer_script: str = ""

    # -- derived ----------------------------------------------------------------------
    @property
    def st(self) -> model.Storage:
        return self.cluster.storage

    @property
    def peer(self) -> model.Node:
        return self.cluster.peer_of(self.node)

    @property
    def disk(self) -> str:
        return self.st.disks.get(self.node, "")

    @property
    def fs_device(self) -> str:
        if self.st.use_lvm:
            return f"/dev/{self.st.vg}/{self.st.lv}"
        if self.st.use_drbd:
            return self.st.drbd_device
        return self.disk

    @property
    def fs_label(self) -> str:
        # ext4 labels hold 16 bytes, xfs 12: "ha-" + the cluster name, cut to fit.
        return ("ha-" + self.cluster.cluster.name)[:12]

    @property
    def vip_address(self) -> str:
        v = self.cluster.nfs.vip
        return str(ipaddress.ip_interface(v).ip) if v else ""

    def p(self, key: str, default: str = "") -> str:
        return self.profile.paths.get(key, default)

    def o(self, key: str, default: Any = None) -> Any:
        return self.profile.options.get(key, default)

    def services(self, logical: str) -> tuple[str, ...]:
        return tuple(self.profile.services.get(logical, ()))

    @property
    def drbd_res_path(self) -> str:
        return f"{self.p('drbd_conf_dir', '/etc/drbd.d')}/{self.st.drbd_resource}.res"

    @property
    def ssh_pub(self) -> str:
        return self.cluster.sync.ssh_key + ".pub"


Facts = Mapping[str, Any]


@dataclass(frozen=True)
class Step:
    name: str
    doc: str
    when: Callable[[Wanted], bool]
    needs: Callable[[Wanted], list[str]]
    plan: Callable[[Wanted, Facts], list[Change]]


STEPS: list[Step] = []


def step(name: str, *, when: Callable[[Wanted], bool] = lambda w: True, needs=lambda w: []):
    def deco(fn):
        STEPS.append(Step(name, (fn.__doc__ or "").strip().splitlines()[0], when, needs, fn))
        return fn

    return deco


def _mkdir(stepname: str, f: Facts, path: str, mode: int, why: str = "") -> list[Change]:
    if f[f"path:{path}"]["kind"] == "dir":
        return []
    return [Change(stepname, "mkdir", why, path=path, mode=mode)]


def _write(stepname: str, f: Facts, path: str, data: str, mode: int | None = None, why: str = "", secret=False) -> list[Change]:
    old = f[f"file:{path}"]
    if old == data:
        return []
    return [Change(stepname, "write", why, path=path, data=data, old=old, mode=mode, secret=secret)]


def _service_onoff(stepname: str, w: Wanted, f: Facts, services: tuple[str, ...], on: bool, why: str) -> list[Change]:
    out = []
    for s in services:
        state = f[f"enabled:{s}"]
        if on and state in ("disabled",):
            argv = ("systemctl", "enable", _unit(s)) if w.profile.init == "systemd" else ("chkconfig", s, "on")
        elif not on and state in ("enabled", "enabled-runtime", "indirect", "alias"):
            argv = ("systemctl", "disable", _unit(s)) if w.profile.init == "systemd" else ("chkconfig", s, "off")
        else:
            continue
        out.append(Change(stepname, "run", why, argv=argv))
    return out


def _unit(s: str) -> str:
    return s if "." in s else s + ".service"


def _signature_list(sigs: list[dict]) -> str:
    return ", ".join(f"{s['type']} at {s['offset']}" + (f" label {s['label']!r}" if s["label"] else "") for s in sigs)


def _guard(stepname: str, w: Wanted, device: str, sigs: list[dict] | None, what: str) -> list[Change]:
    """Refuse to destroy a device that carries a signature unless --allow-data-loss names it."""
    if sigs and device not in w.allow_data_loss:
        return [
            Change(
                stepname,
                "refuse",
                f"{device} carries {_signature_list(sigs)}; {what} would destroy it. "
                f"If that data is not needed, re-run with --allow-data-loss {device}",
                target=device,
            )
        ]
    if sigs:
        return [Change(stepname, "run", f"--allow-data-loss {device}: erase {_signature_list(sigs)}", argv=("wipefs", "--all", device))]
    return []


# --------------------------------------------------------------------------- hasync's own files


@step("config", when=lambda w: w.config_text is not None, needs=lambda w: [f"file:{w.config_path}"])
def plan_config(w: Wanted, f: Facts) -> list[Change]:
    """Joining: the cluster config fetched from the first node."""
    return _write("config", f, w.config_path, w.config_text or "", 0o644, f"from {w.join}")


@step("dirs", needs=lambda w: ["path:/etc/hasync", f"path:{_dirname(w.cluster.sync.ssh_key)}"])
def plan_dirs(w: Wanted, f: Facts) -> list[Change]:
    """/etc/hasync and its ssh directory (0700)."""
    return _mkdir("dirs", f, "/etc/hasync", 0o755) + _mkdir(
        "dirs", f, _dirname(w.cluster.sync.ssh_key), 0o700, "hasync's own ssh key and known_hosts"
    )


def _dirname(p: str) -> str:
    return p.rsplit("/", 1)[0] or "/"


@step("auth-key", needs=lambda w: [f"path:{w.cluster.heartbeat.auth_key}", f"file:{w.cluster.heartbeat.auth_key}"])
def plan_auth_key(w: Wanted, f: Facts) -> list[Change]:
    """The heartbeat HMAC key, mode 0600, identical on both nodes."""
    key = w.cluster.heartbeat.auth_key
    st = f[f"path:{key}"]
    if w.authkey is not None:  # joining: the first node's key wins
        out = _write("auth-key", f, key, w.authkey, 0o600, "the cluster's key, from the first node", secret=True)
        if out:
            return out
    elif st["kind"] == "missing" and not w.first:
        # a fresh key here would not match the first node's: heartbeats would be dropped
        return [Change("auth-key", "refuse", f"{key} is missing on the second node: run `hasync bootstrap --join {w.peer.name}` (it fetches the cluster's key)", target=key)]
    elif st["kind"] == "missing":
        return [Change("auth-key", "generate", "HMAC key for heartbeat packets", path=key, mode=0o600, secret=True)]
    if st["kind"] == "file" and st["mode"] & 0o077:
        return [Change("auth-key", "chmod", f"was {st['mode']:o}: readable by others", path=key, mode=0o600)]
    return []


@step("ssh-key", needs=lambda w: [f"path:{w.cluster.sync.ssh_key}"])
def plan_ssh_key(w: Wanted, f: Facts) -> list[Change]:
    """hasync's own ssh key (unison, status and failover commands between the nodes)."""
    key = w.cluster.sync.ssh_key
    if f[f"path:{key}"]["kind"] != "missing":
        return []
    return [
        Change(
            "ssh-key",
            "run",
            "hasync's ssh identity",
            argv=("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"hasync@{w.node}", "-f", key),
        )
    ]


AUTHORIZED_KEYS = "/root/.ssh/authorized_keys"  # profile paths.authorized_keys overrides


def _append_remote(peer: str, path: str, line: str, mode: str) -> tuple[str, ...]:
    """Add *line* to *path* on the first node unless it is there (one ssh, a POSIX sh line)."""
    q = shlex.quote
    script = (
        f"mkdir -p {q(_dirname(path))} && touch {q(path)} && chmod {mode} {q(path)} && "
        f"{{ grep -qxF {q(line)} {q(path)} || echo {q(line)} >> {q(path)}; }}"
    )
    return peer_ssh(peer, "sh", "-c", script)[:-1] + (script,)


def _ssh_trust_needs(w: Wanted) -> list[str]:
    kh = w.cluster.sync.known_hosts
    ak = w.p("authorized_keys", AUTHORIZED_KEYS)
    return [
        f"file:{ak}", f"file:{kh}", f"file:{w.ssh_pub}", f"hostkeys:{w.cluster.node(w.node).address}",
        f"peer_file:{w.ssh_pub}", f"peer_file:{ak}", f"peer_file:{kh}", f"hostkeys:{w.join}",
    ]


@step("ssh-trust", when=lambda w: bool(w.join), needs=_ssh_trust_needs)
def plan_ssh_trust(w: Wanted, f: Facts) -> list[Change]:
    """Each node's hasync key authorized on the other; host keys in hasync's known_hosts."""
    out: list[Change] = []
    kh = w.cluster.sync.known_hosts
    ak = w.p("authorized_keys", AUTHORIZED_KEYS)
    peer_pub = (f[f"peer_file:{w.ssh_pub}"] or "").strip()
    my_pub = (f[f"file:{w.ssh_pub}"] or "").strip()
    if peer_pub:
        text = f[f"file:{ak}"] or ""
        new = edit.with_line(text, peer_pub)
        if new != text:
            out.append(Change("ssh-trust", "write", "the first node's hasync key may log in here", path=ak, data=new, old=f[f"file:{ak}"], mode=0o600))
    else:
        out.append(Change("ssh-trust", "refuse", f"{w.join} has no {w.ssh_pub}: run `hasync bootstrap` there first", target=w.join))
    if my_pub and my_pub not in (f[f"peer_file:{ak}"] or "").splitlines():
        out.append(Change("ssh-trust", "run", "this node's hasync key may log in on the first node", argv=_append_remote(w.join, ak, my_pub, "600")))
    elif not my_pub:
        out.append(Change("ssh-trust", "run", "this node's hasync key may log in on the first node (key made by step ssh-key)", argv=_append_remote(w.join, ak, "<this node's hasync public key>", "600")))
    # known_hosts: the peer's host keys under the names hasync uses for it, and ours on it
    text = f[f"file:{kh}"] or ""
    new = text
    for line in f[f"hostkeys:{w.join}"]:
        keytype_key = " ".join(line.split()[1:3])
        for name in (w.peer.address, w.peer.name):
            new = edit.with_line(new, f"{name} {keytype_key}")
    if new != text:
        out.append(Change("ssh-trust", "write", "the first node's host key", path=kh, data=new, old=f[f"file:{kh}"], mode=0o644))
    mine = f[f"hostkeys:{w.cluster.node(w.node).address}"]
    my_host = " ".join(mine[0].split()[1:3]) if mine else ""
    if my_host:
        peer_kh = (f[f"peer_file:{kh}"] or "").splitlines()
        me = w.cluster.node(w.node)
        for name in (me.address, me.name):
            line = f"{name} {my_host}"
            if line not in peer_kh:
                out.append(Change("ssh-trust", "run", "this node's host key on the first node", argv=_append_remote(w.join, kh, line, "644")))
    return out


# --------------------------------------------------------------------------- DRBD


def render_drbd_res(w: Wanted) -> str:
    """The resource file, identical on both nodes (DRBD 8.4 or 9 syntax per profile)."""
    st = w.st
    version = str(w.o("drbd_version", "9"))
    fencing = {"required": "resource-and-stonith", "optional": "resource-only"}.get(w.cluster.fencing.mode)
    lines = [
        f"# {w.drbd_res_path}: written by `hasync bootstrap` from {w.config_path}.",
        "# Identical on both nodes; edit cluster.toml and re-run bootstrap instead.",
        f"resource {st.drbd_resource} {{",
    ]
    if version == "0.7":
        lines += [f"  protocol {st.drbd_protocol};", "  disk { on-io-error detach; }", f"  syncer {{ rate {st.resync_rate}; }}",
                  "  # DRBD 0.7 has no split-brain policies or fence-peer handler: upgrade to 8.4+."]
    else:
        net = [f"    protocol {st.drbd_protocol};"]
        if fencing and version != "8.4":
            net.append(f"    fencing {fencing};")
        net += [
            "    after-sb-0pri discard-zero-changes;  # neither primary: keep the side that wrote",
            "    after-sb-1pri discard-secondary;     # one primary: it wins",
            "    after-sb-2pri disconnect;            # both primary: a human decides",
        ]
        lines += ["  net {", *net, "  }"]
        disk = ["    c-plan-ahead 0;  # a fixed resync rate: [storage] resync_rate", f"    resync-rate {st.resync_rate};"]
        if fencing and version == "8.4":
            disk.append(f"    fencing {fencing};")
        lines += ["  disk {", *disk, "  }"]
        handlers = ['    split-brain "/usr/lib/drbd/notify-split-brain.sh root";']
        if fencing:
            handlers = [
                '    fence-peer "/usr/local/lib/hasync/drbd-fence-peer";',
                '    after-resync-target "/usr/local/lib/hasync/drbd-fence-peer --unfence";',
            ] + handlers
        lines += ["  handlers {", *handlers, "  }"]
    for n in w.cluster.nodes:
        minor = "".join(c for c in st.drbd_device if c.isdigit()) or "0"
        addr = st.replication.get(n.name, n.address)
        lines += [
            f"  on {n.name} {{",
            f"    device {st.drbd_device} minor {minor};" if version != "0.7" else f"    device {st.drbd_device};",
            f"    disk {st.disks.get(n.name, '')};",
            f"    address {addr}:{st.drbd_port};",
            "    meta-disk internal;",
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


FENCE_PEER = "/usr/local/lib/hasync/drbd-fence-peer"


def _drbd_key(w: Wanted) -> list[str]:
    return [f"drbd_status:{w.st.drbd_resource}"] if w.st.use_drbd else []


def peer_is_active(w: Wanted, f: Facts) -> bool:
    """The cluster already runs on the peer (its DRBD side is Primary): the first node's
    data steps (promote, PV/VG/LV, mkfs, mount, state copy) must leave it alone."""
    if not w.st.use_drbd:
        return False
    peer = f[f"drbd_status:{w.st.drbd_resource}"].get("peer") or {}
    return peer.get("role") == "Primary"


def _use_drbd(w: Wanted) -> bool:
    return w.st.use_drbd


@step("drbd-config", when=_use_drbd, needs=lambda w: [f"file:{w.drbd_res_path}", f"file:{FENCE_PEER}"])
def plan_drbd_config(w: Wanted, f: Facts) -> list[Change]:
    """The DRBD resource file (protocol, fencing handler, split-brain policies)."""
    out = _write("drbd-config", f, w.drbd_res_path, render_drbd_res(w), 0o644)
    if w.cluster.fencing.mode != "off" and w.fence_peer_script:
        out += _write("drbd-config", f, FENCE_PEER, w.fence_peer_script, 0o755, "DRBD's fence-peer handler runs the cluster's fencing command")
    return out


@step("drbd-metadata", when=_use_drbd, needs=lambda w: [f"signatures:{w.disk}", f"drbd_status:{w.st.drbd_resource}"])
def plan_drbd_md(w: Wanted, f: Facts) -> list[Change]:
    """DRBD metadata on the backing disk (create-md), never over existing data."""
    if f[f"drbd_status:{w.st.drbd_resource}"]["up"]:
        return []
    if str(w.o("drbd_version", "9")) == "0.7":
        return []  # DRBD 0.7 writes its metadata itself on the first `drbdadm up`
    sigs = f[f"signatures:{w.disk}"]
    if sigs is None:
        return [Change("drbd-metadata", "refuse", f"backing disk {w.disk} of {w.node} does not exist", target=w.disk)]
    if any(s["type"] == "drbd" for s in sigs):
        return []
    guard = _guard("drbd-metadata", w, w.disk, sigs, "drbdadm create-md")
    if guard and guard[0].action == "refuse":
        return guard
    return guard + [Change("drbd-metadata", "run", "internal metadata at the end of the disk", argv=("drbdadm", "create-md", w.st.drbd_resource))]


@step("drbd-boot", when=_use_drbd, needs=lambda w: [f"enabled:{s}" for s in w.services("drbd")])
def plan_drbd_boot(w: Wanted, f: Facts) -> list[Change]:
    """drbd at boot as the profile says (Secondary at boot keeps the peer in sync)."""
    on = bool(w.o("drbd_at_boot", True))
    return _service_onoff("drbd-boot", w, f, w.services("drbd"), on, "drbd at boot per profile" if on else "drbd not at boot per profile")


@step("drbd-up", when=_use_drbd, needs=lambda w: [f"drbd_status:{w.st.drbd_resource}"])
def plan_drbd_up(w: Wanted, f: Facts) -> list[Change]:
    """The resource attached and connecting."""
    if f[f"drbd_status:{w.st.drbd_resource}"]["up"]:
        return []
    return [Change("drbd-up", "run", "attach the disk and connect to the peer", argv=("drbdadm", "up", w.st.drbd_resource))]


def _primary_needs(w: Wanted) -> list[str]:
    r = w.st.drbd_resource
    # DRBD 0.7 has no generation identifiers to read (no get-gi)
    return [f"drbd_status:{r}"] + ([f"drbd_gi:{r}"] if _drbd_version(w) != "0.7" else [])


def _drbd_version(w: Wanted) -> str:
    return str(w.o("drbd_version", "9"))


# where the local disk has good-enough data to be forced Primary at all
_FORCEABLE = ("Inconsistent", "Outdated", "Consistent", "")  # "": not up yet (dry run)


def _not_first_sync(w: Wanted, s: dict, gi: dict | None) -> str:
    """'' when this is the very first sync (brand-new metadata here, and the peer, if it
    is there at all, holds no data either), else why forcing Primary could lose data."""
    peer = s.get("peer") or {}
    name, r = w.peer.name, w.st.drbd_resource
    if gi is None:
        return f"DRBD {_drbd_version(w)} keeps no generation identifiers hasync can read"
    if not gi["readable"]:
        if not s.get("up"):
            return ""  # no metadata yet: drbd-metadata creates it in this run (re-decided once up)
        return f"cannot read the generation identifiers of {r} (`drbdadm get-gi {r}`: {gi['error']})"
    if not gi["fresh"]:
        here = f"this node's disk is {s['disk']}" if s.get("up") else f"{r} is down here"
        there = (f"{name}'s disk is {peer.get('peer_disk')}" if peer.get("connection") == "Connected"
                 else f"{name} is not connected" + (f" ({peer['connection']})" if peer.get("connection") else ""))
        return (
            f"{here} and its metadata shows replicated data (current data generation {gi['current']}); "
            f"{there}: bootstrap cannot tell which node holds the newer data"
        )
    if peer.get("connection") == "Connected" and peer.get("peer_disk") not in ("Inconsistent", "DUnknown", "", None):
        return f"{name}'s disk is {peer['peer_disk']}: it holds data of its own, this node's metadata is brand new"
    return ""


@step("drbd-primary", when=lambda w: w.st.use_drbd and w.first, needs=_primary_needs)
def plan_drbd_primary(w: Wanted, f: Facts) -> list[Change]:
    """First node only: Primary; --force only on the very first sync (brand-new metadata)."""
    s = f[f"drbd_status:{w.st.drbd_resource}"]
    r = w.st.drbd_resource
    if s.get("up") and s["role"] == "Primary":
        return []
    force = ("drbdadm", "--", "--do-what-I-say", "primary", r) if _drbd_version(w) == "0.7" else ("drbdadm", "primary", "--force", r)
    peer = s.get("peer") or {}
    if peer.get("role") == "Primary" and s.get("disk") == "UpToDate":
        return []  # a running cluster, active on the peer: nothing to set up here
    if s.get("disk") == "UpToDate":
        return [Change("drbd-primary", "run", "to create the volume group and filesystem", argv=("drbdadm", "primary", r))]
    if peer.get("peer_disk") == "UpToDate" or peer.get("role") == "Primary":
        return [Change("drbd-primary", "refuse", f"the peer {peer.get('name')} holds the good data (peer-disk {peer.get('peer_disk')}, role {peer.get('role')}); bootstrap this node with --join instead", target=r)]
    if s.get("up") and s["disk"] not in _FORCEABLE:
        return [Change("drbd-primary", "refuse", f"local disk is {s['disk']}: not forcing Primary", target=r)]
    why_not = _not_first_sync(w, s, f.get(f"drbd_gi:{r}"))
    if not why_not:
        return [Change("drbd-primary", "run", "brand-new metadata (the very first sync): this node's data becomes the reference; the initial full sync starts", argv=force)]
    dev = w.st.drbd_device
    if dev in w.allow_data_loss:
        return [Change("drbd-primary", "run", f"--allow-data-loss {dev}: {why_not}; this node's copy becomes the reference", argv=force)]
    return [Change("drbd-primary", "refuse", _stale_refusal(w, why_not), target=dev)]


def _stale_refusal(w: Wanted, why_not: str) -> str:
    r, dev, peer = w.st.drbd_resource, w.st.drbd_device, w.peer.name
    if _drbd_version(w) == "0.7":
        return (
            f"not forcing {r} Primary: {why_not}, so bootstrap cannot tell the very first sync from a "
            f"node with old data. Compare `cat /proc/drbd` on both nodes (the generation counts) and "
            f"start the node with the newer data first. On the first bootstrap of the cluster (both "
            f"disks new), or if {peer}'s data is lost for good: re-run with --allow-data-loss {dev}"
        )
    return (
        f"not forcing {r} Primary: {why_not}. `drbdadm primary --force` would make this node's copy "
        f"the reference, and {peer}'s newer writes would be discarded when it reconnects. "
        f"Check on both nodes: `drbdadm status {r}` and `drbdadm show-gi {r}` (the node whose current "
        f"UUID appears among the other's bitmap or history UUIDs has the older data); start the node with the newer "
        f"data first and let DRBD resync the other. Only if {peer}'s data is lost for good: "
        f"re-run with --allow-data-loss {dev}"
    )


@step("drbd-sync", when=_use_drbd, needs=lambda w: [f"drbd_status:{w.st.drbd_resource}"])
def plan_drbd_sync(w: Wanted, f: Facts) -> list[Change]:
    """Wait for a running initial sync to finish (progress bar and rate)."""
    s = f[f"drbd_status:{w.st.drbd_resource}"]
    peer = s.get("peer") or {}
    if s.get("up") and peer.get("replication", "").startswith("Sync"):
        return [Change("drbd-sync", "wait-sync", f"{peer['replication']}: {peer.get('done') or 0:.1f}% done", target=w.st.drbd_resource, path=w.disk)]
    return []


# --------------------------------------------------------------------------- LVM


def _use_lvm(w: Wanted) -> bool:
    return w.st.use_lvm


def _lvm_needs(w: Wanted) -> list[str]:
    keys = [f"file:{w.p('lvm_conf', '/etc/lvm/lvm.conf')}", f"path:{w.p('lvm_cache', '/etc/lvm/cache/.cache')}"]
    mode = w.o("lvm_autoactivation", "setautoactivation")
    if mode == "auto_activation_volume_list":
        keys.append("vgs")
    if mode == "LVM_VGS_ACTIVATED_ON_BOOT":
        keys.append(f"file:{w.p('sysconfig_lvm', '/etc/sysconfig/lvm')}")
    return keys


@step("lvm-config", when=_use_lvm, needs=_lvm_needs)
def plan_lvm_config(w: Wanted, f: Facts) -> list[Change]:
    """LVM sees /dev/drbd* only, keeps no device cache, and does not activate the VG at boot."""
    conf = w.p("lvm_conf", "/etc/lvm/lvm.conf")
    old = f[f"file:{conf}"]
    text = old or ""
    key = w.o("lvm_filter_key", "global_filter")
    text = edit.lvm_set(text, "devices", key, edit.lvm_filter(w.st.drbd_device.rstrip("0123456789")), "only DRBD devices: the backing disks carry the same PV label")
    text = edit.lvm_set(text, "devices", "write_cache_state", "0", "no stale device cache after a failover")
    mode = w.o("lvm_autoactivation", "setautoactivation")
    out: list[Change] = []
    if mode == "auto_activation_volume_list":
        others = sorted(r["vg_name"] for r in (f["vgs"] or []) if r["vg_name"] != w.st.vg)
        text = edit.lvm_set(text, "activation", "auto_activation_volume_list", edit.lvm_list(others), f"every VG but the cluster's {w.st.vg} at boot")
    if text != (old or ""):
        out.append(Change("lvm-config", "write", "filter, write_cache_state" + (", auto_activation_volume_list" if mode == "auto_activation_volume_list" else ""), path=conf, data=text, old=old))
    if mode == "LVM_VGS_ACTIVATED_ON_BOOT":
        sc = w.p("sysconfig_lvm", "/etc/sysconfig/lvm")
        sold = f[f"file:{sc}"]
        new = edit.shell_set(sold or "", "LVM_VGS_ACTIVATED_ON_BOOT", "hasync-none")
        if new != (sold or ""):
            out.append(Change("lvm-config", "write", "no VG named hasync-none: nothing is activated at boot", path=sc, data=new, old=sold))
    cache = w.p("lvm_cache", "/etc/lvm/cache/.cache")
    if f[f"path:{cache}"]["kind"] == "file":
        out.append(Change("lvm-config", "remove", "drop LVM's device cache (it may list the backing disks)", path=cache))
    return out


def _pv_device(w: Wanted) -> str:
    """The device pvcreate writes: the DRBD device, or the raw disk without DRBD."""
    return w.st.drbd_device if w.st.use_drbd else w.disk


def _volumes_needs(w: Wanted) -> list[str]:
    return ["pvs", "vgs", "lvs", f"signatures:{_pv_device(w)}", *_drbd_key(w)]


@step("lvm-volumes", when=lambda w: w.st.use_lvm and w.first, needs=_volumes_needs)
def plan_lvm_volumes(w: Wanted, f: Facts) -> list[Change]:
    """First node only: PV on the DRBD device, the cluster VG, the LV."""
    if peer_is_active(w, f):
        return []
    st = w.st
    dev = _pv_device(w)
    out: list[Change] = []
    pvs = f["pvs"] or []
    vgs = f["vgs"] or []
    lvs = f["lvs"] or []
    autoact = w.o("lvm_autoactivation", "setautoactivation") == "setautoactivation"
    if not any(r["pv_name"] == dev for r in pvs):
        # the guard reads the device pvcreate writes (a filesystem on the raw disk, too)
        sigs = [s for s in (f[f"signatures:{dev}"] or []) if s["type"] != "LVM2_member"]
        g = _guard("lvm-volumes", w, dev, sigs, "pvcreate")
        if g and g[0].action == "refuse":
            return g
        out += g + [Change("lvm-volumes", "run", "physical volume on the " + ("replicated device" if st.use_drbd else "disk (no DRBD)"), argv=("pvcreate", dev))]
    vg = next((r for r in vgs if r["vg_name"] == st.vg), None)
    if vg is None:
        argv = ("vgcreate", *(("--setautoactivation", "n") if autoact else ()), st.vg, dev)
        out.append(Change("lvm-volumes", "run", "the cluster VG" + (", not activated at boot" if autoact else ""), argv=argv))
    elif autoact and vg.get("vg_autoactivation", "") == "enabled":
        out.append(Change("lvm-volumes", "run", "the cluster VG must not be activated at boot", argv=("vgchange", "--setautoactivation", "n", st.vg)))
    lv = next((r for r in lvs if r["vg_name"] == st.vg and r["lv_name"] == st.lv), None)
    if lv is None:
        size = ("-l", st.lv_size) if "%" in st.lv_size else ("-L", st.lv_size)
        out.append(Change("lvm-volumes", "run", "the logical volume for the filesystem", argv=("lvcreate", "--wipesignatures", "n", "-n", st.lv, *size, st.vg)))
    elif lv.get("lv_active", "active") != "active":
        # a re-run after a reboot: not activated at boot (on purpose), needed for the next steps
        out.append(Change("lvm-volumes", "run", "activate the cluster VG here (the first node)", argv=("vgchange", "-ay", st.vg)))
    return out


# --------------------------------------------------------------------------- filesystem


@step("filesystem", when=lambda w: w.first, needs=lambda w: [f"signatures:{w.fs_device}", *_drbd_key(w)])
def plan_filesystem(w: Wanted, f: Facts) -> list[Change]:
    """First node only: mkfs on the cluster device, never over existing data."""
    if peer_is_active(w, f):
        return []
    dev = w.fs_device
    sigs = f[f"signatures:{dev}"]
    fs = w.st.filesystem
    if sigs and any(s["type"] == fs and s["label"] == w.fs_label for s in sigs):
        return []
    if sigs is None and not w.st.use_drbd and not w.st.use_lvm:
        return [Change("filesystem", "refuse", f"disk {dev} of {w.node} does not exist", target=dev)]
    g = _guard("filesystem", w, dev, sigs, f"mkfs.{fs}")
    if g and g[0].action == "refuse":
        return g
    # no -F/-f: the guard above made sure there is nothing to force over
    return g + [Change("filesystem", "run", f"{fs} labelled {w.fs_label}", argv=(f"mkfs.{fs}", "-q", "-L", w.fs_label, dev))]


def _mount_needs(w: Wanted) -> list[str]:
    return [f"path:{w.st.mount_point}", f"file:{w.p('fstab', '/etc/fstab')}"] + (["mounts", *_drbd_key(w)] if w.first else [])


@step("mount", needs=_mount_needs)
def plan_mount(w: Wanted, f: Facts) -> list[Change]:
    """The mount point on both nodes, not in fstab; mounted on the first node for setup."""
    st = w.st
    out = _mkdir("mount", f, st.mount_point, 0o755)
    fstab = w.p("fstab", "/etc/fstab")
    old = f[f"file:{fstab}"]
    if old is not None:
        new = edit.fstab_without(old, (w.fs_device, w.disk, st.drbd_device), st.mount_point)
        if new != old:
            out.append(Change("mount", "write", "the cluster mounts the filesystem, not the boot", path=fstab, data=new, old=old))
    if w.first and not peer_is_active(w, f) and not any(m["mount_point"] == st.mount_point for m in f["mounts"]):
        opts = ("-o", st.mount_options) if st.mount_options else ()
        out.append(Change("mount", "run", "mounted here (the first node runs the services first)", argv=("mount", "-t", st.filesystem, *opts, w.fs_device, st.mount_point)))
    return out


# --------------------------------------------------------------------------- NFS


def _nfs_state_needs(w: Wanted) -> list[str]:
    nfs_state = w.p("nfs_state", "/var/lib/nfs")
    return [f"path:{nfs_state}", f"path:{w.cluster.nfs.state_dir}"] + (_drbd_key(w) if w.first else [])


@step("nfs-state", when=lambda w: bool(w.cluster.nfs.state_dir), needs=_nfs_state_needs)
def plan_nfs_state(w: Wanted, f: Facts) -> list[Change]:
    """/var/lib/nfs on the replicated filesystem (symlink, or bind mount by the chain)."""
    nfs_state = w.p("nfs_state", "/var/lib/nfs")
    sd = w.cluster.nfs.state_dir
    out: list[Change] = []
    here = f[f"path:{nfs_state}"]
    if w.first and not peer_is_active(w, f) and f[f"path:{sd}"]["kind"] == "missing":
        tmp = sd + ".hasync-tmp"
        src = nfs_state if here["kind"] == "dir" else None
        if src:
            out += [
                Change("nfs-state", "run", "a copy interrupted earlier is redone", argv=("rm", "-rf", tmp)),
                Change("nfs-state", "run", "the NFS state moves onto the replicated disk", argv=("cp", "-a", src, tmp)),
                Change("nfs-state", "run", "in place at once", argv=("mv", "-T", tmp, sd)),
            ]
        else:
            out.append(Change("nfs-state", "mkdir", "the NFS state on the replicated disk", path=sd, mode=0o755))
    if w.o("nfs_state_link", "symlink") == "symlink":
        if not (here["kind"] == "symlink" and here["target"] == sd):
            out.append(Change("nfs-state", "link", f"{nfs_state} was a {here['kind']}" + (f" -> {here['target']}" if here["target"] else ""), path=nfs_state, target=sd))
    elif here["kind"] != "dir":
        out.append(Change("nfs-state", "mkdir", f"the bind-mount target (the chain mounts {sd} here)", path=nfs_state, mode=0o755))
    return out


@step("sm-notify", when=lambda w: bool(w.cluster.nfs.vip), needs=lambda w: [f"file:{w.p('sm_notify_conf', '/etc/nfs.conf')}"])
def plan_sm_notify(w: Wanted, f: Facts) -> list[Change]:
    """sm-notify tells clients of the reboot from the cluster address (-v VIP)."""
    path = w.p("sm_notify_conf", "/etc/nfs.conf")
    old = f[f"file:{path}"]
    if w.o("sm_notify_style", "nfs.conf") == "nfsboot-options":
        if old is None:
            return [Change("sm-notify", "refuse", f"{path} is missing: install nfs-utils (the nfsboot script) first", target=path)]
        new = edit.shell_set(old, "OPTIONS", f" -q -v {w.vip_address}")
    else:
        # nfs.conf(5)/sm-notify(8): [sm-notify] outgoing-addr is -v; lift-grace=n keeps the
        # grace period for clients reclaiming locks after a failover; [statd] name is the
        # name statd monitors under.
        new = edit.ini_set(old or "", "sm-notify", "outgoing-addr", w.vip_address)
        new = edit.ini_set(new, "sm-notify", "lift-grace", "n")
        new = edit.ini_set(new, "statd", "name", w.vip_address)
    if new == old:
        return []
    return [Change("sm-notify", "write", f"bind sm-notify to {w.vip_address}", path=path, data=new, old=old)]


def _nfs_services(w: Wanted) -> tuple[str, ...]:
    return w.services("nfsboot") + w.services("nfsserver") + w.services("nfslock")


@step("nfs-boot-off", needs=lambda w: [f"enabled:{s}" for s in _nfs_services(w)])
def plan_nfs_boot_off(w: Wanted, f: Facts) -> list[Change]:
    """NFS services are started by the cluster, never at boot."""
    return _service_onoff("nfs-boot-off", w, f, _nfs_services(w), False, "the cluster starts it on the active node")


def render_exports(w: Wanted) -> list[str]:
    lines = []
    for i, e in enumerate(w.cluster.nfs.exports):
        fsid = e.fsid if e.fsid is not None else i + 1
        lines.append(edit.export_line(e.path, e.clients, e.options, fsid, w.st.mount_point))
    return lines


def _export_dirs(w: Wanted) -> list[str]:
    """Exported directories on the replicated filesystem: made once, on the first node."""
    mp = w.st.mount_point.rstrip("/") + "/"
    return [e.path for e in w.cluster.nfs.exports if e.path.startswith(mp)] if w.first else []


def _exports_needs(w: Wanted) -> list[str]:
    dirs = _export_dirs(w)
    return [f"file:{w.p('exports', '/etc/exports')}"] + [f"path:{d}" for d in dirs] + (_drbd_key(w) if dirs else [])


@step("exports", when=lambda w: bool(w.cluster.nfs.exports), needs=_exports_needs)
def plan_exports(w: Wanted, f: Facts) -> list[Change]:
    """/etc/exports with a fixed fsid= (file handles survive failover) and mountpoint;
    the exported directories made on the replicated filesystem (first node)."""
    out: list[Change] = []
    dirs = _export_dirs(w)
    if dirs and not peer_is_active(w, f):
        for d in dirs:
            out += _mkdir("exports", f, d, 0o755, "exported directory on the replicated filesystem")
    path = w.p("exports", "/etc/exports")
    old = f[f"file:{path}"]
    new = edit.managed_block(old or "", render_exports(w))
    if new != old:
        out.append(Change("exports", "write", "fsid= and mountpoint= on every export", path=path, data=new, old=old))
    return out


@step("nfslock-stop", when=lambda w: bool(w.o("nfslock_stop_fix", False)), needs=lambda w: [f"file:{w.p('nfslock_script', '/etc/init.d/nfslock')}"])
def plan_nfslock(w: Wanted, f: Facts) -> list[Change]:
    """SLES9: nfslock stop must succeed (killproc of the kernel lockd returns non-zero)."""
    path = w.p("nfslock_script", "/etc/init.d/nfslock")
    old = f[f"file:{path}"]
    if old is None:
        return []
    new = edit.nfslock_stop_fixed(old)
    if new == old:
        return []
    return [Change("nfslock-stop", "write", "swap killproc and echo so the stop action returns 0", path=path, data=new, old=old)]


@step("boot-noise", when=lambda w: bool(w.o("hotplug_off", False)), needs=lambda w: [f"enabled:{s}" for s in w.services("hotplug")])
def plan_boot_noise(w: Wanted, f: Facts) -> list[Change]:
    """Hotplug and automatic probing off (noisy on the passive node)."""
    return _service_onoff("boot-noise", w, f, w.services("hotplug"), False, "probing at boot interferes with the cluster's disks")


# --------------------------------------------------------------------------- hasync units


def _unit_files(w: Wanted) -> dict[str, str]:
    """installed path -> text for the init system of the profile."""
    d = w.p("units", "/etc/systemd/system") if w.profile.init == "systemd" else w.p("init_d", "/etc/init.d")
    return {f"{d}/{name}": text for name, text in sorted(w.units.items())}


def _units_needs(w: Wanted) -> list[str]:
    return [f"file:{p}" for p in _unit_files(w)] + [f"enabled:{s}" for s in w.services("watch") + w.services("failover")]


@step("units", needs=_units_needs)
def plan_units(w: Wanted, f: Facts) -> list[Change]:
    """hasync-watch and hasync-failover installed and enabled at boot."""
    out: list[Change] = []
    mode = 0o644 if w.profile.init == "systemd" else 0o755
    for path, text in _unit_files(w).items():
        out += _write("units", f, path, text, mode)
    svcs = w.services("watch") + w.services("failover")
    for s in svcs:
        state = f[f"enabled:{s}"]
        if state in ("disabled", "not-found"):
            argv = ("systemctl", "enable", _unit(s)) if w.profile.init == "systemd" else ("chkconfig", s, "on")
            out.append(Change("units", "run", "started at boot", argv=argv))
    return out


# --------------------------------------------------------------------------- driver


def active_steps(w: Wanted) -> list[Step]:
    return [s for s in STEPS if s.when(w)]


def plan_all(w: Wanted, facts: Facts) -> list[Change]:
    """The whole plan from one set of facts (dry run; golden files)."""
    out: list[Change] = []
    for s in active_steps(w):
        out += s.plan(w, facts)
    return out
