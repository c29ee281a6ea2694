"""static IPAM: addresses given by the config or the runtime, no state
(containernetworking/plugins, plugins/ipam/static).

Config (inside `ipam`): `addresses` [{`address` (CIDR, required), `gateway`}], `routes`, `dns`.
The runtime may add or replace addresses: CNI_ARGS `IP=` (comma-separated CIDRs, appended) and
`GATEWAY=` (comma-separated, applied to the addresses whose subnet contains them),
`args.cni.ips` (replaces), `runtimeConfig.ips` (replaces, highest precedence).
ADD returns the addresses; DEL has nothing to release; CHECK compares prevResult with the
configured addresses and gateways.
"""

from cnish.config import Fields, parse_dns, parse_routes
from cnish.errors import CHECK_FAILED, CNIError, invalid_config
from cnish.ipnet import IP, Prefix, special_use

TYPE = "static"
KIND = "ipam"
CNI_ARGS = frozenset({"IP", "GATEWAY"})
DEL_TOLERATES = ("routes", "dns")              # keys DEL and GC never read (engine.py)


def _prefix(value, where: str, op) -> Prefix:
    try:
        prefix = Prefix.parse(value)
    except ValueError as exc:
        raise invalid_config(where, value, f"must be an address with a prefix length: {exc}") from None
    if op.command != "DEL":                     # (DEL removes what there is)
        _usable(prefix.ip, where, value)
    return prefix


def _usable(ip: IP, where: str, value) -> None:
    """Refuse what no interface can use (a loopback or multicast address, 0.0.0.0/0 ...) before
    anything runs: the kernel would take some of them onto the bridge, or fail half-way."""
    special = special_use(ip)
    if special:
        raise invalid_config(where, value, f"is in {special}, whose addresses an interface "
                             "cannot use")


def _gateway(address: Prefix, gateway: IP, where: str, value) -> None:
    _usable(gateway, where, value)
    if gateway.version != address.version:
        raise invalid_config(where, value, f"is not of the IP family of its address {address}")


def parse(fields: Fields, op) -> dict:
    addresses, seen = [], {}          # seen: address -> its index
    for i, entry in enumerate(fields.items("addresses", dict, "an object")):
        af = Fields(entry, f"{fields.path('addresses')}[{i}]")
        address = af.cidr("address")
        if address is None:
            raise invalid_config(af.path("address"), None, "is required")
        prefix = _prefix(address, af.path("address"), op)
        twice = seen.setdefault(str(prefix.ip), i)
        # (the second `ip addr add` would fail, after the rest; DEL removes what there is)
        if twice != i and op.command != "DEL":
            raise invalid_config(af.path("address"), address,
                                 f"is the address of {fields.path('addresses')}[{twice}] again")
        item = {"address": address}
        gateway = af.ip("gateway")
        if gateway is not None and op.command != "DEL":
            _gateway(prefix, IP.parse(gateway), af.path("gateway"), gateway)
            item["gateway"] = gateway
        addresses.append(item)
    return {"type": TYPE, "addresses": addresses, "routes": parse_routes(fields),
            "dns": parse_dns(fields.sub("dns"))}


