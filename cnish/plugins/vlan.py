"""The vlan plugin (see sublink.py for what it shares with the other links-on-a-master)."""

from cnish.plugins import sublink

TYPE = "vlan"
KIND = "interface"
CNI_ARGS = frozenset()


def parse(fields, op) -> dict:
    return sublink.parse(fields, op, TYPE)


prepare = sublink.prepare
result = sublink.result
tools = sublink.tools
status = sublink.status
