"""`hasync completion bash`: a bash completion script made from the CLI's own parsers
(reference.py), so it completes exactly the commands and options `--help` lists.

The script is data plus one function: for each command path ("hasync sync") the words
that may follow, its options, and for each option that takes a value what to offer
(its choices, file names for a PATH/FILE/DIR, nothing for the rest). The package
installs it as /usr/share/bash-completion/completions/hasync (`make deb`); from a
checkout: `source <(hasync completion bash)`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from hasync.cli import common
from hasync.cli.reference import Command, product_commands

ERRORS = common.ERRORS  # reads no config; the table's convention all the same
SHELLS = ("bash",)
# an option's metavar that names a file or a directory: complete file names
FILE_WORDS = ("PATH", "FILE", "DIR", "HA.CF", "AUTHKEYS", "KEY", "OUT")


def _value_kind(metavar: str | None, choices: tuple[str, ...]) -> str | None:
    if choices:
        return " ".join(choices)
    if metavar and any(w in metavar.upper() for w in FILE_WORDS):
        return "@files"
    return "@none" if metavar else None


def bash(commands: Sequence[Command]) -> str:
    """The completion script for *commands* (reference.product_commands())."""
    subs, opts, values, files = [], [], [], []
    for c in commands:
        path = " ".join(c.words)
        # the words that may follow: subcommands, or the choices of its first positional
        follow = c.subcommands or next((p.choices for p in c.positionals if p.choices), ())
        subs.append(f"  [{shlex.quote(path)}]={shlex.quote(' '.join(follow))}")
        opts.append(f"  [{shlex.quote(path)}]={shlex.quote(' '.join(f for o in c.options for f in o.flags))}")
        for o in c.options:
            kind = _value_kind(o.metavar, o.choices)
            for flag in o.flags if kind else ():
                values.append(f"  [{shlex.quote(path + ' ' + flag)}]={shlex.quote(kind or '')}")
        # a command whose positional is a file (check FILE, haresources import HARESOURCES)
        if not c.subcommands and any(p.flags[0].upper() in ("FILE", "HARESOURCES") for p in c.positionals):
            files.append(f"  [{shlex.quote(path)}]=1")
    return "\n".join([
        "# bash completion for hasync, generated from its argparse parsers (hasync completion bash)",
        "declare -gA _hasync_subs=(", *subs, ")",
        "declare -gA _hasync_opts=(", *opts, ")",
        "declare -gA _hasync_values=(", *values, ")",
        "declare -gA _hasync_files=(", *files, ")",
        BASH_FUNCTION,
    ])


BASH_FUNCTION = r"""
_hasync() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local path=hasync i w
    # the command path typed so far: each word that is a subcommand of the path before it
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        if [[ $w != -* && " ${_hasync_subs[$path]} " == *" $w "* ]]; then
            path="$path $w"
        fi
    done
    local value=${_hasync_values["$path $prev"]-}
    if [[ -n ${_hasync_values["$path $prev"]+set} ]]; then
        case $value in
            @files) COMPREPLY=($(compgen -f -- "$cur")) ;;
            @none) COMPREPLY=() ;;
            *) COMPREPLY=($(compgen -W "$value" -- "$cur")) ;;
        esac
        return 0
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "${_hasync_opts[$path]}" -- "$cur"))
    elif [[ -n ${_hasync_subs[$path]} ]]; then
        COMPREPLY=($(compgen -W "${_hasync_subs[$path]}" -- "$cur"))
    elif [[ -n ${_hasync_files[$path]-} ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    else
        COMPREPLY=()
    fi
    return 0
}
complete -F _hasync hasync
"""


def register(sub) -> None:
    p = sub.add_parser("completion", description="Print a shell completion script for hasync, made from its own "
                       "option parsers. bash: `source <(hasync completion bash)`, or install it as "
                       "/usr/share/bash-completion/completions/hasync (the Debian package does).")
    p.add_argument("shell", choices=SHELLS, help="the shell (bash)")
    p.set_defaults(func=cmd_completion)


def cmd_completion(args: argparse.Namespace) -> int:
    sys.stdout.write(bash(product_commands()))
    return 0
