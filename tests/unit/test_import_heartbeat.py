"""`hasync haresources import` as a heartbeat user meets it (issue 13 item 4, issue 18):
the field notes' literal `IPaddr::`, IPv6 addresses, stonith_host, authkeys and the OCF
equivalents of heartbeat's resource.d scripts; the README's sample is what it prints."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from hasync import cli, config
from hasync.config.importer import import_heartbeat
from hasync.export import fence
from hasync.failover.fencing import fill
from hasync.model import Node

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data" / "import"
HA_CF = (DATA / "ha.cf").read_text()



def write(tmp_path: Path, haresources: str, ha_cf: str | None = None, authkeys: str | None = None, mode: int = 0o600) -> dict:
    (tmp_path / "haresources").write_text(haresources)
    files = {"haresources": str(tmp_path / "haresources")}
    if ha_cf is not None:
        (tmp_path / "ha.cf").write_text(ha_cf)
        files["ha_cf"] = str(tmp_path / "ha.cf")
    if authkeys is not None:
        (tmp_path / "authkeys").write_text(authkeys)
        (tmp_path / "authkeys").chmod(mode)
        files["authkeys"] = str(tmp_path / "authkeys")
    return files


def imported(tmp_path: Path, haresources: str, ha_cf: str | None = HA_CF, authkeys: str | None = None, mode: int = 0o600, **kw):
    return import_heartbeat(**write(tmp_path, haresources, ha_cf, authkeys, mode), **kw)


def filled(toml: str) -> str:
    """The import's output with the node addresses an admin would fill in."""
    return toml.replace('"0.0.0.0"', '"192.0.2.11"', 1).replace('"0.0.0.0"', '"192.0.2.12"', 1)


def resources(toml: str) -> list[dict]:
    return tomllib.loads(toml)["resource"]


# ------------------------------------------------------------------ the field notes' IPaddr::


def test_an_empty_address_is_a_warning_with_file_line_and_a_check_placeholder(tmp_path):
    imp = imported(tmp_path, (DATA / "haresources").read_text())
    hr = tmp_path / "haresources"
    assert imp.warnings[0] == (f"{hr}:5: IPaddr:: names no address (an empty argument): IPaddr refuses to start without "
                               "one; write the cluster address, e.g. IPaddr::10.0.0.10/24/eth0")
    [ip] = [r for r in resources(imp.toml) if r["id"] == "ipaddr"]
    assert ip["args"] == ["check: the cluster address, ADDRESS/PREFIX/NIC (e.g. 10.0.0.10/24/eth0)"]
    _, report = config.check_text(filled(imp.toml), "imported.toml")
    assert report.errors == []
    line = filled(imp.toml).splitlines().index('args = ["check: the cluster address, ADDRESS/PREFIX/NIC (e.g. 10.0.0.10/24/eth0)"]') + 1
    assert f"imported.toml:{line}: a `check:` marker is left in: review what it says, then delete it" in report.warnings


def test_check_of_a_haresources_chain_warns_about_the_empty_address_too(tmp_path):
    (tmp_path / "haresources").write_text((DATA / "haresources").read_text())
    text = (Path(__file__).parent / "data" / "config" / "good" / "minimal.toml").read_text()
    text = 'haresources = "haresources"\n' + text[: text.index("[[resource]]")] + text[text.index("[fencing]"):]
    (tmp_path / "c.toml").write_text(text.replace('"alpha"', '"node1"').replace("alpha =", "node1 ="))
    _, report = config.check(tmp_path / "c.toml")
    assert f"{tmp_path / 'haresources'}:5: IPaddr:: names no address" in " ".join(report.warnings)


# ------------------------------------------------------------------ IPv6


def test_an_ipv6_address_is_not_split_on_its_double_colon(tmp_path):
    imp = imported(tmp_path, "node1 IPv6addr::2001:db8::10/64/eth0\n", ocf=False)
    assert resources(imp.toml)[0]["args"] == ["2001:db8::10/64/eth0"]
    assert any("heartbeat itself splits arguments at every '::' and ran IPv6addr 2001:db8 10/64/eth0" in w for w in imp.warnings)
    imp = imported(tmp_path, "node1 IPv6addr::2001:db8::10/64/eth0\n")
    assert resources(imp.toml)[0] == {"id": "ipv6addr", "type": "ocf", "agent": "heartbeat:IPv6addr",
                                      "params": {"ipv6addr": "2001:db8::10", "cidr_netmask": "64", "nic": "eth0"}}


