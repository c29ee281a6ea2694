"""macvlan, ipvlan, vlan and dummy: one link, created for the container, on top of a master
link of the host (or of the container, with linkInContainer) — dummy has no master.

Config keys and semantics are the reference plugins' (containernetworking/plugins,
plugins/main/macvlan, ipvlan, vlan, dummy); this module holds what the four share. macvlan's,
ipvlan's and vlan's link is made in the host under a temporary name and moved into the
container under its own (plans/macvlan.toml says why);
dummy's is made inside the container. Where the reference fails DEL because the master or
the device is gone, or when DEL is repeated, cnish succeeds: DEL never looks at the master.
"""

from cnish import kernel, names
from cnish.config import Fields, requested_mac
from cnish.errors import CHECK_FAILED, INVALID_CONFIG, CNIError, invalid_config
from cnish.plugins import common
from cnish.validate import ifname_problem

MODES = {"macvlan": ("bridge", "private", "vepa", "passthru"), "ipvlan": ("l2", "l3", "l3s")}
DEFAULT_MODE = {"macvlan": "bridge", "ipvlan": "l2"}


RTF_UP, RTF_REJECT = 0x0001, 0x0200      # (linux/route.h)
PROC_NET = "/proc/net"


def default_route_device() -> str | None:
    """The device of the host's first default route that leads somewhere: IPv4's
    (/proc/net/route), then IPv6's (/proc/net/ipv6_route), as the current reference looks
    (Debian's 1.1.1 only looked at IPv4). A route with no device, such as `unreachable
    default`, is passed over (the reference fails on it)."""
    def rows(name):
        try:
            with open(f"{PROC_NET}/{name}") as f:
                return [line.split() for line in f.read().splitlines()]
        except OSError:
            return []
    for fields in rows("route")[1:]:      # Iface Destination Gateway Flags ... Mask ...
        if len(fields) > 7 and fields[1] == "00000000" and fields[7] == "00000000" \
                and _leads_somewhere(int(fields[3], 16), fields[0]):
            return fields[0]
    for fields in rows("ipv6_route"):     # dst dst_len src src_len next_hop metric ... flags dev
        if len(fields) == 10 and fields[0] == "0" * 32 and fields[1] == "00" \
                and _leads_somewhere(int(fields[8], 16), fields[9]):
            return fields[9]
    return None


def _leads_somewhere(flags: int, device: str) -> bool:
    # (IPv4 lists a route without a device as "*"; IPv6 puts its unreachable routes on "lo")
    return bool(flags & RTF_UP) and not flags & RTF_REJECT and device not in ("*", "lo")


def container_default_route_device(op) -> str | None:
    """The same for the container's namespace (linkInContainer), read with `ip -j` there."""
    from cnish import jsonfast
    for family in ("4", "6"):
        found = op.fact(f"container-default-routes-{family}")
        if found is None or found.returncode != 0:
            continue
        try:
            routes = jsonfast.loads(found.stdout or "[]")
        except ValueError:
            continue
        for route in routes if isinstance(routes, list) else []:
            if isinstance(route, dict) and route.get("type", "unicast") == "unicast" \
                    and isinstance(route.get("dev"), str) and route["dev"] != "lo":
                return route["dev"]
    return None


def parse(f, op, kind: str) -> dict:
    # "" is Go's zero value: the reference reads an empty master or mode as not set (the
    # default-route interface, the default mode), and templated configs render them so
    blank = {key for key in ("master", "mode") if f.obj.get(key) == ""}
    if blank:
        f = Fields({k: v for k, v in f.obj.items() if k not in blank}, f.where)
    conf = {"kind": kind, "mtu": f.integer("mtu", 0, 0, 65535),
            "linkInContainer": f.flag("linkInContainer")}
    if kind != "dummy":
        conf["master"] = f.ifname("master")
    if kind in MODES:
        conf["mode"] = f.choice("mode", DEFAULT_MODE[kind], MODES[kind])
    if kind == "macvlan":
        conf["mac"] = f.mac("mac")
        # the length of the queue the master's broadcast and multicast frames wait in for the
        # macvlans (the kernel keeps the largest any macvlan of the master asks for); 0: the
        # kernel's default (1000)
        conf["bcqueuelen"] = f.integer("bcqueuelen", 0, 0, 2 ** 32 - 1)
    if kind == "vlan" and op.command not in ("DEL", "GC"):     # (which never read them)
        if conf["master"] is None:
            raise invalid_config("master", None, "is required: the link the VLAN sits on")
        if not f.has("vlanId"):
            raise invalid_config("vlanId", None, "is required (0-4094)")
        conf["vlanId"] = f.integer("vlanId", 0, 0, 4094)
    if conf["mtu"] and conf["mtu"] < 68:
        raise invalid_config("mtu", conf["mtu"], "must be 0 (the master's) or at least 68")
    ipam = f.obj.get("ipam")
    has_ipam = isinstance(ipam, dict) and bool(ipam.get("type"))
    if kind in ("vlan", "dummy") and not has_ipam and op.command not in ("DEL", "GC"):
        raise invalid_config("ipam", ipam, f"{kind} needs an IPAM configuration with a type")
    if kind == "ipvlan" and op.command == "ADD" and not op.prev_result and not has_ipam:
        # (as the reference: an ipvlan link hands packets to its links by their addresses, so
        # one without any receives nothing; chained, it takes prevResult's)
        raise invalid_config("ipam", ipam, "ipvlan needs an IPAM configuration with a type, "
                             "or a prevResult with the addresses (chained)")
    return conf


