"""Plan building for the bridge plugin: which steps appear, in which order, with which argv."""

import pytest

from cnish import engine
from cnish.errors import CNIError
from lab import operation


def raw(**kw):
    conf = {"cniVersion": "1.0.0", "name": "net1", "type": "bridge", "bridge": "br9",
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.5.0.0/24"}]],
                     "dataDir": "/nonexistent/cnish-unit"}}
    ipam = kw.pop("ipam", None)
    conf.update(kw)
    if ipam is not None:
        conf["ipam"] = ipam
    return conf


def plan(conf, command="ADD", **kw):
    p, att = engine.build_plan(operation(conf, command, **kw))
    return p, att


def ids(p):
    return [s.id for s in p.steps]


def test_minimal_add_follows_the_lesson_order():
    p, att = plan(raw())
    assert ids(p) == ["reserve[0]", "new-attachment", "bridge", "bridge-is-bridge", "bridge-up",
                      "veth", "label", "attach", "host-up", "bridge-no-ra", "arp-notify", "no-dad",
                      "no-router-advertisements", "address[0]", "container-up"]
    assert p.steps[1].run.argv == ("test", "!", "-e", "/sys/class/net/" + att["host_veth"])
    veth = p.steps[5]
    assert veth.run.argv[:5] == ("ip", "link", "add", "name", att["host_veth"])
    assert veth.undo.argv == ("ip", "link", "del", "dev", att["host_veth"])
    assert p.steps[13].run.argv == ("nsenter", "--net=/var/run/netns/cnish-test", "ip", "addr",
                                   "add", "10.5.0.2/24", "dev", "eth0", "brd", "+")


def test_gateway_masquerade_and_default_route():
    p, att = plan(raw(isDefaultGateway=True, ipMasq=True))
    got = ids(p)
    for step in ("gateway[0]", "forward-ipv4", "route[0]", "masquerade[0].chain",
                 "masquerade[0].accept[0]", "masquerade[0].masquerade", "masquerade[0].jump[0]"):
        assert step in got
    route = p.steps[got.index("route[0]")]
    assert route.run.argv[-6:] == ("prepend", "0.0.0.0/0", "via", "10.5.0.1", "dev", "eth0")
    jump = p.steps[got.index("masquerade[0].jump[0]")]
    assert "POSTROUTING" in jump.run.argv and "10.5.0.2/32" in jump.run.argv
    assert jump.undo.argv[jump.undo.argv.index("POSTROUTING") - 1] == "-D"


@pytest.mark.parametrize("ipam_route,routes", [
    # IPAM's gateway-less default is that route: it gets the gateway (listed once; the kernel
    # has one route, and the reference fails with "file exists")
    ({"dst": "0.0.0.0/0"}, [{"dst": "0.0.0.0/0", "gw": "10.5.0.1"}]),
    ({"dst": "0.0.0.0/0", "gw": "10.5.0.1"}, [{"dst": "0.0.0.0/0", "gw": "10.5.0.1"}]),
    ({"dst": "10.9.0.0/16"}, [{"dst": "10.9.0.0/16"}, {"dst": "0.0.0.0/0", "gw": "10.5.0.1"}])])
def test_default_gateway_route_unless_ipam_has_one(ipam_route, routes):
    """isDefaultGateway adds the default route via the gateway unless IPAM's routes already
    hold a default route with a gateway."""
    conf = raw(isDefaultGateway=True, ipam={"type": "host-local", "dataDir": "/nonexistent/x",
                                            "ranges": [[{"subnet": "10.5.0.0/24"}]],
                                            "routes": [ipam_route]})
    p, _ = plan(conf)
    assert p.result["routes"] == routes


