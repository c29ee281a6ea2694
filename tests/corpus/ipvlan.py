"""ipvlan: cnish exec'd as itself with "type": "ipvlan" on the master cnm0 (a veth the test
creates in the private host), embedding host-local IPAM. See README.md for the format.
"""

PLUGIN = {
    "name": "ipvlan",
    "exec": None,
    "uses": ("entry", "common"),
    "setup": [["ip", "link", "add", "cnm0", "type", "veth", "peer", "name", "cnm1"]],
    "link_kind": "ipvlan",
    "config": {
        "cniVersion": "1.0.0", "name": "corpusnet", "type": "ipvlan", "master": "cnm0",
        "mode": "l2",
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.99.0.0/24"}]],
                 "dataDir": "$DATA"},
    },
    "prev_result": {"cniVersion": "1.0.0",
                    "interfaces": [{"name": "eth0", "mac": "0a:58:0a:63:00:02",
                                    "sandbox": "$CONTAINER"}],
                    "ips": [{"address": "10.99.0.2/24", "gateway": "10.99.0.1", "interface": 0}],
                    "routes": [{"dst": "0.0.0.0/0", "gw": "10.99.0.1"}]},
}

CASES = [
    {"id": "mode-of-macvlan", "set": {"mode": "bridge"}, "code": 7, "field": "mode"},
    {"id": "mode-uppercase", "set": {"mode": "L2"}, "code": 7, "field": "mode"},
    {"id": "master-cmdsubst", "set": {"master": "$(id)"}, "code": 7, "field": "master"},
    {"id": "master-dash", "set": {"master": "-h"}, "code": 7, "field": "master"},
    {"id": "master-16bytes", "set": {"master": "ipvlanmaster0123"}, "code": 7,
     "field": "master"},
    {"id": "master-list", "set": {"master": ["cnm0"]}, "code": 7, "field": "master"},
    {"id": "mtu-negative", "set": {"mtu": -1500}, "code": 7, "field": "mtu"},
    {"id": "cni-args-mac-unknown", "args": "MAC=0a:58:0a:63:00:02", "code": 4, "field": "MAC"},
]
