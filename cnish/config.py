"""Parsing and validation at the boundary: environment, stdin, and the common config keys.

Everything a runtime or an operator hands to cnish passes through here first and comes out as
checked values, or as a CNIError with the spec's code and a message that names the variable or
field: 4 for the environment, 5/6 for reading and decoding stdin, 7 for the config, 1 for the
version. Nothing on the host is touched before this module has said yes.
"""

import os

from cnish import jsonfast, results
from cnish.errors import (DECODE_FAILURE, INCOMPATIBLE_VERSION, INVALID_CONFIG, INVALID_ENV,
                          IO_FAILURE, CNIError, invalid_config)
from cnish.validate import (CONTROLS, KERNEL_KEEPS, identifier_problem, ifname_problem,
                            mac_problem, path_problem)

VERBS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")

# Which variables each verb needs (the spec's "Parameters", as the reference's skel, pkg/skel,
# checks them).
REQUIRED_ENV = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
    "GC": ("CNI_PATH",),
    "STATUS": ("CNI_PATH",),
    "VERSION": (),
}

# The oldest config version that allows each verb (libcni / skel rules).
MIN_VERSION = {"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}

STDIN_LIMIT = 4 << 20     # 4 MiB: far above any real config, small enough to refuse a flood


class Conf:
    """Validated config values, read-only. Templates and recipes read them as `conf.<jsonKey>`,
    with the same names as in the network config JSON."""

    __slots__ = ("_values",)

    def __init__(self, values: dict):
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, key):
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(key) from None

    def __getitem__(self, key):
        return self._values[key]

    def __setattr__(self, key, value):
        raise AttributeError("Conf is read-only")

    def get(self, key, default=None):
        return self._values.get(key, default)

    def as_dict(self) -> dict:
        return dict(self._values)

    def __repr__(self) -> str:
        return f"Conf({self._values!r})"


class Fields:
    """Typed reads of one JSON object, raising code 7 errors that name the full field path."""

    def __init__(self, obj: dict, where: str = ""):
        self.obj = obj
        self.where = where

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def has(self, key: str) -> bool:
        return self.obj.get(key) is not None

    def flag(self, key: str, default: bool | None = False) -> bool | None:
        value = self.obj.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise invalid_config(self.path(key), value, "must be true or false")
        return value

    def integer(self, key: str, default: int = 0, lo: int | None = None, hi: int | None = None) -> int:
        value = self.obj.get(key)
        if value is None:
            return default
        # (1400.0 and 1e3 too: the reference's Go decoder refuses a number with a fraction or
        # an exponent for an integer field)
        if not isinstance(value, int) or isinstance(value, bool):
            raise invalid_config(self.path(key), value, "must be an integer")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise invalid_config(self.path(key), value, f"must be between {lo} and {hi}")
        return value

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.obj.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise invalid_config(self.path(key), value, "must be a string")
        return value

    def choice(self, key: str, default: str, choices: tuple) -> str:
        value = self.text(key, default)
        if value not in choices:
            raise invalid_config(self.path(key), value, "must be one of " + ", ".join(choices))
        return value

    def ifname(self, key: str, default: str | None = None) -> str | None:
        value = self.text(key, default)
        if value is not None:
            problem = ifname_problem(value)
            if problem:
                raise invalid_config(self.path(key), value, "an interface name " + problem)
        return value

    def abspath(self, key: str, default: str | None = None) -> str | None:
        value = self.text(key, default)
        if value is not None:
            problem = path_problem(value)
            if problem:
                raise invalid_config(self.path(key), value, "a path " + problem)
        return value

    # IP addresses are given back in the one spelling `ip` prints and the reference's results
    # use ("2001:DB8:0::1" -> "2001:db8::1"): the plans compare them with what `ip` prints (an
    # audit found a second container's ADD refused, and every CHECK failing, for an upper-case
    # IPv6 gateway), and the result echoes them.
    def ip(self, key: str) -> str | None:
        """An IP address (no prefix length), or None when the key is absent."""
        from cnish.ipnet import IP
        value = self.text(key)
        if value is None:
            return None
        try:
            return str(IP.parse(value))
        except ValueError as exc:
            raise invalid_config(self.path(key), value, str(exc)) from None

    def cidr(self, key: str) -> str | None:
        """An address with a prefix length ("10.1.0.0/16"), or None when the key is absent."""
        from cnish.ipnet import Prefix
        value = self.text(key)
        if value is None:
            return None
        try:
            return str(Prefix.parse(value))
        except ValueError as exc:
            raise invalid_config(self.path(key), value,
                                 f"must be an address with a prefix length: {exc}") from None

    def mac(self, key: str) -> str | None:
        value = self.text(key)
        if value is not None:
            problem = mac_problem(value)
            if problem:
                raise invalid_config(self.path(key), value, "a MAC address " + problem)
            value = value.lower()
        return value

    def object(self, key: str) -> dict:
        value = self.obj.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise invalid_config(self.path(key), value, "must be an object")
        return value

    def items(self, key: str, of=None, what: str = "") -> list:
        value = self.obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise invalid_config(self.path(key), value, "must be a list")
        if of is not None:
            for i, item in enumerate(value):
                if not isinstance(item, of) or isinstance(item, bool) and of is not bool:
                    raise invalid_config(f"{self.path(key)}[{i}]", item, f"must be {what}")
        return value

    def sub(self, key: str) -> "Fields":
        return Fields(self.object(key), self.path(key))


