"""Faults on a real kernel: failing undos, missing and broken tools, a read-only and a full
IPAM store. The host must never be left half-configured. (A failure at every step and a crash
after every step, for every plugin: test_every_plugin.py.)"""

import json
import os
import subprocess

import pytest

from figures import count
from lab import bridge_conf, cnish_command, fault_env, plan_steps, sh, strip_netns, without_lock

pytestmark = pytest.mark.kernel

DUAL = {"ranges": [[{"subnet": "10.90.0.0/24"}], [{"subnet": "fd90::/64"}]], "routes": []}


@pytest.fixture
def warm(lab, tmp_path):
    """A host namespace where the shared objects (bridge, gateway, forwarding) exist."""
    host, c = lab.host(), lab.netns()
    conf = bridge_conf(lab, isDefaultGateway=True, hairpinMode=True, ipam=DUAL)
    rc, res, err = host.cni("ADD", conf, c)
    assert rc == 0, err
    assert host.cni("DEL", dict(conf, prevResult=res), c)[0] == 0
    host.settle(c)
    wrap = tmp_path / "wrap"
    wrap.mkdir()
    return host, c, conf, wrap


def test_a_failing_undo_is_reported_and_the_rest_undone(warm):
    host, c, conf, wrap = warm
    steps = {s["id"]: s for s in plan_steps(host, conf, c)}
    jump = strip_netns(steps["masquerade[1].jump[0]"]["argv"])       # the last step fails ...
    veth_undo = strip_netns(steps["veth"]["undo"])                   # ... and so does one undo
    env = fault_env(wrap, [jump, veth_undo])
    rc, out, err = host.cni("ADD", conf, c, path_prefix=str(wrap), extra_env=env)
    count("faults injected (failing step + failing undo)")
    assert rc == 1 and "masquerade[1].jump[0]" in out["msg"]
    assert "rollback could not undo" in out["details"] and "(veth)" in out["details"]
    # every other undo ran: no reservation, no chain; only the veth that could not be deleted
    state = host.state(c)
    assert not [k for k in state["store"] if k.endswith(("10.90.0.2", "fd90::2"))]
    assert not [l for l in state["iptables"] + state["ip6tables"] if l.startswith("-A")]
    assert any(steps["veth"]["argv"][4] in l for l in state["links"])
    # and the runtime's DEL finishes the job
    assert host.cni("DEL", conf, c)[0] == 0
    assert not any(steps["veth"]["argv"][4] in l for l in host.state(c)["links"])
    count("faults survived")


def test_del_keeps_the_addresses_while_the_interface_remains(warm):
    """A DEL that cannot delete the container's interface must not release its addresses: the
    next ADD would give them to another container while this one still has them (found by an
    audit; the reference returns before its IPAM DEL). The rest is still removed, and the
    runtime's next DEL releases them."""
    host, c, conf, wrap = warm
    rc, res, err = host.cni("ADD", conf, c)
    assert rc == 0, err
    host_veth = res["interfaces"][1]["name"]
    mine = tuple(ip["address"].split("/")[0] for ip in res["ips"])
    env = fault_env(wrap, [["ip", "link", "del", "dev", "eth0"], ["ip", "link", "del", "dev", host_veth]])
    rc, out, err = host.cni("DEL", dict(conf, prevResult=res), c, path_prefix=str(wrap),
                           extra_env=env)
    count("faults injected (DEL cannot delete the interface)")
    assert rc == 1 and "stay reserved" in out["msg"], (out, err)
    state = host.state(c)
    assert len([k for k in state["store"] if k.endswith(mine)]) == 4, state["store"]  # + index
    assert res["ips"][0]["address"] in sh("ip", "-n", c, "addr", "show", "eth0").stdout
    assert not [l for l in state["iptables"] + state["ip6tables"] if l.startswith("-A")]
    other = host.lab.netns()
    rc, res2, err = host.cni("ADD", conf, other, cid="ctr2")
    assert rc == 0, err
    assert not {ip["address"] for ip in res2["ips"]} & {ip["address"] for ip in res["ips"]}
    assert host.cni("DEL", dict(conf, prevResult=res), c)[0] == 0
    assert not [k for k in host.state(c)["store"] if k.endswith(mine)]
    assert host.cni("DEL", dict(conf, prevResult=res2), other, cid="ctr2")[0] == 0
    count("faults survived")


