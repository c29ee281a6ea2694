"""What the interface plugins share: the per-container values in the shape
plans/container-ip.toml and the masquerade steps read (addresses, routes, IP families, the
masquerade chains), the veth attachment's names, building a result and passing a chain's
prevResult on (own_result, chain_result), and taking a plugin's own part of a cached result
for CHECK and DEL (own_part)."""

import os

from cnish import names
from cnish.config import netns_problem
from cnish.errors import CHECK_FAILED, INVALID_CONFIG, IPAM_FAILED, CNIError, invalid_config
from cnish.ipnet import IP, Prefix
from cnish.validate import hwaddr_problem, ifname_problem



def addresses(ips: list, noprefixroute: bool = False) -> list:
    """IPAM addresses ({"address": "10.0.0.2/24", "gateway"?}) -> att.ips entries."""
    out = []
    for entry in ips:
        prefix = Prefix.parse(entry["address"])
        out.append({"version": prefix.version, "address": str(prefix.ip), "cidr": str(prefix),
                    "subnet": str(prefix.subnet), "source": f"{prefix.ip}/{prefix.ip.bits}",
                    "gateway": entry.get("gateway"), "length": prefix.length,
                    "noprefixroute": noprefixroute,
                    # with its subnet's broadcast address (`brd +`, as the reference adds it)
                    "brd": prefix.version == 4 and prefix.length < 31})
    return out


def routes(ips: list, wanted: list) -> list:
    """Container routes; a route without gw goes via the first gateway of its family, as the
    reference's ConfigureIface does, unless its scope is link or host (a neighbour: spec
    1.1.0's `scope` 253 or 254, or ptp's own on-link route). Spec 1.1.0's `priority` (the
    metric), `table`, `mtu` and `advmss` are kept; 0 means unset for them. Duplicates (same
    destination, gateway and table) are dropped."""
    first_gw = {}
    for ip in ips:
        if ip["gateway"] and ip["version"] not in first_gw:
            first_gw[ip["version"]] = ip["gateway"]
    out, seen = [], set()
    for route in wanted:
        dst = Prefix.parse(route["dst"])
        version = dst.version
        scope = route.get("scope")
        onlink = (_scope(scope) or 0) >= 253
        via = route.get("gw") or (None if onlink else first_gw.get(version))
        table = route.get("table") or None
        table = None if table == 254 else table          # (254 is the main table)
        # (compared as the kernel does: "FD09::/64" is fd09::/64, the route twice "File exists")
        key = (str(dst), str(IP.parse(via)) if via else None, table)
        if key not in seen:
            seen.add(key)
            out.append({"version": version, "dst": route["dst"], "via": via,
                        "src": route.get("src"), "scope": scope, "table": table,
                        "metric": route.get("priority") or None,
                        "mtu": route.get("mtu") or None, "advmss": route.get("advmss") or None})
    return out


SCOPES = {"link": 253, "host": 254}
LOCAL_TABLE, DEFAULT_TABLE = 255, 253           # (main, 254, is None in att.routes)


def _scope(value) -> int | None:
    """A route's scope as a number: spec 1.1.0's integer, or ptp's "link"."""
    return SCOPES.get(value, 0) if isinstance(value, str) else value