def test_options_add_their_steps():
    assert "hairpin" in ids(plan(raw(hairpinMode=True))[0])
    assert "no-router-advertisements" not in ids(plan(raw(acceptRA=True))[0])
    # an L2-only bridge (no IPAM) leaves the kernel's default, unless told otherwise
    assert "no-router-advertisements" not in ids(plan(raw(ipam={}))[0])
    assert "no-router-advertisements" in ids(plan(raw(ipam={}, acceptRA=False))[0])
    assert "bridge-promisc" in ids(plan(raw(promiscMode=True))[0])
    isolated = plan(raw(portIsolation=True))[0]
    assert ids(isolated).index("isolated") < ids(isolated).index("host-up")
    assert "isolated" not in ids(plan(raw())[0])
    # macspoofchk: the chains and rules before the veth exists; DEL unhooks, then deletes
    spoof = plan(raw(macspoofchk=True))[0]
    assert ids(spoof)[ids(spoof).index("veth") - 2:ids(spoof).index("veth")] == [
        "spoofchk-chains", "spoofchk-rules"]
    assert spoof.steps[ids(spoof).index("spoofchk-rules")].undo.argv[0] == "cnish-nft-delete-commented"
    assert [i for i in ids(plan(raw(macspoofchk=True), "DEL")[0]) if i.startswith("spoofchk")] == [
        "spoofchk-unhook", "spoofchk-chain[0]", "spoofchk-chain[1]"]
    assert not any(i.startswith("spoofchk") for i in ids(plan(raw())[0]))
    # enabledad: DAD's sysctls instead of accept_dad=0, addresses without nodad, and a wait
    v6 = {"type": "host-local", "dataDir": "/nonexistent/x", "ranges": [[{"subnet": "fd05::/64"}]]}
    dad = plan(raw(enabledad=True, ipam=v6))[0]
    got = ids(dad)
    assert "no-dad" not in got and {"dad[0]", "dad[1]"} <= set(got)
    assert got.index("container-up") < got.index("dad-settled")
    assert "nodad" not in dad.steps[got.index("address[0]")].run.argv
    assert "dad-settled" not in ids(plan(raw(enabledad=True))[0])      # (IPv4 only)
    # disableContainerInterface (L2-only): the container's link is made but left down
    down = ids(plan(raw(ipam={}, disableContainerInterface=True))[0])
    assert "veth" in down and "container-up" not in down
    assert "container-up" in ids(plan(raw(ipam={}))[0])
    p, _ = plan(raw(mtu=1400))
    assert "mtu" in p.steps[ids(p).index("veth")].run.argv


def test_dual_stack_has_ipv6_sysctls_and_both_tables():
    conf = raw(isGateway=True, ipMasq=True,
               ipam={"type": "host-local", "dataDir": "/nonexistent/x",
                     "ranges": [[{"subnet": "10.5.0.0/24"}], [{"subnet": "fd05::/64"}]]})
    p, _ = plan(conf)
    got = ids(p)
    assert {"ipv6-on-lo", "ipv6-on", "no-dad", "forward-ipv6", "address[1]"} <= set(got)
    # (the container's lo serves all its interfaces: a rollback or DEL of this one keeps it)
    by_id = {s.id: s for s in p.steps}
    assert by_id["ipv6-on-lo"].shared and not by_id["ipv6-on"].shared
    tools = {s.run.argv[0] for s in p.steps if s.id.startswith("masquerade")}
    assert tools == {"iptables", "ip6tables"}


def test_l2_only_bridge():
    p, _ = plan(raw(ipam={}))
    assert not any(s.id.startswith(("reserve", "address", "route")) for s in p.steps)


def test_del_plan_is_tolerant_and_keeps_the_bridge():
    p, _ = plan(raw(ipMasq=True), "DEL")
    assert all(s.on_missing == "done" for s in p.steps)
    assert not any("bridge" in s.id for s in p.steps)


def test_create_netns_is_step_one():
    p, _ = plan(raw(), opts={"create_netns": True, "netns_name": "cnish-test"})
    assert p.steps[0].id == "netns" and p.steps[0].run.argv == ("ip", "netns", "add", "cnish-test")


def test_requested_mac_is_used():
    p, att = plan(raw(runtimeConfig={"mac": "0a:11:22:33:44:55"}))
    assert att["container_mac"] == "0a:11:22:33:44:55"
    assert "0a:11:22:33:44:55" in p.steps[ids(p).index("veth")].run.argv


