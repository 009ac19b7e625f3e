"""The storage half of the field notes, done by hand on a VM lab (no hasync logic).

Used by tests/vm to show DRBD, LVM and kernel NFS really work in the guests, by `reset`
between test cases, and as the "same commands by hand" baseline of the failover
benchmark. Each step is a shell script (a pure function of its parameters) run on one VM.
"""

from __future__ import annotations

import hashlib
import shlex
import time

from hasync_lab.vm.driver import VmLab
from hasync_lab.vm.image_build import GUEST_DIR
from hasync_lab.vm.seed import PUBLIC_NET, VIP

RESOURCE = "r0"
DEVICE = "/dev/drbd0"
DISK = "/dev/vdb"
VG, LV = "havg", "data"
MOUNT = "/srv/ha"
EXPORT = f"{MOUNT}/export"
STATE = f"{MOUNT}/nfs-state"
LVM_FILTER = 'global_filter = [ "a|^/dev/drbd|", "r|.*|" ]'


def drbd_res(lab: VmLab) -> str:
    """An 8.4-style r0.res (drbd-utils 9 drives the guest's DRBD 8.4 through it)."""
    ons = "".join(
        f"  on {n} {{ address {lab.state['vms'][n]['guest']['replication']}:7789; }}\n" for n in lab.nodes
    )
    return (
        f"resource {RESOURCE} {{\n  protocol C;\n  device {DEVICE};\n  disk {DISK};\n"
        "  meta-disk internal;\n"
        "  disk { c-plan-ahead 0; resync-rate 200M; }\n"
        "  net { max-buffers 8000; }\n"
        f"{ons}}}\n"
    )


def drbd_prepare_script() -> str:
    return (
        f"mkdir -p /etc/drbd.d\ncat > /etc/drbd.d/{RESOURCE}.res\n"
        f"drbdadm create-md --force {RESOURCE} >/dev/null 2>&1\n"
        f"drbdadm up {RESOURCE}\n"
    )


# the image's lvm.conf, kept by lvm_filter_script before it edits it: reset_node_script puts
# it back, or the next test's LVM sees through test_storage's filter (it hides everything
# but /dev/drbd*: the scenario's own VG on a loop device was "rejected by filter config")
LVM_CONF_ORIG = "/etc/lvm/lvm.conf.lab-orig"


def lvm_filter_script() -> str:
    # Debian's lvm.conf has the line commented out; replace it (or append a devices section).
    return (
        "f=/etc/lvm/lvm.conf\n"
        f"cp -n $f {LVM_CONF_ORIG}\n"  # reset_node_script puts it back for the next test
        "if ! grep -q '^[[:space:]]*global_filter = \\[ \"a|^/dev/drbd|\"' $f; then\n"
        f"  sed -i 's#^\\([[:space:]]*\\)\\# global_filter = .*#\\1{LVM_FILTER}#' $f\n"
        f"  grep -q '^[[:space:]]*global_filter' $f || printf 'devices {{\\n\\t{LVM_FILTER}\\n}}\\n' >> $f\n"
        "fi\n"
    )


def nfs_start_script(ip: str = "") -> str:
    """Start the NFS server on the mounted replicated fs (state dir on it, fixed fsid)."""
    # gratuitous ARP: the clients' ARP caches still point the VIP at the old node
    addr = (f"ip addr add {ip}/24 dev eth0 2>/dev/null || true\n"
            f"busybox arping -q -U -c 1 -I eth0 {ip} || true\n") if ip else ""
    return (
        f"mkdir -p {EXPORT} {STATE}\n"
        f"[ -d {STATE}/sm ] || cp -a /var/lib/nfs/. {STATE}/\n"
        f"mount --bind {STATE} /var/lib/nfs\n"
        f"echo '{EXPORT} {PUBLIC_NET}.0/24(rw,sync,no_subtree_check,no_root_squash,fsid=1)' > /etc/exports\n"
        + addr
        + "pidof rpcbind >/dev/null || rpcbind -w\n"
        "grep -q nfsd /proc/mounts || mount -t nfsd nfsd /proc/fs/nfsd\n"
        # a lab-sized NFSv4 grace period (default 90 s) so clients resume within seconds
        "echo 10 > /proc/fs/nfsd/nfsv4leasetime 2>/dev/null || true\n"
        "echo 10 > /proc/fs/nfsd/nfsv4gracetime 2>/dev/null || true\n"
        + (f"sm-notify -f -v {ip}\n" if ip else "")
        + "rpc.statd --no-notify 2>/dev/null || true\n"
        "rpc.nfsd 8\nrpc.mountd\nexportfs -ra\n"
    )


