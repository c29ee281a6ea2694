"""vlan: cnish exec'd as itself with "type": "vlan" on the master cnm0 (a veth the test creates
in the private host), embedding host-local IPAM. See README.md for the format.
"""

PLUGIN = {
    "name": "vlan",
    "exec": None,
    "uses": ("entry", "common"),
    "setup": [["ip", "link", "add", "cnm0", "type", "veth", "peer", "name", "cnm1"],
              ["ip", "link", "set", "cnm0", "up"]],         # a VLAN cannot come up on a down master
    "link_kind": "vlan",
    "config": {
        "cniVersion": "1.0.0", "name": "corpusnet", "type": "vlan", "master": "cnm0",
        "vlanId": 5,
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
    {"id": "vlanid-missing", "set": {"vlanId": "@drop"}, "code": 7, "field": "vlanId"},
    {"id": "vlanid-4095", "set": {"vlanId": 4095}, "code": 7, "field": "vlanId"},
    {"id": "vlanid-negative", "set": {"vlanId": -1}, "code": 7, "field": "vlanId"},
    {"id": "vlanid-string", "set": {"vlanId": "5"}, "code": 7, "field": "vlanId"},
    {"id": "vlanid-fraction", "set": {"vlanId": 5.5}, "code": 7, "field": "vlanId"},
    {"id": "vlanid-bool", "set": {"vlanId": True}, "code": 7, "field": "vlanId"},
    {"id": "master-missing", "set": {"master": "@drop"}, "code": 7, "field": "master"},
    {"id": "master-space", "set": {"master": "cnm 0"}, "code": 7, "field": "master"},
    {"id": "master-traversal", "set": {"master": "../../x"}, "code": 7, "field": "master"},
    {"id": "ipam-missing", "set": {"ipam": "@drop"}, "code": 7, "field": "ipam"},
    {"id": "ipam-without-type", "set": {"ipam": {}}, "code": 7, "field": "ipam"},
    {"id": "mtu-below-minimum", "set": {"mtu": 67}, "code": 7, "field": "mtu"},
]
