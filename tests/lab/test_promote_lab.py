"""A promotable OCF agent at the head of the chain, run by the real failover daemons.

The agent is a fake written by the test (a shell script in the OCF layout): it keeps its
state (stopped / started / promoted) in the node's private /run, records every call with
the meta attributes it was given, and behaves like ocf:linbit:drbd where that matters:
start, promote and demote refuse without notify=true (OCF_ERR_CONFIGURED), promote
refuses a resource that was not started, monitor says 8 when promoted and 0 when
started unpromoted. The daemon finds it promotable from its metadata (no promotable key).

/usr is shared by the lab's nodes (docs/lab.md), so the agent lives in a provider
directory of its own under the host's /usr/lib/ocf/resource.d, removed at the end.

The real ocf:linbit:drbd (drbd-utils) is asked only what it answers without a DRBD
kernel module: its metadata, and its refusal without the clone's meta attributes.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from hasync import model, operations
from hasync.config import agents

from .test_failover_lab import (
    lab_config,
    role,
    running_cluster,
    start_daemons,
    status,
    timeline,
    wait_for,
)

pytestmark = pytest.mark.lab

PROVIDER = f"hasynctest{os.getpid()}"
AGENT_DIR = Path("/usr/lib/ocf/resource.d") / PROVIDER
STATE, CALLS = "/run/hasync-fake-promotable.state", "/run/hasync-fake-promotable.calls"

FAKE_AGENT = r"""#!/bin/sh
# A fake promotable OCF agent for hasync's lab tests: state in STATE, calls in CALLS.
STATE=@STATE@
CALLS=@CALLS@
state=$(cat "$STATE" 2>/dev/null || echo stopped)
[ "$1" = meta-data ] || echo "$1 state=$state notify=$OCF_RESKEY_CRM_meta_notify clone_max=$OCF_RESKEY_CRM_meta_clone_max master_max=$OCF_RESKEY_CRM_meta_master_max interval=$OCF_RESKEY_CRM_meta_interval timeout=$OCF_RESKEY_CRM_meta_timeout" >> "$CALLS"
case "$1" in
start|promote|demote)
    # as ocf:linbit:drbd: "you really should enable notify when using this RA"
    [ "$OCF_RESKEY_CRM_meta_notify" = true ] || { echo "notify is not enabled" >&2; exit 6; } ;;
esac
case "$1" in
meta-data)
    cat <<'END'
<?xml version="1.0"?>
<resource-agent name="fake-promotable" version="1.0">
<version>1.0</version>
<shortdesc lang="en">a fake promotable agent</shortdesc>
<parameters/>
<actions>
<action name="start" timeout="10s" />
<action name="promote" timeout="10s" />
<action name="demote" timeout="10s" />
<action name="notify" timeout="10s" />
<action name="stop" timeout="10s" />
<action name="monitor" timeout="10s" interval="10s" />
<action name="meta-data" timeout="5s" />
</actions>
</resource-agent>
END
    exit 0 ;;
start) [ "$state" = stopped ] && echo started > "$STATE"; exit 0 ;;
promote) [ "$state" = stopped ] && { echo "cannot promote a resource that was not started" >&2; exit 1; }
    echo promoted > "$STATE"; exit 0 ;;
demote) [ "$state" = stopped ] && exit 1
    echo started > "$STATE"; exit 0 ;;
stop) echo stopped > "$STATE"; exit 0 ;;
monitor) case "$state" in promoted) exit 8 ;; started) exit 0 ;; *) exit 7 ;; esac ;;
*) exit 3 ;;
esac
"""


@pytest.fixture(scope="module")
def fake_agent():
    AGENT_DIR.mkdir(parents=True, exist_ok=True)
    path = AGENT_DIR / "fake"
    path.write_text(FAKE_AGENT.replace("@STATE@", STATE).replace("@CALLS@", CALLS))
    path.chmod(0o755)
    try:
        yield f"{PROVIDER}:fake"
    finally:
        shutil.rmtree(AGENT_DIR, ignore_errors=True)


def promotable_config(lab, agent: str) -> str:
    text = lab_config(lab)
    head = "\n".join(["[[resource]]", 'id = "db"', 'type = "ocf"', f'agent = "{agent}"', 'monitor_interval = "1s"', "", ""])
    i = text.index("[[resource]]")
    return text[:i] + head + text[i:]


def calls(lab, node: str) -> list[str]:
    r = lab.exec(node, ["sh", "-c", f"cat {CALLS} 2>/dev/null || true"])
    return r.stdout.splitlines()


def actions(lab, node: str) -> list[str]:
    """The agent's actions on *node* but its monitors."""
    return [c.split()[0] for c in calls(lab, node) if not c.startswith("monitor")]


def reset_agent(lab) -> None:
    for n in ("node1", "node2"):
        lab.exec(n, ["rm", "-f", STATE, CALLS], check=True)


def chain_ops(lab, node: str, op: str) -> list[str]:
    return [e["data"]["resource"] for e in timeline(lab, node) if e["kind"] == "resource" and e["data"].get("op") == op
            and e["data"].get("outcome") == "ok"]


def daemon_pids(lab, node: str) -> list[int]:
    out = []
    for pid in lab.pids(node):
        try:
            if b"failover\0run" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
        except OSError:
            pass
    return out


