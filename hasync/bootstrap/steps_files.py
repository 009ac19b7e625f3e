"""Bootstrap steps for hasync's own files: the config (joining), /etc/hasync, the heartbeat
key, the ssh key and trust between the nodes, and the hasync units."""

from __future__ import annotations

import shlex

from hasync.bootstrap import edit
from hasync.bootstrap.facts import peer_ssh
from hasync.bootstrap.plan import Change, Facts, Wanted, mkdir_change, step, unit_name, write_change

# --------------------------------------------------------------------------- hasync's own files


@step("config", when=lambda w: w.config_text is not None, needs=lambda w: [f"file:{w.config_path}"])
def plan_config(w: Wanted, f: Facts) -> list[Change]:
    """Joining: the cluster config fetched from the first node."""
    return write_change("config", f, w.config_path, w.config_text or "", 0o644, f"from {w.join}")


@step("dirs", needs=lambda w: ["path:/etc/hasync", f"path:{_dirname(w.cluster.sync.ssh_key)}"])
def plan_dirs(w: Wanted, f: Facts) -> list[Change]:
    """/etc/hasync and its ssh directory (0700)."""
    return mkdir_change("dirs", f, "/etc/hasync", 0o755) + mkdir_change(
        "dirs", f, _dirname(w.cluster.sync.ssh_key), 0o700, "hasync's own ssh key and known_hosts"
    )


def _dirname(p: str) -> str:
    return p.rsplit("/", 1)[0] or "/"


@step("auth-key", needs=lambda w: [f"path:{w.cluster.heartbeat.auth_key}", f"file:{w.cluster.heartbeat.auth_key}"])
def plan_auth_key(w: Wanted, f: Facts) -> list[Change]:
    """The heartbeat HMAC key, mode 0600, identical on both nodes."""
    key = w.cluster.heartbeat.auth_key
    st = f[f"path:{key}"]
    if w.authkey is not None:  # joining: the first node's key wins
        out = write_change("auth-key", f, key, w.authkey, 0o600, "the cluster's key, from the first node", secret=True)
        if out:
            return out
    elif st["kind"] == "missing" and not w.first:
        # a fresh key here would not match the first node's: heartbeats would be dropped
        return [Change("auth-key", "refuse", f"{key} is missing on the second node: run `hasync bootstrap --join {w.peer.name}` (it fetches the cluster's key)", target=key)]
    elif st["kind"] == "missing":
        return [Change("auth-key", "generate", "HMAC key for heartbeat packets", path=key, mode=0o600, secret=True)]
    if st["kind"] == "file" and st["mode"] & 0o077:
        return [Change("auth-key", "chmod", f"was {st['mode']:o}: readable by others", path=key, mode=0o600)]
    return []


