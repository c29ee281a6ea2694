"""Result conversion to and from every spec version."""

import pytest

from cnish import results
from cnish.errors import CNIError

FULL = {
    "interfaces": [{"name": "cni0", "mac": "0a:00:00:00:00:01"},
                   {"name": "veth1", "mac": "0a:00:00:00:00:02"},
                   {"name": "eth0", "mac": "0a:00:00:00:00:03", "sandbox": "/run/netns/x", "mtu": 1400}],
    "ips": [{"address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 2},
            {"address": "fd00::5/64", "gateway": "fd00::1", "interface": 2}],
    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd00::1"}, {"dst": "10.9.0.0/16", "gw": "10.1.0.9"}],
    "dns": {"nameservers": ["10.1.0.1"]},
}


def test_1x_keeps_everything():
    for version in ("1.0.0", "1.1.0"):
        out = results.convert(FULL, version)
        assert out["cniVersion"] == version and "version" not in out["ips"][0]
        assert out["interfaces"][2]["mtu"] == 1400


def test_040_adds_ip_versions_and_drops_1x_interface_fields():
    out = results.convert(FULL, "0.4.0")
    assert [ip["version"] for ip in out["ips"]] == ["4", "6"]
    assert "mtu" not in out["interfaces"][2]
    assert "ip" not in out


def test_030_carries_both_keys():
    out = results.convert(FULL, "0.3.0")
    assert out["ip"] == out["ips"] and out["ips"][0]["version"] == "4"


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_02x_blocks(version):
    out = results.convert(FULL, version)
    assert out["ip4"] == {"ip": "10.1.0.5/24", "gateway": "10.1.0.1",
                          "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.9.0.0/16", "gw": "10.1.0.9"}]}
    assert out["ip6"]["routes"] == [{"dst": "::/0", "gw": "fd00::1"}]
    assert out["dns"] == FULL["dns"] and "interfaces" not in out


def test_02x_without_addresses_is_an_error():
    with pytest.raises(CNIError) as info:
        results.convert({"interfaces": [{"name": "eth0"}], "ips": []}, "0.2.0")
    assert info.value.code == 1


@pytest.mark.parametrize("version", results.SUPPORTED_VERSIONS)
def test_round_trip_every_version(version):
    back = results.parse(results.convert(FULL, version), version)
    assert [ip["address"] for ip in back["ips"]] == ["10.1.0.5/24", "fd00::5/64"]
    assert {r["dst"] for r in back["routes"]} >= {"0.0.0.0/0", "::/0"}


@pytest.mark.parametrize("bad", [[], {"ips": "x"}, {"ips": [{"gateway": "1.2.3.4"}]},
                                 {"ips": [{"address": 5}]}, {"interfaces": [{"mac": "x"}]},
                                 {"ip4": "x", "cniVersion": "0.2.0"}])
def test_parse_names_bad_fields(bad):
    with pytest.raises(ValueError):
        results.parse(bad, "1.0.0")


@pytest.mark.parametrize("mac,ok", [
    ("0a:58:0a:16:00:02", True),                             # Ethernet
    (":".join(["0a"] * 8), True),                            # EUI-64 (IEEE 1394, ...)
    (":".join(["80"] * 20), True),                           # InfiniBand
    ("0a:58:0a:16:00", False), (":".join(["0a"] * 7), False), ("0a:58:0a:16:00:02:03:04:05", False),
    ("0a:58:0a:16:00:0g", False), ("0a:58:0a:16:00:002", False)])
def test_interface_mac_forms(mac, ok):
    """A result's interfaces[].mac (a prevResult, a delegated plugin's answer) reaches
    commands and the dry-run script: only 6, 8 or 20 colon-separated hex pairs pass."""
    result = {"interfaces": [{"name": "eth0", "mac": mac}]}
    if ok:
        assert results.parse(result, "1.0.0")["interfaces"][0]["mac"] == mac
    else:
        with pytest.raises(ValueError, match=r"interfaces\[0\]\.mac"):
            results.parse(result, "1.0.0")


@pytest.mark.parametrize("sandbox", ["/var/run/netns/a\nb", "/proc/1/ns/net\x1b[2J", "a\tb"])
def test_interface_sandbox_without_control_characters(sandbox):
    with pytest.raises(ValueError, match=r"interfaces\[0\]\.sandbox"):
        results.parse({"interfaces": [{"name": "eth0", "sandbox": sandbox}]}, "1.0.0")