def refuse_unreachable_next_hops(ips: list, routes: list) -> None:
    """Refuse, before anything changes, a route the kernel would refuse on the container's new
    link ("Nexthop has invalid gateway", "Gateway can not be a local address", ...): it
    refuses it only at the route step, after the host's shared steps (a bridge, its gateway
    address, forwarding), which ADD's rollback leaves in place (an audit's find). The
    kernel's checks, on the routes the link has when each one is added (its addresses' and
    the earlier ones'; two differential runs against the kernel found the cases below, which
    tests/kernel/test_route_check_vs_kernel.py asks of both):
    - IPv4: the gateway is looked up among the routes of a scope above the new route's
      (link at least), in the route's table, then the local, main and default tables: the
      link's own address is fine, a broadcast address is not (unless a route of the local
      table covers it), and otherwise a route must cover it, with or without a gateway of
      its own. A route of host scope takes no gateway; scope 255 is none a route can have.
    - IPv6: the gateway is not one of the link's own addresses; link-local is fine;
      otherwise a longest route covering it, in one of those tables, must have no gateway
      of its own (the metric picks among routes to one prefix). Scopes do not count.
    Where the kernel's choice depends on more than this, the route is let through."""
    local = {IP.parse(ip["address"]) for ip in ips}
    broadcast = {Prefix.parse(ip["subnet"]).last for ip in ips if ip["brd"]}
    known = _Routes()
    for ip in ips:
        if not ip["noprefixroute"]:
            known.add({"dst": Prefix.parse(ip["subnet"]), "scope": 253, "table": None,
                       "via": None})
    for route in routes:
        scope = _scope(route["scope"])
        via = IP.parse(route["via"]) if route["via"] is not None else None
        why = None
        if route["version"] == 4 and scope == 255:
            why = "scope 255 is no scope an IPv4 route can have"
        elif via is not None:
            why = _unreachable(via, route, scope, known, local, broadcast)
        if why:
            raise CNIError(INVALID_CONFIG, f"the container cannot route {route['dst']}"
                           + (f" via {via}" if via is not None else ""),
                           f"{why}; the kernel would refuse it half-way through ADD. Give the "
                           "route (or the address's \"gateway\") a next hop inside the "
                           "address's subnet, or none")
        known.add({"dst": Prefix.parse(route["dst"]), "table": route["table"], "via": via,
                   "scope": scope if scope is not None else 0 if via is not None else 253})


class _Routes:
    """The routes the link has so far, indexed for "the longest routes that cover an address":
    per family and table, per prefix length, per network. A lookup tries each prefix length
    present (at most 129) instead of every route, so checking a config's routes takes linear
    time: a scan of all earlier routes for each one took 44 s for 10,000 routes, while ADD
    held the IPAM store's lock that every ADD and DEL of the network waits for (an audit)."""

    def __init__(self):
        self._index = {}        # (version, table) -> {length: {network: [route, ...]}}
        self._on_link = {4: [], 6: []}

    def add(self, route: dict) -> None:
        dst = route["dst"]
        if route["via"] is None and route["table"] is None:
            self._on_link[dst.version].append(dst)
        lengths = self._index.setdefault((dst.version, route["table"]), {})
        lengths.setdefault(dst.length, {}).setdefault(
            dst.ip.value >> (dst.ip.bits - dst.length), []).append(route)

    def longest(self, gw, table, lowest: int) -> list:
        """The routes of `table` (None: main) covering `gw` with the longest prefix, among
        those of scope `lowest` or above (IPv4; IPv6 routes have no scope that counts)."""
        lengths = self._index.get((gw.version, table), {})
        for length in sorted(lengths, reverse=True):
            found = [r for r in lengths[length].get(gw.value >> (gw.bits - length), ())
                     if gw.version == 6 or r["scope"] >= lowest]
            if found:
                return found
        return []

    def on_link(self, version: int) -> list:
        """The main table's prefixes without a gateway, in order (for the error message)."""
        return self._on_link[version]


