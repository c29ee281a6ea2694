"""host-local IPAM: address ranges, round-robin allocation, and the shared on-disk store.

Config keys and semantics are the reference's (containernetworking/plugins,
plugins/ipam/host-local): `ranges` (a list of range sets; one address per set), legacy
`subnet`/`rangeStart`/`rangeEnd`/`gateway`, `routes`, `dataDir`, `resolvConf`, the `ipRanges`
capability, and requested addresses from CNI_ARGS `IP=`, `args.cni.ips` and
`runtimeConfig.ips`.

Allocation happens here, under the store's lock, and is *held*: the plan's reserve step
writes the files and the lock is dropped right after, before any slow command runs. In a
dry-run the same algorithm only reads the store (without creating anything), so the previewed
address is the one an execution would take if nothing else allocates in between.
"""

import os
import stat

from cnish.config import Fields, parse_routes
from cnish.errors import CHECK_FAILED, IPAM_FAILED, INVALID_CONFIG, CNIError, invalid_config
from cnish.ipnet import IP, Prefix, parse_ip_or_prefix, special_use
from cnish.store import Store, Unreadable, owner_key

TYPE = "host-local"
KIND = "ipam"
CNI_ARGS = frozenset({"IP"})
RESERVES_PER_ATTACHMENT = True  # ipam_del's addresses are what an ADD reserved (hostdevice.py)
# Keys DEL and GC never read (engine.py): they release by owner, whatever the ranges are now,
# so a range the config gets wrong (a gateway outside its subnet, say) cannot make an
# attachment's DEL fail for good; only the store's place (dataDir, the network's name) counts.
DEL_TOLERATES = ("routes", "resolvConf", "ranges", "subnet", "rangeStart", "rangeEnd",
                 "gateway")
DEL_TOLERATES_CAPABILITIES = ("ipRanges",)     # (the same ranges, from the runtime)
DEFAULT_DATA_DIR = "/var/lib/cni/networks"
RESOLV_MAX = 64 * 1024          # a resolv.conf is a few hundred bytes


class Range:
    __slots__ = ("subnet", "start", "end", "gateway")

    def __init__(self, subnet: Prefix, start: IP, end: IP, gateway: IP):
        self.subnet, self.start, self.end, self.gateway = subnet, start, end, gateway

    def contains(self, ip: IP) -> bool:
        return self.subnet.contains(ip) and self.start <= ip <= self.end

    def describe(self) -> str:
        return f"{self.start}-{self.end}"

    def __repr__(self) -> str:     # also what the plan cache keys on
        return f"Range({self.subnet} {self.start}-{self.end} gateway {self.gateway})"


def _first_overlap(tagged: list) -> tuple | None:
    """The tags of two overlapping ranges among (range, tag) pairs, or None. Sorted by start,
    ranges that do not overlap follow each other, so only neighbours need comparing: a
    config's thousands of ranges cost n log n, not n squared (the pairwise check took 17 s
    for 4000). With tags that are set indexes, call it once the ranges within each set are
    known not to overlap: then a clash between neighbours is between two sets."""
    for version in (4, 6):
        family = sorted(((r, tag) for r, tag in tagged if r.subnet.version == version),
                        key=lambda pair: pair[0].start)
        for (r, tag), (s, other) in zip(family, family[1:]):
            if s.start <= r.end:
                return tag, other
    return None


# Where a store may not be: the root itself, and the kernel's file systems, where creating a
# directory makes a kernel object (a cgroup, a tracing instance) or fails half-way. A config may
# come from a user (Multus), and cnish creates the store's directories as root.
_NO_STORE_UNDER = ("/proc", "/sys", "/dev")


def _require_store_place(data_dir: str, where: str) -> None:
    if data_dir == "/" or any(data_dir == p or data_dir.startswith(p + "/")
                              for p in _NO_STORE_UNDER):
        raise invalid_config(where, data_dir, "cannot hold an IPAM store: not the root, nor "
                             "under " + ", ".join(_NO_STORE_UNDER))
    try:
        mode = os.stat(data_dir).st_mode
    except OSError:
        return                                  # (made on first use)
    if not stat.S_ISDIR(mode):
        raise invalid_config(where, data_dir, "exists and is not a directory")


