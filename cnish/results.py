"""CNI results: one internal shape (the 1.x one) and conversion to and from every spec version.

Internal shape (what plugins build):
    {"interfaces": [{"name", "mac", "sandbox"?, "mtu"?}], "ips": [{"address", "gateway"?,
     "interface"?}], "routes": [{"dst", "gw"?, ...}], "dns": {...}}

Output follows the Go library's conversions (containernetworking/cni, pkg/types) with one deliberate
extension: a 0.3.0 result carries its address list under both "ip" (the key the 0.3.0 spec text
names) and "ips" (the key every Go runtime and plugin reads for 0.3.0), so readers of either
kind find it.
"""

from cnish.errors import INCOMPATIBLE_VERSION, CNIError

SUPPORTED_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CURRENT_VERSION = "1.1.0"


# An interface's fields in results of 0.3.0-0.4.0 and of 1.0.0-1.1.0 (libcni's types040 and
# types100: other plugins' entries of a prevResult keep what their version has).
INTERFACE_FIELDS_040 = ("name", "mac", "sandbox")
INTERFACE_FIELDS_100 = ("name", "mac", "mtu", "sandbox", "socketPath", "pciID")


def version_in_use(request) -> str:
    """The request's cniVersion when cnish supports it, else CURRENT_VERSION: what a VERSION
    answer and an error object carry."""
    asked = request.get("cniVersion") if isinstance(request, dict) else None
    return asked if asked in SUPPORTED_VERSIONS else CURRENT_VERSION


def version_key(version: str) -> tuple | None:
    """'0.4.0' -> (0, 4, 0); None when it is not a dotted triple of numbers."""
    parts = version.split(".") if isinstance(version, str) else []
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def at_least(version: str, minimum: str) -> bool:
    key = version_key(version)
    return key is not None and key >= version_key(minimum)


def _family(address: str) -> str:
    return "6" if ":" in address else "4"


def _interfaces(interfaces: list, fields: tuple) -> list:
    """The interfaces with the fields of their version only: another plugin's entry of a
    prevResult keeps no key its version lacks (as Go's decoder drops it)."""
    return [{k: v for k, v in itf.items() if k in fields} for itf in interfaces]


def convert(result: dict, version: str) -> dict:
    """Internal result -> the JSON object for `version` (cniVersion first, as runtimes print it)."""
    key = version_key(version)
    if key >= (1, 0, 0):
        out = {"cniVersion": version}
        if result.get("interfaces"):
            out["interfaces"] = _interfaces(result["interfaces"], INTERFACE_FIELDS_100)
        for field in ("ips", "routes"):
            if result.get(field):
                out[field] = result[field]
        if result.get("dns"):
            out["dns"] = result["dns"]
        return out
    if key >= (0, 3, 0):
        out = {"cniVersion": version}
        if result.get("interfaces"):
            out["interfaces"] = _interfaces(result["interfaces"], INTERFACE_FIELDS_040)
        if result.get("ips"):
            ips = [{"version": _family(ip["address"]), **ip} for ip in result["ips"]]
            if key == (0, 3, 0):
                out["ip"] = ips
            out["ips"] = ips
        if result.get("routes"):
            out["routes"] = result["routes"]
        out["dns"] = result.get("dns") or {}
        return out
    # 0.1.0 / 0.2.0: at most one address per family, routes inside the family's block.
    out = {"cniVersion": version}
    blocks = {}
    for ip in result.get("ips", []):
        family = _family(ip["address"])
        if family not in blocks:
            block = {"ip": ip["address"]}
            if ip.get("gateway"):
                block["gateway"] = ip["gateway"]
            blocks[family] = block
    if not blocks:
        raise CNIError(INCOMPATIBLE_VERSION,
                       f"cannot convert the result to cniVersion {version}: it has no IP address",
                       "results before 0.3.0 can only describe IP addresses; use cniVersion >= 0.3.0")
    for route in result.get("routes", []):
        block = blocks.get(_family(route["dst"]))
        if block is not None:
            block.setdefault("routes", []).append(
                {k: route[k] for k in ("dst", "gw") if route.get(k)})
    if "4" in blocks:
        out["ip4"] = blocks["4"]
    if "6" in blocks:
        out["ip6"] = blocks["6"]
    out["dns"] = result.get("dns") or {}
    return out


