"""Fuzz `hasync check` with mutated configs and `hasync haresources import` with mutated
haresources/ha.cf files (issue 12, item 13).

The only documented rejection is a report of errors (check) or a ConfigError (import),
each line naming its file; any other exception is a bug. A config that passes check must
encode its worst-case heartbeat packet and render its summary; the import's output must
always parse as TOML. Bounded by HASYNC_FUZZ_BUDGET seconds per test (default 3);
HASYNC_FUZZ_SEED picks other inputs. Run with -s to see the counts.
"""

from __future__ import annotations

import random
import re
import time
import tomllib
import traceback
from pathlib import Path

import pytest

from hasync import cli, config
from hasync.config import paths as sync_paths
from hasync.config.importer import import_heartbeat
from hasync.failover import packets
from tests.unit.fuzzing import Budget, mutate_bytes, mutate_toml

REPO = Path(__file__).resolve().parents[2]
SLOW = 5.0  # seconds for one check: generous on a loaded machine (a normal one takes ms)
DATA = Path(__file__).parent / "data"
FIELD_NOTES = b"""\
node1       drbddisk::ha-disk0  \\
            Filesystem::/dev/drbd0::/home::ext3 \\
            IPaddr::10.0.0.10 \\
            nfsboot nfsserver nfslock
"""
HA_CF = b"""\
logfacility local0
keepalive 2
deadtime 30
warntime 10
initdead 120
udpport 694
serial /dev/ttyS0
baud 19200
bcast eth1
mcast eth2 239.0.0.43 694 1 0
ucast eth3 10.0.0.2
auto_failback off
ping 10.0.0.254
node node1
node node2
"""


def _haresources_config() -> str:
    text = (DATA / "config" / "good" / "minimal.toml").read_text()
    text = 'haresources = "haresources"\n' + text[: text.index("[[resource]]")] + text[text.index("[fencing]"):]
    return text.replace('"alpha"', '"node1"').replace("alpha =", "node1 =")


BASES = [
    (DATA / "config" / "good" / "minimal.toml").read_text(),
    (REPO / "profiles" / "cluster" / "example.toml").read_text(),
    (DATA / "bootstrap" / "golden" / "lab-cluster.toml").read_text(),
    _haresources_config(),
]


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    """What a mutated config may point at: a haresources file (mutated per case), a
    directory, a binary file, a Latin-1 file."""
    (tmp_path / "adir").mkdir()
    (tmp_path / "binary").write_bytes(b"\x7fELF\x00\x01" * 50)
    (tmp_path / "latin1").write_bytes("node1 IPaddr::10.0.0.1 données\n".encode("latin-1"))
    return tmp_path


def _fail(kind: str, budget: Budget, i: int, data: bytes, workdir: Path) -> None:
    keep = workdir / f"fuzz-{kind}-{budget.seed}-{i}"
    keep.write_bytes(data)
    pytest.fail(f"{kind} case seed={budget.seed} index={i} (input kept in {keep}):\n{traceback.format_exc()}")


def _worst_case_encodes(cluster) -> None:
    owned = tuple(r.id for r in cluster.resources)
    for node in cluster.nodes:
        for link in cluster.heartbeat.links:
            packets.encode(packets.Packet(cluster.cluster.name, node.name, link.name, 2**64 - 1, 2**64 - 1,
                                          "active", owned, 0xFFFF, 2**32 - 1), b"k" * 32)


def test_fuzz_check(workdir, capsys):
    budget = Budget.from_env()
    cfg = workdir / "cluster.toml"
    located = re.compile(rf"^({re.escape(str(workdir))}/\S*?|{re.escape(str(REPO))}/\S*?)(:\d+)?: ")
    valid = rejected = 0
    for i, rng in budget.cases():
        text = mutate_toml(rng.choice(BASES), rng)
        (workdir / "haresources").write_bytes(mutate_bytes(FIELD_NOTES, rng) if rng.random() < 0.5 else FIELD_NOTES)
        try:
            cfg.write_text(text, encoding="utf-8", errors="surrogatepass")
            started = time.monotonic()
            cluster, report = config.check(cfg)
            # nothing pathological: the old line index took 10 s on one line of 16k blanks
            assert time.monotonic() - started < SLOW, f"check took {time.monotonic() - started:.1f}s"
            for line in report.errors + report.warnings:
                assert located.match(line), f"not file:line: {line!r}"
            if cluster is None:
                assert report.errors
                rejected += 1
                continue
            valid += 1
            _worst_case_encodes(cluster)  # item 10: check passed -> the send path cannot raise
            assert not [p for p in cluster.sync.paths if sync_paths.normalize_path(p) in sync_paths.REFUSED_SYNC_ROOTS]
            if i % 10 == 0:  # the whole command, summary and all (rich markup)
                assert cli.main(["check", str(cfg)]) == 0
                capsys.readouterr()
        except Exception:
            _fail("check", budget, i, text.encode("utf-8", "surrogatepass"), workdir)
    print(f"\nfuzz check: {budget.count} configs ({valid} valid, {rejected} rejected), seed {budget.seed}, {budget.elapsed:.1f}s")
    assert budget.count > 0 and valid > 0 and rejected > 0


# file names a haresources file may have: they end up in a TOML comment
NAMES = ("haresources", "hares\nources", 'ha"res', "härësources", "h\x7fa", "h😀")


def test_fuzz_haresources_import(workdir, capsysbinary):
    budget = Budget.from_env()
    ok = rejected = latin1 = 0
    for i, rng in budget.cases():
        hr = workdir / rng.choice(NAMES)
        cf = workdir / "ha.cf"
        hr_data = mutate_bytes(FIELD_NOTES, rng)
        cf_data = mutate_bytes(HA_CF, rng) if rng.random() < 0.8 else HA_CF
        hr.write_bytes(hr_data)
        cf.write_bytes(cf_data)
        with_cf = rng.random() < 0.7
        try:
            try:
                imported = import_heartbeat(str(hr), str(cf) if with_cf else None)
            except config.ConfigError as e:
                assert e.issues and all(x.startswith((str(hr), str(cf))) for x in e.issues), e.issues
                rejected += 1
                continue
            tomllib.loads(imported.toml)  # the output always parses
            imported.toml.encode("utf-8")
            latin1 += any("Latin-1" in n for n in imported.notes)
            ok += 1
            if i % 10 == 0:  # the command itself: bytes on stdout, notes on stderr
                assert cli.main(["haresources", "import", str(hr)] + (["--ha-cf", str(cf)] if with_cf else [])) == 0
                tomllib.loads(capsysbinary.readouterr().out.decode("utf-8"))
        except Exception:
            _fail("import", budget, i, hr_data + b"\n--- ha.cf ---\n" + cf_data, workdir)
    print(f"\nfuzz import: {budget.count} haresources/ha.cf pairs ({ok} imported, {latin1} read as Latin-1, "
          f"{rejected} rejected), seed {budget.seed}, {budget.elapsed:.1f}s")
    assert budget.count > 0 and ok > 0 and rejected > 0


def test_the_mutators_are_deterministic():
    """A failure's seed and index rebuild its input exactly."""
    a = mutate_toml(BASES[0], random.Random("12:7")), mutate_bytes(FIELD_NOTES, random.Random("12:7"))
    b = mutate_toml(BASES[0], random.Random("12:7")), mutate_bytes(FIELD_NOTES, random.Random("12:7"))
    assert a == b
