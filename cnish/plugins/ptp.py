"""The ptp plugin's Python half: a veth pair, routed instead of bridged
(containernetworking/plugins, plugins/main/ptp).

Each container address gets a point-to-point link to the host: the host end of the veth
carries the gateway address as a /32 (/128), the host routes the container's address to its
veth, and in the container the subnet is reached through the gateway — no bridge, no L2
between containers. The commands are in plans/ptp.toml.
"""

from cnish.config import requested_mac
from cnish.errors import INVALID_CONFIG, CNIError, invalid_config
from cnish.ipnet import IP, Prefix
from cnish.plugins import common

TYPE = "ptp"
KIND = "interface"
CNI_ARGS = frozenset({"MAC"})
DEL_TOLERATES = ("mtu",)          # keys DEL and GC never read (engine.py)


def check_early(op) -> None:
    """Before IPAM takes the store's lock: with host-local, whose ranges know their gateways,
    an IPAM route via another address of a subnet is refused now (any IPAM: after its ADD)."""
    common.check_early(op)
    sets = (op.ipam_conf or {}).get("sets") if op.command == "ADD" else None
    if sets and op.ipam_conf.get("routes"):
        _check_route_gateways([{"address": str(r.subnet), "gateway": str(r.gateway)}
                               for ranges in sets for r in ranges], op.ipam_conf["routes"])


def parse(f, op) -> dict:
    ipam = f.obj.get("ipam")
    if not (isinstance(ipam, dict) and ipam.get("type")):
        raise invalid_config("ipam", ipam, "ptp needs an IPAM configuration with a type")
    conf = {"ipMasq": f.flag("ipMasq"), "ipMasqBackend": common.masq_backend(f, op),
            "mtu": f.integer("mtu", 0, 0, 65535)}
    if conf["mtu"] and conf["mtu"] < 68:
        raise invalid_config("mtu", conf["mtu"], "must be 0 (the kernel's default) or at least 68")
    return conf


def _gateway(entry: dict) -> str:
    """The gateway of an address: IPAM's, else the first address of the subnet. The host end
    of the veth takes it, so it must be another address of the subnet than the container's
    (the reference fails without an IPAM gateway; static IPAM often gives none) or, for IPv6,
    a link-local address (routed IPv6's usual design: fe80::1 on every host end, as the
    reference allows)."""
    prefix = Prefix.parse(entry["address"])
    gateway = entry.get("gateway") or str(prefix.network + 1)   # (IPAM's: checked on entry)
    gw = IP.parse(gateway)
    mine = gw == prefix.ip
    if mine or not (prefix.subnet.contains(gw) or gw.link_local):
        raise CNIError(INVALID_CONFIG, f"ptp has no gateway for {entry['address']}",
                       (f"IPAM's gateway {gateway} "
                        + ("is the container's own address" if mine else
                           f"lies outside the container's subnet {prefix.subnet}")
                        if entry.get("gateway") else
                        f"IPAM gave none, and the one ptp would take, {gateway} (the first "
                        "address of the subnet), " + ("is the container's own" if mine
                                                      else "lies outside the prefix"))
                       + "; give the address another \"gateway\" of its subnet in the IPAM config")
    return gateway


def _check_route_gateways(ips: list, routes: list) -> None:
    """An IPAM route via another address of the container's subnet cannot work on ptp: the
    container reaches its subnet only through its gateway (the kernel would refuse the route
    with "Nexthop has invalid gateway"; the reference installs it before it deletes the
    subnet's route, and then the next hop is unreachable). Refused first, naming both."""
    gateways = {IP.parse(e["gateway"]) for e in ips}
    subnets = [Prefix.parse(e["address"]).subnet for e in ips]
    for route in routes:
        gw = IP.parse(route["gw"]) if route.get("gw") else None
        if gw is not None and gw not in gateways and any(s.contains(gw) for s in subnets):
            raise CNIError(INVALID_CONFIG, f"ptp cannot route {route['dst']} via {gw}",
                           f"the container reaches its subnet only through its gateway "
                           f"({', '.join(sorted(str(g) for g in gateways))}), so {gw} is not on "
                           "its link; route via the gateway, or leave out \"gw\"")


def prepare(op) -> dict:
    if op.command == "GC":
        from cnish import gc
        return gc.veth_plugin_values(op)
    att = common.veth_att(op)
    ifname = att["ifname"]
    if op.command == "ADD":
        mac, _ = requested_mac(op.raw, op.runtime.args)
        if mac:
            att["container_mac"] = mac
        ipam_att, ipam_result = op.ipam_add()
        common.require_ips(op, ipam_result)            # ptp always has IPAM (parse)
        ips = [dict(e, gateway=_gateway(e)) for e in ipam_result["ips"]]
        op.ipam_result = dict(ipam_result, ips=ips)
        routes = ipam_result.get("routes", [])
        _check_route_gateways(ips, routes)
    elif op.command == "CHECK":
        prev = common.prev_for_check(op)
        att["container_mac"] = (common.container_mac(prev, ifname)
                                or att["container_mac"])
        mine = common.own_part(op, prev)
        if mine["host_side"]:
            att["host_veth"] = mine["host_side"]      # (the reference names its veths randomly)
        # an address listed without its gateway has the one ADD gives it (a review found CHECK
        # failing with code 999 on one, no interface index or "interface": -1 making it ours)
        ips = [dict(e, gateway=_gateway(e)) for e in mine["ips"]]
        routes = mine["routes"]
        ipam_att = op.ipam_check(ips)
    else:  # DEL
        att["netns"] = common.live_netns(att["netns"], op.runtime.ifname)
        ipam_att, held = op.ipam_del()
        ips, routes = common.ips_for_del(op, held, att["netns"]), []
    # In the container: the gateway is on-link (a /32 route), the subnet lies behind it.
    wanted = []
    for entry in ips:
        prefix = Prefix.parse(entry["address"])
        gw = entry.get("gateway")
        if gw:
            wanted.append({"dst": f"{gw}/{prefix.ip.bits}", "scope": "link", "src": str(prefix.ip)})
            wanted.append({"dst": str(prefix.subnet), "gw": gw, "src": str(prefix.ip)})
    common.container(op, att, ips, wanted + list(routes), link_step="veth", noprefixroute=True,
                     link_mtu=op.conf.mtu)
    for ip in att["ips"]:
        ip["gateway_host"] = f"{ip['gateway']}/{128 if ip['version'] == 6 else 32}" \
            if ip["gateway"] else None
    att["masq"] = common.masquerade(op, att["ips"]) if op.conf.ipMasq else []
    att["masq_nft"] = common.masquerade_nft(op, att["ips"]) if op.conf.ipMasq else {}
    att["ipam"] = ipam_att
    return att


def result(op, att) -> dict:
    interfaces = [{"name": att["host_veth"], "mac": att["host_mac"]},
                  {"name": att["ifname"], "mac": att["container_mac"], "sandbox": att["netns"]}]
    return common.chain_result(op.prev_result, common.own_result(op, interfaces, 1))


def tools(op) -> list:
    return ["ip", "nsenter", "sysctl"] + common.masq_tools(op)