@pytest.mark.parametrize("script", [False, True], ids=["cnish", "dry-run-script"])
def test_gc_keeps_only_the_addresses_of_a_stale_veth_that_remains(warm, script):
    """GC releases the reservations of stale attachments after deleting their host veths; when
    a veth cannot be deleted, its container may still hold the address, so that attachment's
    reservation stays (GC used to release it; later it kept every stale reservation). The
    other stale attachment's is released. The next GC releases the rest. The dry-run script
    does the same."""
    host, c, conf, wrap = warm
    conf = dict(conf, cniVersion="1.1.0")
    other = host.lab.netns()
    stale = [host.cni("ADD", conf, ns, cid=cid) for ns, cid in ((c, "gone1"), (other, "gone2"))]
    assert all(rc == 0 for rc, _, _ in stale), stale
    veths = [res["interfaces"][1]["name"] for _, res, _ in stale]
    held = [[ip["address"].split("/")[0] for ip in res["ips"]] for _, res, _ in stale]
    gc = dict(conf, **{"cni.dev/valid-attachments": []})
    env = fault_env(wrap, [["ip", "link", "del", "dev", veths[0]]])
    if script:                          # the operator's gc, no cached result: all are stale
        path, cache = wrap.parent / "gc.conf", wrap.parent / "no-cache"
        path.write_text(json.dumps(conf))
        cache.mkdir()
        plan = host.run(*cnish_command(), "gc", conf["name"], "--config", str(path),
                        "--cache-dir", str(cache), "--dry-run").stdout
        proc = host.run("bash", "-c", plan, check=False,
                        env=dict(os.environ, **env, PATH=f"{wrap}:{os.environ['PATH']}"))
        assert proc.returncode == 1 and "could not remove everything" in proc.stderr, proc.stderr
    else:
        rc, out, err = host.cni("GC", gc, None, cid="", ifname="", path_prefix=str(wrap),
                               extra_env=env)
        assert rc == 1 and "stay reserved" in out["msg"], (out, err)
    count("faults injected (GC cannot delete a stale veth)")
    links = host.run("ip", "-o", "link").stdout
    assert veths[0] in links and veths[1] not in links
    store = host.state(c)["store"]
    assert all(any(k.endswith("/" + ip) for k in store) for ip in held[0]), store
    assert not [k for k in store if k.endswith(tuple("/" + ip for ip in held[1]))], store
    rc, out, err = host.cni("GC", gc, None, cid="", ifname="")
    assert rc == 0, (out, err)
    store = host.state(c)["store"]
    assert not [k for k in store if k.endswith(tuple("/" + ip for ip in held[0]))], store
    assert veths[0] not in host.run("ip", "-o", "link").stdout
    count("faults survived")


def test_del_keeps_the_addresses_while_their_masquerade_rule_remains(warm):
    """A DEL (without prevResult) whose masquerade jump cannot be removed released the address
    anyway: the runtime's next DEL, which finds the rules by the reserved addresses, then found
    none, and the chain and its jump stayed for good, matching the next container given that
    address (found by a resource-exhaustion audit). The addresses now stay reserved until the
    rules are gone, and the next DEL removes both."""
    host, c, conf, wrap = warm
    rc, res, err = host.cni("ADD", conf, c)
    assert rc == 0, err
    mine = tuple(ip["address"].split("/")[0] for ip in res["ips"])
    steps = {s["id"]: s for s in plan_steps(host, conf, c, command="del")}
    env = fault_env(wrap, [strip_netns(steps["masquerade[0].jump[0]"]["argv"])])
    rc, out, err = host.cni("DEL", conf, c, path_prefix=str(wrap), extra_env=env)
    count("faults injected (DEL cannot remove a masquerade rule)")
    assert rc == 1 and "stay reserved" in out["msg"], (out, err)
    state = host.state(c)
    assert len([k for k in state["store"] if k.endswith(mine)]) == 4, state["store"]  # + index
    assert [l for l in state["iptables"] if l.startswith("-A POSTROUTING")]
    assert host.cni("DEL", conf, c)[0] == 0            # (no prevResult either)
    state = host.state(c)
    assert not [k for k in state["store"] if k.endswith(mine)]
    assert not [l for l in state["iptables"] + state["ip6tables"] if l.startswith(("-A", ":CNI"))]
    count("faults survived")


