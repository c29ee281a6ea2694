"""One CNI operation from validated input to plan to effect.

    request config + CNI_* environment
        -> Operation      (validation at the boundary; config.py, the plugin's parse())
        -> attachment     (per-container values; the plugin's prepare(), IPAM allocation)
        -> plan template  (recipe + templates rendered for this config; templating.py)
        -> Plan           (slots filled; plan.py)
        -> dry-run printout, or execution with rollback (executor.py) -> CNI result

The same Plan object feeds the bash printer, the JSON printer and the executor.
"""

import os

from cnish import __version__, plugins, results, store
from cnish.config import (Conf, Fields, check_cni_args, check_name, check_version, parse_dns,
                          parse_prev_result)
from cnish.errors import INVALID_CONFIG, INVALID_ENV, TRY_AGAIN, CNIError, invalid_config
from cnish.executor import Executor, start_phase
from cnish.plan import Plan, bind
from cnish.runner import TIMED_OUT, Runner

SECTION = {"ADD": "add", "CHECK": "add", "DEL": "del", "GC": "gc"}


# Fields of every config that DEL and GC never read (see Operation._tolerated).
DEL_TOLERATES = ("dns",)
# Fields DEL reads but can do without: an unreadable prevResult is taken as none, as libcni
# takes an unreadable cached result; DEL then cleans up from the config and the store.
DEL_DOES_WITHOUT = ("prevResult",)


def _without(raw: dict, path: str) -> dict:
    """A copy of the config without the field at `path` ("mtu", "ipam.routes")."""
    head, _, rest = path.partition(".")
    out = dict(raw)
    if rest and isinstance(out.get(head), dict):
        out[head] = _without(out[head], rest)
    else:
        out.pop(head, None)
    return out


