"""Bootstrap steps for the storage on the replicated device: LVM config and volumes, the
filesystem, the mount point."""

from __future__ import annotations

from hasync.bootstrap import edit, lvmconf
from hasync.bootstrap.plan import (
    Change,
    Facts,
    Wanted,
    drbd_key,
    group_parts,
    guard,
    mkdir_change,
    peer_is_active,
    step,
)

# --------------------------------------------------------------------------- LVM


def _use_lvm(w: Wanted) -> bool:
    return w.st.use_lvm


def lvm_conf_path(w: Wanted) -> str:
    return w.p("lvm_conf", "/etc/lvm/lvm.conf")


def _autoactivation(w: Wanted) -> str:
    return str(w.o("lvm_autoactivation", "setautoactivation"))


def _lvm_needs(w: Wanted) -> list[str]:
    keys = [f"file:{lvm_conf_path(w)}", f"path:{w.p('lvm_cache', '/etc/lvm/cache/.cache')}"]
    keys += [f"devlinks:{gw.disk}" for gw in group_parts(w) if gw.disk]
    mode, _ = lvmconf.access(w.cluster)
    if _autoactivation(w) == "auto_activation_volume_list" or mode == "tagging":
        keys += ["vgs", "pvs"]
    if _autoactivation(w) == "LVM_VGS_ACTIVATED_ON_BOOT":
        keys.append(f"file:{w.p('sysconfig_lvm', '/etc/sysconfig/lvm')}")
    return keys


def disk_names(w: Wanted, f: Facts) -> list[str]:
    """The backing disk by every name LVM may see it under that does not change with its
    content: as configured, its kernel name, its by-id and by-path links (udev)."""
    return lvmconf.stable_names(w.disk, f.get(f"devlinks:{w.disk}")) if w.disk else []


def _filters(w: Wanted, f: Facts, text: str) -> tuple[str, list[tuple[str, list[str]]]]:
    """lvm.conf with hasync's filter merged into the profile's key (and into the other
    key too when the host set it: a device must pass both); and the resulting filters.
    Every resource group's devices are in it: one lvm.conf serves the node's groups."""
    key = str(w.o("lvm_filter_key", "global_filter"))
    disks = [(gw.st.drbd_device, disk_names(gw, f), gw.st.use_drbd) for gw in group_parts(w) if gw.st.use_lvm]
    names = [n for _, ns, _ in disks for n in ns]
    out = []
    for k in (key, "filter" if key == "global_filter" else "global_filter"):
        raw = edit.lvm_get(text, "devices", k)
        if raw is None and k != key:
            continue
        existing = lvmconf.parse_list(raw)
        new = lvmconf.wanted_filter(existing, disks) if names else existing
        new = new or list(lvmconf.LVM_DEFAULT_FILTER)  # LVM refuses an empty list
        if new != existing:
            why = ("the DRBD device accepted, every stable name of the backing disk rejected (it carries "
                   "the same PV label); the host's own PVs stay visible") if w.st.use_drbd else "the disk is the PV: it stays visible"
            text = edit.lvm_set(text, "devices", k, lvmconf.render_list(new), why)
        out.append((k, new))
    return text, out


def _other_vgs(w: Wanted, f: Facts, filters: list[list[str]]) -> list[str]:
    """The host's VGs but the cluster's, leaving out any the filters hide: a VG listed for
    activation must be one LVM can see (a VG the filter hides would fail to activate)."""
    hidden = lvmconf.hidden_vgs(filters, f["pvs"] or [])
    ours = {gw.st.vg for gw in group_parts(w)}
    return sorted(r["vg_name"] for r in (f["vgs"] or []) if r["vg_name"] not in ours and r["vg_name"] not in hidden)


