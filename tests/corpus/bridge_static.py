"""bridge with static IPAM: cnish exec'd as itself, "type": "bridge", "ipam": {"type":
"static"}. Runs static.py's CASES against the embedding plugin; common.py's and bridge.py's
cases already run against the bridge target. See README.md for the format.
"""

PLUGIN = {
    "name": "bridge+static",
    "exec": None,
    "uses": ("static",),
    "config": {
        "cniVersion": "1.0.0", "name": "corpusnet", "type": "bridge", "bridge": "cnc0",
        "isGateway": True,
        "ipam": {"type": "static",
                 "addresses": [{"address": "10.99.0.5/24", "gateway": "10.99.0.1"}],
                 "routes": [{"dst": "0.0.0.0/0"}]},
    },
    "prev_result": {"cniVersion": "1.0.0",
                    "interfaces": [{"name": "cnc0", "mac": "0a:58:0a:63:00:01"},
                                   {"name": "veth0123456789a", "mac": "0a:58:0a:63:00:03"},
                                   {"name": "eth0", "mac": "0a:58:0a:63:00:05",
                                    "sandbox": "$CONTAINER"}],
                    "ips": [{"address": "10.99.0.5/24", "gateway": "10.99.0.1",
                             "interface": 2}],
                    "routes": [{"dst": "0.0.0.0/0", "gw": "10.99.0.1"}]},
}

CASES = []
