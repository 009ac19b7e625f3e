"""Bootstrap steps for the storage on the replicated device: LVM config and volumes, the
filesystem, the mount point."""

from __future__ import annotations

from hasync.bootstrap import edit
from hasync.bootstrap.plan import (
    Change,
    Facts,
    Wanted,
    drbd_key,
    guard,
    mkdir_change,
    peer_is_active,
    step,
)

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
    return ["pvs", "vgs", "lvs", f"signatures:{_pv_device(w)}", *drbd_key(w)]


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
    lv = next((r for r in lvs if r["vg_name"] == st.vg and r["lv_name"] == st.lv), None)
    if lv is None:
        size = ("-l", st.lv_size) if "%" in st.lv_size else ("-L", st.lv_size)
        out.append(Change("lvm-volumes", "run", "the logical volume for the filesystem", argv=("lvcreate", "--wipesignatures", "n", "-n", st.lv, *size, st.vg)))
    elif lv.get("lv_active", "active") != "active":
        # a re-run after a reboot: not activated at boot (on purpose), needed for the next steps
        out.append(Change("lvm-volumes", "run", "activate the cluster VG here (the first node)", argv=("vgchange", "-ay", st.vg)))
    return out


# --------------------------------------------------------------------------- filesystem


@step("filesystem", when=lambda w: w.first, needs=lambda w: [f"signatures:{w.fs_device}", *drbd_key(w)])
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


@step("mount", needs=_mount_needs)
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
