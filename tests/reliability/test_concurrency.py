"""Concurrency on a real kernel: parallel ADDs and DELs to one network, a random storm of ADD
and DEL, and range exhaustion under parallel ADDs. Every run ends consistent: one address, one
chain, one veth and one store file per attached container, and nothing for the others."""

import json
import os
import random
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from figures import count
from lab import bridge_conf, cnish_command, sh, store_files

pytestmark = pytest.mark.kernel


def start(host, command, conf, netns, cid):
    env = {"PATH": os.environ["PATH"], "CNISH_PLAN_CACHE": os.environ.get("CNISH_PLAN_CACHE", ""),
           "CNISH_ATTACHMENT_LOCKS": os.environ.get("CNISH_ATTACHMENT_LOCKS", ""),
           "CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": f"/var/run/netns/{netns}",
           "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni"}
    return subprocess.Popen(["ip", "netns", "exec", host.name, *cnish_command()], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def run_all(procs, confs):
    out = []
    for proc, conf in zip(procs, confs):
        stdout, stderr = proc.communicate(json.dumps(conf), timeout=300)
        out.append((proc.returncode, json.loads(stdout) if stdout.strip() else None, stderr))
    return out


def attached(host, lab, conf):
    """What the host holds for the network: addresses in the store, chains, veths."""
    files = {k.split("/", 1)[1]: v for k, (_m, v) in store_files(lab.data_dir).items()
             if k.startswith(conf["name"] + "/")}
    ips = {name: content for name, content in files.items()
           if name not in ("lock",) and not name.startswith(("last_reserved_ip.", "."))}
    index = {name for name in files if name.startswith(".cnish-owner-")}
    assert len(index) == len(ips)          # one index entry per reservation, no temp files left
    nat = host.run("iptables-save", "-t", "nat").stdout
    chains = {l.split()[0][1:] for l in nat.splitlines() if l.startswith(":CNI-")}
    jumps = [l for l in nat.splitlines() if l.startswith("-A POSTROUTING")]
    veths = [l for l in host.run("ip", "-o", "link", "show", "type", "veth").stdout.splitlines()]
    return ips, chains, jumps, veths


def test_fifty_parallel_adds_then_fifty_parallel_dels(lab):
    host = lab.host()
    conf = bridge_conf(lab, ipam={"ranges": [[{"subnet": "10.91.0.0/24"}]]})
    namespaces = [lab.netns() for _ in range(50)]
    procs = [start(host, "ADD", conf, ns, f"par{i}") for i, ns in enumerate(namespaces)]
    results = run_all(procs, [conf] * 50)
    count("parallel operations", 50)
    assert [rc for rc, _, _ in results] == [0] * 50, [r for r in results if r[0]][:3]
    addresses = [res["ips"][0]["address"] for _, res, _ in results]
    assert len(set(addresses)) == 50
    ips, chains, jumps, veths = attached(host, lab, conf)
    assert len(ips) == 50 and len(chains) == 50 and len(jumps) == 50 and len(veths) == 50
    assert {v.decode().split("\r\n")[0] for v in ips.values()} == {f"par{i}" for i in range(50)}
    for ns, (_, res, _) in zip(namespaces, results):          # every container got its address
        assert res["ips"][0]["address"].split("/")[0] in sh("ip", "-n", ns, "-o", "addr").stdout

    procs = [start(host, "DEL", dict(conf, prevResult=res), ns, f"par{i}")
             for i, (ns, (_, res, _)) in enumerate(zip(namespaces, results))]
    deleted = run_all(procs, [dict(conf, prevResult=res) for _, res, _ in results])
    count("parallel operations", 50)
    assert [rc for rc, _, _ in deleted] == [0] * 50, [r for r in deleted if r[0]][:3]
    assert attached(host, lab, conf) == ({}, set(), [], [])
    assert "cni-test0" in host.run("ip", "-o", "link").stdout          # only the bridge stays


def test_thirty_parallel_adds_and_dels_with_the_nftables_masquerade(lab):
    """ipMasqBackend nftables: every ADD rewrites the shared base chain in its transaction, so
    parallel ADDs race on it. 30 dual-stack ADDs at once: one rule per address, the base chain
    with its three rules once; 30 DELs at once leave no rule."""
    host = lab.host()
    conf = bridge_conf(lab, ipMasqBackend="nftables",
                       ipam={"ranges": [[{"subnet": "10.92.0.0/24"}], [{"subnet": "fd92::/64"}]]})
    namespaces = [lab.netns() for _ in range(30)]

    def listed(chain):
        return [l.strip() for l in host.run("nft", "list", "chain", "inet", "cni_plugins_masquerade",
                                            chain, check=False).stdout.splitlines()
                if l.strip().startswith(("ip ", "ip6 ", "goto "))]

    procs = [start(host, "ADD", conf, ns, f"nft{i}") for i, ns in enumerate(namespaces)]
    results = run_all(procs, [conf] * 30)
    count("parallel operations", 30)
    assert [rc for rc, _, _ in results] == [0] * 30, [r for r in results if r[0]][:3]
    rules = listed("masq_checks")
    sources = sorted(a["address"].split("/")[0] for _, res, _ in results for a in res["ips"])
    assert sorted(r.split()[2] for r in rules) == sources and len(sources) == 60, rules
    assert listed("postrouting") == ["ip daddr 224.0.0.0/4 return", "ip6 daddr ff00::/8 return",
                                     "goto masq_checks"]
    procs = [start(host, "DEL", dict(conf, prevResult=res), ns, f"nft{i}")
             for i, (ns, (_, res, _)) in enumerate(zip(namespaces, results))]
    deleted = run_all(procs, [dict(conf, prevResult=res) for _, res, _ in results])
    count("parallel operations", 30)
    assert [rc for rc, _, _ in deleted] == [0] * 30, [r for r in deleted if r[0]][:3]
    assert listed("masq_checks") == []


def test_random_storm_of_add_and_del_ends_consistent(lab):
    """100 containers; each is added and maybe deleted (and maybe deleted twice), all of them
    interleaved at random by 16 workers."""
    host = lab.host()
    conf = bridge_conf(lab, ipam={"ranges": [[{"subnet": "10.92.0.0/24"}]]})
    rng = random.Random(1234)
    namespaces = [lab.netns() for _ in range(100)]
    fates = [rng.choice(["keep", "del", "del-twice"]) for _ in namespaces]

    def life(i):
        ns, cid = namespaces[i], f"storm{i}"
        runs = []
        proc = start(host, "ADD", conf, ns, cid)
        rc, res, err = run_all([proc], [conf])[0]
        runs.append(("ADD", rc, err))
        for _ in range({"keep": 0, "del": 1, "del-twice": 2}[fates[i]]):
            proc = start(host, "DEL", dict(conf, prevResult=res), ns, cid)
            rc, _, err = run_all([proc], [dict(conf, prevResult=res)])[0]
            runs.append(("DEL", rc, err))
        return runs

    order = list(range(100))
    rng.shuffle(order)
    with ThreadPoolExecutor(16) as pool:
        outcomes = dict(zip(order, pool.map(life, order)))
    count("parallel operations", sum(len(o) for o in outcomes.values()))
    failures = [(i, o) for i, o in outcomes.items() if any(rc for _, rc, _ in o)]
    assert not failures, failures[:3]
    kept = {f"storm{i}" for i, fate in enumerate(fates) if fate == "keep"}
    ips, chains, jumps, veths = attached(host, lab, conf)
    assert {v.decode().split("\r\n")[0] for v in ips.values()} == kept
    assert len(chains) == len(jumps) == len(veths) == len(kept)
    assert len(set(ips)) == len(kept)


def test_exhaustion_under_parallel_adds(lab):
    """40 containers race for the 29 addresses of a /27: 29 win, 11 get a clear error, and the
    losers leave nothing behind."""
    host = lab.host()
    conf = bridge_conf(lab, ipam={"ranges": [[{"subnet": "10.93.0.0/27"}]]})
    namespaces = [lab.netns() for _ in range(40)]
    procs = [start(host, "ADD", conf, ns, f"race{i}") for i, ns in enumerate(namespaces)]
    results = run_all(procs, [conf] * 40)
    count("parallel operations", 40)
    winners = [i for i, (rc, _, _) in enumerate(results) if rc == 0]
    losers = [i for i, (rc, _, _) in enumerate(results) if rc != 0]
    assert len(winners) == 29 and len(losers) == 11
    for i in losers:
        rc, out, _ = results[i]
        assert out["code"] == 102 and "no IP addresses available in range set" in out["msg"]
        assert "eth0" not in sh("ip", "-n", namespaces[i], "-o", "link").stdout
    ips, chains, jumps, veths = attached(host, lab, conf)
    assert {v.decode().split("\r\n")[0] for v in ips.values()} == {f"race{i}" for i in winners}
    assert len(chains) == len(jumps) == len(veths) == 29


def test_a_del_waits_for_the_tools_of_an_add_that_was_killed(lab, tmp_path):
    """A runtime that gives up on an ADD kills cnish's process, not the tools it started
    (Go's exec.CommandContext). The tool ran on and made the masquerade chain after the
    runtime's DEL had cleaned up, for good (found by the reliability audit). The
    tools hold the attachment's lock (cnish/attachlock.py): the DEL waits for them, then
    removes everything."""
    import signal
    import sys
    import time
    host, c = lab.host(), lab.netns()
    conf = bridge_conf(lab, ipam={"ranges": [[{"subnet": "10.92.0.0/24"}]]})
    slow = "iptables-restore"                 # (the masquerade, started alongside the ip batch)
    started = tmp_path / "started"
    wrappers = tmp_path / "slow-tools"
    wrappers.mkdir()
    real = [d for d in os.environ["PATH"].split(":") if os.access(f"{d}/{slow}", os.X_OK)][0]
    (wrappers / slow).write_text(f"#!/bin/sh\ntouch {started}\nsleep 1\nexec {real}/{slow} \"$@\"\n")
    (wrappers / slow).chmod(0o755)
    env = {"PATH": f"{wrappers}:{os.environ['PATH']}", "CNI_COMMAND": "ADD",
           "CNI_CONTAINERID": "ctr1", "CNI_NETNS": f"/var/run/netns/{c}", "CNI_IFNAME": "eth0",
           "CNI_PATH": "/usr/lib/cni", "CNISH_PLAN_CACHE": os.environ.get("CNISH_PLAN_CACHE", ""),
           "CNISH_ATTACHMENT_LOCKS": os.environ.get("CNISH_ATTACHMENT_LOCKS", "")}
    add = subprocess.Popen(["ip", "netns", "exec", host.name, sys.executable, "-m", "cnish"],
                           env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    add.stdin.write(json.dumps(conf).encode())
    add.stdin.close()
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert started.exists()
    add.send_signal(signal.SIGKILL)           # cnish's process only: the tool runs on
    add.wait()
    rc, out, err = host.cni("DEL", conf, c)
    assert rc == 0, (out, err)
    time.sleep(1.5)                           # (long enough for a tool that ran on)
    assert attached(host, lab, conf) == ({}, set(), [], [])
