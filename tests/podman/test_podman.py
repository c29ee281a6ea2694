"""podman runs containers on cnish networks: cnish as a real runtime's CNI plugin, end to end.

podman (CNI backend) execs cnish as `cnish-bridge` from a private plugin directory, chained with
the reference portmap and tuning from /usr/lib/cni; an operator attaches a running container
with `cnish add --pid`. Every test proves the container got its network and that DEL left
nothing behind: no veth, no nat rule or chain, no host-local reservation, no cached result.

These tests run in the machine's own network namespace (podman creates the containers'),
with bridges and networks named cnp<run id><n>, subnets from 198.19.0.0/16 and all of podman's
state in a temporary directory; the fixtures remove everything, also when a test fails.
"""

import json
import os
import time

import pytest

from lab import cnish_command, interrupts_held, sh
from cnish import names
from podmanlab import (IMAGE, NETWORKS_DIR, Networks, Podman, bridge_ports, cni_hash, fetch,
                       free_port, leftovers, link_exists, nat_chains, nat_lines,
                       podman_problem, read_until, reservations, TUNING_DIR)

pytestmark = pytest.mark.podman


@pytest.fixture(scope="session")
def pm():
    """podman with private storage and config, cnish installed as `cnish-bridge`, and the
    busybox image; all of it removed at the end of the session."""
    problem = podman_problem()
    if problem:
        pytest.skip(problem)
    pm = Podman()
    try:
        pm.setup()
        yield pm
    finally:
        with interrupts_held():
            problems = pm.close()
    assert problems == [], problems


@pytest.fixture
def nets(pm):
    """The test's networks, containers and links; removed afterwards, pass or fail."""
    nets = Networks(pm)
    try:
        yield nets
    finally:
        with interrupts_held():
            problems = nets.close()
    assert problems == [], problems


def masq_rule_present(ip: str, chain: str) -> bool:
    return any(l.startswith(f"-A POSTROUTING -s {ip}/32 ") and l.endswith(f"-j {chain}")
               for l in nat_lines())


def test_podman_run_gets_address_pings_gateway_and_leaves_nothing(pm, nets, tmp_path):
    """`podman run --rm` on a cnish network: eth0 has host-local's first address, the gateway
    answers; while it runs the host has cnish's veth on the bridge, the masquerade chain and
    the reservation; after it exits cnish's DEL (run by podman) has removed all three."""
    net = nets.create()
    name, cidfile = nets.container(net), tmp_path / "cid"
    ip = net.address(2)
    script = (f"ip -4 addr show eth0; ping -c 1 -W 3 {net.gateway} >/dev/null && echo PING-OK; "
              "echo READY; read -t 30 x; echo BYE")
    stderr = open(tmp_path / "stderr", "w+")
    proc = pm.popen("run", "--rm", "-i", "--name", name, "--cidfile", cidfile,
                    "--network", net.name, IMAGE, "sh", "-c", script, stderr=stderr)
    try:
        out = read_until(proc, "READY")
        assert f"inet {ip}/24 " in out, (out, open(tmp_path / "stderr").read())
        assert "PING-OK" in out, out
        cid = cidfile.read_text().strip()
        # the host while the container runs: exactly cnish's names
        veth = names.host_veth(net.name, cid, "eth0")
        chain = names.masq_chain(net.name, cid)
        assert chain == "CNI-" + cni_hash(net.name, cid)[:24]
        assert bridge_ports(net.bridge) == [veth]
        assert chain in nat_chains() and masq_rule_present(ip, chain)
        assert reservations(net) == {ip: f"{cid}\r\neth0"}
        proc.stdin.write(b"\n")
        proc.stdin.close()
        rest = read_until(proc, "BYE")
        assert proc.wait(timeout=30) == 0, open(tmp_path / "stderr").read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr.close()
    assert "BYE" in rest
    assert leftovers(net, cid, [veth]) == []
    assert chain not in nat_chains()
    assert link_exists(net.bridge)                       # the bridge is shared: it stays