def addresses(op, lenient: bool = False) -> list:
    """The addresses of this attachment after the runtime's additions and replacements.
    `lenient` (DEL): a runtime's value that cannot be read is passed over, and none at all is
    no error."""
    conf = op.ipam_conf
    out = [dict(a) for a in conf.addresses]
    args = op.runtime.args
    source = {}                                 # address -> where the runtime gave it
    from_args = []

    def readable(value, where) -> bool:
        try:
            _prefix(value, where, op)
        except CNIError:
            if lenient:
                return False
            raise
        return True
    if args.get("IP"):
        for text in args["IP"].split(","):
            text = text.strip()                 # ("IP=a, b": trimmed, as the reference)
            if not readable(text, "CNI_ARGS IP"):
                continue
            text = str(Prefix.parse(text))      # (as the config's: config.Fields.cidr)
            from_args.append({"address": text})
            source[text] = "CNI_ARGS IP"
    # GATEWAY= gives CNI_ARGS IP='s addresses their gateway, as the reference's does (the
    # config's keep theirs: it reads them after this); lost with them when args.cni.ips or
    # runtimeConfig.ips replace them below
    if args.get("GATEWAY"):
        for text in args["GATEWAY"].split(","):
            text = text.strip()
            try:
                gw = IP.parse(text)
            except ValueError as exc:
                if lenient:
                    continue
                raise invalid_config("CNI_ARGS GATEWAY", text, str(exc)) from None
            if op.command != "DEL":
                _usable(gw, "CNI_ARGS GATEWAY", text)
            for item in from_args:
                if Prefix.parse(item["address"]).contains(gw):
                    item["gateway"] = str(gw)
    out += from_args
    replaced = None
    args_ips = op.args_cni.get("ips")
    if args_ips:
        replaced = ("args.cni.ips", args_ips)
    rc_ips = op.runtime_config.get("ips")
    if rc_ips:
        replaced = ("runtimeConfig.ips", rc_ips)
    if replaced:
        where, values = replaced
        if not isinstance(values, list):
            if not lenient:
                raise invalid_config(where, values,
                                     "must be a list of addresses with prefix lengths")
            values = []
        values = [str(Prefix.parse(v)) for v in values if readable(v, where)]
        out = [{"address": v} for v in values]
        source = dict.fromkeys(values, where)
    if not out and not lenient:
        raise invalid_config("ipam.addresses", [], "static IPAM needs at least one address")
    seen = set()
    for item in out:        # (the second `ip addr add` of one address would fail half-way)
        ip = Prefix.parse(item["address"]).ip
        if ip in seen and op.command != "DEL":
            raise invalid_config(source.get(item["address"], "ipam.addresses"), item["address"],
                                 "names an address this attachment already gets")
        seen.add(ip)
    families = [Prefix.parse(a["address"]).version for a in out]
    if max(families.count(4), families.count(6)) > 1 and op.version in ("0.1.0", "0.2.0") \
            and op.command == "ADD":                 # (a limit of the result only ADD prints)
        raise invalid_config("cniVersion", op.version,
                             "several addresses of one IP family need cniVersion 0.3.0 or later")
    return out


def _result(op) -> dict:
    conf = op.ipam_conf
    return {"ips": addresses(op), "routes": [dict(r) for r in conf.routes], "dns": dict(conf.dns)}


def ipam_add(op):
    return {}, _result(op)


def ipam_del(op):
    """Nothing to release; the configured addresses are what the attachment had, for a DEL
    without prevResult (the masquerade jumps name them). Addresses ADD would refuse (none at
    all, a CNI_ARGS IP= without a prefix length, as podman's --ip sends) are not an error
    here: the runtime retries a failed DEL for good, and the reference's static DEL reads
    nothing. DEL passes over them (and goes by prevResult, or by the addresses on the
    interface, when none is left)."""
    return {}, [a["address"].split("/")[0] for a in addresses(op, lenient=True)]


def ipam_check(op, ips: list):
    """The configured addresses that appear in prevResult must have the configured gateway.
    An address configured without one accepts any: the main plugin may have added its own
    (bridge with isGateway does), as the reference's CHECK allows."""
    expected = {a["address"]: a.get("gateway") for a in addresses(op)}
    for entry in ips:
        if expected.get(entry["address"]) not in (None, entry.get("gateway")):
            raise CNIError(CHECK_FAILED, f"static: address {entry['address']} has gateway "
                           f"{entry.get('gateway')}, configured {expected[entry['address']]}")
    return {}


def ipam_status(op) -> None:
    return None


def ipam_gc(op, valid: set) -> dict:
    return {}


# -- as a plugin of its own (cnish installed as `static`) ---------------------------------------

def prepare(op) -> dict:
    att = {"cid": op.runtime.container_id, "ifname": op.runtime.ifname, "ipam": {}}
    if op.command in ("GC", "STATUS"):
        return att
    if op.command == "ADD":
        op.ipam_result = _result(op)
    elif op.command == "CHECK":
        # (static keeps no state: the result is all there is to compare)
        from cnish.plugins.common import prev_for_check
        ipam_check(op, prev_for_check(op).get("ips", []))
    return att


def result(op, att) -> dict:
    return op.ipam_result
