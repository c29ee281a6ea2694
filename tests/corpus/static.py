"""static IPAM: cnish exec'd as `static`. Its CASES also run against bridge_static.py (the
bridge plugin embedding static IPAM). They touch only `ipam.*`, `runtimeConfig`, `args` and
CNI_ARGS IP= / GATEWAY=. See README.md for the format.
"""

PLUGIN = {
    "name": "static",
    "exec": "static",
    "uses": ("entry", "common"),
    "config": {
        "cniVersion": "1.0.0", "name": "corpusnet", "type": "bridge", "bridge": "cnc0",
        "ipam": {"type": "static",
                 "addresses": [{"address": "10.99.0.5/24", "gateway": "10.99.0.1"}],
                 "routes": [{"dst": "0.0.0.0/0"}]},
    },
    "prev_result": {"cniVersion": "1.0.0",
                    "interfaces": [{"name": "eth0", "mac": "0a:58:0a:63:00:05",
                                    "sandbox": "$CONTAINER"}],
                    "ips": [{"address": "10.99.0.5/24", "gateway": "10.99.0.1",
                             "interface": 0}],
                    "routes": [{"dst": "0.0.0.0/0", "gw": "10.99.0.1"}]},
}

CASES = [
    # static keeps no state: CHECK has only the result of ADD to go by
    {"id": "check-without-prevresult", "command": "CHECK", "code": 7, "field": "prevResult"},

    # -- addresses -----------------------------------------------------------------------------
    {"id": "addresses-missing", "set": {"ipam.addresses": "@drop"}, "code": 7,
     "field": "ipam.addresses"},
    {"id": "addresses-empty", "set": {"ipam.addresses": []}, "code": 7,
     "field": "ipam.addresses"},
    {"id": "addresses-string", "set": {"ipam.addresses": "10.99.0.5/24"}, "code": 7,
     "field": "ipam.addresses"},
    {"id": "addresses-entry-string", "set": {"ipam.addresses": ["10.99.0.5/24"]}, "code": 7,
     "field": "ipam.addresses[0]"},
    {"id": "address-missing", "set": {"ipam.addresses.0.address": "@drop"}, "code": 7,
     "field": "ipam.addresses[0].address"},
    {"id": "address-no-prefix", "set": {"ipam.addresses.0.address": "10.99.0.5"}, "code": 7,
     "field": "ipam.addresses[0].address"},
    {"id": "address-bad-length", "set": {"ipam.addresses.0.address": "10.99.0.5/33"},
     "code": 7, "field": "ipam.addresses[0].address"},
    {"id": "address-injection", "set": {"ipam.addresses.0.address": "$(touch $CANARY)/24"},
     "code": 7, "field": "ipam.addresses[0].address"},
    {"id": "address-option", "set": {"ipam.addresses.0.address": "-10.99.0.5/24"}, "code": 7,
     "field": "ipam.addresses[0].address"},
    {"id": "address-number", "set": {"ipam.addresses.0.address": 167969541}, "code": 7,
     "field": "ipam.addresses[0].address"},
    {"id": "address-gateway-garbage", "set": {"ipam.addresses.0.gateway": "gw"}, "code": 7,
     "field": "ipam.addresses[0].gateway"},
    {"id": "address-gateway-cidr", "set": {"ipam.addresses.0.gateway": "10.99.0.1/24"},
     "code": 7, "field": "ipam.addresses[0].gateway"},
    {"id": "two-v4-old-version", "set": {"cniVersion": "0.2.0", "ipam.addresses": [
        {"address": "10.99.0.5/24"}, {"address": "10.99.1.5/24"}]}, "code": 7,
     "field": "cniVersion"},

    # -- routes and dns ------------------------------------------------------------------------
    {"id": "routes-not-list", "set": {"ipam.routes": {"dst": "0.0.0.0/0"}}, "code": 7,
     "field": "ipam.routes"},
    {"id": "route-dst-missing", "set": {"ipam.routes": [{"gw": "10.99.0.1"}]}, "code": 7,
     "field": "ipam.routes[0].dst"},
    {"id": "route-dst-garbage", "set": {"ipam.routes": [{"dst": "default"}]}, "code": 7,
     "field": "ipam.routes[0].dst"},
    {"id": "route-gw-garbage", "set": {"ipam.routes": [{"dst": "0.0.0.0/0", "gw": "`id`"}]},
     "code": 7, "field": "ipam.routes[0].gw"},
    {"id": "ipam-dns-not-object", "set": {"ipam.dns": ["8.8.8.8"]}, "code": 7,
     "field": "ipam.dns"},
    {"id": "ipam-dns-nameserver-garbage", "set": {"ipam.dns": {"nameservers": ["$(id)"]}},
     "code": 7, "field": "ipam.dns.nameservers[0]"},

    # -- addresses from the runtime: CNI_ARGS IP= / GATEWAY=, args.cni.ips, runtimeConfig.ips --
    {"id": "args-ip-garbage", "args": "IP=ten", "code": 4, "field": "CNI_ARGS IP"},
    {"id": "args-ip-no-prefix", "args": "IP=10.99.0.7", "code": 4, "field": "CNI_ARGS IP"},
    {"id": "args-ip-second-bad", "args": "IP=10.99.0.7/24,10.99.0.8", "code": 4,
     "field": "CNI_ARGS IP"},
    {"id": "args-gateway-garbage", "args": "GATEWAY=gw", "code": 4,
     "field": "CNI_ARGS GATEWAY"},
    {"id": "args-gateway-cidr", "args": "GATEWAY=10.99.0.1/24", "code": 4,
     "field": "CNI_ARGS GATEWAY"},
    {"id": "rc-ips-string", "set": {"runtimeConfig": {"ips": "10.99.0.7/24"}}, "code": 7,
     "field": "runtimeConfig.ips"},
    {"id": "rc-ips-no-prefix", "set": {"runtimeConfig": {"ips": ["10.99.0.7"]}}, "code": 7,
     "field": "runtimeConfig.ips"},
    {"id": "rc-ips-number", "set": {"runtimeConfig": {"ips": [7]}}, "code": 7,
     "field": "runtimeConfig.ips"},
    {"id": "args-cni-ips-garbage", "set": {"args": {"cni": {"ips": ["x/24"]}}}, "code": 7,
     "field": "args.cni.ips"},
    {"id": "runtimeconfig-not-object", "set": {"runtimeConfig": ["ips"]}, "code": 7,
     "field": "runtimeConfig"},
    {"id": "args-not-object", "set": {"args": "cni"}, "code": 7, "field": "args"},
    {"id": "cni-args-unknown-mac", "only": ("static",), "args": "MAC=0a:58:0a:63:00:05",
     "code": 4, "field": "MAC"},

    # -- addresses no interface can use (found by an audit: accepted, then put on the host) ----
    *({"id": f"address-{k}", "set": {"ipam.addresses": [{"address": v}]}, "code": 7,
       "field": "ipam.addresses[0].address"}
      for k, v in (("everything", "0.0.0.0/0"), ("loopback", "127.0.0.5/8"),
                   ("multicast", "224.0.0.5/24"), ("ipv4-mapped", "::ffff:10.99.0.5/120"),
                   ("ipv6-loopback", "::1/128"))),
    {"id": "gateway-other-family",
     "set": {"ipam.addresses": [{"address": "10.99.0.5/24", "gateway": "2001:db8::1"}]},
     "code": 7, "field": "ipam.addresses[0].gateway"},
    {"id": "gateway-loopback",
     "set": {"ipam.addresses": [{"address": "10.99.0.5/24", "gateway": "127.0.0.1"}]},
     "code": 7, "field": "ipam.addresses[0].gateway"},
    {"id": "cni-args-ip-again", "args": "IP=10.99.0.5/24", "code": 4, "field": "CNI_ARGS IP"},
    {"id": "cni-args-ip-loopback", "args": "IP=127.0.0.9/8", "code": 4, "field": "CNI_ARGS IP"},
    {"id": "cni-args-gateway-multicast", "args": "GATEWAY=224.0.0.1", "code": 4,
     "field": "CNI_ARGS GATEWAY"},
    {"id": "runtimeconfig-ips-twice",
     "set": {"runtimeConfig": {"ips": ["10.99.0.6/24", "10.99.0.6/24"]}}, "code": 7,
     "field": "runtimeConfig.ips"},
]
