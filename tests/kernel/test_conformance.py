"""CNI conformance beyond a single plugin: IPAM delegation both ways, GC, STATUS, versions,
and whole conflists in the operator CLI (with the reference plugins from /usr/lib/cni)."""

import base64
import hashlib
import json
import os
import subprocess

import pytest

from lab import bridge_conf, cnish_command, interrupts_held, sh, store_files

pytestmark = pytest.mark.kernel
REFERENCE = "/usr/lib/cni"


@pytest.fixture
def plugin_dir(tmp_path):
    """A CNI_PATH directory: the reference IPAM plugins under other names, and cnish linked
    under the reference's names."""
    d = tmp_path / "cni-bin"
    d.mkdir()
    os.symlink(f"{REFERENCE}/host-local", d / "ref-host-local")
    os.symlink(f"{REFERENCE}/static", d / "ref-static")
    ours = d / "ours"
    ours.mkdir()
    for name in ("host-local", "static"):
        os.symlink(cnish_command()[0], ours / name)
    return d


def test_cnish_delegates_to_the_reference_host_local(lab, plugin_dir):
    host, c = lab.host(), lab.netns()
    conf = bridge_conf(lab, ipam={"type": "ref-host-local"})
    env = {"CNI_PATH": f"{plugin_dir}:{REFERENCE}"}
    rc, res, err = host.cni("ADD", conf, c, extra_env=env)
    assert rc == 0, (res, err)
    assert res["ips"][0]["address"] == "10.77.0.2/24"
    store = store_files(lab.data_dir)
    assert store[f"{conf['name']}/10.77.0.2"][1] == b"ctr1\r\neth0"     # written by the reference
    assert host.cni("CHECK", dict(conf, prevResult=res), c, extra_env=env)[0] == 0
    assert host.cni("DEL", dict(conf, prevResult=res), c, extra_env=env)[0] == 0
    assert f"{conf['name']}/10.77.0.2" not in store_files(lab.data_dir)


def test_delegated_reservation_is_released_when_add_fails(lab, plugin_dir):
    host, c = lab.host(), lab.netns()
    sh("ip", "-n", c, "link", "add", "eth0", "type", "veth", "peer", "name", "other0")
    conf = bridge_conf(lab, ipam={"type": "ref-host-local"})
    rc, out, _ = host.cni("ADD", conf, c, extra_env={"CNI_PATH": f"{plugin_dir}:{REFERENCE}"})
    assert rc == 1 and "(veth)" in out["msg"]
    assert not [k for k in store_files(lab.data_dir) if k.endswith("10.77.0.2")]


def test_delegated_reservation_is_released_when_preparing_the_plan_fails(lab, plugin_dir):
    """The delegated ADD runs while the plan is prepared; a refusal after it (here: the bridge
    has another address, and no forceAddress) must give its addresses back, plan or not."""
    host, c = lab.host(), lab.netns()
    conf = bridge_conf(lab, ipam={"type": "ref-host-local"})
    host.run("ip", "link", "add", conf["bridge"], "type", "bridge")
    host.run("ip", "addr", "add", "10.66.0.1/16", "dev", conf["bridge"])
    rc, out, _ = host.cni("ADD", conf, c, extra_env={"CNI_PATH": f"{plugin_dir}:{REFERENCE}"})
    assert rc == 1 and out["code"] == 7 and "already has an IP address" in out["msg"], out
    assert not [k for k in store_files(lab.data_dir) if k.endswith("10.77.0.2")]


def test_cnish_delegates_to_the_reference_static(lab, plugin_dir):
    host, c = lab.host(), lab.netns()
    conf = bridge_conf(lab, ipam={"type": "ref-static",
                                  "addresses": [{"address": "10.77.0.9/24", "gateway": "10.77.0.1"}]})
    conf["ipam"].pop("ranges")
    rc, res, err = host.cni("ADD", conf, c, extra_env={"CNI_PATH": f"{plugin_dir}:{REFERENCE}"})
    assert rc == 0, (res, err)
    assert res["ips"] == [{"address": "10.77.0.9/24", "gateway": "10.77.0.1", "interface": 2}]
    assert sh("ip", "netns", "exec", c, "ping", "-c1", "-W2", "10.77.0.1", check=False).returncode == 0
    assert host.cni("DEL", dict(conf, prevResult=res), c,
                    extra_env={"CNI_PATH": f"{plugin_dir}:{REFERENCE}"})[0] == 0


def test_unknown_ipam_binary_is_named(lab, plugin_dir):
    host, c = lab.host(), lab.netns()
    conf = bridge_conf(lab, ipam={"type": "no-such-ipam"})
    rc, out, _ = host.cni("ADD", conf, c, extra_env={"CNI_PATH": str(plugin_dir)})
    assert rc == 1 and out["code"] == 7 and "no-such-ipam" in out["msg"]


@pytest.mark.parametrize("ipam_type", ["cnish", "my-bridge", "bridge", "cnish-ptp"])
def test_an_ipam_type_that_runs_cnish_as_a_main_plugin_is_refused(lab, plugin_dir, ipam_type):
    """ipam.type naming cnish's launcher (`cnish`), or a link to it under a name cnish does not
    implement (the config's own type then decides), would run cnish as the bridge again, which
    delegates again, without end: code 7, and no more than one cnish started by the other."""
    host, c = lab.host(), lab.netns()
    os.symlink(cnish_command()[0], plugin_dir / "cnish")
    os.symlink(cnish_command()[0], plugin_dir / "my-bridge")
    conf = bridge_conf(lab, ipam={"type": ipam_type})
    before = host.state(c)
    rc, out, _ = host.cni("ADD", conf, c, extra_env={"CNI_PATH": str(plugin_dir)})
    assert rc == 1 and out["code"] == 7, out
    assert "not as an IPAM plugin" in out["msg"] or "is not an IPAM plugin" in out["msg"], out
    assert out["msg"].count("IPAM plugin") <= 2, out    # (one delegation at the most)
    assert host.state(c) == before


@pytest.mark.parametrize("ipam", ["host-local", "static"])
def test_reference_bridge_uses_cnish_as_its_ipam(lab, plugin_dir, ipam):
    host, c = lab.host(), lab.netns()
    conf = bridge_conf(lab)
    if ipam == "static":
        conf["ipam"] = {"type": "static", "addresses": [{"address": "10.77.0.33/24",
                                                         "gateway": "10.77.0.1"}],
                        "routes": [{"dst": "0.0.0.0/0"}]}
    env = {"CNI_PATH": f"{plugin_dir / 'ours'}:{REFERENCE}"}
    rc, res, err = host.cni("ADD", conf, c, plugin=[f"{REFERENCE}/bridge"], extra_env=env)
    assert rc == 0, (res, err)
    want = "10.77.0.2/24" if ipam == "host-local" else "10.77.0.33/24"
    assert res["ips"] == [{"address": want, "gateway": "10.77.0.1", "interface": 2}]
    assert "default via 10.77.0.1" in sh("ip", "-n", c, "route").stdout
    if ipam == "host-local":       # the reservation is cnish's (0600, atomic)
        assert store_files(lab.data_dir)[f"{conf['name']}/10.77.0.2"] == ("0o600", b"ctr1\r\neth0")
    rc, _, err = host.cni("DEL", dict(conf, prevResult=res), c, plugin=[f"{REFERENCE}/bridge"],
                          extra_env=env)
    assert rc == 0, err
    assert not [k for k in store_files(lab.data_dir) if k.endswith(want.split("/")[0])]


def test_gc_removes_only_stale_attachments(lab):
    host, keep_ns, stale_ns = lab.host(), lab.netns(), lab.netns()
    conf = bridge_conf(lab, cniVersion="1.1.0")
    rc, keep, _ = host.cni("ADD", conf, keep_ns, cid="keep")
    rc2, stale, _ = host.cni("ADD", conf, stale_ns, cid="stale")
    assert rc == rc2 == 0
    stale_veth = stale["interfaces"][1]["name"]
    for key in ("cni.dev/valid-attachments", "cni.dev/attachments"):     # the legacy key too
        gc_conf = dict(conf, **{key: [{"containerID": "keep", "ifname": "eth0"}]})
        rc, out, err = host.cni("GC", gc_conf, None, cid="", ifname="")
        assert rc == 0 and out is None, (out, err)
    links = host.run("ip", "-o", "link").stdout
    assert stale_veth not in links and keep["interfaces"][1]["name"] in links
    nat = host.run("iptables-save", "-t", "nat").stdout
    assert 'id: \\"keep\\"' in nat and 'id: \\"stale\\"' not in nat
    files = store_files(lab.data_dir)
    assert f"{conf['name']}/10.77.0.2" in files and f"{conf['name']}/10.77.0.3" not in files
    # the kept attachment still works
    assert host.cni("CHECK", dict(conf, prevResult=keep), keep_ns, cid="keep")[0] == 0



