"""Normalized snapshots of what a bridge ADD did, for comparing cnish with the reference."""

import json
import re

from lab import sh, store_files

MAC = re.compile(r"\b[0-9a-f]{2}(:[0-9a-f]{2}){5}\b")

SYSCTLS_HOST = ("net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding",
                "net/ipv6/conf/{bridge}/accept_ra")
SYSCTLS_CONTAINER = ("net/ipv4/conf/{ifname}/arp_notify", "net/ipv6/conf/{ifname}/accept_dad",
                     "net/ipv6/conf/{ifname}/accept_ra", "net/ipv6/conf/{ifname}/enhanced_dad",
                     "net/ipv6/conf/{ifname}/dad_transmits",
                     "net/ipv6/conf/{ifname}/disable_ipv6", "net/ipv6/conf/lo/disable_ipv6")


def _json(argv):
    out = sh(*argv, check=False).stdout
    return json.loads(out) if out.strip() else []


def _sysctl(ns, key):
    proc = sh("ip", "netns", "exec", ns, "cat", f"/proc/sys/{key}", check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def result(res: dict) -> dict:
    """A CNI result with the values that are random in the reference replaced."""
    text = MAC.sub("<mac>", json.dumps(res, sort_keys=True))
    text = re.sub(r'"veth[0-9a-f]+"', '"<veth>"', text)
    text = re.sub(r'"/var/run/netns/[^"]+"', '"<netns>"', text)
    out = json.loads(text)
    if out.get("dns") == {}:
        del out["dns"]           # the Go 1.x type prints an empty dns; cnish omits it
    return out


def state(node, container: str, conf: dict, ifname: str = "eth0") -> dict:
    bridge = conf.get("bridge", "cni0")
    host, c = node.name, container
    links = {}
    for link in _json(["ip", "-n", host, "-d", "-j", "link", "show"]):
        name = link["ifname"]
        if name == "lo":
            continue
        info = link.get("linkinfo", {})
        key = "<veth>" if name.startswith("veth") else name
        slave = info.get("info_slave_data", {})
        links[key] = {"kind": info.get("info_kind"), "mtu": link["mtu"],
                      "flags": sorted(set(link["flags"]) - {"LOWER_UP", "NO-CARRIER", "M-DOWN"}),
                      "master": link.get("master"), "promiscuity": link.get("promiscuity"),
                      "hairpin": slave.get("hairpin")}
    def addrs(ns, dev):
        out = []
        for link in _json(["ip", "-n", ns, "-j", "addr", "show", "dev", dev]):
            for a in link.get("addr_info", []):
                if a.get("scope") != "link":      # (with the IPv4 broadcast address)
                    out.append(f"{a['local']}/{a['prefixlen']}"
                               + (f" brd {a['broadcast']}" if a.get("broadcast") else ""))
        return sorted(out)

    def routes(ns, family):
        lines = sh("ip", "-n", ns, family, "route", "show", check=False).stdout.splitlines()
        return sorted(re.sub(r"veth[0-9a-f]+", "<veth>", l.strip()) for l in lines
                      if not l.startswith("fe80"))

    c_link = next((l for l in _json(["ip", "-n", c, "-d", "-j", "link", "show", "dev", ifname])), {})
    nat = []
    for tool in ("iptables-save", "ip6tables-save"):
        out = sh("ip", "netns", "exec", host, tool, "-t", "nat", check=False).stdout
        nat += sorted(l for l in out.splitlines() if l.startswith(("-A", ":CNI")))
    # the MAC spoof check's nftables rules (macspoofchk), veth names and MACs normalized
    listed = sh("ip", "netns", "exec", host, "nft", "list", "table", "bridge", "nat",
                check=False).stdout
    spoofchk = [MAC.sub("<mac>", re.sub(r"veth[0-9a-f]+", "<veth>", l.strip()))
                for l in listed.splitlines() if l.strip()]
    return {
        "spoofchk": spoofchk,
        "links": links,
        "bridge_addresses": addrs(host, bridge),
        "host_routes": routes(host, "-4") + routes(host, "-6"),
        "host_sysctls": {k: _sysctl(host, k.format(bridge=bridge)) for k in SYSCTLS_HOST},
        "veth_sysctls": {"accept_ra": [_sysctl(host, f"net/ipv6/conf/{link['ifname']}/accept_ra")
                                       for link in _json(["ip", "-n", host, "-j", "link", "show",
                                                          "type", "veth"])]},
        "container_link": {"mtu": c_link.get("mtu"), "kind": c_link.get("linkinfo", {}).get("info_kind"),
                           "up": "UP" in c_link.get("flags", [])},
        "container_addresses": addrs(c, ifname),
        "container_routes": routes(c, "-4") + routes(c, "-6"),
        "container_sysctls": {k: _sysctl(c, k.format(ifname=ifname)) for k in SYSCTLS_CONTAINER},
        "nat": nat,
    }


def store(data_dir: str) -> dict:
    """Store files by name -> content (modes compared separately), without cnish's index
    entries (.cnish-owner-<key>.<ip>, a deliberate addition; see index_matches)."""
    return {name.split("/", 1)[1]: content for name, (_mode, content) in store_files(data_dir).items()
            if not name.endswith("/lock") and "/.cnish-owner-" not in name}


def index_matches(data_dir: str) -> bool:
    """Every cnish index entry is a hard link to the address file it names (same inode, so
    same content), and every address file has one."""
    import os
    files = {name.split("/", 1)[1]: os.stat(os.path.join(data_dir, name))
             for name in store_files(data_dir)}
    index = {n: st for n, st in files.items() if n.startswith(".cnish-owner-")}
    addresses = {n: st for n, st in files.items()
                 if n != "lock" and not n.startswith(("last_reserved_ip.", "."))}
    return sorted(n[len(".cnish-owner-") + 17:] for n in index) == sorted(addresses) and all(
        os.path.samestat(addresses[n[len(".cnish-owner-") + 17:]], st) for n, st in index.items())
