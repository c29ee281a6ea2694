"""macvlan: cnish exec'd as itself with "type": "macvlan" on the master cnm0 (a veth the test
creates in the private host), embedding host-local IPAM. See README.md for the format.
"""

PLUGIN = {
    "name": "macvlan",
    "exec": None,
    "uses": ("entry", "common", "host_local"),
    "setup": [["ip", "link", "add", "cnm0", "type", "veth", "peer", "name", "cnm1"]],
    "link_kind": "macvlan",
    "config": {
        "cniVersion": "1.0.0", "name": "corpusnet", "type": "macvlan", "master": "cnm0",
        "mode": "bridge",
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.99.0.0/24"}]],
                 "dataDir": "$DATA"},
    },
    "prev_result": {"cniVersion": "1.0.0",
                    "interfaces": [{"name": "eth0", "mac": "0a:58:0a:63:00:02",
                                    "sandbox": "$CONTAINER"}],
                    "ips": [{"address": "10.99.0.2/24", "gateway": "10.99.0.1", "interface": 0}],
                    "routes": [{"dst": "0.0.0.0/0", "gw": "10.99.0.1"}]},
}

_MASTERS = {"space": "cn m0", "cmdsubst": "$(id)", "backquote": "`id`", "semicolon": "m;id",
            "dash": "-cnm0", "16bytes": "master0123456789", "dotdot": "..", "slash": "cn/m0",
            "newline": "cn\nm0", "nonascii": "m\u00e4ster", "empty": "", "number": 5,
            "loopback": "lo", "all": "all"}

CASES = [
    *({"id": f"master-{k}", "set": {"master": v}, "code": 7, "field": "master"}
      for k, v in _MASTERS.items()),
    {"id": "mode-unknown", "set": {"mode": "vepa2"}, "code": 7, "field": "mode"},
    {"id": "mode-of-ipvlan", "set": {"mode": "l2"}, "code": 7, "field": "mode"},
    {"id": "mode-number", "set": {"mode": 1}, "code": 7, "field": "mode"},
    {"id": "mac-garbage", "set": {"mac": "0a:58:0a:63:00:0z"}, "code": 7, "field": "mac"},
    {"id": "mac-multicast", "set": {"mac": "03:00:00:00:00:01"}, "code": 7, "field": "mac"},
    {"id": "mac-cni-args-garbage", "args": "MAC=$(touch $CANARY)", "code": 4,
     "field": "CNI_ARGS MAC"},
    {"id": "bcqueuelen-negative", "set": {"bcqueuelen": -1}, "code": 7, "field": "bcqueuelen"},
    {"id": "bcqueuelen-over-uint32", "set": {"bcqueuelen": 2 ** 32}, "code": 7,
     "field": "bcqueuelen"},
    {"id": "bcqueuelen-string", "set": {"bcqueuelen": "1000"}, "code": 7, "field": "bcqueuelen"},
    {"id": "linkincontainer-string", "set": {"linkInContainer": "true"}, "code": 7,
     "field": "linkInContainer"},
    {"id": "mtu-negative", "set": {"mtu": -1}, "code": 7, "field": "mtu"},
    {"id": "mtu-huge", "set": {"mtu": 70000}, "code": 7, "field": "mtu"},
    {"id": "mtu-below-minimum", "set": {"mtu": 10}, "code": 7, "field": "mtu"},
    {"id": "check-without-prevresult", "command": "CHECK", "code": 7, "field": "prevResult"},
]