@pytest.mark.parametrize("name,cid", [("n" * 240, "c" * 40), ("net1", "d" * 250)])
def test_a_masquerade_comment_longer_than_iptables_keeps_is_cut_as_iptables_cuts_it(lab, name,
                                                                                   cid):
    """The reference's masquerade comment, `name: "<net>" id: "<cid>"`, outgrows iptables' 255
    characters with a long network name or container id (both valid). iptables cuts it, and
    the reference's ADD and DEL work; cnish refused both ADD and DEL (code 7, for ever) and
    now writes the comment cut where iptables cuts it: ADD, CHECK and DEL work."""
    host, c = lab.host(), lab.netns()
    conf = bridge_conf(lab, name=name)
    rc, res, err = host.cni("ADD", conf, c, cid=cid)
    assert rc == 0, (res, err)
    nat = host.run("iptables-save", "-t", "nat").stdout
    assert nat.count("MASQUERADE") == 1, nat
    assert host.cni("CHECK", dict(conf, prevResult=res), c, cid=cid)[0] == 0
    for _ in range(2):
        rc, out, err = host.cni("DEL", dict(conf, prevResult=res), c, cid=cid)
        assert rc == 0, (out, err)
    nat = host.run("iptables-save", "-t", "nat").stdout
    assert "CNI-" not in nat and "MASQUERADE" not in nat, nat
    # macspoofchk: nft takes no comment over 128 characters; ADD is refused, DEL is not
    spoof = bridge_conf(lab, name="spoof", macspoofchk=True)
    rc, out, _ = host.cni("ADD", spoof, c, cid="e" * 130)
    assert rc == 1 and out["code"] == 7 and "macspoofchk" in out["msg"], out
    rc, out, err = host.cni("DEL", spoof, c, cid="e" * 130)
    assert rc == 0, (out, err)


def test_gc_removes_a_stale_chain_whose_comment_iptables_cut(lab):
    """With container ids so long that the masquerade comment is cut at 255 characters (its
    closing quote gone), GC tells a stale attachment's chain from a valid one's by the chain's
    name (a hash of the whole id); it used to skip both, leaking the stale chain, through
    which the next container given the address would then be masqueraded."""
    host, keep_ns, stale_ns = lab.host(), lab.netns(), lab.netns()
    conf = bridge_conf(lab, name="n" * 60, cniVersion="1.1.0")
    keep_id, stale_id = "L" + "a" * 220, "L" + "b" * 220
    results = {}
    for ns, cid in ((keep_ns, keep_id), (stale_ns, stale_id)):
        rc, results[cid], err = host.cni("ADD", conf, ns, cid=cid)
        assert rc == 0, (results[cid], err)
    from cnish.names import masq_chain
    keep_chain, stale_chain = masq_chain(conf["name"], keep_id), masq_chain(conf["name"], stale_id)
    gc_conf = dict(conf, **{"cni.dev/valid-attachments": [{"containerID": keep_id,
                                                            "ifname": "eth0"}]})
    rc, out, err = host.cni("GC", gc_conf, None, cid="", ifname="")
    assert rc == 0, (out, err)
    nat = host.run("iptables-save", "-t", "nat").stdout
    assert stale_chain not in nat and keep_chain in nat, nat
    assert host.cni("CHECK", dict(conf, prevResult=results[keep_id]), keep_ns, cid=keep_id)[0] == 0
    assert host.cni("DEL", dict(conf, prevResult=results[keep_id]), keep_ns, cid=keep_id)[0] == 0


def test_gc_reads_the_labels_of_long_names_right(lab):
    """A veth's label (its alias) holds at most 255 bytes. With a long network name and container
    ids, cnish labels the veth with hashes instead of a cut label, from which GC used to read a
    wrong interface name and delete the link of an attachment it was told is valid."""
    host, keep_ns, stale_ns = lab.host(), lab.netns(), lab.netns()
    name = "n" * 181                                   # valid: names may have 255 characters
    keep_id, stale_id = "a" * 64, "b" * 64
    conf = bridge_conf(lab, name=name, cniVersion="1.1.0", ipMasq=False)
    rc, keep, err = host.cni("ADD", conf, keep_ns, cid=keep_id)
    assert rc == 0, (keep, err)
    rc, stale, err = host.cni("ADD", conf, stale_ns, cid=stale_id)
    assert rc == 0, (stale, err)
    keep_veth, stale_veth = keep["interfaces"][1]["name"], stale["interfaces"][1]["name"]
    assert host.run("ip", "-o", "link", "show", keep_veth).stdout.count("alias cnish#") == 1
    gc_conf = dict(conf, **{"cni.dev/valid-attachments": [{"containerID": keep_id,
                                                            "ifname": "eth0"}]})
    rc, out, err = host.cni("GC", gc_conf, None, cid="", ifname="")
    assert rc == 0, (out, err)
    links = host.run("ip", "-o", "link").stdout
    assert keep_veth in links and stale_veth not in links
    assert host.cni("CHECK", dict(conf, prevResult=keep), keep_ns, cid=keep_id)[0] == 0


def test_gc_never_takes_other_files_for_reservations(lab, tmp_path):
    """GC releases the reservations of stale owners in <dataDir>/<network>/. The data directory
    comes from the config (a user's, with Multus), so only files named like an IP address are
    reservations: an audit pointed dataDir at a directory of ordinary files and GC deleted
    them all."""
    host = lab.host()
    victim = tmp_path / "data" / "victim"
    victim.mkdir(parents=True)
    files = {"notes.txt": "ctr9\r\neth0", "crlf.conf": "a\r\nb", "empty": "", "10": "x"}
    for name, content in files.items():
        (victim / name).write_text(content)
    conf = {"cniVersion": "1.1.0", "name": "victim", "type": "host-local",
            "ipam": {"type": "host-local", "dataDir": str(tmp_path / "data"),
                     "ranges": [[{"subnet": "10.96.0.0/24"}]]},
            "cni.dev/valid-attachments": []}
    rc, out, err = host.cni("GC", conf, None, cid="", ifname="")
    assert rc == 0, (out, err)
    assert set(os.listdir(victim)) - {"lock"} == set(files)        # (the store's lock file)
    assert all((victim / name).read_bytes() == content.encode() for name, content in files.items())

def test_status(lab):
    host, c = lab.host(), lab.netns()
    conf = bridge_conf(lab, cniVersion="1.1.0", ipam={"ranges": [[{"subnet": "10.77.0.0/30"}]]})
    assert host.cni("STATUS", conf, None, cid="", ifname="") == (0, None, "")
    assert host.cni("ADD", conf, c)[0] == 0          # takes the only address of the /30
    rc, out, _ = host.cni("STATUS", conf, None, cid="", ifname="")
    assert rc == 1 and out["code"] == 50 and "no IP addresses available" in out["msg"]
    rc, out, _ = host.cni("STATUS", dict(conf, cniVersion="1.0.0"), None, cid="", ifname="")
    assert rc == 1 and out["code"] == 1


def test_version_gates(lab):
    host, c = lab.host(), lab.netns()
    rc, out, _ = host.cni("CHECK", bridge_conf(lab, cniVersion="0.3.1"), c)
    assert rc == 1 and out["code"] == 1 and "CHECK" in out["msg"]
    rc, out, _ = host.cni("GC", bridge_conf(lab, cniVersion="1.0.0"), None, cid="", ifname="")
    assert rc == 1 and out["code"] == 1
    rc, out, _ = host.cni("ADD", bridge_conf(lab, cniVersion="1.2.0"), c)
    assert rc == 1 and out["code"] == 1 and '"1.2.0"' in out["details"]



@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_add_whose_result_cannot_be_expressed_changes_nothing(lab, version):
    """Results before 0.3.0 can only describe addresses: an ADD without IPAM is refused before
    anything changes (it used to create the veth pair, then fail converting the result)."""
    host, c = lab.host(), lab.netns()
    conf = bridge_conf(lab, cniVersion=version, ipMasq=False, ipam={})
    before = host.state(c)
    rc, out, _ = host.cni("ADD", conf, c)
    assert rc == 1 and out["code"] == 1 and "no IP address" in out["msg"]
    assert host.state(c) == before

@pytest.fixture
def tuning_state():
    """The reference tuning plugin keeps a container's original settings in
    /run/cni/tuning/<container id>_<ifname>.json until its DEL, which a failing test may not
    reach: called with a namespace name (the container id the CLI derives from it), it has
    that file removed afterwards, and the directories too when they were not there before."""
    from cnish.cli import NETNS_DIR, _default_cid
    dirs = ("/run/cni/tuning", "/run/cni")
    existed = {d: os.path.isdir(d) for d in dirs}
    files = []

    def register(netns):
        files.append(f"{dirs[0]}/{_default_cid(f'{NETNS_DIR}/{netns}')}_eth0.json")
    try:
        yield register
    finally:
        with interrupts_held():
            for path in files:
                if os.path.exists(path):
                    os.unlink(path)
            for d in dirs:
                if not existed[d] and os.path.isdir(d) and not os.listdir(d):
                    os.rmdir(d)


def test_operator_runs_a_conflist_with_reference_plugins(lab, tmp_path, tuning_state):
    """cnish's bridge chained with the reference portmap and tuning, in the operator CLI:
    ADD in order with prevResult, DEL in reverse with the cached result and capability args."""
    host, c = lab.host(), lab.netns()
    tuning_state(c)
    bridge = bridge_conf(lab, name="chain")
    conflist = {"cniVersion": "1.0.0", "name": "chain", "plugins": [
        {k: v for k, v in bridge.items() if k not in ("cniVersion", "name")},
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "tuning", "mtu": 1280}]}
    path = tmp_path / "chain.conflist"
    path.write_text(json.dumps(conflist))
    common = ["--config", str(path), "--cache-dir", lab.cache_dir]
    env = dict(os.environ, CNI_PATH=REFERENCE)
    run = ["ip", "netns", "exec", host.name, *cnish_command()]
    out = sh(*run, "add", "chain", c, *common, "--cap-args",
             '{"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}',
             env=env).stdout
    res = json.loads(out)
    assert res["ips"][0]["address"] == "10.77.0.2/24"
    nat = host.run("iptables-save", "-t", "nat").stdout
    assert "--to-destination 10.77.0.2:80" in nat
    assert "mtu 1280" in sh("ip", "-n", c, "link", "show", "eth0").stdout
    sh(*run, "del", "chain", c, *common, env=env)
    nat = host.run("iptables-save", "-t", "nat").stdout
    assert "10.77.0.2" not in nat and "-j DNAT" not in nat    # portmap got its cached args back
    assert not os.listdir(os.path.join(lab.cache_dir, "results"))



