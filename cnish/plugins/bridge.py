"""The bridge plugin's Python half: config keys, per-container values, and the CNI result.

The commands are in plans/bridge.toml. This module decides the values they use: the host
veth's name and MACs (hashes of the attachment, see names.py), the container's addresses and
routes (from IPAM, with the gateway and default-route rules of the reference,
containernetworking/plugins plugins/main/bridge), the bridge's gateway addresses, and the
masquerade chain.
"""

from cnish import names
from cnish.config import Fields, requested_mac
from cnish.plugins import common
from cnish.errors import INVALID_CONFIG, CNIError, invalid_config
from cnish.ipnet import IP, Prefix
from cnish.validate import IFNAME_MAX

TYPE = "bridge"
KIND = "interface"
CNI_ARGS = frozenset({"MAC"})
# Keys DEL and GC never read, whose bad values they take no notice of (engine.py)
DEL_TOLERATES = ("bridge", "mtu", "isGateway", "isDefaultGateway", "forceAddress", "hairpinMode",
                 "promiscMode", "portIsolation", "enabledad", "disableContainerInterface",
                 "acceptRA", "vlan", "vlanTrunk", "preserveDefaultVlan")

VLAN_MAX = 4094


def check_early(op) -> None:
    common.check_early(op)
    # (ADD only: with such a comment no rule can exist, and DEL must not fail for good)
    if op.conf.get("macspoofchk") and op.runtime.container_id and op.command == "ADD":
        comment = names.spoofchk(op.runtime.container_id, op.runtime.ifname)["comment"]
        if len(comment) > names.NFT_COMMENT_MAX:
            raise invalid_config("macspoofchk", True, "with this container id and interface name "
                                 "the spoof check's rule comment would exceed "
                                 f"{names.NFT_COMMENT_MAX} characters, more than nft takes")


def parse(f, op) -> dict:
    conf = {
        "ipMasqBackend": common.masq_backend(f, op),
        "bridge": f.ifname("bridge", "cni0"),
        "isDefaultGateway": f.flag("isDefaultGateway"),
        "forceAddress": f.flag("forceAddress"),
        "ipMasq": f.flag("ipMasq"),
        "mtu": f.integer("mtu", 0, 0, 65535),
        "hairpinMode": f.flag("hairpinMode"),
        "promiscMode": f.flag("promiscMode"),
        "portIsolation": f.flag("portIsolation"),
        "macspoofchk": f.flag("macspoofchk"),
        "enabledad": f.flag("enabledad"),
        "disableContainerInterface": f.flag("disableContainerInterface"),
        # cnish's own key: whether containers take IPv6 router advertisements (see
        # plans/container-ip.toml, step no-router-advertisements); unset: not when IPAM gives
        # the container its addresses, as the kernel has it on an L2-only bridge
        "acceptRA": f.flag("acceptRA", None),
        # VLANs of the host end's bridge port (the bridge filters VLANs when one is set):
        # `vlan`, the access VLAN (PVID, untagged); `vlanTrunk`, the tagged ones, as ranges
        # of consecutive ids; `preserveDefaultVlan`, keep the VLANs the kernel gives a new
        # port (the bridge's default PVID, 1) instead of removing them first
        "vlan": f.integer("vlan", 0, 0, VLAN_MAX),
        "preserveDefaultVlan": f.flag("preserveDefaultVlan"),
    }
    conf["isGateway"] = f.flag("isGateway") or conf["isDefaultGateway"]
    conf["vlanTrunk"] = _vlan_trunk(f, untagged=conf["vlan"] or 1)
    conf["vlanFiltering"] = bool(conf["vlan"] or conf["vlanTrunk"])
    # With an access VLAN the gateway addresses go on a link of their own in that VLAN, named
    # <bridge>.<vlan> as the reference names it: its peer is a port of the bridge in the VLAN
    conf["gatewayDev"] = conf["bridge"]
    conf["gatewayPeer"] = ""
    if conf["isGateway"] and conf["vlan"]:
        conf["gatewayDev"] = f"{conf['bridge']}.{conf['vlan']}"
        if len(conf["gatewayDev"]) > IFNAME_MAX:
            raise invalid_config("vlan", conf["vlan"], "with isGateway the gateway's link "
                                 f"{conf['gatewayDev']} would exceed the kernel's {IFNAME_MAX} "
                                 "bytes; use a shorter bridge name")
        conf["gatewayPeer"] = names.vlan_gateway_peer(conf["gatewayDev"])
    if conf["mtu"] and conf["mtu"] < 68:
        raise invalid_config("mtu", conf["mtu"], "must be 0 (the kernel's default) or at least 68")
    ipam = f.obj.get("ipam")
    if conf["disableContainerInterface"] and isinstance(ipam, dict) and ipam.get("type"):
        raise invalid_config("disableContainerInterface", True,
                             "cannot be used with IPAM (ipam.type): the container's interface "
                             "stays down, without addresses")
    if conf["hairpinMode"] and conf["promiscMode"]:
        raise invalid_config("hairpinMode", True,
                             "cannot set hairpin mode and promiscuous mode at the same time")
    return conf