@pytest.mark.parametrize("field,value,code", [
    ("bridge", "br 0", 7), ("bridge", "-br", 7), ("bridge", "a" * 16, 7), ("mtu", -1, 7),
    ("mtu", 70000, 7), ("mtu", 50, 7), ("mtu", "1500", 7), ("isGateway", "true", 7),
    ("vlan", 4095, 7), ("vlanTrunk", {"id": 5}, 7), ("preserveDefaultVlan", 0, 7),
    ("enabledad", "yes", 7), ("ipMasqBackend", True, 7),
    ("ipMasqBackend", "pf", 7), ("hairpinMode", 1, 7), ("acceptRA", "yes", 7), ("macspoofchk", 1, 7),
])
def test_bad_fields_are_named(field, value, code):
    with pytest.raises(CNIError) as info:
        operation(raw(**{field: value}))
    assert info.value.code == code and field in info.value.msg


def test_hairpin_and_promisc_are_exclusive():
    with pytest.raises(CNIError) as info:
        operation(raw(hairpinMode=True, promiscMode=True))
    assert info.value.code == 7


def test_unknown_ipam_type():
    with pytest.raises(CNIError) as info:
        operation(raw(ipam={"type": "nonexistent-ipam"}))
    assert info.value.code == 7 and "nonexistent-ipam" in info.value.msg


def test_check_needs_prev_result():
    with pytest.raises(CNIError) as info:
        engine.build_plan(operation(raw(), "CHECK"))
    assert info.value.code == 7 and "prevResult" in info.value.msg


def test_chained_add_passes_prev_result_on():
    prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "tap0", "mac": "0a:00:00:00:00:01"}],
            "ips": [{"address": "192.168.9.9/24", "interface": 0}], "routes": [{"dst": "10.0.0.0/8"}],
            "dns": {"nameservers": ["192.168.9.1"]}}
    p, _ = plan(raw(isGateway=True, prevResult=prev))
    res = p.result
    assert [i["name"] for i in res["interfaces"]] == ["tap0", "br9", res["interfaces"][2]["name"], "eth0"]
    assert res["ips"] == [{"address": "192.168.9.9/24", "interface": 0},
                          {"address": "10.5.0.2/24", "gateway": "10.5.0.1", "interface": 3}]
    assert res["routes"] == [{"dst": "10.0.0.0/8"}] and res["dns"] == {"nameservers": ["192.168.9.1"]}


def test_status_names_missing_tools(monkeypatch, tmp_path):
    from cnish import runner
    monkeypatch.setattr(runner, "SYSTEM_PATH", ())
    (tmp_path / "ip").write_text("#!/bin/sh\n")
    (tmp_path / "ip").chmod(0o755)
    op = operation(raw(cniVersion="1.1.0", ipMasq=True), "STATUS",
                   runner=runner.Runner(path=str(tmp_path)))
    with pytest.raises(CNIError) as info:
        engine.status(op)
    assert info.value.code == 50
    assert "nsenter" in info.value.msg and "iptables-restore" in info.value.msg


class _Without(__import__("cnish.runner", fromlist=["Runner"]).Runner):
    """A runner on a host that lacks some tools."""

    def __init__(self, *missing):
        super().__init__()
        self.missing = missing

    def which(self, name):
        return None if name in self.missing else f"/usr/sbin/{name}"