def _master(op) -> str:
    master = op.conf.master
    if master is None and op.conf.kind == "ipvlan" and op.prev_result:
        names_ = [i.get("name") for i in op.prev_result.get("interfaces", [])]
        if len(names_) != 1 or not names_[0]:
            raise CNIError(INVALID_CONFIG, "chained master failure: prevResult lacks a single "
                           "named interface", "give \"master\" or chain after exactly one interface")
        master = names_[0]
        problem = ifname_problem(master)          # (prevResult's names are not checked on entry)
        if problem:
            raise invalid_config("prevResult.interfaces[0].name", master,
                                 "an interface name " + problem)
    if master is None:
        if not op.conf.linkInContainer:
            master = default_route_device()
        elif op.runtime.netns:
            master = container_default_route_device(op)
        problem = ifname_problem(master) if master is not None else None
        if problem:                         # (the container's to choose)
            raise invalid_config("master", master, "the default route's device, an "
                                 "interface name " + problem)
        if master is None:
            raise invalid_config("master", None, "is not set and there is no default route "
                                 "to take it from" + (" in the container's namespace"
                                                      if op.conf.linkInContainer else ""))
    return master


def _no_master(master: str, code: int = INVALID_CONFIG) -> CNIError:
    return CNIError(code, f"master {master} not found",
                    f"no link named {master} in the host's namespace")


def _check_master(op, master: str) -> str | None:
    """The master must exist (and carry the MTU) before anything changes; returns its MAC."""
    if op.conf.linkInContainer:
        found = op.fact("container-master", master=master)
        if found is None or found.returncode != 0:
            raise CNIError(INVALID_CONFIG, f"master {master} not found in the container's "
                           f"namespace {op.runtime.netns}", (found.stderr if found else "").strip())
        from cnish import jsonfast
        info = (jsonfast.loads(found.stdout or "[{}]") or [{}])[0]
        mtu, mac = info.get("mtu", 0), info.get("address")
        up = "UP" in info.get("flags", ["UP"])
        loopback = "LOOPBACK" in info.get("flags", [])
    else:
        mac = op.read_sys(f"/sys/class/net/{master}/address")
        if mac is None:
            raise _no_master(master)
        mtu = int(op.read_sys(f"/sys/class/net/{master}/mtu") or 0)
        flags = int(op.read_sys(f"/sys/class/net/{master}/flags") or "0x1", 16)
        up, loopback = flags & 0x1, flags & 0x8                   # IFF_UP, IFF_LOOPBACK
    if loopback:         # (the kernel refuses a macvlan, ipvlan or VLAN on it, half-way)
        raise invalid_config("master", master, "is a loopback interface, which cannot carry "
                             f"a {op.conf.kind} link")
    if op.conf.mtu and mtu and op.conf.mtu > mtu:
        raise invalid_config("mtu", op.conf.mtu, f"must be at most the master's MTU ({mtu})")
    if op.conf.kind == "vlan" and not up:
        # the kernel refuses to bring a VLAN up on a lower link that is down (ENETDOWN):
        # say so before anything changes rather than fail and roll back at "link up"
        raise CNIError(INVALID_CONFIG, f"master {master} is down",
                       f"a VLAN link cannot come up on it; bring it up first "
                       f"(ip link set dev {master} up)")
    return mac


