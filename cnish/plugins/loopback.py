"""The loopback plugin: bring `lo` up in the container (containernetworking/plugins,
plugins/main/loopback).

It acts on `lo` whatever CNI_IFNAME says; ADD's result is prevResult when chained, else `lo`
with the loopback addresses it will have (::1 only where IPv6 is on for it); DEL brings `lo` down (and succeeds without a namespace);
CHECK needs no prevResult.
"""

from cnish.plugins import common

TYPE = "loopback"
KIND = "interface"
WORKS_ON_LO = True          # CNI_IFNAME=lo is this plugin's (engine.build_plan refuses it elsewhere)
CNI_ARGS = frozenset()


def parse(f, op) -> dict:
    return {}


def prepare(op) -> dict:
    netns = op.runtime.netns
    if op.command == "DEL":
        netns = common.live_netns(netns)
    att = {"cid": op.runtime.container_id, "netns": netns}
    if op.command == "ADD" and not op.prev_result:
        att["ipv6"] = _ipv6_on_lo(netns)
    return att


def _ipv6_on_lo(netns) -> bool:
    """Will lo get ::1 when it comes up? Not where the kernel has no IPv6 (ipv6.disable=1) or
    the namespace has it disabled on lo (the reference reads lo's addresses after ADD; this
    reads the same answer before, so a dry-run prints the result ADD will). A namespace that
    does not exist yet (the CLI's --create-netns) gets the kernel's default: enabled."""
    from cnish import netns as namespaces
    from cnish.runner import _own_netns_fd
    home = _own_netns_fd()
    if not netns or home is None:
        return True
    try:
        namespaces.enter(netns)
    except OSError:
        return True
    try:
        with open("/proc/sys/net/ipv6/conf/lo/disable_ipv6", "rb") as f:
            return f.read().strip() == b"0"
    except OSError:
        return False                  # no /proc/sys/net/ipv6: this kernel has no IPv6
    finally:
        namespaces.leave(home)


def result(op, att) -> dict:
    if op.prev_result:
        return op.prev_result
    ips = [{"address": "127.0.0.1/8", "interface": 0}]
    if att.get("ipv6", True):
        ips.append({"address": "::1/128", "interface": 0})
    return {"interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": att["netns"]}],
            "ips": ips, "routes": [], "dns": {}}


def tools(op) -> list:
    return ["ip", "nsenter"]
