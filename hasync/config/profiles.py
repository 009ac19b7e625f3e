"""Distro profiles (profiles/distro/<name>.toml): init system, service names, paths, options.

A cluster names its profile in ``[cluster].profile``; ``hasync.config.load`` resolves it
once (``Cluster.profile``) and a profile that cannot be loaded is a config error there.
"""

from __future__ import annotations

from hasync import model
from hasync.config.reader import (
    ConfigError,
    LineIndex,
    Reader,
    tomllib,
)
from hasync.config.text_files import UnreadableFile, decode_text, read_bytes
from hasync.resources import data_dir

INIT_SYSTEMS = ("systemd", "sysv")


def available_profiles() -> list[str]:
    try:
        return sorted(p.stem for p in (data_dir("profiles") / "distro").glob("*.toml"))
    except FileNotFoundError:
        return []


def load_profile(name: str) -> model.Profile:
    """Read profiles/distro/<name>.toml:

    ``[profile] name, init = "systemd"|"sysv"``; ``[services] logical = ["unit", ...]``;
    ``[paths] key = "/path"``; ``[options]`` anything else. Raises ConfigError.
    """
    names = available_profiles()
    path = data_dir("profiles") / "distro" / f"{name}.toml" if name in names else None
    if path is None:  # also keeps a name like "../x" from reaching the file system
        raise ConfigError([f"{data_dir('profiles') / 'distro'}: no distro profile {name!r}; available: {', '.join(names) or 'none'}"])
    try:
        text, _ = decode_text(read_bytes(path), latin1_fallback=False)
    except UnreadableFile as e:
        raise ConfigError([e.located(path)]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{path}: TOML syntax: {e}"]) from None
    r = Reader(str(path), data, LineIndex(text))
    top = r.table(data, (), ("profile", "services", "paths", "options", "supported"))
    prof = r.table(top.get("profile"), ("profile",), ("name", "init", "description"))
    init = r.get(prof, ("profile",), "init", "str", "systemd")
    if init not in INIT_SYSTEMS:
        r.error(("profile", "init"), f"expected \"systemd\" or \"sysv\", got {init!r}")
    raw_services = top.get("services") or {}
    services: dict[str, tuple[str, ...]] = {}
    for k, v in r.table(raw_services, ("services",), list(raw_services) if isinstance(raw_services, dict) else ()).items():
        services[k] = (v,) if isinstance(v, str) else r.get(raw_services, ("services",), k, "strlist", ())
    paths = r.get(top, (), "paths", "strmap", {})
    options = r.table(top.get("options"), ("options",), list(top.get("options") or {}) if isinstance(top.get("options"), dict) else ())
    supported = _supported(r, top.get("supported"))
    if r.errors:
        raise ConfigError(r.errors)
    return model.Profile(r.get(prof, ("profile",), "name", "str", name), init, services, paths, dict(options), str(path), supported)


TESTED = ("vm", "lab", "none")
MINIMUM_TOOLS = ("python", "lvm2", "drbd_utils")


def _supported(r: Reader, raw: object) -> dict[str, object]:
    """``[supported]``: what the profile was written for (hasync.bootstrap.host checks it).
    ``os = ["debian 12"]`` (/etc/os-release ID or ID_LIKE, major VERSION_ID), ``drbd_kernel``
    (DRBD module versions), ``minimum = { lvm2 = "2.03.12", ... }``, ``tested = "vm" | "lab" |
    "none"``, ``import_only = true`` (no host to run on), ``note``."""
    if raw is None:
        return {}
    P = ("supported",)
    obj = r.table(raw, P, ("os", "drbd_kernel", "minimum", "tested", "import_only", "note"))
    minimum = r.get(obj, P, "minimum", "strmap", {})
    out: dict[str, object] = {
        "os": r.get(obj, P, "os", "strlist", ()),
        "drbd_kernel": r.get(obj, P, "drbd_kernel", "strlist", ()),
        "minimum": minimum,
        "tested": r.get(obj, P, "tested", "str", "none"),
        "import_only": r.get(obj, P, "import_only", "bool", False),
        "note": r.get(obj, P, "note", "str", ""),
    }
    if out["tested"] not in TESTED:
        r.error(P + ("tested",), f"expected one of {', '.join(TESTED)}, got {out['tested']!r}")
    for k in minimum:
        if k not in MINIMUM_TOOLS:
            r.error(P + ("minimum", k), f"unknown tool; expected one of {', '.join(MINIMUM_TOOLS)}")
    return out


def resolve_profile(r: Reader, name: str) -> model.Profile | None:
    """The cluster's profile, or None with an error at ``[cluster].profile`` (file:line)."""
    names = available_profiles()
    if name not in names:
        r.error(("cluster", "profile"), f"unknown distro profile {name!r}; available: {', '.join(names) or 'none (no profiles/ folder found)'}")
        return None
    try:
        return load_profile(name)
    except ConfigError as e:
        for issue in e.issues:
            r.error(("cluster", "profile"), f"distro profile {name!r} cannot be loaded: {issue}")
        return None
