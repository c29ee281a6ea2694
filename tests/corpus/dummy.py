"""dummy: cnish exec'd as itself with "type": "dummy", embedding host-local IPAM. See README.md
for the format.
"""

PLUGIN = {
    "name": "dummy",
    "exec": None,
    "uses": ("entry", "common"),
    "link_kind": "dummy",
    "config": {
        "cniVersion": "1.0.0", "name": "corpusnet", "type": "dummy",
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
    {"id": "ipam-missing", "set": {"ipam": "@drop"}, "code": 7, "field": "ipam"},
    {"id": "ipam-without-type", "set": {"ipam.type": "@drop"}, "code": 7, "field": "ipam"},
    {"id": "mtu-negative", "set": {"mtu": -1}, "code": 7, "field": "mtu"},
    {"id": "mtu-huge", "set": {"mtu": 65536}, "code": 7, "field": "mtu"},
    {"id": "mac-rc-garbage", "set": {"runtimeConfig": {"mac": "zz:58:0a:63:00:02"}}, "code": 7,
     "field": "runtimeConfig.mac"},
    {"id": "mac-cni-args-short", "args": "MAC=0a:58", "code": 4, "field": "CNI_ARGS MAC"},
]
