"""Every plugin plan, every step, on a real kernel: step k fails (a failing wrapper earlier in
PATH) and the host must be exactly as before; cnish is SIGKILLed right after step k and the
runtime's DEL must leave the host clean, after which a new ADD works.

"The host" is everything Node.state() snapshots: links, addresses, routes and sysctls in the
host and container namespaces, iptables-save, nft list ruleset, the IPAM store and the result
cache. vlan, ipvlan and dummy need link kinds this machine's kernel lacks: they are marked
`linktype` and run in the kernel lab (../shared/kernel-lab) from .ci/run."""

import pytest

from figures import count
from lab import BRIDGE_VLANS, fault_env, plan_steps, reservations_only, sh, strip_netns, unique

pytestmark = pytest.mark.kernel

# One address per family: every ADD of the same container plans exactly the same commands (the
# round-robin cursor cannot move), so a plan made once names the commands to break.
HOST_LOCAL = {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}],
              "ranges": [[{"subnet": "10.93.0.0/24", "rangeStart": "10.93.0.5",
                           "rangeEnd": "10.93.0.5"}],
                         [{"subnet": "fd93::/64", "rangeStart": "fd93::5", "rangeEnd": "fd93::5"}]]}
STATIC = {"type": "static", "addresses": [{"address": "10.94.0.5/24", "gateway": "10.94.0.1"},
                                          {"address": "fd94::5/64"}],
          "routes": [{"dst": "10.95.0.0/16"}]}


def veth_master(host, name="mst0"):
    """A link for macvlan, ipvlan and vlan to sit on: one end of a veth pair, both ends up."""
    host.run("ip", "link", "add", name, "type", "veth", "peer", "name", name + "p")
    host.run("ip", "link", "set", name, "up")
    host.run("ip", "link", "set", name + "p", "up")
    return {"master": name}


def lent_device(host):
    """A device for host-device to lend to the container (and to get back)."""
    host.run("ip", "link", "add", "hd0", "type", "veth", "peer", "name", "hd0p")
    return {"device": "hd0"}


# plugin case -> (config fields, host preparation returning more fields, the link kind needed)
CASES = {
    "bridge": ({"type": "bridge", "bridge": "cni-every0", "isGateway": True,
                "isDefaultGateway": True, "ipMasq": True, "hairpinMode": True,
                "ipam": HOST_LOCAL}, None, None),
    "bridge-static": ({"type": "bridge", "bridge": "cni-every1", "isGateway": True,
                       "portIsolation": True, "macspoofchk": True, "ipam": STATIC}, None, None),
    "bridge-vlan": ({"type": "bridge", "bridge": "cni-every3", "isGateway": True, "vlan": 100,
                     "vlanTrunk": [{"minID": 200, "maxID": 201}], "ipam": STATIC}, None,
                    BRIDGE_VLANS),
    "ptp": ({"type": "ptp", "ipMasq": True, "mtu": 1400, "ipam": HOST_LOCAL}, None, None),
    "ptp-nftables": ({"type": "ptp", "ipMasq": True, "ipMasqBackend": "nftables",
                      "ipam": HOST_LOCAL}, None, None),
    "macvlan": ({"type": "macvlan", "mode": "bridge", "ipam": HOST_LOCAL}, veth_master, None),
    "macvlan-static": ({"type": "macvlan", "ipam": STATIC}, veth_master, None),
    "host-device": ({"type": "host-device", "ipam": HOST_LOCAL}, lent_device, None),
    "loopback": ({"type": "loopback"}, None, None),
    "vlan": ({"type": "vlan", "vlanId": 42, "ipam": HOST_LOCAL}, veth_master, "vlan"),
    "ipvlan": ({"type": "ipvlan", "mode": "l2", "ipam": HOST_LOCAL}, veth_master, "ipvlan"),
    "ipvlan-l3": ({"type": "ipvlan", "mode": "l3", "ipam": STATIC}, veth_master, "ipvlan"),
    "dummy": ({"type": "dummy", "ipam": HOST_LOCAL}, None, "dummy"),
}


# Cases whose other steps are another case's, tested on this machine: in the kernel lab (an
# emulated guest, where a step's fault and the state snapshots around it cost ~20 s) only the
# steps whose id holds the text fail or crash.
ONLY_STEPS = {"bridge-vlan": "vlan"}     # the rest: bridge-static's steps


def least_skipped(case) -> int:
    """How many steps at most may not run (their shared object exists after the warm-up:
    the bridge, its gateway address, forwarding; of the VLAN steps only the filtering)."""
    return 1 if case in ONLY_STEPS else 6


