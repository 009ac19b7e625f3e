"""Pure text edits of the files bootstrap manages in place (lvm.conf, nfs.conf, sysconfig,
/etc/exports, /etc/fstab, SLES9's nfslock). Each edit changes only what it must and
returns the text unchanged when it is already right, so a second run yields nothing.
"""

from __future__ import annotations

import re

BEGIN = "# BEGIN hasync (managed by `hasync bootstrap`; edit cluster.toml instead)"
END = "# END hasync"


def _ensure_nl(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


# ----------------------------------------------------------------- lvm.conf (nested sections)


def _lvm_section_span(lines: list[str], section: str) -> tuple[int, int] | None:
    """(index of the `section {` line, index of its closing `}`), top level only."""
    depth = 0
    start = None
    for i, line in enumerate(lines):
        code = line.split("#", 1)[0]
        if depth == 0 and start is None and re.match(rf"^\s*{re.escape(section)}\s*\{{", code):
            start = i
        depth += code.count("{") - code.count("}")
        if start is not None and depth == 0:
            return start, i
    return None


def _lvm_value_span(lines: list[str], lo: int, hi: int, key: str) -> tuple[int, int] | None:
    """Lines [a, b] holding an uncommented ``key = value`` (lists may span lines)."""
    for i in range(lo, hi):
        code = lines[i].split("#", 1)[0]
        if re.match(rf"^\s*{re.escape(key)}\s*=", code):
            j = i
            if "[" in code and "]" not in code:
                while j + 1 < hi and "]" not in lines[j].split("#", 1)[0]:
                    j += 1
            return i, j
    return None


def lvm_get(text: str, section: str, key: str) -> str | None:
    lines = text.splitlines()
    span = _lvm_section_span(lines, section)
    if span is None:
        return None
    v = _lvm_value_span(lines, span[0] + 1, span[1], key)
    if v is None:
        return None
    joined = " ".join(ln.split("#", 1)[0].strip() for ln in lines[v[0] : v[1] + 1])
    return joined.split("=", 1)[1].strip()


def lvm_set(text: str, section: str, key: str, value: str, why: str = "") -> str:
    """Set ``section { key = value }``; *value* is an LVM literal (``0``, ``[ "a|x|" ]``)."""
    if lvm_get(text, section, key) == value:
        return text
    lines = text.splitlines()
    new = f"\t{key} = {value}"
    span = _lvm_section_span(lines, section)
    if span is None:
        block = [f"{section} {{"] + ([f"\t# hasync: {why}"] if why else []) + [new, "}"]
        return _ensure_nl(text) + "\n".join(block) + "\n"
    v = _lvm_value_span(lines, span[0] + 1, span[1], key)
    if v is not None:
        lines[v[0] : v[1] + 1] = [new]
    else:
        lines[span[0] + 1 : span[0] + 1] = ([f"\t# hasync: {why}"] if why else []) + [new]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------- ini (nfs.conf)


def ini_get(text: str, section: str, key: str) -> str | None:
    cur = None
    for line in text.splitlines():
        s = line.strip()
        m = re.match(r"^\[([^\]]+)\]", s)
        if m:
            cur = m.group(1).strip()
            continue
        if cur == section and not s.startswith(("#", ";")) and "=" in s:
            k, _, v = s.partition("=")
            if k.strip() == key:
                return v.strip()
    return None


def ini_set(text: str, section: str, key: str, value: str) -> str:
    if ini_get(text, section, key) == value:
        return text
    lines = text.splitlines()
    cur = None
    header = None
    for i, line in enumerate(lines):
        s = line.strip()
        m = re.match(r"^\[([^\]]+)\]", s)
        if m:
            cur = m.group(1).strip()
            if cur == section and header is None:
                header = i
            continue
        if cur == section and not s.startswith(("#", ";")) and "=" in s:
            if s.partition("=")[0].strip() == key:
                lines[i] = f"{key}={value}"
                return "\n".join(lines) + "\n"
    if header is None:
        return _ensure_nl(text) + f"[{section}]\n{key}={value}\n"
    lines.insert(header + 1, f"{key}={value}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------- shell variables (sysconfig)

_VAR_RE = r"^\s*(?:export\s+)?{key}=(.*)$"


def shell_get(text: str, key: str) -> str | None:
    val = None
    for line in text.splitlines():
        m = re.match(_VAR_RE.format(key=re.escape(key)), line)
        if m:
            v = m.group(1).strip()
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
                v = v[1:-1]
            val = v
    return val


def shell_set(text: str, key: str, value: str) -> str:
    if shell_get(text, key) == value:
        return text
    lines = text.splitlines()
    new = f'{key}="{value}"'
    for i in range(len(lines) - 1, -1, -1):
        if re.match(_VAR_RE.format(key=re.escape(key)), lines[i]):
            lines[i] = new
            return "\n".join(lines) + "\n"
    return _ensure_nl(text) + new + "\n"


# ----------------------------------------------------------------- managed block (exports)


def managed_block(text: str, body: list[str]) -> str:
    """Replace (or append) the hasync block; lines outside it are kept as they are."""
    block = [BEGIN, *body, END]
    lines = text.splitlines()
    try:
        a = lines.index(BEGIN)
        b = lines.index(END, a)
        lines[a : b + 1] = block
        return "\n".join(lines) + "\n"
    except ValueError:
        return _ensure_nl(text) + "\n".join(block) + "\n"


def managed_body(text: str) -> list[str] | None:
    lines = text.splitlines()
    try:
        a = lines.index(BEGIN)
        b = lines.index(END, a)
    except ValueError:
        return None
    return lines[a + 1 : b]


def export_line(path: str, clients: str, options: str, fsid: int, mountpoint: str) -> str:
    opts = [o for o in options.split(",") if o and not o.startswith(("fsid=", "mountpoint", "mp="))]
    opts += [f"fsid={fsid}", f"mountpoint={mountpoint}"]
    return f"{path}\t{clients}({','.join(opts)})"


def export_paths_outside_block(text: str) -> list[str]:
    """Exported paths declared outside the hasync block (doctor warns about those)."""
    res = []
    inside = False
    for line in text.splitlines():
        if line == BEGIN:
            inside = True
            continue
        if line == END:
            inside = False
            continue
        s = line.strip()
        if not inside and s and not s.startswith("#"):
            res.append(s.split()[0])
    return res


# ----------------------------------------------------------------- fstab


def fstab_without(text: str, devices: tuple[str, ...], mount_point: str) -> str:
    """Comment out fstab lines that would mount the cluster filesystem at boot."""
    out = []
    changed = False
    for line in text.splitlines():
        w = line.split()
        if w and not w[0].startswith("#") and len(w) >= 2 and (w[0] in devices or w[1] == mount_point):
            out.append("# hasync: mounted by the cluster, not at boot: " + line)
            changed = True
        else:
            out.append(line)
    return "\n".join(out) + "\n" if changed else text


# ----------------------------------------------------------------- SLES9 nfslock stop

_KILL = "killproc -n -KILL lockd"


def nfslock_stop_fixed(text: str) -> str:
    """Swap `echo` and `killproc -n -KILL lockd` in the stop action so the echo's status is
    what rc_status reports (killproc returns non-zero for the kernel lockd)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == _KILL:
            if i > 0 and "hasync" in lines[i - 1]:
                return text  # already fixed
            # the echo announcing the stop sits just above
            j = i - 1
            while j >= 0 and not lines[j].strip():
                j -= 1
            if j >= 0 and lines[j].strip().startswith("echo"):
                indent = line[: len(line) - len(line.lstrip())]
                lines[j : i + 1] = [
                    f"{indent}# hasync: killproc first so the echo's status is used (stop must succeed)",
                    line,
                    lines[j],
                ]
                return "\n".join(lines) + ("\n" if text.endswith("\n") else "")
            return text
    return text


def nfslock_stop_is_fixed(text: str) -> bool:
    return nfslock_stop_fixed(text) == text


# ----------------------------------------------------------------- line lists (keys)


def with_line(text: str, line: str) -> str:
    """*text* with *line* present once (authorized_keys, known_hosts)."""
    if line in text.splitlines():
        return text
    return _ensure_nl(text) + line + "\n"