def nfs_stop_script(ip: str = "") -> str:
    return (
        "exportfs -ua 2>/dev/null\n"
        "rpc.nfsd 0 2>/dev/null\n"
        "kill $(pidof rpc.mountd) $(pidof rpc.statd) 2>/dev/null\n"
        + (f"ip addr del {ip}/24 dev eth0 2>/dev/null\n" if ip else "")
        + "umount /var/lib/nfs 2>/dev/null\n"
        "true\n"
    )


def reset_node_script() -> str:
    """Back to "nothing set up": hasync daemons stopped, NFS off, fs unmounted, VG
    inactive, DRBD down and wiped."""
    return (
        "pkill -f 'hasync (failover|watch)' && sleep 1\n"
        "/etc/init.d/nfs-kernel-server stop >/dev/null 2>&1\n"
        + nfs_stop_script(VIP)
        + f"umount -l {MOUNT} 2>/dev/null\n"
        f"vgchange -an {VG} >/dev/null 2>&1\n"
        f"drbdsetup down {RESOURCE} 2>/dev/null\n"
        f"dd if=/dev/zero of={DISK} bs=1M count=4 conv=fsync status=none\n"
        f"sz=$(blockdev --getsize64 {DISK}); dd if=/dev/zero of={DISK} bs=1M count=4 "
        "seek=$((sz/1048576-4)) conv=fsync status=none\n"
        f"rm -f /etc/drbd.d/{RESOURCE}.res /etc/exports\n"
        f"[ -f {LVM_CONF_ORIG} ] && cp {LVM_CONF_ORIG} /etc/lvm/lvm.conf\n"
        "true\n"
    )


def reset_client_script() -> str:
    return "pkill -f nfs_write[r]\nfor m in $(awk '$3 ~ /^nfs/ {print $2}' /proc/mounts); do umount -f -l $m; done\ntrue\n"


def reset(lab: VmLab) -> None:
    """Make the lab as after `up` for the next test case: cables in, crashed VMs booted,
    storage torn down (cheaper than rebooting: ~1 s instead of ~15 s)."""
    lab.heal()
    for vm in lab.vms:
        role = lab.state["vms"][vm]["role"]
        lab.sh(vm, reset_node_script() if role == "node" else reset_client_script(), timeout=60,
               errexit=False)


# ---- steps ---------------------------------------------------------------------------


def drbd_up(lab: VmLab, primary: str = "node1", timeout: float = 120.0) -> float:
    """create-md + up on both nodes, `primary --force` on *primary*, wait for the initial
    full sync to finish. Returns the seconds the sync took."""
    res = drbd_res(lab)
    for n in lab.nodes:
        lab.sh(n, drbd_prepare_script(), input=res)
    lab.sh(primary, f"drbdadm primary --force {RESOURCE}")
    t0 = time.monotonic()
    wait_drbd(lab, primary, "UpToDate/UpToDate", timeout)
    return time.monotonic() - t0


def drbd_state(lab: VmLab, vm: str) -> dict[str, str]:
    """cs/ro/ds of the resource from /proc/drbd (8.4's format)."""
    text = lab.exec(vm, ("cat", "/proc/drbd")).stdout
    out: dict[str, str] = {}
    for word in text.split():
        for key in ("cs", "ro", "ds"):
            if word.startswith(key + ":"):
                out[key] = word.split(":", 1)[1]
    return out