def _unreachable(gw, route: dict, scope, known: _Routes, local: set,
                 broadcast: set) -> str | None:
    """Why the kernel would refuse `route`'s gateway `gw` (refuse_unreachable_next_hops), or
    None. `known`: the routes the link has by then (dst, scope, table, via). Where the kernel's
    choice depends on more than this models (routes of the local and default tables, IPv6
    metrics), it errs towards letting the route through: the kernel then refuses it half-way,
    as before, but a route it takes is never refused."""
    v4 = gw.version == 4
    table = route["table"]
    lookups = list(dict.fromkeys((table, LOCAL_TABLE, None, DEFAULT_TABLE)))   # (None: main)

    def longest(where, lowest):
        return known.longest(gw, where, lowest)

    def outside() -> str:       # (built only for a refusal: the message names every prefix)
        prefixes = ", ".join(str(p) for p in known.on_link(gw.version))
        return (f"it lies outside the routes on this link that reach a next hop ({prefixes})"
                if prefixes else f"the container has no IPv{gw.version} prefix on this link")
    if v4:
        scope = scope or 0
        if scope >= 254:
            return "a route of host scope takes no gateway"
        lowest = max(scope + 1, 253)
        if gw in local:
            return None                 # (the local table's route to the link's own address)
        if gw in broadcast and lowest <= 253 and not longest(LOCAL_TABLE, lowest):
            return f"{gw} is the broadcast address of the container's subnet"
        if any(longest(where, lowest) for where in lookups):
            return None
        return (outside() if scope < 253 else
                "a route of link scope reaches only the link's own addresses and routes of "
                "host scope")
    if gw in local:
        return f"{gw} is the container's own address"
    if gw.link_local:
        return None                     # (always on the link)
    if any(r["via"] is None for where in lookups for r in longest(where, 0)):
        return None                     # (of routes to one prefix, the metric picks)
    found = longest(None, 0)
    if found:
        return f"the route that reaches it, {found[0]['dst']}, goes via {found[0]['via']} itself"
    return outside()


def veth_att(op) -> dict:
    """The values of a veth attachment (bridge, ptp): its identity, the host end's name and
    MAC, the container end's MAC, and the alias that labels the host end as cnish's."""
    net, cid, ifname = op.name, op.runtime.container_id, op.runtime.ifname
    return {"cid": cid, "ifname": ifname, "netns": op.runtime.netns,
            "host_veth": names.host_veth(net, cid, ifname),
            "host_mac": names.mac_address(op.machine_id, "host", net, cid, ifname),
            "container_mac": names.mac_address(op.machine_id, "container", net, cid, ifname),
            "alias": names.veth_label(net, cid, ifname)}


MASQ_BACKENDS = ("iptables", "nftables")


def masq_backend(f, op) -> str:
    """`ipMasqBackend` (bridge, ptp): "iptables" (chains in the nat table, plans/masquerade.toml)
    or "nftables" (rules in the reference's table inet cni_plugins_masquerade). Unset, as the
    reference: iptables, unless the host has no iptables but has nft. Resolved here, so the
    validated config (and the cached plan's key) holds the backend the plan uses."""
    backend = f.text("ipMasqBackend")
    if backend is not None and backend not in MASQ_BACKENDS:
        raise invalid_config("ipMasqBackend", backend, "must be \"iptables\" or \"nftables\"")
    if backend is None and f.obj.get("ipMasq") is True:
        backend = "iptables"
        if op.runner.which("iptables") is None and op.runner.which("nft") is not None:
            backend = "nftables"
            op.notes.append("ipMasqBackend is not set and this host has nft but no iptables: "
                            "masquerading uses nftables")
    return backend or "iptables"


def masq_tools(op) -> list:
    """What the masquerade steps run (STATUS checks that it is there)."""
    if not op.conf.ipMasq:
        return []
    if op.conf.ipMasqBackend == "nftables":
        return ["nft"]
    tools = ["iptables", "iptables-restore"]
    # (IPv6's tools too unless the config shows IPv4 only: without host-local's or static's
    # config, the addresses and their families are only known at ADD)
    if ipam_has_ipv6(op) or op.ipam_conf is None or op.ipam_conf.get("type") not in \
            ("host-local", "static"):
        tools += ["ip6tables", "ip6tables-restore"]
    return tools


