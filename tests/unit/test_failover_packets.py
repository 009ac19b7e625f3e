"""Heartbeat packets: round trip, HMAC, stream resync, garbage, replay (the key file: test_effects.py)."""

from __future__ import annotations

import hmac
import random

import pytest

from hasync.failover import packets
from hasync.failover.states import Role

KEY = b"0123456789abcdef0123456789abcdef"


def pkt(seq=1, gen=7, link="hb", **kw):
    return packets.Packet("nfs-ha", "node1", link, gen, seq, **kw)


def test_round_trip_all_fields():
    p = pkt(seq=42, role="active", owned=("fs", "vip"), flags=packets.F_STANDBY | packets.F_FAILED, epoch=3, request=packets.REQ_RELEASE, request_id=9, ack_id=4)
    frame = packets.encode(p, KEY)
    assert packets.decode_datagram(frame, KEY) == [p]
    assert p.flag_names() == ["standby", "failed"]


def test_bad_mac_is_dropped_and_counted():
    frame = bytearray(packets.encode(pkt(), KEY))
    c = packets.DecodeCounters()
    assert packets.decode_datagram(bytes(frame), b"another key of 32 bytes.........", c) == []
    assert c.bad_mac == 1
    frame[10] ^= 0x40  # flip a bit in the payload
    c = packets.DecodeCounters()
    assert packets.decode_datagram(bytes(frame), KEY, c) == []
    assert c.bad_mac == 1


def test_stream_resyncs_after_noise_and_split_reads():
    frames = [packets.encode(pkt(seq=i), KEY) for i in range(1, 6)]
    stream = b"\x00\xa5H" + frames[0] + b"garbage\xa5HS\x00\x10junk" + frames[1] + frames[2][:7]
    rest = frames[2][7:] + b"\xff" * 50 + frames[3] + frames[4]
    d = packets.FrameDecoder(KEY)
    got = d.feed(stream)
    for i in range(0, len(rest), 3):  # a slow tty: three bytes at a time
        got += d.feed(rest[i : i + 3])
    assert [p.seq for p in got] == [1, 2, 3, 4, 5]
    assert d.counters.garbage_bytes > 0


def test_random_garbage_never_raises():
    rnd = random.Random(4)
    d = packets.FrameDecoder(KEY)
    for _ in range(300):
        blob = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 200)))
        if rnd.random() < 0.3:
            blob = packets.MAGIC + blob
        assert d.feed(blob) == []
    # and it still decodes a real frame afterwards
    assert d.feed(packets.encode(pkt(seq=99), KEY))[-1].seq == 99


def test_authentic_but_malformed_payload_is_counted():
    import hashlib
    import hmac
    import struct

    payload = b"\x01" * 40  # right length range, nonsense inside
    head = struct.pack(">3sH", packets.MAGIC, len(payload)) + payload
    frame = head + hmac.new(KEY, head, hashlib.sha256).digest()
    c = packets.DecodeCounters()
    assert packets.decode_datagram(frame, KEY, c) == []
    assert c.malformed == 1


def test_replay_guard():
    g = packets.ReplayGuard()
    assert g.check(pkt(seq=5)) is None
    assert g.check(pkt(seq=5)) == "replay"
    assert g.check(pkt(seq=4)) == "replay"
    assert g.check(pkt(seq=5, link="serial")) is None  # sequences are per link
    assert g.check(pkt(seq=8)) is None and g.last_gap == 2
    assert g.check(pkt(seq=1, gen=8)) is None  # a restart: new generation
    assert g.check(pkt(seq=100, gen=7)) == "old-generation"


def test_frame_fits_a_small_serial_budget():
    frame = packets.encode(pkt(role="active", owned=("drbd", "vg", "fs", "vip", "nfs", "exports")), KEY)
    assert len(frame) < 160


def test_template_encoding_equals_full_encoding():
    p = pkt(seq=0, role="active", owned=("fs", "vip"), epoch=2)
    tpl = packets.encoder_template(p, KEY)
    for seq in (1, 2, 2**40):
        assert packets.encode_seq(tpl, seq, KEY) == packets.encode(packets.Packet(**{**p.__dict__, "seq": seq}), KEY)
    head = packets.encode(pkt(seq=5), KEY)[: -packets.MAC_LEN]
    assert packets.head_signature(head) == packets.head_signature(packets.encode(pkt(seq=6), KEY)[: -packets.MAC_LEN])
    assert packets.head_signature(head) != packets.head_signature(packets.encode(pkt(seq=6, role="active"), KEY)[: -packets.MAC_LEN])


def test_precomputed_mac_equals_hmac_sha256():
    import hmac as _hmac

    mac = packets.Mac(KEY)
    for msg in (b"", b"x", bytes(range(256)) * 3):
        assert mac.digest(msg) == _hmac.digest(KEY, msg, "sha256")
    assert packets.Mac(b"other key 123456").digest(b"x") != mac.digest(b"x")


