"""Small IP address and prefix arithmetic on top of inet_pton/inet_ntop.

Why not `ipaddress`: it costs ~3 ms to import on every container start, and cnish only needs
parsing, formatting, containment and +1 stepping. The parsing is the C library's strict
inet_pton (no leading zeros, no zones, exactly four IPv4 octets), and formatting is inet_ntop,
which prints IPv6 in the same compressed form as Go's net.IP.String().
"""

from _socket import AF_INET, AF_INET6, inet_ntop, inet_pton

_FAMILY = {4: AF_INET, 6: AF_INET6}
_BITS = {4: 32, 6: 128}


class IP:
    """An IPv4 or IPv6 address: its version (4 or 6) and its value as an integer."""

    __slots__ = ("version", "value")

    def __init__(self, version: int, value: int):
        self.version = version
        self.value = value

    @classmethod
    def parse(cls, text: str) -> "IP":
        if not isinstance(text, str):
            raise ValueError("not a string")
        for version in (4, 6):
            try:
                packed = inet_pton(_FAMILY[version], text)
            except OSError:
                continue
            return cls(version, int.from_bytes(packed, "big"))
        raise ValueError(f"{text!r} is not an IP address")

    @property
    def bits(self) -> int:
        return _BITS[self.version]

    @property
    def link_local(self) -> bool:
        """In fe80::/10: an IPv6 address on the link whatever the subnet (routed IPv6's usual
        next hop)."""
        return self.version == 6 and self.value >> 118 == 0x3fa

    def __str__(self) -> str:
        return inet_ntop(_FAMILY[self.version], self.value.to_bytes(self.bits // 8, "big"))

    def __repr__(self) -> str:
        return f"IP({self})"

    def __add__(self, n: int) -> "IP":
        return IP(self.version, self.value + n)

    def __eq__(self, other) -> bool:
        return isinstance(other, IP) and (self.version, self.value) == (other.version, other.value)

    def __lt__(self, other: "IP") -> bool:
        return (self.version, self.value) < (other.version, other.value)

    def __le__(self, other: "IP") -> bool:
        return (self.version, self.value) <= (other.version, other.value)

    def __hash__(self) -> int:
        return hash((self.version, self.value))


class Prefix:
    """An address with a prefix length, e.g. 10.22.0.7/24 (host bits kept, as CNI results do)."""

    __slots__ = ("ip", "length")

    def __init__(self, ip: IP, length: int):
        self.ip = ip
        self.length = length

    @classmethod
    def parse(cls, text: str) -> "Prefix":
        if not isinstance(text, str) or text.count("/") != 1:
            raise ValueError(f"{text!r} is not in CIDR notation (address/length)")
        addr, _, length = text.partition("/")
        ip = IP.parse(addr)
        if not length.isdigit() or length != str(int(length)) or int(length) > ip.bits:
            raise ValueError(f"{text!r} has an invalid prefix length")
        return cls(ip, int(length))

    @property
    def version(self) -> int:
        return self.ip.version

    @property
    def mask(self) -> int:
        bits = self.ip.bits
        return ((1 << bits) - 1) ^ ((1 << (bits - self.length)) - 1)

    @property
    def network(self) -> IP:
        return IP(self.ip.version, self.ip.value & self.mask)

    @property
    def last(self) -> IP:
        """The highest address of the prefix (the IPv4 broadcast address)."""
        return IP(self.ip.version, self.network.value | (((1 << self.ip.bits) - 1) ^ self.mask))

    @property
    def subnet(self) -> "Prefix":
        """The prefix with host bits cleared (10.22.0.7/24 -> 10.22.0.0/24)."""
        return Prefix(self.network, self.length)

    def contains(self, ip: IP) -> bool:
        return ip.version == self.ip.version and (ip.value & self.mask) == self.network.value

    def overlaps(self, other: "Prefix") -> bool:
        return self.contains(other.network) or other.contains(self.network)

    def __str__(self) -> str:
        return f"{self.ip}/{self.length}"

    def __repr__(self) -> str:
        return f"Prefix({self})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Prefix) and (self.ip, self.length) == (other.ip, other.length)

    def __hash__(self) -> int:
        return hash((self.ip, self.length))


# Addresses no interface of a container (nor its gateway) can use: "this network", loopback and
# multicast, the IPv4 limited broadcast, IPv6's unspecified and loopback addresses, and
# IPv4-mapped IPv6 addresses (an IPv4 address written as IPv6, which the kernel puts on a link
# but nothing routes to; the reference refuses them in ranges). Built on first use.
_SPECIAL_TEXT = ("0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/4", "255.255.255.255/32",
                 "::/128", "::1/128", "ff00::/8", "::ffff:0:0/96")
_special = []


def special_use(what: "Prefix | IP") -> str | None:
    """The special-use prefix (above) that an address or a prefix overlaps, or None."""
    if not _special:
        _special.extend(Prefix.parse(p) for p in _SPECIAL_TEXT)
    if isinstance(what, IP):
        what = Prefix(what, what.bits)
    return next((str(p) for p in _special if p.version == what.version and p.overlaps(what)),
                None)


def parse_ip_or_prefix(text: str) -> IP:
    """`10.1.2.3` or `10.1.2.3/24` -> the address (how host-local reads requested IPs). An
    IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) is the IPv4 address, as Go's net.IP reads it
    for the reference plugin."""
    ip = Prefix.parse(text).ip if isinstance(text, str) and "/" in text else IP.parse(text)
    if ip.version == 6 and ip.value >> 32 == 0xffff:
        return IP(4, ip.value & 0xffffffff)
    return ip


def problem(parse, text) -> str | None:
    """Why `text` is not what `parse` (IP.parse, Prefix.parse) accepts, or None."""
    try:
        parse(text)
    except ValueError as exc:
        return str(exc)
    return None
