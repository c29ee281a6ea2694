"""A few sysctl values read through rtnetlink instead of /proc/sys, and what a link is.

Why: every network namespace that has looked up /proc/sys/net/ipv4 or .../ipv6 leaves a
dentry of that name under the one /proc/sys/net dentry of the machine's procfs, all in one
hash chain, and a lookup walks the chain comparing (proc_sys_compare). With a thousand
containers on a node, each lookup from the host (whose entries are the oldest, at the end)
and each first lookup in a new container costs about a millisecond (README, "Where the time
goes"); a bridge ADD made four. The same kernel values are a netlink request away, at a
constant ≈ 0.1 ms:

- read `net/ipv4/ip_forward` and `net/ipv{4,6}/conf/all/forwarding`: RTM_GETNETCONF for
  "all" (ip_forward *is* ipv4's all/forwarding);
- read `net/ipv{4,6}/conf/DEV/KEY`: RTM_GETLINK for DEV, whose reply carries the device's
  whole IPv4 and IPv6 configuration (IFLA_AF_SPEC: IFLA_INET_CONF, IFLA_INET6_CONF).

Nothing is written this way. IPv6 settings have no netlink setter, and an IPv4 one
(RTM_NEWLINK with IFLA_INET_CONF) is not quite a /proc write: on a link that is up it is a
link change (a link event, neighbour entries flushed, MLD reports sent again), and the kernel
parses /proc values in base 0 ("010" is 8). So the container's own settings (arp_notify,
accept_dad, accept_ra) keep their /proc/sys lookup, ≈ 1 ms per family at 1000 containers.

Plans and the dry-run script still say `grep -qxF 1 /proc/sys/...`; natives.py asks here
first and reads /proc/sys for anything this module does not answer (None): another key, a
missing device, a link found only under an alternative name, a kernel without IPv6. The
fallback then produces exactly grep's outcome.

`link()` answers DEL's question whether a container's interface is its attachment's
(natives.py, cnish-foreign-veth and cnish-foreign-link): its kind, alias, peer's ifindex and
master, which /sys cannot show for a namespace this process has not mounted sysfs in.

A socket is opened per request: it belongs to the network namespace of the thread that opens
it, and the runner enters containers' namespaces (netns.py). Standard library only: _socket
(already loaded on the CNI path), no struct.
"""

import sys
from _socket import AF_INET, AF_INET6, AF_NETLINK, SOCK_CLOEXEC, SOCK_RAW, socket

ORDER = sys.byteorder           # netlink headers and values are in the host's byte order

NETLINK_ROUTE, NETLINK_NETFILTER = 0, 12
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
RTM_GETLINK, RTM_NEWLINK, RTM_GETNETCONF = 18, 16, 82
IFLA_IFNAME, IFLA_LINK, IFLA_MASTER, IFLA_LINKINFO, IFLA_IFALIAS = 3, 5, 10, 18, 20
IFLA_AF_SPEC, IFLA_LINK_NETNSID = 26, 37
IFLA_INFO_KIND = 1
ENODEV = 19
IFLA_INET_CONF, IFLA_INET6_CONF = 1, 2
NETCONFA_IFINDEX, NETCONFA_FORWARDING = 1, 2
NETCONFA_IFINDEX_ALL = -1

# Positions in the kernel's configuration arrays (uapi linux/ip.h IPV4_DEVCONF_*, 1-based;
# linux/ipv6.h DEVCONF_*, 0-based): the keys plans probe (forwarding, accept_ra) and the
# container settings plans set, so that a probe of any of those is answered here too.
IPV4_KEYS = {"forwarding": 1, "arp_notify": 22}
IPV6_KEYS = {"forwarding": 0, "accept_ra": 3, "dad_transmits": 6, "disable_ipv6": 26,
             "accept_dad": 27, "ndisc_notify": 29}

_FAMILIES = {"ipv4": AF_INET, "ipv6": AF_INET6}


def _u16(n: int) -> bytes:
    return n.to_bytes(2, ORDER)


def _i32(n: int) -> bytes:
    return n.to_bytes(4, ORDER, signed=True)


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return _u16(length) + _u16(kind) + payload + b"\0" * (-length % 4)