def test_chained_with_reference_portmap_and_tuning(pm, nets):
    """cnish's bridge result flows through the reference portmap (-p HOSTPORT:PORT) and tuning:
    a TCP connection to the host port reaches the container, tuning's MTU and sysctl are set
    inside, podman sees cnish's address; after `podman rm` the DNAT chain, the masquerade
    chain, the veth and the reservation are gone (portmap's shared chains are the fixture's)."""
    net = nets.create(chained=[
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "tuning", "mtu": 1360, "sysctl": {"net.ipv4.conf.eth0.arp_ignore": "2"}}])
    name, port, ip = nets.container(net), free_port(), net.address(2)
    greeting = f"hello from {net.name}"
    cid = pm("run", "-d", "--name", name, "-p", f"{port}:8080", "--network", net.name, IMAGE,
             "sh", "-c", f"while true; do echo '{greeting}' | nc -l -p 8080; done").stdout.strip()
    digest = cni_hash(net.name, cid)
    dnat_chain, masq_chain = "CNI-DN-" + digest[:21], "CNI-" + digest[:24]
    veth = names.host_veth(net.name, cid, "eth0")

    rules = nat_lines()
    assert dnat_chain in nat_chains() and masq_chain in nat_chains(), rules
    assert any(l.startswith(f"-A {dnat_chain} ") and f"--dport {port} " in l
               and l.endswith(f"--to-destination {ip}:8080") for l in rules), rules
    assert masq_rule_present(ip, masq_chain)
    assert fetch("127.0.0.1", port).decode().strip() == greeting          # portmap's DNAT works
    inside = pm("exec", name, "sh", "-c", "ip -o link show eth0; "
                "cat /proc/sys/net/ipv4/conf/eth0/arp_ignore; ip -4 -o addr show eth0").stdout
    assert " mtu 1360 " in inside, inside                                 # tuning
    assert inside.splitlines()[1] == "2", inside
    assert f"inet {ip}/24 " in inside, inside                             # cnish's bridge
    pm("exec", name, "ping", "-c", "1", "-W", "3", net.gateway)
    seen = pm("inspect", "-f", "{{json .NetworkSettings.Networks}}", name).stdout
    assert json.loads(seen)[net.name]["IPAddress"] == ip
    assert bridge_ports(net.bridge) == [veth]
    assert os.path.exists(f"{TUNING_DIR}/{cid}_eth0.json")               # tuning's saved state

    pm("rm", "-f", "-t", "0", name)
    assert leftovers(net, cid, [veth]) == []
    assert dnat_chain not in nat_chains() and masq_chain not in nat_chains()


def test_bridge_name_taken_by_a_non_bridge_link_explains_itself(pm, nets, tmp_path):
    """The bridge name belongs to a veth: podman's error names the field and what is wrong
    with it, the ADD changed nothing (no veth, reservation or rule: it is refused before IPAM
    and before the plan), and the veth is untouched."""
    net = nets.create()
    nets.link(net.bridge, "type", "veth", "peer", "name", net.bridge + "p")
    name, cidfile = nets.container(net), tmp_path / "cid"
    proc = pm("run", "--rm", "--name", name, "--cidfile", cidfile, "--network", net.name, IMAGE,
              "true", check=False)
    assert proc.returncode != 0
    assert "cni plugin cnish-bridge failed: " in proc.stderr, proc.stderr
    assert (f'bridge="{net.bridge}": is the name of an existing link that is not a bridge'
            in proc.stderr), proc.stderr
    cid = cidfile.read_text().strip()
    assert leftovers(net, cid, [names.host_veth(net.name, cid, "eth0")]) == []
    assert reservations(net) == {}
    assert not os.path.isdir(f"/sys/class/net/{net.bridge}/bridge")     # still the veth
    assert link_exists(net.bridge + "p")
    assert pm("ps", "-a", "-q", "--filter", f"name={name}").stdout.strip() == ""


def test_exhausted_range_explains_itself_and_spares_the_holder(pm, nets, tmp_path):
    """A /30 leaves one address besides the gateway: a second container's ADD fails with
    cnish's "no IP addresses available" and where the reservations are; podman's DEL after the
    failed ADD does not release the first container's address or break its network."""
    net = nets.create(prefix_len=30)
    holder, ip = nets.container(net), net.address(2)
    holder_id = pm("run", "-d", "--name", holder, "--network", net.name, IMAGE,
                   "sleep", "60").stdout.strip()
    assert reservations(net) == {ip: f"{holder_id}\r\neth0"}

    late, cidfile = nets.container(net), tmp_path / "cid"
    proc = pm("run", "--rm", "--name", late, "--cidfile", cidfile, "--network", net.name, IMAGE,
              "true", check=False)
    assert proc.returncode != 0
    assert (f"cni plugin cnish-bridge failed: no IP addresses available in range set: "
            f"{net.address(1)}-{ip}: every address is reserved in {NETWORKS_DIR}/{net.name}"
            in proc.stderr), proc.stderr
    late_id = cidfile.read_text().strip()
    assert leftovers(net, late_id, [names.host_veth(net.name, late_id, "eth0")],
                     alone=False) == []

    # the holder keeps its address, its masquerade rule and its network
    assert reservations(net) == {ip: f"{holder_id}\r\neth0"}
    assert masq_rule_present(ip, names.masq_chain(net.name, holder_id))
    pm("exec", holder, "ping", "-c", "1", "-W", "3", net.gateway)

    pm("rm", "-f", "-t", "0", holder)
    assert leftovers(net, holder_id, [names.host_veth(net.name, holder_id, "eth0")]) == []


