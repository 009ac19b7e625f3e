"""What `hasync bootstrap` laid down, read back from the real DRBD, LVM and nfsd of a VM
lab (issue 13): each function reads a node and returns what it saw; the assertions are the
caller's (tests/vm/test_the_scenario.py). Cheap on purpose: a few commands each, run
between the scenario's existing steps.
"""

from __future__ import annotations

import time

from hasync.effects.run import Result
from hasync_lab.vm.driver import VmLab
from hasync_lab.vm.seed import VIP

OTHER_VG = "othervg"  # a VG of the host's own beside the cluster's (a root VG on RHEL 9)
OTHER_IMG = "/var/tmp/othervg.img"
NFS_STATE = "/srv/ha/nfs-state"  # [nfs].state_dir of the VM cluster
# statd's lists: bootstrap's nfs-statd step sets nfs.conf [statd] state-directory-path =
# /var/lib/nfs/statd (where resource-agents' nfsnotify reads them), /var/lib/nfs being its
# symlink to NFS_STATE: on the replicated disk (tests/vm/test_pure.py ties the three)
STATD = f"{NFS_STATE}/statd"
LOCK_LOG = "/var/log/hasync-vm-lock.log"


def read_keys(lab: VmLab, node: str, script: str) -> dict[str, str]:
    """Run *script* on *node* (no errexit) and read its ``key=value`` lines."""
    out = lab.sh(node, script, errexit=False, timeout=60)
    return dict(ln.split("=", 1) for ln in out.splitlines() if "=" in ln)


def make_other_vg(lab: VmLab, node: str) -> str:
    """A small VG on a loop device, made before bootstrap: the filter bootstrap writes must
    keep it visible. Returns the loop device."""
    return lab.sh(node, "modprobe loop\n"  # no /dev/loop-control to autoload it from under busybox init
                        f"truncate -s 16M {OTHER_IMG}\n"
                        f"dev=$(losetup -f --show {OTHER_IMG})\n"
                        f"pvcreate -q $dev >/dev/null && vgcreate -q {OTHER_VG} $dev >/dev/null\n"
                        "echo $dev", timeout=120).strip()


def drop_other_vg(lab: VmLab, node: str, dev: str) -> None:
    lab.sh(node, f"vgchange -q -an {OTHER_VG} >/dev/null; losetup -d {dev}; rm -f {OTHER_IMG}", errexit=False, timeout=60)


def lvm_view(lab: VmLab, node: str) -> dict:
    """The PVs and VGs LVM sees on *node* and its devices/global_filter."""
    def out(cmd: str) -> str:
        return lab.exec(node, cmd, timeout=60).stdout.strip()

    pvs = out("pvs --noheadings -o pv_name,vg_name 2>/dev/null")
    return {
        "pvs": dict(ln.split() for ln in pvs.splitlines() if len(ln.split()) == 2),
        "global_filter": out("lvmconfig devices/global_filter"),
        "system_id": out("lvm systemid"),
        "vg_system_id": out("vgs --noheadings -o systemid havg 2>/dev/null"),
    }


def nfs_v4_state(lab: VmLab, node: str) -> dict:
    """NFSv4 state on the node that serves: grace and lease in effect, nfsdcld running with
    its records on the replicated disk and nfsd using it, the server scope nfsd runs with
    (the UTS host name of the daemons the nfsserver agent's `unshare -u` started; under
    systemd, the agent's drop-in and environment file for rpc.nfsd, which does not stay)."""
    script = (
        "echo grace=$(cat /proc/fs/nfsd/nfsv4gracetime)\n"
        "echo lease=$(cat /proc/fs/nfsd/nfsv4leasetime)\n"
        "echo nfsdcld=$(pidof nfsdcld)\n"
        "echo cld_dir=$(readlink -f /var/lib/nfs/nfsdcld)\n"
        f"echo cld_db=$(ls {NFS_STATE}/nfsdcld/ 2>/dev/null | tr '\\n' ' ')\n"
        # the kernel says which client tracker nfsd chose at its last start
        "echo tracking=$(dmesg | grep -o 'Using [a-zA-Z ]* client tracking operations' | tail -n 1)\n"
        "echo scope=$(nsenter -t $(pidof -s rpc.mountd) -u hostname)\n"
        # under systemd the agent runs only nfs-server.service's rpc.nfsd (which sets nfsd's
        # scope, then exits) in its own UTS namespace, from a drop-in and an environment
        # file; mountd keeps the node's name there
        "echo init=$(cat /proc/1/comm)\n"
        "echo scope_env=$(sed -n 's/^NFS_SERVER_SCOPE=//p' /run/sysconfig/nfs-server-scope 2>/dev/null)\n"
        "echo scope_unshare=$(systemctl show -p ExecStart nfs-server.service 2>/dev/null | grep -c 'unshare --uts')\n"
    )
    return read_keys(lab, node, script)


