"""The bootstrap plan: small pure steps that compare facts with the wanted state.

Each ``Step`` names the facts it needs (keys of hasync.bootstrap.facts) and, given the
wanted state and those facts (already parsed), returns the changes that would make the
node right -- and nothing when it already is. No I/O here: hasync.bootstrap.apply probes,
runs and writes, and probes again after every step that changed the node.

This module holds the changes, the wanted state, the step registry and the helpers the
steps share; the steps themselves live by area in steps_files (hasync's own files, keys
and units), steps_drbd, steps_storage (LVM, filesystem, mount) and steps_nfs.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from hasync import model
from hasync.bootstrap import nfsstate

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
    # a later resource group's part (group_parts): its id and position; cluster.storage
    # and cluster.nfs are then that group's [group.storage] and [group.nfs]
    group: str = ""
    group_index: int = 0

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
        # ext4 labels hold 16 bytes, xfs 12: "ha-" + the cluster name, cut to fit; a
        # later group's ends in "-" + its id (cut to 5) so the two filesystems differ
        if self.group_index == 0:
            return ("ha-" + self.cluster.cluster.name)[:12]
        tail = "-" + self.group[:5]
        return ("ha-" + self.cluster.cluster.name)[: 12 - len(tail)] + tail

    @property
    def vip_address(self) -> str:
        return nfsstate.vip_address(self.cluster)

    def p(self, key: str, default: str = "") -> str:
        return self.profile.paths.get(key, default)

    def o(self, key: str, default: Any = None) -> Any:
        return self.profile.options.get(key, default)

    def services(self, logical: str) -> tuple[str, ...]:
        return tuple(self.profile.services.get(logical, ()))

    @property
    def pacemaker(self) -> bool:
        """Pacemaker runs the chain (``[cluster] manager``): no hasync failover daemon here."""
        return self.cluster.cluster.manager == "pacemaker"

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
    per_group: bool = False  # run once per resource group's storage (group_parts)


# The order steps run in (each is defined in a steps_* module, by area): the host check
# first (steps_host), files and keys, then DRBD, LVM and the filesystem on it, NFS, and hasync's units last.
# A per_group step runs once for each group's storage, named "<step>:<group id>" when the
# cluster has [[group]] tables (group_parts); the others once per node, over every group.
STEP_ORDER = (
    "host", "config", "dirs", "auth-key", "ssh-key", "ssh-trust",
    "drbd-config", "drbd-metadata", "drbd-boot", "drbd-up", "drbd-primary", "drbd-sync",
    "lvm-config", "lvm-devices", "lvm-volumes", "filesystem", "mount",
    "nfs-state", "nfs-statd", "nfs-v4", "sm-notify", "nfs-boot-off", "nfs-boot-on", "exports", "nfslock-stop", "boot-noise",
    "units",
)
STEPS: list[Step] = []  # in STEP_ORDER once every steps_* module is imported (end of this module)


def step(name: str, *, when: Callable[[Wanted], bool] = lambda w: True, needs=lambda w: [], per_group: bool = False):
    if name not in STEP_ORDER:
        raise ValueError(f"step {name!r} is not in STEP_ORDER")

    def deco(fn):
        STEPS.append(Step(name, (fn.__doc__ or "").strip().splitlines()[0], when, needs, fn, per_group))
        STEPS.sort(key=lambda s: STEP_ORDER.index(s.name))
        return fn

    return deco


def mkdir_change(stepname: str, f: Facts, path: str, mode: int, why: str = "") -> list[Change]:
    if f[f"path:{path}"]["kind"] == "dir":
        return []
    return [Change(stepname, "mkdir", why, path=path, mode=mode)]


def write_change(stepname: str, f: Facts, path: str, data: str, mode: int | None = None, why: str = "", secret=False) -> list[Change]:
    old = f[f"file:{path}"]
    if old == data:
        return []
    return [Change(stepname, "write", why, path=path, data=data, old=old, mode=mode, secret=secret)]


def service_onoff(stepname: str, w: Wanted, f: Facts, services: tuple[str, ...], on: bool, why: str) -> list[Change]:
    out = []
    for s in services:
        state = f[f"enabled:{s}"]
        if on and state in ("disabled",):
            argv = ("systemctl", "enable", unit_name(s)) if w.profile.init == "systemd" else ("chkconfig", s, "on")
        elif not on and state in ("enabled", "enabled-runtime", "indirect", "alias"):
            argv = ("systemctl", "disable", unit_name(s)) if w.profile.init == "systemd" else ("chkconfig", s, "off")
        else:
            continue
        out.append(Change(stepname, "run", why, argv=argv))
    return out


def unit_name(s: str) -> str:
    return s if "." in s else s + ".service"


def _signature_list(sigs: list[dict]) -> str:
    return ", ".join(f"{s['type']} at {s['offset']}" + (f" label {s['label']!r}" if s["label"] else "") for s in sigs)


def guard(stepname: str, w: Wanted, device: str, sigs: list[dict] | None, what: str) -> list[Change]:
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


# --------------------------------------------------------------------------- shared by the DRBD, storage and NFS steps
def drbd_key(w: Wanted) -> list[str]:
    return [f"drbd_status:{w.st.drbd_resource}"] if w.st.use_drbd else []


def peer_is_active(w: Wanted, f: Facts) -> bool:
    """The cluster already runs on the peer (its DRBD side is Primary): the first node's
    data steps (promote, PV/VG/LV, mkfs, mount, state copy) must leave it alone."""
    if not w.st.use_drbd:
        return False
    peer = f[f"drbd_status:{w.st.drbd_resource}"].get("peer") or {}
    return peer.get("role") == "Primary"


# --------------------------------------------------------------------------- driver


def group_parts(w: Wanted) -> list[Wanted]:
    """The wanted state of each group's storage (model.Cluster.group_storage): *w* with
    cluster.storage and cluster.nfs the group's own, and ``first`` the group's: the node
    that creates its data is its preferred node (the first group's: *w*'s rule, which
    also knows --join). Without [[group]] tables: [w]."""
    if not w.cluster.groups:
        return [w]
    index = {g.id: i for i, g in enumerate(w.cluster.groups)}
    out = []
    for gs in w.cluster.group_storage():
        i = index[gs.group.id]
        first = w.first if i == 0 else w.node == (gs.group.preferred_node or w.cluster.nodes[0].name)
        out.append(replace(w, cluster=replace(w.cluster, storage=gs.storage, nfs=gs.nfs), group=gs.group.id,
                           group_index=i, first=first))
    return out


def nfs_parts(w: Wanted) -> list[Wanted]:
    """The groups that serve NFS (exports or an NFS address of their own)."""
    return [gw for gw in group_parts(w) if gw.cluster.nfs.exports or gw.cluster.nfs.vip]


def _bound(s: Step, gw: Wanted) -> Step:
    """Step *s* for group part *gw*, named "<step>:<group>" (its changes too)."""
    name = f"{s.name}:{gw.group}"

    def plan(_w: Wanted, f: Facts) -> list[Change]:
        return [replace(c, step=name) for c in s.plan(gw, f)]

    return Step(name, f"{s.doc} (group {gw.group})", lambda _w: s.when(gw), lambda _w: s.needs(gw), plan)


def notes(w: Wanted) -> list[str]:
    """What the plan does differently for this cluster, said before it (and in --json)."""
    if not w.pacemaker:
        return []
    return ["the chain is Pacemaker's ([cluster] manager = \"pacemaker\"): bootstrap lays down the storage and the NFS "
            "state, never installs or enables hasync-failover (turns it off where it is on), and gives DRBD "
            "Pacemaker's fence-peer handlers (crm-fence-peer) instead of hasync's; Pacemaker starts the chain "
            "(docs/pacemaker.md)"]


def active_steps(w: Wanted) -> list[Step]:
    out: list[Step] = []
    for s in STEPS:
        if s.per_group and w.cluster.groups:
            out += [b for b in (_bound(s, gw) for gw in group_parts(w)) if b.when(w)]
        elif s.when(w):
            out.append(s)
    return out


def plan_all(w: Wanted, facts: Facts) -> list[Change]:
    """The whole plan from one set of facts (dry run; golden files)."""
    out: list[Change] = []
    for s in active_steps(w):
        out += s.plan(w, facts)
    return out


# the steps register themselves (hasync.bootstrap.plan must be complete first)
from hasync.bootstrap import steps_drbd, steps_files, steps_host, steps_nfs, steps_storage  # noqa: E402,F401
