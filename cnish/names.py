"""Names derived from (network, container id, ifname): never random, never stored.

Because every name is a hash of the attachment's identity, DEL needs no saved state, a dry-run
prints exactly the names an execution will use, and an attachment survives a crash of the
process that created it. The masquerade chain and comment follow the reference plugins'
scheme (pkg/utils: "CNI-" + sha512(network + containerID), 28 characters) so that cnish and
the reference plugins can each remove the other's rules.
"""

try:  # the C implementation directly: `hashlib` costs ~2 ms to import
    from _sha512 import sha512
except ImportError:  # pragma: no cover - Python 3.12+ moved it
    from hashlib import sha512


def _hex(text: str) -> str:
    return sha512(text.encode()).hexdigest()


def masq_chain(network: str, container_id: str) -> str:
    """iptables nat chain of one attachment, as the reference names it (CNI- + 24 hex)."""
    return "CNI-" + _hex(network + container_id)[:24]


def masq_comment(network: str, container_id: str) -> str:
    """The comment the reference puts on every masquerade rule."""
    return f'name: "{network}" id: "{container_id}"'


def host_veth(network: str, container_id: str, ifname: str) -> str:
    """Host end of a veth pair: "veth" + 11 hex = 15 bytes, the kernel's limit.

    44 bits of hash keep collisions negligible (1 in 17 million for 1000 containers on a host).
    The NUL separators keep ("a", "bc") and ("ab", "c") apart.
    """
    return "veth" + _hex(f"{network}\0{container_id}\0{ifname}")[:11]


def mac_address(*parts: str) -> str:
    """A locally administered unicast MAC derived from `parts` (e.g. host id, net, cid, ifname)."""
    digest = bytearray(sha512("\0".join(parts).encode()).digest()[:6])
    digest[0] = (digest[0] & 0xFC) | 0x02   # unicast, locally administered
    return ":".join(f"{b:02x}" for b in digest)


def short_hash(text: str, length: int = 16) -> str:
    return _hex(text)[:length]
