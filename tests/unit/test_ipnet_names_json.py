"""The small building blocks: IP arithmetic, derived names, the JSON codec."""

import json

import pytest

from cnish import jsonfast, names
from cnish.ipnet import IP, Prefix


def test_prefix_arithmetic():
    p = Prefix.parse("10.22.0.7/24")
    assert str(p.subnet) == "10.22.0.0/24" and str(p.last) == "10.22.0.255"
    assert p.contains(IP.parse("10.22.0.1")) and not p.contains(IP.parse("10.22.1.1"))
    q = Prefix.parse("fd00:1::5/64")
    assert str(q.network) == "fd00:1::" and str(q.last) == "fd00:1::ffff:ffff:ffff:ffff"
    assert str(IP.parse("10.0.0.255") + 1) == "10.0.1.0"


@pytest.mark.parametrize("bad", ["10.0.0.1", "10.0.0.0/33", "01.0.0.0/8", "x/8", "10.0.0.0/08",
                                 "fe80::1%eth0/64", ""])
def test_prefix_rejects(bad):
    with pytest.raises(ValueError):
        Prefix.parse(bad)


def test_reference_chain_and_comment_names():
    # The reference plugin's masquerade chain for network "brnet", container "ctr1"
    # (Debian's 1.1.1 binary, run for this config, names it CNI-2fbf118d4cafd020f013271b).
    assert names.masq_chain("brnet", "ctr1") == "CNI-2fbf118d4cafd020f013271b"
    assert names.masq_comment("brnet", "ctr1") == 'name: "brnet" id: "ctr1"'



def test_veth_labels_fit_an_alias_and_read_back():
    valid = {("ctr", "eth0")}
    short = names.veth_label("net", "ctr", "eth0")
    assert short == "cnish/net/ctr/eth0"
    assert names.label_attachment(short, "net", valid) == ("ctr", "eth0", True)
    assert names.label_attachment(short, "net", set()) == ("ctr", "eth0", False)
    assert names.label_attachment(short, "other", valid) is None
    net, cid = "n" * 181, "c" * 64
    long = names.veth_label(net, cid, "eth0")          # would be 257 bytes: hashed, not cut
    assert long.startswith("cnish#") and len(long) < 255
    assert names.label_attachment(long, net, {(cid, "eth0")}) == (None, None, True)
    assert names.label_attachment(long, net, {(cid, "eth1")}) == (None, None, False)
    assert names.label_attachment(long, "n" * 180, {(cid, "eth0")}) is None
    # A label cut at 255 bytes by an older cnish: valid when a valid attachment's label cut the
    # same way matches it (so a valid "eth0" is not taken for a stale "et"), stale otherwise.
    cut = f"cnish/{net}/{cid}/eth0"[:255]
    assert names.label_attachment(cut, net, {(cid, "eth0")})[2] is True
    assert names.label_attachment(cut, net, {("d" * 64, "eth0")})[2] is False

def test_host_veth_names_are_stable_and_distinct():
    a = names.host_veth("net", "ctr", "eth0")
    assert a == names.host_veth("net", "ctr", "eth0") and len(a) == 15 and a.startswith("veth")
    assert a != names.host_veth("net", "ctr", "eth1")
    assert names.host_veth("ab", "c", "e") != names.host_veth("a", "bc", "e")


def test_macs_are_unicast_and_local():
    for seed in range(50):
        first = int(names.mac_address(str(seed)).split(":")[0], 16)
        assert first & 1 == 0 and first & 2 == 2


@pytest.mark.parametrize("value", [{"a": [1, 2.5, None, True, "x\"y\\z"], "b": {}}, [], "é", 0])
def test_jsonfast_round_trip(value):
    assert jsonfast.loads(jsonfast.dumps(value)) == value
    assert json.loads(jsonfast.dumps(value)) == value


@pytest.mark.parametrize("bad", ["", "{", "{}x", "NaN", "[1,]", '"a\x01"', "[" * 5000])
def test_jsonfast_rejects(bad):
    with pytest.raises(ValueError):
        jsonfast.loads(bad)