# -- the environment -----------------------------------------------------------------------------

class RuntimeArgs:
    """The CNI_* environment of one invocation, validated."""

    __slots__ = ("command", "container_id", "netns", "ifname", "args", "path", "args_text",
                 "netns_override")

    def __init__(self, command, container_id="", netns="", ifname="", args=None, path=(),
                 args_text="", netns_override=False):
        self.command = command
        self.container_id = container_id
        self.netns = netns
        self.ifname = ifname
        self.args = args or {}
        self.path = tuple(path)
        self.args_text = args_text
        self.netns_override = netns_override


def parse_cni_args(text: str) -> dict:
    """CNI_ARGS "K1=V1;K2=V2" -> dict. Empty pairs (a trailing ';') are ignored. An empty key
    ("=V") is a key like any other that no plugin knows, as in the reference's LoadArgs:
    IgnoreUnknown lets it through (refusing it failed the attachment's every DEL)."""
    out = {}
    for pair in text.split(";"):
        if pair == "":
            continue
        key, sep, value = pair.partition("=")
        if not sep or "=" in value:
            raise CNIError(INVALID_ENV, f"invalid CNI_ARGS: {pair!r} is not KEY=VALUE",
                           f"CNI_ARGS={text}")
        out[key] = value
    return out


def check_cni_args(args: dict, known: frozenset, text: str) -> None:
    """Refuse unknown keys unless IgnoreUnknown=1|true, as the reference's LoadArgs does (and
    as it does, refuse an IgnoreUnknown that is no boolean)."""
    ignore = args.get("IgnoreUnknown", "0").lower()
    if ignore not in ("1", "true", "0", "false"):
        raise CNIError(INVALID_ENV, "invalid CNI_ARGS: IgnoreUnknown must be 1, true, 0 or false",
                       f"CNI_ARGS={text}")
    if ignore in ("1", "true"):
        return
    unknown = sorted(k for k in args if k not in known and k != "IgnoreUnknown")
    if unknown:
        raise CNIError(INVALID_ENV, "invalid CNI_ARGS: unknown key(s) "
                       + ", ".join(k or '"" (empty)' for k in unknown),
                       f"CNI_ARGS={text}; this plugin understands {', '.join(sorted(known))}; "
                       "add IgnoreUnknown=1 to pass other keys through")


NS_GET_NSTYPE = 0xB703       # ioctl on a namespace file: which kind of namespace it is
CLONE_NEWNET = 0x40000000    # (the kind of a network namespace; netns.py enters one with it)


def netns_problem(path: str, allow_own: bool = False) -> str | None:
    """Why `path` cannot be the container's network namespace, or None.

    Opens the path (never enters it) and asks the kernel what it is (ioctl NS_GET_NSTYPE),
    so a regular file, a directory or another kind of namespace is refused before any
    command runs. The host's own namespace is refused too: configuring it as a "container"
    would move and re-address the host's interfaces. `allow_own` (CNI_NETNS_OVERRIDE, as
    the reference's skel has it) lifts only that last refusal.
    """
    problem = path_problem(path)
    if problem:
        return "a path " + problem
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)   # (a FIFO must not hang)
    except OSError as exc:
        return f"cannot be opened: {exc.strerror}"
    try:
        import fcntl
        try:
            kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
        except OSError:
            return "is not a namespace"
        if kind != CLONE_NEWNET:
            return "is a namespace but not a network namespace"
        try:
            own = os.stat("/proc/self/ns/net")
            theirs = os.fstat(fd)
        except OSError:
            return None
        if (own.st_dev, own.st_ino) == (theirs.st_dev, theirs.st_ino) and not allow_own:
            return "is cnish's own network namespace (the host's), not a container's"
    finally:
        os.close(fd)
    return None


