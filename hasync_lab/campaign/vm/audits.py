"""The vm tier's audits, from ground truth on the guests (never from the daemons' view).

The ns tier's where they carry over (hasync_lab/campaign/ns/audits.py: the overlaps ->
``dual-run``/``arp`` hits with the lying-fence limit, the forbidden log lines, the
bootstrap plan), plus what only real storage and real clients show:

- ``nfs-records``: every write a client's NFS mount acknowledged (fsync'd, numbered and
  checksummed by hasync_lab/vm/guest/nfs_writer.py; acknowledged = in the client's own
  ack log) is in the file on the active node's disk, intact; no stale file handle.
- ``drbd-data``: with both nodes up, connected and UpToDate, the data area of the two
  backing disks is identical (sha256 of /dev/vdb up to the DRBD device's size, read with
  O_DIRECT, the filesystem frozen meanwhile), as heartbeat's CTS compared disks.
- ``daemon-died``: a daemon exit the campaign did not cause (the unit loop logs each).
"""

from __future__ import annotations

import shlex
import threading

from hasync_lab.campaign.audits import Hit
from hasync_lab.campaign.ns.audits import forbidden_hits, hit, overlap_hits, plan_hits
from hasync_lab.campaign.vm.prep import DAEMON_LOG, EXITS_LOG

AUDITS = ("dual-run", "arp", "liveness", "log", "daemon-died", "nfs-records", "drbd-data", "bootstrap-plan")
EXPORT_DIR = "/srv/ha/export"

CHECK_RECORDS = """import hashlib, sys
args = sys.argv[1:]
for path, n in zip(args[::2], args[1::2]):
    n = int(n); have = set(); bad = 0
    try:
        f = open(path, 'rb')
    except OSError as e:
        print(-1, 0, e); continue
    for line in f:
        p = line.split()
        if len(p) == 3 and hashlib.sha256(p[0] + b' ' + p[1]).hexdigest()[:16].encode() == p[2]:
            have.add(int(p[0]))
        else:
            bad += 1
    miss = [s for s in range(1, n + 1) if s not in have]
    print(len(miss), bad, *miss[:20])
"""


class GuestLogs:
    """New text of files in the guests since the last read (offsets kept per node/file);
    a file whose unflushed tail a power loss took starts again where it now ends."""

    def __init__(self, lab):
        self.lab = lab
        self.off: dict[tuple[str, str], int] = {}

    def new_text(self, node: str, path: str) -> str:
        if not self.lab.running(node):
            return ""
        off = self.off.get((node, path), 0)
        q = shlex.quote(path)
        r = self.lab.exec(node, ("/bin/sh", "-c", f"s=$(stat -c %s {q} 2>/dev/null || echo 0); echo $s; "
                                                  f"[ $s -gt {off} ] && tail -c +{off + 1} {q} | head -c $((s - {off})); true"),
                          timeout=30)
        head, _, text = r.stdout.partition("\n")
        if not head.strip().isdigit():
            return ""
        self.off[(node, path)] = int(head)
        return text if int(head) > off else ""

    def skip(self, node: str, path: str) -> None:
        self.new_text(node, path)


def log_hits(logs: GuestLogs, nodes, fault_index: int, lied: bool) -> list[Hit]:
    out = []
    for n in nodes:
        out += forbidden_hits(f"{n}:{DAEMON_LOG}", logs.new_text(n, DAEMON_LOG), fault_index, lied)
    return out


def exit_hits(text: str, node: str, expected: set, fault_index: int) -> list[Hit]:
    """Lines "<time> <pid> <status>" of the unit loop: an exit the campaign did not cause
    (a SIGKILL or a clean stop it sent is expected, by pid) is a daemon that died."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        if (node, int(parts[1])) in expected:
            continue
        out.append(hit("daemon-died", fault_index, {"node": node, "pid": int(parts[1]), "exit": parts[2],
                                                    "signal": int(parts[2]) - 128 if parts[2].isdigit() and int(parts[2]) > 128 else None}))
    return out


def died_hits(logs: GuestLogs, nodes, expected: set, fault_index: int) -> list[Hit]:
    out = []
    for n in nodes:
        out += exit_hits(logs.new_text(n, EXITS_LOG), n, expected, fault_index)
    return out


# ------------------------------------------------------------------ NFS records


def acked_count(lab, client: str, w: dict) -> int:
    return acked_counts(lab, client, {"w": w})["w"]


def acked_counts(lab, client: str, writers: dict[str, dict]) -> dict[str, int]:
    """The last record each writer's client acknowledged (one command on the client)."""
    return dict(zip(writers, _numbers(lab, client, [f"tail -n 1 {shlex.quote(w['ack'])}" for w in writers.values()]), strict=True))