def test_other_arguments_are_still_split_on_double_colons(tmp_path):
    res = resources(imported(tmp_path, "node1 Filesystem::/dev/drbd0::/srv::ext4 MailTo::root@example.org::fail\n", ocf=False).toml)
    assert [r["args"] for r in res] == [["/dev/drbd0", "/srv", "ext4"], ["root@example.org", "fail"]]


def test_a_bare_ipv6_address_says_it_needs_its_script(tmp_path):
    with pytest.raises(config.ConfigError, match=r"haresources:1: '2001:db8::10'.*IPv6addr::2001:db8::10"):
        imported(tmp_path, "node1 2001:db8::10\n")


# ------------------------------------------------------------------ stonith_host -> [fencing]


def test_stonith_host_lines_become_a_fence_agents_command(tmp_path):
    imp = imported(tmp_path, "node1 IPaddr::10.0.0.10/24/eth0\n")
    f = tomllib.loads(imp.toml)["fencing"]
    cf = tmp_path / "ha.cf"
    assert f == {"mode": "required", "command": [
        "fence_ipmilan", "--ip", "{node}-bmc", "--username", "admin",
        "--password", f"check: the password from {cf}:14,15 (or --password-script PATH, out of cluster.toml)",
        "--lanplus", "--action", "reboot"]}
    assert f"{cf}:14,15: fence_ipmilan reaches each node's BMC as NODE-bmc (hasync runs one command for either node): " \
           "add to /etc/hosts on both nodes: 10.0.0.1 node1-bmc; 10.0.0.2 node2-bmc" in imp.notes
    assert "secret" not in imp.toml  # ha.cf's password is not copied
    # the command is one the Pacemaker export turns into a stonith device
    dev = fence.fence_device(fill(tuple(f["command"]), Node("node2", "192.0.2.12")), fence.COMMON_OPTIONS)
    assert (dev.agent, dict(dev.params)["ip"], dev.action) == ("fence_ipmilan", "node2-bmc", "reboot")
    _, report = config.check_text(filled(imp.toml), "imported.toml")
    assert report.errors == []


def test_a_single_stonith_host_says_which_node_nothing_could_reset(tmp_path):
    cf = HA_CF.replace("stonith_host * external/ipmi node2 10.0.0.2 admin secret lanplus\n", "")
    cf = cf.replace("node1 10.0.0.1 admin secret lanplus", "node1 10.0.0.1 user pass lan")
    imp = imported(tmp_path, "node1 IPaddr::10.0.0.10\n", cf)
    assert f"{tmp_path / 'ha.cf'}:14: no stonith_host names node2: nothing could reset it; add its BMC as node2-bmc to /etc/hosts" in imp.warnings
    assert "--lanplus" not in tomllib.loads(imp.toml)["fencing"]["command"]  # interface lan


def test_a_stonith_plugin_without_an_equivalent_is_a_placeholder_not_a_failing_config(tmp_path):
    cf = HA_CF.replace("external/ipmi node1 10.0.0.1 admin secret lanplus", "meatware node1").replace(
        "stonith_host * external/ipmi node2 10.0.0.2 admin secret lanplus\n", "")
    imp = imported(tmp_path, "node1 IPaddr::10.0.0.10\n", cf)
    f = tomllib.loads(imp.toml)["fencing"]
    assert f["mode"] == "required" and f["command"][0].startswith("check: the fence-agents agent for the STONITH plugin meatware")
    assert any("meatware: no fence-agents agent the import knows" in w for w in imp.warnings)
    _, report = config.check_text(filled(imp.toml), "imported.toml")
    assert report.errors == []


def test_a_power_switch_keeps_its_address_and_switches_the_nodes_outlet(tmp_path):
    cf = HA_CF.replace("external/ipmi node1 10.0.0.1 admin secret lanplus", "apcmaster 10.0.0.5 apc apcpass").replace(
        "stonith_host * external/ipmi node2 10.0.0.2 admin secret lanplus\n", "")
    cmd = tomllib.loads(imported(tmp_path, "node1 IPaddr::10.0.0.10\n", cf).toml)["fencing"]["command"]
    assert cmd[:5] == ["fence_apc", "--ip", "10.0.0.5", "--username", "apc"] and cmd[-4:] == ["--plug", "{node}", "--action", "reboot"]


def test_without_stonith_fencing_is_off_and_marked(tmp_path):
    cf = re.sub(r"stonith_host.*\n", "", HA_CF)
    assert 'mode = "off"   # check: ha.cf had no stonith' in imported(tmp_path, "node1 IPaddr::10.0.0.10\n", cf).toml