def parse_env(env, command: str | None = None, netns_exists: bool = True) -> RuntimeArgs:
    """Validate the CNI_* variables the way the reference's skel does (code 4, naming them).

    `netns_exists=False` (the operator's --create-netns) only checks the path's form: the
    namespace is created by the plan's first step.
    """
    command = command or env.get("CNI_COMMAND", "")
    if command not in VERBS:
        raise CNIError(INVALID_ENV, f"unknown CNI_COMMAND: {command}",
                       "CNI_COMMAND must be one of " + ", ".join(VERBS))
    missing = [v for v in REQUIRED_ENV[command] if not env.get(v)]
    if missing:
        raise CNIError(INVALID_ENV, f"required env variables [{','.join(missing)}] missing")
    args = RuntimeArgs(command)
    if command in ("ADD", "DEL", "CHECK"):
        cid = env["CNI_CONTAINERID"]
        problem = identifier_problem(cid)
        if problem:
            raise CNIError(INVALID_ENV, f"invalid CNI_CONTAINERID: container id {problem}",
                           f"CNI_CONTAINERID={cid!r}")
        ifname = env["CNI_IFNAME"]
        problem = ifname_problem(ifname)
        if problem and command == "DEL" and ifname in KERNEL_KEEPS:
            problem = None      # (no link has it: the DEL after a refused ADD finds nothing)
        if problem:
            raise CNIError(INVALID_ENV, f"invalid CNI_IFNAME: interface name {problem}",
                           f"CNI_IFNAME={ifname!r}")
        args.container_id = cid
        args.ifname = ifname
        args.netns = env.get("CNI_NETNS", "")
        args.netns_override = env.get("CNI_NETNS_OVERRIDE", "").lower() in ("1", "true")
        if command != "DEL" and netns_exists:
            problem = netns_problem(args.netns, allow_own=args.netns_override)
            if problem:
                raise CNIError(INVALID_ENV, f"invalid CNI_NETNS: {args.netns!r} {problem}",
                               "CNI_NETNS must be the path of the container's network namespace")
        elif command != "DEL":
            problem = path_problem(args.netns)
            if problem:
                raise CNIError(INVALID_ENV, f"invalid CNI_NETNS: {args.netns!r} a path {problem}")
    args.args_text = env.get("CNI_ARGS", "")
    args.args = parse_cni_args(args.args_text)
    args.path = tuple(p for p in env.get("CNI_PATH", "").split(":") if p)
    return args


# -- stdin and the common keys -------------------------------------------------------------------

def read_stdin(stream) -> bytes:
    if stream is None:
        raise CNIError(IO_FAILURE, "cannot read the network config from stdin",
                       "stdin is closed")
    try:
        data = stream.read(STDIN_LIMIT + 1)
    except OSError as exc:
        raise CNIError(IO_FAILURE, "cannot read the network config from stdin", str(exc)) from None
    if len(data) > STDIN_LIMIT:
        raise CNIError(DECODE_FAILURE, "network config on stdin is too large",
                       f"more than {STDIN_LIMIT} bytes")
    return data


def decode_config(data: bytes) -> dict:
    try:
        conf = jsonfast.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CNIError(DECODE_FAILURE, "failed to decode the network config on stdin as JSON",
                       str(exc)) from None
    if not isinstance(conf, dict):
        raise CNIError(DECODE_FAILURE, "the network config on stdin must be a JSON object")
    if _depth(conf) > MAX_DEPTH:
        raise CNIError(DECODE_FAILURE, "the network config on stdin is nested too deeply",
                       f"more than {MAX_DEPTH} levels of objects and lists")
    return canonical_keys(conf)


MAX_DEPTH = 64       # a config needs ten or so; Python's encoder gives up near a thousand


