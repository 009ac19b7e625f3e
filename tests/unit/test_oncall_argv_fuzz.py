"""Fuzz the on-call verbs' argument parsing and what they read: `config show`, `resource
ID OP`, `history [show N]`, `standby|online [NODE]`, `maintenance on|off`, `cleanup`,
`stop|start`, `takeover` and `status`, with argv drawn from names, numbers, flags and
junk, against a state directory, a control socket and a config that are each fine,
missing, the wrong kind of file or garbled.

The only documented endings: a return of 0-4, or argparse's exit 2 (or 0 for --help);
any exception is a bug. An exit 2 that is not argparse's says why on stderr and, with
--json, ends stdout with an error object. Nothing is written outside the case's
directory (the defaults point there too). Bounded by HASYNC_FUZZ_BUDGET seconds
(default 3); HASYNC_FUZZ_SEED picks other inputs (the fuzzing.py conventions).
"""

from __future__ import annotations

import json
import random
import shutil
import stat
import traceback
from pathlib import Path

import pytest

from hasync import cli
from tests.unit.fuzzing import Budget
from tests.unit.test_cli import MINIMAL
from tests.unit.test_failover_status_view import status as status_doc
from tests.unit.test_oncall_bad_input import Answering

VERBS = (["config", "show"], ["config"], ["resource"], ["history"], ["history", "show"], ["standby"], ["online"],
         ["maintenance"], ["cleanup"], ["stop"], ["start"], ["takeover"], ["status"])
WORDS = ("alpha", "beta", "gamma", "demo", "vip", "", " ", "on", "off", "ON", "start", "stop", "monitor", "promote",
         "demote", "show", "x" * 300, "nœud", "😀", "[/x]", "\x1b[31m", "a b", "../..", "-", "--", "-x", "alpha\n")
NUMBERS = ("0", "1", "-1", "2", "-2", "99999999999999999999999", "-99999999999999999999999", "1e999", "nan", "inf",
           "-inf", "0.001", "-0", "0x10", "1_000", "١", " 3", "3 ", "1.5", "")
FLAGS = ("--json", "--force", "--foreground", "--dry-run", "--help", "--bogus")
VALUED = ("--wait", "--last", "--to")
REPLIES = (b"", b"garbage\n", b"[1]\n", b"{}\n", b'{"ok": true, "message": "accepted"}\n',
           b'{"ok": false, "message": "refused: no"}\n',
           json.dumps({"done": True, "ok": True, "role": "active", "peer_role": "standby", "peer_state": "up"}).encode() + b"\n",
           json.dumps(status_doc()).encode() + b"\n", json.dumps(dict(status_doc(), links=[{"name": 1}])).encode() + b"\n")
GARBLED = (b"{bad\n[1]\n", b'{"duration_ms": "x"}\n{"began": "b"}\n', b"\xff\n", b'{"events": [{"message": 5}]}\n',
           b'{"began": "a", "trigger": "t", "duration_ms": 1.5, "result": "active", "events": []}\n')
SCRIPT = "#!/bin/sh\necho \"demo $1\"\n[ \"$1\" = status ] && exit 3\nexit 0\n"


def config_file(case: Path, rng: random.Random) -> Path:
    """A config whose chain is one harmless script (never a real VIP on this host), or a
    broken one."""
    kind = rng.choice(("ok", "ok", "ok", "garbled", "missing", "dir"))
    cfg = case / "c.toml"
    if kind == "missing":
        return cfg
    if kind == "dir":
        cfg.mkdir()
        return cfg
    script = case / "demo"
    script.write_text(SCRIPT)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    text = MINIMAL.read_text()
    head, _, rest = text.partition("[[resource]]")
    text = head + f'[[resource]]\nid = "demo"\ntype = "heartbeat"\nagent = "{script}"\n\n[fencing]' + rest.split("[fencing]", 1)[1]
    if kind == "garbled":
        k = rng.randrange(len(text))
        text = text[:k] + rng.choice(("=", "[", '"', "\n[[node]]\n", "é" * 50)) + text[k:]
    cfg.write_text(text)
    return cfg


def state_dir(case: Path, rng: random.Random) -> Path:
    d = case / "state"
    kind = rng.choice(("fresh", "fresh", "missing", "file", "garbled", "marker-dir"))
    if kind == "missing":
        return d
    if kind == "file":
        d.write_text("x")
        return d
    d.mkdir()
    if kind == "garbled":
        (d / "history.jsonl").write_bytes(rng.choice(GARBLED) * rng.choice((1, 3)))
        (d / "last-failover.json").write_bytes(rng.choice((b"[1]", b"{", b'{"result": "in progress"}', b'{"events": 1}')))
    if kind == "marker-dir":
        (d / rng.choice(("maintenance", "stopped", "standby", "settings-new"))).mkdir()
    return d


