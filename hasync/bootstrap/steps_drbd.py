"""Bootstrap steps for DRBD: the resource file, metadata, boot, up, Primary (forced only on
brand-new metadata), and the initial sync."""

from __future__ import annotations

from hasync.bootstrap.plan import Change, Facts, Wanted, guard, service_onoff, step, write_change

# --------------------------------------------------------------------------- DRBD


def render_drbd_res(w: Wanted) -> str:
    """The resource file, identical on both nodes (DRBD 8.4 or 9 syntax per profile)."""
    st = w.st
    version = str(w.o("drbd_version", "9"))
    fencing = {"required": "resource-and-stonith", "optional": "resource-only"}.get(w.cluster.fencing.mode)
    lines = [
        f"# {w.drbd_res_path}: written by `hasync bootstrap` from {w.config_path}.",
        "# Identical on both nodes; edit cluster.toml and re-run bootstrap instead.",
        f"resource {st.drbd_resource} {{",
    ]
    if version == "0.7":
        lines += [f"  protocol {st.drbd_protocol};", "  disk { on-io-error detach; }", f"  syncer {{ rate {st.resync_rate}; }}",
                  "  # DRBD 0.7 has no split-brain policies or fence-peer handler: upgrade to 8.4+."]
    else:
        net = [f"    protocol {st.drbd_protocol};"]
        if fencing and version != "8.4":
            net.append(f"    fencing {fencing};")
        net += [
            "    after-sb-0pri discard-zero-changes;  # neither primary: keep the side that wrote",
            "    after-sb-1pri discard-secondary;     # one primary: it wins",
            "    after-sb-2pri disconnect;            # both primary: a human decides",
        ]
        lines += ["  net {", *net, "  }"]
        disk = ["    c-plan-ahead 0;  # a fixed resync rate: [storage] resync_rate", f"    resync-rate {st.resync_rate};"]
        if fencing and version == "8.4":
            disk.append(f"    fencing {fencing};")
        lines += ["  disk {", *disk, "  }"]
        handlers = ['    split-brain "/usr/lib/drbd/notify-split-brain.sh root";']
        if fencing and w.pacemaker:  # drbd-utils' handlers: they ask Pacemaker (a constraint), not the fence command
            nine = "" if version == "8.4" else ".9"
            handlers = [
                f'    fence-peer "/usr/lib/drbd/crm-fence-peer{nine}.sh";',
                f'    after-resync-target "/usr/lib/drbd/crm-unfence-peer{nine}.sh";',
            ] + handlers
        elif fencing:
            handlers = [
                '    fence-peer "/usr/local/lib/hasync/drbd-fence-peer";',
                '    after-resync-target "/usr/local/lib/hasync/drbd-fence-peer --unfence";',
            ] + handlers
        lines += ["  handlers {", *handlers, "  }"]
    for n in w.cluster.nodes:
        minor = "".join(c for c in st.drbd_device if c.isdigit()) or "0"
        addr = st.replication.get(n.name, n.address)
        lines += [
            f"  on {n.name} {{",
            f"    device {st.drbd_device} minor {minor};" if version != "0.7" else f"    device {st.drbd_device};",
            f"    disk {st.disks.get(n.name, '')};",
            f"    address {addr}:{st.drbd_port};",
            "    meta-disk internal;",
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


FENCE_PEER = "/usr/local/lib/hasync/drbd-fence-peer"





def _use_drbd(w: Wanted) -> bool:
    return w.st.use_drbd


@step("drbd-config", when=_use_drbd, needs=lambda w: [f"file:{w.drbd_res_path}", f"file:{FENCE_PEER}"], per_group=True)
def plan_drbd_config(w: Wanted, f: Facts) -> list[Change]:
    """The DRBD resource file (protocol, fencing handler, split-brain policies)."""
    out = write_change("drbd-config", f, w.drbd_res_path, render_drbd_res(w), 0o644)
    if w.cluster.fencing.mode != "off" and w.fence_peer_script and not w.pacemaker and w.group_index == 0:  # one handler serves every group
        out += write_change("drbd-config", f, FENCE_PEER, w.fence_peer_script, 0o755, "DRBD's fence-peer handler runs the cluster's fencing command")
    return out


@step("drbd-metadata", when=_use_drbd, needs=lambda w: [f"signatures:{w.disk}", f"drbd_status:{w.st.drbd_resource}"], per_group=True)
def plan_drbd_md(w: Wanted, f: Facts) -> list[Change]:
    """DRBD metadata on the backing disk (create-md), never over existing data."""
    if f[f"drbd_status:{w.st.drbd_resource}"]["up"]:
        return []
    if str(w.o("drbd_version", "9")) == "0.7":
        return []  # DRBD 0.7 writes its metadata itself on the first `drbdadm up`
    sigs = f[f"signatures:{w.disk}"]
    if sigs is None:
        return [Change("drbd-metadata", "refuse", f"backing disk {w.disk} of {w.node} does not exist", target=w.disk)]
    if any(s["type"] == "drbd" for s in sigs):
        return []
    g = guard("drbd-metadata", w, w.disk, sigs, "drbdadm create-md")
    if g and g[0].action == "refuse":
        return g
    return g + [Change("drbd-metadata", "run", "internal metadata at the end of the disk", argv=("drbdadm", "create-md", w.st.drbd_resource))]


@step("drbd-boot", when=_use_drbd, needs=lambda w: [f"enabled:{s}" for s in w.services("drbd")])
def plan_drbd_boot(w: Wanted, f: Facts) -> list[Change]:
    """drbd at boot as the profile says (Secondary at boot keeps the peer in sync)."""
    on = bool(w.o("drbd_at_boot", True))
    return service_onoff("drbd-boot", w, f, w.services("drbd"), on, "drbd at boot per profile" if on else "drbd not at boot per profile")


@step("drbd-up", when=_use_drbd, needs=lambda w: [f"drbd_status:{w.st.drbd_resource}"], per_group=True)
def plan_drbd_up(w: Wanted, f: Facts) -> list[Change]:
    """The resource attached and connecting."""
    if f[f"drbd_status:{w.st.drbd_resource}"]["up"]:
        return []
    return [Change("drbd-up", "run", "attach the disk and connect to the peer", argv=("drbdadm", "up", w.st.drbd_resource))]


def _primary_needs(w: Wanted) -> list[str]:
    r = w.st.drbd_resource
    # DRBD 0.7 has no generation identifiers to read (no get-gi)
    return [f"drbd_status:{r}"] + ([f"drbd_gi:{r}"] if _drbd_version(w) != "0.7" else [])


def _drbd_version(w: Wanted) -> str:
    return str(w.o("drbd_version", "9"))


# where the local disk has good-enough data to be forced Primary at all
_FORCEABLE = ("Inconsistent", "Outdated", "Consistent", "")  # "": not up yet (dry run)


def _not_first_sync(w: Wanted, s: dict, gi: dict | None) -> str:
    """'' when this is the very first sync (brand-new metadata here, and the peer, if it
    is there at all, holds no data either), else why forcing Primary could lose data."""
    peer = s.get("peer") or {}
    name, r = w.peer.name, w.st.drbd_resource
    if gi is None:
        return f"DRBD {_drbd_version(w)} keeps no generation identifiers hasync can read"
    if not gi["readable"]:
        if not s.get("up"):
            return ""  # no metadata yet: drbd-metadata creates it in this run (re-decided once up)
        return f"cannot read the generation identifiers of {r} (`drbdadm get-gi {r}`: {gi['error']})"
    if not gi["fresh"]:
        here = f"this node's disk is {s['disk']}" if s.get("up") else f"{r} is down here"
        there = (f"{name}'s disk is {peer.get('peer_disk')}" if peer.get("connection") == "Connected"
                 else f"{name} is not connected" + (f" ({peer['connection']})" if peer.get("connection") else ""))
        return (
            f"{here} and its metadata shows replicated data (current data generation {gi['current']}); "
            f"{there}: bootstrap cannot tell which node holds the newer data"
        )
    if peer.get("connection") == "Connected" and peer.get("peer_disk") not in ("Inconsistent", "DUnknown", "", None):
        return f"{name}'s disk is {peer['peer_disk']}: it holds data of its own, this node's metadata is brand new"
    return ""


@step("drbd-primary", when=lambda w: w.st.use_drbd and w.first, needs=_primary_needs, per_group=True)
def plan_drbd_primary(w: Wanted, f: Facts) -> list[Change]:
    """First node only: Primary; --force only on the very first sync (brand-new metadata)."""
    s = f[f"drbd_status:{w.st.drbd_resource}"]
    r = w.st.drbd_resource
    if s.get("up") and s["role"] == "Primary":
        return []
    force = ("drbdadm", "--", "--do-what-I-say", "primary", r) if _drbd_version(w) == "0.7" else ("drbdadm", "primary", "--force", r)
    peer = s.get("peer") or {}
    if peer.get("role") == "Primary" and s.get("disk") == "UpToDate":
        return []  # a running cluster, active on the peer: nothing to set up here
    if s.get("disk") == "UpToDate":
        return [Change("drbd-primary", "run", "to create the volume group and filesystem", argv=("drbdadm", "primary", r))]
    if peer.get("peer_disk") == "UpToDate" or peer.get("role") == "Primary":
        return [Change("drbd-primary", "refuse", f"the peer {peer.get('name')} holds the good data (peer-disk {peer.get('peer_disk')}, role {peer.get('role')}); bootstrap this node with --join instead", target=r)]
    if s.get("up") and s["disk"] not in _FORCEABLE:
        return [Change("drbd-primary", "refuse", f"local disk is {s['disk']}: not forcing Primary", target=r)]
    why_not = _not_first_sync(w, s, f.get(f"drbd_gi:{r}"))
    if not why_not:
        return [Change("drbd-primary", "run", "brand-new metadata (the very first sync): this node's data becomes the reference; the initial full sync starts", argv=force)]
    dev = w.st.drbd_device
    if dev in w.allow_data_loss:
        return [Change("drbd-primary", "run", f"--allow-data-loss {dev}: {why_not}; this node's copy becomes the reference", argv=force)]
    return [Change("drbd-primary", "refuse", _stale_refusal(w, why_not), target=dev)]


def _stale_refusal(w: Wanted, why_not: str) -> str:
    r, dev, peer = w.st.drbd_resource, w.st.drbd_device, w.peer.name
    if _drbd_version(w) == "0.7":
        return (
            f"not forcing {r} Primary: {why_not}, so bootstrap cannot tell the very first sync from a "
            f"node with old data. Compare `cat /proc/drbd` on both nodes (the generation counts) and "
            f"start the node with the newer data first. On the first bootstrap of the cluster (both "
            f"disks new), or if {peer}'s data is lost for good: re-run with --allow-data-loss {dev}"
        )
    return (
        f"not forcing {r} Primary: {why_not}. `drbdadm primary --force` would make this node's copy "
        f"the reference, and {peer}'s newer writes would be discarded when it reconnects. "
        f"Check on both nodes: `drbdadm status {r}` and `drbdadm show-gi {r}` (the node whose current "
        f"UUID appears among the other's bitmap or history UUIDs has the older data); start the node with the newer "
        f"data first and let DRBD resync the other. Only if {peer}'s data is lost for good: "
        f"re-run with --allow-data-loss {dev}"
    )


@step("drbd-sync", when=_use_drbd, needs=lambda w: [f"drbd_status:{w.st.drbd_resource}"], per_group=True)
def plan_drbd_sync(w: Wanted, f: Facts) -> list[Change]:
    """Wait for a running initial sync to finish (progress bar and rate)."""
    s = f[f"drbd_status:{w.st.drbd_resource}"]
    peer = s.get("peer") or {}
    if s.get("up") and peer.get("replication", "").startswith("Sync"):
        return [Change("drbd-sync", "wait-sync", f"{peer['replication']}: {peer.get('done') or 0:.1f}% done", target=w.st.drbd_resource, path=w.disk)]
    return []
