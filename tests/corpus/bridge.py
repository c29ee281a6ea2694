"""bridge: cnish exec'd as itself with "type": "bridge", embedding host-local IPAM.

Runs common.py's and host_local.py's CASES too (`uses`). See README.md for the format.
"""

PLUGIN = {
    "name": "bridge",
    "exec": None,                 # the `cnish` console script; the config's type decides
    "uses": ("entry", "common", "host_local"),
    "config": {
        "cniVersion": "1.0.0", "name": "corpusnet", "type": "bridge", "bridge": "cnc0",
        "isGateway": True, "ipMasq": True,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.99.0.0/24"}]],
                 "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$DATA"},
    },
    "prev_result": {"cniVersion": "1.0.0",
                    "interfaces": [{"name": "cnc0", "mac": "0a:58:0a:63:00:01"},
                                   {"name": "veth0123456789a", "mac": "0a:58:0a:63:00:03"},
                                   {"name": "eth0", "mac": "0a:58:0a:63:00:02",
                                    "sandbox": "$CONTAINER"}],
                    "ips": [{"address": "10.99.0.2/24", "gateway": "10.99.0.1", "interface": 2}],
                    "routes": [{"dst": "0.0.0.0/0", "gw": "10.99.0.1"}]},
}

_BRIDGE_NAMES = {
    "space": "br 0", "semicolon": "br0;id", "cmdsubst": "$(id)", "backquote": "`id`",
    "squote": "br'0", "dquote": 'br"0', "newline": "br\n0", "tab": "br\t0", "dash": "-br0",
    "dash-option": "-help", "16bytes": "bridge0123456789", "dot": ".", "dotdot": "..",
    "nonascii": "br\u00fc0", "slash": "br/0", "traversal": "../../etc", "colon": "br:0",
    "at": "br@0", "hash": "br#0", "pct": "br%d", "empty": "", "number": 0, "list": ["cnc0"],
    "true": True,
}