@pytest.mark.parametrize("given,missing,backend", [
    (None, (), "iptables"),                          # the reference's default ...
    (None, ("iptables",), "nftables"),               # ... unless only nft is there
    (None, ("iptables", "nft"), "iptables"),         # (STATUS then names what is missing)
    ("iptables", ("iptables",), "iptables"),         # an explicit choice is kept
    ("nftables", (), "nftables"),
])
def test_masquerade_backend(given, missing, backend):
    extra = {"ipMasqBackend": given} if given else {}
    op = operation(raw(ipMasq=True, **extra), runner=_Without(*missing))
    assert op.conf.ipMasqBackend == backend
    p, att = engine.build_plan(op)
    masq = [s for s in p.steps if s.id.startswith("masquerade")]
    if backend == "nftables":
        assert [s.id for s in masq] == ["masquerade-nft[0]"]
        assert masq[0].run.argv[0] == "nft" and masq[0].run.argv[-3:] == (
            "masquerade", "comment", f'"{att["masq_nft"]["comment"]}"')
        assert "10.5.0.2" in masq[0].run.argv and "10.5.0.0/24" in masq[0].run.argv
        assert masq[0].undo.argv[:4] == ("cnish-nft-delete-commented", "inet",
                                         "cni_plugins_masquerade", "masq_checks")
    else:
        assert masq and all(s.run.argv[0] == "iptables" for s in masq)
    assert any("nft but no iptables" in n for n in op.notes) == (given is None and backend == "nftables")


def test_nftables_masquerade_comment_is_the_reference_one_and_fits_nft():
    import hashlib
    from cnish import names

    def h(text):
        return hashlib.sha512(text.encode()).hexdigest()[:16]
    assert names.masq_nft_comment("net1", "ctr1", "eth0") == \
        f"{h('net1')}-{h('eth0:ctr1')}, net: net1, if: eth0, id: ctr1"
    long = names.masq_nft_comment("n" * 200, "c" * 200, "eth0")
    assert len(long) == 128 and long.startswith(f"{h('n' * 200)}-{h('eth0:' + 'c' * 200)}, ")
    p, _ = plan(raw(ipMasq=True, ipMasqBackend="nftables", name="n" * 200), cid="c" * 200)
    assert any(s.id == "masquerade-nft[0]" for s in p.steps)
    # the iptables backend's comment is cut at iptables' 255 characters, as iptables cuts the
    # reference's (it was refused: DEL then failed for good)
    p, att = plan(raw(ipMasq=True, ipMasqBackend="iptables", name="n" * 200), cid="c" * 200)
    assert att["masq"][0]["comment"] == ('name: "' + "n" * 200 + '" id: "' + "c" * 200)[:255]


def test_a_del_plan_that_knows_no_address_says_it_removes_no_masquerade_jump():
    """A DEL dry run printed before the ADD (no prevResult, no reservation yet) cannot name the
    masquerade jumps, which are per address: its header says so (found by the dry-run audit)."""
    p, _ = plan(raw(ipMasq=True), "DEL")
    assert any("removes no masquerade jump" in note for note in p.notes), p.notes
    p, _ = plan(raw(ipMasq=True, ipMasqBackend="nftables"), "DEL")
    assert not any("masquerade jump" in note for note in p.notes), p.notes


def test_nftables_masquerade_del_needs_no_addresses():
    """DEL finds the rules by the attachment's comment: without prevResult or reservations."""
    p, att = plan(raw(ipMasq=True, ipMasqBackend="nftables", ipam={}), "DEL")
    step = next(s for s in p.steps if s.id == "masquerade-nft")
    assert step.run.argv == ("cnish-nft-delete-commented", "inet", "cni_plugins_masquerade",
                             "masq_checks", att["masq_nft"]["comment"])


@pytest.mark.parametrize("trunk,field", [
    ([{"id": 0}], "vlanTrunk[0].id"), ([{"id": 4095}], "vlanTrunk[0].id"),
    ([{"minID": 5}], "vlanTrunk[0]"), ([{"maxID": 5}], "vlanTrunk[0]"),
    ([{"id": 3}, {"minID": 9, "maxID": 8}], "vlanTrunk[1].maxID"),
    ([{"minID": 0, "maxID": 8}], "vlanTrunk[0].minID"), ([{}], "vlanTrunk[0]"),
    ([7], "vlanTrunk[0]"), ([{"id": "7"}], "vlanTrunk[0].id"),
])
def test_bad_vlan_trunks_are_named(trunk, field):
    with pytest.raises(CNIError) as info:
        operation(raw(vlanTrunk=trunk))
    assert info.value.code == 7 and field in info.value.msg, info.value.msg