def test_an_ha_cf_with_timings_imports_its_own_and_says_nothing_of_the_defaults(tmp_path):
    imp = imported(tmp_path, "node1 IPaddr::10.0.0.10\n")
    h = tomllib.loads(imp.toml)["heartbeat"]
    assert (h["keepalive"], h["deadtime"]) == ("2s", "30s")  # the file's values, not hasync's defaults
    assert not [n for n in imp.notes if "Choosing timings" in n]


@pytest.mark.parametrize("with_cf", [True, False])
def test_without_a_deadtime_the_import_says_heartbeats_30s_became_hasyncs_default(tmp_path, with_cf):
    """heartbeat ran a file without deadtime at 30 s; the imported config, without the key,
    gets hasync's 5 s: with fencing that decides whether a long pause powers a node off."""
    cf = re.sub(r"(keepalive|deadtime|warntime|initdead) .*\n", "", HA_CF) if with_cf else None
    imp = imported(tmp_path, "node1 IPaddr::10.0.0.10\n", cf)
    [note] = [n for n in imp.notes if "Choosing timings" in n]
    assert note.startswith(f"{tmp_path / 'ha.cf'}: no deadtime: " if with_cf else "no ha.cf: ")
    assert "heartbeat ran with its default deadtime 30s" in note and "deadtime 5s" in note
    assert 'add deadtime = "30s" to [heartbeat]' in note
    assert "deadtime" not in tomllib.loads(imp.toml).get("heartbeat", {})


# ------------------------------------------------------------------ authkeys


SECRET = "0123456789abcdef0123456789abcdef0123"  # 36 bytes


@pytest.mark.parametrize("keys,says", [
    (f"auth 2\n1 crc\n2 sha1 {SECRET}\n", "the first node before bootstrap: (umask 077; awk '$1 == \"2\" {print $3}' AUTHKEYS > /etc/hasync/authkey)"),
    ("auth 1\n1 md5 twenty-byte-secret!\n", "the md5 secret is 19 bytes, under the 32 `hasync check` asks for: `hasync bootstrap` writes a fresh"),
    ("auth 1\n1 sha1 tooshort\n", "the sha1 secret is 8 bytes, under the 16 the failover daemon accepts"),
    ("auth 3\n3 crc\n", "auth 3 is crc, which authenticates nothing"),
])
def test_authkeys_say_how_the_secret_moves_and_never_print_it(tmp_path, keys, says):
    imp = imported(tmp_path, "node1 IPaddr::10.0.0.10\n", authkeys=keys)
    text = " ".join(imp.notes).replace(str(tmp_path / "authkeys"), "AUTHKEYS")
    assert says in text
    for secret in (SECRET, "twenty-byte-secret!", "tooshort"):
        assert secret not in text and secret not in imp.toml
    assert tomllib.loads(imp.toml)["heartbeat"]["auth_key"] == "/etc/hasync/authkey"


def test_readable_authkeys_are_called_out(tmp_path):
    imp = imported(tmp_path, "node1 IPaddr::10.0.0.10\n", authkeys=f"auth 1\n1 sha1 {SECRET}\n", mode=0o644)
    assert any("readable by group or others (-rw-r--r--): heartbeat refuses such a file" in n for n in imp.notes)


def test_broken_authkeys_are_an_error_naming_the_line(tmp_path):
    with pytest.raises(config.ConfigError, match=r"authkeys:2: auth 2 names no key line"):
        imported(tmp_path, "node1 IPaddr::10.0.0.10\n", authkeys="1 sha1 x\nauth 2\n")


# ------------------------------------------------------------------ resource.d -> OCF


