"""host-device: cnish exec'd as itself with "type": "host-device", moving cnhd0 (a veth the
test creates in the private host) into the container. See README.md for the format.
"""

PLUGIN = {
    "name": "host-device",
    "exec": None,
    "uses": ("entry", "common"),
    "setup": [["ip", "link", "add", "cnhd0", "type", "veth", "peer", "name", "cnhd1"]],
    "config": {"cniVersion": "1.0.0", "name": "corpusnet", "type": "host-device",
               "device": "cnhd0"},
    "prev_result": {"cniVersion": "1.0.0",
                    "interfaces": [{"name": "eth0", "mac": "0a:58:0a:63:00:02",
                                    "sandbox": "$CONTAINER"}],
                    "ips": [{"address": "10.99.0.2/24", "interface": 0}],
                    "routes": [{"dst": "10.98.0.0/16"}]},
}

CASES = [
    {"id": "no-selector", "set": {"device": "@drop"}, "code": 7, "field": "device"},
    {"id": "device-cmdsubst", "set": {"device": "$(id)"}, "code": 7, "field": "device"},
    {"id": "device-dash", "set": {"device": "-all"}, "code": 7, "field": "device"},
    {"id": "device-space", "set": {"device": "cn hd0"}, "code": 7, "field": "device"},
    {"id": "device-traversal", "set": {"device": "../../etc"}, "code": 7, "field": "device"},
    {"id": "device-16bytes", "set": {"device": "hostdevice012345"}, "code": 7,
     "field": "device"},
    {"id": "hwaddr-garbage", "set": {"device": "@drop", "hwaddr": "0a:58:0a:63:00"}, "code": 7,
     "field": "hwaddr"},
    {"id": "hwaddr-multicast", "set": {"device": "@drop", "hwaddr": "01:80:c2:00:00:00"},
     "code": 7, "field": "hwaddr"},
    {"id": "kernelpath-relative", "set": {"device": "@drop", "kernelpath": "sys/devices/x"},
     "code": 7, "field": "kernelpath"},
    {"id": "kernelpath-traversal", "set": {"device": "@drop",
                                           "kernelpath": "/sys/devices/../../etc"},
     "code": 7, "field": "kernelpath"},
    {"id": "kernelpath-outside-sysfs", "set": {"device": "@drop", "kernelpath": "/tmp/kp"},
     "code": 7, "field": "kernelpath"},       # it could name any directory with a net/ inside
    {"id": "pcibusid-slash", "set": {"device": "@drop", "pciBusID": "0000:03:00.0/../../x"},
     "code": 7, "field": "pciBusID"},
    {"id": "pcibusid-dotdot", "set": {"device": "@drop", "pciBusID": ".."}, "code": 7,
     "field": "pciBusID"},
    {"id": "pcibusid-newline", "set": {"device": "@drop", "pciBusID": "0000:03:00.0\n"},
     "code": 7, "field": "pciBusID"},
    {"id": "pcibusid-number", "set": {"device": "@drop", "pciBusID": 3}, "code": 7,
     "field": "pciBusID"},
    {"id": "deviceid-number", "set": {"device": "@drop", "runtimeConfig": {"deviceID": 3}},
     "code": 7, "field": "runtimeConfig.deviceID"},
    {"id": "deviceid-traversal", "set": {"device": "@drop",
                                         "runtimeConfig": {"deviceID": "../../../etc"}},
     "code": 7, "field": "runtimeConfig.deviceID"},
    {"id": "check-without-prevresult", "command": "CHECK", "code": 7, "field": "prevResult"},
]