def wait_drbd(lab: VmLab, vm: str, ds: str, timeout: float = 120.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    st: dict[str, str] = {}
    while time.monotonic() < deadline:
        st = drbd_state(lab, vm)
        if st.get("ds") == ds and st.get("cs") == "Connected":
            return st
        time.sleep(0.5)
    raise TimeoutError(f"{vm}: DRBD not {ds}/Connected after {timeout:.0f}s: {st}")


def wait_drbd_peer_lost(lab: VmLab, vm: str, timeout: float = 60.0) -> dict[str, str]:
    """Wait until *vm*'s DRBD noticed its peer is gone (no longer Connected)."""
    deadline = time.monotonic() + timeout
    st: dict[str, str] = {}
    while time.monotonic() < deadline:
        st = drbd_state(lab, vm)
        if st.get("cs") not in (None, "Connected"):
            return st
        time.sleep(0.5)
    raise TimeoutError(f"{vm}: DRBD still Connected {timeout:.0f}s after its peer died: {st}")


def lvm_fs_create(lab: VmLab, vm: str) -> None:
    for n in lab.nodes:
        lab.sh(n, lvm_filter_script())
    lab.sh(vm, f"pvcreate -ff -y {DEVICE} >/dev/null\nvgcreate {VG} {DEVICE} >/dev/null\n"
               f"lvcreate -y -l 100%FREE -n {LV} {VG} >/dev/null\nmkfs.ext4 -q /dev/{VG}/{LV}\n"
               f"mkdir -p {MOUNT}\nmount /dev/{VG}/{LV} {MOUNT}\nmkdir -p {EXPORT} {STATE}\n", timeout=120)


def take_over_script(ip: str = VIP) -> str:
    """The chain of the field notes by hand on the node taking over (DRBD already up)."""
    return (
        f"drbdadm primary {RESOURCE}\n"
        f"vgchange -ay {VG} >/dev/null\n"
        f"mkdir -p {MOUNT}\nmount /dev/{VG}/{LV} {MOUNT}\n" + nfs_start_script(ip)
    )


def release_script(ip: str = VIP) -> str:
    return "set +e\n" + nfs_stop_script(ip) + f"set -e\numount {MOUNT}\nvgchange -an {VG} >/dev/null\ndrbdadm secondary {RESOURCE}\n"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def q(s: str) -> str:
    return shlex.quote(s)


WRITER = "/tmp/nfs_writer.py"


def start_writer(lab: VmLab, client: str, data: str, tag: str = "w") -> dict[str, str]:
    """Start the checksummed, fsync'd record stream (guest/nfs_writer.py) on *client*."""
    lab.exec(client, ("sh", "-c", f"cat > {WRITER}"), input=(GUEST_DIR / "nfs_writer.py").read_text(), check=True)
    files = {"data": data, "ack": f"/var/tmp/{tag}.ack", "stop": f"/var/tmp/{tag}.stop", "log": f"/var/tmp/{tag}.log"}
    lab.sh(client, f"rm -f {files['ack']} {files['stop']} {files['log']}")
    lab.spawn(client, f"python3 {WRITER} {files['data']} {files['ack']} {files['stop']} 0.05", files["log"])
    return files


def acked(lab: VmLab, client: str, files: dict[str, str]) -> int:
    out = lab.exec(client, ("sh", "-c", f"wc -l < {files['ack']} 2>/dev/null || echo 0")).stdout.strip()
    return int(out or 0)


def wait_acked(lab: VmLab, client: str, files: dict[str, str], more_than: int, timeout: float) -> float:
    """Wait until more than *more_than* records are acknowledged; seconds waited."""
    t0 = time.monotonic()
    while acked(lab, client, files) <= more_than:
        if time.monotonic() - t0 > timeout:
            log = lab.exec(client, ("tail", "-5", files["log"])).stdout
            raise TimeoutError(f"{client}: no acknowledged write past {more_than} in {timeout:.0f}s; writer: {log}")
        time.sleep(0.5)
    return time.monotonic() - t0


def stop_writer(lab: VmLab, client: str, files: dict[str, str]) -> str:
    lab.sh(client, f"touch {files['stop']}\nfor i in $(seq 50); do pgrep -f nfs_write[r] >/dev/null || break; sleep 0.2; done")
    return lab.exec(client, ("cat", files["log"])).stdout


def check_records(acked_text: str, data_text: str) -> tuple[list[int], list[str]]:
    """Acknowledged sequence numbers missing from *data_text*, and corrupt lines in it."""
    have: set[int] = set()
    bad: list[str] = []
    for line in data_text.splitlines():
        parts = line.split()
        if len(parts) != 3:
            bad.append(line)
            continue
        body = f"{parts[0]} {parts[1]}"
        if hashlib.sha256(body.encode()).hexdigest()[:16] != parts[2]:
            bad.append(line)
            continue
        have.add(int(parts[0]))
    missing = [int(ln.split()[0]) for ln in acked_text.splitlines() if ln.strip() and int(ln.split()[0]) not in have]
    return missing, bad
