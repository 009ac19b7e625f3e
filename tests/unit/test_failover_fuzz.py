"""Fuzz the heartbeat decoder and the membership FSM with mutated, re-signed packets
(issue 12, "Fuzzing in the suite"; items 10 and 1).

Re-signed: every mutated frame gets a valid HMAC with the cluster key, so it reaches the
parser and the FSM (a frame without one never does: the MAC check is the first step).

- decoder: no exception, ever; a frame it accepts parses to exactly what it encodes
  (``encode(decode(frame)) == frame``: no mutation is read as another valid packet);
- FSM, any content (fresh echo included: a key holder can say anything): the real
  ``Membership`` in the campaign's simulator never raises and never spins;
- FSM, stale content (an echo that is not the receiver's current generation: what a
  replay carries, whatever else was changed): none of the campaign's safety audits
  fire outside their named limits (no double run, no unsafe start, no tiebreak skip).

Bounded by HASYNC_FUZZ_BUDGET seconds per test (default 3), HASYNC_FUZZ_SEED picks the
inputs; a failure names the seed and case that rebuild it. Run with -s for the counts.
"""

from __future__ import annotations

import hmac
import random
import struct

import pytest

from hasync.failover import packets
from hasync.failover.states import Role
from hasync_lab.campaign.scenario import draw_scenario
from hasync_lab.campaign.sim import Sim
from tests.unit.fuzzing import Budget

KEY = b"0123456789abcdef0123456789abcdef"
NAMES = ("node1", "node2", "lab", "hb", "public", "serial", "r0", "vip", "", "nœud", "😀", "x" * 255, "é" * 127)
BATCH = 64  # packets per case


def random_packet(rng: random.Random) -> packets.Packet:
    owned = tuple(rng.choice(NAMES) for _ in range(rng.choice((0, 0, 1, 3, 6))))
    big = rng.choice((0, 1, 2**32 - 1, 2**64 - 1, rng.randrange(2**64)))
    groups: tuple[packets.GroupRecord, ...] = ()
    if rng.random() < 0.3:  # format 3: one record per resource group (issue 17)
        groups = tuple(packets.GroupRecord(i, rng.choice(tuple(Role)), rng.randrange(2**16), rng.randrange(2**32), rng.randrange(3),
                                           rng.randrange(2**32), rng.randrange(2**32), tuple(rng.choice(NAMES) for _ in range(rng.choice((0, 1, 2)))))
                       for i in rng.sample(range(256), rng.choice((0, 1, 2, 3))))
    return packets.Packet(
        rng.choice(NAMES), rng.choice(NAMES), rng.choice(NAMES), rng.choice((0, 7, 2**64 - 1, rng.randrange(2**64))),
        rng.randrange(2**64), rng.choice(tuple(Role)), owned, rng.randrange(2**16), rng.randrange(2**32),
        rng.randrange(3), rng.randrange(2**32), rng.randrange(2**32), echo=0 if rng.random() < 0.2 else big,
        digest=rng.randrange(2**64), version=3 if groups or rng.random() < 0.05 else packets.VERSION, groups=groups)


def sign(head: bytes) -> bytes:
    return head + hmac.digest(KEY, head, "sha256")