@pytest.mark.parametrize("kind", ["bridge", "ptp"])
def test_check_finds_its_own_part_of_a_chained_result(lab, tmp_path, kind):
    """CHECK gets the chain's final result: the reference bandwidth plugin appends its ifb to
    `interfaces`, which cnish once took for its host veth (CHECK failed on a healthy pod)."""
    host, c = lab.host(), lab.netns()
    main = {k: v for k, v in bridge_conf(lab, name="bwchain").items()
            if k not in ("cniVersion", "name")}
    if kind == "ptp":
        main = {"type": "ptp", "ipMasq": True, "ipam": main["ipam"]}
    conflist = {"cniVersion": "1.0.0", "name": "bwchain", "plugins": [
        main, {"type": "bandwidth", "egressRate": 4000000, "egressBurst": 40000}]}
    path = tmp_path / "bwchain.conflist"
    path.write_text(json.dumps(conflist))
    common = ["--config", str(path), "--cache-dir", lab.cache_dir]
    env = dict(os.environ, CNI_PATH=REFERENCE)
    run = ["ip", "netns", "exec", host.name, *cnish_command()]
    res = json.loads(sh(*run, "add", "bwchain", c, *common, env=env).stdout)
    assert res["interfaces"][-1]["name"].startswith("bwp")          # bandwidth's ifb, last
    proc = sh(*run, "check", "bwchain", c, *common, env=env, check=False)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    sh(*run, "del", "bwchain", c, *common, env=env)


def test_check_of_a_bridge_chained_after_another_interface(lab):
    """Chained after a plugin that made another interface (its address, its route via its own
    gateway, first in prevResult), bridge's CHECK checks only its own addresses and routes."""
    host, c = lab.host(), lab.netns()
    sh("ip", "-n", c, "link", "add", "eth1", "type", "veth", "peer", "name", "peer1")
    sh("ip", "-n", c, "addr", "add", "198.18.5.2/24", "dev", "eth1")
    sh("ip", "-n", c, "link", "set", "eth1", "up")
    sh("ip", "-n", c, "link", "set", "peer1", "up")
    sh("ip", "-n", c, "route", "add", "198.19.5.0/24", "via", "198.18.5.1")
    prev = {"cniVersion": "1.0.0",
            "interfaces": [{"name": "eth1", "sandbox": f"/var/run/netns/{c}"}],
            "ips": [{"address": "198.18.5.2/24", "interface": 0}],
            "routes": [{"dst": "198.19.5.0/24", "gw": "198.18.5.1"}]}
    conf = bridge_conf(lab)
    rc, res, err = host.cni("ADD", dict(conf, prevResult=prev), c)
    assert rc == 0, (res, err)
    assert res["ips"][0] == prev["ips"][0] and res["ips"][1]["interface"] == 3
    rc, out, err = host.cni("CHECK", dict(conf, prevResult=res), c)
    assert rc == 0, (out, err)
    sh("ip", "-n", c, "route", "del", "default")                    # ours: CHECK notices
    rc, out, _ = host.cni("CHECK", dict(conf, prevResult=res), c)
    assert rc == 1 and out["code"] == 101 and "0.0.0.0/0" in out["msg"]
    assert host.cni("DEL", dict(conf, prevResult=res), c)[0] == 0
    assert "198.18.5.2/24" in sh("ip", "-n", c, "addr", "show", "eth1").stdout


def test_check_leaves_other_plugins_routes_without_a_gateway_alone(lab):
    """A route without a gateway in the chain's result is bridge's only when its IPAM config
    lists it (bridge installs those through its gateway): an earlier plugin's passed on, and
    a direct route a later plugin added, are theirs (CHECK looked for them through bridge's
    gateway and failed, right after ADD). Bridge's own such route is still checked."""
    host, c = lab.host(), lab.netns()
    prev = {"cniVersion": "1.0.0",
            "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00",
                            "sandbox": f"/var/run/netns/{c}"}],
            "ips": [{"address": "127.0.0.1/8", "interface": 0}],
            "routes": [{"dst": "10.50.0.0/16"}]}
    conf = bridge_conf(lab, ipam={"routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.40.0.0/16"}]})
    rc, res, err = host.cni("ADD", dict(conf, prevResult=prev), c)
    assert rc == 0, (res, err)
    assert {"dst": "10.50.0.0/16"} in res["routes"] and {"dst": "10.40.0.0/16"} in res["routes"]
    assert host.cni("CHECK", dict(conf, prevResult=res), c)[0] == 0
    sh("ip", "-n", c, "route", "add", "10.60.0.0/16", "dev", "eth0")     # a later plugin's
    res = dict(res, routes=res["routes"] + [{"dst": "10.60.0.0/16"}])
    rc, out, err = host.cni("CHECK", dict(conf, prevResult=res), c)
    assert rc == 0, (out, err)
    sh("ip", "-n", c, "route", "del", "10.40.0.0/16")                   # ours: CHECK notices
    rc, out, _ = host.cni("CHECK", dict(conf, prevResult=res), c)
    assert rc == 1 and out["code"] == 101 and "10.40.0.0/16" in out["msg"], out
    assert host.cni("DEL", dict(conf, prevResult=res), c)[0] == 0


def test_a_container_on_two_networks_with_default_routes(lab):
    """Two networks that both give the container a default route (podman or Multus attaching
    a container to several networks): the second ADD adds its route ahead of the first one,
    as the reference does, instead of failing with "File exists" (found by an audit)."""
    host, c = lab.host(), lab.netns()
    first = bridge_conf(lab, ipMasq=False)
    second = bridge_conf(lab, bridge="cni-test1", ipMasq=False,
                         ipam={"ranges": [[{"subnet": "10.78.0.0/24"}]]})
    rc, res1, err = host.cni("ADD", first, c)
    assert rc == 0, err
    rc, res2, err = host.cni("ADD", second, c, ifname="net1")
    assert rc == 0, (res2, err)
    routes = sh("ip", "-n", c, "route", "show", "default").stdout.splitlines()
    assert routes == ["default via 10.78.0.1 dev net1 ", "default via 10.77.0.1 dev eth0 "], routes
    for conf, res, ifname in ((first, res1, "eth0"), (second, res2, "net1")):
        assert host.cni("CHECK", dict(conf, prevResult=res), c, ifname=ifname)[0] == 0
    assert host.cni("DEL", dict(second, prevResult=res2), c, ifname="net1")[0] == 0
    assert "default via 10.77.0.1 dev eth0" in sh("ip", "-n", c, "route").stdout
    assert host.cni("DEL", dict(first, prevResult=res1), c)[0] == 0


def test_cli_status_and_cap_args_refusals(lab, tmp_path):
    """`cnish status` says a network is not ready when one of its plugins cannot be found (it
    said "ready"), and --cap-args that is JSON but not an object is a clean error 7 (it was a
    Python traceback). Both found by an audit."""
    host, c = lab.host(), lab.netns()
    bridge = bridge_conf(lab, name="stat")
    conflist = {"cniVersion": "1.0.0", "name": "stat", "plugins": [
        {k: v for k, v in bridge.items() if k not in ("cniVersion", "name")},
        {"type": "no-such-plugin"}]}
    path = tmp_path / "stat.conflist"
    path.write_text(json.dumps(conflist))
    common = ["--config", str(path), "--cache-dir", lab.cache_dir]
    run = ["ip", "netns", "exec", host.name, *cnish_command()]
    env = dict(os.environ, CNI_PATH=REFERENCE)
    proc = sh(*run, "status", "stat", *common, env=env, check=False)
    assert proc.returncode == 1 and "no-such-plugin" in proc.stderr and "ready" not in proc.stdout
    assert "error 50" in proc.stderr, proc.stderr   # (7 until the README audit: 50 is STATUS's)
    for bad in ("[1, 2]", "null", "5"):
        proc = sh(*run, "add", "stat", c, *common, "--cap-args", bad, env=env, check=False)
        assert proc.returncode == 1 and "error 7" in proc.stderr and "must be a JSON object" in \
            proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    for bad in ('{"bandwidth": NaN}', '{"x": Infinity}'):      # (not JSON: was a traceback)
        proc = sh(*run, "add", "stat", c, *common, "--cap-args", bad, "--dry-run", env=env,
                  check=False)
        assert proc.returncode == 1 and "error 7" in proc.stderr and "is not JSON" in \
            proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_cli_dry_run_writes_no_log(lab, tmp_path):
    """A dry run changes nothing: DEL's note about an ignored field went to the log file."""
    host, c = lab.host(), lab.netns()
    conf = dict(bridge_conf(lab, name="drylog"), mtu="bad")
    path = tmp_path / "drylog.conf"
    path.write_text(json.dumps(conf))
    logged = tmp_path / "cnish.log"
    env = dict(os.environ, CNISH_LOG_FILE=str(logged))
    for command in ("del", "add"):
        proc = sh("ip", "netns", "exec", host.name, *cnish_command(), command, "drylog", c,
                  "--config", str(path), "--cache-dir", lab.cache_dir, "--dry-run", env=env,
                  check=False)
        assert "Traceback" not in proc.stderr, proc.stderr
    assert not logged.exists()

