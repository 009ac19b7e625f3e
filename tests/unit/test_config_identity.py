"""One answer each: which node this host is, which config file, the distro profile once."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from hasync import cli, config, fab, model
from hasync.bootstrap.wanted import wanted_state
from hasync.cli import common
from hasync.config import identity, profiles
from hasync.config.identity import NodeIdentityError, local_node

DATA = Path(__file__).parent / "data" / "config"
MINIMAL = DATA / "good" / "minimal.toml"  # nodes alpha and beta


@pytest.fixture()
def pair() -> model.Cluster:
    return config.load(MINIMAL)


# ------------------------------------------------------------------ identity (pure)


def test_fqdn_host_matches_its_short_node_name(pair):
    assert local_node(pair, env={}, uname="alpha.example.com") == "alpha"
    assert local_node(pair, env={}, uname="beta") == "beta"


def test_hasync_node_wins_over_uname(pair):
    assert local_node(pair, env={"HASYNC_NODE": "beta"}, uname="alpha") == "beta"
    assert local_node(pair, env={"HASYNC_NODE": "beta.lan"}, uname="alpha") == "beta"


def test_explicit_node_wins_over_everything(pair):
    assert local_node(pair, "alpha", env={"HASYNC_NODE": "beta"}, uname="beta") == "alpha"


def test_no_match_is_a_typed_error_naming_the_nodes(pair):
    with pytest.raises(NodeIdentityError) as e:
        local_node(pair, env={}, uname="gamma.example.com")
    msg = str(e.value)
    assert msg.startswith(f"{MINIMAL}: node: uname -n says this host is 'gamma.example.com' (or its short name 'gamma')")
    assert "alpha, beta" in msg and "--node" in msg and "HASYNC_NODE" in msg
    assert isinstance(e.value, config.ConfigError)  # the CLI prints it like any config error, exit 2


def test_a_wrong_explicit_name_never_falls_through_to_uname(pair):
    """--node gamma on host alpha must not quietly become alpha: it names the source."""
    with pytest.raises(NodeIdentityError, match="--node says this host is 'gamma'"):
        local_node(pair, "gamma", env={}, uname="alpha")
    with pytest.raises(NodeIdentityError, match=r"\$HASYNC_NODE says this host is 'gamma'"):
        local_node(pair, env={"HASYNC_NODE": "gamma"}, uname="alpha")


def test_identity_reads_the_real_environment(pair, monkeypatch):
    monkeypatch.setenv("HASYNC_NODE", "beta")
    assert local_node(pair) == "beta"
    assert identity.candidate() == ("beta", "$HASYNC_NODE")


# ------------------------------------------------------------------ identity at the call sites (more in
# test_config_regressions.py: sync on a FQDN host, bootstrap and $HASYNC_NODE)


def test_bootstrap_unknown_host_is_an_identity_error_naming_the_nodes(monkeypatch):
    monkeypatch.delenv("HASYNC_NODE", raising=False)
    monkeypatch.setattr(identity.os, "uname", lambda: _Uname("gamma"))
    with pytest.raises(NodeIdentityError) as e:
        wanted_state(str(MINIMAL), node=None)
    assert "alpha, beta" in str(e.value)  # the CLI: exit 2 (test_bootstrap_cli.py)


class _Uname:
    def __init__(self, nodename: str):
        self.nodename = nodename


# ------------------------------------------------------------------ config path


def test_one_config_path_rule(monkeypatch):
    assert config.config_path("/flag.toml", env={"HASYNC_CONFIG": "/env.toml"}) == "/flag.toml"
    assert config.config_path(None, env={"HASYNC_CONFIG": "/env.toml"}) == "/env.toml"
    assert config.config_path(None, env={}) == config.DEFAULT_CONFIG == "/etc/hasync/cluster.toml"
    monkeypatch.setenv("HASYNC_CONFIG", "/env.toml")
    assert common.config_path(argparse.Namespace(config=None)) == fab.config_path() == "/env.toml"
    assert common.config_path(argparse.Namespace(config="/c.toml")) == fab.config_path("/c.toml") == "/c.toml"


# ------------------------------------------------------------------ the profile, once


def test_load_resolves_the_distro_profile_once():
    c = config.load(MINIMAL)
    assert isinstance(c.profile, model.Profile)
    assert c.profile.name == "debian12" and c.profile.init == "systemd"
    sysv = config.loads(MINIMAL.read_text().replace('profile = "debian12"', 'profile = "sles9"'), "x.toml")
    assert sysv.profile is not None and sysv.profile.init == "sysv"


def test_a_bad_profile_name_is_an_error_with_file_line():
    text = MINIMAL.read_text().replace('profile = "debian12"', 'profile = "../../etc/passwd"')
    with pytest.raises(config.ConfigError) as e:
        config.loads(text, "x.toml")
    assert e.value.issues == [
        "x.toml:3: cluster.profile: unknown distro profile '../../etc/passwd'; available: "
        + ", ".join(profiles.available_profiles())
    ]


def test_check_exits_2_on_a_broken_profile(tmp_path, monkeypatch, capsys):
    root = tmp_path / "profiles"
    (root / "distro").mkdir(parents=True)
    (root / "distro" / "debian12.toml").write_text("[profile\n")
    monkeypatch.setattr(profiles, "data_dir", lambda name: root)
    assert cli.main(["check", str(MINIMAL)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"{MINIMAL}:3: cluster.profile: distro profile 'debian12' cannot be loaded:" in err