def test_vlan_gateway_name_must_fit():
    """isGateway with vlan puts the gateway on <bridge>.<vlan>: refused when too long."""
    with pytest.raises(CNIError) as info:
        operation(raw(bridge="b" * 12, vlan=1000, isGateway=True))
    assert info.value.code == 7 and "vlan" in info.value.msg and "b" * 12 + ".1000" in info.value.msg
    assert operation(raw(bridge="b" * 12, vlan=1000)).conf.gatewayDev == "b" * 12   # no gateway


def vlan_steps(p):
    return {s.id: s.run.argv for s in p.steps if "vlan" in s.id}


def test_access_vlan_plan():
    p, att = plan(raw(vlan=100))
    veth = att["host_veth"]
    bridge = p.steps[ids(p).index("bridge")]
    assert bridge.run.argv[-3:] == ("bridge", "vlan_filtering", "1")      # created filtering
    assert vlan_steps(p) == {
        "bridge-vlan-filtering": ("ip", "link", "set", "dev", "br9", "type", "bridge",
                                  "vlan_filtering", "1"),
        "vlan-clear": ("bridge", "vlan", "del", "dev", veth, "vid", "1-4094"),
        "vlan-access": ("bridge", "vlan", "add", "dev", veth, "vid", "100", "pvid", "untagged")}
    order = ids(p)
    assert order.index("attach") < order.index("vlan-clear") < order.index("vlan-access") \
        < order.index("host-up")                   # in its VLAN before a frame can pass
    assert "bridge" in __import__("cnish.plugins.bridge", fromlist=["tools"]).tools(
        operation(raw(vlan=100)))


def test_trunk_plan_ranges_and_native_vlan():
    p, att = plan(raw(vlanTrunk=[{"id": 12}, {"minID": 10, "maxID": 11}, {"id": 20},
                                 {"minID": 1, "maxID": 2}], preserveDefaultVlan=True))
    veth = att["host_veth"]
    steps = vlan_steps(p)
    assert "vlan-clear" not in steps                                 # preserveDefaultVlan
    assert [a[-1] for k, a in steps.items() if k.startswith("vlan-trunk")] == \
        ["1-2", "10-12", "20"]
    assert steps["vlan-access"] == ("bridge", "vlan", "add", "dev", veth, "vid", "1", "pvid",
                                    "untagged")           # a trunk without vlan: 1 untagged
    order = ids(p)          # the untagged VLAN last: a trunk naming it too leaves it untagged
    assert max(order.index(k) for k in steps if k.startswith("vlan-trunk")) < order.index("vlan-access")
    trunk0 = next(s for s in p.steps if s.id == "vlan-trunk[0]")
    assert trunk0.expect == {"contains": '{"vlan":2}'}     # 1 is the untagged one


def test_no_vlan_no_vlan_steps():
    p, _ = plan(raw())
    assert vlan_steps(p) == {} and "vlan_filtering" not in p.steps[1].run.argv


def test_vlan_gateway_link_is_made_once():
    """isGateway with vlan: the gateway address goes on br9.100, made (with its bridge port,
    an access port of the VLAN) only while it is not there and up."""
    from cnish import names
    conf = raw(vlan=100, isGateway=True)
    p, att = plan(conf)
    peer = names.vlan_gateway_peer("br9.100")
    steps = {s.id: s.run.argv for s in p.steps}
    assert steps["vlan-gateway.link"][:4] == ("ip", "link", "add", "name") and \
        steps["vlan-gateway.link"][4] == "br9.100" and steps["vlan-gateway.link"][-1] == peer
    assert steps["vlan-gateway.vlan"] == ("bridge", "vlan", "add", "dev", peer, "vid", "100",
                                          "pvid", "untagged")
    assert steps["gateway[0]"][-3:] == ("br9.100", "brd", "+")
    assert p.result["interfaces"][-1]["name"] == "br9.100"
    ready = {"/sys/class/net/br9.100/flags": "0x1003"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine.Operation, "read_sys", staticmethod(ready.get))
        p2, _ = plan(conf)
    assert not any(s.id.startswith("vlan-gateway") for s in p2.steps)
    assert any(s.id == "gateway[0]" for s in p2.steps)