def container(op, att: dict, ips: list, wanted_routes: list, link_step: str,
              ndisc_notify: bool = False, noprefixroute: bool = False, link_mtu: int = 0,
              ignore_ra: bool = False, keep_down: bool = False, dad: bool = False) -> dict:
    """Fill the fields plans/container-ip.toml reads. An ADD refuses routes the kernel would
    refuse and, with `link_mtu` (the MTU the plugin gives the link), IPv6 addresses on a link
    below IPv6's minimum (what a delegated IPAM hands out is only known now; check_early
    refused what the config shows). DEL and CHECK refuse neither: they only remove or read,
    and a DEL refused for a value it does not use would fail for good."""
    adding = op.command == "ADD"
    att["ips"] = addresses(ips, noprefixroute)
    att["v4"] = any(ip["version"] == 4 for ip in att["ips"])
    att["v6"] = any(ip["version"] == 6 for ip in att["ips"])
    if adding:
        refuse_mtu_below_ipv6_minimum(link_mtu, att["v6"])
    att["routes"] = routes(att["ips"], wanted_routes)
    if adding:
        refuse_unreachable_next_hops(att["ips"], att["routes"])
    att["link_step"] = link_step
    att["ndisc_notify"] = ndisc_notify
    att["ignore_ra"] = ignore_ra
    att["keep_down"] = keep_down        # the link stays down (bridge's disableContainerInterface)
    att["dad"] = dad                    # IPv6 duplicate address detection (bridge's enabledad)
    # The MTU the `container-up` step's check expects: CHECK's checked_mtu, never the config's
    # (an ADD or DEL plan shows no MTU there, since CHECK would not compare one)
    att["mtu"] = checked_mtu(op) if op.command == "CHECK" else 0
    return att


def refuse_mtu_below_ipv6_minimum(mtu: int, ipv6: bool) -> None:
    if mtu and mtu < 1280 and ipv6:
        raise invalid_config("mtu", mtu, "must be at least 1280 for IPv6 addresses")


def checked_mtu(op) -> int:
    """The MTU CHECK expects of the container's interface: the one prevResult records for it
    (spec 1.1's `mtu`), else none (0). Not the config's: the spec has CHECK tolerate what
    later plugins of the chain changed, and tuning may set another MTU (an audit found CHECK
    failing on every such chain; the reference's CHECK does not look at the MTU)."""
    return next((itf["mtu"] for _, itf in _listed(op.prev_result or {}, op.runtime.ifname, True)
                 if isinstance(itf.get("mtu"), int)), 0)


def require_free_ifname(op, left: str) -> None:
    """ADD of a link that is moved into the container (host-device, and macvlan, ipvlan, vlan
    made in the host): CNI_IFNAME must be free there, checked first (a fact: one `ip` in the
    container). The kernel moves a link before it finds the name taken, and leaves it in the
    container under its old name, where no rollback or DEL looks for it."""
    taken = op.fact("container-link")
    if taken is not None and taken.returncode == 0:
        raise CNIError(INVALID_CONFIG, f"the container already has an interface named "
                       f"{op.runtime.ifname}", left)


def masquerade(op, ips: list) -> list:
    """The masquerade chain per IP family, named and commented like the reference's (the
    iptables backend). With the nftables backend none, but for DEL the families whose chain
    is there (an ADD made before the config switched backends: plans/masquerade.toml)."""
    iptables = op.conf.ipMasqBackend == "iptables"
    if not iptables and op.command != "DEL":
        return []
    chain = names.masq_chain(op.name, op.runtime.container_id)
    comment = names.masq_comment(op.name, op.runtime.container_id)
    families = []
    for version in (4, 6):
        mine = [ip for ip in ips if ip["version"] == version]
        if mine and not iptables:
            tool = "iptables" if version == 4 else "ip6tables"
            found = op.fact(f"masq-chain-v{version}", chain=chain) \
                if op.runner.which(tool) else None
            mine = mine if found is not None and found.returncode == 0 else []
        if mine:
            families.append({"version": version, "chain": chain, "comment": comment,
                             "subnets": list(dict.fromkeys(ip["subnet"] for ip in mine)),
                             "sources": list(dict.fromkeys(ip["source"] for ip in mine))})
    return families


def masquerade_nft(op, ips: list) -> dict:
    """The nftables backend's rules: one per address, masquerading what it sends outside its
    subnet, all carrying the attachment's comment (the reference's layout). DEL gets the
    comment with either backend (it removes both backends' rules: plans/masquerade.toml)."""
    if op.conf.ipMasqBackend != "nftables" and op.command != "DEL":
        return {"comment": "", "rules": []}
    rules = [{"version": ip["version"], "source": ip["address"], "subnet": ip["subnet"]}
             for ip in ips]
    return {"comment": names.masq_nft_comment(op.name, op.runtime.container_id,
                                              op.runtime.ifname),
            "rules": list({tuple(r.values()): r for r in rules}.values())}