def _vlan_trunk(f, untagged: int) -> list:
    """`vlanTrunk`: [{"id": N} or {"minID": A, "maxID": B}, ...], ids 1-4094, as the reference
    reads it; as sorted ranges of consecutive ids [{"min", "max", "expect"}], where `expect`
    lists what `bridge -j vlan show` prints for each tagged id of the range (CHECK): all but
    the port's `untagged` VLAN, which the plan adds after the trunk (bridge.toml)."""
    ids = set()
    for i, item in enumerate(f.items("vlanTrunk", dict, "an object")):
        entry = Fields(item, f"vlanTrunk[{i}]")
        low, high = entry.has("minID"), entry.has("maxID")
        if low != high:
            raise invalid_config(f"vlanTrunk[{i}]", item, "minID and maxID must be given together")
        if low:
            first, last = entry.integer("minID", 0, 1, VLAN_MAX), entry.integer("maxID", 0, 1, VLAN_MAX)
            if last < first:
                raise invalid_config(f"vlanTrunk[{i}].maxID", last, f"must not be below minID {first}")
            ids.update(range(first, last + 1))
        if entry.has("id"):
            ids.add(entry.integer("id", 0, 1, VLAN_MAX))
        if not (low or entry.has("id")):
            raise invalid_config(f"vlanTrunk[{i}]", item, "needs \"id\", or \"minID\" and \"maxID\"")
    ranges = []
    for vid in sorted(ids):
        if ranges and ranges[-1]["max"] == vid - 1:
            ranges[-1]["max"] = vid
        else:
            ranges.append({"min": vid, "max": vid})
    for r in ranges:
        r["expect"] = [f'{{"vlan":{vid}}}' for vid in range(r["min"], r["max"] + 1)
                       if vid != untagged]
    return ranges


# -- per-container values ------------------------------------------------------------------------

def _base(op) -> dict:
    bridge = op.conf.bridge
    return dict(common.veth_att(op),
                bridge_mac=op.read_sys(f"/sys/class/net/{bridge}/address")
                or names.mac_address(op.machine_id, "bridge", bridge))


def _require_bridge_or_none(op) -> None:
    """`bridge` must name a bridge or nothing yet: the container's veth would otherwise be
    attached to, and the gateway address put on, another kind of link (the plan's
    bridge-is-bridge step fails such an ADD too, but only after the shared steps before it).
    The link's uevent file says DEVTYPE=bridge from the moment the link exists (its bridge/
    directory comes later: a bridge a parallel ADD is creating must not count as another
    kind)."""
    uevent = op.read_sys(f"/sys/class/net/{op.conf.bridge}/uevent")
    if uevent is not None and "DEVTYPE=bridge" not in uevent.split("\n"):
        raise invalid_config("bridge", op.conf.bridge, "is the name of an existing link that "
                             "is not a bridge")


def _with_gateways(op, ipam_ips: list, routes: list):
    """The reference's gateway rules: a missing gateway is network+1 when isGateway, and
    isDefaultGateway adds a default route per family unless IPAM gave one with a gateway. An
    IPAM default route without one is that route (it goes via the gateway anyway): it gets
    the gateway, where the reference fails ("file exists") and a second entry would list the
    kernel's one route twice."""
    ips = []
    for entry in ipam_ips:
        entry = dict(entry)
        if not entry.get("gateway") and op.conf.isGateway:
            prefix = Prefix.parse(entry["address"])
            entry["gateway"] = str(prefix.network + 1)
        ips.append(entry)
    routes = [dict(r) for r in routes]
    if op.conf.isDefaultGateway:
        for version, default in ((4, "0.0.0.0/0"), (6, "::/0")):
            gw = next((e["gateway"] for e in ips
                       if Prefix.parse(e["address"]).version == version and e.get("gateway")), None)
            defaults = [r for r in routes if r["dst"] == default]
            if not gw or any(r.get("gw") for r in defaults):
                continue
            if defaults:
                defaults[0]["gw"] = gw
            else:
                routes.append({"dst": default, "gw": gw})
    return ips, routes


