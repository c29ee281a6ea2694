"""DEL leaves alone a container interface that is not its attachment's (plans/bridge.toml and
plans/ptp.toml, step container-link: cnish-foreign-veth; macvlan, ipvlan, vlan and dummy, step
link: cnish-foreign-link; both in natives.py and as the dry-run script's bash functions).

The case it is for: an ADD refused because the container already has an interface of that
name (another network's), after which the runtime sends the DEL the spec asks for. Deleting
by name, as the reference plugins do, would take the other network's interface away.
"""

import json
import os

import pytest

from cnish.runner import Runner
from lab import ROOT, bridge_conf, cnish_command, sh, unique

pytestmark = pytest.mark.kernel

FUNCTION = os.path.join(ROOT, "templates", "script", "cnish-foreign-veth.sh")
LINK_FUNCTION = os.path.join(ROOT, "templates", "script", "cnish-foreign-link.sh")
OWN = "veth0123456789a"           # shaped like cnish's host ends (names.host_veth)
OTHER_CNISH = "vethfedcba98765"   # another attachment's


def test_the_probe_answers_as_the_script_function_does(lab):
    """Exit 0 (leave it) or 1 (delete it), cnish's native and the dry-run script's function
    alike, on real links: missing, not a veth, a veth whose peer is inside the container too,
    a veth whose peer is this attachment's host end, a port of the bridge with a random
    (reference-made) name, a port of another bridge, another cnish attachment's host end on
    the bridge, an unenslaved random peer (ptp's, or a bridge's whose bridge is gone), the
    bridge named by an altname, a peer whose alias imitates ip's output, and a namespace that
    cannot be entered. The function runs as the script runs it (`set -euo pipefail`) on a host
    with many links: a reader of ip's output that stopped early failed there."""
    host, c = lab.host(), lab.netns()
    path = f"/var/run/netns/{c}"
    with open(FUNCTION) as f:
        function = f.read()

    def answers(ifname, master, netns=path):
        probe = ["cnish-foreign-veth", netns, ifname, OWN, master]
        native = Runner().run(["nsenter", f"--net=/var/run/netns/{host.name}", *probe])
        script = host.run("bash", "-c", function + '\nset -euo pipefail; "$@"', "-", *probe,
                          check=False)
        return native.returncode, script.returncode

    host.run("ip", "-batch", "-", input="".join(f"link add many{i} type veth peer name many{i}p\n"
                                                for i in range(150)))
    for bridge in ("cnbr0", "cnbr1"):
        host.run("ip", "link", "add", bridge, "type", "bridge")

    def pair(ifname, peer, master=None):
        host.run("ip", "link", "add", peer, "type", "veth", "peer", "name", ifname, "netns", path)
        if master:
            host.run("ip", "link", "set", peer, "master", master)

    sh("ip", "-n", c, "link", "add", "br9", "type", "bridge")                    # not a veth
    sh("ip", "-n", c, "link", "add", "in0", "type", "veth", "peer", "name", "in1")  # peer inside
    pair("eth0", OWN)                               # this attachment's, enslaved or not
    pair("eth1", "veth1a2b3c", "cnbr0")             # a reference-made pair on the bridge
    pair("eth2", OTHER_CNISH, "cnbr0")              # another cnish attachment, same bridge
    pair("eth3", "vethdead01")                      # a reference-made ptp pair
    pair("eth4", "vethbeef02", "cnbr1")             # whose alias imitates ip's output
    host.run("ip", "link", "set", "vethbeef02", "alias", '"},{"ifindex":1, master cnbr0 "x')
    host.run("ip", "link", "property", "add", "dev", "cnbr0", "altname", "cnbrALT")

    assert answers("eth9", "cnbr0") == (0, 0)
    assert answers("br9", "cnbr0") == (0, 0)
    assert answers("in0", "cnbr0") == answers("in0", "") == (0, 0)
    assert answers("eth0", "cnbr0") == answers("eth0", "") == (1, 1)
    assert answers("eth1", "cnbr0") == (1, 1)
    assert answers("eth1", "cnbr1") == answers("eth1", "") == answers("eth1", "nosuch") == (0, 0)
    assert answers("eth2", "cnbr0") == (0, 0)
    assert answers("eth3", "") == answers("eth3", "cnbr0") == (1, 1)
    assert answers("eth1", "cnbrALT") == (0, 0)         # (the name ip prints is the bridge's own)
    assert answers("eth4", "cnbr0") == answers("eth4", "") == (0, 0)
    assert answers("eth4", "cnbr1") == (1, 1)
    assert answers("eth0", "cnbr0", netns="/var/run/netns/cnish-no-such-ns") == (1, 1)


