"""doctor's LVM checks (issue 13 item 2): the backing disk hidden and the DRBD device seen
-- by the filter, or by RHEL 9's devices file when that is on -- and no VG that is active
now hidden by the configuration the next boot will use.

The probe reads LVM's own view: ``lvmconfig --typeconfig full`` (the distro's built-in
defaults included), the devices file, udev's names of the backing disk, and every PV and
active LV with a configuration that hides nothing (``OPEN``), so hasync.bootstrap.lvmconf
can tell what the configured filter would hide. Pure from there on.
"""

from __future__ import annotations

import shlex

from hasync import model
from hasync.bootstrap import facts as F
from hasync.bootstrap import lvmconf
from hasync.bootstrap.findings import Finding, probe_line

# LVM reading every device: what is there, whatever the host's filter says
OPEN = 'devices { filter = [ "a|.*|" ] global_filter = [ "a|.*|" ] use_devicesfile = 0 }'
DEVICES_FILE = "/etc/lvm/devices/system.devices"
FIX = "hasync bootstrap --yes (it merges hasync's filter into lvm.conf and fixes the devices file)"


def probe_lines(cluster: model.Cluster, profile: model.Profile, node: str) -> list[str]:
    if not cluster.storage.use_lvm:
        return []
    q = shlex.quote
    disk = cluster.storage.disks.get(node, "")
    devices = profile.paths.get("lvm_devices_file", DEVICES_FILE)
    lines = [probe_line(f"lvm.{k}", f"lvmconfig --typeconfig full devices/{k} | sed 's/^[^=]*=//'")
             for k in ("global_filter", "filter", "use_devicesfile")]
    # one entry per line in the file: ';' between them on the probe's one line
    lines.append(f"[ -f {q(devices)} ] && " + probe_line("lvm.devicesfile", f"grep -v '^#' {q(devices)} | tr '\\n' ';'") + " || echo lvm.devicesfile=-")
    if disk:
        lines += [probe_line("lvm.disk_links", f"udevadm info --query=symlink --name={q(disk)}"),
                  probe_line("lvm.disk_real", f"readlink -f {q(disk)}")]
    for tool, fields in (("pvs", "pv_name,vg_name"), ("lvs", "vg_name,lv_active")):
        lines.append(probe_line(f"lvm.{tool}", f"{tool} --config {q(OPEN)} --reportformat json -o {fields}"))
    return lines


def _report(p: dict[str, str], tool: str) -> list[dict[str, str]]:
    raw = p.get(f"lvm.{tool}", "")
    try:
        return (F.parse_lvm_report({"exit": 0, "stdout": raw, "stderr": ""}, tool) or []) if raw else []
    except F.FactError:
        return []


def check_node(cluster: model.Cluster, node: str, p: dict[str, str], ours: frozenset[str] = frozenset(),
               strangers: bool = True) -> list[Finding]:
    """*cluster*'s devices (a group's) against the configured filter; with *strangers*, the
    VGs other than *ours* (every group's, and *cluster*'s own) that the filter hides."""
    st = cluster.storage
    if not st.use_lvm or not p.get("lvm.global_filter"):
        return []  # no LVM here (lvmconfig missing): the host check says so
    filters = [lvmconf.parse_list(p.get("lvm.global_filter")), lvmconf.parse_list(p.get("lvm.filter"))]
    raw = p.get("lvm.devicesfile", "-")
    entries = lvmconf.parse_devices_file(raw.replace(";", "\n")) if raw not in ("", "-") else None
    by_file = p.get("lvm.use_devicesfile") == "1" and entries is not None
    how = "the devices file" if by_file else "the filter"

    def seen(names: list[str]) -> bool:
        return lvmconf.listed(entries or [], names) if by_file else lvmconf.visible(filters, names)

    disk = st.disks.get(node, "")
    links = {"name": p.get("lvm.disk_real", ""), "links": ["/dev/" + x for x in p.get("lvm.disk_links", "").split()]}
    names = lvmconf.stable_names(disk, links) if disk else []
    out: list[Finding] = []
    if st.use_drbd and names and seen(names):
        out.append(Finding("lvm-filter", "error", node, f"LVM can use the backing disk {disk} ({how}): it carries the same PV label as {st.drbd_device}, "
                                                        "so LVM may write the disk under DRBD's back (duplicate PV)", FIX))
    if st.use_drbd and not seen([st.drbd_device]):
        out.append(Finding("lvm-filter", "error", node, f"LVM does not see {st.drbd_device} ({how}): the chain cannot activate {st.vg}", FIX))
    if not st.use_drbd and names and not seen(names):
        out.append(Finding("lvm-filter", "error", node, f"LVM does not see {disk} ({how}), the PV of {st.vg} (no DRBD)", FIX))
    if not out:
        out.append(Finding("lvm-filter", "ok", node, f"{how}: {st.drbd_device if st.use_drbd else disk} used" + (f", {disk} hidden" if st.use_drbd else "")))
    if not strangers:
        return out
    ours = ours | {st.vg}
    active = {r["vg_name"] for r in _report(p, "lvs") if r.get("lv_active") == "active"}
    for r in _report(p, "pvs"):
        vg, pv = r.get("vg_name", ""), r.get("pv_name", "")
        if vg and vg not in ours and vg in active and not seen([pv]):
            fix = f"lvmdevices --adddev {pv}" if by_file else f'{FIX}; or put "a|^{pv}$|" first in devices/global_filter'
            out.append(Finding("lvm-hidden-vg", "warning", node, f"VG {vg} is active now but {how} hides its PV {pv}: it will not be "
                                                                 "activated at the next boot (the initramfs copies lvm.conf)", fix))
    return out