@step("lvm-config", when=_use_lvm, needs=_lvm_needs)
def plan_lvm_config(w: Wanted, f: Facts) -> list[Change]:
    """LVM sees the DRBD device, not its backing disk; no device cache; the VG is not
    activated at boot; what the chain's LVM-activate mode needs (system ID or volume_list)."""
    conf = lvm_conf_path(w)
    old = f[f"file:{conf}"]
    text, filters = _filters(w, f, old or "")
    text = edit.lvm_set(text, "devices", "write_cache_state", "0", "no stale device cache after a failover")
    out: list[Change] = []
    flts = [flt for _, flt in filters]
    if _autoactivation(w) == "auto_activation_volume_list":
        others = _other_vgs(w, f, flts)
        text = edit.lvm_set(text, "activation", "auto_activation_volume_list", lvmconf.render_list(others), f"every VG but the cluster's {w.st.vg} at boot")
    mode, res = lvmconf.access(w.cluster)
    source = w.st.lvm_system_id
    if mode == "system_id" and not source:
        return [Change("lvm-config", "refuse", "the chain's LVM-activate uses vg_access_mode=system_id, which needs lvm.conf's "
                                               "system_id_source: set [storage] lvm_system_id (e.g. \"uname\")", target=conf)]
    if source == "uname" and w.node.startswith("localhost"):
        return [Change("lvm-config", "refuse", f"LVM ignores a system ID from a uname starting with \"localhost\" ({w.node}): name the node otherwise", target=conf)]
    if source:
        text = edit.lvm_set(text, "global", "system_id_source", f'"{source}"', "[storage] lvm_system_id: a VG belongs to the node that made or took it (LVM-activate vg_access_mode=system_id)")
    if mode == "tagging":
        others = _other_vgs(w, f, flts)
        text = edit.lvm_set(text, "activation", "volume_list", lvmconf.render_list(others),
                            f"LVM-activate vg_access_mode=tagging: only these VGs activate outside the agent (never {w.st.vg} nor @{lvmconf.activation_tag(res)})")
    elif mode and mode not in lvmconf.SERVED_ACCESS_MODES:
        return [Change("lvm-config", "refuse", f"the chain's LVM-activate uses vg_access_mode={mode}, which needs a cluster lock manager "
                                               f"bootstrap does not set up; use {' or '.join(lvmconf.SERVED_ACCESS_MODES)}", target=conf)]
    if text != (old or ""):
        out.append(Change("lvm-config", "write", ", ".join(_settings_changed(old or "", text)), path=conf, data=text, old=old))
    if _autoactivation(w) == "LVM_VGS_ACTIVATED_ON_BOOT":
        sc = w.p("sysconfig_lvm", "/etc/sysconfig/lvm")
        sold = f[f"file:{sc}"]
        new = edit.shell_set(sold or "", "LVM_VGS_ACTIVATED_ON_BOOT", "hasync-none")
        if new != (sold or ""):
            out.append(Change("lvm-config", "write", "no VG named hasync-none: nothing is activated at boot", path=sc, data=new, old=sold))
    cache = w.p("lvm_cache", "/etc/lvm/cache/.cache")
    if f[f"path:{cache}"]["kind"] == "file":
        out.append(Change("lvm-config", "remove", "drop LVM's device cache (it may list the backing disks)", path=cache))
    return out


def _settings_changed(old: str, new: str) -> list[str]:
    keys = (("devices", "global_filter"), ("devices", "filter"), ("devices", "write_cache_state"), ("activation", "auto_activation_volume_list"),
            ("global", "system_id_source"), ("activation", "volume_list"))
    return [k for sec, k in keys if edit.lvm_get(old, sec, k) != edit.lvm_get(new, sec, k)]


def _devices_file(w: Wanted) -> str:
    return w.p("lvm_devices_file", "/etc/lvm/devices/system.devices")


def _devices_needs(w: Wanted) -> list[str]:
    return ["lvm_setting:devices/use_devicesfile", f"file:{_devices_file(w)}"] + [f"devlinks:{gw.disk}" for gw in group_parts(w) if gw.disk]


@step("lvm-devices", when=_use_lvm, needs=_devices_needs)
def plan_lvm_devices(w: Wanted, f: Facts) -> list[Change]:
    """The devices file (RHEL 9): the DRBD device listed, its backing disk not."""
    entries = lvmconf.parse_devices_file(f[f"file:{_devices_file(w)}"])
    if f["lvm_setting:devices/use_devicesfile"] != "1" or entries is None:
        return []  # no devices file in use: the filter (step lvm-config) decides
    out: list[Change] = []
    for gw in group_parts(w):  # every resource group's devices: one devices file per node
        if gw.st.use_lvm:
            out += _devices_changes(gw, f, entries)
    return out


def _devices_changes(w: Wanted, f: Facts, entries: list[dict[str, str]]) -> list[Change]:
    names = disk_names(w, f)
    out: list[Change] = []
    if w.st.use_drbd:
        for e in entries:
            if lvmconf.listed([e], names):
                dev = e.get("DEVNAME") or e.get("IDNAME", "")
                out.append(Change("lvm-devices", "run", "the backing disk carries the DRBD device's PV label: LVM must not use it", argv=("lvmdevices", "--deldev", dev)))
        if not lvmconf.listed(entries, [w.st.drbd_device]):
            out.append(Change("lvm-devices", "run", "with the devices file on, LVM uses only the devices listed there", argv=("lvmdevices", "--adddev", w.st.drbd_device)))
    elif names and not lvmconf.listed(entries, names):
        out.append(Change("lvm-devices", "run", "the disk is the PV (no DRBD): LVM must use it", argv=("lvmdevices", "--adddev", w.disk)))
    return out


