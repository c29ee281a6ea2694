"""Validation at the boundary: the environment, stdin, the common keys, CNI_ARGS."""

import io
import json
import os

import pytest

from cnish import config
from cnish.errors import CNIError


def env(**kw):
    base = {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "ctr1", "CNI_IFNAME": "eth0",
            "CNI_PATH": "/opt/cni/bin", "CNI_NETNS": ""}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


def code_of(fn, *args, **kw):
    with pytest.raises(CNIError) as info:
        fn(*args, **kw)
    return info.value


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
@pytest.mark.parametrize("missing", ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"])
def test_missing_variables_are_named(missing, value):
    """An empty variable is a missing one, as in the reference's skel (Go's os.Getenv)."""
    err = code_of(config.parse_env, env(**{missing: value}))
    assert err.code == 4 and f"required env variables [{missing}] missing" in err.msg


@pytest.mark.parametrize("mtu,ok", [(65535, True), (65536, False), (0, True), (-1, False)])
def test_integer_bounds_are_inclusive(mtu, ok):
    """Fields.integer(lo, hi) accepts both bounds and nothing beyond them (code 7 naming the
    key): an MTU of 65535 is valid, 65536 is not."""
    f = config.Fields({"mtu": mtu}, "")
    if ok:
        assert f.integer("mtu", 0, 0, 65535) == mtu
    else:
        err = code_of(f.integer, "mtu", 0, 0, 65535)
        assert err.code == 7 and "mtu" in err.msg and "between 0 and 65535" in err.msg


def test_add_needs_netns():
    err = code_of(config.parse_env, env(CNI_COMMAND="ADD", CNI_NETNS=None))
    assert err.code == 4 and "CNI_NETNS" in err.msg


@pytest.mark.parametrize("netns", ["/nonexistent/ns", "/etc/passwd", "/proc/self/ns/net",
                                   "relative/path", "/tmp/../etc"])
def test_add_refuses_bad_netns(netns):
    err = code_of(config.parse_env, env(CNI_COMMAND="ADD", CNI_NETNS=netns))
    assert err.code == 4 and "CNI_NETNS" in err.msg


@pytest.mark.parametrize("netns", ["/nonexistent/ns", "/etc/passwd", "relative/path"])
def test_netns_override_lifts_only_the_own_namespace_refusal(netns):
    """CNI_NETNS_OVERRIDE=1 (the reference's test switch) accepts the plugin's own namespace,
    as the reference's skel does, and nothing else: a path that is no namespace stays code 4."""
    err = code_of(config.parse_env, env(CNI_COMMAND="ADD", CNI_NETNS=netns,
                                        CNI_NETNS_OVERRIDE="1"))
    assert err.code == 4 and "CNI_NETNS" in err.msg
    own = config.parse_env(env(CNI_COMMAND="ADD", CNI_NETNS="/proc/self/ns/net",
                               CNI_NETNS_OVERRIDE="true"))
    assert own.netns == "/proc/self/ns/net"


def test_unknown_command():
    err = code_of(config.parse_env, env(CNI_COMMAND="FOO"))
    assert err.code == 4 and "FOO" in err.msg


@pytest.mark.parametrize("cid", ["-bad", "bad id", "a;b", "a$(x)", "ä", "", ".x", "x/y"])
def test_bad_container_ids(cid):
    err = code_of(config.parse_env, env(CNI_CONTAINERID=cid))
    assert err.code == 4


@pytest.mark.parametrize("ifname", ["-eth0", "eth 0", "a" * 16, ".", "..", "e/0", "e:0", "eth0\n",
                                    "é", 'e"0', "e'0", "e`x`", "e$(x)", "e;0", "e#0",
                                    "eth\udcff", "eth\ud800"])     # (bytes not UTF-8; a lone surrogate)
def test_bad_interface_names(ifname):
    err = code_of(config.parse_env, env(CNI_IFNAME=ifname))
    assert err.code == 4 and "CNI_IFNAME" in err.msg


@pytest.mark.parametrize("ifname", ["eth0", "net1", "e", "a" * 15, "eth0.100", "veth_a-b"])
def test_good_interface_names(ifname):
    assert config.parse_env(env(CNI_IFNAME=ifname)).ifname == ifname


def test_cni_args():
    assert config.parse_cni_args("IgnoreUnknown=1;IP=10.0.0.5;") == {"IgnoreUnknown": "1",
                                                                     "IP": "10.0.0.5"}
    for bad in ("IP", "A=b=c"):
        assert code_of(config.parse_cni_args, bad).code == 4


def test_cni_args_empty_key_is_an_unknown_key():
    """"=x" is a pair with an empty key, as the reference's LoadArgs reads it: refused as an
    unknown key, let through by IgnoreUnknown (it was refused always, DEL included)."""
    args = config.parse_cni_args("IgnoreUnknown=1;=bar")
    assert args == {"IgnoreUnknown": "1", "": "bar"}
    config.check_cni_args(args, frozenset({"IP"}), "IgnoreUnknown=1;=bar")
    error = code_of(config.check_cni_args, config.parse_cni_args("=bar"), frozenset({"IP"}), "=bar")
    assert error.code == 4 and '"" (empty)' in error.msg


def test_unknown_cni_args_need_ignore_unknown():
    err = code_of(config.check_cni_args, {"K8S_POD_NAME": "x"}, frozenset({"IP"}), "K8S_POD_NAME=x")
    assert err.code == 4 and "K8S_POD_NAME" in err.msg
    config.check_cni_args({"K8S_POD_NAME": "x", "IgnoreUnknown": "true"}, frozenset(), "")


def test_decode_errors():
    assert code_of(config.decode_config, b"{").code == 6
    assert code_of(config.decode_config, b"[]").code == 6
    assert code_of(config.decode_config, b"\xff\xfe").code == 6


def test_stdin_size_limit():
    big = io.BytesIO(b" " * (config.STDIN_LIMIT + 10))
    assert code_of(config.read_stdin, big).code == 6


@pytest.mark.parametrize("name,code", [(None, 7), ("", 7), ("bad name", 7), ("../x", 7),
                                       ("-x", 7), (5, 7), ("a" * 300, 7)])
def test_network_names(name, code):
    conf = {} if name is None else {"name": name}
    assert code_of(config.check_name, conf).code == code


def test_versions():
    assert config.check_version({"cniVersion": "1.0.0"}, "ADD") == "1.0.0"
    assert config.check_version({}, "ADD") == "0.1.0"
    # libcni reads a null or empty cniVersion as a missing one
    assert config.check_version({"cniVersion": None}, "DEL") == "0.1.0"
    assert config.check_version({"cniVersion": ""}, "DEL") == "0.1.0"
    err = code_of(config.check_version, {"cniVersion": "9.9.9"}, "ADD")
    assert err.code == 1 and "9.9.9" in err.details
    err = code_of(config.check_version, {"cniVersion": "0.3.1"}, "CHECK")
    assert err.code == 1 and "CHECK" in err.msg
    assert code_of(config.check_version, {"cniVersion": "1.0.0"}, "GC").code == 1
    assert code_of(config.check_version, {"cniVersion": 1}, "ADD").code == 7


def test_fields_name_the_key():
    f = config.Fields({"mtu": "big", "isGateway": "yes", "bridge": "-x"}, "")
    assert "mtu" in code_of(f.integer, "mtu").msg
    assert "isGateway" in code_of(f.flag, "isGateway").msg
    err = code_of(f.ifname, "bridge")
    assert err.code == 7 and "bridge" in err.msg


def test_requested_mac_precedence():
    conf = {"runtimeConfig": {"mac": "0a:00:00:00:00:01"}, "args": {"cni": {"mac": "0a:00:00:00:00:02"}}}
    assert config.requested_mac(conf, {"MAC": "0a:00:00:00:00:03"})[0] == "0a:00:00:00:00:01"
    assert config.requested_mac({}, {"MAC": "0A:00:00:00:00:03"})[0] == "0a:00:00:00:00:03"
    # a value of CNI_ARGS is the environment's (code 4), the config's is code 7
    assert code_of(config.requested_mac, {}, {"MAC": "01:00:00:00:00:00"}).code == 4
    zero = {"runtimeConfig": {"mac": "00:00:00:00:00:00"}}          # (lo's: no link takes it)
    error = code_of(config.requested_mac, zero, {})
    assert error.code == 7 and "runtimeConfig.mac" in error.msg and "all zeros" in error.msg


# -- DEL and GC take no notice of bad values of fields they never read (engine._tolerated) -------

_IPAM = {"type": "host-local", "ranges": [[{"subnet": "10.5.0.0/24"}]],
         "dataDir": "/nonexistent/cnish-unit"}
_NOT_READ_BY_DEL = [
    ("bridge", {"mtu": 70000}, "mtu"),
    ("bridge", {"hairpinMode": True, "promiscMode": True}, "hairpinMode"),
    ("bridge", {"vlan": 5000, "vlanTrunk": "x"}, "vlan"),
    ("bridge", {"ipam": dict(_IPAM, routes=[{"gw": "10.5.0.1"}])}, "ipam.routes"),
    ("bridge", {"dns": {"nameservers": "10.0.0.1"}}, "dns"),
    ("bridge", {"bridge": "-x"}, "bridge"),
    ("bridge", {"ipam": dict(_IPAM, ranges=[[{"subnet": "10.5.0.0/24", "gateway": "10.6.0.1"}]])},
     "ipam.ranges"),
    ("bridge", {"ipam": dict(_IPAM, subnet="10.5.0.0/24", rangeEnd="10.6.0.1")}, "ipam.rangeEnd"),
    ("ptp", {"mtu": 60}, "mtu"),
    ("ptp", {"mtu": 1000, "ipam": dict(_IPAM, ranges=[[{"subnet": "fd00:5::/64"}]])}, "mtu"),
    ("macvlan", {"master": "eth9", "mode": "l2", "mac": "zz:11"}, "mode"),
    ("bridge", {"cniVersion": "0.2.0", "ipam": {"type": "static", "addresses": [
        {"address": "10.5.0.2/24"}, {"address": "10.6.0.2/24"}], "routes": "x"}}, "ipam.routes"),
    # (the capability host-local reads ranges from: it was refused on DEL, a code review found)
    ("bridge", {"runtimeConfig": {"ipRanges": [[{"subnet": "10.9.0.1/24"}]]}},
     "runtimeConfig.ipRanges"),
    ("ptp", {"runtimeConfig": {"ipRanges": "x"}}, "runtimeConfig.ipRanges"),
]


@pytest.mark.parametrize("plugin,bad,field", _NOT_READ_BY_DEL)
def test_del_and_gc_ignore_bad_fields_they_never_read(plugin, bad, field):
    """A runtime retries DEL until it succeeds, also after an ADD that the same bad field
    made fail: DEL and GC go on without the field (the dry-run header says so), ADD and
    CHECK still refuse it with code 7 naming it."""
    from lab import operation
    conf = dict({"cniVersion": "1.1.0", "name": "n1", "type": plugin, "ipam": _IPAM}, **bad)
    modern = conf["cniVersion"] == "1.1.0"          # (CHECK needs 0.4.0, GC 1.1.0)
    for command in ("ADD", "CHECK") if modern else ("ADD",):
        with pytest.raises(CNIError) as info:
            operation(dict(conf, prevResult={"cniVersion": "1.1.0"}), command)
        assert info.value.code == 7 and field.split(".")[-1] in info.value.msg, info.value.msg
    for command in ("DEL", "GC") if modern else ("DEL",):
        op = operation(conf, command, ifname="" if command == "GC" else "eth0",
                       cid="" if command == "GC" else "ctr1")
        assert [f for f, _ in op.ignored][:1] == [field]
        assert any(note.startswith(f"{command} ignores {field}") for note in op.notes), op.notes


@pytest.mark.parametrize("bad,field", [({"ipMasq": "yes"}, "ipMasq"),
                                       ({"ipam": dict(_IPAM, dataDir="rel")}, "ipam.dataDir"),
                                       ({"macspoofchk": 1}, "macspoofchk")])
def test_del_still_refuses_bad_fields_it_reads(bad, field):
    from lab import operation
    conf = dict({"cniVersion": "1.1.0", "name": "n1", "type": "bridge", "ipam": _IPAM}, **bad)
    with pytest.raises(CNIError) as info:
        operation(conf, "DEL")
    assert info.value.code == 7 and field in info.value.msg


@pytest.mark.parametrize("field,value", [
    ("bridge", "br\ud800"), ("ipam.dataDir", "/tmp/d\ud800"), ("ipam.dataDir", "/tmp/\x9b2J"),
    ("ipam.dataDir", "/tmp/a\u202eb"), ("ipam.resolvConf", "/etc/r\u2066"),
    ("ipam.dataDir", "/tmp/a\u00a0b")])
def test_names_and_paths_that_cannot_be_encoded_or_do_not_print_are_refused(field, value):
    """A lone surrogate (JSON allows "\\ud800") cannot even be encoded: it was an internal
    error (999); a C1 control or a right-to-left override would make the dry-run script
    read otherwise than it runs."""
    from lab import operation
    conf = {"cniVersion": "1.0.0", "name": "n1", "type": "bridge", "ipam": dict(_IPAM)}
    if field.startswith("ipam."):
        conf["ipam"][field[5:]] = value
    else:
        conf[field] = value
    err = code_of(operation, conf)
    assert err.code == 7 and field in err.msg, err.msg


def test_a_config_nested_too_deeply_is_a_decode_error():
    """Python's encoder gives up near a thousand levels, its decoder a little later: a config
    nested in between used to end as code 999 (found by an audit); 64 levels is the limit."""
    deep = {"a": 1}
    for _ in range(70):
        deep = {"x": [deep]}
    err = code_of(config.decode_config, json.dumps(deep).encode())
    assert err.code == 6 and "nested too deeply" in err.msg
    assert config.decode_config(b'{"a": [{"b": [1, {"c": {}}]}]}')["a"][0]["b"][0] == 1


def test_a_fifo_is_no_namespace_and_does_not_hang(tmp_path):
    """CNI_NETNS naming a FIFO: refused at once (opening it without O_NONBLOCK waited for a
    writer for ever; found by an audit)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert config.netns_problem(str(fifo)) == "is not a namespace"


def test_sublink_configs_read_as_the_reference_reads_them():
    """Found by a differential audit against the reference in the kernel lab: an empty
    `master` or `mode` (Go's zero value, which templated configs render) is "not set"; an
    ipvlan without IPAM and without prevResult is refused (it could receive nothing); an `mtu`
    too small for IPv6 is code 7 before anything changes for macvlan, ipvlan and vlan too
    (it was a failed step, rolled back)."""
    from lab import operation
    base = {"cniVersion": "1.0.0", "name": "n1", "ipam": _IPAM}
    op = operation(dict(base, type="macvlan", master="", mode=""), "DEL")
    assert op.conf.mode == "bridge" and op.conf.master is None
    op = operation(dict(base, type="ipvlan", master="", mode=""), "DEL")
    assert op.conf.mode == "l2" and op.conf.master is None
    for ipam in (None, {}):
        conf = {"cniVersion": "1.0.0", "name": "n1", "type": "ipvlan", "master": "eth9"}
        if ipam is not None:
            conf["ipam"] = ipam
        with pytest.raises(CNIError) as info:
            operation(conf, "ADD")
        assert info.value.code == 7 and "ipam" in info.value.msg, info.value.msg
        operation(conf, "DEL")                                # (DEL never refuses it)
        operation(dict(conf, prevResult={"cniVersion": "1.0.0", "interfaces": [{"name": "m"}],
                                         "ips": [{"address": "10.5.0.9/24"}]}), "ADD")
    v6 = dict(_IPAM, ranges=[[{"subnet": "fd00:5::/64"}]])
    for kind, extra in (("macvlan", {}), ("ipvlan", {}), ("vlan", {"vlanId": 5})):
        with pytest.raises(CNIError) as info:
            operation(dict(base, type=kind, master="eth9", mtu=1200, ipam=v6, **extra), "ADD")
        assert info.value.code == 7 and "1280" in info.value.msg, info.value.msg


ROUTE_HEAD = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"


@pytest.mark.parametrize("route,ipv6_route,device", [
    # an `unreachable default` route (no device, flags RTF_UP|RTF_REJECT) before the real one
    ("*\t00000000\t00000000\t0201\t0\t0\t0\t00000000\t0\t0\t0\n"
     "eth9\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n", "", "eth9"),
    # no IPv4 default route: IPv6's (its unreachable routes sit on lo), as the reference looks
    ("eth9\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
     "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
     "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n"
     "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
     "fe800000000000000000000000000001 00000400 00000001 00000000 00000003     ens3\n", "ens3"),
    ("", "", None),
])
def test_the_default_route_master_is_a_route_that_leads_somewhere(tmp_path, monkeypatch, route,
                                                                    ipv6_route, device):
    """macvlan's and ipvlan's master when the config names none (found by an audit: an
    `unreachable default` route gave the master `*`, and an IPv6-only host none)."""
    from cnish.plugins import sublink
    (tmp_path / "route").write_text(ROUTE_HEAD + route)
    (tmp_path / "ipv6_route").write_text(ipv6_route)
    monkeypatch.setattr(sublink, "PROC_NET", str(tmp_path))
    assert sublink.default_route_device() == device


def test_keys_are_read_regardless_of_case_as_go_reads_them():
    """The reference plugins' Go decoder matches keys to fields regardless of case: a config
    with "isgateway" or "RangeStart" means to cnish what it means to them (read exactly, they
    were ignored: an audit's find). Of keys that fold alike, the last wins, as in Go; the
    capability names under "capabilities" (a map in Go) and unknown keys stay as written."""
    from cnish.config import canonical_keys
    conf = canonical_keys({
        "CNIVersion": "1.0.0", "NAME": "n", "type": "bridge", "isGateway": False,
        "isgateway": True, "capabilities": {"IPs": True}, "Other": 1,
        "ipam": {"Type": "host-local", "ranges": [[{"Subnet": "10.1.0.0/24",
                                                   "rangestart": "10.1.0.9"}]],
                 "routes": [{"DST": "0.0.0.0/0"}], "DataDir": "/tmp/x"},
        "prevResult": {"IPs": [{"Address": "10.1.0.9/24", "Interface": 0}]},
        "ſubnet": "the long s folds to s", "kernelpath": "/sys/devices/x"})
    assert conf["cniVersion"] == "1.0.0" and conf["name"] == "n" and conf["isGateway"] is True
    assert "isgateway" not in conf and conf["capabilities"] == {"IPs": True} and conf["Other"] == 1
    assert conf["ipam"] == {"type": "host-local", "dataDir": "/tmp/x",
                            "ranges": [[{"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.9"}]],
                            "routes": [{"dst": "0.0.0.0/0"}]}
    assert conf["prevResult"] == {"ips": [{"address": "10.1.0.9/24", "interface": 0}]}
    assert conf["subnet"] == "the long s folds to s"


def test_case_folding_keeps_maps_and_merges_structs_as_go_does():
    """Only structs' keys fold: maps under runtimeConfig (aliases, pod annotations) keep
    theirs, also where they clash with a known key (a review found them renamed and merged,
    and the CLI's capability arguments changed in place). Two objects for one struct field
    ("ipam" and "IPAM") decode into one, as Go decodes into the struct it already has."""
    from cnish.config import canonical_keys
    given = {"cniVersion": "1.0.0", "name": "n", "type": "bridge",
             "runtimeConfig": {"aliases": {"Bridge": ["web"], "mode": ["x"]},
                               "io.kubernetes.cri.pod-annotations": {"Version": "2", "version": "1"},
                               "IPRanges": [[{"Subnet": "10.2.0.0/24"}]]},
             "ipam": {"type": "host-local", "subnet": "10.5.0.0/24",
                      "dns": {"nameservers": ["10.5.0.1"]}},
             "IPAM": {"routes": [{"Dst": "0.0.0.0/0"}], "DNS": {"Search": ["x.test"]}}}
    before = json.dumps(given)
    conf = canonical_keys(given)
    assert json.dumps(given) == before                      # (a new object)
    assert conf["runtimeConfig"]["aliases"] == {"Bridge": ["web"], "mode": ["x"]}
    assert conf["runtimeConfig"]["io.kubernetes.cri.pod-annotations"] == {"Version": "2",
                                                                           "version": "1"}
    assert conf["runtimeConfig"]["ipRanges"] == [[{"subnet": "10.2.0.0/24"}]]
    assert conf["ipam"] == {"type": "host-local", "subnet": "10.5.0.0/24",
                            "dns": {"nameservers": ["10.5.0.1"], "search": ["x.test"]},
                            "routes": [{"dst": "0.0.0.0/0"}]}


def test_every_key_the_plugins_read_is_one_that_case_folding_knows():
    """canonical_keys knows a key only if CONFIG_KEYS lists it: every field the plugins and
    the config module read through Fields must be there, and no two listed keys fold alike."""
    import glob
    import re
    from cnish.config import CONFIG_KEYS
    assert len({k.lower() for k in CONFIG_KEYS}) == len(CONFIG_KEYS)
    read = re.compile(r'\b\w+\.(?:flag|integer|text|choice|ifname|abspath|cidr|ip|items|object|'
                      r'sub|has|hwaddr)\("([A-Za-z][A-Za-z0-9]*)"')
    root = os.path.join(os.path.dirname(__file__), "..", "..", "cnish")
    keys = {m.group(1) for path in glob.glob(f"{root}/*.py") + glob.glob(f"{root}/plugins/*.py")
            for m in read.finditer(open(path).read())}
    assert len(keys) > 40 and keys <= set(CONFIG_KEYS), sorted(keys - set(CONFIG_KEYS))


@pytest.mark.parametrize("plugin", ["bridge", "ptp", "macvlan"])
def test_del_takes_no_notice_of_an_mtu_too_small_for_the_ipv6_address_it_removes(plugin):
    """The MTU was lowered below IPv6's minimum after an ADD that gave the container an IPv6
    address (or a delegated IPAM handed one out): bridge's and ptp's DEL refused that, code 7,
    on every retry (a code review found it: the refusal ran where the IPAM's addresses are
    known, past DEL's tolerance of fields it does not read). Only ADD refuses it."""
    from cnish import engine
    from lab import operation
    prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0",
                                                   "sandbox": "/var/run/netns/cnish-test"}],
            "ips": [{"address": "fd00:9::2/64", "interface": 0}]}
    conf = {"cniVersion": "1.0.0", "name": "n1", "type": plugin, "mtu": 1200, "ipam": _IPAM,
            "prevResult": prev, **({"master": "eth9"} if plugin == "macvlan" else {})}
    plan, att = engine.build_plan(operation(conf, "DEL"))
    assert plan.steps and att["mtu"] == 0


def test_del_goes_on_without_a_log_file_it_may_not_write(tmp_path):
    """`logFile` is checked before anything else reads the config (only cnish's own log files
    may be named); DEL refused a config naming another, code 7, for good (a code review). DEL
    and GC now go on without it and say why on stderr; ADD still refuses it."""
    from cnish import cni
    conf = {"cniVersion": "1.0.0", "name": "n1", "type": "bridge", "logFile": str(tmp_path / "x"),
            "ipam": _IPAM}
    env = {"CNI_CONTAINERID": "ctr1", "CNI_NETNS": "", "CNI_IFNAME": "eth0",
           "CNI_PATH": "/nonexistent", "CNISH_PLAN_CACHE": "off"}
    from cnish.log import log_file
    with pytest.raises(CNIError) as info:              # what ADD meets first
        log_file({}, conf)
    assert info.value.code == 7 and "logFile" in info.value.msg
    out, err = io.StringIO(), io.StringIO()
    # (an empty CNI_NETNS: this DEL touches no namespace, and the store is /nonexistent)
    rc = cni.main(dict(env, CNI_COMMAND="DEL"), io.BytesIO(json.dumps(conf).encode()), out, err,
                  "bridge")
    assert rc == 0 and out.getvalue() == "", (out.getvalue(), err.getvalue())
    assert "DEL goes on without a log file" in err.getvalue()
    assert not os.path.exists(tmp_path / "x")
