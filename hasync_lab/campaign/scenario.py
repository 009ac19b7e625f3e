"""One simulated cluster's settings, drawn per seed from realistic ranges (pure data).

A ``Scenario`` holds everything the simulator needs that is not a fault: the heartbeat
timing, fencing and ping settings, the resource chain (kind, durations, timeouts,
monitors) and the durations of the world around the daemon (boot, systemd's restart
delay, the fence agent, the ping). It turns into the ``model.Cluster`` a cluster.toml of
those settings loads to, and the two nodes' ``FsmConfig`` come from that through the
daemon's own builders (``membership_data.fsm_config``, ``membership_groups.group_configs``),
so the campaign runs the config the daemon would run (issue 14); it round-trips through
JSON so a violation's folder replays it.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, replace

from hasync import model
from hasync.failover.membership import FsmConfig
from hasync.failover.membership_data import fsm_config
from hasync.failover.membership_groups import group_configs

NODES = ("node1", "node2")
LINK_NAMES = ("hb", "public", "serial")
RESOURCE_TYPES: tuple[model.ResourceType, ...] = ("ocf", "systemd", "lsb", "heartbeat", "service")
FENCING_MODES: tuple[model.FencingMode, ...] = ("required", "optional", "off")
STOP_FAILURE: tuple[model.StopFailure, ...] = ("fence-self", "reboot", "block")
KEEPALIVES = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class ResourceSpec:
    id: str
    type: model.ResourceType
    start_s: float
    stop_s: float
    status_s: float
    start_timeout: float
    stop_timeout: float
    monitor_timeout: float
    monitor_interval: float = 0.0  # 0: not monitored
    max_restarts: int = 2


@dataclass(frozen=True)
class GroupSpec:
    """A resource group (issue 17): its chain (resource ids, in order), preferred node and
    auto_failback."""

    id: str
    resources: tuple[str, ...]
    preferred: str
    auto_failback: bool


@dataclass(frozen=True)
class Scenario:
    seed: int
    order: tuple[str, ...]  # preference: preferred node first
    links: tuple[str, ...]
    resources: tuple[ResourceSpec, ...]
    keepalive: float
    warntime: float
    deadtime: float
    initdead: float
    auto_failback: bool
    fencing_mode: model.FencingMode
    fence_configured: bool
    on_stop_failure: model.StopFailure
    ping_configured: bool
    latency_s: float  # one way, every link
    boot_s: float  # power-on to the services enabled at boot
    daemon_delay_s: float  # ... then to the daemon's start
    restart_delay_s: float  # systemd RestartSec after a SIGKILL
    stop_timeout_s: float  # systemd TimeoutStopSec: a leave that takes longer is SIGKILLed
    fence_s: float
    fence_timeout_s: float
    ping_s: float
    start_gap_s: float  # node2's power-on after node1's at the very start
    cluster: str = "lab"
    groups: tuple[GroupSpec, ...] = ()  # (): one chain, every resource (today's daemon)

    # ------------------------------------------------------------------ derived
    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.resources)

    def group_ids(self, gid: str = "") -> tuple[str, ...]:
        """The chain of group *gid* ("" or no groups: every resource)."""
        for g in self.groups:
            if g.id == gid:
                return g.resources
        return self.ids

    def group_of(self, rid: str) -> str:
        return next((g.id for g in self.groups if rid in g.resources), "")

    @property
    def chains(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(group id, its resource ids) for every group; one ("", every id) without groups."""
        return tuple((g.id, g.resources) for g in self.groups) or (("", self.ids),)

    @property
    def chain_s(self) -> float:
        """A start (probe + start of every resource) plus a stop, at normal durations."""
        return sum(r.status_s + r.start_s + r.stop_s for r in self.resources) + max(r.status_s for r in self.resources)

    @property
    def liveness_bound_s(self) -> float:
        """After the last fault heals, one node runs the whole chain and both agree within
        this: a fence still in flight (its timeout) may reboot a node, which then boots,
        starts its daemon, waits initdead at most, and the chain may move twice."""
        return (2 * (self.fence_timeout_s + self.boot_s + self.daemon_delay_s + self.stop_timeout_s)
                + self.initdead + 6 * self.deadtime + 4 * self.chain_s + self.ping_s + 20 * self.keepalive)

    @property
    def stray_bound_s(self) -> float:
        """A piece started by a fault (a service enabled at boot) may coexist with the
        peer's chain at most this long: the daemon starts, probes, learns the peer
        (initdead at most) and stops it."""
        return self.daemon_delay_s + self.initdead + 2 * self.deadtime + 2 * self.chain_s + 10 * self.keepalive

    def cluster_model(self, *, drifted: bool = False) -> model.Cluster:
        """The cluster.toml these settings stand for, as ``hasync.config.load`` gives it to
        the daemon (only what the membership FSM reads is filled in); ``drifted``: this
        node's copy names the other preferred node, the cluster's and each group's (issue
        12 item 5)."""
        def prefer(node: str) -> str:
            return next(n for n in NODES if n != node) if drifted else node

        resources = {r.id: model.Resource(
            id=r.id, type=r.type, agent=f"sim-{r.id}",
            start_timeout=r.start_timeout, stop_timeout=r.stop_timeout, monitor_timeout=r.monitor_timeout,
            monitor_interval=r.monitor_interval, max_restarts=r.max_restarts) for r in self.resources}
        return model.Cluster(
            path=f"<campaign seed {self.seed}>",
            cluster=model.ClusterInfo(name=self.cluster, preferred_node=prefer(self.order[0])),
            nodes=tuple(model.Node(name=n, address=n) for n in NODES),
            heartbeat=model.Heartbeat(
                keepalive=self.keepalive, warntime=self.warntime, deadtime=self.deadtime, initdead=self.initdead,
                auto_failback=self.auto_failback, ping=("ping",) if self.ping_configured else (),
                links=tuple(model.Link(name=n, kind="serial" if n == "serial" else "udp-unicast") for n in self.links)),
            sync=model.Sync(),
            storage=model.Storage(),
            nfs=model.Nfs(),
            resources=tuple(resources.values()),
            fencing=model.Fencing(mode=self.fencing_mode, command=("sim-fence",) if self.fence_configured else (),
                                  timeout=self.fence_timeout_s, on_stop_failure=self.on_stop_failure),
            groups=tuple(model.Group(g.id, tuple(resources[rid] for rid in g.resources), preferred_node=prefer(g.preferred),
                                     auto_failback=g.auto_failback) for g in self.groups),
        )

    def fsm_config(self, local: str, *, drifted: bool = False) -> FsmConfig:
        """The node's FsmConfig, built by the daemon's own builder
        (``membership_data.fsm_config``) from ``cluster_model``."""
        return fsm_config(self.cluster_model(drifted=drifted), local)

    def fsm_configs(self, local: str, *, drifted: bool = False) -> tuple[tuple[str, FsmConfig], ...]:
        """Each group's FsmConfig, built by the daemon's own builder
        (``membership_groups.group_configs``) from ``cluster_model``."""
        return group_configs(self.cluster_model(drifted=drifted), local)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Scenario:
        d = dict(d)
        d["resources"] = tuple(ResourceSpec(**r) for r in d["resources"])
        d["order"] = tuple(d["order"])
        d["links"] = tuple(d["links"])
        d["groups"] = tuple(GroupSpec(g["id"], tuple(g["resources"]), g["preferred"], g["auto_failback"]) for g in d.get("groups", ()))
        return cls(**d)