# well-formed shapes, so that most cases get past argparse to the handlers
SHAPED = (("resource", "W", "OP"), ("history", "show", "N"), ("history", "--last", "N"), ("history",), ("standby", "W"),
          ("online", "W"), ("standby",), ("maintenance", "on"), ("maintenance", "off"), ("cleanup", "W"), ("cleanup",),
          ("stop",), ("start",), ("takeover",), ("status",), ("config", "show"))
OPS = ("start", "stop", "monitor", "promote", "demote")


def argv_for(rng: random.Random) -> list[str]:
    if rng.random() < 0.6:
        fill = {"W": lambda: rng.choice(WORDS), "OP": lambda: rng.choice(OPS), "N": lambda: rng.choice(NUMBERS)}
        out = [fill[w]() if w in fill else w for w in rng.choice(SHAPED)]
        if rng.random() < 0.5:
            out.append("--json")
        if out[0] == "resource" and rng.random() < 0.5:
            out.append("--force")  # the chain is a harmless script
        return out
    out = list(rng.choice(VERBS))
    for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 4))):
        pick = rng.random()
        if pick < 0.4:
            out.append(rng.choice(WORDS))
        elif pick < 0.65:
            out.append(rng.choice(NUMBERS))
        elif pick < 0.85:
            out.append(rng.choice(FLAGS))
        else:
            out += [rng.choice(VALUED), rng.choice(NUMBERS + WORDS)]
    if rng.random() < 0.2:
        tail = out[1:]
        rng.shuffle(tail)
        out[1:] = tail
    return out


def test_on_call_verbs_on_fuzzed_argv_and_state(tmp_path, monkeypatch, capsys):
    budget = Budget.from_env()
    monkeypatch.setenv("HASYNC_NODE", "alpha")
    monkeypatch.setattr("hasync.cli.failover.drbd_here", lambda args: None)  # no drbdadm here
    endings: dict[str, int] = {}
    for i, rng in budget.cases():
        case = tmp_path / f"c{i}"
        case.mkdir()
        run = case / "run"
        run.mkdir()
        sock = rng.choice(("none", "none", "file", "answers"))
        srv = None
        if sock == "file":
            (run / "failover.sock").write_text("")
        elif sock == "answers":
            srv = Answering(run / "failover.sock", rng.choice(REPLIES))
        cfg = config_file(case, rng)
        state = state_dir(case, rng)
        # the defaults point into the case too: a verb that forgets --state-dir writes nothing real
        monkeypatch.setenv("HASYNC_FAILOVER_STATE_DIR", str(state))
        monkeypatch.setenv("HASYNC_RUN_DIR", str(run))
        monkeypatch.setenv("HASYNC_CONFIG", str(cfg))
        argv = argv_for(rng)
        if rng.random() < 0.5:
            argv += ["--wait", "5"] if argv[0] in ("standby", "online", "maintenance", "cleanup", "stop", "start", "takeover") else []
        try:
            try:
                code = cli.main(argv)
                parsed = True
            except SystemExit as e:
                code, parsed = e.code, False
                assert code in (0, 2), f"argparse exit {code}"
            cap = capsys.readouterr()
            assert code in (0, 1, 2, 3, 4), f"exit {code}"
            printed_help = argv[0] == "config" and "show" not in argv  # `hasync config`: its help, exit 2
            if parsed and code == 2 and not printed_help:
                assert cap.err.strip(), "exit 2 without a word on stderr"
                flags = argv[: argv.index("--")] if "--" in argv else argv  # after "--": words, not flags
                if "--json" in flags and argv[0] != "status":
                    assert json.loads(cap.out.strip().splitlines()[-1])["ok"] is False
            made = {p.name for p in case.iterdir()} - {"run", "state", "c.toml", "demo"}
            assert not made, f"wrote {made} in the case directory"
        except Exception:
            pytest.fail(f"case seed={budget.seed} index={i} argv={argv!r} socket={sock}:\n{traceback.format_exc()}")
        finally:
            if srv:
                srv.close()
            shutil.rmtree(case, ignore_errors=True)
        endings[str(code)] = endings.get(str(code), 0) + 1
    print(f"on-call argv fuzz: {budget.count} cases in {budget.elapsed:.1f}s, exits {dict(sorted(endings.items()))}")
    assert budget.count > 20 and len(endings) >= 3  # it reached more than one way to end