def _pv_device(w: Wanted) -> str:
    """The device pvcreate writes: the DRBD device, or the raw disk without DRBD."""
    return w.st.drbd_device if w.st.use_drbd else w.disk


def _volumes_needs(w: Wanted) -> list[str]:
    own_id = ["lvm_systemid"] if w.st.lvm_system_id not in ("", "uname") else []
    return ["pvs", "vgs", "lvs", f"signatures:{_pv_device(w)}", *drbd_key(w), *own_id]


def _system_id(w: Wanted, f: Facts) -> str:
    """This node's LVM system ID: its name with "uname" (node names equal `uname -n`), else
    what `lvm systemid` says (known once lvm-config set the source; "" before)."""
    if w.st.lvm_system_id == "uname":
        return w.node
    return str(f.get("lvm_systemid") or "")


@step("lvm-volumes", when=lambda w: w.st.use_lvm and w.first, needs=_volumes_needs, per_group=True)
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
        g = guard("lvm-volumes", w, dev, sigs, "pvcreate")
        if g and g[0].action == "refuse":
            return g
        out += g + [Change("lvm-volumes", "run", "physical volume on the " + ("replicated device" if st.use_drbd else "disk (no DRBD)"), argv=("pvcreate", dev))]
    vg = next((r for r in vgs if r["vg_name"] == st.vg), None)
    if vg is None:
        argv = ("vgcreate", *(("--setautoactivation", "n") if autoact else ()), st.vg, dev)
        out.append(Change("lvm-volumes", "run", "the cluster VG" + (", not activated at boot" if autoact else ""), argv=argv))
    elif autoact and vg.get("vg_autoactivation", "") == "enabled":
        out.append(Change("lvm-volumes", "run", "the cluster VG must not be activated at boot", argv=("vgchange", "--setautoactivation", "n", st.vg)))
    system_id = _system_id(w, f)
    if vg is not None and st.lvm_system_id and not vg.get("vg_systemid") and system_id:
        # vgcreate records the system ID itself once system_id_source is set (lvm-config);
        # a VG made before that has none, and LVM-activate refuses such a VG in that mode
        out.append(Change("lvm-volumes", "run", "[storage] lvm_system_id: the VG belongs to this node until the chain moves it",
                          argv=("vgchange", "--systemid", system_id, st.vg)))
    lv = next((r for r in lvs if r["vg_name"] == st.vg and r["lv_name"] == st.lv), None)
    if lv is None:
        size = ("-l", st.lv_size) if "%" in st.lv_size else ("-L", st.lv_size)
        out.append(Change("lvm-volumes", "run", "the logical volume for the filesystem", argv=("lvcreate", "--wipesignatures", "n", "-n", st.lv, *size, st.vg)))
    elif lv.get("lv_active", "active") != "active":
        # a re-run after a reboot: not activated at boot (on purpose), needed for the next steps
        out.append(Change("lvm-volumes", "run", "activate the cluster VG here (the first node)", argv=("vgchange", "-ay", st.vg)))
    return out


# --------------------------------------------------------------------------- filesystem


@step("filesystem", when=lambda w: w.first, needs=lambda w: [f"signatures:{w.fs_device}", *drbd_key(w)], per_group=True)
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
    g = guard("filesystem", w, dev, sigs, f"mkfs.{fs}")
    if g and g[0].action == "refuse":
        return g
    # no -F/-f: the guard above made sure there is nothing to force over
    return g + [Change("filesystem", "run", f"{fs} labelled {w.fs_label}", argv=(f"mkfs.{fs}", "-q", "-L", w.fs_label, dev))]


def _mount_needs(w: Wanted) -> list[str]:
    return [f"path:{w.st.mount_point}", f"file:{w.p('fstab', '/etc/fstab')}"] + (["mounts", *drbd_key(w)] if w.first else [])


@step("mount", needs=_mount_needs, per_group=True)
def plan_mount(w: Wanted, f: Facts) -> list[Change]:
    """The mount point on both nodes, not in fstab; mounted on the first node for setup."""
    st = w.st
    out = mkdir_change("mount", f, st.mount_point, 0o755)
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
