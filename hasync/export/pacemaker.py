"""cluster.toml's chain and fencing -> a Pacemaker configuration (pure).

The chain as Pacemaker expects it: each DRBD resource at the head of a chain becomes a
promotable clone (``ocf:linbit:drbd``, meta promotable=true, notify=true); the rest of
the chain becomes one group, started in order and stopped in reverse as hasync does, that
starts after the promotion and runs only where DRBD is Promoted. Each resource group
([[group]], a haresources line; a top-level chain is one) maps to its own clones, group,
location preference and constraints, so each fails over on its own as under hasync.

Fencing: one stonith device per node, kept off the node it fences. ``preferred_node``
is a location preference, ``auto_failback`` the stickiness, ``max_restarts`` the
migration-threshold, the timeouts and ``monitor_interval`` the operations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from hasync import model
from hasync.export import fence as fencing
from hasync.export.cib_model import (
    PROMOTED,
    UNPROMOTED,
    Cib,
    Clone,
    Colocation,
    Group,
    Location,
    Op,
    Order,
    Primitive,
    is_xml_id,
    seconds,
)
from hasync.export.heartbeat_agents import NfsContext, NoEquivalent, heartbeat_agent
from hasync.failover.fencing import fill
from hasync.operations import service_units

# The same words `hasync check` prints when fencing is off (hasync.config): said as loudly
# in the export, which writes stonith-enabled=false.
FENCING_OFF_WARNING = ("fencing is off: shared data is not protected; a node that only looks dead may still "
                       "write (heartbeat: \"Shared disks are not protected\")")

# preferred_node's pull; stickiness beats it when auto_failback is off, so a node that
# comes back does not take the services back (and interrupt the clients a second time).
PREFERENCE_SCORE = 100
STICKINESS_NO_FAILBACK = 200

# LINBIT's guide: DRBD's promotion score is refreshed by its monitor, one per role;
# Pacemaker refuses two monitors with the same interval on one resource.
DRBD_MONITOR_PROMOTED = 29.0
DRBD_MONITOR_UNPROMOTED = 31.0

# Pacemaker watches a fence device like pcs does by default: a BMC that stopped answering
# is reported before the day it is needed.
FENCE_MONITOR_INTERVAL = 60.0


class ExportError(Exception):
    """Resources or fencing with no Pacemaker equivalent; every issue names its place."""

    def __init__(self, issues: list[str]):
        self.issues = list(issues)
        super().__init__("\n".join(self.issues))


@dataclass(frozen=True)
class ChainGroup:
    """One resource group: an ordered chain that fails over as a whole."""

    id: str
    preferred_node: str
    auto_failback: bool
    resources: tuple[model.Resource, ...]


def chain_groups(cluster: model.Cluster) -> tuple[ChainGroup, ...]:
    """The cluster's resource groups: each [[group]] (or haresources line) under its own
    id; a top-level chain is one group named after the cluster."""
    if cluster.groups:
        return tuple(ChainGroup(g.id if is_xml_id(g.id) else f"g-{g.id}", g.preferred_node, bool(g.auto_failback), g.resources)
                     for g in cluster.resource_groups())
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", cluster.cluster.name)
    if not is_xml_id(name):
        name = f"g-{name}"
    return (ChainGroup(name, cluster.cluster.preferred_node, cluster.heartbeat.auto_failback, cluster.resources),)


@dataclass(frozen=True)
class Export:
    cib: Cib
    warnings: tuple[str, ...]


@dataclass
class _Ctx:
    cluster: model.Cluster
    profile: model.Profile | None
    fence_options: dict[str, fencing.FenceOption] | None
    errors: list[str]
    warnings: list[str]


def build(cluster: model.Cluster, *, profile: model.Profile | None = None,
          fence_options: dict[str, fencing.FenceOption] | None = None) -> Export:
    """The Pacemaker configuration of *cluster*, or ExportError listing everything that has
    no equivalent. *fence_options* is the fence agent's option table from its metadata
    (None: the options all fence agents share)."""
    ctx = _Ctx(cluster, profile, fence_options, [], [])
    clones: list[Clone] = []
    groups: list[Group] = []
    locations: list[Location] = []
    orders: list[Order] = []
    colocations: list[Colocation] = []
    for g in chain_groups(cluster):
        c, grp, loc, order, coloc = _group(ctx, g)
        clones += c
        groups += grp
        locations += loc
        orders += order
        colocations += coloc
    devices, fence_locations, properties = _fencing(ctx)
    nodes = tuple((str(i), n.name) for i, n in enumerate(cluster.nodes, start=1))
    cib = Cib(cluster.cluster.name, cluster.path, properties, nodes, devices, tuple(clones), tuple(groups),
              tuple(fence_locations + locations), tuple(orders), tuple(colocations))
    _check_ids(ctx, cib)
    if ctx.errors:
        raise ExportError(ctx.errors)
    return Export(replace(cib, notes=tuple(ctx.warnings)), tuple(ctx.warnings))


# --------------------------------------------------------------------------- the chain


def _group(ctx: _Ctx, g: ChainGroup):
    mapped = [_primitives(ctx, r, g) for r in g.resources]  # [] where there is no equivalent
    head = next((i for i, ps in enumerate(mapped) if not ps or not all(_is_drbd(p) for p in ps)), len(mapped))
    for r, ps in zip(g.resources[head:], mapped[head:], strict=True):
        if any(_is_drbd(p) for p in ps):
            ctx.errors.append(f"{r.src}: resource {r.id!r}: DRBD must come first in the chain for Pacemaker "
                              "(it runs as a promotable clone the rest of the group waits for); move it to the head")
    prims = _merge_notify(ctx, [p for ps in mapped for p in ps])
    drbd = [p for p in prims if _is_drbd(p)]
    rest = [p for p in prims if not _is_drbd(p)]
    stickiness = "0" if g.auto_failback else str(STICKINESS_NO_FAILBACK)
    clones = [Clone(f"{p.id}-clone", p, (("promotable", "true"), ("promoted-max", "1"), ("promoted-node-max", "1"),
                                          ("clone-max", "2"), ("clone-node-max", "1"), ("notify", "true"),
                                          ("resource-stickiness", stickiness)))
              for p in drbd]
    groups = [Group(g.id, tuple(rest), (("resource-stickiness", stickiness),))] if rest else []
    locations: list[Location] = []
    orders: list[Order] = []
    colocs: list[Colocation] = []
    for prev, c in zip(clones, clones[1:], strict=False):  # several DRBD resources: one Promoted node
        orders.append(Order(f"order-{prev.id}-then-{c.id}", prev.id, "promote", c.id, "promote"))
        colocs.append(Colocation(f"colocation-{c.id}-with-{prev.id}", c.id, prev.id, with_rsc_role=PROMOTED, rsc_role=PROMOTED))
    for c in clones:
        if groups:
            orders.append(Order(f"order-{c.id}-then-{g.id}", c.id, "promote", g.id, "start"))
            colocs.append(Colocation(f"colocation-{g.id}-with-{c.id}", g.id, c.id, with_rsc_role=PROMOTED))
    if g.preferred_node:
        # on the group (which drags the promotion along through the colocation), else on
        # the DRBD clone's Promoted role
        target, role = (g.id, "") if groups else ((clones[0].id, PROMOTED) if clones else ("", ""))
        if target:
            locations.append(Location(f"location-{target}-prefers-{g.preferred_node}", target, g.preferred_node,
                                      str(PREFERENCE_SCORE), role))
    return clones, groups, locations, orders, colocs


def _is_drbd(p: Primitive) -> bool:
    return p.standard == "ocf" and p.provider == "linbit" and p.type == "drbd"


def _nfs_context(ctx: _Ctx, g: ChainGroup) -> NfsContext:
    vip = ""
    for r in g.resources:  # the group's own address first (issue 17: one VIP per group)
        if r.type == "heartbeat" and r.agent in ("IPaddr", "IPaddr2") and r.args and r.args[0]:
            vip = r.args[0].split("/")[0]
        elif r.type == "ocf" and r.agent.endswith(":IPaddr2") and r.params.get("ip"):
            vip = r.params["ip"]
        if vip:
            break
    vip = vip or ctx.cluster.nfs.vip.split("/")[0]
    bind = ctx.profile is not None and ctx.profile.options.get("nfs_state_link", "symlink") == "bind"
    return NfsContext(vip, ctx.cluster.nfs.state_dir if bind else "")


def _primitives(ctx: _Ctx, r: model.Resource, g: ChainGroup) -> list[Primitive]:
    """The primitive(s) for one hasync resource (a service can name several units)."""
    where = f"{r.src or ctx.cluster.path}: resource {r.id!r} ({r.type} {r.agent})"
    if not is_xml_id(r.id):
        ctx.errors.append(f"{where}: {r.id!r} is not a valid Pacemaker id (a letter or _ first, then letters, digits, - _ .)")
    try:
        agents = _agents(ctx, r, g)
    except NoEquivalent as e:
        ctx.errors.append(f"{where}: no Pacemaker equivalent: {e}")
        return []
    out = []
    for i, (standard, provider, type_, params, notes) in enumerate(agents):
        ctx.warnings += [f"{where}: {n}" for n in notes]
        rid = r.id if len(agents) == 1 else f"{r.id}-{type_.replace('.', '-')}"
        out.append(Primitive(rid, standard, type_, provider, params, (), (), r.src))
        if i == 0 and len(agents) > 1:
            ctx.warnings.append(f"{where}: {len(agents)} units, one primitive each: {', '.join(a[2] for a in agents)}")
    return [_with_ops(ctx, r, p, _is_drbd(p)) for p in out]


def _agents(ctx: _Ctx, r: model.Resource, g: ChainGroup):
    """[(standard, provider, type, params, notes)] for *r*; NoEquivalent when there is none."""
    if r.type == "ocf":
        provider, _, agent = r.agent.partition(":")
        return [("ocf", provider, agent, tuple(r.params.items()), ())]
    if r.type == "heartbeat":
        a = heartbeat_agent(r, _nfs_context(ctx, g))
        return [(a.standard, a.provider, a.type, a.params, a.warnings)]
    if r.type == "systemd":
        _no_drbd_service(r.agent.removesuffix(".service"))
        return [("systemd", "", r.agent, (), ())]
    if r.type == "lsb":
        if r.args:
            raise NoEquivalent(f"an lsb: resource takes no arguments (got {'::'.join(r.args)})")
        name = r.agent.removeprefix("/etc/init.d/")
        if "/" in name:
            raise NoEquivalent(f"{r.agent} is outside /etc/init.d, where Pacemaker's lsb class looks")
        _no_drbd_service(name)
        return [("lsb", "", name, (), ())]
    if r.type == "service":
        _no_drbd_service(r.agent)
        sysv = ctx.profile is not None and ctx.profile.init == "sysv"
        return [("lsb" if sysv else "systemd", "", u, (), ()) for u in service_units(r, ctx.profile)]
    raise NoEquivalent(f"unknown resource type {r.type!r}")


def _no_drbd_service(name: str) -> None:
    if name == "drbd":
        raise NoEquivalent("the drbd service only brings DRBD up; Pacemaker promotes it through a promotable "
                           "clone: write the chain's first resource as type = \"ocf\", agent = \"linbit:drbd\", "
                           "params = { drbd_resource = \"r0\" }")


def _with_ops(ctx: _Ctx, r: model.Resource, p: Primitive, drbd: bool) -> Primitive:
    stop_fail = "block" if ctx.cluster.fencing.on_stop_failure == "block" else ""
    ops = [Op("start", 0, r.start_timeout), Op("stop", 0, r.stop_timeout, on_fail=stop_fail)]
    meta: tuple[tuple[str, str], ...] = ()
    if drbd:
        # hasync's start of DRBD is its promotion; its stop, the demotion
        promoted = r.monitor_interval or DRBD_MONITOR_PROMOTED
        unpromoted = promoted + 2 if r.monitor_interval else DRBD_MONITOR_UNPROMOTED
        ops += [Op("promote", 0, r.start_timeout), Op("demote", 0, r.stop_timeout),
                Op("monitor", promoted, r.monitor_timeout, PROMOTED), Op("monitor", unpromoted, r.monitor_timeout, UNPROMOTED)]
    else:
        if r.monitor_interval:
            ops.append(Op("monitor", r.monitor_interval, r.monitor_timeout))
        # hasync restarts a failed resource max_restarts times before failing over
        meta = (("migration-threshold", str(r.max_restarts + 1)),)
    return replace(p, ops=tuple(ops), meta=meta)


def _merge_notify(ctx: _Ctx, prims: list[Primitive]) -> list[Primitive]:
    """nfsboot and nfslock both become nfsnotify; one sm-notify is enough, and it belongs
    after the exports and the VIP, so the later one stays."""
    notify = [i for i, p in enumerate(prims) if p.standard == "ocf" and p.type == "nfsnotify"]
    if len(notify) < 2:
        return prims
    keep = notify[-1]
    ctx.warnings.append(f"{prims[keep].source}: {', '.join(prims[i].id for i in notify)} all send sm-notify: exported as one "
                        f"ocf:heartbeat:nfsnotify {prims[keep].id!r} at the last one's place (after the exports and the VIP)")
    return [p for i, p in enumerate(prims) if i not in notify[:-1]]


# --------------------------------------------------------------------------- fencing


def _fencing(ctx: _Ctx) -> tuple[tuple[Primitive, ...], list[Location], tuple[tuple[str, str], ...]]:
    f = ctx.cluster.fencing
    props: list[tuple[str, str]] = []
    where = f.src or f"{ctx.cluster.path}: [fencing]"
    if f.mode == "off":
        ctx.warnings.append(f"{where}: {FENCING_OFF_WARNING}; exported as stonith-enabled=false")
        if f.on_stop_failure != "block":
            ctx.warnings.append(f"{where}: with fencing off Pacemaker blocks a resource whose stop failed (hasync "
                                f"would {f.on_stop_failure} this node)")
        return (), [], (("stonith-enabled", "false"), ("no-quorum-policy", "stop"))
    if f.mode == "optional":
        ctx.warnings.append(f"{where}: mode = \"optional\" has no Pacemaker equivalent: Pacemaker never takes over "
                            "before the fence succeeded (as mode = \"required\")")
    devices: list[Primitive] = []
    locations: list[Location] = []
    actions = set()
    options = ctx.fence_options if ctx.fence_options is not None else fencing.COMMON_OPTIONS
    for node in ctx.cluster.nodes:
        argv = fill(f.command, node)  # as hasync's own fencing fills it in
        try:
            dev = fencing.fence_device(argv, options)
        except (fencing.NotAFenceAgent, ValueError) as e:
            ctx.errors.append(f"{where}: command: {e}")
            return (), [], ()
        actions.add(dev.action)
        rid = f"fence-{node.name}"
        params = dev.params + (("pcmk_host_list", node.name),)
        devices.append(Primitive(rid, "stonith", dev.agent, "", params, (),
                                 (Op("monitor", FENCE_MONITOR_INTERVAL, f.timeout),), where))
        # a node never runs the device that fences it: it could not fence itself when hung
        locations.append(Location(f"location-{rid}-avoids-{node.name}", rid, node.name, "-INFINITY"))
        if node is ctx.cluster.nodes[0]:
            ctx.warnings += [f"{where}: {n}" for n in dev.notes]
    if ctx.fence_options is None:
        ctx.warnings.append(f"{where}: {devices[0].type if devices else 'the fence agent'} is not installed here: its "
                            "options were mapped by the names all fence agents share; check them on a node with "
                            f"`{devices[0].type if devices else 'AGENT'} -o metadata`")
    props += [("stonith-enabled", "true"), ("no-quorum-policy", "stop"), ("stonith-timeout", seconds(f.timeout))]
    if "off" in actions:
        # hasync's command powers the node off and leaves it off; Pacemaker asks for reboot
        # unless told otherwise
        props.append(("stonith-action", "off"))
    return tuple(devices), locations, tuple(props)


def _check_ids(ctx: _Ctx, cib: Cib) -> None:
    seen: set[str] = set()
    for i in cib.ids():
        if i in seen:
            ctx.errors.append(f"{ctx.cluster.path}: id {i!r} is used twice in the Pacemaker configuration "
                              "(ids are cluster-wide: rename one of the resources)")
        seen.add(i)