@step("ssh-key", needs=lambda w: [f"path:{w.cluster.sync.ssh_key}"])
def plan_ssh_key(w: Wanted, f: Facts) -> list[Change]:
    """hasync's own ssh key (unison, status and failover commands between the nodes)."""
    key = w.cluster.sync.ssh_key
    if f[f"path:{key}"]["kind"] != "missing":
        return []
    return [
        Change(
            "ssh-key",
            "run",
            "hasync's ssh identity",
            argv=("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"hasync@{w.node}", "-f", key),
        )
    ]


AUTHORIZED_KEYS = "/root/.ssh/authorized_keys"  # profile paths.authorized_keys overrides


def _append_remote(peer: str, path: str, line: str, mode: str) -> tuple[str, ...]:
    """Add *line* to *path* on the first node unless it is there (one ssh, a POSIX sh line)."""
    q = shlex.quote
    script = (
        f"mkdir -p {q(_dirname(path))} && touch {q(path)} && chmod {mode} {q(path)} && "
        f"{{ grep -qxF {q(line)} {q(path)} || echo {q(line)} >> {q(path)}; }}"
    )
    return peer_ssh(peer, "sh", "-c", script)[:-1] + (script,)


def _ssh_trust_needs(w: Wanted) -> list[str]:
    kh = w.cluster.sync.known_hosts
    ak = w.p("authorized_keys", AUTHORIZED_KEYS)
    return [
        f"file:{ak}", f"file:{kh}", f"file:{w.ssh_pub}", f"hostkeys:{w.cluster.node(w.node).address}",
        f"peer_file:{w.ssh_pub}", f"peer_file:{ak}", f"peer_file:{kh}", f"hostkeys:{w.join}",
    ]


@step("ssh-trust", when=lambda w: bool(w.join), needs=_ssh_trust_needs)
def plan_ssh_trust(w: Wanted, f: Facts) -> list[Change]:
    """Each node's hasync key authorized on the other; host keys in hasync's known_hosts."""
    out: list[Change] = []
    kh = w.cluster.sync.known_hosts
    ak = w.p("authorized_keys", AUTHORIZED_KEYS)
    peer_pub = (f[f"peer_file:{w.ssh_pub}"] or "").strip()
    my_pub = (f[f"file:{w.ssh_pub}"] or "").strip()
    if peer_pub:
        text = f[f"file:{ak}"] or ""
        new = edit.with_line(text, peer_pub)
        if new != text:
            out.append(Change("ssh-trust", "write", "the first node's hasync key may log in here", path=ak, data=new, old=f[f"file:{ak}"], mode=0o600))
    else:
        out.append(Change("ssh-trust", "refuse", f"{w.join} has no {w.ssh_pub}: run `hasync bootstrap` there first", target=w.join))
    if my_pub and my_pub not in (f[f"peer_file:{ak}"] or "").splitlines():
        out.append(Change("ssh-trust", "run", "this node's hasync key may log in on the first node", argv=_append_remote(w.join, ak, my_pub, "600")))
    elif not my_pub:
        out.append(Change("ssh-trust", "run", "this node's hasync key may log in on the first node (key made by step ssh-key)", argv=_append_remote(w.join, ak, "<this node's hasync public key>", "600")))
    # known_hosts: the peer's host keys under the names hasync uses for it, and ours on it
    text = f[f"file:{kh}"] or ""
    new = text
    for line in f[f"hostkeys:{w.join}"]:
        keytype_key = " ".join(line.split()[1:3])
        for name in (w.peer.address, w.peer.name):
            new = edit.with_line(new, f"{name} {keytype_key}")
    if new != text:
        out.append(Change("ssh-trust", "write", "the first node's host key", path=kh, data=new, old=f[f"file:{kh}"], mode=0o644))
    mine = f[f"hostkeys:{w.cluster.node(w.node).address}"]
    my_host = " ".join(mine[0].split()[1:3]) if mine else ""
    if my_host:
        peer_kh = (f[f"peer_file:{kh}"] or "").splitlines()
        me = w.cluster.node(w.node)
        for name in (me.address, me.name):
            line = f"{name} {my_host}"
            if line not in peer_kh:
                out.append(Change("ssh-trust", "run", "this node's host key on the first node", argv=_append_remote(w.join, kh, line, "644")))
    return out



# --------------------------------------------------------------------------- hasync units


def _failover_unit(name: str) -> bool:
    return name.startswith("hasync-failover")


def _unit_files(w: Wanted) -> dict[str, str]:
    """installed path -> text for the init system of the profile. Under Pacemaker not the
    failover daemon's: a unit file written there would also replace a mask."""
    d = w.p("units", "/etc/systemd/system") if w.profile.init == "systemd" else w.p("init_d", "/etc/init.d")
    return {f"{d}/{name}": text for name, text in sorted(w.units.items()) if not (w.pacemaker and _failover_unit(name))}


# where a distro package (`make deb`'s, hasync_VERSION_all.deb) puts its units: systemd
# reads /etc/systemd/system first, so a copy written there would shadow the package's and,
# after the package is upgraded, run the old unit (Debian 12: /lib; RHEL 9 and SLES: /usr/lib)
PACKAGED_UNIT_DIRS = ("/lib/systemd/system", "/usr/lib/systemd/system")


def _packaged_paths(w: Wanted, path: str) -> list[str]:
    name = path.rsplit("/", 1)[-1]
    return [f"{d}/{name}" for d in PACKAGED_UNIT_DIRS] if w.profile.init == "systemd" else []


def _shipped(w: Wanted, f: Facts, path: str, text: str) -> bool:
    """The package installed this very unit: enabling it is all that is left to do."""
    return any(f[f"file:{p}"] == text for p in _packaged_paths(w, path))


def _units_needs(w: Wanted) -> list[str]:
    files = [f"file:{q}" for p in _unit_files(w) for q in (p, *_packaged_paths(w, p))]
    return files + [f"enabled:{s}" for s in w.services("watch") + w.services("failover")]


@step("units", needs=_units_needs)
def plan_units(w: Wanted, f: Facts) -> list[Change]:
    """hasync-watch and hasync-failover installed and enabled at boot (under Pacemaker
    hasync-watch only, and hasync-failover turned off: two managers of one chain). A unit
    the package already installed (the same text, in PACKAGED_UNIT_DIRS) is only enabled."""
    out: list[Change] = []
    mode = 0o644 if w.profile.init == "systemd" else 0o755
    for path, text in _unit_files(w).items():
        if not _shipped(w, f, path, text):
            out += write_change("units", f, path, text, mode)
    svcs = w.services("watch") + (() if w.pacemaker else w.services("failover"))
    for s in svcs:
        state = f[f"enabled:{s}"]
        if state in ("disabled", "not-found"):
            argv = ("systemctl", "enable", unit_name(s)) if w.profile.init == "systemd" else ("chkconfig", s, "on")
            out.append(Change("units", "run", "started at boot", argv=argv))
    for s in w.services("failover") if w.pacemaker else ():
        if f[f"enabled:{s}"] in ("enabled", "enabled-runtime", "indirect", "alias"):
            why = "Pacemaker runs the chain here: hasync's failover daemon must not"
            if w.profile.init != "systemd":
                out.append(Change("units", "run", why, argv=("chkconfig", s, "off")))
                continue
            # disable works on the unit files alone; the stop only where systemd is PID 1
            # (`disable --now` fails as a whole without it: a host booted with another init)
            out.append(Change("units", "run", why, argv=("systemctl", "disable", unit_name(s))))
            out.append(Change("units", "run", "stopped now where systemd runs it (/run/systemd/system, as sd_booted(3) tests)",
                              argv=("sh", "-c", '[ ! -d /run/systemd/system ] || systemctl stop "$1"', "stop", unit_name(s))))
    return out