def _range(raw, where: str) -> Range:
    f = Fields(raw, where)
    text = f.text("subnet")
    if text is None:
        raise invalid_config(f.path("subnet"), None, "is required")
    try:
        subnet = Prefix.parse(text)
    except ValueError as exc:
        raise invalid_config(f.path("subnet"), text, str(exc)) from None
    if subnet.ip != subnet.network:
        raise invalid_config(f.path("subnet"), text,
                             f"has host bits set; the network address is {subnet.subnet}")
    if subnet.length > subnet.ip.bits - 2:
        raise invalid_config(f.path("subnet"), text, "is too small to allocate from")
    special = special_use(subnet)
    if special:
        raise invalid_config(f.path("subnet"), text, f"overlaps {special}, whose addresses "
                             "an interface cannot use")

    def address(key, default):
        value = f.text(key)
        if value is None:
            return default
        try:
            ip = IP.parse(value)
        except ValueError as exc:
            raise invalid_config(f.path(key), value, str(exc)) from None
        if not subnet.contains(ip) and not (key == "gateway" and ip.link_local
                                            and subnet.version == 6):
            raise invalid_config(f.path(key), value, f"is not in the subnet {subnet}"
                                 + (" (an IPv6 gateway may be link-local)"
                                    if key == "gateway" and subnet.version == 6 else ""))
        if subnet.version == 4 and ip in (subnet.network, subnet.last):
            raise invalid_config(f.path(key), value, "is the network or broadcast address of "
                                 f"the subnet {subnet}, which no interface can use")
        return ip

    last = subnet.last if subnet.version == 6 else subnet.last + -1   # no IPv4 broadcast
    gateway = address("gateway", subnet.network + 1)
    start = address("rangeStart", subnet.network + 1)
    end = address("rangeEnd", last)
    if end < start:
        raise invalid_config(f.path("rangeEnd"), str(end), f"is before rangeStart {start}")
    return Range(subnet, start, end, gateway)


def parse(fields: Fields, op) -> dict:
    """Validate the `ipam` object of a network config."""
    sets = []
    from cnish.config import runtime_objects
    cap_ranges = runtime_objects(op.raw)[0].get("ipRanges")
    raw_sets = []   # (where, [(range object, its field path)])
    if cap_ranges:
        if not isinstance(cap_ranges, list):
            raise invalid_config("runtimeConfig.ipRanges", cap_ranges, "must be a list of range sets")
        raw_sets += [(f"runtimeConfig.ipRanges[{i}]", s) for i, s in enumerate(cap_ranges)]
    if fields.has("subnet"):
        legacy = {k: fields.obj[k] for k in ("subnet", "rangeStart", "rangeEnd", "gateway")
                  if k in fields.obj}
        raw_sets.append((fields.where, [legacy]))
    raw_sets += [(f"{fields.path('ranges')}[{i}]", s)
                 for i, s in enumerate(fields.items("ranges", list, "a list of ranges"))]
    if not raw_sets and op.command not in ("DEL", "GC"):     # (which never read them)
        raise invalid_config(fields.path("ranges"), None, "no IP ranges specified")
    for where, raw_set in raw_sets:
        if not isinstance(raw_set, list) or not raw_set:
            raise invalid_config(where, raw_set, "must be a non-empty list of ranges")
        ranges = []
        for j, raw in enumerate(raw_set):
            here = where if where == fields.where else f"{where}[{j}]"
            if not isinstance(raw, dict):
                raise invalid_config(here, raw, "must be an object")
            ranges.append(_range(raw, here))
        if len({r.subnet.version for r in ranges}) > 1:
            raise invalid_config(where, "...", "mixes IPv4 and IPv6 ranges in one range set")
        clash = _first_overlap([(r, r) for r in ranges])
        if clash:
            raise invalid_config(where, "...", f"ranges {clash[0].describe()} and "
                                 f"{clash[1].describe()} overlap")
        sets.append(ranges)
    clash = _first_overlap([(r, index) for index, ranges in enumerate(sets) for r in ranges])
    if clash:
        a, b = sorted(clash)
        raise invalid_config(fields.path("ranges"), "...",
                             f"range set {a} overlaps with range set {b}")
    families = [s[0].subnet.version for s in sets]
    if max(families.count(4), families.count(6)) > 1 and op.version in ("0.1.0", "0.2.0") \
            and op.command == "ADD":                 # (a limit of the result only ADD prints)
        raise invalid_config("cniVersion", op.version,
                             "several range sets of one IP family need cniVersion 0.3.0 or later")

    routes = parse_routes(fields)

    data_dir = fields.abspath("dataDir", DEFAULT_DATA_DIR).rstrip("/") or "/"
    _require_store_place(data_dir, fields.path("dataDir"))
    resolv = fields.abspath("resolvConf")
    return {"type": TYPE, "sets": sets, "routes": routes, "dataDir": data_dir,
            "resolvConf": resolv}