def test_del_keeps_the_addresses_when_only_the_container_end_could_go(warm):
    """The container's end is what holds the addresses: when deleting it fails and the host end
    is not found by cnish's name (a pair the reference made has a random host name), nothing
    else removes the interface, so the addresses stay reserved too."""
    host, c, conf, wrap = warm
    rc, res, err = host.cni("ADD", conf, c)
    assert rc == 0, err
    host.run("ip", "link", "set", "dev", res["interfaces"][1]["name"], "name", "refveth0")
    mine = tuple(ip["address"].split("/")[0] for ip in res["ips"])
    env = fault_env(wrap, [["ip", "link", "del", "dev", "eth0"]])
    rc, out, err = host.cni("DEL", dict(conf, prevResult=res), c, path_prefix=str(wrap),
                           extra_env=env)
    count("faults injected (DEL cannot delete the container's end)")
    assert rc == 1 and "stay reserved" in out["msg"], (out, err)
    assert len([k for k in host.state(c)["store"] if k.endswith(mine)]) == 4
    assert host.cni("DEL", dict(conf, prevResult=res), c)[0] == 0     # the next DEL frees them
    assert not [k for k in host.state(c)["store"] if k.endswith(mine)]
    count("faults survived")


@pytest.mark.parametrize("tool,mode", [("iptables-restore", "missing"), ("ip", "garbage"),
                                       ("sysctl", "missing"), ("nsenter", "missing")])
def test_missing_or_broken_tools(warm, tool, mode):
    """A tool that is not installed or answers nonsense: a clear CNI error naming the step and
    the tool, and nothing left behind."""
    host, c, conf, wrap = warm
    before = without_lock(host.state(c))
    steps = plan_steps(host, conf, c)
    if tool == "nsenter":
        target = next(s["argv"] for s in steps if s["argv"][0] == "nsenter")
        target = [target[0]] + list(target[1:])
    elif tool == "iptables-restore":
        target = next(strip_netns(s["argv"]) for s in steps if s["argv"][0] == "iptables")
    else:
        target = next(strip_netns(s["argv"]) for s in steps
                      if strip_netns(s["argv"])[0] == tool and not s.get("skipIf"))
    env = fault_env(wrap, [target], mode, tools=[tool])
    if mode == "missing" and tool.endswith("-restore"):
        # iptables not installed at all: every iptables tool answers "not found"
        env["CNISH_FAULT"] = "[]"
        for name in ("iptables", "iptables-restore", "ip6tables", "ip6tables-restore"):
            if (wrap / name).exists():
                os.unlink(wrap / name)
            (wrap / name).write_text("#!/bin/sh\necho \"$0: not found (simulated)\" >&2\nexit 127\n")
            (wrap / name).chmod(0o755)
    rc, out, err = host.cni("ADD", conf, c, path_prefix=str(wrap), extra_env=env)
    count("faults injected (missing or broken tools)")
    assert rc == 1 and out["code"] == 100, (out, err)
    assert "step" in out["msg"] and ("exited with status" in out["details"])
    host.settle(c)
    assert without_lock(host.state(c)) == before
    count("faults survived")


@pytest.fixture
def small_mount(tmp_path):
    """A 64 KiB tmpfs, unmounted at the end (also when the test fails)."""
    point = tmp_path / "small"
    point.mkdir()
    sh("mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "cnish-test", str(point))
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_read_only_store(lab, small_mount):
    host, c = lab.host(), lab.netns()
    conf = bridge_conf(lab, ipam={"dataDir": str(small_mount)})
    sh("mount", "-o", "remount,ro", str(small_mount))
    before = host.state(c)
    rc, out, err = host.cni("ADD", conf, c)
    count("faults injected (read-only store)")
    assert rc == 1 and out["code"] == 102 and str(small_mount) in out["msg"] + out["details"]
    assert "Read-only file system" in out["details"]
    assert host.state(c) == before
    count("faults survived")


def test_full_store(lab, small_mount):
    host, c = lab.host(), lab.netns()
    conf = bridge_conf(lab, ipam={"dataDir": str(small_mount)})
    os.makedirs(small_mount / conf["name"])             # the store exists; then the disk fills
    fd = os.open(small_mount / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    before = host.state(c)
    rc, out, err = host.cni("ADD", conf, c)
    count("faults injected (full store)")
    assert rc == 1 and out["code"] == 100 and "(reserve[0])" in out["msg"], (out, err)
    assert "No space left on device" in out["details"]
    after = without_lock(host.state(c))
    assert after["store"] == {k: v for k, v in before["store"].items()}
    assert {k: v for k, v in after.items() if k != "store"} == \
        {k: v for k, v in before.items() if k != "store"}
    assert not [f for f in os.listdir(small_mount / conf["name"]) if f.startswith(".cnish-tmp")]
    count("faults survived")
