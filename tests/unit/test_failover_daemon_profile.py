"""The daemon's distro profile (issue 11 item 4): one error policy with the config's.

Before, a profile that could not be loaded for a cluster built in code was swallowed
(None): on a sysv profile a `service` resource then ran as `systemctl <agent>`."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hasync.config import ConfigError
from hasync.failover.daemon.run import daemon_profile
from tests.unit.test_failover_daemon import cluster


def test_the_profile_the_config_resolved_is_used():
    c = cluster()
    assert daemon_profile(c).name == c.cluster.profile


def test_a_profile_that_cannot_be_loaded_is_a_config_error_not_none():
    c = cluster()
    c = replace(c, profile=None, cluster=replace(c.cluster, profile="no-such-distro"))
    with pytest.raises(ConfigError, match="no distro profile 'no-such-distro'"):
        daemon_profile(c)