# The keys of network configs, IPAM configs and results that cnish reads. The reference plugins
# decode configs with Go's encoding/json, which matches an object's keys to a struct's fields
# regardless of case ("isgateway" sets isGateway): canonical_keys renames such keys to these
# spellings, so that a config means to cnish what it means to them (read exactly, "isgateway"
# was ignored and the bridge got no gateway: an audit's find). tests/unit/test_config.py
# checks that no two of them fold alike and that the plugins' field reads are listed.
CONFIG_KEYS = (
    "cniVersion", "cniVersions", "name", "type", "ipam", "dns", "runtimeConfig", "prevResult",
    "args", "cni", "capabilities", "logFile",
    # bridge, ptp, macvlan, ipvlan, vlan, dummy, host-device
    "bridge", "isGateway", "isDefaultGateway", "forceAddress", "ipMasq", "ipMasqBackend", "mtu",
    "hairpinMode", "promiscMode", "vlan", "vlanTrunk", "id", "minID", "maxID",
    "preserveDefaultVlan", "macspoofchk", "enabledad", "portIsolation",
    "disableContainerInterface", "acceptRA", "master", "mode", "linkInContainer", "bcqueuelen",
    "vlanId", "device", "hwaddr", "kernelpath", "pciBusID", "deviceID",
    # host-local, static, their routes and dns; runtimeConfig and args.cni
    "ranges", "subnet", "rangeStart", "rangeEnd", "gateway", "routes", "dst", "gw", "advmss",
    "priority", "table", "scope", "src", "dataDir", "resolvConf", "addresses", "address",
    "nameservers", "domain", "search", "options", "ips", "mac", "ipRanges",
    # results (prevResult) and GC's attachments
    "interfaces", "interface", "sandbox", "socketPath", "pciID", "version", "ip4", "ip6", "ip",
    "cni.dev/valid-attachments", "containerID", "ifname",
)
_FOLDED = {key.lower(): key for key in CONFIG_KEYS}
_KNOWN = frozenset(CONFIG_KEYS)


def _fold(key: str) -> str:
    """Go's case folding of a key against ASCII field names (EqualFold: the Kelvin sign is k,
    the long s is s; lower() already maps the first)."""
    return key.lower().replace("\u017f", "s")


# Where Go decodes into structs (whose keys fold) rather than maps (whose keys are data, such as
# runtimeConfig's aliases or pod annotations, and capabilities): a struct's children that are
# structs too, or lists of them ([S]); anything else is a value, kept as written.
_RESULT_SCHEMA = {"interfaces": [{}], "ips": [{}], "routes": [{}], "dns": {},
                  "ip4": {"routes": [{}]}, "ip6": {"routes": [{}]}}
_SCHEMA = {"ipam": {"ranges": [[{}]], "routes": [{}], "addresses": [{}], "dns": {}},
           "dns": {}, "runtimeConfig": {"ipRanges": [[{}]]}, "args": {"cni": {}},
           "prevResult": _RESULT_SCHEMA, "vlanTrunk": [{}],
           "cni.dev/valid-attachments": [{}], "cni.dev/attachments": [{}]}


def canonical_keys(conf: dict) -> dict:
    """`conf` with the keys of its structs that match a known key but for case renamed to it,
    as Go's decoder reads them: keys that fold alike decode into one field, the later value
    over the earlier (structs merged, as Go decodes into the struct it has). Maps keep their
    keys. A new object: the caller's (the CLI's capability arguments, say) is not changed."""
    return _canonical(conf, _SCHEMA)


def _canonical(value, schema, into: dict | None = None):
    """`value` read against `schema`; `into`: the struct an earlier key of the same field
    left, which Go decodes this one into (field by field, structs all the way down, lists
    and values replaced)."""
    if isinstance(schema, list):
        return [_canonical(item, schema[0]) for item in value] if isinstance(value, list) \
            else value
    if not isinstance(value, dict):
        return value
    out = dict(into or {})
    for key, item in value.items():
        if key not in _KNOWN:
            key = _FOLDED.get(_fold(key), key)
        child = schema.get(key)
        if child is not None:
            earlier = out.get(key) if isinstance(child, dict) else None
            item = _canonical(item, child, earlier if isinstance(earlier, dict) else None)
        out.pop(key, None)                      # (the later one wins, in its place)
        out[key] = item
    return out


def _depth(value) -> int:
    """How deeply objects and lists nest in a decoded document (iteratively: no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, level)
        if level <= MAX_DEPTH:
            stack.extend((child, level + 1) for child in item)
    return deepest


def check_name(conf: dict) -> str:
    name = conf.get("name")
    if name is None or name == "":
        raise CNIError(INVALID_CONFIG, "missing network name", "the config has no \"name\"")
    problem = identifier_problem(name)
    if problem:
        from cnish.errors import _show
        raise CNIError(INVALID_CONFIG, "invalid characters found in network name",
                       f"name={_show(name)}: {problem}")
    return name


def check_version(conf: dict, command: str) -> str:
    """The request's cniVersion, which must be one cnish serves exactly (code 1 otherwise)."""
    version = conf.get("cniVersion")
    if version is None or version == "":        # (libcni reads a missing, null or empty one alike)
        version = "0.1.0"
    if not isinstance(version, str):
        raise invalid_config("cniVersion", version, "must be a string such as \"1.0.0\"")
    if version not in results.SUPPORTED_VERSIONS:
        raise CNIError(INCOMPATIBLE_VERSION, "incompatible CNI versions",
                       f'config is "{version}", plugin supports '
                       + jsonfast.dumps(list(results.SUPPORTED_VERSIONS)))
    minimum = MIN_VERSION.get(command)
    if minimum and not results.at_least(version, minimum):
        raise CNIError(INCOMPATIBLE_VERSION, f"config version does not allow {command}",
                       f'config is "{version}"; {command} needs cniVersion {minimum} or later')
    return version