def cli_in(lab, host, tmp_path, conf: dict) -> tuple[list, list]:
    """The operator CLI in the test's host namespace, and the options that point it at
    `conf` (written to a file) and at the test's result cache: (command, options)."""
    path = tmp_path / f"{conf['name']}.conf"
    path.write_text(json.dumps(conf))
    return (["ip", "netns", "exec", host.name, *cnish_command()],
            ["--config", str(path), "--cache-dir", lab.cache_dir])


def test_cli_gc_of_an_older_list_with_other_plugins_releases_nothing(lab, tmp_path):
    """A 1.0.0 list of cnish's bridge and the reference portmap: portmap gets no GC below
    1.1.0, so `cnish gc` released a stale attachment's address while portmap's DNAT to it
    stayed, and the next container given the address got the old one's forwarded port (a
    mixing audit). It now refuses (code 7) and changes nothing; the DEL it points to, by
    container id, removes both."""
    host, c = lab.host(), lab.netns()
    bridge = bridge_conf(lab, name="pmgc")
    conflist = {"cniVersion": "1.0.0", "name": "pmgc", "plugins": [
        {k: v for k, v in bridge.items() if k not in ("cniVersion", "name")},
        {"type": "portmap", "capabilities": {"portMappings": True}}]}
    path = tmp_path / "pmgc.conflist"
    path.write_text(json.dumps(conflist))
    common = ["--config", str(path), "--cache-dir", lab.cache_dir]
    env = dict(os.environ, CNI_PATH=REFERENCE)
    run = ["ip", "netns", "exec", host.name, *cnish_command()]
    sh(*run, "add", "pmgc", c, "--cid", "lost", *common, "--cap-args",
       '{"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}', env=env)
    for cached in os.listdir(os.path.join(lab.cache_dir, "results")):
        os.unlink(os.path.join(lab.cache_dir, "results", cached))   # the runtime lost it
    before = host.state()
    proc = sh(*run, "gc", "pmgc", *common, env=env, check=False)
    assert proc.returncode == 1 and "error 7" in proc.stderr and "portmap" in proc.stderr, \
        proc.stderr
    assert "cannot garbage-collect pmgc" in proc.stderr and "--cid" in proc.stderr
    assert host.state() == before
    assert "--to-destination 10.77.0.2:80" in host.run("iptables-save", "-t", "nat").stdout
    sh(*run, "del", "pmgc", c, "--cid", "lost", *common, "--cap-args",
       '{"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}', env=env)
    nat = host.run("iptables-save", "-t", "nat").stdout
    assert "10.77.0.2" not in nat and "-j DNAT" not in nat
    assert not [k for k in store_files(lab.data_dir) if "/10.77." in k]
    # portmap keeps its forwards by address and its GC (the reference's, at 1.1.0) removes
    # nothing: refused at 1.1.0 too; tuning keeps its state by container id: no refusal
    for version, plugins, refused in (("1.1.0", conflist["plugins"], True),
                                      ("1.0.0", [conflist["plugins"][0], {"type": "tuning"}],
                                       False)):
        path.write_text(json.dumps(dict(conflist, cniVersion=version, plugins=plugins)))
        proc = sh(*run, "gc", "pmgc", *common, env=env, check=False)
        assert (proc.returncode == 1 and "portmap keeps state" in proc.stderr) == refused, \
            (version, proc.stderr)
        assert refused or proc.returncode == 0, proc.stderr


def test_cli_gc_of_an_older_list_says_a_delegated_ipam_keeps_its_addresses(lab, tmp_path):
    """Below 1.1.0 a delegated IPAM plugin gets no GC: `cnish gc` removed a stale
    attachment's veth while the plugin kept its address reserved, and said nothing (a mixing
    audit). It says so now (stderr, and the dry-run's header), and the DEL it points to
    releases the address."""
    host, c = lab.host(), lab.netns()
    plugin_dir = tmp_path / "bin"
    plugin_dir.mkdir()
    (plugin_dir / "ref-host-local").symlink_to(os.path.join(REFERENCE, "host-local"))
    conf = bridge_conf(lab, name="dlgc", cniVersion="0.4.0", ipMasq=False, ipam={
        "type": "ref-host-local", "subnet": "10.77.0.0/24", "ranges": None})
    conf["ipam"] = {k: v for k, v in conf["ipam"].items() if v is not None}
    run, common = cli_in(lab, host, tmp_path, conf)
    env = dict(os.environ, CNI_PATH=f"{plugin_dir}:{REFERENCE}")
    res = json.loads(sh(*run, "add", "dlgc", c, "--cid", "lost", *common, env=env).stdout)
    assert res["ips"][0]["address"] == "10.77.0.2/24"
    for cached in os.listdir(os.path.join(lab.cache_dir, "results")):
        os.unlink(os.path.join(lab.cache_dir, "results", cached))   # the runtime lost it
    script = sh(*run, "gc", "dlgc", *common, "--dry-run", env=env).stdout
    assert "# Note: the IPAM plugin ref-host-local of bridge gets no GC below" in script
    assert "asked for GC at 1.1.0" in script            # (the header's version, explained)
    proc = sh(*run, "gc", "dlgc", *common, env=env)
    assert "ref-host-local of bridge gets no GC" in proc.stderr and "--cid" in proc.stderr
    assert "eth0" not in sh("ip", "-n", c, "-o", "link", "show").stdout     # (removed)
    assert "dlgc/10.77.0.2" in store_files(lab.data_dir)                    # (still held)
    sh(*run, "del", "dlgc", c, "--cid", "lost", *common, env=env)
    assert "dlgc/10.77.0.2" not in store_files(lab.data_dir)
    # an empty type is no IPAM (podman's --ipam-driver none), nothing to say about it
    # (a review's find: "the IPAM plugin  of bridge gets no GC")
    (tmp_path / "dlgc.conf").write_text(json.dumps(dict(conf, ipam={"type": ""})))
    proc = sh(*run, "gc", "dlgc", *common, "--dry-run", env=env)
    assert "IPAM plugin" not in proc.stdout + proc.stderr and "asked for GC" in proc.stdout


def test_cli_gc_removes_nothing_when_the_result_cache_cannot_be_trusted(lab, tmp_path):
    """GC removes every attachment the result cache does not list. When the cache directory
    was refused (another user could write to a directory above it), GC took that as "no
    attachments" and removed the live container's (found by a review). It is now code 5,
    naming the directory, and removes nothing."""
    host, c = lab.host(), lab.netns()
    run, common = cli_in(lab, host, tmp_path, bridge_conf(lab, name="gcsafe"))
    sh(*run, "add", "gcsafe", c, *common)
    os.chmod(lab.cache_dir, 0o777)
    try:
        proc = sh(*run, "gc", "gcsafe", *common, check=False)
    finally:
        os.chmod(lab.cache_dir, 0o755)
    assert proc.returncode == 1 and "error 5" in proc.stderr, (proc.stdout, proc.stderr)
    assert f"{lab.cache_dir} is writable by other users" in proc.stderr, proc.stderr
    assert "eth0" in sh("ip", "-n", c, "-o", "link", "show").stdout
    assert sh(*run, "gc", "gcsafe", *common, check=False).returncode == 0
    assert "eth0" in sh("ip", "-n", c, "-o", "link", "show").stdout       # (cached: kept)
    sh(*run, "del", "gcsafe", c, *common)


@pytest.mark.parametrize("damage", ["bad-ips", "truncated"])
def test_cli_del_cleans_up_when_the_cached_result_is_unreadable(lab, tmp_path, damage):
    """libcni ignores a cached result it cannot parse; cnish's CLI did not (a traceback, and
    nothing could be deleted until the file was removed by hand). Found by the spec audit.
    A file that is no JSON at all was ignored silently, and CHECK then said there was no
    cached result (found by the README audit): both now say why they are ignored."""
    host, c = lab.host(), lab.netns()
    run, common = cli_in(lab, host, tmp_path, bridge_conf(lab, name="corrupt"))
    res = json.loads(sh(*run, "add", "corrupt", c, *common).stdout)
    (entry,) = [os.path.join(lab.cache_dir, "results", f)
                for f in os.listdir(os.path.join(lab.cache_dir, "results"))]
    with open(entry) as f:
        cached = json.load(f)
    cached["result"]["ips"] = "garbage"
    with open(entry, "w") as f:
        f.write(json.dumps(cached) if damage == "bad-ips" else '{"kind":"cniCacheV1","result":{')
    check = sh(*run, "check", "corrupt", c, *common, check=False)
    assert check.returncode == 1 and "Traceback" not in check.stderr, check.stderr
    assert "ignoring the cached result" in check.stderr, check.stderr
    delete = sh(*run, "del", "corrupt", c, *common, check=False)
    assert delete.returncode == 0 and "ignoring the cached result" in delete.stderr, delete.stderr
    assert "eth0" not in sh("ip", "-n", c, "-o", "link", "show").stdout
    assert not [k for k in store_files(lab.data_dir) if k.endswith(res["ips"][0]["address"][:-3])]
    assert 'id: \\"' not in host.run("iptables-save", "-t", "nat").stdout
    assert not os.path.exists(entry)


