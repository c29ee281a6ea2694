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
                                 {"ips": [{"address": 5}]}, {"interfaces": [{"mac": 5}]},
                                 {"interfaces": [{"name": ["eth0"]}]}, {"interfaces": [{"mtu": "x"}]},
                                 {"routes": [{"dst": "10.0.0.0/8", "gw": "x"}]},
                                 {"ip4": "x", "cniVersion": "0.2.0"}])
def test_parse_names_bad_fields(bad):
    with pytest.raises(ValueError):
        results.parse(bad, "1.0.0")


# Entries a chain's other plugins put into a prevResult, which cnish must pass on and must not
# refuse (a refusal would fail every DEL of the attachment, for good).
FOREIGN = {"cniVersion": "1.1.0",
           "interfaces": [{"name": "vhost-user-net-0", "socketPath": "/var/run/vhu0.sock"},
                          {"name": "tap@0", "mac": "", "mtu": 9000, "pciID": "0000:00:1f.6"},
                          {"name": "eth0", "mac": "0a:58:0a:16:00:02", "sandbox": "/x\ty"}],
           "ips": [{"address": "10.1.0.5/24", "gateway": "", "interface": 2}],
           "routes": [{"dst": "10.9.0.0/16", "gw": ""}]}


def test_other_plugins_entries_pass_through_a_chain():
    parsed = results.parse(FOREIGN, "1.1.0")
    assert parsed["interfaces"] == FOREIGN["interfaces"]
    # (Go reads "" into a nil net.IP: no gateway, and none written back)
    assert parsed["ips"] == [{"address": "10.1.0.5/24", "interface": 2}]
    assert parsed["routes"] == [{"dst": "10.9.0.0/16"}]
    assert results.convert(parsed, "1.1.0")["interfaces"] == FOREIGN["interfaces"]
    # a key no version has is dropped at 1.x too, as at 0.x (it was kept: a code review)
    odd = dict(FOREIGN, interfaces=[dict(FOREIGN["interfaces"][2], bogus="x")])
    assert results.convert(results.parse(odd, "1.1.0"), "1.0.0")["interfaces"] == [
        FOREIGN["interfaces"][2]]
    assert results.convert(parsed, "0.4.0")["interfaces"] == [
        {"name": "vhost-user-net-0"}, {"name": "tap@0", "mac": ""},
        {"name": "eth0", "mac": "0a:58:0a:16:00:02", "sandbox": "/x\ty"}]


@pytest.mark.parametrize("mac,ok", [
    ("0a:58:0a:16:00:02", True),                             # Ethernet
    (":".join(["0a"] * 8), True),                            # EUI-64 (IEEE 1394, ...)
    (":".join(["80"] * 20), True),                           # InfiniBand
    ("0a:58:0a:16:00", False), (":".join(["0a"] * 7), False), ("0a:58:0a:16:00:02:03:04:05", False),
    ("0a:58:0a:16:00:0g", False), ("0a:58:0a:16:00:002", False)])
def test_hardware_address_forms(mac, ok):
    """The container interface's MAC in a prevResult reaches CHECK's expectations: only 6, 8
    or 20 colon-separated hex pairs pass (plugins/common.py: container_mac)."""
    from cnish.validate import hwaddr_problem
    assert (hwaddr_problem(mac) is None) == ok




def test_unknown_route_and_address_keys_are_dropped():
    """As libcni's types drop them: a route's `src` from a delegated IPAM plugin (cnish's own
    routes use the key) reached `ip route ... src`, a NUL byte in it an exception that skipped
    ADD's rollback (found by an audit)."""
    parsed = results.parse({"ips": [{"address": "10.1.0.5/24", "version": "4", "extra": 1}],
                            "routes": [{"dst": "0.0.0.0/0", "src": "10.1.0.5\u0000x",
                                        "mtu": 1400, "via": "x"}]}, "1.0.0")
    assert parsed["ips"] == [{"address": "10.1.0.5/24"}]
    assert parsed["routes"] == [{"dst": "0.0.0.0/0", "mtu": 1400}]