def case_steps(case, steps):
    only = ONLY_STEPS.get(case)
    return [s for s in steps if only in s["id"]] if only else steps


def params():
    for case, (_fields, _prepare, kind) in CASES.items():
        marks = [pytest.mark.linktype(kind=kind)] if kind else []
        yield pytest.param(case, marks=marks, id=case)


def network(lab, case):
    """A prepared host namespace, a container namespace and the network config of a case."""
    fields, prepare, _kind = CASES[case]
    host, c = lab.host(), lab.netns()
    conf = {"cniVersion": "1.1.0", "name": unique("net"), **fields}
    if "ipam" in conf:
        conf["ipam"] = dict(conf["ipam"], dataDir=lab.data_dir)
    if prepare:
        conf.update(prepare(host))
    if case == "loopback":
        sh("ip", "-n", c, "link", "set", "lo", "down")     # as a fresh namespace has it
    return host, c, conf


def warm_up(host, c, conf):
    """One ADD and DEL first, so that the shared objects (bridge, gateway addresses,
    forwarding) exist, as on a node that has run a container before."""
    rc, res, err = host.cni("ADD", conf, c)
    assert rc == 0, (res, err)
    assert host.cni("DEL", dict(conf, prevResult=res), c)[0] == 0
    host.settle(c)


def add_with_fault(host, c, conf, wrap, step, mode):
    """ADD with the step's command made to fail or crash: (rc, out, err), or None when the
    step did not run because its shared object exists (then the ADD succeeded and is DELeted
    again). Any other step that lets ADD succeed is a failure of the test."""
    env = fault_env(wrap, [strip_netns(step["argv"])], mode)
    rc, out, err = host.cni("ADD", conf, c, path_prefix=str(wrap), extra_env=env)
    if rc != 0:
        return rc, out, err
    assert step.get("skipIf"), (step["id"], out, err)
    assert host.cni("DEL", dict(conf, prevResult=out), c)[0] == 0
    host.settle(c)
    return None


@pytest.mark.parametrize("case", params())
def test_each_step_fails_once_and_the_host_is_as_before(lab, tmp_path, case):
    host, c, conf = network(lab, case)
    warm_up(host, c, conf)
    wrap = tmp_path / "wrap"
    wrap.mkdir()
    steps = case_steps(case, plan_steps(host, conf, c))
    before = host.state(c)
    failed = skipped = 0
    for step in steps:
        ran = add_with_fault(host, c, conf, wrap, step, "fail")
        if ran is None:
            skipped += 1
            continue
        rc, out, err = ran
        count("faults injected (step k fails, every plugin)")
        assert rc == 1 and out["code"] == 100, (step["id"], out, err)
        assert f"step {step['n']} ({step['id']})" in out["msg"], out
        host.settle(c)
        assert host.state(c) == before, step["id"]
        count("faults survived")
        failed += 1
    assert failed + skipped == len(steps) and failed >= len(steps) - least_skipped(case)
    # and the network still works afterwards
    rc, res, err = host.cni("ADD", conf, c)
    assert rc == 0, (res, err)
    assert host.cni("CHECK", dict(conf, prevResult=res), c)[0] == 0
    assert host.cni("DEL", dict(conf, prevResult=res), c)[0] == 0


@pytest.mark.parametrize("case", params())
def test_crash_after_each_step_then_del_cleans_up(lab, tmp_path, case):
    """SIGKILL right after step k: the runtime never got a result, so its DEL comes without
    prevResult; it must leave the host as before the ADD, and the next ADD must succeed."""
    host, c, conf = network(lab, case)
    warm_up(host, c, conf)
    wrap = tmp_path / "wrap"
    wrap.mkdir()
    steps = case_steps(case, plan_steps(host, conf, c))
    before = reservations_only(host.state(c))
    crashed = 0
    for step in steps:
        ran = add_with_fault(host, c, conf, wrap, step, "crash")
        if ran is None:
            continue
        rc, out, err = ran
        assert rc in (-9, 137) or out is None, (step["id"], rc, out, err)
        count("crashes injected (SIGKILL after step k)")
        crashed += 1
        rc, out, err = host.cni("DEL", conf, c)
        assert rc == 0, (step["id"], out, err)
        host.settle(c)
        assert reservations_only(host.state(c)) == before, step["id"]
        rc, res, err = host.cni("ADD", conf, c)
        assert rc == 0, (step["id"], res, err)
        assert host.cni("DEL", dict(conf, prevResult=res), c)[0] == 0
        host.settle(c)
        count("crashes survived")
    assert crashed >= len(steps) - least_skipped(case)