def _requested(op) -> list:
    """Requested addresses from CNI_ARGS IP=, args.cni.ips and runtimeConfig.ips (all kept;
    an address asked for twice, as runtimes that fill in both conventions do, counts once,
    as in the reference)."""
    out = []
    sources = []
    if op.runtime.args.get("IP"):
        sources.append(("CNI_ARGS IP", [op.runtime.args["IP"]]))
    args_ips = op.args_cni.get("ips")
    if args_ips:
        sources.append(("args.cni.ips", args_ips))
    rc_ips = op.runtime_config.get("ips")
    if rc_ips:
        sources.append(("runtimeConfig.ips", rc_ips))
    for where, values in sources:
        if not isinstance(values, list):
            raise invalid_config(where, values, "must be a list of addresses")
        for value in values:
            try:
                ip = parse_ip_or_prefix(value)
            except ValueError as exc:
                raise invalid_config(where, value, str(exc)) from None
            if ip not in out:
                out.append(ip)
    return out


# -- allocation --------------------------------------------------------------------------------

def _candidates(ranges, last: IP | None):
    """Addresses of a range set in round-robin order, starting after `last` (reference order)."""
    ri, cur = 0, None
    if last is not None:
        for i, r in enumerate(ranges):
            if r.contains(last):
                ri, cur = i, last
                break
    start = None
    while True:
        r = ranges[ri]
        if cur is None:
            cur = r.start
        elif cur == r.end:
            ri = (ri + 1) % len(ranges)
            r = ranges[ri]
            cur = r.start
        else:
            cur = cur + 1
        if start is None:
            start = cur
        elif cur == start:
            return
        if cur != r.gateway:
            yield cur, r


def _dns(conf) -> dict:
    path = conf.resolvConf
    if not path:
        return {}
    # A regular file (symlinks followed: /etc/resolv.conf often is one), opened without
    # blocking and read up to RESOLV_MAX: a FIFO or /dev/zero named by a config must not hang
    # cnish or exhaust its memory (found by an audit).
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise CNIError(INVALID_CONFIG, f"cannot read ipam.resolvConf {path}", exc.strerror) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CNIError(INVALID_CONFIG, f"cannot read ipam.resolvConf {path}",
                           "not a regular file")
        data = os.read(fd, RESOLV_MAX + 1)
    except OSError as exc:
        raise CNIError(INVALID_CONFIG, f"cannot read ipam.resolvConf {path}", exc.strerror) from None
    finally:
        os.close(fd)
    if len(data) > RESOLV_MAX:
        raise CNIError(INVALID_CONFIG, f"cannot read ipam.resolvConf {path}",
                       f"larger than {RESOLV_MAX} bytes")
    lines = data.decode("utf-8", "replace").splitlines()
    dns = {}
    for line in lines:
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        key, values = words[0], words[1:]
        if key == "nameserver" and values:
            dns.setdefault("nameservers", []).append(values[0])
        elif key == "domain" and values:
            dns["domain"] = values[0]
        elif key == "search":
            dns["search"] = values
        elif key == "options":
            dns.setdefault("options", []).extend(values)
    return dns


