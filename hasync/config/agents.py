"""Which OCF agents exist and which are promotable (what ``hasync check`` needs to know).

An agent is known when it is installed under the OCF root of the host running check, or
when it is one resource-agents 4.12 / drbd-utils / pacemaker ship (Debian 12): check
often runs on an admin box without them. A *promotable* agent's ``start`` only brings it
up in the unpromoted role (``ocf:linbit:drbd``: Secondary); it says so in its metadata
with ``<action name="promote">``, which shell agents carry as text in the script.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

OCF_ROOT = "/usr/lib/ocf"  # as hasync.failover.chain runs them

# resource-agents 4.12 (Debian 12), /usr/lib/ocf/resource.d/heartbeat
_HEARTBEAT = """
AoEtarget AudibleAlarm CTDB ClusterMon Delay Dummy EvmsSCC Evmsd Filesystem ICP IPaddr IPaddr2
IPsrcaddr IPv6addr LVM LVM-activate LinuxSCSI MailTo ManageRAID ManageVE NodeUtilization Pure-FTPd
Raid1 Route SAPDatabase SAPInstance SendArp ServeRAID SphinxSearchDaemon Squid Stateful SysInfo
VIPArip VirtualDomain WAS WAS6 WinPopup Xen Xinetd ZFS aliyun-vpc-move-ip anything apache asterisk
aws-vpc-move-ip aws-vpc-route53 awseip awsvip azure-events azure-events-az azure-lb clvm conntrackd
corosync-qnetd crypt db2 dhcpd dnsupdate docker docker-compose dovecot dummypy eDir88 ethmonitor
exportfs fio galera garbd gcp-ilb gcp-pd-move gcp-vpc-move-ip gcp-vpc-move-route gcp-vpc-move-vip
iSCSILogicalUnit iSCSITarget ids iface-bridge iface-macvlan iface-vlan ipsec iscsi jboss jira
kamailio ldirectord lvmlockd lxc lxd-info machine-info mariadb mdraid minio mpathpersist mysql
mysql-proxy nagios named nfsnotify nfsserver nginx nvmet-namespace nvmet-port nvmet-subsystem ocivip
openstack-cinder-volume openstack-floating-ip openstack-info openstack-virtual-ip oraasm oracle
oralsnr ovsmonitor pgagent pgsql pingd podman portblock postfix pound proftpd rabbitmq-cluster
rabbitmq-server-ha redis rkt rsyncd rsyslog scsi2reservation sfex sg_persist slapd smb-share
storage-mon sybaseASE symlink syslog-ng tomcat varnish vdo-vol vmware vsftpd zabbixserver
"""
_PACEMAKER = "ClusterMon Dummy HealthCPU HealthIOWait HealthSMART Stateful SysInfo attribute controld ifspeed o2cb ping remote"
KNOWN: frozenset[str] = frozenset(
    [f"heartbeat:{a}" for a in _HEARTBEAT.split()]
    + [f"pacemaker:{a}" for a in _PACEMAKER.split()]
    + ["linbit:drbd", "linbit:drbd-attr"]
)

# the agents above whose metadata has a promote action
PROMOTABLE: frozenset[str] = frozenset({
    "linbit:drbd", "heartbeat:Stateful", "pacemaker:Stateful", "heartbeat:SAPInstance",
    "heartbeat:conntrackd", "heartbeat:db2", "heartbeat:galera", "heartbeat:mariadb",
    "heartbeat:mpathpersist", "heartbeat:mysql", "heartbeat:pgsql", "heartbeat:rabbitmq-server-ha",
    "heartbeat:redis", "heartbeat:sg_persist",
})

# promotable agents that refuse to run as a plain primitive (linbit:drbd wants notify=true
# and the clone's meta attributes; Stateful only ever starts unpromoted); the others above
# (mysql, pgsql, redis ...) also run as one plain instance, with promotable = false
PROMOTE_ONLY: frozenset[str] = frozenset({"linbit:drbd", "heartbeat:Stateful", "pacemaker:Stateful"})

_PROMOTE_ACTION = re.compile(rb'<action\s+name="promote"')


def agent_path(agent: str, ocf_root: str = OCF_ROOT) -> Path:
    provider, _, name = agent.partition(":")
    return Path(ocf_root) / "resource.d" / provider / name


def installed(agent: str, ocf_root: str = OCF_ROOT) -> bool:
    p = agent_path(agent, ocf_root)
    try:
        return p.is_file() and os.access(p, os.X_OK)
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False


def unknown_agent_hint(agent: str, ocf_root: str = OCF_ROOT) -> str | None:
    """None when *agent* ("provider:type") is installed here or known; else what to say."""
    if agent in KNOWN or installed(agent, ocf_root):
        return None
    here = Path(ocf_root) / "resource.d"
    names = set(KNOWN)
    if here.is_dir():
        names |= {f"{d.name}:{f.name}" for d in here.iterdir() if d.is_dir() for f in d.iterdir()}
    close = difflib.get_close_matches(agent, sorted(names), n=2, cutoff=0.75)
    if close:
        return f"did you mean {' or '.join(repr(c) for c in sorted(close))}?"
    return "not installed here and not one resource-agents, drbd-utils or pacemaker ship"


def promotable(agent: str, ocf_root: str = OCF_ROOT) -> bool:
    """True if *agent* has a promote action: the installed agent's metadata says so, or
    it is a promotable agent the packages above ship."""
    p = agent_path(agent, ocf_root)
    try:
        with open(p, "rb") as f:
            if _PROMOTE_ACTION.search(f.read(1 << 20)):
                return True
    except (OSError, ValueError):
        pass
    return agent in PROMOTABLE