def own_part(op, prev: dict) -> dict:
    """This plugin's part of a cached result (CHECK, DEL). In a chain the result also holds
    other plugins' entries: those of plugins before this one come first (chain_result), and
    plugins after it may append more (bandwidth appends its ifb). What is ours: the container
    interface named CNI_IFNAME (with a sandbox, the one in CNI_NETNS first), the addresses
    whose `interface` index points at it (or that have no index), the routes that do not go
    through another interface's gateway, and the interface listed just before the container
    interface (bridge, ptp: the host end of the veth; both plugins list it there)."""
    from cnish.ipnet import IP
    ifname, netns = op.runtime.ifname, op.runtime.netns
    interfaces = [i if isinstance(i, dict) else {} for i in prev.get("interfaces") or []]
    named = [k for k, itf in enumerate(interfaces) if itf.get("name") == ifname]
    sandboxed = [k for k in named if interfaces[k].get("sandbox")]
    exact = [k for k in sandboxed if interfaces[k].get("sandbox") == netns]
    if op.command == "CHECK":
        exact = exact or [k for k in sandboxed if _same_file(interfaces[k]["sandbox"], netns)]
        _check_listed(ifname, netns, named, sandboxed and not exact and interfaces[sandboxed[-1]])
    index = (exact or sandboxed or named or [None])[-1]
    ips = [ip for ip in prev.get("ips") or []
           if index is None or ip.get("interface", index) == index]
    subnets, gateways = [], set()
    for ip in ips:          # (results.parse made every address a prefix)
        subnets.append(Prefix.parse(ip["address"]).subnet)
        gateways.add(ip.get("gateway"))

    # A route without a gateway names no interface: it is ours when our IPAM config lists its
    # destination (we installed it through our gateway); another plugin's otherwise, for
    # one of cnish's IPAM plugins, whose routes are known (an earlier plugin's passed on, or
    # a later one's direct route: CHECK would look for it through our gateway and fail).
    ipam_type = op.ipam_conf.get("type") if op.ipam_conf is not None else None
    listed = {_dst(r.get("dst")) for r in op.ipam_conf.get("routes") or []} \
        if ipam_type in ("host-local", "static") else None

    def through_us(route: dict) -> bool:
        gw = route.get("gw")
        if not gw:
            return listed is None or _dst(route.get("dst")) in listed
        if gw in gateways:
            return True
        try:
            return any(subnet.contains(IP.parse(gw)) for subnet in subnets)
        except ValueError:
            return True
    routes = [r for r in prev.get("routes") or [] if isinstance(r, dict) and through_us(r)]
    before = interfaces[index - 1] if index else {}
    host_side = before.get("name") if not before.get("sandbox") else None
    if host_side is not None and op.command == "CHECK":
        # (results.parse passes every interface on unchecked; CHECK looks this one up by name)
        _check_prev_field(f"interfaces[{index - 1}].name", host_side, ifname_problem,
                          "an interface name ")
    return {"ips": ips, "routes": routes, "host_side": host_side}


def _dst(text):
    """A route destination in one spelling (fd00:0::/64 is fd00::/64)."""
    try:
        return str(Prefix.parse(text))
    except ValueError:
        return text


def _check_listed(ifname: str, netns, named: list, elsewhere) -> None:
    """CHECK compares the attachment with the result of its ADD, which lists the container's
    interface in the container's namespace (the reference's checks, too)."""
    if not named:
        raise invalid_config("prevResult.interfaces", "...", f"lists no interface named {ifname} "
                             "(CNI_IFNAME): CHECK needs the result of this attachment's ADD")
    if elsewhere:
        raise CNIError(CHECK_FAILED, f"prevResult puts {ifname} into {elsewhere['sandbox']}, "
                       f"not into CNI_NETNS {netns}",
                       "CHECK needs the result of this attachment's ADD")


