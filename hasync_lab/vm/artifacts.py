"""What a failed VM run leaves to read: each guest's logs and state, copied to the host
before the lab is taken down (`lab.down()` removes its directory, disks included).

A guest that answers is asked (its daemon log, dmesg, the journal under systemd, DRBD,
processes); one that is off or hung (fenced, self-fenced, crashed) is read offline: its
root disk (the qcow2 overlay) is converted to a raw copy, the ext4 journal of the crash
replayed on the copy (e2fsck), and /var/log taken out with debugfs. Nothing is mounted.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from hasync_lab.vm.driver import VmLab

LIVE = (
    ("ps.txt", "ps axfo pid,stat,etime,time,args"),
    ("dmesg.txt", "dmesg"),
    ("drbd.txt", "cat /proc/drbd; drbdadm status 2>&1"),
    ("addr.txt", "ip -o addr; iptables -S 2>&1"),
    ("mounts.txt", "cat /proc/mounts; exportfs -v 2>&1"),
    ("last-failover.json", "cat /var/lib/hasync/failover/last-failover.json"),
    ("var-log.tar.b64", "tar -C /var/log -cz --exclude=journal . 2>/dev/null | base64"),
    ("journal.txt", "[ -d /run/systemd/system ] && journalctl -b --no-pager -o short-precise"),
)


def collect(lab: VmLab, dest: Path) -> Path:
    """Copy every guest's logs of *lab* under *dest*/<vm>/; returns *dest*."""
    dest.mkdir(parents=True, exist_ok=True)
    for vm in lab.vms:
        d = dest / vm
        d.mkdir(exist_ok=True)
        for name in ("console.log", "qemu.log"):
            src = lab.dir / vm / name
            if src.exists():
                shutil.copy2(src, d / name)
        if lab.running(vm) and lab.exec(vm, ("true",), timeout=30).exit_code == 0:
            for name, script in LIVE:
                r = lab.exec(vm, script, timeout=120)
                (d / name).write_text(r.stdout + r.stderr)
        else:
            lab.crash(vm)  # hung: power it off, its disk is read as it is
            read_disk(lab.dir / vm / "root.qcow2", d)
    return dest


def read_disk(overlay: Path, d: Path) -> None:
    """/var/log of a powered-off guest's root disk into *d*/log (and its journal as text)."""
    if not overlay.exists():
        return
    raw = d / "root.raw"
    try:
        subprocess.run(["qemu-img", "convert", "-O", "raw", str(overlay), str(raw)], check=True, capture_output=True, timeout=600)
        subprocess.run(["e2fsck", "-E", "journal_only", "-y", str(raw)], capture_output=True, timeout=300)
        subprocess.run(["debugfs", "-R", f"rdump /var/log {d}", str(raw)], capture_output=True, timeout=300)
    finally:
        raw.unlink(missing_ok=True)
    journal = d / "log" / "journal"
    if journal.is_dir() and shutil.which("journalctl"):
        r = subprocess.run(["journalctl", "--directory", str(journal), "--no-pager", "-o", "short-precise"],
                           capture_output=True, text=True, timeout=300)
        (d / "journal.txt").write_text(r.stdout + r.stderr)