def test_the_link_probe_answers_as_the_script_function_does(lab):
    """cnish-foreign-link, native and bash, on real links inside a container: missing, another
    kind, a macvlan labelled for this attachment, one labelled for another, one without a
    label or with an alias of somebody else's (made by the reference plugin or by hand), an
    alias that tries to pass for another kind, and a namespace that cannot be entered."""
    host, c = lab.host(), lab.netns()
    path = f"/var/run/netns/{c}"
    mine, theirs = "cnish#" + "a" * 32, "cnish#" + "b" * 32
    with open(LINK_FUNCTION) as f:
        function = f.read()

    def answers(ifname, kind="macvlan", netns=path):
        probe = ["cnish-foreign-link", netns, ifname, kind, mine]
        native = Runner().run(["nsenter", f"--net=/var/run/netns/{host.name}", *probe])
        script = host.run("bash", "-c", function + '\nset -euo pipefail; "$@"', "-", *probe,
                          check=False)
        return native.returncode, script.returncode

    sh("ip", "-n", c, "link", "add", "lower0", "type", "bridge")
    for ifname, alias in (("mv0", mine), ("mv1", theirs), ("mv2", None), ("mv3", "wg0 uplink")):
        sh("ip", "-n", c, "link", "add", "link", "lower0", "name", ifname, "type", "macvlan")
        if alias:
            sh("ip", "-n", c, "link", "set", ifname, "alias", alias)
    sh("ip", "-n", c, "link", "set", "lower0", "alias", "x \\    macvlan y")
    sh("ip", "-n", c, "link", "property", "add", "dev", "mv0", "altname", "mvalt0")   # after
    sh("ip", "-n", c, "link", "add", "link", "lower0", "name", "mv4", "type", "macvlan")  # the
    sh("ip", "-n", c, "link", "set", "mv4", "alias", mine + "\n")                  # alias

    assert answers("eth9") == (0, 0)
    assert answers("lower0") == (0, 0)                  # a bridge, whatever its alias says
    assert answers("lower0", kind="bridge") == (1, 1)
    assert answers("mv0") == answers("mvalt0") == (1, 1)
    assert answers("mv1") == answers("mv4") == (0, 0)
    assert answers("mv2") == answers("mv3") == (1, 1)
    assert answers("mv1", kind="vlan") == answers("mv0", kind="vlan") == (0, 0)
    assert answers("mv0", netns="/var/run/netns/cnish-no-such-ns") == (1, 1)


def _other_network_link(host, c):
    """What another network gave the container: eth9, a veth whose peer is a port of the
    host's bridge othr0."""
    host.run("ip", "link", "add", "othr0", "type", "bridge")
    host.run("ip", "link", "add", "vothr9", "type", "veth", "peer", "name", "eth9",
             "netns", f"/var/run/netns/{c}")
    host.run("ip", "link", "set", "vothr9", "master", "othr0")


def _conf(lab, kind):
    if kind == "bridge":
        return bridge_conf(lab)
    return {"cniVersion": "1.0.0", "name": unique("net"), "type": "ptp", "ipMasq": True,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.86.0.0/24"}]],
                     "dataDir": lab.data_dir}}