def test_resource_d_scripts_become_their_ocf_agents(tmp_path):
    chain = ("node1 drbddisk::r0 LVM::havg Filesystem::/dev/havg/data::/srv/ha::ext4 portblock::tcp::2049::block "
             "nfsserver IPaddr::10.0.0.10/24/eth0 nfsboot portblock::tcp::2049::unblock\n")
    imp = imported(tmp_path, chain)
    got = [(r["type"], r["agent"], r.get("params", r.get("args"))) for r in resources(imp.toml)]
    assert got == [
        ("heartbeat", "drbddisk", ["r0"]),  # drbd-utils' script: stays when heartbeat goes
        ("ocf", "heartbeat:LVM-activate", {"vgname": "havg", "vg_access_mode": "system_id"}),
        ("ocf", "heartbeat:Filesystem", {"device": "/dev/havg/data", "directory": "/srv/ha", "fstype": "ext4"}),
        ("ocf", "heartbeat:portblock", {"protocol": "tcp", "portno": "2049", "action": "block"}),
        ("ocf", "heartbeat:nfsserver", {"nfs_ip": "10.0.0.10"}),
        ("ocf", "heartbeat:IPaddr2", {"ip": "10.0.0.10", "cidr_netmask": "24", "nic": "eth0"}),
        ("ocf", "heartbeat:nfsnotify", {"source_host": "10.0.0.10"}),
        ("ocf", "heartbeat:portblock", {"protocol": "tcp", "portno": "2049", "action": "unblock"}),
    ]
    doc = tomllib.loads(imp.toml)
    assert doc["storage"] == {"use_drbd": True, "use_lvm": True, "drbd_resource": "r0", "vg": "havg", "lv": "data",
                              "lvm_system_id": "uname", "filesystem": "ext4", "mount_point": "/srv/ha"}
    assert doc["nfs"] == {"vip": "10.0.0.10/24"}
    text = filled(imp.toml).replace('"192.0.2.11"', '"10.0.0.11"').replace('"192.0.2.12"', '"10.0.0.12"')
    _, report = config.check_text(text, "imported.toml")
    assert report.errors == []  # [storage], [nfs].vip and the chain agree; LVM-activate has its system_id source
    assert not [w for w in report.warnings if "starts before" in w]  # this chain is in the canonical order


def test_no_ocf_keeps_heartbeats_scripts(tmp_path):
    res = resources(imported(tmp_path, "node1 IPaddr::10.0.0.10/24/eth0 Filesystem::/dev/sdb1::/srv::xfs\n", ocf=False).toml)
    assert [(r["type"], r["agent"], r["args"]) for r in res] == [
        ("heartbeat", "IPaddr", ["10.0.0.10/24/eth0"]), ("heartbeat", "Filesystem", ["/dev/sdb1", "/srv", "xfs"])]


def test_a_script_with_no_ocf_equivalent_stays_and_says_it_goes_with_heartbeat(tmp_path):
    imp = imported(tmp_path, "node1 IPaddr::10.0.0.10 AudibleAlarm\n")
    assert resources(imp.toml)[1] == {"id": "audiblealarm", "type": "heartbeat", "agent": "AudibleAlarm"}
    assert any("AudibleAlarm: kept as heartbeat's resource.d script, which goes when heartbeat is uninstalled" in w for w in imp.warnings)


def test_init_scripts_stay_as_they_are(tmp_path):
    res = resources(imported(tmp_path, "node1 IPaddr::10.0.0.10 apache2\n").toml)
    assert res[1] == {"id": "apache2", "type": "heartbeat", "agent": "apache2"}


def test_the_cli_takes_ocf_and_authkeys(tmp_path, capsysbinary):
    files = write(tmp_path, (DATA / "haresources").read_text(), HA_CF, f"auth 1\n1 sha1 {SECRET}\n")
    assert cli.main(["haresources", "import", files["haresources"], "--ha-cf", files["ha_cf"], "--authkeys", files["authkeys"],
                     "--no-ocf"]) == 0
    cap = capsysbinary.readouterr()
    assert [r["type"] for r in tomllib.loads(cap.out.decode())["resource"]] == ["heartbeat"] * 6
    assert b"warning: " + files["haresources"].encode() + b":5: IPaddr:: names no address" in cap.err


# ------------------------------------------------------------------ the README's sample


def readme_sample() -> str:
    text = (REPO / "README.md").read_text()
    m = re.search(r"```\n(\$ hasync haresources import .*?)```", text, re.S)
    assert m, "README.md has no `$ hasync haresources import` sample"
    return m.group(1)


def test_the_readmes_import_sample_is_what_the_import_prints(tmp_path, capsys):
    etc = tmp_path / "etc" / "ha.d"
    etc.mkdir(parents=True)
    for name in ("haresources", "ha.cf", "authkeys"):
        (etc / name).write_text((DATA / name).read_text())
    (etc / "authkeys").chmod(0o600)
    command = "hasync haresources import /etc/ha.d/haresources --ha-cf /etc/ha.d/ha.cf --authkeys /etc/ha.d/authkeys"
    argv = command.replace("/etc/ha.d", str(etc)).split()[1:]
    assert cli.main(argv) == 0
    cap = capsys.readouterr()
    here = str(tmp_path)
    printed = (f"$ {command} > cluster.toml\n{cap.err}$ cat cluster.toml\n{cap.out}").replace(here, "")
    assert readme_sample() == printed