def _gateways(ips: list) -> list:
    out, seen = [], set()
    for ip in ips:
        if ip["gateway"]:
            cidr = f"{ip['gateway']}/{ip['length']}"
            if cidr not in seen:
                seen.add(cidr)
                out.append({"version": ip["version"], "cidr": cidr, "address": ip["gateway"],
                            "length": ip["length"]})
    return out


def _conflicts(gateways: list, addresses: list) -> list:
    """Addresses that conflict with the gateway addresses (the reference's rule: any other
    IPv4 address; an IPv6 address only when the subnets overlap)."""
    wanted = {g["cidr"] for g in gateways}
    stale = []
    for cidr in addresses:
        if cidr in wanted:
            continue
        existing = Prefix.parse(cidr)
        if any(existing.version == Prefix.parse(g["cidr"]).version
               and (existing.version == 4 or existing.overlaps(Prefix.parse(g["cidr"])))
               for g in gateways):
            stale.append({"version": existing.version, "cidr": cidr})
    return stale


def _ipv4_or_empty(text) -> str:
    """`ip`'s broadcast field, if it is an IPv4 address (it reaches a command), else ""."""
    try:
        ip = IP.parse(text)
    except ValueError:
        return ""
    return str(ip) if ip.version == 4 else ""


_SCOPES = ("global", "site", "link", "host")
_FOREVER = 4294967295


def _as_it_was(info: dict, dev: str) -> dict:
    """What the undo of forceAddress's removal needs to put an address (`ip -j`'s addr_info)
    back as it was: its broadcast, scope, label, metric, lifetimes (the time left) and
    flags. An audit found it given back with only its prefix: without noprefixroute its
    prefix route reappeared, and the metric and lifetimes were lost. Each value reaches a
    command, so each is checked here (a value `ip` printed that is not one is left out).
    Presence is a flag, the value a string: a plan may test shape, not values."""
    def number(value):
        return str(value) if isinstance(value, int) and not isinstance(value, bool) \
            and 0 <= value <= _FOREVER else ""
    label = info.get("label")
    label_ok = (isinstance(label, str) and label != dev and label.startswith(dev)
                and len(label) <= 15 and label.isprintable()
                and not any(c.isspace() or c == "/" for c in label))
    scope = info.get("scope")
    scope = scope if scope in _SCOPES or (isinstance(scope, str) and scope.isdigit()
                                          and int(scope) < 256) else "global"
    valid, preferred = number(info.get("valid_life_time")), number(info.get("preferred_life_time"))
    finite = bool(valid and preferred) and (valid, preferred) != (str(_FOREVER), str(_FOREVER))
    valid = "forever" if valid == str(_FOREVER) else valid
    preferred = "forever" if preferred == str(_FOREVER) else preferred
    metric = number(info.get("metric"))
    broadcast = _ipv4_or_empty(info.get("broadcast"))
    return {"broadcast": broadcast, "has_broadcast": bool(broadcast), "scope": scope,
            "label": label if label_ok else "", "has_label": label_ok,
            "metric": metric, "has_metric": bool(metric and metric != "0"),
            "valid_lft": valid, "preferred_lft": preferred, "has_lifetimes": finite,
            "noprefixroute": info.get("noprefixroute") is True,
            "nodad": info.get("family") == "inet6"}     # (it had passed DAD: not again)