@pytest.mark.parametrize("how", ["cnish", "dry-run-script"])
@pytest.mark.parametrize("kind", ["bridge", "ptp"])
def test_del_after_an_add_refused_for_an_existing_name_keeps_that_interface(lab, tmp_path,
                                                                           kind, how):
    host, c = lab.host(), lab.netns()
    _other_network_link(host, c)
    conf = _conf(lab, kind)
    host.run("sysctl", "-qw", "net.ipv4.ip_forward=0")
    rc, out, err = host.cni("ADD", conf, c, ifname="eth9")
    assert rc == 1 and out["code"] == 100, (out, err)          # "File exists" at the veth
    # host-wide forwarding, never turned off again, comes after the veth: ptp's was turned
    # on first and stayed on after this refused ADD (an audit's find)
    assert host.run("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"
    before = sh("ip", "-n", c, "-o", "link", "show", "eth9").stdout
    if how == "cnish":
        rc, out, err = host.cni("DEL", conf, c, ifname="eth9")
        assert rc == 0, (out, err)
    else:
        (tmp_path / "net.conf").write_text(json.dumps(conf))
        script = host.run(*cnish_command(), "del", conf["name"], c, "-i", "eth9", "--cid",
                          "ctr1", "--config", str(tmp_path / "net.conf"), "--cache-dir",
                          lab.cache_dir, "--dry-run").stdout
        assert "cnish-foreign-veth" in script
        (tmp_path / "del.sh").write_text(script)
        host.run("bash", str(tmp_path / "del.sh"))
    assert sh("ip", "-n", c, "-o", "link", "show", "eth9").stdout == before
    assert "master othr0" in host.run("ip", "-o", "link", "show", "vothr9").stdout

    # The same network's own interface, and one the reference plugin made, still go.
    for ifname, plugin in (("eth0", None), ("eth1", [f"/usr/lib/cni/{kind}"])):
        rc, out, err = host.cni("ADD", conf, c, ifname=ifname, plugin=plugin)
        assert rc == 0, (out, err)
        rc, out, err = host.cni("DEL", conf, c, ifname=ifname)
        assert rc == 0, (out, err)
        assert sh("ip", "-n", c, "link", "show", ifname, check=False).returncode != 0
    links = host.run("ip", "-o", "link", "show", "type", "veth").stdout.splitlines()
    assert [l.split()[1].split("@")[0] for l in links] == ["vothr9"]


@pytest.mark.parametrize("kind", ["bridge", "ptp"])
def test_the_reference_plugin_deletes_that_interface(lab, kind):
    """What cnish does better (README, "cnish does better"): the reference's DEL after the
    same refused ADD deletes the other network's interface. If this ever fails, the
    reference has been fixed and the README should say so."""
    host, c = lab.host(), lab.netns()
    _other_network_link(host, c)
    conf = _conf(lab, kind)
    plugin = [f"/usr/lib/cni/{kind}"]
    rc, out, err = host.cni("ADD", conf, c, ifname="eth9", plugin=plugin)
    assert rc != 0, (out, err)
    rc, out, err = host.cni("DEL", conf, c, ifname="eth9", plugin=plugin)
    assert rc == 0, (out, err)
    assert sh("ip", "-n", c, "link", "show", "eth9", check=False).returncode != 0
    assert host.run("ip", "link", "show", "vothr9", check=False).returncode != 0


@pytest.mark.parametrize("how", ["cnish", "dry-run-script"])
def test_a_reference_pair_whose_bridge_is_gone_is_still_deleted(lab, tmp_path, how):
    """A pair the reference plugin made (random host name) whose bridge was deleted since:
    its host end is a port of no bridge, which is no sign of another network. Found by a
    review: DEL left the pair and released its address while the container still held it."""
    host, c = lab.host(), lab.netns()
    conf = bridge_conf(lab)
    rc, res, err = host.cni("ADD", conf, c, plugin=["/usr/lib/cni/bridge"])
    assert rc == 0, (res, err)
    host.run("ip", "link", "del", conf["bridge"])
    if how == "cnish":
        rc, out, err = host.cni("DEL", conf, c)
        assert rc == 0, (out, err)
    else:
        (tmp_path / "net.conf").write_text(json.dumps(conf))
        script = host.run(*cnish_command(), "del", conf["name"], c, "--cid", "ctr1", "--config",
                          str(tmp_path / "net.conf"), "--cache-dir", lab.cache_dir,
                          "--dry-run").stdout
        (tmp_path / "del.sh").write_text(script)
        host.run("bash", str(tmp_path / "del.sh"))
    assert sh("ip", "-n", c, "link", "show", "eth0", check=False).returncode != 0
    assert host.run("ip", "-o", "link", "show", "type", "veth").stdout == ""


def test_a_reference_pair_on_a_bridge_name_cnish_refuses_is_still_deleted(lab):
    """DEL drops a `bridge` that is no name cnish takes ("ref#br": the kernel and the
    reference take it) rather than fail for good; the probe then takes a port of any bridge
    for this attachment's, instead of judging it against the default bridge name."""
    host, c = lab.host(), lab.netns()
    conf = bridge_conf(lab, bridge="ref#br")
    rc, res, err = host.cni("ADD", conf, c, plugin=["/usr/lib/cni/bridge"])
    assert rc == 0, (res, err)
    rc, out, err = host.cni("DEL", conf, c)
    assert rc == 0, (out, err)
    assert sh("ip", "-n", c, "link", "show", "eth0", check=False).returncode != 0
    assert host.run("ip", "-o", "link", "show", "type", "veth").stdout == ""