def test_cli_check_of_a_list_older_than_check(lab, tmp_path):
    """`cnish check` of a 0.3.1 list is refused as libcni refuses it (code 1), before it
    looks at `disableCheck` (with which it said nothing and succeeded; found by an audit)."""
    host, c = lab.host(), lab.netns()
    bridge = bridge_conf(lab, name="old")
    path = tmp_path / "old.conflist"
    for disabled in (True, False):
        path.write_text(json.dumps({"cniVersion": "0.3.1", "name": "old", "disableCheck": disabled,
                                    "plugins": [{k: v for k, v in bridge.items()
                                                 if k not in ("cniVersion", "name")}]}))
        proc = sh("ip", "netns", "exec", host.name, *cnish_command(), "check", "old", c,
                  "--config", str(path), "--cache-dir", lab.cache_dir, check=False)
        assert proc.returncode == 1 and "error 1" in proc.stderr, proc.stderr
        assert "does not support the CHECK command" in proc.stderr, proc.stderr


def test_cli_container_ids_as_long_as_the_result_cache_allows(lab, tmp_path):
    """The result cache's entry is named <network>-<cid>-<ifname>: up to 255 bytes, ADD,
    its script and DEL work (the entry was written under its name plus a suffix first, so
    an ADD of 244 bytes and more failed with error 5 after all its work, and was undone); a
    byte more is refused before anything is done (code 7), and DEL of such an id, which
    can have no entry, succeeds (it failed with error 5, for good). Found by a dry-run audit."""
    host, c = lab.host(), lab.netns()
    run, common = cli_in(lab, host, tmp_path, bridge_conf(lab, name="lc"))
    results_dir = os.path.join(lab.cache_dir, "results")
    longest = "a" * (255 - len("lc-") - len("-eth0"))
    before = host.state(c)
    proc = sh(*run, "add", "lc", c, "--cid", longest + "a", *common, check=False)
    assert proc.returncode == 1 and "error 7" in proc.stderr and "255" in proc.stderr, proc.stderr
    assert host.state(c) == before
    sh(*run, "add", "lc", c, "--cid", longest, *common)
    assert os.listdir(results_dir) == [f"lc-{longest}-eth0"]
    # (with the results directory there, as it is on a runtime's machine)
    assert sh(*run, "del", "lc", c, "--cid", longest + "a", *common, check=False).returncode == 0
    script = sh(*run, "del", "lc", c, "--cid", longest + "a", *common, "--dry-run").stdout
    ran = sh("ip", "netns", "exec", host.name, "bash", "-c", script, check=False)
    assert ran.returncode == 0, ran.stderr        # (its `rm -f` of the entry failed on the name)
    sh(*run, "del", "lc", c, "--cid", longest, *common)
    assert os.listdir(results_dir) == []
    script = sh(*run, "add", "lc", c, "--cid", longest, *common, "--dry-run").stdout
    sh("ip", "netns", "exec", host.name, "bash", "-c", script)
    assert os.listdir(results_dir) == [f"lc-{longest}-eth0"]
    sh(*run, "del", "lc", c, "--cid", longest, *common)
    assert "eth0" not in sh("ip", "-n", c, "-o", "link", "show").stdout


# Chained plugins for the rollback test: "sticky" passes ADD's prevResult on and fails DEL;
# "broken" fails ADD.
STICKY = """#!/usr/bin/python3
import json, os, sys
conf = json.load(sys.stdin)
if os.environ["CNI_COMMAND"] == "ADD":
    print(json.dumps(conf["prevResult"]))
else:
    print(json.dumps({"cniVersion": "1.0.0", "code": 11, "msg": "sticky: try again later"}))
    sys.exit(1)
"""
BROKEN = """#!/bin/sh
echo '{"cniVersion":"1.0.0","code":999,"msg":"broken: no"}'
exit 1
"""


def fake_plugins(tmp_path, **scripts):
    """A CNI_PATH directory of executable plugin scripts: name=text."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, text in scripts.items():
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    return bindir


def test_cli_chain_rollback_reports_what_it_could_not_undo(lab, tmp_path):
    """A chain ADD that fails is undone plugin by plugin; a DEL that fails there is named in
    the error (it was swallowed, leaving the operator unaware of what is still set up), and
    stops the undo, as a failing DEL stops the list's DEL."""
    host, c = lab.host(), lab.netns()
    bindir = fake_plugins(tmp_path, sticky=STICKY, broken=BROKEN)
    bridge = bridge_conf(lab, name="roll")
    conflist = {"cniVersion": "1.0.0", "name": "roll", "plugins": [
        {k: v for k, v in bridge.items() if k not in ("cniVersion", "name")},
        {"type": "sticky"}, {"type": "broken"}]}
    path = tmp_path / "roll.conflist"
    path.write_text(json.dumps(conflist))
    run = ["ip", "netns", "exec", host.name, *cnish_command()]
    proc = sh(*run, "add", "roll", c, "--config", str(path), "--cache-dir", lab.cache_dir,
              env=dict(os.environ, CNI_PATH=str(bindir)), check=False)
    assert proc.returncode == 1 and "broken: no" in proc.stderr, proc.stderr
    assert "DEL of plugin 2 (sticky) failed" in proc.stderr and "try again later" in proc.stderr
    # the rollback stops there, as a DEL does: the bridge keeps its part, which `cnish del`
    # (without the sticky plugin, here) removes
    assert "plugin 1 was not asked to DEL" in proc.stderr, proc.stderr
    assert "eth0" in sh("ip", "-n", c, "-o", "link", "show").stdout
    conflist["plugins"] = conflist["plugins"][:1]
    path.write_text(json.dumps(conflist))
    assert sh(*run, "del", "roll", c, "--config", str(path), "--cache-dir", lab.cache_dir,
              env=dict(os.environ, CNI_PATH=str(bindir)), check=False).returncode == 0
    assert "eth0" not in sh("ip", "-n", c, "-o", "link", "show").stdout


GARBLED = """#!/bin/sh
echo '{"cniVersion":"1.0.0","ips":"notalist"}'
"""
NOOP = """#!/bin/sh
[ "$CNI_COMMAND" = ADD ] && echo '{"cniVersion":"1.0.0","interfaces":[],"ips":[]}'
exit 0
"""


