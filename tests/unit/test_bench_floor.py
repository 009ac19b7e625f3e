"""The idle-CPU floor loop of the failover bench: it runs, exchanges datagrams, builds in C."""

from __future__ import annotations

import hmac
import shutil
import socket
import subprocess
import time

import pytest

from hasync_lab.bench import failover_floor as bf


def _valid(data: bytes) -> int | None:
    """The sequence number of a floor heartbeat (68-byte head + HMAC-SHA256 with the
    floor's key), None if it is not one."""
    if len(data) != 100 or not hmac.compare_digest(hmac.digest(bf.KEY, data[:68], "sha256"), data[68:]):
        return None
    return int.from_bytes(data[60:68], "big")


def _sniff(argv: list[str]) -> int:
    """Run the loop against a listener standing in for the peer; valid heartbeats with
    rising sequence numbers received in 0.5 s."""
    port = bf.PORT
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.2", port))
        peer.settimeout(0.05)
        p = subprocess.Popen(argv, stderr=subprocess.PIPE)
        try:
            seqs, end = [], time.monotonic() + 0.5
            while time.monotonic() < end:
                try:
                    seq = _valid(peer.recv(2048))
                except TimeoutError:
                    continue
                assert seq is not None, "a datagram that is not an authenticated floor heartbeat"
                seqs.append(seq)
            assert seqs == sorted(set(seqs)), seqs  # one per tick, never repeated
            got = len(seqs)
            assert p.poll() is None, p.stderr.read()
        finally:
            p.kill()
            p.wait()
    return got


def test_python_floor_sends_authenticated_heartbeats_on_its_rhythm():
    got = _sniff(bf.argv_python(0.01, [("127.0.0.1", "127.0.0.2")]))
    assert 20 <= got <= 60  # 10 ms for 0.5 s, give or take start-up


def test_c_floor_builds_and_runs(tmp_path):
    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler")  # make setup installs one (apt-packages.txt); a bare host may not have it
    binary, why = bf.build_c(tmp_path)
    assert binary is not None, why
    got = _sniff(bf.argv_c(binary, 0.01, [("127.0.0.1", "127.0.0.2")]))
    assert 20 <= got <= 60


def test_argv_shapes():
    assert bf.argv_python(0.02, [("a", "b"), ("c", "d")])[-5:] == ["0.02", "a", "b", "c", "d"]
    assert bf.argv_c(bf.Path("/x/floor"), 0.01, [("a", "b")]) == ["/x/floor", "0.01", "a", "b"]
    assert str(bf.PORT) in bf.c_source() and "%PORT%" not in bf.c_source()
    with pytest.raises(SystemExit):
        bf.main(["0.01", "only-one"])