def test_takeover_starts_and_promotes_and_the_release_demotes(clean_lab, tmp_path, fake_agent):
    lab = clean_lab
    reset_agent(lab)
    # install runs `hasync check` on each node: no error
    with running_cluster(lab, tmp_path, text=promotable_config(lab, fake_agent)):
        # node1 took the chain: the agent's start, then its promote, then what sits on it
        assert actions(lab, "node1") == ["start", "promote"], calls(lab, "node1")
        assert chain_ops(lab, "node1", "start") == ["db", "fs", "vip", "demo"]
        assert all("notify=true clone_max=2 master_max=1" in c for c in calls(lab, "node1")), calls(lab, "node1")
        wait_for("a recurring monitor of the promoted instance",
                 lambda: any(c.startswith("monitor state=promoted") and "interval=1000" in c for c in calls(lab, "node1")), 10)
        assert actions(lab, "node2") == []  # the standby runs nothing (its start-up probe is a monitor)

        # a release hands the chain over: node1 demotes last and stays started; node2 starts, promotes
        r = lab.exec("node1", ["hasync", "standby"], timeout=60)
        assert r.exit_code == 0, r.stdout + r.stderr
        wait_for("node2 active", lambda: role(lab, "node2") == "active", 30)
        assert actions(lab, "node1") == ["start", "promote", "demote"], calls(lab, "node1")
        assert chain_ops(lab, "node1", "stop") == ["demo", "vip", "fs", "db"]
        assert lab.exec("node1", ["cat", STATE]).stdout.strip() == "started"
        assert actions(lab, "node2") == ["start", "promote"], calls(lab, "node2")
        assert lab.exec("node2", ["cat", STATE]).stdout.strip() == "promoted"

        # node1's daemon starts again: its probe finds the instance started but unpromoted,
        # which is no piece of the chain: nothing of it runs on node1 as the daemon sees it
        for pid in daemon_pids(lab, "node1"):
            os.kill(pid, signal.SIGTERM)
        wait_for("node1's daemon gone", lambda: not daemon_pids(lab, "node1"), 30)
        start_daemons(lab, tmp_path, ("node1",))
        wait_for("node1 standby again", lambda: role(lab, "node1") == "standby", 30)
        db = next(x for x in status(lab, "node1")["resources"] if x["id"] == "db")
        assert db["running_on"] == ["node2"] and db["state_here"] == "stopped", db
        assert "started but not promoted" in db["detail"], db
        assert role(lab, "node2") == "active" and lab.exec("node2", ["cat", STATE]).stdout.strip() == "promoted"


def test_without_notify_the_fake_refuses_as_drbd_does(fake_agent):
    # the fake holds the daemon to what ocf:linbit:drbd requires (checked on the real one below)
    assert agents.promotable(fake_agent)  # found from its metadata
    res = model.Resource("db", "ocf", fake_agent, promotable=True)
    plain = dataclasses.replace(res, promotable=False)
    ran = run_agent(str(AGENT_DIR / "fake"), "start", plain, os.environ["PATH"])
    assert ran.returncode == 6 and "notify" in ran.stderr


DRBD_AGENT = Path("/usr/lib/ocf/resource.d/linbit/drbd")


def run_agent(path: str, action: str, res: model.Resource, search_path: str) -> subprocess.CompletedProcess:
    cmds = [c for op in ("start", "stop", "status") for c in operations.commands(res, op)]
    env = dict(next(c.env for c in cmds if c.argv[-1] == action)) | {"PATH": search_path}
    return subprocess.run([path, action], env=env, capture_output=True, text=True, check=False, timeout=60)


@pytest.mark.skipif(not DRBD_AGENT.exists(), reason="drbd-utils' OCF agent is not installed")
def test_the_real_drbd_agent_is_promotable_and_takes_hasyncs_environment(tmp_path):
    assert agents.promotable("linbit:drbd", ocf_root=str(tmp_path))  # the known list, when not installed
    meta = subprocess.run([str(DRBD_AGENT), "meta-data"], capture_output=True, text=True, check=False,
                          env={"OCF_ROOT": "/usr/lib/ocf", "PATH": os.environ["PATH"]})
    assert meta.returncode == 0 and '<action name="promote"' in meta.stdout and '<action name="demote"' in meta.stdout
    assert agents.promotable("linbit:drbd")  # from the installed agent
    # No DRBD kernel module here: a `modinfo` that names a DRBD 9 module and a `modprobe`
    # that fails keep the agent from touching the kernel while it validates its environment.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "modinfo").write_text('#!/bin/sh\n[ "$*" = "-F version drbd" ] && echo 9.2.12 && exit 0\nexit 1\n')
    (bin_dir / "modprobe").write_text("#!/bin/sh\nexit 1\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    conf = tmp_path / "drbd.conf"
    conf.write_text(f"resource r0 {{ on {os.uname().nodename} {{ device /dev/drbd0 minor 0; disk /dev/null; "
                    "address 10.0.0.1:7789; meta-disk internal; } on peer { device /dev/drbd0 minor 0; disk /dev/null; "
                    "address 10.0.0.2:7789; meta-disk internal; } }\n")
    res = model.Resource("drbd", "ocf", "linbit:drbd", params={"drbd_resource": "r0", "drbdconf": str(conf)}, promotable=True)
    path = f"{bin_dir}:{os.environ['PATH']}"
    # as a plain primitive it refuses the configuration ...
    plain = run_agent(str(DRBD_AGENT), "start", dataclasses.replace(res, promotable=False), path)
    assert plain.returncode == 6 and "you really should enable notify" in plain.stderr, plain.stderr
    # ... with the clone's meta attributes hasync gives it, it validates and goes on to load the module
    for action in ("start", "demote"):  # (a promote that fails sleeps 15 s against a tight loop)
        given = run_agent(str(DRBD_AGENT), action, res, path)
        assert "notify" not in given.stderr and "meta parameter misconfigured" not in given.stderr, given.stderr
        if action == "start":
            assert given.returncode == 5 and "Cannot load the drbd module" in given.stderr, given.stderr