def test_status_looks_for_ip6tables_when_ipv6_is_masqueraded():
    """STATUS checks the tools ADD will run: ip6tables too when IPAM can hand out IPv6 (it
    said "ready" without it, and ADD then failed; found by an audit)."""
    from cnish.plugins import bridge
    v4 = bridge.tools(operation(raw(ipMasq=True, cniVersion="1.1.0"), "STATUS", cid="",
                                ifname=""))
    assert "iptables" in v4 and "ip6tables" not in v4
    dual = raw(ipMasq=True, cniVersion="1.1.0", ipam={"type": "host-local", "dataDir": "/nonexistent/x",
                                  "ranges": [[{"subnet": "10.5.0.0/24"}], [{"subnet": "fd05::/64"}]]})
    assert {"ip6tables", "ip6tables-restore"} <= set(
        bridge.tools(operation(dual, "STATUS", cid="", ifname="")))


def test_del_reads_at_most_the_oldest_few_addresses_of_each_family():
    """DEL with the store wiped reads the container interface's addresses for its masquerade
    jumps (common.ips_for_del): global ones only, and the oldest ADDRESSES_READ_MAX of each
    family, ADD's (the kernel lists IPv4 ones oldest first and IPv6 ones newest first). A
    container that added thousands made DEL as many steps (found by a review)."""
    import json
    from types import SimpleNamespace
    from cnish.plugins import common
    n = common.ADDRESSES_READ_MAX
    v4 = [{"family": "inet", "local": f"10.5.0.{i}", "scope": "global"} for i in range(2, 2 + 3 * n)]
    v6 = [{"family": "inet6", "local": f"fd05::{i}", "scope": "global"} for i in range(3 * n, 1, -1)]
    other = [{"family": "inet6", "local": "fe80::1", "scope": "link"},
             {"family": "inet", "local": "127.0.0.2", "scope": "host"}]
    fact = SimpleNamespace(returncode=0, stdout=json.dumps([{"addr_info": v4 + v6 + other}]))
    got = common._global_addresses(fact)
    assert got == [f"10.5.0.{i}" for i in range(2, 2 + n)] + [f"fd05::{i}" for i in range(n + 1, 1, -1)]
    assert common._global_addresses(SimpleNamespace(returncode=1, stdout="")) == []
    assert common._global_addresses(SimpleNamespace(returncode=0, stdout="{}")) == []


def test_the_route_index_finds_what_a_scan_of_every_route_finds():
    """ADD's next-hop check looks up, for each route's gateway, the longest earlier routes
    covering it. It scanned every earlier route for each (quadratic: 44 s for 10,000 routes
    while holding the store's lock; an audit); an index by prefix length answers the same,
    which this compares with the scan on random routes (the kernel differential test,
    test_route_check_vs_kernel.py, checks the verdicts themselves)."""
    import random
    from cnish.ipnet import IP, Prefix
    from cnish.plugins.common import _Routes
    rng = random.Random(7)
    routes, index = [], _Routes()
    for _ in range(400):
        length = rng.choice([0, 8, 16, 20, 24, 28, 30, 32])
        dst = Prefix.parse(f"10.{rng.randrange(4)}.{rng.randrange(4)}.{rng.randrange(256)}/{length}")
        route = {"dst": dst, "table": rng.choice([None, 100]), "scope": rng.choice([0, 253, 254]),
                 "via": None}
        routes.append(route)
        index.add(route)
    for _ in range(400):
        gw = IP.parse(f"10.{rng.randrange(4)}.{rng.randrange(4)}.{rng.randrange(256)}")
        table, lowest = rng.choice([None, 100]), rng.choice([0, 253, 254])
        found = [r for r in routes if r["table"] == table and r["dst"].contains(gw)
                 and r["scope"] >= lowest]
        most = max((r["dst"].length for r in found), default=None)
        assert index.longest(gw, table, lowest) == [r for r in found if r["dst"].length == most]