def _r(x: float) -> float:
    return round(x, 4)


def draw_scenario(seed: int, groups: int = 1) -> Scenario:
    """The settings of seed *seed*: every draw from its own stream, so adding a fault kind
    never changes which cluster a seed gets. *groups* = 2: the same cluster with its chain
    cut in two resource groups (issue 17), from a stream of their own (a seed's one-group
    cluster is the same whatever the groups draw)."""
    rng = random.Random(f"hasync-campaign:{seed}:scenario")
    keepalive = rng.choice(KEEPALIVES)
    deadtime = _r(keepalive * rng.uniform(3.0, 12.0))
    warntime = _r(deadtime * rng.uniform(0.3, 0.8))
    initdead = _r(deadtime * rng.uniform(1.0, 3.0))
    fencing = rng.choices(FENCING_MODES, weights=(50, 25, 25))[0]
    fence_configured = fencing != "off" or rng.random() < 0.5
    scale = min(1.5, max(0.2, deadtime / 3))  # fast-timing clusters run fast resources
    n = rng.randint(1, 6)
    resources = []
    for i in range(n):
        start_s, stop_s, status_s = (_r(scale * rng.uniform(lo, hi)) for lo, hi in ((0.02, 1.0), (0.02, 1.0), (0.005, 0.2)))
        monitored = rng.random() < 0.3
        resources.append(ResourceSpec(
            id=f"r{i}",
            type=rng.choice(RESOURCE_TYPES),
            start_s=start_s,
            stop_s=stop_s,
            status_s=status_s,
            start_timeout=_r(start_s * rng.uniform(3, 8) + 0.2),
            stop_timeout=_r(stop_s * rng.uniform(3, 8) + 0.2),
            monitor_timeout=_r(status_s * rng.uniform(3, 8) + 0.2),
            monitor_interval=_r(deadtime * rng.uniform(0.5, 3.0)) if monitored else 0.0,
            max_restarts=rng.randint(0, 3),
        ))
    nlinks = rng.choices((1, 2, 3), weights=(20, 50, 30))[0]
    sc = Scenario(
        seed=seed,
        order=tuple(rng.sample(NODES, 2)),
        links=tuple(sorted(rng.sample(LINK_NAMES, nlinks), key=LINK_NAMES.index)),
        resources=tuple(resources),
        keepalive=keepalive,
        warntime=warntime,
        deadtime=deadtime,
        initdead=initdead,
        auto_failback=rng.random() < 0.3,
        fencing_mode=fencing,
        fence_configured=fence_configured,
        on_stop_failure=rng.choices(STOP_FAILURE, weights=(50, 30, 20))[0],
        ping_configured=rng.random() < 0.5,
        latency_s=_r(rng.uniform(0.0001, 0.002)),
        boot_s=_r(deadtime * rng.uniform(0.5, 3.0)),
        daemon_delay_s=_r(deadtime * rng.uniform(0.0, 0.5)),
        restart_delay_s=_r(deadtime * rng.uniform(0.1, 1.0)),
        stop_timeout_s=0.0,
        fence_s=_r(deadtime * rng.uniform(0.2, 1.0)),
        fence_timeout_s=_r(deadtime * rng.uniform(2.0, 6.0)),
        ping_s=_r(deadtime * rng.uniform(0.05, 0.3)),
        start_gap_s=_r(initdead * rng.choice((0.0, rng.uniform(0.0, 2.0)))),
    )
    # a clean leave stops the chain: systemd waits for it (with the retries of a failed stop)
    if groups == 2:
        sc = _two_groups(sc, random.Random(f"hasync-campaign:{seed}:groups"))
        resources = list(sc.resources)
    sc = replace(sc, stop_timeout_s=_r(3 * sum(r.stop_s + r.status_s for r in resources) + 2.0 * len(resources) + sc.deadtime))
    errors = sc.fsm_config(NODES[0]).validate()
    assert not errors, errors  # the ranges above respect heartbeat's start-up rules
    return sc


def _two_groups(sc: Scenario, rng: random.Random) -> Scenario:
    """Two groups: the chain cut in two (a second resource when there is one only), the
    second group mostly preferred on the other node (both nodes serve), each its own
    auto_failback."""
    resources = list(sc.resources)
    if len(resources) < 2:
        r = resources[0]
        resources.append(replace(r, id="r1", type=rng.choice(RESOURCE_TYPES)))
    ids = [r.id for r in resources]
    k = rng.randint(1, len(ids) - 1)
    second = sc.order[1] if rng.random() < 0.8 else sc.order[0]
    gs = (GroupSpec("g1", tuple(ids[:k]), sc.order[0], rng.random() < 0.3),
          GroupSpec("g2", tuple(ids[k:]), second, rng.random() < 0.3))
    return replace(sc, resources=tuple(resources), groups=gs)