def _check_list(obj, field: str) -> list:
    value = obj.get(field, [])
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
        raise ValueError(f"{field} must be a list of objects")
    return value


def _without_empty(obj: dict, field: str) -> dict:
    """`obj` without `field` when that is an empty string: Go reads "" into a nil net.IP, so
    a Go plugin's `"gw": ""` or `"gateway": ""` means no gateway, and it writes none back."""
    return {k: v for k, v in obj.items() if k != field} if obj.get(field) == "" else obj


def _check_str(obj: dict, field: str, where: str, required: bool = False, kind: str = ""):
    """A string field of a result; `kind` also checks its form: "cidr" or "ip"
    (values that end up in commands and paths when cnish checks or deletes an attachment)."""
    value = obj.get(field)
    if value is None:
        if required:
            raise ValueError(f"{where}.{field} is missing")
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where}.{field} must be a string")
    problem = _FORMS[kind](value) if kind else None
    if problem:
        raise ValueError(f"{where}.{field}={value!r}: {problem}")
    return value


def _cidr_problem(value):
    from cnish.ipnet import Prefix, problem
    return problem(Prefix.parse, value)


def _ip_problem(value):
    from cnish.ipnet import IP, problem
    return problem(IP.parse, value)


_FORMS = {"cidr": _cidr_problem, "ip": _ip_problem}


# Spec 1.1.0's optional route fields and their ranges (they reach `ip route` as numbers).
ROUTE_EXTRAS = {"mtu": (0, 65535), "advmss": (0, 65535), "priority": (0, 4294967295),
                "table": (0, 4294967295), "scope": (0, 255)}
# What a result's routes and addresses may carry; anything else is dropped when a result is
# read, as libcni's types drop it (so no unknown key, such as a route's `src`, which cnish's
# own routes use, ever reaches a command).
ROUTE_FIELDS = ("dst", "gw", *ROUTE_EXTRAS)
IP_FIELDS = ("address", "gateway", "interface")


def route_extra_problem(value, field: str) -> str | None:
    """Why `value` cannot be the route field `field` (one of ROUTE_EXTRAS), or None."""
    lo, hi = ROUTE_EXTRAS[field]
    if not isinstance(value, int) or isinstance(value, bool):
        return "must be an integer"
    if not lo <= value <= hi:
        return f"must be between {lo} and {hi}"
    return None


def _check_route_extras(route: dict, where: str) -> None:
    for field in ROUTE_EXTRAS:
        if route.get(field) is not None:
            problem = route_extra_problem(route[field], field)
            if problem:
                raise ValueError(f"{where}.{field} {problem}")


def _canonical(entry: dict) -> dict:
    """`entry` with its addresses in the one spelling `ip` prints and the reference's results
    use ("FD7A:0::5" -> "fd7a::5"): CHECK compares them with what `ip` prints, DEL and GC
    match them against the store and the rules (an audit found CHECK failing on every healthy
    attachment whose result had an upper-case or uncompressed IPv6 gateway)."""
    from cnish.ipnet import IP, Prefix
    for key, parse in (("address", Prefix.parse), ("gateway", IP.parse),
                       ("dst", Prefix.parse), ("gw", IP.parse)):
        if isinstance(entry.get(key), str) and entry[key]:
            value = parse(entry[key])                  # (checked already: _check_str)
            if key == "dst" and value.version == 6:    # (the kernel's route is to the network,
                value = value.subnet                   # whatever the host bits said)
            entry[key] = str(value)
    return entry


