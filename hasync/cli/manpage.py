"""hasync(8), the manual page, made from the CLI's own parsers (reference.py): every
command with its description, arguments and options as `--help` prints them, so the page
cannot drift from the program. `make deb` writes it (packaging/deb/build.py); to read it
from a checkout: `python3 -c 'from hasync.cli import manpage; print(manpage.page(), end="")' | man -l -`."""

from __future__ import annotations

import re
from collections.abc import Sequence

from hasync import __version__
from hasync.cli.reference import Command, Option, product_commands

# What the page says beyond the parsers: where things are and what the environment sets.
# Each variable is one the code reads (a test checks every name below occurs in hasync/).
ENVIRONMENT = (
    ("HASYNC_CONFIG", "the cluster config when -c/--config is not given (default /etc/hasync/cluster.toml)"),
    ("HASYNC_NODE", "which [[node]] this host is when --node is not given (default: uname -n, or its short name)"),
    ("HASYNC_RUN_DIR", "the failover daemon's control socket and role file (default /run/hasync)"),
    ("HASYNC_FAILOVER_STATE_DIR", "the failover daemon's timeline and generation (default /var/lib/hasync/failover)"),
    ("HASYNC_FENCE_NODE", "set for the [fencing] command: the name of the node to fence"),
    ("HASYNC_FENCE_ADDRESS", "set for the [fencing] command: that node's address"),
)
FILES = (
    ("/etc/hasync/cluster.toml", "the cluster config (identical on both nodes; docs/config.md lists every key)"),
    ("/etc/hasync/authkey", "the heartbeat HMAC key (mode 0600), written by hasync bootstrap"),
    ("/etc/hasync/ssh/", "hasync's own ssh key and known_hosts (per node, never synced)"),
    ("/var/lib/hasync/", "state: the sync journal and archives, the failover timeline, bootstrap's runs (for --rollback)"),
    ("/run/hasync/", "the failover daemon's control socket and role file"),
    ("/usr/share/doc/hasync/examples/example.toml", "an annotated example config (from the package)"),
)
LOGS = ("The daemons run as the systemd units hasync-failover.service (hasync failover run) and "
        "hasync-watch.service (hasync watch), installed and enabled by hasync bootstrap; they log to "
        "the journal: journalctl -u hasync-failover -u hasync-watch. The failover daemon also keeps its "
        "timeline of failovers, shown by hasync status.")
SEE_ALSO = ("drbdadm(8)", "lvm(8)", "exportfs(8)", "unison(1)", "ocf_heartbeat_IPaddr2(7)", "systemctl(1)",
            "journalctl(1)")


def escape(text: str) -> str:
    """Text for roff: backslashes and hyphens of options escaped, no line starting with
    a control character."""
    text = text.replace("\\", "\\e")
    text = re.sub(r"(?<![\w-])-+", lambda m: "\\-" * len(m.group()), text)  # -c, --config: minus signs, not hyphens
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.split("\n"))


def _para(text: str) -> list[str]:
    """A description as roff paragraphs: blank lines separate them; lines indented as
    in RawDescriptionHelpFormatter (examples, lists) are kept as they are."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip("\n")):
        lines = block.split("\n")
        if any(line.startswith(" ") for line in lines):
            out += [".PP", ".nf", *(escape(line) for line in lines), ".fi"]
        else:
            out += [".PP", escape(" ".join(line.strip() for line in lines))]
    return out


def _option(o: Option) -> list[str]:
    flags = ", ".join(f"\\fB{escape(f)}\\fR" for f in o.flags)
    value = f" \\fI{escape(o.metavar)}\\fR" if o.metavar else ""
    return [".TP", flags + value, escape(o.help or "")]


def synopsis(c: Command) -> str:
    words = " ".join(c.words)
    parts = [f"\\fB{escape(words)}\\fR"]
    if any("--help" not in o.flags for o in c.options):
        parts.append("[\\fIOPTIONS\\fR]")
    if c.subcommands:
        parts.append("{" + "|".join(escape(s) for s in c.subcommands) + "} ...")
    parts += [f"\\fI{escape(p.flags[0])}\\fR" if p.required else f"[\\fI{escape(p.flags[0])}\\fR]"
              for p in c.positionals]
    return " ".join(parts)


def _command(c: Command) -> list[str]:
    out = [f'.SS "{escape(" ".join(c.words))}"', synopsis(c), ".br", escape(c.help)]
    description = c.parser.description or ""
    said_below = description in (sub.description for sub in c.subparsers.values())  # `failover` is `failover run`'s
    if description and " ".join(description.split()) != c.help and not said_below:
        out += _para(description)
    if c.positionals:
        out += [".PP", "Arguments:"]
        for p in c.positionals:
            out += [".TP", f"\\fI{escape(p.flags[0])}\\fR", escape(p.help or "")]
    options = [o for o in c.options if "--help" not in o.flags]
    if options:
        out += [".PP", "Options:"]
        for o in options:
            out += _option(o)
    if c.parser.epilog:
        out += _para(c.parser.epilog)
    return out


def page() -> str:
    """The page of this hasync."""
    return render(product_commands())


def render(commands: Sequence[Command], version: str = __version__) -> str:
    """The page, in the order of `--help`. No date: the same program gives the same page."""
    root, rest = commands[0], commands[1:]
    out = [
        f'.TH HASYNC 8 "" "hasync {escape(version)}" "System Administration"',
        ".nh",  # no hyphenation: option names are typed as printed
        ".ad l",
        ".SH NAME",
        "hasync \\- build and run a two-node active/passive HA storage cluster (DRBD, LVM, NFS)",
        ".SH SYNOPSIS",
        "\\fBhasync\\fR [\\fB\\-c\\fR \\fIPATH\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]",
        ".SH DESCRIPTION",
        *_para(root.parser.description or ""),
        ".SH OPTIONS",
        *(line for o in root.options if "--help" not in o.flags for line in _option(o)),
        ".SH COMMANDS",
        "Every command prints its own help with \\fB\\-\\-help\\fR.",
    ]
    for c in rest:
        out += _command(c)
    out += [".SH ENVIRONMENT"]
    for name, what in ENVIRONMENT:
        out += [".TP", f"\\fB{name}\\fR", escape(what)]
    out += [".SH FILES"]
    for path, what in FILES:
        out += [".TP", f"\\fI{escape(path)}\\fR", escape(what)]
    out += [".SH LOGS", escape(LOGS), ".SH EXIT STATUS", *_para(root.parser.epilog or ""),
            ".SH SEE ALSO", ", ".join(f"\\fB{escape(s.split('(')[0])}\\fR({s.split('(')[1]}" for s in SEE_ALSO)]
    return "\n".join(out) + "\n"
