"""`hasync lab bench failover`: crash the active node, time until the VIP answers from node2.

For hasync, heartbeat 3 (haresources, IPaddr2) and keepalived (VRRP, unicast), side by
side in one namespace lab:

1. soak: every setting of a tool runs at once (one daemon pair per setting, each with
   its own VIP) for --soak seconds while two busy processes keep both cores loaded and
   node2 drops 1 % of the packets on its public link (nft `numgen random` in its
   namespace, both directions; this kernel has no netem). Each time a VIP appears on
   node2 is a false failover (`ip monitor address` in node2).
2. trials: for the default, for every setting faster than the fastest safe one, and
   for the fastest safe one: start the pair, wait for the VIP on node1, start the
   client probe (client1 connects to VIP:port in a tight loop; a listener on each node
   answers with its name), crash node1 (`Lab.crash`: processes stopped, links down,
   killed) and take the first answer from node2. The clock starts right before the
   crash call; the time includes the crash's own work (scanning /proc, `ip link`).
3. at rest: CPU (utime + stime of every process of the pair, from /proc/PID/stat: the
   kernel scales them to the exact run time, dead threads included) and RSS of each tool's pair at its fastest safe setting
   and at its defaults, and the floor: the bare heartbeat loop (2 links, HMAC, timer
   wake-ups only) at hasync's fastest keepalive, in CPython and in C (built with cc when
   present). The JSON's ``daemon`` is hasync on the active node at its fastest safe
   setting, with its defaults and the floor beside it; ``idle`` lists every measurement.

Prints progress on stderr; --json prints the figures as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hasync.model import Heartbeat
from hasync_lab.bench import failover_floor as bf
from hasync_lab.bench import failover_settings as bs
from hasync_lab.bench.failover_trials import Bench
from hasync_lab.ns import Lab

DEFAULT_LAB = "fbench"
HASYNC_RUN = ["hasync", "-c", "{config}", "failover", "run"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hasync lab bench failover",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    p.add_argument("--soak", type=float, default=120.0, metavar="SECONDS", help="soak length per tool (default 120)")
    p.add_argument("--trials", type=int, default=10, metavar="N", help="failovers per setting (default 10)")
    p.add_argument("--quick", action="store_true", help="smoke run: one fast setting per tool, 2 trials, 5 s soak")
    p.add_argument("--tools", default=",".join(bs.TOOLS), help="comma-separated subset of hasync,heartbeat,keepalived")
    p.add_argument("--soak-mode", choices=("each", "together"), default="each",
                   help="each: soak one setting at a time, fastest first, until one shows no false "
                        "failover (the default setting rides along with the first); together: all of "
                        "a tool's settings in one soak (faster, but a flapping pair loads the others)")
    p.add_argument("--no-defaults", action="store_true", help="skip the tools' default settings")
    p.add_argument("--defaults-only", action="store_true",
                   help="soak, crash and measure at rest only each tool's defaults (no faster settings, no floor): "
                        "the check of a change of the built-in timings")
    p.add_argument("--idle", type=float, default=20.0, metavar="SECONDS", help="window for the daemon's idle CPU (default 20)")
    p.add_argument("--idle-only", action="store_true",
                   help="measure only the daemons at rest: each of --tools at its fastest tried setting (no soak ran, "
                        "so not known to be safe) and its defaults, and the floor loops; hasync's fast setting "
                        "--idle-runs times (a fresh pair each); no soak, no trials")
    p.add_argument("--idle-runs", type=int, default=1, metavar="N", help="idle measurements (default 1; the JSON's daemon "
                   "figures and the floors are medians of the active node's, every run is in idle)")
    p.add_argument("--lab", default=None, metavar="NAME", help=f"lab to use; made (and removed after) if not up (default {DEFAULT_LAB})")
    p.add_argument("--workdir", default="/var/tmp/hasync-bench", help="daemon configs and logs (kept after the run)")
    p.add_argument("--markdown", metavar="JSON", help="print a saved run (the --json output) as a markdown table and exit")
    p.add_argument("--hasync-run", default=shlex.join(HASYNC_RUN), help="how a node starts the hasync daemon; {config} is replaced (default: %(default)s)")
    return p


def _console():
    return Console(stderr=True, highlight=False, width=max(120, Console(stderr=True).width))


def _median(values):
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    m = len(v) // 2
    return v[m] if len(v) % 2 else round((v[m - 1] + v[m]) / 2, 2)


def open_lab(name: str | None, console):
    lab = Lab(name or DEFAULT_LAB)
    made = False
    if not lab.exists():
        console.log(f"lab {lab.name!r}: bringing it up")
        lab.up()
        made = True
    else:
        lab.reset()
    return lab, made


def run_tool(bench: Bench, tool: str, args, hb, rows: dict, console) -> bs.Setting | None:
    """Soak then trials for one tool; appends its rows; returns its fastest safe setting."""
    ordered = list(bs.quick_candidates(tool) if args.quick else bs.candidates(tool))
    default = bs.default_setting(tool, (hb.keepalive, hb.deadtime))
    with_default = not (args.quick or args.no_defaults)
    console.rule(f"{tool}")
    if args.defaults_only:
        ordered = []
        soaked = bench.soak(tool, [default])
    elif args.soak_mode == "together":
        soaked = bench.soak(tool, ([default] if with_default else []) + ordered)
    else:
        soaked = {}
        for i, s in enumerate(ordered):
            soaked.update(bench.soak(tool, ([default] if with_default and i == 0 else []) + [s]))
            if soaked[s.key] == 0:
                break
    plan = bs.trial_plan(default, ordered, soaked)
    if not with_default:
        plan = plan[1:]
    safe = bs.fastest_safe(soaked, ordered)
    if safe is None and ordered:
        console.log(f"[yellow]{tool}: no tried setting survived the soak[/yellow]")
    rows[tool] = []
    for setting, role in plan:
        console.log(escape(f"{tool} [{role}] {setting.label}: {args.trials} trials"))
        samples, failed = bench.trials(tool, setting, args.trials)
        rows[tool].append(bs.Figures(setting, tuple(samples), soaked.get(setting.key), failed, role))
    return safe


def measure_idle(bench: Bench, args, tools: list[str], safe: dict, meta: dict, console) -> dict:
    """Every daemon at rest: each tool at its default and at its fastest safe setting
    (with --idle-only, at its fastest tried one: no soak ran), and the floor (the bare
    heartbeat loop, CPython and C) at hasync's keepalive. The hasync figure at the fast
    setting and the floors are medians of --idle-runs measurements (the JSON's ``daemon``)."""
    idle_tools = [t.strip() for t in (args.tools.split(",") if args.idle_only else tools) if t.strip()]
    if args.quick:
        idle_tools = [t for t in idle_tools if t == "hasync"]  # the smoke run: hasync's fast setting only
    rows: list[dict] = []
    daemon: dict = {}
    lab = bench.lab

    def one(tool: str, setting: bs.Setting, role: str, runs: int = 1) -> dict | None:
        got = []
        for i in range(max(1, runs)):
            console.log(f"{tool} at rest ({setting.label}): {args.idle:g} s" + (f", run {i + 1}" if runs > 1 else ""))
            try:
                fp = bench.daemon_footprint(setting, args.idle, tool=tool)
            except Exception as e:
                console.log(f"[red]{tool} at rest: {escape(str(e))}[/red]")
                meta.setdefault("errors", {})[f"idle {tool} {setting.label}"] = str(e)[-2000:]
                continue
            got.append(fp)
            rows.append({"tool": tool, "setting": setting.label, "role": role, "run": i + 1,
                         "loadavg": round(os.getloadavg()[0], 2), **fp})
        if not got:
            return None
        active = [g.get(lab.nodes[0], {}) for g in got]
        return {"idle_cpu_pct": _median([a.get("idle_cpu_pct") for a in active]),
                "rss_mb": _median([a.get("rss_mb") for a in active])}

    hb = Heartbeat()
    fast_hasync = None
    for tool in idle_tools:
        fast = bs.candidates(tool)[0] if args.idle_only else safe.get(tool)
        if args.defaults_only:
            pass  # the defaults only, below
        elif tool == "hasync":
            fast = fast or bs.candidates("hasync")[-1]
            fast_hasync = fast
            d = one(tool, fast, "fastest safe" if not args.idle_only else "fastest tried", args.idle_runs)
            if d:
                daemon.update(d, setting=fast.label)
        elif fast is not None:
            one(tool, fast, "fastest safe" if not args.idle_only else "fastest tried")
        if args.quick:
            continue  # the smoke run: no defaults, no floor
        default = bs.default_setting(tool, (hb.keepalive, hb.deadtime) if tool == "hasync" else None)
        d = one(tool, default, "default")
        if tool == "hasync" and d:
            daemon.update(defaults_idle_cpu_pct=d["idle_cpu_pct"], defaults_setting=default.label)
    if fast_hasync is not None and not args.quick:
        period = fast_hasync.keepalive
        floors = [("python", lambda pairs: bf.argv_python(period, pairs))]
        binary, why = bf.build_c(bench.work / "floor")
        if binary is not None:
            floors.append(("c", lambda pairs: bf.argv_c(binary, period, pairs)))
        else:
            console.log(f"[yellow]floor in C skipped: {escape(why)}[/yellow]")
            meta["floor_c_skipped"] = why
        for kind, argv_for in floors:
            got = []
            for i in range(max(1, args.idle_runs)):
                console.log(f"floor ({kind}: the bare heartbeat loop every {period * 1000:g} ms, 2 links): {args.idle:g} s"
                            + (f", run {i + 1}" if args.idle_runs > 1 else ""))
                try:
                    fp = bench.floor_footprint(argv_for, args.idle)
                except Exception as e:
                    console.log(f"[red]floor {kind}: {escape(str(e))}[/red]")
                    meta.setdefault("errors", {})[f"floor {kind}"] = str(e)[-2000:]
                    continue
                got.append(fp["idle_cpu_pct"])
                rows.append({"tool": f"floor-{kind}", "setting": f"keepalive {period * 1000:g}ms", "role": "floor", "run": i + 1,
                             "loadavg": round(os.getloadavg()[0], 2), lab.nodes[0]: fp})
            if got:
                daemon[f"floor_{kind}_pct"] = _median(got)
    return {"daemon": daemon, "rows": rows}


def run(args, console) -> dict:
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for t in tools:
        if t not in bs.TOOLS:
            raise SystemExit(f"unknown tool {t!r} (known: {', '.join(bs.TOOLS)})")
    if args.defaults_only and (args.no_defaults or args.quick or args.idle_only):
        raise SystemExit("--defaults-only measures the defaults alone: not with --no-defaults, --quick or --idle-only")
    if args.quick:
        args.trials, args.soak, args.idle = min(args.trials, 2), min(args.soak, 5.0), min(args.idle, 3.0)
    hb = Heartbeat()
    if args.idle_only:
        tools = []
    lab, made = open_lab(args.lab, console)
    rows: dict[str, list[bs.Figures]] = {}
    daemon: dict = {}
    idle_rows: list[dict] = []
    safe: dict[str, bs.Setting | None] = {}
    meta: dict = {
        "command": "hasync lab bench failover " + " ".join(args.argv),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "soak_s": args.soak,
        "trials": args.trials,
    }
    bench = Bench(lab, args, console)
    try:
        for tool in tools:
            try:
                safe[tool] = run_tool(bench, tool, args, hb, rows, console)
            except Exception as e:  # one tool's trouble must not lose the others' figures
                console.log(f"[red]{tool}: {escape(str(e))}[/red]")
                meta.setdefault("errors", {})[tool] = str(e)[-2000:]
            finally:
                # keep what was measured so far, whatever happens to the rest of the run
                partial = bs.report(rows, daemon, meta)
                (bench.work / "partial.json").write_text(json.dumps(partial, indent=2, default=str))
        idle = measure_idle(bench, args, tools, safe, meta, console)
        daemon = idle.pop("daemon")
        idle_rows = idle.pop("rows")
    finally:
        meta["loadavg_end"] = os.getloadavg()
        meta["crash_call_s"] = bs.summarize(bench.crash_s)
        meta["soak_stalls"] = bench.soak_stalls
        meta["soak_daemons"] = bench.soak_daemons
        if made:
            console.log(f"lab {lab.name!r}: taking it down")
            lab.down()
        else:
            lab.reset()
    return bs.report(rows, daemon, meta, idle_rows)


def table(doc: dict):
    t = Table(title="failover: crash of node1 -> VIP answers from node2", title_justify="left")
    for col in ("tool", "setting", "role", "median s", "min s", "max s", "trials", "false failovers"):
        t.add_column(col)
    for tool in bs.TOOLS:
        for r in doc.get(tool, []):
            f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
            t.add_row(tool, r["setting"], r["role"], f(r["median_s"]), f(r["min_s"]), f(r["max_s"]),
                      f"{r['trials']}" + (f" (+{r['failed_trials']} failed)" if r["failed_trials"] else ""),
                      "-" if r["false_failovers"] is None else str(r["false_failovers"]))
    t.caption = at_rest_line(doc.get("daemon", {}))
    return t


def soak_lines(meta: dict) -> list[str]:
    """What each hasync daemon saw of the soak's load: its worst wake-up, stalls, late heartbeats."""
    rows = [(key.split(":", 1)[1], node, f) for key, per in meta.get("soak_daemons", {}).items() for node, f in per.items()]
    if not rows:
        return []
    dash = lambda v: "–" if v is None else str(v)  # noqa: E731
    out = ["", "| soak | node | worst late wake-up ms | stalls (threshold ms) | late heartbeats | longest late gap logged ms |",
           "|---|---|---:|---:|---:|---:|"]
    for setting, node, f in rows:
        out.append(f"| {setting} | {node} | {dash(f.get('worst_late_wake_ms'))} | {dash(f.get('scheduler_stalls'))} "
                   f"({dash(f.get('stall_threshold_ms'))}) | {dash(f.get('late_heartbeats'))} | {dash(f.get('worst_late_gap_ms'))} |")
    return out


def at_rest_line(d: dict) -> str:
    """The hasync daemon at rest: at its fastest safe setting, or (--defaults-only) at its defaults."""
    if d.get("idle_cpu_pct") is None and d.get("defaults_idle_cpu_pct") is not None:
        return f"hasync daemon at rest: {d['defaults_idle_cpu_pct']} % of one core ({d.get('defaults_setting')})."
    return (f"hasync daemon at rest: {d.get('idle_cpu_pct')} % of one core, {d.get('rss_mb')} MB RSS"
            + (f" ({d['setting']})." if d.get("setting") else "."))


def idle_table(doc: dict):
    t = Table(title="at rest: CPU (% of one core) and RSS of each daemon pair", title_justify="left")
    for col in ("tool", "setting", "role", "node1 CPU %", "node2 CPU %", "node1 RSS MB"):
        t.add_column(col)
    for r in idle_lines(doc):
        t.add_row(*r)
    return t


def idle_lines(doc: dict) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for r in doc.get("idle", []):
        nodes = [k for k in r if isinstance(r[k], dict)]
        n1 = r[nodes[0]] if nodes else {}
        n2 = r[nodes[1]] if len(nodes) > 1 else {}
        out.append((r["tool"], r["setting"], r["role"], str(n1.get("idle_cpu_pct", "-")), str(n2.get("idle_cpu_pct", "-")),
                    str(n1.get("rss_mb", "-"))))
    return out


def markdown(doc: dict) -> str:
    """The figures as a markdown table (for docs/benchmarks.md)."""
    f = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    out = [
        "| tool | setting | role | median s | min s | max s | trials | false failovers |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for tool in bs.TOOLS:
        for r in doc.get(tool, []):
            trials = f"{r['trials']}" + (f" (+{r['failed_trials']} failed)" if r.get("failed_trials") else "")
            ff = "–" if r["false_failovers"] is None else str(r["false_failovers"])
            out.append(f"| {tool} | {r['setting']} | {r.get('role', '')} | {f(r['median_s'])} | {f(r['min_s'])} | {f(r['max_s'])} | {trials} | {ff} |")
    out.append("")
    out.append(at_rest_line(doc.get("daemon", {})))
    out += soak_lines(doc.get("meta", {}))
    lines = idle_lines(doc)
    if lines:
        out += ["", "| at rest | setting | role | node1 CPU % | node2 CPU % | node1 RSS MB |", "|---|---|---|---:|---:|---:|"]
        out += ["| " + " | ".join(r) + " |" for r in lines]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    if args.markdown:
        with open(args.markdown) as fh:
            print(markdown(json.load(fh)), end="")
        return 0
    console = _console()
    if os.geteuid() != 0:
        console.print("[red]error[/red]: the failover bench needs root (namespaces, nft)")
        return 2
    doc = run(args, console)
    console.print(table(doc))
    if doc.get("idle"):
        console.print(idle_table(doc))
    if args.json:
        print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
