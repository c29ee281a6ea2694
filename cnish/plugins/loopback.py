"""The loopback plugin: bring `lo` up in the container (cni-reference.md §3.7).

It acts on `lo` whatever CNI_IFNAME says; ADD's result is prevResult when chained, else `lo`
with the kernel's loopback addresses; DEL brings `lo` down (and succeeds without a namespace);
CHECK needs no prevResult.
"""

from cnish.plugins import common

TYPE = "loopback"
KIND = "interface"
CNI_ARGS = frozenset()


def parse(f, op) -> dict:
    return {}


def prepare(op) -> dict:
    netns = op.runtime.netns
    if op.command == "DEL":
        netns = common.live_netns(netns)
    return {"cid": op.runtime.container_id, "netns": netns}


def result(op, att) -> dict:
    if op.prev_result:
        return op.prev_result
    return {"interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": att["netns"]}],
            "ips": [{"address": "127.0.0.1/8", "interface": 0},
                    {"address": "::1/128", "interface": 0}],
            "routes": [], "dns": {}}


def tools(op) -> list:
    return ["ip", "nsenter"]
