"""The plugin types cnish implements, imported only when used.

Each plugin module provides the Python half of a plugin — validating its config keys,
deriving the per-container values its recipe needs (`prepare`) and building its CNI result —
while plans/<type>.toml holds the commands. IPAM modules additionally provide
ipam_add / ipam_del / ipam_check for main plugins that embed them.
"""

PLUGINS = {
    "bridge": "cnish.plugins.bridge",
    "macvlan": "cnish.plugins.macvlan",
    "ipvlan": "cnish.plugins.ipvlan",
    "vlan": "cnish.plugins.vlan",
    "dummy": "cnish.plugins.dummy",
    "ptp": "cnish.plugins.ptp",
    "host-device": "cnish.plugins.hostdevice",
    "loopback": "cnish.plugins.loopback",
    "host-local": "cnish.plugins.hostlocal",
    "static": "cnish.plugins.static",
}

PREFIX = "cnish-"


def canonical(type_name: str) -> str:
    """"cnish-bridge" -> "bridge": the prefix lets a cnish binary sit beside the reference's."""
    if isinstance(type_name, str) and type_name.startswith(PREFIX):
        return type_name[len(PREFIX):]
    return type_name


def get(type_name: str):
    """The plugin module for a type, or None when cnish does not implement it."""
    module = PLUGINS.get(canonical(type_name))
    # __import__ rather than importlib.import_module: importlib costs ~0.6 ms at each start
    return __import__(module, fromlist=["TYPE"]) if module else None


def implemented() -> list[str]:
    return sorted(PLUGINS)
