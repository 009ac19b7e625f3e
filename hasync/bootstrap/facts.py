"""Facts: what a node looks like, read by a command (argv built here) and a pure parser.

A fact is named by a key string ``kind:arg`` (``signatures:/dev/vdb``, ``drbd_status:r0``,
``enabled:nfs-server``, ``file:/etc/exports``, ``path:/var/lib/nfs``, ``pvs``...).
``command(key, ...)`` returns the argv that reads it (None for facts read from files);
``parse(key, raw)`` turns the raw observation into data. Raw observations are plain JSON
values so test cases can hold captured output:

- command facts: ``{"exit": int, "stdout": str, "stderr": str}``
- ``file:`` facts: the file's text, or null when it does not exist
- ``path:`` facts: ``{"kind": "missing|file|dir|symlink|other", "target": str, "mode": int,
  "uid": int, "gid": int}`` (the owner: -1 when not observed)
- ``entries:`` facts: the names in a directory, sorted, or null when it is not one

Parsers fail loudly (``FactError`` naming the command and the missing key) on output they
do not understand, rather than guessing. The DRBD facts (argv and parsers) are in
hasync.bootstrap.facts_drbd, the raw shape and FactError in hasync.bootstrap.facts_raw.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import TYPE_CHECKING, Any

from hasync.bootstrap.facts_drbd import (
    drbd_dump_argv,
    drbd_gi_argv,
    drbd_status_argv,
    parse_drbd_dump,
    parse_drbd_gi,
    parse_drbd_status,
)
from hasync.bootstrap.facts_raw import FactError, cmd_text

if TYPE_CHECKING:  # the type only: the pure core imports no effects (an import-linter contract)
    from hasync.effects.run import Argv


# --------------------------------------------------------------------------- argv


def wipefs_argv(device: str) -> Argv:
    """All signatures on a device (filesystems, LVM, swap, DRBD metadata), without erasing."""
    return ("wipefs", "--no-act", "--json", device)


def blkid_argv(device: str) -> Argv:
    return ("blkid", "-p", "-o", "export", device)


PVS_FIELDS = "pv_name,vg_name,pv_size"
VGS_FIELDS = "vg_name,vg_size,autoactivation,systemid"
LVS_FIELDS = "lv_name,vg_name,lv_size,lv_path,lv_active"


def lvm_report_argv(tool: str) -> Argv:
    fields = {"pvs": PVS_FIELDS, "vgs": VGS_FIELDS, "lvs": LVS_FIELDS}[tool]
    return (tool, "--reportformat", "json", "--units", "b", "--nosuffix", "-o", fields)


def devlinks_argv(device: str) -> Argv:
    """udev's name and links for a device (the names LVM's filter sees besides /dev/X)."""
    return ("udevadm", "info", "--query=all", f"--name={device}")


def lvm_setting_argv(setting: str) -> Argv:
    """One lvm.conf setting as LVM uses it (the distro's built-in default when unset)."""
    return ("lvmconfig", "--typeconfig", "full", setting)


# what a host's tools can do (host.py compares them with the profile's [supported])
VERSION_ARGV = {"lvm": ("lvm", "version"), "drbdadm": ("drbdadm", "--version")}
WIPEFS_HELP = ("wipefs", "--help")


def enabled_argv(init: str, service: str, root: str = "/") -> Argv:
    """Is *service* started at boot? systemctl works offline on unit files and symlinks."""
    if init == "systemd":
        unit = service if "." in service else service + ".service"
        extra = (f"--root={root}",) if root != "/" else ()
        return ("systemctl", *extra, "is-enabled", unit)
    return ("chkconfig", "--list", service)


SSH_CONTROL = "/run/.hasync-bootstrap-%C"  # root-only tmpfs; %C: hash of local host, peer, port, user


def peer_ssh_opts() -> Argv:
    # one connection for the whole join (a handshake costs ~1 s on a busy node);
    # closed by peer_ssh_close() when bootstrap ends
    return (
        "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new", "-o", "ConnectTimeout=10",
        "-o", "ControlMaster=auto", "-o", f"ControlPath={SSH_CONTROL}", "-o", "ControlPersist=30",
    )


def peer_ssh(peer: str, *remote: str) -> Argv:
    """ssh to the first node as the admin (root's own keys) while joining."""
    return ("ssh", *peer_ssh_opts(), f"root@{peer}", shlex.join(remote))


def peer_ssh_close(peer: str) -> Argv:
    return ("ssh", "-o", f"ControlPath={SSH_CONTROL}", "-O", "exit", f"root@{peer}")


def command(key: str, *, init: str = "systemd", root: str = "/", peer: str = "") -> Argv | None:
    """The argv that reads fact *key*; None for facts read directly from files."""
    kind, _, arg = key.partition(":")
    if kind in ("file", "path", "entries"):
        return None
    if kind == "peer_file":
        return peer_ssh(peer, "cat", arg)
    if kind == "hostkeys":
        return ("ssh-keyscan", "-T", "5", "-t", "ed25519", arg)
    if kind == "signatures":
        return wipefs_argv(arg)
    if kind == "blkid":
        return blkid_argv(arg)
    if kind == "drbd_status":
        return drbd_status_argv(arg)
    if kind == "drbd_dump":
        return drbd_dump_argv(arg)
    if kind == "drbd_gi":
        return drbd_gi_argv(arg)
    if kind in ("pvs", "vgs", "lvs"):
        return lvm_report_argv(kind)
    if kind == "devlinks":
        return devlinks_argv(arg)
    if kind == "lvm_setting":
        return lvm_setting_argv(arg)
    if kind == "version" and arg in VERSION_ARGV:
        return VERSION_ARGV[arg]
    if kind == "wipefs_json":
        return WIPEFS_HELP
    if kind == "lvm_systemid":
        return ("lvm", "systemid")
    if kind == "user":
        return ("getent", "passwd", arg)
    if kind == "enabled":
        return enabled_argv(init, arg, root)
    if kind == "partitions":
        return ("cat", "/proc/partitions")
    if kind == "mounts":
        return ("cat", "/proc/self/mountinfo")
    raise FactError(f"unknown fact {key!r}")


# --------------------------------------------------------------------------- parsers


def parse_wipefs(raw: Any) -> list[dict] | None:
    """Signatures on a device: ``[{"type", "offset", "uuid", "label"}]``; None: no such device."""
    code, out, err = cmd_text(raw)
    if code != 0:
        if "No such file" in err or "No such device" in err or "does not exist" in err:
            return None
        raise FactError(f"`{' '.join(wipefs_argv('DEVICE'))}` exited {code}: {err.strip()}")
    if not out.strip():
        return []
    try:
        data = json.loads(out)
        sigs = data["signatures"]
    except (ValueError, KeyError) as e:
        raise FactError(f"wipefs --json: no 'signatures' in output: {out[:200]!r}") from e
    return [
        {
            "type": s.get("type") or "",
            "offset": s.get("offset") or "",
            "uuid": s.get("uuid") or "",
            "label": s.get("label") or "",
        }
        for s in sigs
    ]


def parse_blkid(raw: Any) -> dict[str, str] | None:
    """``blkid -p -o export``: KEY=VALUE lines; {} when nothing found (exit 2)."""
    code, out, err = cmd_text(raw)
    if code == 2:
        return {}
    if code != 0:
        if "No such file" in err:
            return None
        raise FactError(f"blkid exited {code}: {err.strip()}")
    res = {}
    for line in out.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            res[k.strip()] = v.strip()
    return res


def parse_lvm_report(raw: Any, tool: str) -> list[dict[str, str]] | None:
    """``pvs/vgs/lvs --reportformat json``: the rows; None when LVM is not installed."""
    code, out, err = cmd_text(raw)
    if code == 127:
        return None
    if code != 0 and not out.strip():
        raise FactError(f"`{' '.join(lvm_report_argv(tool))}` exited {code}: {err.strip()[-300:]}")
    key = tool[:2]  # pv / vg / lv
    try:
        report = json.loads(out)["report"]
    except (ValueError, KeyError) as e:
        raise FactError(f"{tool} --reportformat json: no 'report' in output: {out[:200]!r}") from e
    rows: list[dict[str, str]] = []
    for part in report:
        if key not in part:
            raise FactError(f"{tool} --reportformat json: no {key!r} in report")
        rows.extend({k: str(v) for k, v in r.items()} for r in part[key])
    return rows


def parse_devlinks(raw: Any) -> dict[str, Any]:
    """``udevadm info --query=all``: {"known": bool, "name": "/dev/vdb", "links": [...]};
    known is False without udev (no udevadm, a container, the namespace lab) or for a
    device udev does not know."""
    code, out, _ = cmd_text(raw)
    if code != 0:
        return {"known": False, "name": "", "links": []}
    name, links = "", []
    for line in out.splitlines():
        tag, _, value = line.partition(": ")
        if tag == "N" and value.strip():
            name = "/dev/" + value.strip()
        elif tag == "S" and value.strip():
            links.append("/dev/" + value.strip())
    return {"known": True, "name": name, "links": links}


def parse_lvm_setting(raw: Any, setting: str) -> str | None:
    """``lvmconfig --typeconfig full devices/use_devicesfile`` -> "1"; None without LVM
    or for a setting this LVM does not know."""
    code, out, _ = cmd_text(raw)
    key = setting.rsplit("/", 1)[-1]
    if code != 0:
        return None
    for line in out.splitlines():
        k, sep, v = line.strip().partition("=")
        if sep and k == key:
            return v.strip().strip('"')
    return None


def parse_version(raw: Any, tool: str) -> Any:
    """``lvm version`` -> "2.03.16"; ``drbdadm --version`` -> {"utils": "9.22.0",
    "kernel": "8.4.11"} (kernel "0": no module loaded); None when the tool is missing."""
    code, out, _ = cmd_text(raw)
    if code == 127 or (code != 0 and not out.strip()):
        return None
    if tool == "lvm":
        m = re.search(r"LVM version:\s*(\d+(?:\.\d+)*)", out)
        return m.group(1) if m else None
    kv = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return {"utils": kv.get("DRBDADM_VERSION", ""), "kernel": kv.get("DRBD_KERNEL_VERSION", "")}


def parse_wipefs_json(raw: Any) -> bool | None:
    """Does this wipefs write JSON (``--json`` in its help)? None: no wipefs."""
    code, out, _ = cmd_text(raw)
    if code == 127:
        return None
    return "--json" in out


def parse_enabled(raw: Any, init: str) -> str:
    """'enabled' | 'disabled' | 'static' | 'masked' | 'not-found' | ... (systemd words).

    For sysv (chkconfig --list NAME): 'enabled' when on in any of runlevels 2-5.
    """
    code, out, err = cmd_text(raw)
    if init == "systemd":
        word = out.strip().splitlines()[-1].strip() if out.strip() else ""
        if word:
            return word
        if "No such file" in err or "not found" in err or code == 127:
            return "not-found"
        return "disabled" if code != 0 else "enabled"
    if code != 0 or not out.strip():
        return "not-found"
    levels = dict(w.split(":", 1) for w in out.split() if re.fullmatch(r"[0-6]:\w+", w))
    if not levels:
        # SuSE's `chkconfig NAME` form: "nfsserver  on"
        return "enabled" if out.split()[-1] == "on" else "disabled"
    return "enabled" if any(levels.get(str(n)) == "on" for n in range(2, 6)) else "disabled"


def parse_user(raw: Any, name: str) -> dict[str, int] | None:
    """``getent passwd NAME`` -> {"uid", "gid"} (the user's login group); None: no such user."""
    code, out, err = cmd_text(raw)
    if code == 2:  # getent(1): a key was not found
        return None
    fields = out.strip().split(":")
    if code != 0 or len(fields) < 4 or not (fields[2].isdigit() and fields[3].isdigit()):
        raise FactError(f"`getent passwd {name}` exited {code}: {(err or out).strip()[-200:]}")
    return {"uid": int(fields[2]), "gid": int(fields[3])}


def parse_partitions(raw: Any) -> dict[str, dict[str, int]]:
    """/proc/partitions -> {name: {"major", "minor", "bytes"}}."""
    code, out, _ = cmd_text(raw)
    res = {}
    for line in out.splitlines():
        w = line.split()
        if len(w) == 4 and w[0].isdigit():
            res[w[3]] = {"major": int(w[0]), "minor": int(w[1]), "bytes": int(w[2]) * 1024}
    return res


def parse_mountinfo(raw: Any) -> list[dict[str, str]]:
    """/proc/self/mountinfo -> [{"mount_point", "source", "fstype", "dev"}]."""
    _, out, _ = cmd_text(raw)
    res = []
    for line in out.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lw, rw = left.split(), right.split()
        if len(lw) < 5 or len(rw) < 2:
            continue
        mp = lw[4].replace("\\040", " ")
        res.append({"mount_point": mp, "dev": lw[2], "fstype": rw[0], "source": rw[1]})
    return res


def parse(key: str, raw: Any, *, init: str = "systemd") -> Any:
    """Parse the raw observation of fact *key* (see the module doc for the raw shapes)."""
    kind, _, arg = key.partition(":")
    if kind == "file":
        return raw
    if kind == "peer_file":
        code, out, err = cmd_text(raw)
        if code == 255:  # ssh itself failed: not the same as "no such file"
            raise FactError(f"ssh to the first node failed reading {arg}: {err.strip()[-300:]}")
        if code == 124:  # the runner's timeout: nothing was read, the file may well be there
            raise FactError(f"reading {arg} on the first node over ssh timed out (a busy node?): {err.strip()[-300:]}")
        return out if code == 0 else None
    if kind == "hostkeys":
        _, out, _ = cmd_text(raw)
        return [ln for ln in out.splitlines() if ln.strip() and not ln.startswith("#")]
    if kind == "path":
        return {"uid": -1, "gid": -1, **(raw if raw is not None else {"kind": "missing", "target": "", "mode": 0})}
    if kind == "entries":
        return sorted(raw) if raw is not None else None
    if kind == "user":
        return parse_user(raw, arg)
    if kind == "signatures":
        return parse_wipefs(raw)
    if kind == "blkid":
        return parse_blkid(raw)
    if kind == "drbd_status":
        return parse_drbd_status(raw)
    if kind == "drbd_dump":
        return parse_drbd_dump(raw)
    if kind == "drbd_gi":
        return parse_drbd_gi(raw)
    if kind in ("pvs", "vgs", "lvs"):
        return parse_lvm_report(raw, kind)
    if kind == "devlinks":
        return parse_devlinks(raw)
    if kind == "lvm_setting":
        return parse_lvm_setting(raw, arg)
    if kind == "version":
        return parse_version(raw, arg)
    if kind == "wipefs_json":
        return parse_wipefs_json(raw)
    if kind == "lvm_systemid":  # "  system ID: node1" (nothing when no source is set)
        m = re.search(r"system ID:\s*(\S+)", cmd_text(raw)[1])
        return m.group(1) if m else ""
    if kind == "enabled":
        return parse_enabled(raw, init)
    if kind == "partitions":
        return parse_partitions(raw)
    if kind == "mounts":
        return parse_mountinfo(raw)
    raise FactError(f"unknown fact {key!r}")


def describe(argv: Argv) -> str:
    return shlex.join(argv)