def prepare(op) -> dict:
    kind = op.conf.kind
    net, cid, ifname = op.name, op.runtime.container_id, op.runtime.ifname
    if op.command == "GC":
        return {"ipam": op.ipam_gc()}            # (the valid attachments, checked by Operation)
    att = {"cid": cid, "ifname": ifname, "netns": op.runtime.netns, "master": None, "mac": None,
           "container_mac": names.mac_address(op.machine_id, "container", net, cid, ifname),
           "tmp": names.sublink_temp(net, cid, ifname),     # (its name in the host, at first)
           "label": names.link_label(net, cid, ifname),     # (its alias: DEL tells it by that)
           "kind": kind,
           "master_ifindex": None}
    if op.command == "ADD":
        kernel.require(op, kind)
        if kind != "dummy":
            att["master"] = _master(op)
            master_mac = _check_master(op, att["master"])
            if not op.conf.linkInContainer:      # (made in the host, then moved: hostdevice.py)
                common.require_free_ifname(op, f"no {kind} link was made")
        if kind in ("macvlan", "dummy"):
            mac, _ = requested_mac(op.raw, op.runtime.args)
            mac = mac or op.conf.get("mac")
            if kind == "macvlan" and op.conf.mode == "passthru":
                att["container_mac"] = master_mac        # passthru keeps the master's address
            else:
                att["mac"] = att["container_mac"] = mac or att["container_mac"]
        else:
            att["container_mac"] = master_mac            # ipvlan and vlan use the master's
        ipam_att, ipam_result = op.ipam_add()
        if kind == "ipvlan" and op.ipam_module is None and op.prev_result:
            ipam_result = {"ips": [{k: v for k, v in ip.items() if k != "interface"}
                                   for ip in op.prev_result.get("ips", [])],
                           "routes": op.prev_result.get("routes", []), "dns": {}}
        common.require_ips(op, ipam_result)
        op.ipam_result = ipam_result
        ips, routes = ipam_result.get("ips", []), ipam_result.get("routes", [])
    elif op.command == "CHECK":
        prev = common.prev_for_check(op)
        att["container_mac"] = (common.container_mac(prev, ifname)
                                or att["container_mac"])
        att["master"] = op.conf.get("master") or ""
        att["mac"] = att["container_mac"]
        if att["master"] and not op.conf.linkInContainer:     # (dummy has no master)
            # the link must still hang off the configured master (the reference's CHECK fails
            # when the master is gone or renamed; the link's line names its ifindex)
            index = op.read_sys(f"/sys/class/net/{att['master']}/ifindex")
            if index is None:
                raise _no_master(att["master"], CHECK_FAILED)
            att["master_ifindex"] = index
        mine = common.own_part(op, prev)
        ips, routes = mine["ips"], mine["routes"]
        ipam_att = op.ipam_check(ips)
    else:  # DEL: never looks at the master, so it works when the master is gone
        att["netns"] = common.live_netns(att["netns"], op.runtime.ifname)
        ipam_att, held = op.ipam_del()
        ips, routes = common.ips_for_del(op, held), []
    common.container(op, att, ips, routes,
                     link_step=("link-in-container" if op.conf.linkInContainer
                                else "link" if kind == "dummy" else "move"),
                     ndisc_notify=kind in ("macvlan", "ipvlan"), link_mtu=op.conf.mtu)
    att["ipam"] = ipam_att
    return att


def result(op, att) -> dict:
    interfaces = [{"name": att["ifname"], "mac": att["container_mac"], "sandbox": att["netns"]}]
    mine = common.own_result(op, interfaces, 0)
    if op.conf.kind == "ipvlan" and op.prev_result:
        return mine            # ipvlan replaces its master's interface in a chain (reference)
    return common.chain_result(op.prev_result, mine)


def tools(op) -> list:
    return ["ip", "nsenter", "sysctl", "unshare"]


def status(op) -> None:
    """What ADD would refuse (engine.status makes it code 50): the kernel lacks the link kind,
    or the master is not there (the reference's STATUS does not look; its source says
    "TODO")."""
    from cnish.errors import KERNEL_LACKS
    reason = kernel.problem(op, op.conf.kind)
    if reason:
        raise CNIError(KERNEL_LACKS, reason)
    if op.conf.kind == "dummy" or op.conf.linkInContainer:
        return                     # (no master, or one in a container STATUS does not name)
    master = _master(op)
    if op.read_sys(f"/sys/class/net/{master}/ifindex") is None:
        raise _no_master(master)


class LinkPlugin:
    """One of the four as the engine sees a plugin (plugins/__init__.py): its type and the
    functions above, which read the kind from the validated config."""

    KIND = "interface"
    # keys DEL and GC never read, whose bad values they take no notice of (engine.py): a
    # network whose master or VLAN id cnish would refuse can still be deleted (the
    # reference's vlan, for one, took a missing vlanId as 0)
    DEL_TOLERATES = ("mtu", "mode", "mac", "bcqueuelen", "master", "vlanId")

    def __init__(self, kind: str, cni_args: frozenset):
        self.TYPE = kind
        self.CNI_ARGS = cni_args

    def parse(self, fields, op) -> dict:
        return parse(fields, op, self.TYPE)

    prepare = staticmethod(prepare)
    check_early = staticmethod(common.check_early)     # (an MTU too small for IPv6)
    result = staticmethod(result)
    tools = staticmethod(tools)
    status = staticmethod(status)


# CNI_ARGS MAC= sets the link's MAC for macvlan and dummy (the reference's keys).
MACVLAN = LinkPlugin("macvlan", frozenset({"MAC"}))
IPVLAN = LinkPlugin("ipvlan", frozenset())
VLAN = LinkPlugin("vlan", frozenset())
DUMMY = LinkPlugin("dummy", frozenset({"MAC"}))