def ipam_add(op):
    """Choose the addresses of this attachment: (att.ipam values, IPAM result)."""
    conf = op.ipam_conf
    store = Store(conf.dataDir, op.name)
    cid, ifname = op.runtime.container_id, op.runtime.ifname
    # Everything that can be refused without looking at the store is checked before the lock
    # (whose file the first use creates): a refused request leaves the host as it was.
    requested = _requested(op)
    requested_in = {}       # range set index -> the address requested in it (one at most)
    for want in requested:
        index, r = next(((i, r) for i, ranges in enumerate(conf.sets) for r in ranges
                         if r.contains(want)), (None, None))
        if r is None:
            raise CNIError(IPAM_FAILED, f"failed to allocate all requested IPs: {want}",
                           "a requested address must lie in one of the configured ranges")
        if want == r.gateway:
            raise CNIError(IPAM_FAILED, f"requested ip {want} is subnet's gateway")
        if index in requested_in:
            raise CNIError(IPAM_FAILED, f"failed to allocate all requested IPs: {want}",
                           f"{requested_in[index]} and {want} were both asked for in range set "
                           f"{_describe(conf.sets[index])}, which gives an attachment one "
                           "address")
        requested_in[index] = want
    dns = _dns(conf)
    if not op.dry_run:
        store.acquire()          # held until the reserve steps have run (engine drops it)
    try:
        files = store.files() if store.exists() else {}
        if not op.dry_run:
            store.sweep(files)   # a killed ADD's temporary file (we hold the lock)
        owned = set(store.owned(cid, ifname, files))
        reservations, ips, asked_for = [], [], set()
        for index, ranges in enumerate(conf.sets):
            want = requested_in.get(index)      # (in this set, not its gateway: checked above)
            if want is not None:
                if store.taken(str(want)):
                    raise CNIError(IPAM_FAILED, f"requested IP address {want} is not available "
                                   f"in range set {_describe(ranges)}")
                chosen = (want, next(r for r in ranges if r.contains(want)))
            else:
                mine = [o for o in owned if _in_set(o, ranges)]
                if mine:
                    raise CNIError(IPAM_FAILED, f"{mine[0]} has been allocated to {cid}, "
                                   "duplicate allocation is not allowed",
                                   f"interface {ifname}: delete the attachment first")
                last = store.last_reserved(index)
                try:
                    last_ip = IP.parse(last) if last else None
                except ValueError:
                    last_ip = None
                chosen = next(((ip, r) for ip, r in _candidates(ranges, last_ip)
                               if not store.taken(str(ip))), None)
                if chosen is None:
                    raise CNIError(IPAM_FAILED, "no IP addresses available in range set: "
                                   + _describe(ranges),
                                   f"every address is reserved in {store.dir}; release stale "
                                   "reservations with `cnish gc` or enlarge the range")
            ip, r = chosen
            reservations.append({"ip": str(ip), "set": index,
                                 "previous": store.last_reserved(index) or ""})
            if want is not None:
                asked_for.add(str(ip))
            entry = {"address": f"{ip}/{r.subnet.length}"}
            entry["gateway"] = str(r.gateway)
            ips.append(entry)
    except BaseException:
        store.release_lock()
        raise
    result = {"ips": ips, "routes": [dict(r) for r in conf.routes], "dns": dns}
    if op.dry_run and reservations:
        # (the note must not call an address the runtime asked for "the next free one")
        one = len(reservations) == 1
        if asked_for:
            chosen = " and ".join(r["ip"] + (" (requested)" if r["ip"] in asked_for
                                            else " (the next free address)")
                                  for r in reservations) + ", free"
        else:
            chosen = (" and ".join(r["ip"] for r in reservations)
                      + (", the next free address" if one else ", the next free addresses"))
        op.notes.append(f"host-local: this script reserves {chosen} in {store.dir} now, and "
                        "fails (rolling back) if another ADD took " + ("it" if one else "one")
                        + " in the meantime")
    return {"store": store.dir, "key": owner_key(cid, ifname), "reservations": reservations}, result