def _stale_addresses(op, gateways: list) -> list:
    """Addresses on the bridge that conflict with the gateways. The quick native read
    (hostinfo.py) settles the common case — no address yet, or the gateway already there —
    without a process; a suspected conflict is confirmed with the full list from `ip`."""
    if not gateways:
        return []
    from cnish import hostinfo
    bridge = op.conf.gatewayDev          # (the bridge, or with vlan its VLAN's gateway link)
    versions = {g["version"] for g in gateways}    # an address conflicts only within its family
    quick = [hostinfo.primary_ipv4(bridge)] if 4 in versions else []
    labelled = quick == [None] and hostinfo.has_labelled_ipv4(bridge)   # (not found by name)
    if 6 in versions:       # /proc/net/if_inet6 lists every link's: skipped when it cannot matter
        quick += hostinfo.ipv6_addresses(bridge)
    quick = [a for a in quick if a]
    if not labelled and not _conflicts(gateways, quick):
        return []
    found = op.fact("bridge-addresses")
    if found is None or found.returncode != 0:
        return []          # no bridge after all: nothing to conflict with
    from cnish import jsonfast
    try:
        links = jsonfast.loads(found.stdout or "[]")
    except ValueError:
        return []
    infos = {f"{i.get('local')}/{i.get('prefixlen')}": i
             for link in links for i in link.get("addr_info", [])
             if i.get("family") in ("inet", "inet6") and i.get("scope") != "link"}
    # Secondary IPv4 addresses go first: deleting a primary makes the kernel delete the
    # secondaries of its subnet with it, which the later steps would then not find and the
    # rollback would not give back (found by an audit). In this order each step removes
    # exactly its address, and the undo puts back the primary before its secondaries.
    stale = sorted(_conflicts(gateways, infos), key=lambda s: not infos[s["cidr"]].get("secondary"))
    for s in stale:      # forceAddress's undo gives the address back as it was
        s.update(_as_it_was(infos[s["cidr"]], bridge))
    if stale and not op.conf.forceAddress:
        families = {":" in s["cidr"] for s in stale}       # (only the gateways in conflict)
        raise CNIError(INVALID_CONFIG,
                       f"{'bridge ' if bridge == op.conf.bridge else ''}{bridge} already has an "
                       "IP address different from "
                       + ", ".join(g["cidr"] for g in gateways if (":" in g["cidr"]) in families),
                       f"it has {', '.join(s['cidr'] for s in stale)}; set \"forceAddress\": true "
                       "to replace it, or use another bridge name")
    return stale


def tools(op) -> list:
    """What ADD needs on the host (STATUS checks that it is there)."""
    needed = ["ip", "nsenter", "sysctl"]
    needed += common.masq_tools(op)
    if op.conf.macspoofchk:
        needed.append("nft")
    if op.conf.vlanFiltering:
        needed.append("bridge")
    return needed


def _require_bridge_vlans(op) -> None:
    """vlan and vlanTrunk on a kernel whose bridges cannot filter VLANs: code 103 before
    anything changes (a dry-run notes it and still prints the plan)."""
    from cnish import kernel
    kernel.refuse(op, kernel.bridge_vlans_problem(op), "the bridge's VLAN steps",
                  "run on a kernel with bridge VLAN filtering, or leave vlan and vlanTrunk out")


def status(op) -> None:
    """STATUS: ADD cannot be served with vlan or vlanTrunk on a kernel without bridge VLAN
    filtering."""
    if op.conf.vlanFiltering:
        from cnish import kernel
        reason = kernel.bridge_vlans_problem(op)
        if reason:
            from cnish.errors import KERNEL_LACKS
            raise CNIError(KERNEL_LACKS, reason)       # (engine.status makes it code 50)


def _vlan_gateway_ready(op) -> bool:
    """Is the VLAN's gateway link (isGateway with vlan) there and up, with its bridge port
    attached? Up comes last in bridge.toml, so a link a crashed ADD left half made is not
    taken as made; a link whose port cnish did not name (the reference's) counts as made."""
    flags = op.read_sys(f"/sys/class/net/{op.conf.gatewayDev}/flags")
    if flags is None or not int(flags, 16) & 1:         # IFF_UP
        return False
    peer = op.conf.gatewayPeer
    return (op.read_sys(f"/sys/class/net/{peer}/ifindex") is None
            or op.read_sys(f"/sys/class/net/{peer}/brport/port_no") is not None)