def _attrs(data: bytes):
    """(type, payload) of the netlink attributes in `data`."""
    i = 0
    while i + 4 <= len(data):
        length = int.from_bytes(data[i:i + 2], ORDER)
        if length < 4:
            return
        yield int.from_bytes(data[i + 2:i + 4], ORDER) & 0x3fff, data[i + 4:i + length]
        i += (length + 3) & ~3


def _name(ifname: str) -> bytes:
    """A link name's bytes as the file system gives them (a name need not be UTF-8)."""
    return ifname.encode("utf-8", "surrogateescape")


def _ifinfo(ifname: str | None, index: int = 0) -> bytes:
    """An ifinfomsg for `ifname` (index 0: the kernel looks the name up), or for `index`."""
    body = bytes(4) + _i32(index) + bytes(8)
    return body + _attr(IFLA_IFNAME, _name(ifname) + b"\0") if ifname is not None else body


def _exchange(kind: int, body: bytes, protocol: int = NETLINK_ROUTE):
    """One request: (type, payload) of the reply's first message; None on any error."""
    header_len = 16
    message = (_i32(header_len + len(body)) + _u16(kind) + _u16(NLM_F_REQUEST)
               + _i32(1) + _i32(0) + body)
    try:
        sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol)
    except OSError:
        return None
    try:
        sock.send(message)
        reply = sock.recv(65536)
    except OSError:
        return None
    finally:
        sock.close()
    if len(reply) < header_len:
        return None
    length = int.from_bytes(reply[:4], ORDER)
    return int.from_bytes(reply[4:6], ORDER), reply[header_len:length]


def _request(kind: int, body: bytes) -> bytes | None:
    """One rtnetlink request, its reply's payload; None on any error."""
    reply = _exchange(kind, body)
    if reply is None or reply[0] == NLMSG_ERROR:
        return None
    return reply[1]


def _forwarding(family: int) -> int | None:
    body = bytes([family, 0, 0, 0]) + _attr(NETCONFA_IFINDEX, _i32(NETCONFA_IFINDEX_ALL))
    reply = _request(RTM_GETNETCONF, body)
    for kind, value in _attrs(reply[4:] if reply else b""):
        if kind == NETCONFA_FORWARDING and len(value) == 4:
            return int.from_bytes(value, ORDER, signed=True)
    return None


def _device_conf(ifname: str, family: int) -> bytes | None:
    """The device's configuration array for `family` (IFLA_INET_CONF / IFLA_INET6_CONF).
    None for a device found under an alternative name: /proc/sys has no entry for those."""
    reply = _request(RTM_GETLINK, _ifinfo(ifname))
    wanted = IFLA_INET_CONF if family == AF_INET else IFLA_INET6_CONF
    found, name = None, None
    for kind, value in _attrs(reply[16:] if reply else b""):
        if kind == IFLA_IFNAME:
            name = value.rstrip(b"\0")
        elif kind == IFLA_AF_SPEC:
            for fam, conf in _attrs(value):
                if fam == family:
                    for sub, array in _attrs(conf):
                        if sub == wanted:
                            found = array
    return found if name == _name(ifname) else None


def _parse(key: str):
    """(family, device, name) for net/ipv{4,6}/conf/DEV/NAME; None otherwise."""
    parts = key.split("/")
    if len(parts) == 5 and parts[0] == "net" and parts[1] in _FAMILIES and parts[2] == "conf" \
            and parts[3] not in ("", ".", "..", "default"):
        return _FAMILIES[parts[1]], parts[3], parts[4]
    return None


def read(key: str) -> str | None:
    """The value of sysctl `key` (slash form, as under /proc/sys) as /proc prints it, or None
    when this module does not answer for that key (the caller reads /proc/sys)."""
    if key == "net/ipv4/ip_forward":
        key = "net/ipv4/conf/all/forwarding"
    parsed = _parse(key)
    if parsed is None:
        return None
    family, device, name = parsed
    if device == "all":
        value = _forwarding(family) if name == "forwarding" else None
        return None if value is None else str(value)
    keys = IPV4_KEYS if family == AF_INET else IPV6_KEYS
    if name not in keys:
        return None
    # IFLA_INET_CONF holds IPV4_DEVCONF_x at x - 1; IFLA_INET6_CONF holds DEVCONF_x at x
    position = keys[name] - 1 if family == AF_INET else keys[name]
    array = _device_conf(device, family)
    if array is None or len(array) < 4 * (position + 1):
        return None
    return str(int.from_bytes(array[4 * position:4 * position + 4], ORDER, signed=True))