def parse_dns(fields: Fields) -> dict:
    """The `dns` object: nameservers, domain, search, options (only the keys that are set)."""
    out = {}
    for key in ("nameservers", "search", "options"):
        value = fields.items(key, str, "a string")
        if value:
            out[key] = list(value)
    domain = fields.text("domain")
    if domain:
        out["domain"] = domain
    # A runtime writes these into the container's resolv.conf, one entry per line: a line
    # break (or another control character) in one would add lines of the config's choosing
    # (a nameserver).
    for key, values in (("domain", [domain] if domain else []), ("search", out.get("search", [])),
                        ("options", out.get("options", []))):
        for i, value in enumerate(values):
            if any(ord(c) in CONTROLS for c in value):
                where = fields.path(key) if key == "domain" else f"{fields.path(key)}[{i}]"
                raise invalid_config(where, value, "must not contain control characters "
                                     "(the runtime writes it into resolv.conf as a line)")
    for i, server in enumerate(out.get("nameservers", [])):
        from cnish.ipnet import IP
        try:
            IP.parse(server)
        except ValueError:
            raise invalid_config(f"{fields.path('nameservers')}[{i}]", server,
                                 "must be an IP address") from None
    return out


def parse_routes(fields: Fields) -> list:
    """An IPAM config's `routes`: [{"dst": CIDR (required), "gw": IP, and spec 1.1.0's
    "mtu", "advmss", "priority", "table", "scope" (integers)}]."""
    routes = []
    for i, route in enumerate(fields.items("routes", dict, "an object")):
        rf = Fields(route, f"{fields.path('routes')}[{i}]")
        dst = rf.cidr("dst")
        if dst is None:
            raise invalid_config(rf.path("dst"), None, "is required")
        from cnish.ipnet import IP, Prefix, special_use
        prefix = Prefix.parse(dst)
        if prefix.ip != prefix.network and prefix.version == 4:    # (the kernel refuses it,
            raise invalid_config(rf.path("dst"), dst, "must be a network: it has host bits set "
                                 f"(the network is {prefix.subnet})")   # after the rest)
        # IPv6: the kernel takes the network (fd00:200::1/24 is fd00:200::/24), and so does
        # cnish, in its commands, checks and result; configs in the wild have such routes
        # (CRI-O's 10-crio-bridge, the static and host-local READMEs: a configs audit)
        dst = str(prefix.subnet)
        gw = rf.ip("gw")
        if gw is not None and (":" in gw) != (":" in dst):
            raise invalid_config(rf.path("gw"), gw, f"is not of the IP family of dst {dst}")
        special = special_use(IP.parse(gw)) if gw is not None else None
        if special:                         # (the kernel refuses it, after the rest)
            raise invalid_config(rf.path("gw"), gw, f"is in {special}, which cannot be a gateway")
        parsed = {"dst": dst, "gw": gw} if gw is not None else {"dst": dst}
        for field, (lo, hi) in results.ROUTE_EXTRAS.items():
            if route.get(field) is not None:
                parsed[field] = rf.integer(field, 0, lo, hi)
        routes.append(parsed)
    return routes


def parse_prev_result(conf: dict, version: str) -> dict | None:
    prev = conf.get("prevResult")
    if prev is None:
        return None
    try:
        return results.parse(prev, version)
    except ValueError as exc:
        raise invalid_config("prevResult", "...", str(exc)) from None


def runtime_objects(conf: dict) -> tuple[dict, dict]:
    """`runtimeConfig` and `args.cni`, checked to be objects (code 7 naming them)."""
    fields = Fields(conf)
    return fields.object("runtimeConfig"), fields.sub("args").object("cni")


def requested_mac(conf: dict, cni_args: dict) -> tuple[str | None, str]:
    """MAC requested by the runtime: runtimeConfig.mac > args.cni.mac > CNI_ARGS MAC."""
    runtime_config, args_cni = runtime_objects(conf)
    candidates = (
        ("runtimeConfig.mac", runtime_config.get("mac")),
        ("args.cni.mac", args_cni.get("mac")),
        ("CNI_ARGS MAC", cni_args.get("MAC")),
    )
    for where, mac in candidates:
        if mac:
            problem = mac_problem(mac)
            if problem:
                raise invalid_config(where, mac, "a MAC address " + problem)
            return mac.lower(), where
    return None, ""
