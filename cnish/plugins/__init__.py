"""The plugin types cnish implements, imported only when used: a module per plugin, or an
object in a module (module:NAME) where plugins share one (sublink.py).

Each plugin module provides the Python half of a plugin, while plans/<type>.toml holds the
commands. What the engine (engine.py) uses:
- every plugin: TYPE, KIND ("interface" or "ipam"), CNI_ARGS (the CNI_ARGS keys it reads),
  parse(fields, op) -> its validated config; optionally DEL_TOLERATES, the config keys its
  DEL and GC never read (a bad value of one is taken out of their config: engine.py), and
  DEL_TOLERATES_CAPABILITIES, the same for capability arguments (runtimeConfig's keys);
- interface plugins: prepare(op) -> the per-container values its recipe reads, and
  result(op, att) -> its CNI result; optionally check_early(op) (what needs the plugin's and
  the IPAM's config together), tools(op) (the programs ADD needs, for STATUS), status(op),
  and WORKS_ON_LO (loopback: CNI_IFNAME=lo is its own; the others' ADD and CHECK refuse it);
- IPAM plugins: ipam_add, ipam_del, ipam_check, ipam_gc, ipam_status, called by the main
  plugin through the Operation; optionally ipam_abandon (delegate.py) and
  RESERVES_PER_ATTACHMENT (host-local: what its DEL releases is exactly what this attachment's
  ADD reserved, which host-device's DEL relies on).
"""

PLUGINS = {
    "bridge": "cnish.plugins.bridge",
    "macvlan": "cnish.plugins.sublink:MACVLAN",      # the links on a master share a module
    "ipvlan": "cnish.plugins.sublink:IPVLAN",
    "vlan": "cnish.plugins.sublink:VLAN",
    "dummy": "cnish.plugins.sublink:DUMMY",
    "ptp": "cnish.plugins.ptp",
    "host-device": "cnish.plugins.hostdevice",
    "loopback": "cnish.plugins.loopback",
    "host-local": "cnish.plugins.hostlocal",
    "static": "cnish.plugins.static",
}

PREFIX = "cnish-"

# Set in a delegated IPAM plugin's environment (delegate.py). If that plugin turns out to be
# cnish again serving a main plugin (ipam.type names cnish's launcher, or a link to it under a
# name cnish does not implement, so the config's own type decides), it refuses (cni.py)
# instead of delegating once more, which would exec itself without end.
DELEGATED_BY = "CNISH_IPAM_OF"


def canonical(type_name: str) -> str:
    """"cnish-bridge" -> "bridge": the prefix lets a cnish binary sit beside the reference's."""
    if isinstance(type_name, str) and type_name.startswith(PREFIX):
        return type_name[len(PREFIX):]
    return type_name


def get(type_name: str):
    """The plugin module for a type, or None when cnish does not implement it."""
    where = PLUGINS.get(canonical(type_name))
    if where is None:
        return None
    module, _, name = where.partition(":")
    # __import__ rather than importlib.import_module: importlib costs ~0.6 ms at each start
    loaded = __import__(module, fromlist=["TYPE"])
    return getattr(loaded, name) if name else loaded


def implemented() -> list[str]:
    return sorted(PLUGINS)