CASES = [
    # -- plugin and IPAM types -----------------------------------------------------------------
    {"id": "type-missing", "set": {"type": "@drop"}, "code": 7, "field": "type"},
    {"id": "type-empty", "set": {"type": ""}, "code": 7, "field": "type"},
    {"id": "type-unknown", "set": {"type": "macvlan-nope"}, "code": 7, "field": "type"},
    {"id": "type-unknown-prefixed", "set": {"type": "cnish-nope"}, "code": 7, "field": "type"},
    {"id": "type-path", "set": {"type": "../../bin/sh"}, "code": 7, "field": "type"},
    {"id": "type-injection", "set": {"type": "bridge;touch $CANARY"}, "code": 7,
     "field": "type"},
    {"id": "type-number", "set": {"type": 1}, "code": 7, "field": "type"},
    {"id": "type-list", "set": {"type": ["bridge"]}, "code": 7, "field": "type"},
    {"id": "type-case", "set": {"type": "Bridge"}, "code": 7, "field": "type"},
    {"id": "ipam-type-not-found", "set": {"ipam.type": "dhcp-nope"}, "code": 7,
     "field": "IPAM plugin 'dhcp-nope'"},
    {"id": "ipam-type-main-plugin", "set": {"ipam.type": "bridge"}, "code": 7,
     "field": "ipam.type"},
    {"id": "ipam-type-path", "set": {"ipam.type": "/opt/cni/bin/host-local"}, "code": 7,
     "field": "IPAM plugin type"},
    {"id": "ipam-type-traversal", "set": {"ipam.type": "../../../bin/sh"}, "code": 7,
     "field": "IPAM plugin type"},
    {"id": "ipam-type-dotdot", "set": {"ipam.type": ".."}, "code": 7,
     "field": "IPAM plugin type"},
    {"id": "ipam-type-number", "set": {"ipam.type": 7}, "code": 7, "field": "ipam.type"},
    # (an empty ipam.type is no IPAM, as for the reference: test_an_empty_ipam_type_is_no_ipam)
    {"id": "ipam-type-not-executable", "set": {"ipam.type": "file"},
     "env": {"CNI_PATH": "$SANDBOX"}, "code": 7, "field": "IPAM plugin 'file'"},
    {"id": "ipam-type-directory", "set": {"ipam.type": "dir"}, "env": {"CNI_PATH": "$SANDBOX"},
     "code": 7, "field": "IPAM plugin 'dir'"},
    {"id": "ipam-type-injection", "set": {"ipam.type": "x;touch $CANARY"}, "code": 7,
     "field": "IPAM plugin"},
    {"id": "del-type-unknown", "command": "DEL", "set": {"type": "nope"}, "code": 7,
     "field": "type"},

    # -- the bridge name -----------------------------------------------------------------------
    *({"id": f"bridge-{k}", "set": {"bridge": v}, "code": 7, "field": "bridge"}
      for k, v in _BRIDGE_NAMES.items()),
    # (DEL never uses the bridge's name: a bad one is ignored there, tests/unit/test_config.py)
    {"id": "check-bridge-dash", "command": "CHECK", "prev": True, "set": {"bridge": "-v"},
     "code": 7, "field": "bridge"},

    # -- mtu -----------------------------------------------------------------------------------
    {"id": "mtu-negative", "set": {"mtu": -1}, "code": 7, "field": "mtu"},
    {"id": "mtu-huge", "set": {"mtu": 65536}, "code": 7, "field": "mtu"},
    {"id": "mtu-int64", "set": {"mtu": 9223372036854775807}, "code": 7, "field": "mtu"},
    {"id": "mtu-bigger-than-int64", "set": {"mtu": 10 ** 30}, "code": 7, "field": "mtu"},
    {"id": "mtu-float-overflow", "stdin": b'{"cniVersion": "1.0.0", "name": "corpusnet", '
     b'"type": "bridge", "mtu": 1e400}', "code": 6, "field": "stdin"},
    {"id": "isgateway-float-overflow", "stdin": b'{"cniVersion": "1.0.0", "name": "corpusnet",'
     b' "type": "bridge", "isGateway": -1e400}', "code": 6, "field": "stdin"},
    {"id": "mtu-fraction", "set": {"mtu": 1500.5}, "code": 7, "field": "mtu"},
    # (Go's decoder refuses a number written with a fraction or an exponent for an int field)
    {"id": "mtu-zero-fraction", "set": {"mtu": 1400.0}, "code": 7, "field": "mtu"},
    {"id": "mtu-exponent", "stdin": b'{"cniVersion": "1.0.0", "name": "corpusnet", '
     b'"type": "bridge", "mtu": 14e2}', "code": 7, "field": "mtu"},
    {"id": "mtu-string", "set": {"mtu": "1500"}, "code": 7, "field": "mtu"},
    {"id": "mtu-bool", "set": {"mtu": True}, "code": 7, "field": "mtu"},
    {"id": "mtu-below-minimum", "set": {"mtu": 67}, "code": 7, "field": "mtu"},
    {"id": "mtu-ipv6-below-1280", "set": {"mtu": 1000,
                                          "ipam.ranges": [[{"subnet": "fd99::/64"}]],
                                          "ipam.routes": []},
     "code": 7, "field": "mtu"},

    # -- flags with wrong types, incompatible flags --------------------------------------------
    {"id": "isgateway-string", "set": {"isGateway": "true"}, "code": 7, "field": "isGateway"},
    {"id": "isdefaultgateway-number", "set": {"isDefaultGateway": 1}, "code": 7,
     "field": "isDefaultGateway"},
    {"id": "ipmasq-list", "set": {"ipMasq": []}, "code": 7, "field": "ipMasq"},
    {"id": "forceaddress-string", "set": {"forceAddress": "no"}, "code": 7,
     "field": "forceAddress"},
    {"id": "hairpin-string", "set": {"hairpinMode": "on"}, "code": 7, "field": "hairpinMode"},
    {"id": "promisc-number", "set": {"promiscMode": 0}, "code": 7, "field": "promiscMode"},
    {"id": "accept-ra-string", "set": {"acceptRA": "false"}, "code": 7, "field": "acceptRA"},
    {"id": "hairpin-and-promisc", "set": {"hairpinMode": True, "promiscMode": True}, "code": 7,
     "field": "hairpinMode"},
    {"id": "ipmasqbackend-unknown", "set": {"ipMasqBackend": "pf"}, "code": 7,
     "field": "ipMasqBackend"},
    {"id": "ipmasqbackend-number", "set": {"ipMasqBackend": 4}, "code": 7,
     "field": "ipMasqBackend"},

    # -- reference options cnish does not implement (code 2, naming the key) -------------------
    {"id": "vlan-too-big", "set": {"vlan": 4095}, "code": 7, "field": "vlan"},
    {"id": "vlan-negative", "set": {"vlan": -1}, "code": 7, "field": "vlan"},
    {"id": "vlan-string", "set": {"vlan": "100"}, "code": 7, "field": "vlan"},
    {"id": "vlantrunk-min-above-max", "set": {"vlanTrunk": [{"minID": 20, "maxID": 10}]},
     "code": 7, "field": "vlanTrunk[0].maxID"},
    {"id": "vlantrunk-min-only", "set": {"vlanTrunk": [{"id": 3}, {"minID": 20}]},
     "code": 7, "field": "vlanTrunk[1]"},
    {"id": "vlantrunk-id-zero", "set": {"vlanTrunk": [{"id": 0}]}, "code": 7,
     "field": "vlanTrunk[0].id"},
    {"id": "vlantrunk-object", "set": {"vlanTrunk": {"id": 3}}, "code": 7, "field": "vlanTrunk"},
    {"id": "vlan-gateway-name-too-long", "set": {"bridge": "cnishcorpus0", "vlan": 4000},
     "code": 7, "field": "vlan"},
    {"id": "preservedefaultvlan-string", "set": {"preserveDefaultVlan": "yes"}, "code": 7,
     "field": "preserveDefaultVlan"},
    {"id": "macspoofchk-string", "set": {"macspoofchk": "true"}, "code": 7, "field": "macspoofchk"},
    {"id": "enabledad-string", "set": {"enabledad": "true"}, "code": 7, "field": "enabledad"},
    {"id": "disablecontainerinterface-with-ipam", "set": {"disableContainerInterface": True},
     "code": 7, "field": "disableContainerInterface"},
    {"id": "disablecontainerinterface-number", "set": {"disableContainerInterface": 1, "ipam": {}},
     "code": 7, "field": "disableContainerInterface"},
    {"id": "portisolation-string", "set": {"portIsolation": "on"}, "code": 7,
     "field": "portIsolation"},
    {"id": "ipmasqbackend-case", "set": {"ipMasqBackend": "NFTables"}, "code": 7,
     "field": "ipMasqBackend"},
    # (DEL takes no notice of the keys it never reads, such as vlan: tests/unit/test_config.py)
    {"id": "del-bad-ipmasq", "command": "DEL", "set": {"ipMasq": "yes"}, "code": 7,
     "field": "ipMasq"},
    {"id": "del-bad-macspoofchk", "command": "DEL", "set": {"macspoofchk": 1}, "code": 7,
     "field": "macspoofchk"},

    # -- MAC addresses (runtimeConfig.mac > args.cni.mac > CNI_ARGS MAC) -------------------------
    {"id": "mac-rc-garbage", "set": {"runtimeConfig": {"mac": "zz:zz:zz:zz:zz:zz"}}, "code": 7,
     "field": "runtimeConfig.mac"},
    {"id": "mac-rc-multicast", "set": {"runtimeConfig": {"mac": "01:00:5e:00:00:01"}},
     "code": 7, "field": "runtimeConfig.mac"},
    {"id": "mac-rc-broadcast", "set": {"runtimeConfig": {"mac": "ff:ff:ff:ff:ff:ff"}},
     "code": 7, "field": "runtimeConfig.mac"},
    {"id": "mac-rc-short", "set": {"runtimeConfig": {"mac": "0a:58:0a:63:00"}}, "code": 7,
     "field": "runtimeConfig.mac"},
    {"id": "mac-rc-dashes", "set": {"runtimeConfig": {"mac": "0a-58-0a-63-00-02"}}, "code": 7,
     "field": "runtimeConfig.mac"},
    {"id": "mac-rc-injection", "set": {"runtimeConfig": {"mac": "0a:58:0a:63:00:02 up"}},
     "code": 7, "field": "runtimeConfig.mac"},
    {"id": "mac-rc-number", "set": {"runtimeConfig": {"mac": 10}}, "code": 7,
     "field": "runtimeConfig.mac"},
    {"id": "mac-args-cni-garbage", "set": {"args": {"cni": {"mac": "0a:58:0a:63:00:0g"}}},
     "code": 7, "field": "args.cni.mac"},
    {"id": "mac-cni-args-garbage", "args": "MAC=$(touch $CANARY)", "code": 4,
     "field": "CNI_ARGS MAC"},
    {"id": "mac-cni-args-multicast", "args": "MAC=33:33:00:00:00:01", "code": 4,
     "field": "CNI_ARGS MAC"},
    {"id": "mac-cni-args-long", "args": "MAC=0a:58:0a:63:00:02:03", "code": 4,
     "field": "CNI_ARGS MAC"},

    # -- CHECK needs prevResult ----------------------------------------------------------------
    {"id": "check-without-prevresult", "command": "CHECK", "code": 7, "field": "prevResult"},
    {"id": "prev-interface-mac-garbage", "command": "CHECK", "prev": True,
     "set": {"prevResult.interfaces.2.mac": "not-a-mac"}, "code": 7, "field": "prevResult"},
    {"id": "prev-interface-name-nul", "command": "CHECK", "prev": True,
     "set": {"prevResult.interfaces.1.name": "veth\u0000x"}, "code": 7, "field": "prevResult"},
    {"id": "prev-interface-name-traversal", "command": "CHECK", "prev": True,
     "set": {"prevResult.interfaces.1.name": "../../../etc"}, "code": 7, "field": "prevResult"},

    # -- refused before anything changes (found by an audit: refused by the kernel half-way) ---
    {"id": "bridge-not-a-bridge", "set": {"bridge": "lo"}, "code": 7, "field": "bridge"},
    {"id": "mac-all-zero", "set": {"runtimeConfig": {"mac": "00:00:00:00:00:00"}}, "code": 7,
     "field": "runtimeConfig.mac"},
    {"id": "ifname-lo", "env": {"CNI_IFNAME": "lo"}, "code": 4, "field": "CNI_IFNAME"},
]