def test_encode_seq_with_a_mac_object_equals_full_encoding():
    pkt = packets.Packet("c", "node1", "hb", 7, 0, role="active", owned=("vip",), epoch=3)
    tpl = packets.encoder_template(pkt, KEY)
    for seq in (1, 2, 2**40):
        want = packets.encode(packets.Packet("c", "node1", "hb", 7, seq, role="active", owned=("vip",), epoch=3), KEY)
        assert packets.encode_seq(tpl, seq, packets.Mac(KEY)) == want == packets.encode_seq(tpl, seq, KEY)


def test_datagram_fast_path_accepts_exactly_one_valid_frame():
    mac = packets.Mac(KEY)
    f = packets.encode(packets.Packet("c", "node1", "hb", 7, 9, role="standby"), KEY)
    head = packets.datagram_head(f, mac)
    assert head == f[: -packets.MAC_LEN]
    assert packets.parse_head(head, packets.DecodeCounters()).seq == 9
    bad = bytearray(f)
    bad[-1] ^= 1
    assert packets.datagram_head(bytes(bad), mac) is None  # bad MAC
    assert packets.datagram_head(packets.encode(packets.Packet("c", "node1", "hb", 7, 9), b"x" * 32), mac) is None  # other key
    assert packets.datagram_head(f + f, mac) is None  # two frames: the decoder's job
    assert packets.datagram_head(b"junk" + f, mac) is None  # garbage in front
    assert packets.datagram_head(f[:-1], mac) is None  # truncated
    assert packets.datagram_head(b"", mac) is None
    # whatever the fast path refuses, the decoder still handles (and counts) as before
    d = packets.FrameDecoder(KEY)
    assert [p.seq for p in d.feed(b"junk" + f)] == [9] and d.counters.garbage_bytes == 4


def test_format_2_carries_the_echo_and_the_settings_digest():
    p = pkt(seq=3, role="active", owned=("vip",), echo=2**64 - 1, digest=0x0123456789ABCDEF)
    frame = packets.encode(p, KEY)
    assert frame[5] == 2 == packets.VERSION
    assert packets.decode_datagram(frame, KEY) == [p]
    # the sequence number sits where the repeat fast path patches it, in both formats
    v1 = packets.encode(pkt(seq=3, version=1), KEY)
    assert int.from_bytes(frame[packets.SEQ_SLICE], "big") == 3 == int.from_bytes(v1[packets.SEQ_SLICE], "big")


def test_a_format_1_frame_is_still_read_never_fresh():
    """A node before the echo (a rolling upgrade): its frames decode with echo 0 and no
    digest, so they are never fresh (docs/failover.md, "Rolling upgrade")."""
    old = pkt(seq=9, role="active", owned=("fs",), epoch=4, version=1)
    frame = packets.encode(old, KEY)
    assert len(frame) == len(packets.encode(pkt(seq=9, role="active", owned=("fs",), epoch=4), KEY)) - 16
    (got,) = packets.decode_datagram(frame, KEY)
    assert got == old and got.echo == 0 and got.digest == 0 and got.version == 1
    assert packets.datagram_head(frame, packets.Mac(KEY)) == frame[: -packets.MAC_LEN]
    with pytest.raises(ValueError):
        packets.encode(pkt(version=1, echo=5), KEY)  # format 1 has no echo


def test_format_3_carries_one_record_per_group_and_format_2_none():
    rec = (packets.GroupRecord(0, Role.ACTIVE, packets.F_STANDBY, 7, packets.REQ_RELEASE, 11, 12, ("fs1", "vip1")),
           packets.GroupRecord(1, Role.STANDBY, 0, 3, 0, 0, 0, ()))
    p = packets.Packet("c", "node1", "hb", 5, 9, Role.ACTIVE, (), 0, 7, echo=4, digest=99, version=3, groups=rec)
    (back,) = packets.decode_datagram(packets.encode(p, KEY), KEY)
    assert back == p
    with pytest.raises(ValueError):  # a format 2 packet cannot carry groups
        packets.encode(packets.Packet("c", "node1", "hb", 5, 9, groups=rec), KEY)


def test_format_3_malformed_group_records_are_counted_not_raised():
    p = packets.Packet("c", "node1", "hb", 5, 9, version=3, groups=(packets.GroupRecord(0, Role.ACTIVE, owned=("fs",)),))
    frame = packets.encode(p, KEY)
    head = bytearray(frame[: -packets.MAC_LEN])
    for cut in range(1, 12):  # a record cut short anywhere, re-signed
        h = head[:-cut]
        h[3:5] = (len(h) - 5).to_bytes(2, "big")
        c = packets.DecodeCounters()
        assert packets.decode_datagram(bytes(h) + hmac.digest(KEY, bytes(h), "sha256"), KEY, c) == []
        assert c.malformed == 1
    dup = packets.Packet("c", "node1", "hb", 5, 9, version=3, groups=(packets.GroupRecord(0), packets.GroupRecord(0)))
    c = packets.DecodeCounters()
    assert packets.decode_datagram(packets.encode(dup, KEY), KEY, c) == [] and c.malformed == 1
