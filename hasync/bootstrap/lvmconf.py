"""LVM's configuration, decided purely: the device filter, the devices file, the access mode.

The filter (lvm.conf(5) devices/filter and devices/global_filter, LVM's filter-regex.c):
a device has several names (its node and every symlink to it under /dev: by-id, by-path
...). Each name is tried against the patterns in order and the first pattern it matches
decides that name ('a' accept, 'r' reject). The device is accepted as soon as one of
its names is accepted, rejected when some name was rejected and none accepted, and
accepted when no name matches any pattern. A device must pass both keys.

So hasync never writes a catch-all: it accepts the cluster's DRBD device and rejects
every stable name of the DRBD backing disk, ahead of whatever the host already had. The
host's own PVs (the root VG on RHEL) match none of those patterns and stay visible, and
a name of the backing disk that appears later (udev's by-id/lvm-pv-uuid-* link, once the
PV label is replicated onto it) matches no pattern either, so it does not bring the
backing disk back -- unless the host's filter has a catch-all accept ("a|.*|"), which is
therefore dropped from the merged list (for devices no pattern rejects, it changes
nothing; for the others it is what makes a reject stick).

The devices file (lvmdevices(8); on by default on RHEL 9): when ``use_devicesfile = 1``
and /etc/lvm/devices/system.devices exists, LVM uses only the devices listed there and
the filter is not used to select PVs. The DRBD device must then be listed and the
backing disk must not be.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hasync import model

# What hasync wrote before it merged filters: accept DRBD, reject everything -- it hid
# every other VG (the root VG on RHEL). Replaced whole when found.
LEGACY_FILTER = ("a|^/dev/drbd|", "r|.*|")

# LVM's built-in filter (accept everything): written where nothing is left to say, as
# LVM refuses an empty list.
LVM_DEFAULT_FILTER = ("a|.*|",)

# Names under /dev/disk that do not depend on the disk's content (a by-id name made from
# an LVM PV UUID or a device-mapper name changes with what is written on the disk).
STABLE_LINK_DIRS = ("/dev/disk/by-id/", "/dev/disk/by-path/")
CONTENT_BY_ID = ("lvm-pv-uuid-", "dm-", "md-uuid-", "md-name-")

# LVM-activate's vg_access_mode values bootstrap can prepare (lvm.conf and the VG):
# system_id (system_id_source, the VG's system ID) and tagging (volume_list). lvmlockd
# and clvmd need a cluster lock manager (dlm), which a two-node hasync pair does not run.
SERVED_ACCESS_MODES = ("system_id", "tagging")
LVM_ACTIVATE = "heartbeat:LVM-activate"


# --------------------------------------------------------------------------- lists


def parse_list(value: str | None) -> list[str]:
    """An LVM array literal (``[ "a|x|", "r|.*|" ]``, or one string) -> its strings."""
    if value is None:
        return []
    out: list[str] = []
    i, n = 0, len(value)
    while i < n:
        if value[i] != '"':
            i += 1
            continue
        i += 1
        buf = []
        while i < n and value[i] != '"':
            if value[i] == "\\" and i + 1 < n:
                i += 1
            buf.append(value[i])
            i += 1
        out.append("".join(buf))
        i += 1
    return out


def render_list(items: Iterable[str]) -> str:
    """The LVM array literal for *items* (quotes and backslashes escaped)."""
    esc = [i.replace("\\", "\\\\").replace('"', '\\"') for i in items]
    return "[ " + ", ".join(f'"{i}"' for i in esc) + " ]" if esc else "[ ]"


# --------------------------------------------------------------------------- patterns


def split_pattern(entry: str) -> tuple[str, str] | None:
    """``a|regex|`` -> ("a", "regex"); None for an entry LVM would refuse."""
    if len(entry) < 3 or entry[0] not in "ar" or entry[-1] != entry[1]:
        return None
    return entry[0], entry[2:-1]


def _matches(regex: str, name: str) -> bool:
    try:
        return re.search(regex, name) is not None
    except re.error:
        return False


def accepts(entries: Sequence[str], names: Iterable[str]) -> bool:
    """Does a filter (its entries) accept a device known by *names*? (LVM's rule, above)"""
    rejected = False
    for name in names:
        for entry in entries:
            p = split_pattern(entry)
            if p is None or not _matches(p[1], name):
                continue
            if p[0] == "a":
                return True
            rejected = True
            break
    return not rejected


def visible(filters: Iterable[Sequence[str]], names: Sequence[str]) -> bool:
    """A device is used by LVM only if every filter (filter, global_filter) accepts it."""
    return all(accepts(f, names) for f in filters)


def literal(name: str) -> str:
    """An anchored regex matching exactly *name*. Regex characters go in brackets, not
    after a backslash: LVM's config strings and its regex engine both read backslashes."""
    special = set(".+*?()[]{}^$|")
    return "^" + "".join(f"[{c}]" if c in special else c for c in name) + "$"


def is_catch_all_accept(entry: str) -> bool:
    p = split_pattern(entry)
    return p is not None and p[0] == "a" and p[1].strip("^$") in (".*", "")


# --------------------------------------------------------------------------- names


def stable_names(disk: str, links: Mapping[str, Any] | None) -> list[str]:
    """The disk as configured, its kernel name, and its udev links that do not depend on
    what the disk holds (``links``: the devlinks fact, {"name", "links"}), the links
    sorted: udev lists them in no fixed order (systemd 252's `udevadm info` changes it
    from one call to the next), and the filter written from them must not change with it."""
    names = [disk]
    if links:
        if links.get("name"):
            names.append(links["name"])
        names += sorted(link for link in links.get("links", ())
                        if link.startswith(STABLE_LINK_DIRS) and not link.rsplit("/", 1)[-1].startswith(CONTENT_BY_ID))
    seen: list[str] = []
    for n in names:
        if n and n not in seen:
            seen.append(n)
    return seen


# --------------------------------------------------------------------------- the filter


def merged_filter(existing: Sequence[str], accept: Sequence[str], reject: Sequence[str]) -> list[str]:
    """Accept *accept*, reject *reject* (device names, matched exactly), then the host's
    own patterns -- without hasync's old accept-DRBD-reject-all filter and without a
    catch-all accept (see the module doc)."""
    ours = [f"a|{literal(n)}|" for n in accept] + [f"r|{literal(n)}|" for n in reject]
    if tuple(existing) == LEGACY_FILTER:
        existing = []
    return ours + [e for e in existing if e not in ours and not is_catch_all_accept(e)]


def wanted_filter(existing: Sequence[str], disks: Sequence[tuple[str, Sequence[str], bool]]) -> list[str]:
    """The filter hasync wants for *disks*, one (DRBD device, backing disk's stable names,
    use_drbd) per resource group: with DRBD, the DRBD device accepted and the backing disk
    rejected by every stable name; without DRBD the disk is the PV and must stay visible
    (accepted first only when the host's own patterns would hide it)."""
    accept = [dev for dev, names, drbd in disks if drbd and names]
    reject = [n for _, names, drbd in disks if drbd for n in names]
    kept = merged_filter(existing, accept, reject) if accept else merged_filter(existing, [], [])
    plain = [names[0] for _, names, drbd in disks if not drbd and names and not accepts(kept, names)]
    if not accept and not plain:
        return kept
    return merged_filter(existing, accept + plain, reject)


def hidden_vgs(filters: Sequence[Sequence[str]], pvs: Iterable[Mapping[str, str]]) -> set[str]:
    """VGs with a PV that *filters* hide (judged on the PV's name as pvs reports it)."""
    return {r["vg_name"] for r in pvs if r.get("vg_name") and not visible(filters, [r["pv_name"]])}


# --------------------------------------------------------------------------- devices file


def parse_devices_file(text: str | None) -> list[dict[str, str]] | None:
    """system.devices -> its device entries (``IDTYPE=... IDNAME=... DEVNAME=... PVID=...``);
    None when the file does not exist."""
    if text is None:
        return None
    out = []
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#") or "IDTYPE=" not in s:
            continue
        out.append(dict(w.split("=", 1) for w in s.split() if "=" in w))
    return out


def listed(entries: Iterable[Mapping[str, str]], names: Sequence[str]) -> bool:
    return any(e.get("DEVNAME") in names or e.get("IDNAME") in names for e in entries)


# --------------------------------------------------------------------------- access mode


def access(cluster: model.Cluster) -> tuple[str, model.Resource | None]:
    """The LVM-activate resource of the cluster's VG in the chain and its vg_access_mode
    ("" when the chain has none: activation is then the chain's own business)."""
    for r in cluster.resources:
        if r.type == "ocf" and r.agent == LVM_ACTIVATE and r.params.get("vgname") == cluster.storage.vg:
            return r.params.get("vg_access_mode", ""), r
    return "", None


def activation_tag(res: model.Resource | None) -> str:
    """LVM-activate's tag for the tagging mode (its default: "pacemaker")."""
    return (res.params.get("tag") if res else "") or "pacemaker"