def test_cli_chain_failures_leave_nothing_and_say_everything(lab, tmp_path):
    """Found by an audit of the CLI: a chained plugin whose ADD result cannot be read, and a
    result cache that cannot be written, failed with a traceback and left the attachment in
    place; now both are errors that undo the ADD. A chain's dry-run DEL script keeps the cache
    the other plugins' DEL needs; two failing DELs are both reported; --config refuses another
    network's name; gc --dry-run refuses a list with two cnish plugins. The default container
    id is cnitool's: /run/netns/NAME and /var/run/netns/NAME give two, as there (a later audit:
    cnish read both as the second, and missed what cnitool had cached under the first)."""
    host, c = lab.host(), lab.netns()
    bindir = fake_plugins(tmp_path, garbled=GARBLED, sticky=STICKY, noop=NOOP)
    bridge = {k: v for k, v in bridge_conf(lab, name="chain").items()
              if k not in ("cniVersion", "name")}
    env = dict(os.environ, CNI_PATH=f"{bindir}:{REFERENCE}")
    run = ["ip", "netns", "exec", host.name, *cnish_command()]

    def cli(plugins, *args, name="chain"):
        path = tmp_path / f"{name.replace('/', '_')}.conflist"
        path.write_text(json.dumps({"cniVersion": "1.0.0", "name": name, "plugins": plugins}))
        return sh(*run, *args, "--config", str(path), env=env, check=False)

    def clean():
        assert "eth0" not in sh("ip", "-n", c, "-o", "link", "show").stdout
        assert not [k for k in store_files(lab.data_dir) if "/10.77." in k]
        assert 'id: \\"' not in host.run("iptables-save", "-t", "nat").stdout

    proc = cli([bridge, {"type": "garbled"}], "add", "chain", c, "--cache-dir", lab.cache_dir)
    assert proc.returncode == 1 and "cannot be read" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    clean()
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    proc = cli([bridge], "add", "chain", c, "--cache-dir", str(not_a_dir))
    assert proc.returncode == 1 and "error 5" in proc.stderr and "result cache" in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    clean()

    # a chain's dry-run DEL keeps the cache entry; `cnish del` removes it
    tuning = {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_filter": "1"}}
    assert cli([bridge, tuning], "add", "chain", c, "--cache-dir", lab.cache_dir).returncode == 0
    script = cli([bridge, tuning], "del", "chain", c, "--cache-dir", lab.cache_dir, "--dry-run")
    assert script.returncode == 0 and "keeps the CLI's result cache" in script.stdout
    assert "runs plugin 2 (tuning) before this one" in script.stdout, script.stdout
    assert sh("bash", "-c", script.stdout, check=False).returncode == 0
    assert os.listdir(os.path.join(lab.cache_dir, "results"))
    proc = cli([bridge, tuning], "del", "chain", c, "--cache-dir", lab.cache_dir)
    assert proc.returncode == 0, proc.stderr
    assert not os.listdir(os.path.join(lab.cache_dir, "results"))
    clean()
    # the default container id is cnitool's for any spelling of the path: a hash of the path
    # as given, made absolute (so cnish finds what `cnitool add chain /run/netns/X` cached)
    for given, hashed in ((c, f"/var/run/netns/{c}"), (f"/run/netns/{c}", f"/run/netns/{c}"),
                          (f"/var/run/netns/{c}", f"/var/run/netns/{c}")):
        plan = json.loads(cli([bridge], "add", "chain", given, "--dry-run", "--format", "json").stdout)
        assert plan["containerId"] == "cnitool-" + hashlib.sha512(hashed.encode()).hexdigest()[:20]

    # a DEL that fails stops the list's DEL, as libcni's: the plugins before it keep their part
    # (the bridge its address, which portmap's leftover DNAT rules could otherwise send the
    # next container's traffic to); the cache stays for the next DEL
    sticky = [bridge, {"type": "sticky"}, {"type": "sticky"}]
    assert cli(sticky, "add", "chain", c, "--cache-dir", lab.cache_dir).returncode == 0
    proc = cli(sticky, "del", "chain", c, "--cache-dir", lab.cache_dir)
    assert proc.returncode == 1 and proc.stderr.count("sticky: try again later") == 1, proc.stderr
    assert "plugins 1-2 were not asked to DEL" in proc.stderr, proc.stderr
    assert "eth0" in sh("ip", "-n", c, "-o", "link", "show").stdout
    assert os.listdir(os.path.join(lab.cache_dir, "results"))
    assert cli([bridge], "del", "chain", c, "--cache-dir", lab.cache_dir).returncode == 0
    clean()

    # --cid and --ifname are checked before anything uses them (the cache path is made of
    # them, also for a list without cnish plugins)
    for bad in (["--cid", "../../x"], ["--ifname", "a/b"]):
        proc = cli([{"type": "sticky"}], "del", "chain", c, "--cache-dir", lab.cache_dir, *bad)
        assert proc.returncode == 1 and "error 7" in proc.stderr and bad[0] in proc.stderr
    # and so is the network's name, which is part of that path too (found by the README audit:
    # "../x" wrote the cache entry outside the results directory)
    for command in ("add", "del"):
        proc = cli([{"type": "noop"}], command, "../trav", c, "--cache-dir", lab.cache_dir,
                   name="../trav")
        assert proc.returncode == 1 and "error 7" in proc.stderr, proc.stderr
        assert "invalid characters found in network name" in proc.stderr, proc.stderr
    assert sorted(os.listdir(lab.cache_dir)) == ["results"], os.listdir(lab.cache_dir)
    proc = cli([bridge], "add", "another", c, name="chain")
    assert proc.returncode == 1 and "is the network 'chain', not 'another'" in proc.stderr
    proc = cli([bridge, {"type": "loopback"}], "gc", "chain", "--dry-run")
    assert proc.returncode == 1 and "has 2 cnish plugins" in proc.stderr, proc.stderr


def test_cli_operator_audit_mends(lab, tmp_path):
    """Found by a hands-on audit of the operator CLI (each failed before its fix):
    - ADD given a name, DEL given /run/netns/NAME (two default container ids, as in cnitool):
      the DEL exited 0 and removed nothing; it now finds the other spelling's cache entry,
      says so and cleans up; a DEL that finds no entry at all says so;
    - a relative --cache-dir: the dry-run script refused it, and a `check` from another
      directory did not find what `add` cached; it is made absolute;
    - a list whose second plugin is missing set up the first, undid it and reported a failed
      DEL of the missing one; the list is looked through first. A plugin failing after the
      first says which were deleted again;
    - --create-netns on an existing namespace failed at the plan's first step; a missing
      namespace did not hint at --create-netns; `check` of a disableCheck list said nothing."""
    host, c = lab.host(), lab.netns()
    bindir = fake_plugins(tmp_path, garbled=GARBLED,
                          noexec="#!/nonexistent/interpreter\n")      # (exec: 127)
    bridge = {k: v for k, v in bridge_conf(lab, name="mend").items()
              if k not in ("cniVersion", "name")}
    env = dict(os.environ, CNI_PATH=f"{bindir}:{REFERENCE}")
    run = ["ip", "netns", "exec", host.name, *cnish_command()]

    def cli(plugins, *args, cwd=None, **extra):
        path = tmp_path / "mend.conflist"
        path.write_text(json.dumps(dict({"cniVersion": "1.0.0", "name": "mend",
                                         "plugins": plugins}, **extra)))
        return subprocess.run([*run, *args, "--config", str(path)], env=env, cwd=cwd,
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)

    def attached():
        return "eth0" in sh("ip", "-n", c, "-o", "link", "show").stdout

    def clean():
        assert not attached()
        assert not [k for k in store_files(lab.data_dir) if "/10.77." in k]
        assert 'id: \\"' not in host.run("iptables-save", "-t", "nat").stdout

    cache = ["--cache-dir", lab.cache_dir]
    assert cli([bridge], "add", "mend", c, *cache).returncode == 0
    proc = cli([bridge], "del", "mend", f"/run/netns/{c}", *cache)
    assert proc.returncode == 0, proc.stderr
    assert f"using the attachment ADD cached for /var/run/netns/{c}" in proc.stderr, proc.stderr
    assert not os.listdir(os.path.join(lab.cache_dir, "results"))
    clean()
    proc = cli([bridge], "del", "mend", c, *cache)
    assert proc.returncode == 0 and "no cached result for mend/" in proc.stderr, proc.stderr

    workdir = tmp_path / "wd"
    workdir.mkdir()
    script = cli([bridge], "add", "mend", c, "--cache-dir", "rel", "--dry-run", cwd=workdir)
    assert f"{workdir}/rel" in script.stdout and "--cache-dir" not in script.stderr
    assert cli([bridge], "add", "mend", c, "--cache-dir", "rel", cwd=workdir).returncode == 0
    proc = cli([bridge], "check", "mend", c, "--cache-dir", str(workdir / "rel"))
    assert proc.returncode == 0, proc.stderr
    assert cli([bridge], "del", "mend", c, "--cache-dir", "rel", cwd=workdir).returncode == 0
    clean()

    proc = cli([bridge, {"type": "nonexistent"}], "add", "mend", c, *cache)
    assert proc.returncode == 1 and "failed to find plugin 'nonexistent'" in proc.stderr
    assert "DEL of plugin" not in proc.stderr and "deleted again" not in proc.stderr, proc.stderr
    clean()
    # (a dry-run runs nothing: it notes the missing plugin; a later review found it refused)
    proc = cli([bridge, {"type": "nonexistent"}], "add", "mend", c, *cache, "--dry-run")
    assert proc.returncode == 0 and "# Note: plugin 2: failed to find plugin 'nonexistent'" \
        in proc.stdout, proc.stderr
    proc = cli([bridge, {"type": "garbled"}], "add", "mend", c, *cache)
    assert proc.returncode == 1 and "plugins 1-2 were deleted again" in proc.stderr, proc.stderr
    clean()
    # a plugin that cannot be executed (exit 127) is code 7, as for a delegated IPAM; its DEL
    # fails too, and the error still says that plugin 1 was deleted again (a review found
    # that note missing then)
    proc = cli([bridge, {"type": "noexec"}], "add", "mend", c, *cache)
    assert proc.returncode == 1 and "error 7: plugin noexec failed (ADD, exit 127)" \
        in proc.stderr, proc.stderr
    assert "plugin 1 was deleted again; DEL of plugin 2 (noexec) failed" in proc.stderr
    clean()
    # DEL goes on without a logFile it may not write, as in CNI mode (the CLI refused it)
    logged = dict(bridge, logFile=str(tmp_path / "x.log"))
    assert cli([bridge], "add", "mend", c, *cache).returncode == 0
    proc = cli([logged], "del", "mend", c, *cache)
    assert proc.returncode == 0 and "DEL goes on without a log file" in proc.stderr, proc.stderr
    assert not (tmp_path / "x.log").exists()
    clean()

    for dry in ([], ["--dry-run"]):
        proc = cli([bridge], "add", "mend", c, "--create-netns", *cache, *dry)
        assert proc.returncode == 1 and f"the namespace '{c}' exists already" in proc.stderr
    clean()
    proc = cli([bridge], "add", "mend", f"{c}-missing", *cache)
    assert proc.returncode == 1 and "--create-netns makes it" in proc.stderr, proc.stderr
    proc = cli([bridge], "check", "mend", c, *cache, disableCheck=True)
    assert proc.returncode == 0 and "has disableCheck: nothing was checked" in proc.stderr


RECORDER = """#!/bin/sh
# Fails ADD after leaving a mark, which its DEL removes (like tuning's backup file).
touch "$(dirname "$0")/mark.$CNI_CONTAINERID"
if [ "$CNI_COMMAND" = ADD ]; then
  echo '{"cniVersion":"1.0.0","code":999,"msg":"recorder: no"}'; exit 1
fi
rm -f "$(dirname "$0")/mark.$CNI_CONTAINERID"
"""


def test_cli_checks_the_list_as_libcni_loads_it(lab, tmp_path):
    """Found by an audit of the operator CLI: a malformed list failed half-way with a
    traceback (its first plugins set up, no rollback, and DEL failing the same way); gc ignored
    disableGC; the cache kept nothing of a config read from a pipe; --create-netns did nothing
    with another plugin first; the plugin that failed was never DELed."""
    host, c = lab.host(), lab.netns()
    bindir = fake_plugins(tmp_path, recorder=RECORDER, noop=NOOP)
    env = dict(os.environ, CNI_PATH=f"{bindir}:{REFERENCE}")
    run = ["ip", "netns", "exec", host.name, *cnish_command()]
    bridge = {k: v for k, v in bridge_conf(lab, name="chk").items()
              if k not in ("cniVersion", "name")}

    def cli(conflist, *args, config=None):
        path = config or tmp_path / "chk.conflist"
        if config is None:
            path.write_text(json.dumps(dict({"cniVersion": "1.0.0", "name": "chk"}, **conflist)))
        return sh(*run, *args, "--config", str(path), "--cache-dir", lab.cache_dir, env=env,
                  check=False)

    before = host.state(c)
    for conflist, field in (({"plugins": [bridge, "portmap"]}, "plugins[1]"),
                            ({"plugins": [bridge, {"type": ["x"]}]}, "plugins[1].type"),
                            ({"plugins": [bridge, {"type": "noop", "capabilities":
                                                   {"portMappings": "false"}}]},
                             "plugins[1].capabilities"),
                            ({"plugins": [bridge], "cniVersions": 5}, "cniVersions"),
                            ({"plugins": [bridge], "disableGC": "maybe"}, "disableGC")):
        for command in ("add", "del"):
            proc = cli(conflist, command, "chk", c)
            assert proc.returncode == 1 and "error 7" in proc.stderr and field in proc.stderr, \
                (conflist, proc.stderr)
            assert "Traceback" not in proc.stderr
    assert host.state(c) == before

    # the plugin that failed is DELed too when it is not cnish's
    proc = cli({"plugins": [bridge, {"type": "recorder"}]}, "add", "chk", c)
    assert proc.returncode == 1 and "recorder: no" in proc.stderr, proc.stderr
    assert not list(bindir.glob("mark.*"))
    assert "eth0" not in sh("ip", "-n", c, "-o", "link", "show").stdout    # the bridge's undone
    assert not [k for k in store_files(lab.data_dir) if "/10.77." in k]

    # --create-netns needs a cnish plugin first (it is that plugin's first step)
    proc = cli({"plugins": [{"type": "noop"}, bridge]}, "add", "chk", "newns", "--create-netns")
    assert proc.returncode == 1 and "--create-netns" in proc.stderr and "error 7" in proc.stderr

    # a config from a pipe is cached as read; gc with disableGC does nothing
    text = json.dumps({"cniVersion": "1.1.0", "name": "chk", "disableGC": True, "plugins": [bridge]})
    proc = sh(*run, "add", "chk", c, "--config", "/dev/stdin", "--cache-dir", lab.cache_dir,
              env=env, input=text, check=False)
    assert proc.returncode == 0, proc.stderr
    [cached] = os.listdir(os.path.join(lab.cache_dir, "results"))
    with open(os.path.join(lab.cache_dir, "results", cached)) as f:
        assert base64.b64decode(json.load(f)["config"]).decode() == text
    os.unlink(os.path.join(lab.cache_dir, "results", cached))      # a stale attachment, for GC
    path = tmp_path / "gc.conflist"
    path.write_text(text)
    proc = cli({}, "gc", "chk", config=path)
    assert proc.returncode == 0 and "disableGC" in proc.stdout, proc.stderr
    assert "eth0" in sh("ip", "-n", c, "-o", "link", "show").stdout        # kept
    path.write_text(text.replace('"disableGC": true', '"disableGC": false'))
    assert cli({}, "gc", "chk", config=path).returncode == 0
    assert "eth0" not in sh("ip", "-n", c, "-o", "link", "show").stdout


FAKE_IPAM = """#!/bin/sh
# A delegated IPAM plugin that records what it is asked and answers like a 1.1.0 plugin.
cat > "$(dirname "$0")/stdin.$CNI_COMMAND"
env | grep -e '^CNI_' -e '^CNISH_IPAM_OF=' | sort > "$(dirname "$0")/env.$CNI_COMMAND"
case $CNI_COMMAND in
  ADD) echo '{"cniVersion":"1.1.0","ips":[{"address":"10.77.0.50/24","gateway":"10.77.0.1"}]}' ;;
  STATUS) echo '{"cniVersion":"1.1.0","code":50,"msg":"fake-ipam: pool drained","details":"d"}'
          exit 1 ;;
  GC) if [ -e "$(dirname "$0")/fail-gc" ]; then
        echo '{"cniVersion":"1.1.0","code":11,"msg":"fake-ipam: store busy","details":"retry"}'
        exit 1
      fi ;;
esac
"""


def test_status_and_gc_are_forwarded_to_a_delegated_ipam(lab, tmp_path):
    host, c = lab.host(), lab.netns()
    bindir = tmp_path / "fake"
    bindir.mkdir()
    (bindir / "fake-ipam").write_text(FAKE_IPAM)
    (bindir / "fake-ipam").chmod(0o755)
    env = {"CNI_PATH": str(bindir)}
    conf = bridge_conf(lab, cniVersion="1.1.0", ipam={"type": "fake-ipam"})
    rc, res, err = host.cni("ADD", conf, c, extra_env=env)
    assert rc == 0 and res["ips"][0]["address"] == "10.77.0.50/24", (res, err)
    rc, out, _ = host.cni("STATUS", conf, None, cid="", ifname="", extra_env=env)
    assert rc == 1 and out["code"] == 50 and "pool drained" in out["msg"]
    valid = [{"containerID": "ctr1", "ifname": "eth0"}]
    rc, out, err = host.cni("GC", dict(conf, **{"cni.dev/valid-attachments": valid}), None,
                           cid="", ifname="", extra_env=env)
    assert rc == 0, (out, err)
    sent = json.loads((bindir / "stdin.GC").read_text())
    assert sent["cni.dev/valid-attachments"] == valid and sent["ipam"]["type"] == "fake-ipam"
    assert host.cni("DEL", dict(conf, prevResult=res), c, extra_env=env)[0] == 0
    assert json.loads((bindir / "stdin.DEL").read_text())["prevResult"]["ips"][0]["address"] \
        == "10.77.0.50/24"
    # a GC the delegate fails is reported with the delegate's own error, not just its exit
    (bindir / "fail-gc").write_text("")
    rc, out, _ = host.cni("GC", dict(conf, **{"cni.dev/valid-attachments": []}), None,
                          cid="", ifname="", extra_env=env)
    assert rc == 1 and "fake-ipam: store busy" in out["details"] and "error 11" in out["details"]
    # not installed (yet): STATUS says the plugin cannot serve ADD now (50), ADD that the
    # config names a plugin that is not there (7)
    (bindir / "fake-ipam").unlink()
    rc, out, _ = host.cni("STATUS", conf, None, cid="", ifname="", extra_env=env)
    assert rc == 1 and out["code"] == 50 and "failed to find IPAM plugin" in out["msg"], out
    rc, out, _ = host.cni("ADD", conf, c, extra_env=env)
    assert rc == 1 and out["code"] == 7 and "failed to find IPAM plugin" in out["msg"], out


def test_a_delegated_ipam_whose_result_cannot_be_read_gets_one_del(lab, tmp_path):
    """Its ADD succeeded, so it holds addresses: cnish sends one DEL (the engine's abandon;
    a second, explicit DEL was taken out as a code review asked) and reports the result."""
    host, c = lab.host(), lab.netns()
    bindir = tmp_path / "fake"
    bindir.mkdir()
    (bindir / "bad-ipam").write_text(
        '#!/bin/sh\necho "$CNI_COMMAND" >> "$(dirname "$0")/asked"\ncat > /dev/null\n'
        '[ "$CNI_COMMAND" = ADD ] && echo \'{"cniVersion":"1.0.0","ips":[{"address":"bogus"}]}\'\n'
        'exit 0\n')
    (bindir / "bad-ipam").chmod(0o755)
    conf = bridge_conf(lab, ipam={"type": "bad-ipam"})
    rc, out, _ = host.cni("ADD", conf, c, extra_env={"CNI_PATH": str(bindir)})
    assert rc == 1 and out["code"] == 999 and "returned an unreadable result" in out["msg"], out
    assert (bindir / "asked").read_text().split() == ["ADD", "DEL"]


def test_the_cli_forwards_no_gc_or_status_to_a_delegated_ipam_of_an_older_list(lab, tmp_path):
    """`cnish gc` and `cnish status` serve cnish's own plugins whatever the list's version;
    they handed GC and STATUS on to a delegated IPAM plugin of a 1.0.0 list with cniVersion
    rewritten to 1.1.0 (the reference's host-local then answered code 3, and the network's GC
    and STATUS could never succeed; found by a recipe audit). libcni sends neither to a
    plugin of such a list; nor does cnish now. A 1.1.0 list still forwards both."""
    host = lab.host()
    bindir = tmp_path / "fake"
    bindir.mkdir()
    (bindir / "fake-ipam").write_text(FAKE_IPAM)
    (bindir / "fake-ipam").chmod(0o755)
    env = dict(os.environ, CNI_PATH=str(bindir))
    for version, forwarded in (("1.0.0", False), ("1.1.0", True)):
        name = "dl" + version.replace(".", "")
        run, common = cli_in(lab, host, tmp_path, bridge_conf(lab, name=name, cniVersion=version,
                                                              ipam={"type": "fake-ipam"}))
        status, gc = (subprocess.run([*run, verb, name, *common], env=env, capture_output=True,
                                     text=True, stdin=subprocess.DEVNULL)
                      for verb in ("status", "gc"))
        sent = sorted(f.name for f in bindir.iterdir() if f.name.startswith("stdin."))
        if forwarded:
            assert status.returncode == 1 and "pool drained" in status.stderr, status.stderr
            assert gc.returncode == 0 and sent == ["stdin.GC", "stdin.STATUS"], (gc.stderr, sent)
            assert json.loads((bindir / "stdin.GC").read_text())["cniVersion"] == "1.1.0"
        else:
            assert status.returncode == 0 and gc.returncode == 0, (status.stderr, gc.stderr)
            assert sent == [], sent


# -- the host-local store shared with the reference: leftover index entries, foreign files ----

ONE_ADDRESS = {"ranges": [[{"subnet": "10.77.0.0/24", "rangeStart": "10.77.0.9",
                            "rangeEnd": "10.77.0.9"}]]}


def masquerade(host, cid):
    return [l for l in host.run("iptables-save", "-t", "nat").stdout.splitlines()
            if f'id: \\"{cid}\\"' in l]


def test_a_leftover_index_entry_hides_no_reservation(lab):
    """a's address file is removed by hand (its index entry stays), b gets the address
    again, then the reference host-local does for h2: cnish's DEL without prevResult releases
    each (b's masquerade rules too), and GC later removes a's leftover entry."""
    host, ca, cb, ch = lab.host(), lab.netns(), lab.netns(), lab.netns()
    conf = bridge_conf(lab, ipam=ONE_ADDRESS, cniVersion="1.1.0")
    store = os.path.join(lab.data_dir, conf["name"])
    rc, res_a, err = host.cni("ADD", conf, ca, cid="a")
    assert rc == 0 and res_a["ips"][0]["address"] == "10.77.0.9/24", (res_a, err)
    os.unlink(os.path.join(store, "10.77.0.9"))
    rc, res_b, err = host.cni("ADD", conf, cb, cid="b")
    assert rc == 0 and res_b["ips"][0]["address"] == "10.77.0.9/24", (res_b, err)
    assert masquerade(host, "b")
    assert host.cni("DEL", conf, cb, cid="b")[0] == 0
    assert "10.77.0.9" not in os.listdir(store) and not masquerade(host, "b")
    rc, res_h, err = host.cni("ADD", dict(conf, cniVersion="1.0.0"), ch, cid="h2",
                              plugin=[f"{REFERENCE}/host-local"])     # Debian's: up to 1.0.0
    assert rc == 0 and res_h["ips"][0]["address"] == "10.77.0.9/24", (res_h, err)
    assert host.cni("DEL", dict(conf, type="host-local"), ch, cid="h2")[0] == 0
    assert "10.77.0.9" not in os.listdir(store)
    valid = [{"containerID": "a", "ifname": "eth0"}]
    assert host.cni("GC", dict(conf, **{"cni.dev/valid-attachments": valid}), None,
                    cid="", ifname="")[0] == 0
    assert not [n for n in os.listdir(store) if n.startswith(".")]
    assert host.cni("DEL", dict(conf, prevResult=res_a), ca, cid="a")[0] == 0


def test_gc_frees_a_hidden_reservation_in_one_run(lab):
    host, ca = lab.host(), lab.netns()
    conf = bridge_conf(lab, ipam=ONE_ADDRESS, cniVersion="1.1.0")
    store = os.path.join(lab.data_dir, conf["name"])
    rc, res_a, _ = host.cni("ADD", conf, ca, cid="a")
    assert rc == 0
    os.unlink(os.path.join(store, "10.77.0.9"))
    rc, res_h, err = host.cni("ADD", dict(conf, cniVersion="1.0.0"), lab.netns(), cid="h2",
                              plugin=[f"{REFERENCE}/host-local"])
    assert rc == 0 and res_h["ips"][0]["address"] == "10.77.0.9/24", (res_h, err)
    valid = [{"containerID": "a", "ifname": "eth0"}]
    rc, out, err = host.cni("GC", dict(conf, **{"cni.dev/valid-attachments": valid}), None,
                            cid="", ifname="")
    assert rc == 0, (out, err)
    assert sorted(os.listdir(store)) == ["last_reserved_ip.0", "lock"]
    assert host.cni("DEL", dict(conf, prevResult=res_a), ca, cid="a")[0] == 0


def test_foreign_files_in_the_store(lab, tmp_path):
    """A directory in the store is skipped (the reference skips it); an entry named like the
    next address, whatever its type, is taken: ADD moves on, and nothing is followed."""
    host, c1, c2 = lab.host(), lab.netns(), lab.netns()
    conf = bridge_conf(lab)
    store = os.path.join(lab.data_dir, conf["name"])
    os.makedirs(os.path.join(store, "backup"))
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.symlink(victim, os.path.join(store, "10.77.0.3"))
    rc, res1, err = host.cni("ADD", conf, c1, cid="c1")
    assert rc == 0 and res1["ips"][0]["address"] == "10.77.0.2/24", (res1, err)
    rc, res2, err = host.cni("ADD", conf, c2, cid="c2")
    assert rc == 0 and res2["ips"][0]["address"] == "10.77.0.4/24", (res2, err)
    assert host.cni("CHECK", dict(conf, prevResult=res2), c2, cid="c2")[0] == 0
    assert host.cni("DEL", conf, c1, cid="c1")[0] == 0
    assert host.cni("DEL", dict(conf, prevResult=res2), c2, cid="c2")[0] == 0
    assert sorted(os.listdir(store)) == ["10.77.0.3", "backup", "last_reserved_ip.0", "lock"]
    assert os.readlink(os.path.join(store, "10.77.0.3")) == str(victim)
    assert victim.read_text() == "precious" and not os.listdir(os.path.join(store, "backup"))


def test_the_del_script_runs_a_delegated_ipam_as_cnish_does(lab, tmp_path):
    """The DEL script hands the delegated plugin the invocation's CNI_* values and config, as
    the executor does (they are written into the script, quoted), and CNISH_IPAM_OF, which
    makes a cnish launcher there refuse to be a main plugin (the script's lacked it; found by
    a dry-run audit)."""
    host, c = lab.host(), lab.netns()
    bindir = tmp_path / "fake"
    bindir.mkdir()
    (bindir / "fake-ipam").write_text(FAKE_IPAM)
    (bindir / "fake-ipam").chmod(0o755)
    conf = bridge_conf(lab, name="dgscript", ipam={"type": "fake-ipam"})
    path = tmp_path / "dg.conf"
    path.write_text(json.dumps(conf))
    env = dict(os.environ, CNI_PATH=str(bindir))
    run = ["ip", "netns", "exec", host.name, *cnish_command()]
    common = ["--config", str(path), "--cache-dir", lab.cache_dir]
    sh(*run, "add", "dgscript", c, *common, env=env)
    added = (bindir / "env.ADD").read_text()
    script = sh(*run, "del", "dgscript", c, *common, "--dry-run", env=env).stdout
    (bindir / "env.ADD").unlink()
    sh("ip", "netns", "exec", host.name, "bash", "-c", script)
    assert "CNISH_IPAM_OF=bridge\n" in added
    assert (bindir / "env.DEL").read_text() == added.replace("CNI_COMMAND=ADD", "CNI_COMMAND=DEL")
    assert json.loads((bindir / "stdin.DEL").read_text())["ipam"]["type"] == "fake-ipam"
    assert "eth0" not in sh("ip", "-n", c, "-o", "link", "show").stdout


@pytest.mark.parametrize("args,extra", [
    ("IP=10.9.1.7/24, 10.9.2.7/24", {}),                        # items trimmed
    ("IP=10.9.1.7/24,10.9.2.7/24;GATEWAY=10.9.1.1, 10.9.0.1", {}),
    ("GATEWAY=10.9.3.1", {"runtimeConfig": {"ips": ["10.9.3.3/24"]}}),   # dropped with them
    ("GATEWAY=10.9.3.1", {"args": {"cni": {"ips": ["10.9.3.4/24"]}}}),
    ("IP=10.9.1.7/24;GATEWAY=10.9.0.9,10.9.1.1", {}),           # not the config's addresses
], ids=["ip-spaces", "gateway-spaces", "gateway-then-runtimeconfig", "gateway-then-args",
        "gateway-of-ip-only"])
def test_static_reads_cni_args_as_the_reference_does(lab, args, extra):
    """static's CNI_ARGS IP= and GATEWAY=: items trimmed, and GATEWAY= given to IP='s
    addresses only (the config's keep theirs), before runtimeConfig.ips or args.cni.ips
    replace them (audits found a space refused, code 4, and the gateway given to the
    replacements and to the config's addresses)."""
    host, c = lab.host(), lab.netns()
    conf = dict({"cniVersion": "1.0.0", "name": "st", "type": "static",
                 "ipam": {"type": "static",
                          "addresses": [{"address": "10.9.0.5/24", "gateway": "10.9.0.1"}]}},
                **extra)
    results = [host.cni("ADD", conf, c, args=args, plugin=plugin)
               for plugin in (None, [f"{REFERENCE}/static"])]
    assert results[0][0] == 0 and results[1][0] == 0, results
    cnish, reference = (r[1] for r in results)
    if reference.get("dns") == {}:
        del reference["dns"]            # (the reference prints an empty dns object)
    assert cnish == reference, results