@pytest.mark.parametrize("code,expected", [(11, 11), (11.0, 11), (1e400, None), (True, 999),
                                           (-5, 999), ("7", 999), (0, 999)])
def test_a_plugins_error_code_is_an_integer_or_999(code, expected):
    """(1e400 is out of range for JSON decoders, as for Go's: no error object was printed.)"""
    from cnish.plugin_exec import printed_error
    import json as _json
    out = _json.dumps({"code": code, "msg": "m"}) if code != 1e400 else '{"code":1e400,"msg":"m"}'
    error = printed_error(out, "p")
    assert (error.code if error else None) == expected


def test_an_address_of_interface_minus_one_has_no_interface():
    """`"interface": -1` (the spec's upgrade guide has runtimes tolerate it; Go's types read
    it) means none: a prevResult carrying it failed every DEL with code 7."""
    prev = {"cniVersion": "0.3.1", "ips": [{"version": "4", "address": "10.21.0.2/24",
                                            "gateway": "10.21.0.1", "interface": -1}]}
    parsed = results.parse(prev, "0.3.1")
    assert parsed["ips"] == [{"address": "10.21.0.2/24", "gateway": "10.21.0.1"}]
    for bad in (-2, -1.0, True):
        with pytest.raises(ValueError, match="interface"):
            results.parse({"ips": [{"address": "10.21.0.2/24", "interface": bad}]}, "1.0.0")


def test_the_error_of_a_plugin_cnish_executes():
    """One rule for the CLI's other plugins and a delegated IPAM (they had drifted apart: a
    plugin that could not be executed was 7 for one and 999 for the other; a code review)."""
    from cnish.plugin_exec import failure
    printed = failure("plugin x", "ADD", 1, '{"code": 11, "msg": "busy", "details": "d"}', "")
    assert (printed.code, printed.msg, printed.details) == (11, "plugin x: busy", "d")
    assert failure("plugin x", "DEL", 127, "", "x: not found").code == 7
    other = failure("plugin x", "DEL", 2, "garbage", "it broke")
    assert (other.code, other.msg, other.details) == (999, "plugin x failed (DEL, exit 2)",
                                                      "it broke")


def test_addresses_are_read_in_the_spelling_ip_prints():
    """A prevResult (or a delegated IPAM's result) may spell addresses any way inet_pton reads
    them; cnish compares them with what `ip` prints (an IPv6 audit found CHECK failing on
    upper-case gateways). IPv6 route destinations are their networks, as the kernel's routes."""
    parsed = results.parse({"cniVersion": "1.0.0",
                            "ips": [{"address": "FD7A:0:0::0010/64", "gateway": "FD7A::0001"}],
                            "routes": [{"dst": "FD00:200::1/24", "gw": "fd7a:0::1"},
                                       {"dst": "::0/0"}, {"dst": "10.1.0.0/16"}]}, "1.0.0")
    assert parsed["ips"] == [{"address": "fd7a::10/64", "gateway": "fd7a::1"}]
    assert parsed["routes"] == [{"dst": "fd00:200::/24", "gw": "fd7a::1"}, {"dst": "::/0"},
                                {"dst": "10.1.0.0/16"}]
    old = results.parse({"cniVersion": "0.2.0", "ip6": {"ip": "FD7A::10/64",
                                                        "gateway": "FD7A::1"}}, "0.2.0")
    assert old["ips"] == [{"address": "fd7a::10/64", "gateway": "fd7a::1"}]


def test_config_addresses_are_read_in_the_spelling_ip_prints():
    from cnish.config import Fields
    f = Fields({"gw": "2001:DB8:0::1", "dst": "2001:DB8::/32", "bad": "2001:DB8::x"}, "r")
    assert f.ip("gw") == "2001:db8::1" and f.cidr("dst") == "2001:db8::/32"
    assert f.ip("none") is None and f.cidr("none") is None
    with pytest.raises(CNIError) as info:
        f.ip("bad")
    assert info.value.code == 7 and "r.bad" in info.value.msg