def second_interface(lab, tmp_path):
    """A container with eth0 on an ipMasq bridge network that has one address per family left
    for eth1 (so every ADD of eth1 plans the same commands), eth1's ADD plan, and a wrapper
    directory. eth1 was added and deleted once, so the range sets' cursors stay put."""
    host, c = lab.host(), lab.netns()
    two = {"type": "host-local", "dataDir": lab.data_dir,
           "ranges": [[{"subnet": "10.96.0.0/24", "rangeStart": "10.96.0.5",
                        "rangeEnd": "10.96.0.6"}],
                      [{"subnet": "fd96::/64", "rangeStart": "fd96::5", "rangeEnd": "fd96::6"}]]}
    conf = {"cniVersion": "1.1.0", "name": unique("net"), "type": "bridge",
            "bridge": "cni-every2", "isGateway": True, "ipMasq": True, "ipam": two}
    rc, first, err = host.cni("ADD", conf, c)
    assert rc == 0, (first, err)
    rc, out, err = host.cni("ADD", conf, c, ifname="eth1")
    assert rc == 0, (out, err)
    assert host.cni("DEL", conf, c, ifname="eth1")[0] == 0
    host.settle(c)
    wrap = tmp_path / "wrap"
    wrap.mkdir()
    return host, c, conf, first, plan_steps(host, conf, c, ifname="eth1"), wrap


def test_each_step_of_a_second_interface_fails_once_and_the_first_is_untouched(lab, tmp_path):
    """eth1 of a container whose eth0 is on the same ipMasq network: eth1's ADD shares eth0's
    masquerade chain, so its rollback must leave that chain, its rules and eth0's jump alone.
    Each step of eth1's ADD fails once; the host must be as before (eth0 attached). A step
    that does not run in the shared case (the bridge exists; the chain's rules are there)
    lets the ADD succeed, and its DEL must then give the same state back."""
    host, c, conf, first, steps, wrap = second_interface(lab, tmp_path)
    before = host.state(c)
    failed = 0
    for step in steps:
        env = fault_env(wrap, [strip_netns(step["argv"])], "fail")
        rc, out, err = host.cni("ADD", conf, c, ifname="eth1", path_prefix=str(wrap),
                               extra_env=env)
        if rc == 0:
            assert step.get("skipIf") or step.get("skipIfUnbatched"), (step["id"], out, err)
            assert host.cni("DEL", dict(conf, prevResult=out), c, ifname="eth1")[0] == 0
        else:
            count("faults injected (a second interface's step k fails)")
            assert out["code"] == 100 and f"step {step['n']} ({step['id']})" in out["msg"], out
            failed += 1
        host.settle(c)
        assert host.state(c) == before, step["id"]
        if rc != 0:
            count("faults survived")
    assert failed >= len(steps) - 6
    assert host.cni("CHECK", dict(conf, prevResult=first), c)[0] == 0


def test_crash_after_each_step_of_a_second_interface_then_del_leaves_the_first(lab, tmp_path):
    """The same second interface, cnish SIGKILLed right after each step of its ADD: the
    runtime's DEL of eth1 (without prevResult) gives the state back with eth0 whole, the
    chain they share included."""
    host, c, conf, first, steps, wrap = second_interface(lab, tmp_path)
    before = reservations_only(host.state(c))
    crashed = 0
    for step in steps:
        env = fault_env(wrap, [strip_netns(step["argv"])], "crash")
        rc, out, err = host.cni("ADD", conf, c, ifname="eth1", path_prefix=str(wrap),
                               extra_env=env)
        crash = rc != 0
        if crash:
            assert rc in (-9, 137) or out is None, (step["id"], rc, out, err)
            count("crashes injected (a second interface, SIGKILL after step k)")
            crashed += 1
        else:           # the step did not run or did not succeed (its object is there: the
            # bridge, the chain's rules; the chain, whose -N fails): nothing to crash after
            assert step.get("skipIf") or step.get("skipIfUnbatched") or step.get("onExists"), \
                (step["id"], out, err)
        rc, out, err = host.cni("DEL", conf, c, ifname="eth1")
        assert rc == 0, (step["id"], out, err)
        host.settle(c)
        assert reservations_only(host.state(c)) == before, step["id"]
        if crash:
            count("crashes survived")
    # every step that has to run in the shared case (no probe, no "exists") did crash
    assert crashed >= len([s for s in steps if not (s.get("skipIf") or s.get("skipIfUnbatched")
                                                    or s.get("onExists"))])
    assert host.cni("CHECK", dict(conf, prevResult=first), c)[0] == 0