def _same_file(a: str, b) -> bool:
    """Two paths of one namespace (/var/run/netns/x and /run/netns/x, /proc/PID/ns/net)?"""
    try:
        one, other = os.stat(a), os.stat(b)
    except (OSError, TypeError, ValueError):
        return False
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino)


def _check_prev_field(where: str, value, problem_of, what: str = "") -> None:
    """A value of prevResult that cnish is about to use in a command (code 7 naming it)."""
    problem = problem_of(value) if isinstance(value, str) else "must be a string"
    if problem:
        raise invalid_config(f"prevResult.{where}", value, what + problem)


def ips_for_del(op, held: list, netns: str | None = None) -> list:
    """The attachment's addresses at DEL: prevResult's (ours in it), plus those IPAM still
    gives it (what host-local's store holds, static's configured addresses). Knowing none,
    with ipMasq, those of CNI_IFNAME in the container's live namespace `netns`, as the
    reference learns them: its masquerade jumps name them (the reservation may be gone, the
    store wiped by hand). A jump names this attachment's chain, so an address of another
    network's interface of that name removes nothing."""
    from cnish.ipnet import IP
    prev_ips = own_part(op, op.prev_result)["ips"] if op.prev_result else []
    known = {Prefix.parse(i["address"]).ip for i in prev_ips}
    ips = list(prev_ips)
    if not prev_ips and not held and netns and getattr(op.conf, "ipMasq", False):
        held = _global_addresses(op.fact("container-addresses", netns=netns))
    for text in held:
        try:
            ip = IP.parse(text)
        except ValueError:
            continue
        if ip not in known:
            known.add(ip)
            ips.append({"address": f"{ip}/{ip.bits}"})
    if not ips and op.dry_run and getattr(op.conf, "ipMasq", False) \
            and op.conf.ipMasqBackend == "iptables":       # (nftables: found by comment)
        op.notes.append("no address of this attachment is known now (no prevResult, no "
                        "reservation, none on the container's interface): this plan removes "
                        "no masquerade jump of an address; print it after the ADD, or let "
                        "cnish del find them then")
    return ips


ADDRESSES_READ_MAX = 8     # per family: the oldest, ADD's; a container may have added more


def _global_addresses(found) -> list:
    """The global addresses (no link-local, loopback or host ones) an `ip -j addr show dev`
    fact lists, the oldest ADDRESSES_READ_MAX of each family: the kernel lists IPv4 ones in
    the order they came (primaries first) and IPv6 ones newest first, and ADD's came first; a
    container that can add thousands must not make DEL as many steps. None of them (an empty
    list) when the fact failed (the interface is gone) or printed something else."""
    from cnish import jsonfast
    if found is None or found.returncode != 0:
        return []
    try:
        links = jsonfast.loads(found.stdout or "[]")
    except ValueError:
        return []
    listed = {"inet": [], "inet6": []}
    for link in links if isinstance(links, list) else []:
        for a in (link.get("addr_info") or []) if isinstance(link, dict) else []:
            if isinstance(a, dict) and a.get("family") in listed \
                    and a.get("scope") == "global" and isinstance(a.get("local"), str):
                listed[a["family"]].append(a["local"])
    return listed["inet"][:ADDRESSES_READ_MAX] + listed["inet6"][-ADDRESSES_READ_MAX:]


# -- what ADD, CHECK and DEL of every interface plugin share ---------------------------------------

def require_ips(op, ipam_result: dict) -> None:
    """ADD: an IPAM plugin that answered without addresses is an error (the reference's words)."""
    if op.ipam_module is not None and not ipam_result.get("ips"):
        raise CNIError(IPAM_FAILED, "IPAM plugin returned missing IP config")


def prev_for_check(op) -> dict:
    """CHECK compares the host with the result of ADD: without it there is nothing to check."""
    if op.prev_result is None:
        raise CNIError(INVALID_CONFIG, "prevResult is required for CHECK",
                       "the runtime must pass the result of ADD as prevResult")
    return op.prev_result


