"""The lab lock under Ctrl-C (hasync_lab/ns/locks.py): a lab command interrupted right
after the lock was granted, or while waiting for it, never leaves the next command (in
the same process or another) waiting forever; the threads of one process still take
turns; an interrupted `hasync lab` verb says how to finish or remove the lab.

Each case runs in a subprocess sent a real SIGINT. No root needed: the lock is a file."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from hasync_lab import lab_verbs
from hasync_lab.ns.locks import FileLock, holder
from hasync_lab.ns.store import Store

REPO = Path(__file__).resolve().parents[2]

# Holds the lock the way an interrupt catches it just after it was granted: the lock's
# __enter__ has returned its value, the `with` has not begun (a tracer parks it there),
# and the KeyboardInterrupt is kept, traceback and all, as pytest keeps it for its report.
# Then the clean-up takes the lock again (a fixture's lab.down()).
GRANTED_THEN_INTERRUPTED = """
import faulthandler, sys, time
from hasync_lab.ns.store import Store
store = Store("x1", root=sys.argv[1])

def tracer(frame, event, arg):
    if frame.f_code.co_name == "__enter__":
        if event == "return":
            print("granted", flush=True)
            time.sleep(30)  # the SIGINT lands here
        return tracer
    return None

sys.settrace(tracer)
try:
    with store.lock():
        sys.settrace(None)
        print("body ran", flush=True)
except KeyboardInterrupt as e:
    sys.settrace(None)
    kept = e
    print("interrupted", flush=True)
faulthandler.dump_traceback_later(10, exit=True)  # a deadlock ends the child, loudly
with store.lock():
    print("cleaned up", flush=True)
"""

HOLD = """
import sys, time
from hasync_lab.ns.store import Store
with Store("x1", root=sys.argv[1]).lock():
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


# A process started with SIGINT ignored (any background job of a non-interactive shell,
# as CI may run the tests) passes that on, and Python then installs no KeyboardInterrupt
# handler: the child puts Ctrl-C's back first, as a terminal would have it.
CTRL_C = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def child(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CTRL_C + textwrap.dedent(code), *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_an_interrupt_just_after_the_lock_was_granted_does_not_deadlock_the_clean_up(tmp_path):
    p = child(GRANTED_THEN_INTERRUPTED, str(tmp_path))
    assert p.stdout.readline().strip() == "granted"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert out.split() == ["interrupted", "cleaned", "up"], (out, err)
    assert p.returncode == 0, err


def test_an_interrupt_while_waiting_leaves_the_holder_alone_and_the_next_one_gets_it(tmp_path):
    a = child(HOLD, str(tmp_path), "4")
    assert a.stdout.readline().strip() == "holding"
    b = child(HOLD, str(tmp_path), "0")
    time.sleep(0.5)
    b.send_signal(signal.SIGINT)
    _, err = b.communicate(timeout=10)
    assert b.returncode != 0 and "KeyboardInterrupt" in err  # it never held it
    assert a.poll() is None and holder(tmp_path / ".x1.lock").startswith(f"{a.pid} ")
    c = child(HOLD, str(tmp_path), "0")
    out, err = c.communicate(timeout=30)
    a.communicate(timeout=10)
    assert out.strip() == "holding", err


def test_a_waiter_says_who_holds_the_lock(tmp_path):
    a = child(HOLD, str(tmp_path), "1.5")
    assert a.stdout.readline().strip() == "holding"
    b = child("import hasync_lab.ns.locks as locks\nlocks.WAIT_NOTICE_S = 0.2\n" + textwrap.dedent(HOLD), str(tmp_path), "0")
    out, err = b.communicate(timeout=30)
    a.communicate(timeout=10)
    assert out.strip() == "holding" and f"held by {a.pid} " in err, err


def test_one_process_takes_it_again_and_its_threads_take_turns(tmp_path):
    lock = tmp_path / ".x.lock"
    with FileLock(lock), FileLock(lock):  # nested: no wait on itself
        pass
    inside: list[int] = []
    overlap: list[bool] = []

    def worker(n: int) -> None:
        for _ in range(20):
            with FileLock(lock):
                inside.append(n)
                overlap.append(len(inside) > 1)
                time.sleep(0.001)
                inside.remove(n)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(overlap) == 60 and not any(overlap)


def test_store_locks_are_file_locks(tmp_path):
    store = Store("x2", root=str(tmp_path))
    with store.lock(), store.root_lock():
        assert holder(tmp_path / ".x2.lock").split()[0].isdigit() and (tmp_path / ".root.lock").exists()


def test_an_interrupted_lab_verb_says_how_to_finish_or_remove_the_lab(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    guarded = lab_verbs._guard(interrupted)
    monkeypatch.setattr(lab_verbs, "inside_node", lambda: False)
    assert guarded(argparse.Namespace(name="t1")) == 130
    err = " ".join(capsys.readouterr().err.split())
    assert "interrupted: lab 't1' may be half made" in err and "hasync lab up --name t1" in err
    assert "hasync lab down --name t1" in err
