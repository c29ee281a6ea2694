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


COMMENT_MAX = 255        # iptables' comment match keeps at most 255 characters


def masq_comment(network: str, container_id: str) -> str:
    """The comment the reference puts on every masquerade rule, cut where iptables cuts it (so
    a long network name or container id gives the rules the reference's would have)."""
    return f'name: "{network}" id: "{container_id}"'[:COMMENT_MAX]


# nftables masquerade (ipMasqBackend "nftables", plans/masquerade.toml): the comment on each
# attachment's rules starts with hashes of the network and of the attachment (DEL and GC find
# the rules by it) and is cut to nft's 128 characters as the reference cuts it, so that either
# plugin finds the other's rules.
NFT_COMMENT_MAX = 128


def masq_nft_network(network: str) -> str:
    """The start of the comment of every nftables masquerade rule of `network`."""
    return short_hash(network) + "-"


def masq_nft_comment(network: str, container_id: str, ifname: str) -> str:
    """The comment on one attachment's nftables masquerade rules (the reference's wording)."""
    comment = (f"{masq_nft_network(network)}{short_hash(ifname + ':' + container_id)}, "
               f"net: {network}, if: {ifname}, id: {container_id}")
    return comment[:NFT_COMMENT_MAX]


SPOOFCHK_COMMENT = "macspoofchk-"


def spoofchk(container_id: str, ifname: str) -> dict:
    """bridge's MAC spoof check (macspoofchk), named as the reference names it: both chains
    and every rule's comment name the attachment by container id and interface name."""
    ref = f"{container_id}-{ifname}"
    return {"iface_chain": f"cni-br-iface-{ref}", "mac_chain": f"cni-br-iface-{ref}-mac",
            "comment": SPOOFCHK_COMMENT + ref}


def host_veth(network: str, container_id: str, ifname: str) -> str:
    """Host end of a veth pair: "veth" + 11 hex = 15 bytes, the kernel's limit.

    44 bits of hash keep collisions negligible (1 in 17 million for 1000 containers on a host).
    The NUL separators keep ("a", "bc") and ("ab", "c") apart.
    """
    return "veth" + _hex(f"{network}\0{container_id}\0{ifname}")[:11]


def is_host_veth(name: str) -> bool:
    """Whether `name` is shaped like host_veth's names. The reference plugins' random veth
    names are "veth" + at most 8 hex digits, so they never are."""
    return len(name) == 15 and name.startswith("veth") and all(c in "0123456789abcdef"
                                                              for c in name[4:])


def link_label(network: str, container_id: str, ifname: str) -> str:
    """The alias of a link cnish makes for a container (macvlan, ipvlan, vlan, dummy), by
    which DEL tells its attachment's link from another one of that name: "cnish#" + 32 hex.
    Hashed, since the container sees it (the network's name is none of its business)."""
    return LINK_LABEL + _hex(f"{network}\0{container_id}\0{ifname}")[:32]


LINK_LABEL = "cnish#"


def sublink_temp(network: str, container_id: str, ifname: str) -> str:
    """The name a macvlan, ipvlan or vlan link has in the host for the moment between its
    creation and its move into the container (plans/macvlan.toml says why): "cnsl" + 11 hex,
    15 bytes. Derived, not random, so that a DEL finds one an interrupted ADD left."""
    return "cnsl" + _hex(f"{network}\0{container_id}\0{ifname}")[:11]


def vlan_gateway_peer(gateway_dev: str) -> str:
    """The bridge port whose peer carries the gateway addresses of an access VLAN (the bridge's
    `vlan` with isGateway; the gateway link is <bridge>.<vlan>, the reference's name). The
    reference names this port randomly; cnish derives it, so a second ADD that finds the
    gateway link half made can finish it by name."""
    return "veth" + _hex(f"vlan-gateway\0{gateway_dev}")[:11]


def mac_address(*parts: str) -> str:
    """A locally administered unicast MAC derived from `parts` (e.g. host id, net, cid, ifname)."""
    digest = bytearray(sha512("\0".join(parts).encode()).digest()[:6])
    digest[0] = (digest[0] & 0xFC) | 0x02   # unicast, locally administered
    return ":".join(f"{b:02x}" for b in digest)


def short_hash(text: str, length: int = 16) -> str:
    return _hex(text)[:length]


# The host end of a veth carries its attachment in its alias, so that GC can tell cnish's links
# from others' and stale attachments from valid ones. The kernel keeps at most 255 bytes of an
# alias; a label that would be longer (names and ids of up to 255 characters each) must not be
# cut, or GC would read a wrong container id or interface name from it and delete a valid
# attachment's link. Such a label carries hashes instead, which GC compares the same way.
ALIAS_MAX = 255
HASHED_LABEL = "cnish#"


def veth_label(network: str, container_id: str, ifname: str) -> str:
    """`cnish/<net>/<cid>/<ifname>`, or `cnish#<hash of net>/<hash of the attachment>` when
    that would not fit in an alias (names cannot contain "/": config.py checks them)."""
    label = f"cnish/{network}/{container_id}/{ifname}"
    if len(label.encode()) <= ALIAS_MAX:
        return label
    return f"{HASHED_LABEL}{short_hash(network)}/{_attachment_hash(network, container_id, ifname)}"


def _attachment_hash(network: str, container_id: str, ifname: str) -> str:
    return short_hash(f"{network}\0{container_id}\0{ifname}")


def label_attachment(label: str, network: str, valid: set) -> tuple | None:
    """Read a veth label: None when it is not a label of an attachment of `network`, else
    (container id, ifname, is_valid); for a hashed label the id and name are unknown (None)."""
    if label.startswith("cnish/"):
        parts = label.split("/")
        if len(parts) != 4 or parts[1] != network:
            return None
        if len(label.encode()) == ALIAS_MAX:   # possibly cut by cnish before 2026-11 (not hashed)
            cut = {f"cnish/{network}/{cid}/{ifname}"[:ALIAS_MAX] for cid, ifname in valid}
            return parts[2], parts[3], label in cut
        return parts[2], parts[3], (parts[2], parts[3]) in valid
    prefix = f"{HASHED_LABEL}{short_hash(network)}/"
    if label.startswith(prefix) and len(label) == len(prefix) + 16:
        wanted = {_attachment_hash(network, cid, ifname) for cid, ifname in valid}
        return None, None, label[len(prefix):] in wanted
    return None