def container_mac(prev: dict, ifname: str) -> str | None:
    """The MAC that prevResult records for the container's interface (one listed with a
    sandbox: an earlier plugin of the chain may list a host interface of the same name)."""
    return _recorded_mac(prev, ifname, in_container=True)


def host_mac(prev: dict, name: str) -> str | None:
    """The MAC that prevResult records for a host interface (one listed without a sandbox:
    a container's interface may share the name)."""
    return _recorded_mac(prev, name, in_container=False)


def lists_container_interface(prev: dict | None, ifname: str) -> bool:
    """Does prevResult list the container's interface `ifname` (with a sandbox)?"""
    return any(_listed(prev or {}, ifname, in_container=True))


def _listed(prev: dict, name: str, in_container: bool):
    """(index, entry) of prevResult's interfaces named `name`, in the container (listed with
    a sandbox) or in the host (without one)."""
    for k, itf in enumerate(prev.get("interfaces") or []):
        if isinstance(itf, dict) and itf.get("name") == name \
                and bool(itf.get("sandbox")) == in_container:
            yield k, itf


def _recorded_mac(prev: dict, name: str, in_container: bool) -> str | None:
    for k, itf in _listed(prev, name, in_container):
        if itf.get("mac"):
            _check_prev_field(f"interfaces[{k}].mac", itf["mac"], hwaddr_problem)
            return itf["mac"].lower()
    return None


def live_netns(netns: str | None, ifname: str | None = None) -> str | None:
    """DEL: the container's namespace, or None when it is gone or not a namespace any more
    (then there is nothing to enter, and DEL cleans up what lies outside it). Also None for
    `ifname` lo: the container's loopback device is never another plugin's interface (an ADD
    under that name is refused), and it cannot be deleted, so the runtime's DELs after such
    an ADD would fail for ever."""
    return netns if netns and netns_problem(netns) is None and ifname != "lo" else None


def own_result(op, interfaces: list, container_index: int) -> dict:
    """This plugin's part of the result: its interfaces, the IPAM addresses on the container's
    interface (at `container_index`), IPAM's routes, and the config's DNS over IPAM's."""
    ipam = op.ipam_result or {}
    return {"interfaces": interfaces,
            "ips": result_ips(ipam.get("ips", []), container_index),
            "routes": ipam.get("routes", []),
            "dns": op.dns if op.dns else ipam.get("dns", {})}


def chain_result(prev: dict | None, mine: dict) -> dict:
    """Chained after another plugin (prevResult on ADD), the spec wants prevResult passed on:
    its interfaces, addresses and routes come first, ours follow with re-based interface
    indexes; our DNS wins when we have one."""
    if not prev:
        return mine
    offset = len(prev.get("interfaces", []))
    ips = [dict(ip, interface=ip["interface"] + offset) if "interface" in ip else dict(ip)
           for ip in mine["ips"]]
    return {"interfaces": prev.get("interfaces", []) + mine["interfaces"],
            "ips": prev.get("ips", []) + ips,
            "routes": prev.get("routes", []) + mine["routes"],
            "dns": mine["dns"] or prev.get("dns", {})}


def result_ips(ipam_ips: list, interface: int) -> list:
    out = []
    for entry in ipam_ips:
        ip = {"address": entry["address"]}
        if entry.get("gateway"):
            ip["gateway"] = entry["gateway"]
        ip["interface"] = interface
        out.append(ip)
    return out


def ipam_has_ipv6(op) -> bool:
    """Will IPAM hand out IPv6 addresses? (As far as its config says: host-local ranges,
    static addresses; a delegated plugin's answer is only known after its ADD.)"""
    conf = op.ipam_conf
    if conf is None:
        return False
    for ranges in conf.get("sets") or []:
        if ranges and ranges[0].subnet.version == 6:
            return True
    return any(":" in a["address"] for a in conf.get("addresses") or [])


def check_early(op) -> None:
    """Refusals that need no host state, made before IPAM takes the store's lock (whose file
    the first use creates): an MTU too small for IPv6."""
    refuse_mtu_below_ipv6_minimum(op.conf.get("mtu"), ipam_has_ipv6(op))
