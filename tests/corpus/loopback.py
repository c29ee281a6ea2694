"""loopback: cnish exec'd as itself with "type": "loopback" (brings lo up in the container). It
has no keys of its own; common.py's cases apply. See README.md for the format.
"""

PLUGIN = {
    "name": "loopback",
    "exec": None,
    "uses": ("entry", "common"),
    "config": {"cniVersion": "1.0.0", "name": "corpusnet", "type": "loopback"},
    "prev_result": {"cniVersion": "1.0.0",
                    "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00",
                                    "sandbox": "$CONTAINER"}],
                    "ips": [{"address": "127.0.0.1/8", "interface": 0}],
                    "routes": [{"dst": "127.0.0.0/8"}]},
}

CASES = []