def links_inside(pm, container: str) -> list:
    return [line.split(": ")[1].split("@")[0]
            for line in pm("exec", container, "ip", "-o", "link").stdout.splitlines()]


def wait_until(condition, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def operator(*args, check=True):
    return sh(*cnish_command(), *args, check=check)


def test_operator_attaches_a_running_container_with_cnish_add_pid(pm, nets, tmp_path):
    """The seed's workflow: a container started with --network=none is attached by an operator
    (`cnish add NET --pid PID --config FILE`), reaches the gateway, passes `cnish check`, and
    `cnish del --pid` detaches it, leaving the container running and nothing on the host."""
    net = nets.create(main_type="bridge", install=False, directory=tmp_path)
    name, cache = nets.container(net), tmp_path / "cache"
    pm("run", "-d", "--name", name, "--network=none", IMAGE, "sleep", "60")
    pid = pm.pid(name)
    common = ["--pid", str(pid), "--config", str(net.path), "--cache-dir", str(cache)]
    assert links_inside(pm, name) == ["lo"]

    result = json.loads(operator("add", net.name, *common).stdout)
    ip = net.address(2)
    assert [i["address"] for i in result["ips"]] == [f"{ip}/24"]
    assert result["interfaces"][2] == {"name": "eth0", "mac": result["interfaces"][2]["mac"],
                                       "sandbox": f"/proc/{pid}/ns/net"}
    assert f"inet {ip}/24 " in pm("exec", name, "ip", "-4", "addr", "show", "eth0").stdout
    pm("exec", name, "ping", "-c", "1", "-W", "3", net.gateway)
    assert "default via " + net.gateway in pm("exec", name, "ip", "route").stdout
    operator("check", net.name, *common)

    cached = os.listdir(cache / "results")
    assert len(cached) == 1 and cached[0].startswith(net.name + "-")
    cid = cached[0][len(net.name) + 1:-len("-eth0")]
    veth = result["interfaces"][1]["name"]
    assert veth == names.host_veth(net.name, cid, "eth0")
    assert bridge_ports(net.bridge) == [veth]
    assert masq_rule_present(ip, names.masq_chain(net.name, cid))
    assert reservations(net) == {ip: f"{cid}\r\neth0"}

    operator("del", net.name, *common)
    assert links_inside(pm, name) == ["lo"]                                # eth0 is gone
    assert pm("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
    assert leftovers(net, cid, [veth]) == []
    assert os.listdir(cache / "results") == []
    operator("del", net.name, *common)                                     # safe to repeat


def test_operator_detaches_after_the_container_is_gone(pm, nets, tmp_path):
    """The container is removed before the operator detaches it: its namespace (and with it
    the veth pair) is gone, but the reservation and masquerade rules are not, until
    `cnish del --pid` for the vanished process removes them."""
    net = nets.create(main_type="bridge", install=False, directory=tmp_path)
    name, cache = nets.container(net), tmp_path / "cache"
    pm("run", "-d", "--name", name, "--network=none", IMAGE, "sleep", "60")
    pid = pm.pid(name)
    common = ["--pid", str(pid), "--config", str(net.path), "--cache-dir", str(cache)]
    result = json.loads(operator("add", net.name, *common).stdout)
    ip, veth = net.address(2), result["interfaces"][1]["name"]
    cid = os.listdir(cache / "results")[0][len(net.name) + 1:-len("-eth0")]
    chain = names.masq_chain(net.name, cid)

    pm("rm", "-f", "-t", "0", name)
    assert not os.path.exists(f"/proc/{pid}/ns/net")
    assert wait_until(lambda: not link_exists(veth))   # the kernel dismantles a namespace late
    assert masq_rule_present(ip, chain) and reservations(net) == {ip: f"{cid}\r\neth0"}

    operator("del", net.name, *common)
    assert leftovers(net, cid, [veth]) == []
    assert os.listdir(cache / "results") == []