def _in_set(text: str, ranges) -> bool:
    try:
        ip = IP.parse(text)
    except ValueError:
        return False
    return any(r.contains(ip) for r in ranges)


def _describe(ranges) -> str:
    return ",".join(r.describe() for r in ranges)


def ipam_del(op):
    """att.ipam for DEL, plus the addresses the store holds for this attachment."""
    conf = op.ipam_conf
    store = Store(conf.dataDir, op.name)
    try:
        held = store.owned(op.runtime.container_id, op.runtime.ifname) if store.exists() else []
    except Unreadable as exc:
        # (DEL goes on without them: the link and the rules it finds otherwise go, and the
        # release step, which reads the store again, fails and is retried with the DEL)
        if op.log:
            op.log.write(f"DEL goes on without the reserved addresses: {exc} ({exc.details})")
        held = []
    return {"store": store.dir, "key": owner_key(op.runtime.container_id, op.runtime.ifname),
            "reservations": []}, held


def ipam_check(op, ips: list):
    """att.ipam for CHECK: the reservations that prevResult's addresses must have."""
    conf = op.ipam_conf
    store = Store(conf.dataDir, op.name)
    reservations = []
    for entry in ips:
        ip = Prefix.parse(entry["address"]).ip
        for index, ranges in enumerate(conf.sets):
            if any(r.contains(ip) for r in ranges):
                reservations.append({"ip": str(ip), "set": index, "previous": ""})
    if not reservations:
        _require_some_reservation(op, store)   # (none of prevResult's addresses is in a range)
    return {"store": store.dir, "key": owner_key(op.runtime.container_id, op.runtime.ifname),
            "reservations": reservations}


def _require_some_reservation(op, store) -> None:
    """CHECK with no address to look up: the attachment must hold some reservation, as the
    reference's CHECK requires (the ranges may have changed since ADD)."""
    cid, ifname = op.runtime.container_id, op.runtime.ifname
    if not (store.exists() and store.owned(cid, ifname)):
        raise CNIError(CHECK_FAILED, f"host-local: Failed to find address added by container "
                       f"{cid}", f"no reservation for {cid}/{ifname} in {store.dir}")


def ipam_status(op) -> None:
    """STATUS: every range set must still have a free address (code 50 otherwise)."""
    from cnish.errors import NOT_AVAILABLE
    conf = op.ipam_conf
    store = Store(conf.dataDir, op.name)
    for ranges in conf.sets:
        free = next((ip for ip, _r in _candidates(ranges, None)
                     if not store.taken(str(ip))), None)
        if free is None:
            raise CNIError(NOT_AVAILABLE, "cannot serve ADD: no IP addresses available in "
                           "range set: " + _describe(ranges),
                           f"every address is reserved in {store.dir}")


def ipam_gc(op, valid: set) -> dict:
    """GC: the owners of stale reservations (released by the recipe's gc steps)."""
    from cnish.gc import stale_owners
    conf = op.ipam_conf
    store = Store(conf.dataDir, op.name)
    stale = stale_owners(store, valid) if store.exists() else []
    return {"store": store.dir, "stale": stale}


# -- as a plugin of its own (cnish installed as `host-local`) ----------------------------------

def prepare(op) -> dict:
    att = {"cid": op.runtime.container_id, "ifname": op.runtime.ifname}
    if op.command == "GC":
        att["ipam"] = op.ipam_gc()          # the valid attachments, checked by Operation
        return att
    if op.command == "ADD":
        att["ipam"], op.ipam_result = ipam_add(op)
    elif op.command == "DEL":
        att["ipam"], _ = ipam_del(op)
    else:
        ips = (op.prev_result or {}).get("ips", [])
        att["ipam"] = ipam_check(op, ips)    # (no address: any reservation of it will do)
    return att


def result(op, att) -> dict:
    return op.ipam_result