def mutate(frame: bytes, rng: random.Random) -> bytes:
    """1-4 changes to the head (magic, length, payload), then a valid MAC again."""
    head = bytearray(frame[: -packets.MAC_LEN])
    for _ in range(rng.choice((1, 1, 2, 3, 4))):
        op = rng.randrange(9)
        k = rng.randrange(len(head)) if head else 0
        if op == 0 and head:
            head[k] ^= 1 << rng.randrange(8)  # a bit flip
        elif op == 1 and head:
            head[k] = rng.choice((0, 1, 2, 3, 7, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op == 2:
            head[k:k] = bytes(rng.randrange(256) for _ in range(rng.choice((1, 2, 8, 16))))
        elif op == 3 and head:
            del head[k : k + rng.choice((1, 2, 8, 16))]
        elif op == 4 and len(head) > 5:  # the version byte
            head[5] = rng.choice((0, 1, 2, 3, 255))
        elif op == 5 and len(head) > 6:  # the role byte
            head[6] = rng.choice((0, 6, 7, 8, 255))
        elif op == 6:
            del head[rng.randrange(len(head) + 1):]  # truncated
        elif op == 7:
            head += bytes(rng.randrange(256) for _ in range(rng.choice((1, 4, 40))))
        elif op == 8 and len(head) > 60:  # a string length (the strings start at 5 + 49)
            head[rng.randrange(54, min(len(head), 80))] = rng.choice((0, 1, 200, 255, rng.randrange(256)))
        if len(head) >= 5 and rng.random() < 0.7:  # mostly a length that matches: the parser runs
            head[3:5] = struct.pack(">H", max(0, min(len(head) - 5, 0xFFFF)))
    return sign(bytes(head))


def check_frame(frame: bytes, mac: packets.Mac) -> int:
    """Every way the daemon reads a datagram; what is accepted must re-encode to the bytes."""
    accepted = 0
    got = packets.decode_datagram(frame, KEY)
    assert len(got) <= 1
    for p in got:
        assert packets.encode(p, KEY) == frame, p
        accepted += 1
    head = packets.datagram_head(frame, mac)
    if head is not None:
        p = packets.parse_head(head, packets.DecodeCounters())
        assert (p is None and not got) or [p] == got
    return accepted


def test_fuzz_the_packet_decoder_with_resigned_mutations():
    budget = Budget.from_env()
    mac = packets.Mac(KEY)
    n = accepted = stream_accepted = 0
    for i, rng in budget.cases():
        dec = packets.FrameDecoder(KEY, mac=mac)
        stream = bytearray()
        for _ in range(BATCH):
            base = random_packet(rng)
            if rng.random() < 0.1:
                base = packets.Packet(base.cluster, base.node, base.link, base.generation, base.seq, base.role, base.owned,
                                      base.flags, base.epoch, base.request, base.request_id, base.ack_id, version=1)
            try:
                frame = packets.encode(base, KEY)
            except ValueError:  # too large: not a frame anybody sends
                continue
            if rng.random() < 0.9:
                frame = mutate(frame, rng)
            n += 1
            try:
                accepted += check_frame(frame, mac)
                stream += frame if rng.random() < 0.8 else frame[: rng.randrange(len(frame) + 1)]
            except Exception as e:  # noqa: BLE001
                pytest.fail(f"decoder: seed {budget.seed} case {i}: {e!r} on {frame.hex()}")
        try:  # the same bytes as a serial stream, read in random chunks
            k = 0
            while k < len(stream):
                step = rng.choice((1, 7, 64, 4096))
                for p in dec.feed(bytes(stream[k : k + step])):
                    assert packets.encode(p, KEY) in stream
                    stream_accepted += 1
                k += step
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"stream decoder: seed {budget.seed} case {i}: {e!r}")
    print(f"\nfuzz decoder: {n} frames ({accepted} accepted as what they encode, {stream_accepted} from the stream), "
          f"seed {budget.seed}, {budget.elapsed:.1f}s")
    assert n > 0 and accepted > 0


# ------------------------------------------------------------------ the FSM


def _forged(rng: random.Random, sim: Sim, into, stale: bool) -> list:
    """Packets of *into*'s peer as (link, seq, fields, sig): captured ones with fields
    changed (re-signed: a key holder). stale: the echo is never *into*'s generation."""
    peer = sim.peer_of(into)
    captured = sim.net.capture[peer.name].packets()
    now_gen = into.daemon.generation if into.daemon is not None else 0
    out = []
    for _ in range(rng.choice((1, 1, 2, 5))):
        if captured and rng.random() < 0.8:
            link, seq, fields, _ = rng.choice(captured)
            fields = dict(fields)
        else:
            link, seq = rng.choice(sim.sc.links), rng.randrange(1, 10**4)
            fields = {"cluster": sim.sc.cluster, "node": peer.name, "generation": peer.generation, "role": Role.STANDBY,
                      "owned": (), "flags": 0, "epoch": 0, "request": 0, "request_id": 0, "ack_id": 0, "echo": 0, "digest": 0}
        for _ in range(rng.choice((1, 2, 3))):
            key = rng.choice(("role", "owned", "flags", "epoch", "generation", "seq", "request", "echo", "digest", "link", "node")
                             + (("groups",) * 3 if sim.sc.groups else ()))
            if key == "groups":  # format 3: each group's record said anything (or left out)
                fields["version"] = 3
                fields["groups"] = tuple(
                    packets.GroupRecord(i, rng.choice(tuple(Role)), rng.choice((0, packets.F_LEAVING, packets.F_STANDBY, packets.F_FAILED)),
                                        rng.choice((0, 1, 2**32 - 1)), rng.randrange(3), rng.randrange(2**32), 0,
                                        tuple(rng.sample(g.resources, rng.randrange(len(g.resources) + 1))))
                    for i, g in enumerate(sim.sc.groups) if rng.random() < 0.9)
            elif key == "role":
                fields["role"] = rng.choice(tuple(Role))
            elif key == "owned":
                fields["owned"] = tuple(rng.sample(sim.sc.ids, rng.randrange(len(sim.sc.ids) + 1))) + (("ghost",) if rng.random() < 0.1 else ())
            elif key == "flags":
                fields["flags"] = rng.choice((0, packets.F_LEAVING, packets.F_STANDBY, packets.F_FAILED, 0xFFFF))
            elif key == "epoch":
                fields["epoch"] = rng.choice((0, fields["epoch"] + 1, 2**32 - 1))
            elif key == "generation":
                fields["generation"] = rng.choice((fields["generation"] - 1, fields["generation"] + 1, peer.generation + 1, 2**64 - 1))
            elif key == "seq":
                seq = rng.choice((seq + 1, seq + 1000, 2**63))
            elif key == "request":
                fields["request"], fields["request_id"] = rng.randrange(3), rng.randrange(2**32)
            elif key == "echo":
                fields["echo"] = rng.choice((0, now_gen - 1, now_gen + 1, now_gen))
            elif key == "digest":
                fields["digest"] = rng.randrange(2**64)
            elif key == "link":
                link = rng.choice(sim.sc.links)
            else:
                fields["node"] = rng.choice(("node1", "node2", "node9"))
        if rng.random() < 0.4:  # the claims that would start the chain here if believed
            fields.update(role=Role.STANDBY, owned=(), flags=rng.choice((0, packets.F_LEAVING)), node=peer.name)
            if sim.sc.groups:
                fields.update(version=3, groups=tuple(packets.GroupRecord(i, Role.STANDBY, fields["flags"]) for i in range(len(sim.sc.groups))))
        if stale and fields["echo"] == now_gen:
            fields["echo"] = now_gen + 1
        out.append((link, seq, fields, ("forged", rng.random())))
    return out


def _run_fsm_case(rng: random.Random, stale: bool, groups: int = 1) -> tuple[Sim, int]:
    sc = draw_scenario(rng.randrange(10**6), groups)
    sim = Sim(sc, keep_going=True)
    sim.power_up()
    sim.run_until(sim.now + sc.start_gap_s + sc.liveness_bound_s, until=sim.audit.clean)
    n = 0
    end = sim.now + rng.uniform(3, 8) * sc.deadtime
    while sim.now < end and not sim.halted:
        sim.run_until(sim.now + rng.uniform(0.05, 0.6) * sc.deadtime)
        x = rng.choice(sim.node_list)
        r = rng.random()
        if r < 0.15:  # the peer looks dead: forged packets then matter most
            sim.peer_of(x).power_off("fuzz")
        elif r < 0.3:
            for (s, d, lk), ch in sim.net.channels.items():
                ch.cut = rng.random() < 0.5
                sim.net.touch(s, d, lk)
                sim.impaired(s, d)
        if x.daemon is not None and x.powered:
            forged = _forged(rng, sim, x, stale)
            n += len(forged)
            sim.inject(x, forged)
    sim.run_until(sim.now + 2 * sc.deadtime)
    return sim, n


@pytest.mark.parametrize("groups", [1, 2], ids=["one-chain", "two-groups"])
@pytest.mark.parametrize("stale", [False, True], ids=["any-content", "stale-echo"])
def test_fuzz_the_membership_fsm_with_forged_packets(stale, groups):
    """(two-groups: GroupMembership, with forged format 3 records: issue 17)"""
    budget = Budget.from_env()
    budget.seed += (1 if stale else 0) + (2 if groups == 2 else 0)
    audits = ("fsm-error",) + (("dual-run", "unsafe-start", "tiebreak") if stale else ())
    runs = packets_in = 0
    for i, rng in budget.cases():
        try:
            sim, n = _run_fsm_case(rng, stale, groups)
        except Exception as e:  # noqa: BLE001 - the simulator itself must not fail either
            pytest.fail(f"fsm fuzz ({'stale' if stale else 'any'}): seed {budget.seed} case {i}: {e!r}")
        runs += 1
        packets_in += n
        bad = [h for h in sim.violations if h.audit in audits]
        assert not bad, (f"fsm fuzz ({'stale' if stale else 'any'}): seed {budget.seed} case {i}: {bad[0].audit} "
                         f"{ {k: v for k, v in bad[0].evidence.items() if k != 'state'} }")
    print(f"\nfuzz fsm ({'stale echo' if stale else 'any content'}): {runs} simulated clusters, {packets_in} forged packets, "
          f"seed {budget.seed}, {budget.elapsed:.1f}s")
    assert runs > 0