# -- links: what a link is and what it is tied to ---------------------------------------------

class Link:
    """What RTM_GETLINK says about a link (in this thread's network namespace)."""

    __slots__ = ("index", "name", "kind", "link", "master", "alias", "link_netnsid")

    def __init__(self, index, name, kind, link, master, alias="", link_netnsid=None):
        self.index = index      # its ifindex
        self.name = name        # its name (str, surrogate-escaped like os.listdir's)
        self.kind = kind        # "veth", "bridge", ... ("" for a link without a kind: eth0)
        self.link = link        # IFLA_LINK: a veth's peer's ifindex (in the peer's namespace)
        self.master = master    # the ifindex of its bridge (or bond...), 0 for none
        self.alias = alias      # its alias ("" for none), surrogate-escaped
        # the namespace of its peer (veth) or lower link, as this one numbers it; None when
        # that is this namespace
        self.link_netnsid = link_netnsid


def link(ifname: str | None = None, index: int = 0):
    """The Link named `ifname` (or with ifindex `index`); False when there is no such link;
    None when the kernel could not be asked or answered something else."""
    reply = _exchange(RTM_GETLINK, _ifinfo(ifname, index))
    if reply is None:
        return None
    kind, payload = reply
    if kind == NLMSG_ERROR:
        code = int.from_bytes(payload[:4], ORDER, signed=True) if len(payload) >= 4 else 0
        return False if code == -ENODEV else None
    if kind != RTM_NEWLINK or len(payload) < 16:
        return None
    found = Link(int.from_bytes(payload[4:8], ORDER, signed=True), None, "", 0, 0)
    for attr, value in _attrs(payload[16:]):
        if attr == IFLA_IFNAME:
            found.name = value.rstrip(b"\0").decode("utf-8", "surrogateescape")
        elif attr in (IFLA_LINK, IFLA_MASTER) and len(value) == 4:
            setattr(found, "link" if attr == IFLA_LINK else "master", int.from_bytes(value, ORDER))
        elif attr == IFLA_LINK_NETNSID and len(value) == 4:
            found.link_netnsid = int.from_bytes(value, ORDER, signed=True)
        elif attr == IFLA_IFALIAS:
            found.alias = value.rstrip(b"\0").decode("utf-8", "surrogateescape")
        elif attr == IFLA_LINKINFO:
            for sub, info in _attrs(value):
                if sub == IFLA_INFO_KIND:
                    found.kind = info.rstrip(b"\0").decode("ascii", "replace")
    return found if found.name is not None else None


# -- nftables: does a table exist? -------------------------------------------------------------

NFT_GETTABLE = (10 << 8) | 1        # NFNL_SUBSYS_NFTABLES, NFT_MSG_GETTABLE
NFT_NEWTABLE = (10 << 8) | 0        # the reply that describes the table
NFTA_TABLE_NAME = 1
NFT_FAMILIES = {"inet": 1, "ip": 2, "arp": 3, "netdev": 5, "bridge": 7, "ip6": 10}
ENOENT = 2


def nft_table_exists(family: str, table: str) -> bool | None:
    """Whether nftables has `table` in `family` in this thread's network namespace
    (NFT_MSG_GETTABLE, what `nft list table` asks first, with nft's side effect: a kernel
    with nf_tables as a module not yet loaded loads it); None when unknown (another family,
    any error): the caller runs nft."""
    if family not in NFT_FAMILIES:
        return None
    body = bytes([NFT_FAMILIES[family], 0, 0, 0]) + _attr(NFTA_TABLE_NAME,
                                                          table.encode() + b"\0")
    reply = _exchange(NFT_GETTABLE, body, NETLINK_NETFILTER)
    if reply is None:
        return None
    kind, payload = reply
    if kind == NFT_NEWTABLE:
        return True
    if kind == NLMSG_ERROR and len(payload) >= 4 \
            and int.from_bytes(payload[:4], ORDER, signed=True) == -ENOENT:
        return False
    return None