def prepare(op) -> dict:
    if op.command == "GC":
        from cnish import gc
        att = gc.veth_plugin_values(op)
        hooks = op.fact("spoofchk-table") if op.conf.macspoofchk else None
        att["stale_spoofchks"] = (gc.stale_spoofchks(hooks.stdout, op.name, op.valid_attachments)
                                  if hooks is not None and hooks.returncode == 0 else [])
        return att
    att = _base(op)
    if op.command == "ADD":
        _require_bridge_or_none(op)        # before IPAM allocates and the plan starts
        if op.conf.vlanFiltering:
            _require_bridge_vlans(op)      # before a delegated IPAM plugin allocates
        mac, _ = requested_mac(op.raw, op.runtime.args)
        if mac:
            att["container_mac"] = mac
        ipam_att, ipam_result = op.ipam_add()
        common.require_ips(op, ipam_result)
        ips, routes = _with_gateways(op, ipam_result.get("ips", []), ipam_result.get("routes", []))
        op.ipam_result = dict(ipam_result, ips=ips, routes=routes)
    elif op.command == "CHECK":
        prev = common.prev_for_check(op)
        mine = common.own_part(op, prev)
        ips, routes = mine["ips"], mine["routes"]
        att["container_mac"] = (common.container_mac(prev, op.runtime.ifname)
                                or att["container_mac"])
        if mine["host_side"] and mine["host_side"] != op.conf.bridge:
            att["host_veth"] = mine["host_side"]      # (the reference names its veths randomly)
        if op.conf.isGateway:
            # The bridge's MAC is the containers' gateway MAC, which cnish pins (step
            # bridge-mac): a change leaves them sending to the old one until their ARP entries
            # expire. Without isGateway the kernel takes it from the ports as they come and go,
            # so it is not compared (the reference's CHECK compares it always, and fails then).
            att["bridge_mac"] = common.host_mac(prev, op.conf.bridge) or att["bridge_mac"]
        ipam_att = op.ipam_check(ips)
    else:  # DEL
        att["netns"] = common.live_netns(att["netns"], op.runtime.ifname)
        # The bridge whose ports' peers DEL takes for this attachment's (step container-link):
        # "*", any, when DEL dropped the config's `bridge` as no name cnish takes (a reference
        # ADD may have made it); the default name would misjudge such a pair as another's.
        att["probe_bridge"] = "*" if any(f == "bridge" for f, _ in op.ignored) else op.conf.bridge
        ipam_att, held = op.ipam_del()
        ips = common.ips_for_del(op, held, att["netns"])
        routes = []
    accept_ra = op.conf.acceptRA if op.conf.acceptRA is not None else not ips
    common.container(op, att, ips, routes, link_step="veth", link_mtu=op.conf.mtu,
                     ignore_ra=not accept_ra, keep_down=op.conf.disableContainerInterface,
                     dad=op.conf.enabledad)
    att["gateways"] = _gateways(att["ips"]) if op.conf.isGateway else []
    if op.conf.gatewayPeer:
        att["vlan_gateway_mac"] = names.mac_address(op.machine_id, "vlan-gateway",
                                                    op.conf.gatewayDev)
    att["vlan_gateway_ready"] = not (op.command == "ADD" and att["gateways"]
                                     and op.conf.gatewayPeer) or _vlan_gateway_ready(op)
    att["stale_addresses"] = (_stale_addresses(op, att["gateways"])
                              if op.command == "ADD" and op.conf.isGateway else [])
    att["masq"] = common.masquerade(op, att["ips"]) if op.conf.ipMasq else []
    att["masq_nft"] = common.masquerade_nft(op, att["ips"]) if op.conf.ipMasq else {}
    att["ipam"] = ipam_att
    if op.conf.macspoofchk:
        att["spoofchk"] = names.spoofchk(op.runtime.container_id, op.runtime.ifname)
        if op.command == "DEL" and len(att["spoofchk"]["comment"]) > names.NFT_COMMENT_MAX:
            # No ADD made a check for this attachment (check_early refuses it, and so does
            # the reference's nft); its chain names may exceed what nft takes, which failed
            # the DEL that follows such an ADD, and every retry (found by an audit).
            att["spoofchk"] = {}
    return att


def result(op, att) -> dict:
    interfaces = [
        {"name": op.conf.bridge, "mac": op.read_sys(f"/sys/class/net/{op.conf.bridge}/address")
         or att["bridge_mac"]},
        {"name": att["host_veth"], "mac": att["host_mac"]},
        {"name": att["ifname"], "mac": att["container_mac"], "sandbox": att["netns"]},
    ]
    if op.conf.gatewayPeer and att["gateways"]:        # the VLAN's gateway link, as the reference
        dev = op.conf.gatewayDev
        interfaces.append({"name": dev, "mac": op.read_sys(f"/sys/class/net/{dev}/address")
                           or att["vlan_gateway_mac"]})
    return common.chain_result(op.prev_result, common.own_result(op, interfaces, 2))
