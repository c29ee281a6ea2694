"""Reads of the host's network state that need no process: the addresses of a link.

Before planning an ADD with isGateway, cnish must know whether the bridge already carries an
address that conflicts with the gateway (the reference's rule: another IPv4 address, or an
IPv6 address in an overlapping subnet). Asking `ip -j addr show` costs a process on every
container start; the same answer is available from the kernel directly: the link's primary
IPv4 address and netmask (ioctl SIOCGIFADDR/SIOCGIFNETMASK on a socket, the way ifconfig
reads it) and its IPv6 addresses (/proc/net/if_inet6). Only when these show a conflict does the
plan read the full list with `ip` (the recipe's "bridge-addresses" fact), e.g. to remove the
conflicting addresses under forceAddress. No netlink, no configuration change.
"""

import fcntl

from _socket import AF_INET, SOCK_DGRAM, inet_ntop, socket

SIOCGIFADDR = 0x8915
SIOCGIFNETMASK = 0x891B
SIOCGIFCONF = 0x8912


def primary_ipv4(dev: str) -> str | None:
    """The link's first IPv4 address as "a.b.c.d/len", or None (no address, no such link)."""
    request = dev.encode()[:15].ljust(40, b"\0")        # struct ifreq
    sock = socket(AF_INET, SOCK_DGRAM)
    try:
        address = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, request)[20:24]
        mask = fcntl.ioctl(sock.fileno(), SIOCGIFNETMASK, request)[20:24]
    except OSError:
        return None
    finally:
        sock.close()
    return f"{inet_ntop(AF_INET, address)}/{bin(int.from_bytes(mask, 'big')).count('1')}"


def has_labelled_ipv4(dev: str) -> bool:
    """Does the link carry an IPv4 address under a label of its own ("br0:1", "br0-x": `ip`
    takes any label that begins with the link's name)? SIOCGIFADDR finds an address by its
    label, so the link's name alone does not find those (an audit's find: one stayed beside
    the new gateway, unrefused). Asked only when the link shows no address under its name,
    which on a bridge with a gateway is once, at its first ADD: SIOCGIFCONF lists every IPv4
    address of the namespace, by label. (Another link's label, br0x's, costs one `ip` read
    that finds nothing.)"""
    import array
    import struct
    size = struct.calcsize("16sLLHBBB0L")       # struct ifreq: the name, then struct ifmap
    for count in (256, 4096, 65536):
        buf = array.array("B", bytes(count * size))
        ifc = struct.pack("iP", len(buf), buf.buffer_info()[0])      # struct ifconf
        sock = socket(AF_INET, SOCK_DGRAM)
        try:
            used = struct.unpack("iP", fcntl.ioctl(sock.fileno(), SIOCGIFCONF, ifc))[0]
        except OSError:
            return False
        finally:
            sock.close()
        if used + size <= len(buf) or count == 65536:
            break
    name = dev.encode()
    labels = (bytes(buf[i:i + 16]).split(b"\0", 1)[0] for i in range(0, used, size))
    return any(label.startswith(name) and label != name for label in labels)


def ipv6_entries(dev: str) -> list:
    """(address as 32 hex digits, prefix length, scope, flags) of each of the link's IPv6
    addresses, from /proc/net/if_inet6 of the network namespace the caller is in; [] without
    IPv6."""
    try:
        with open("/proc/net/if_inet6") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        fields = line.split()
        if len(fields) == 6 and fields[5] == dev:
            out.append((fields[0], int(fields[2], 16), int(fields[3], 16), int(fields[4], 16)))
    return out


SCOPE_LINK = 0x20


def ipv6_text(address: str) -> str:
    """An address of ipv6_entries (32 hex digits) as `ip` prints it ("fd77::2")."""
    from _socket import AF_INET6
    return inet_ntop(AF_INET6, bytes.fromhex(address))


def ipv6_addresses(dev: str) -> list:
    """The link's global IPv6 addresses as "addr/len" (link-local ones left out)."""
    return [f"{ipv6_text(address)}/{length}"
            for address, length, scope, _flags in ipv6_entries(dev) if scope != SCOPE_LINK]