def _numbers(lab, node: str, commands: list[str]) -> list[int]:
    """The number each shell command's output starts with (0 for none), one exec for all."""
    script = "; ".join(f"echo \"$({c} 2>/dev/null) x\"" for c in commands)
    lines = lab.exec(node, ("/bin/sh", "-c", script)).stdout.splitlines()
    out = []
    for k in range(len(commands)):
        first = lines[k].split()[0] if k < len(lines) and lines[k].split() else ""
        out.append(int(first) if first.isdigit() else 0)
    return out


def check_files(lab, server: str, wanted: list[tuple[str, int]]) -> list[tuple[int, int, list[int]]]:
    """(missing, corrupt lines, first missing seqs) of records 1..n in each (path, n) on
    *server*: one python run for them all (a python start costs seconds under TCG)."""
    r = lab.exec(server, ("python3", "-c", CHECK_RECORDS, *(a for path, n in wanted for a in (path, str(n)))), timeout=120)
    lines = r.stdout.splitlines()
    out: list[tuple[int, int, list[int]]] = []
    for k in range(len(wanted)):
        parts = lines[k].split() if k < len(lines) else []
        if len(parts) < 2 or not parts[0].lstrip("-").isdigit():
            out.append((-1, 0, []))
        else:
            out.append((int(parts[0]), int(parts[1]), [int(x) for x in parts[2:] if x.isdigit()]))
    return out


def check_file(lab, server: str, path: str, n: int) -> tuple[int, int, list[int]]:
    return check_files(lab, server, [(path, n)])[0]


def records_hits(lab, client: str, writers: dict[str, dict], server: str, fault_index: int) -> list[Hit]:
    out = []
    acked = acked_counts(lab, client, writers)
    tags = list(writers)
    checked = check_files(lab, server, [(f"{EXPORT_DIR}/{writers[t]['data'].rsplit('/', 1)[1]}", acked[t]) for t in tags])
    stale = _numbers(lab, client, [f"grep -c Stale {shlex.quote(writers[t]['log'])}" for t in tags])
    for k, t in enumerate(tags):
        w, (missing, bad, first) = writers[t], checked[k]
        if missing != 0:
            out.append(hit("nfs-records", fault_index, {"nfs": t, "server": server, "acked": acked[t], "missing": missing,
                                                        "first_missing": first, "corrupt_lines": bad}))
        if stale[k] > w.get("stale_seen", 0):
            out.append(hit("nfs-records", fault_index, {"nfs": t, "stale_file_handle": stale[k] - w.get("stale_seen", 0)}))
            w["stale_seen"] = stale[k]
    return out


# ------------------------------------------------------------------ DRBD data


def drbd_digests(lab, active: str, nodes) -> dict[str, str]:
    """sha256 of each node's backing disk up to the DRBD device's size, the filesystem on
    *active* frozen meanwhile (writes wait; protocol C has them on both disks)."""
    size = lab.exec(active, ("blockdev", "--getsize64", "/dev/drbd0")).stdout.strip()
    if not size.isdigit():
        return {}
    lab.exec(active, ("/bin/sh", "-c", "sync; fsfreeze -f /srv/ha"), timeout=60)
    got: dict[str, str] = {}
    try:
        def one(n):
            r = lab.exec(n, ("/bin/sh", "-c", f"dd if=/dev/vdb iflag=direct,count_bytes bs=1M count={size} status=none"
                                              " | sha256sum"), timeout=300)
            got[n] = r.stdout.split()[0] if r.ok and r.stdout.split() else f"(failed: {r.stderr.strip()[:100]})"
        ts = [threading.Thread(target=one, args=(n,)) for n in nodes]
        for t in ts:
            t.start()
        for t in ts:
            t.join(320)
    finally:
        lab.exec(active, ("fsfreeze", "-u", "/srv/ha"), timeout=60)
    return got


def data_hits(digests: dict[str, str], fault_index: int, states: dict) -> list[Hit]:
    if len(set(digests.values())) == 1 and len(digests) == 2:
        return []
    return [hit("drbd-data", fault_index, {"sha256": digests, "drbd": states})]


__all__ = ["AUDITS", "GuestLogs", "data_hits", "died_hits", "log_hits", "overlap_hits", "plan_hits", "records_hits"]
