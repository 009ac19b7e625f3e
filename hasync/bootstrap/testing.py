"""Facts from data instead of a node: for unit tests, golden plans and `--dry-run` replays.

``DataFacts(raw)`` answers ``get(keys)`` like ``apply.Prober`` from a dict of raw
observations (the shapes documented in hasync.bootstrap.facts). Keys absent from the dict
get the answer of a freshly installed node (``fresh``): no file, no signature, DRBD
resource not up, empty LVM reports, services disabled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hasync.bootstrap import facts as F

EMPTY_LVM = {
    "pvs": '  {\n      "report": [\n          {\n              "pv": [\n              ]\n          }\n      ]\n  }\n',
    "vgs": '  {\n      "report": [\n          {\n              "vg": [\n              ]\n          }\n      ]\n  }\n',
    "lvs": '  {\n      "report": [\n          {\n              "lv": [\n              ]\n          }\n      ]\n  }\n',
}


LVM_DEFAULTS = {"use_devicesfile": "0"}
# a Debian 12 node's tools, as they answer there (tests/unit/data/bootstrap/captured holds
# the whole outputs); the DRBD module is the 8.4 of Debian's kernel
TOOLS = {
    "version:lvm": "  LVM version:     2.03.16(2) (2022-05-18)\n",
    "version:drbdadm": "DRBDADM_API_VERSION=2\nDRBD_KERNEL_VERSION_CODE=0x08040b\nDRBD_KERNEL_VERSION=8.4.11\n"
                       "DRBDADM_VERSION_CODE=0x091600\nDRBDADM_VERSION=9.22.0\n",
    "wipefs_json": " -J, --json              use JSON output format\n",
}


def fresh(key: str, init: str = "systemd") -> Any:
    """The raw observation of *key* on a node nothing was done to yet."""
    kind, _, arg = key.partition(":")
    if kind in ("file", "peer_file") and kind == "file":
        return None
    if kind == "peer_file":
        return {"exit": 1, "stdout": "", "stderr": f"cat: {arg}: No such file or directory"}
    if kind == "path":
        return {"kind": "missing", "target": "", "mode": 0}
    if kind == "entries":  # no such directory
        return None
    if kind == "user":  # a node without the package that makes the user
        return {"exit": 2, "stdout": "", "stderr": ""}
    if kind == "signatures":
        return {"exit": 0, "stdout": "", "stderr": ""}
    if kind == "drbd_status":
        return {"exit": 10, "stdout": "", "stderr": f"{arg}: No such resource\n"}
    if kind == "drbd_gi":  # no resource file yet (drbdadm's own words and status)
        return {"exit": 1, "stdout": "", "stderr": f"'{arg}' not defined in your config (for this host).\n"}
    if kind in EMPTY_LVM:
        return {"exit": 0, "stdout": EMPTY_LVM[kind], "stderr": ""}
    if kind == "enabled":
        if init == "systemd":
            return {"exit": 1, "stdout": "disabled\n", "stderr": ""}
        return {"exit": 0, "stdout": f"{arg:<24}  0:off  1:off  2:off  3:off  4:off  5:off  6:off\n", "stderr": ""}
    if kind == "mounts":
        return {"exit": 0, "stdout": "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n", "stderr": ""}
    if kind == "partitions":
        return {"exit": 0, "stdout": "major minor  #blocks  name\n\n 254        0   8388608 vda\n 254       16    262144 vdb\n", "stderr": ""}
    if kind == "devlinks":  # a disk udev knows by its kernel name only
        return {"exit": 0, "stdout": f"N: {arg.removeprefix('/dev/')}\n", "stderr": ""}
    if kind == "lvm_setting":  # LVM's built-in defaults on Debian
        key = arg.rsplit("/", 1)[-1]
        return {"exit": 0, "stdout": f"{key}={LVM_DEFAULTS.get(key, '')}\n", "stderr": ""}
    if kind == "hostkeys":
        return {"exit": 0, "stdout": "", "stderr": ""}
    if kind == "lvm_systemid":  # no system_id_source set yet
        return {"exit": 0, "stdout": "", "stderr": ""}
    if key in TOOLS:
        return {"exit": 0, "stdout": TOOLS[key], "stderr": ""}
    raise F.FactError(f"no fresh default for {key!r}")


@dataclass
class DataFacts:
    raw: Mapping[str, Any]
    init: str = "systemd"
    asked: list[str] = field(default_factory=list)

    def get(self, keys: Iterable[str]) -> dict[str, Any]:
        out = {}
        for k in keys:
            self.asked.append(k)
            raw = self.raw[k] if k in self.raw else fresh(k, self.init)
            out[k] = F.parse(k, raw, init=self.init)
        return out

    def invalidate(self) -> None:
        pass