def count_udp_from(lab: VmLab, client: str, sources: tuple[str, ...]) -> dict[str, int]:
    """Packets the client received from each source to its portmapper over UDP: sm-notify
    asks it for statd's port first (the NFS mount itself runs over TCP). Rules are added
    on the first call, read on the next ones."""
    have = lab.sh(client, "iptables -S INPUT", timeout=60)
    for s in sources:
        if f"-s {s}/32" not in have:
            lab.sh(client, f"iptables -A INPUT -s {s} -p udp --dport 111 -j ACCEPT", timeout=60)
    rows = lab.sh(client, "iptables -nvxL INPUT", timeout=60).splitlines()
    out = {}
    for s in sources:
        out[s] = sum(int(r.split()[0]) for r in rows if s in r.split() and "dpt:111" in r)
    return out


def hold_lock(lab: VmLab, client: str, path: str, timeout: float = 60.0) -> None:
    """An NFSv3 POSIX lock held on *path* (the client's lockd and the server's statd then
    monitor each other: the server keeps a record of the client in its sm directory, on
    the replicated disk, and the next server to start notifies the client from the VIP)."""
    code = ("import fcntl, sys, time\n"
            f"f = open({path!r}, 'a')\n"
            "fcntl.lockf(f, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "time.sleep(3600)\n")
    lab.exec(client, ("sh", "-c", "cat > /run/hold_lock.py"), input=code, check=True)
    lab.spawn(client, "python3 /run/hold_lock.py", LOCK_LOG)
    deadline = time.monotonic() + timeout
    while "locked" not in lab.exec(client, ("cat", LOCK_LOG)).stdout:
        if time.monotonic() > deadline:
            raise AssertionError(f"{client}: no NFS lock on {path} after {timeout:.0f}s: {lab.exec(client, ('cat', LOCK_LOG)).stdout}")
        time.sleep(0.5)


# the holder's command line, matched by a pattern that does not match the `sh -c` that runs
# pkill (a plain `pkill -f /run/hold_lock.py` killed its own shell: exit -15, field run 10)
HOLDER_PATTERN = "[/]run/hold_lock[.]py"


def release_lock(lab: VmLab, client: str) -> None:
    lab.sh(client, f"pkill -f '{HOLDER_PATTERN}'", errexit=False, timeout=60)


def statd_view(lab: VmLab, node: str) -> str:
    """What a failed sm-notify check needs to be read: statd's lists where nfsnotify reads
    them (sm/, sm.bak/, the nfsserver agent's sm.ha/), where /var/lib/nfs points, the
    running statd's directory and sm-notify processes, nfs.conf's [statd], the daemon's
    last notify lines."""
    script = (f"for d in sm sm.bak sm.ha; do echo \"$d: $(ls {STATD}/$d 2>&1 | tr '\\n' ' ')\"; done\n"
              "echo \"/var/lib/nfs -> $(readlink -f /var/lib/nfs)\"\n"
              "for p in $(pgrep -x rpc.statd); do echo \"statd $p in $(readlink /proc/$p/cwd) args $(tr '\\0' ' ' < /proc/$p/cmdline)\"; done\n"
              "pgrep -a sm-notify || echo 'no sm-notify'\n"
              "sed -n '/^\\[statd\\]/,/^\\[/p' /etc/nfs.conf\n"
              "grep -h notify /var/lib/hasync/failover/timeline.jsonl 2>/dev/null | tail -n 4 | cut -c1-600\n"
              "journalctl --no-pager -o short-precise -t sm-notify -t rpc.statd -n 12 2>/dev/null")
    return f"--- {node}\n" + lab.exec(node, ("sh", "-c", script), timeout=60).stdout


def statd_records(lab: VmLab, node: str) -> list[str]:
    return lab.exec(node, f"ls {STATD}/sm/", timeout=60).stdout.split()


def bootstrap_again(lab: VmLab, node: str) -> Result:
    """`hasync bootstrap --yes` re-run on a node whose DRBD metadata is not new (the plan
    reads `drbdadm get-gi`): it must refuse to force DRBD Primary and change nothing."""
    return lab.exec(node, ("hasync", "bootstrap", "--yes"), timeout=600)



def chain_pieces(lab: VmLab, node: str) -> dict[str, str]:
    """What of the chain runs on *node*, with the identity of every process: a chain that
    was stopped and started again (not only its daemon) reads differently afterwards."""
    script = (
        "echo drbd=$(grep -o 'ro:[A-Za-z/]*' /proc/drbd)\n"
        "echo mount=$(grep ' /srv/ha ' /proc/mounts | cut -d' ' -f1)\n"
        f"echo vip=$(ip -o addr show eth0 | grep -c ' {VIP}/')\n"
        "echo nfsd=$(pgrep -x nfsd | tr '\\n' ' ')\n"
        "echo mountd=$(pidof rpc.mountd)\n"
        "echo nfsdcld=$(pidof nfsdcld)\n"
        "echo statd=$(pidof rpc.statd)\n"
        "echo exports=$(exportfs | tr -s ' \\n\\t' ' ')\n"
        "echo portblock=$(iptables -S INPUT | grep -c 'dport 2049')\n"
    )
    return read_keys(lab, node, script)


def wait_text(lab: VmLab, node: str, path: str, text: str, timeout: float = 120.0) -> float:
    """Wait until *path* on *node* contains *text* (what the config watcher brings);
    seconds waited."""
    t0 = time.monotonic()
    while text not in lab.exec(node, ("cat", path), timeout=60).stdout:
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{node}: {path} has no {text!r} after {timeout:.0f}s")
        time.sleep(0.5)
    return time.monotonic() - t0