def machine_id() -> str:
    """Host identity mixed into derived MACs, so two hosts never derive the same bridge MAC."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            with open(path) as f:
                value = f.read().strip()
            if value:
                return value
        except OSError:
            pass
    return os.uname().nodename


class Operation:
    """Everything one invocation knows: the request, its validated config, mode and tools."""

    def __init__(self, raw: dict, runtime, *, dry_run: bool = False, opts: dict | None = None,
                 runner: Runner | None = None, log=None, type_name: str | None = None):
        self.raw = raw
        self.runtime = runtime
        self.command = runtime.command
        self.name = check_name(raw)
        self.version = check_version(raw, self.command)
        self.type = plugins.canonical(type_name or raw.get("type"))
        if not isinstance(self.type, str) or not self.type:
            if type_name is None and raw.get("type") is not None:
                raise invalid_config("type", raw.get("type"), "must be a plugin's name (a string)")
            raise CNIError(INVALID_CONFIG, "missing plugin type", "the config has no \"type\"")
        self.plugin = plugins.get(self.type)
        if self.plugin is None:
            raise CNIError(INVALID_CONFIG, f"unknown plugin type {self.type!r}",
                           "cnish implements " + ", ".join(plugins.implemented()))
        self.dry_run = dry_run
        self.opts = {"create_netns": False, "delete_netns": False, "netns_name": None}
        self.opts.update(opts or {})
        if not (self.opts["create_netns"] or self.opts["delete_netns"]):
            # Only the steps that create or delete the namespace use its name; without them
            # the CLI's operation is the runtime's, and shares its cached plan (plancache.py).
            self.opts["netns_name"] = None
        self.runner = runner or Runner()
        self.log = log
        self.machine_id = machine_id()
        self.ipam_result = None
        self.notes = []           # remarks for the dry-run's reader (the plan header)
        self._facts = {}

        self.ignored = []         # (field, error): what DEL and GC took no notice of
        while True:
            try:
                self._read_config(self.raw, runtime)
                break
            except CNIError as exc:
                field = self._tolerated(exc)
                if field is None:
                    raise
                self.raw = _without(self.raw, field)
                self.ignored.append((field, exc))
        for field, exc in self.ignored:
            why = "as if there were none" if field in DEL_DOES_WITHOUT else "which it does not use"
            self.notes.append(f"{self.command} ignores {field}, {why}: {exc.msg}")
            if log is not None:
                log.write(f"{self.command} ignores {field}, {why}: {exc}")

    def _read_config(self, raw: dict, runtime) -> None:
        fields = Fields(raw)
        from cnish.config import requested_mac, runtime_objects
        self.runtime_config, self.args_cni = runtime_objects(raw)   # objects, or code 7
        if self.command == "ADD":
            requested_mac(raw, runtime.args)                         # a bad MAC is code 7 now
        self.valid_attachments = None
        if self.command == "GC":
            from cnish.gc import valid_attachments
            self.valid_attachments = valid_attachments(raw)
        self.dns = parse_dns(fields.sub("dns"))
        self.prev_result = parse_prev_result(raw, self.version)
        self.ipam_module = None
        self.ipam_conf = None
        if self.plugin.KIND == "ipam":
            self.ipam_module = self.plugin
            self.ipam_conf = Conf(self.plugin.parse(fields.sub("ipam"), self))
            self.conf = self.ipam_conf
        else:
            self.conf = Conf(self.plugin.parse(fields, self))
            self.ipam_module = ipam_module(fields.object("ipam"))
            if self.ipam_module is not None:
                self.ipam_conf = Conf(self.ipam_module.parse(fields.sub("ipam"), self))
        early = getattr(self.plugin, "check_early", None)
        if early is not None:
            early(self)          # what needs the plugin's and the IPAM's config together
        known = set(self.plugin.CNI_ARGS)
        if self.ipam_module is not None:
            known |= self.ipam_module.CNI_ARGS
        check_cni_args(runtime.args, frozenset(known), runtime.args_text)

    def _tolerated(self, exc: CNIError) -> str | None:
        """DEL and GC only remove: a bad value of a field they never read cannot change what
        they do, and refusing it would fail the attachment's every DEL, for good (a runtime
        retries DEL until it succeeds, also after an ADD refused for that very field). Such a
        field is taken out of the config and the operation goes on (the plugins' and the IPAM
        plugins' DEL_TOLERATES name them; anything else stays an error). Returns the path of
        the field taken out ("mtu", "ipam.routes"), or None."""
        if self.command not in ("DEL", "GC") or exc.field is None:
            return None
        tolerated = DEL_TOLERATES + DEL_DOES_WITHOUT + getattr(self.plugin, "DEL_TOLERATES", ())
        ipam = self.raw.get("ipam")
        module = plugins.get(plugins.canonical(ipam.get("type"))) \
            if isinstance(ipam, dict) and isinstance(ipam.get("type"), str) else None
        if self.plugin.KIND == "ipam":
            module = self.plugin
        if module is not None and module.KIND == "ipam":
            tolerated += tuple("ipam." + k for k in getattr(module, "DEL_TOLERATES", ()))
        for reader in (self.plugin, module):     # (capability arguments: runtimeConfig's)
            tolerated += tuple("runtimeConfig." + k
                               for k in getattr(reader, "DEL_TOLERATES_CAPABILITIES", ()))
        for path in tolerated:
            if exc.field == path or exc.field.startswith((path + ".", path + "[")):
                return path if path not in (f for f, _ in self.ignored) else None
        return None

    # -- services for plugin modules -------------------------------------------------------------

    def ipam_add(self):
        if self.ipam_module is None:
            return {}, {}
        return self.ipam_module.ipam_add(self)

    def abandon_ipam(self, error: Exception):
        """ADD failed before its plan ran. An IPAM plugin that allocates while the plan is
        prepared (a delegated one) gets its DEL now; host-local and static have changed nothing
        yet (their reservation is a step of the plan)."""
        abandon = getattr(self.ipam_module, "ipam_abandon", None)
        problem = abandon(self) if abandon is not None and self.command == "ADD" else ""
        if problem and isinstance(error, CNIError):
            error.details = f"{error.details}; releasing the addresses failed too: {problem}"

    def ipam_del(self):
        if self.ipam_module is None:
            return {}, []
        return self.ipam_module.ipam_del(self)

    def ipam_check(self, ips):
        if self.ipam_module is None:
            return {}
        return self.ipam_module.ipam_check(self, ips)

    def ipam_gc(self):
        """The IPAM plugin's GC values, for the attachments the config lists as valid."""
        if self.ipam_module is None:
            return {}
        return self.ipam_module.ipam_gc(self, self.valid_attachments)

    @staticmethod
    def read_sys(path: str) -> str | None:
        """A one-line file under /sys or /proc (a read, not a command: no process started)."""
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            return None

    def fact(self, fact_id: str, **values):
        """Run a read-only command declared in the recipe's [[facts]]; None when skipped.
        `values`: strings the fact's command reads as att.<name> besides the container's id,
        ifname and netns (a name derived from them, such as a masquerade chain); a fact is
        run once per operation."""
        if fact_id not in self._facts:
            from cnish import plancache
            from cnish.plan import fill
            identity = {"cid": self.runtime.container_id, "ifname": self.runtime.ifname,
                        "netns": self.runtime.netns, **values}
            spec = plancache.fact(self, fact_id, identity)
            result, skipped = None, False
            probe = spec.get("skip_if")
            if probe is not None:
                self.refuse_if_overdue(f"tell {fact_id}")
                skipped = self.runner.run([fill(t, identity) for t in probe["argv"]]
                                          ).returncode == 0
            if not skipped:
                self.refuse_if_overdue(f"tell {fact_id}")   # (its probe may have taken long)
                result = self.runner.run([fill(t, identity) for t in spec["run"]["argv"]])
            if result is not None and result.returncode == TIMED_OUT:
                # (killed at the prepare phase's deadline: its silence is no answer, where
                # "no such chain" would let a DEL succeed having removed less; a review's find)
                raise CNIError(TRY_AGAIN, f"cannot tell {fact_id}: {result.stderr.strip()}",
                               "the host's tools are too slow or hung now: try again later")
            self._facts[fact_id] = result
        return self._facts[fact_id]

    def refuse_if_overdue(self, what: str) -> None:
        """While the plan is made, no command starts once the prepare phase's deadline has
        passed (the runner would give each one GRACE seconds more): code 11, nothing changed
        by this operation's steps yet."""
        if self.runner.overdue():
            raise CNIError(TRY_AGAIN, f"cannot {what}: the deadline for preparing the plan has "
                           "passed", "the host's tools are too slow or hung now: try again later")

    # -- rendering context -----------------------------------------------------------------------

    def context(self) -> dict:
        return {"conf": self.conf, "ipam": self.ipam_conf, "opts": self.opts,
                "net": {"name": self.name, "cniVersion": self.version, "type": self.type}}

    def includes(self) -> dict:
        if self.ipam_module is None or self.ipam_module is self.plugin:
            return {}
        return {"ipam": self.ipam_module.TYPE}


def ipam_module(ipam: dict):
    """The module of a main plugin's `ipam.type`: one of cnish's IPAM plugins, the
    delegate (any other type, run from CNI_PATH), or None without a type. An empty
    type is none too: Go's zero value, which the reference reads as no IPAM, and podman
    writes for `podman network create --ipam-driver none`."""
    if ipam.get("type") in (None, ""):
        return None
    ipam_type = plugins.canonical(ipam["type"])
    if not isinstance(ipam_type, str):
        raise CNIError(INVALID_CONFIG, "invalid network config: ipam.type must be a string",
                       f"ipam.type={ipam['type']!r}")
    module = plugins.get(ipam_type)
    if module is None:            # not ours: run it from CNI_PATH
        from cnish.plugins import delegate as module
    elif module.KIND != "ipam":
        raise CNIError(INVALID_CONFIG, f"{ipam_type!r} is not an IPAM plugin",
                       "ipam.type names an IPAM plugin such as host-local or static")
    return module


def build_plan(op: Operation):
    """(Plan, attachment values) for the operation; may hold the IPAM lock (see hostlocal.py)."""
    from cnish import plancache
    if op.runtime.ifname == "lo" and op.command in ("ADD", "CHECK") \
            and op.plugin.KIND == "interface" and not getattr(op.plugin, "WORKS_ON_LO", False):
        # (every namespace has its lo: ADD would fail half-way, after the shared steps)
        raise CNIError(INVALID_ENV, "CNI_IFNAME=lo names the container's loopback device",
                       f"a {op.type} interface needs a name of its own; lo is the loopback "
                       "plugin's")
    att = op.plugin.prepare(op)
    template = plancache.steps(op, SECTION[op.command], att)
    steps = bind(template, att)
    if op.command == "CHECK":
        steps = [s for s in steps if s.check is not None]
    plan = Plan(op.command, op.type, op.name, op.version, op.runtime.container_id, op.runtime.netns,
                op.runtime.ifname, steps)
    if op.command == "ADD" and op.dry_run:
        plan.result = results.convert(op.plugin.result(op, att), op.version)
    plan.notes = list(op.notes)
    from cnish import jsonfast
    plan.invocation = {"args": op.runtime.args_text, "path": ":".join(op.runtime.path),
                       "config": jsonfast.dumps(op.raw)}
    return plan, att


def execute(op: Operation):
    """Run the operation for real. Returns the internal result for ADD, None otherwise."""
    lock = None
    from cnish import attachlock
    if attachlock.guards(op.command, op.plugin.KIND):       # (before IPAM: see there)
        lock = attachlock.acquire(op.name, op.runtime.container_id, op.runtime.ifname)
    try:
        # (the facts and a delegated IPAM's ADD run now: executor.py, deadlines)
        start_phase(op.runner, "prepare")
        try:
            plan, att = build_plan(op)
            if op.command == "ADD" and not results.at_least(op.version, "0.3.0"):
                # A result before 0.3.0 can only describe addresses: refuse an ADD without any
                # before anything changes, not after (the result is known in advance).
                results.convert(op.plugin.result(op, att), op.version)
        except Exception as exc:        # a CNI error, or an internal one (code 999)
            start_phase(op.runner, "rollback")  # (not what the prepare phase left)
            op.abandon_ipam(exc)
            raise
        finally:
            op.runner.limit(None)
        if op.log:
            op.log.plan(plan)
            from cnish import plancache
            for what, why in (("the plan cache", plancache.refused),
                              ("the attachment lock", attachlock.refused)):
                if why:
                    op.log.write(f"{what} is not used: {why} (trusteddirs.py)")
        # The IPAM allocation lock is held from the choice of addresses until the reserve
        # steps have written them, and dropped before the first process starts.
        op.runner.before_exec = store.drop_locks
        executor = Executor(op.runner, op.log)
        if op.command == "ADD":
            executor.apply(plan.steps)
            return op.plugin.result(op, att)
        if op.command in ("DEL", "GC"):
            executor.teardown(plan.steps)
        elif op.command == "CHECK":
            executor.check(plan.steps)
        return None
    finally:
        store.drop_locks()
        if lock is not None:    # (its tools have ended, but for killed ones left running)
            attachlock.release(lock, tools_left=op.runner.left_running > 0)


def status(op: Operation) -> None:
    """STATUS: can this plugin serve ADD now? Code 50 with the reason when it cannot."""
    from cnish.errors import LIMITED_CONNECTIVITY, NOT_AVAILABLE
    tools = getattr(op.plugin, "tools", None)
    missing = [t for t in (tools(op) if tools else []) if op.runner.which(t) is None]
    if missing:
        raise CNIError(NOT_AVAILABLE, "cannot serve ADD: " + ", ".join(missing)
                       + (" is" if len(missing) == 1 else " are") + " not installed",
                       f"searched PATH={op.runner.path}")
    plugin_status = getattr(op.plugin, "status", None)
    if plugin_status is not None:
        try:
            plugin_status(op)       # raises what ADD would refuse with (code 7, 103, ...)
        except CNIError as exc:
            if exc.code in (NOT_AVAILABLE, LIMITED_CONNECTIVITY):
                raise
            raise CNIError(NOT_AVAILABLE, "cannot serve ADD: " + exc.msg, exc.details) from None
    if op.ipam_module is not None:
        op.ipam_module.ipam_status(op)


def dry_run(op: Operation) -> Plan:
    try:
        plan, _ = build_plan(op)
        return plan
    finally:
        store.drop_locks()


__all__ = ["Operation", "build_plan", "execute", "dry_run", "__version__"]