def parse(obj, version: str) -> dict:
    """A result of any version (prevResult, a delegated IPAM plugin's output) -> internal shape.

    Raises ValueError naming the offending field; callers turn it into the right CNI error.
    """
    if not isinstance(obj, dict):
        raise ValueError("must be a JSON object")
    version = obj.get("cniVersion") or version
    key = version_key(version)
    if key is None:
        raise ValueError(f"cniVersion {version!r} is not a version")
    out = {"interfaces": [], "ips": [], "routes": [], "dns": {}}
    if key < (0, 3, 0) or "ip4" in obj or "ip6" in obj:
        for family in ("ip4", "ip6"):
            block = obj.get(family)
            if block is None:
                continue
            if not isinstance(block, dict):
                raise ValueError(f"{family} must be an object")
            ip = {"address": _check_str(block, "ip", family, required=True, kind="cidr")}
            gateway = _check_str(block, "gateway", family, kind="ip")
            if gateway:
                ip["gateway"] = gateway
            out["ips"].append(_canonical(ip))
            for i, route in enumerate(_check_list(block, "routes")):
                _check_str(route, "dst", f"{family}.routes[{i}]", required=True, kind="cidr")
                _check_str(route, "gw", f"{family}.routes[{i}]", kind="ip")
                out["routes"].append(_canonical({k: route[k] for k in ("dst", "gw")
                                                 if route.get(k)}))
    else:
        # Interfaces are passed on as they are: in a chain, other plugins' entries need not
        # look like cnish's (a vhost-user `socketPath`, a name that is no kernel name, an empty
        # MAC), and refusing them would fail every DEL of the attachment for good. Only their
        # fields' types are checked here; the values cnish takes from its own entries are
        # checked where it takes them (plugins/common.py: own_part, container_mac).
        for i, itf in enumerate(_check_list(obj, "interfaces")):
            for field in ("name", "mac", "sandbox", "socketPath", "pciID"):
                _check_str(itf, field, f"interfaces[{i}]")
            mtu = itf.get("mtu")
            if mtu is not None and (not isinstance(mtu, int) or isinstance(mtu, bool)):
                raise ValueError(f"interfaces[{i}].mtu must be an integer")
            out["interfaces"].append(dict(itf))
        ips = obj.get("ips") if obj.get("ips") is not None else obj.get("ip")
        for i, ip in enumerate(_check_list({"ips": ips}, "ips")):
            _check_str(ip, "address", f"ips[{i}]", required=True, kind="cidr")
            _check_str(_without_empty(ip, "gateway"), "gateway", f"ips[{i}]", kind="ip")
            index = ip.get("interface")
            if type(index) is int and index == -1:
                # "no interface": the spec's upgrade guide has runtimes tolerate it, and Go's
                # types read it (refused, every DEL of the attachment failed: an audit's find)
                ip, index = {k: v for k, v in ip.items() if k != "interface"}, None
            if index is not None and (not isinstance(index, int) or isinstance(index, bool)
                                      or not 0 <= index < 2 ** 31):
                # (an index into `interfaces`: a runtime in Go reads it into an int, and a result
                # it cannot read fails the attachment after the fact)
                raise ValueError(f"ips[{i}].interface must be an integer from 0 to 2^31-1")
            out["ips"].append(_canonical({k: v for k, v in _without_empty(ip, "gateway").items()
                                          if k in IP_FIELDS}))
        for i, route in enumerate(_check_list(obj, "routes")):
            route = _without_empty(route, "gw")
            _check_str(route, "dst", f"routes[{i}]", required=True, kind="cidr")
            _check_str(route, "gw", f"routes[{i}]", kind="ip")
            _check_route_extras(route, f"routes[{i}]")
            out["routes"].append(_canonical({k: v for k, v in route.items()
                                             if k in ROUTE_FIELDS}))
    dns = obj.get("dns") or {}
    if not isinstance(dns, dict):
        raise ValueError("dns must be an object")
    for field in ("nameservers", "search", "options"):     # (the spec's types, which a runtime
        value = dns.get(field)                              # decodes the result into)
        if value is not None and (not isinstance(value, list)
                                  or not all(isinstance(v, str) for v in value)):
            raise ValueError(f"dns.{field} must be a list of strings")
    _check_str(dns, "domain", "dns")
    out["dns"] = dns
    return out
