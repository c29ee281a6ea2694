"""ptp: cnish exec'd as itself with "type": "ptp" (a routed veth pair), embedding host-local IPAM.
See README.md for the format.
"""

PLUGIN = {
    "name": "ptp",
    "exec": None,
    "uses": ("entry", "common", "host_local"),
    "config": {
        "cniVersion": "1.0.0", "name": "corpusnet", "type": "ptp", "ipMasq": True,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.99.0.0/24"}]],
                 "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$DATA"},
    },
    "prev_result": {"cniVersion": "1.0.0",
                    "interfaces": [{"name": "veth0123456789a", "mac": "0a:58:0a:63:00:03"},
                                   {"name": "eth0", "mac": "0a:58:0a:63:00:02",
                                    "sandbox": "$CONTAINER"}],
                    "ips": [{"address": "10.99.0.2/24", "gateway": "10.99.0.1", "interface": 1}],
                    "routes": [{"dst": "0.0.0.0/0", "gw": "10.99.0.1"}]},
}

CASES = [
    {"id": "route-via-another-address-of-the-subnet",
     "set": {"ipam.routes": [{"dst": "192.168.0.0/16", "gw": "10.99.0.9"}]}, "code": 7,
     "field": "via 10.99.0.9"},
    {"id": "ipam-missing", "set": {"ipam": "@drop"}, "code": 7, "field": "ipam"},
    {"id": "ipam-without-type", "set": {"ipam.type": "@drop"}, "code": 7, "field": "ipam"},
    {"id": "ipam-type-not-found", "set": {"ipam.type": "nope-ipam"}, "code": 7,
     "field": "IPAM plugin 'nope-ipam'"},
    {"id": "ipmasqbackend-number", "set": {"ipMasqBackend": 4}, "code": 7,
     "field": "ipMasqBackend"},
    {"id": "ipmasqbackend-unknown", "set": {"ipMasqBackend": "ipfw"}, "code": 7,
     "field": "ipMasqBackend"},
    {"id": "ipmasq-string", "set": {"ipMasq": "yes"}, "code": 7, "field": "ipMasq"},
    {"id": "mtu-negative", "set": {"mtu": -9000}, "code": 7, "field": "mtu"},
    {"id": "mtu-huge", "set": {"mtu": 1 << 32}, "code": 7, "field": "mtu"},
    {"id": "mtu-below-minimum", "set": {"mtu": 1}, "code": 7, "field": "mtu"},
    {"id": "mtu-string", "set": {"mtu": "9000"}, "code": 7, "field": "mtu"},
    {"id": "mac-rc-garbage", "set": {"runtimeConfig": {"mac": "0a:58:0a:63:00:2"}}, "code": 7,
     "field": "runtimeConfig.mac"},
    {"id": "mac-cni-args-multicast", "args": "MAC=01:00:5e:00:00:01", "code": 4,
     "field": "CNI_ARGS MAC"},
    {"id": "check-without-prevresult", "command": "CHECK", "code": 7, "field": "prevResult"},
]
