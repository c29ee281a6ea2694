"""The macvlan plugin (see sublink.py for what it shares with the other links-on-a-master)."""

from cnish.plugins import sublink

TYPE = "macvlan"
KIND = "interface"
CNI_ARGS = frozenset({"MAC"})        # CNI_ARGS MAC= sets the link's MAC


def parse(fields, op) -> dict:
    return sublink.parse(fields, op, TYPE)


prepare = sublink.prepare
result = sublink.result
tools = sublink.tools
status = sublink.status
