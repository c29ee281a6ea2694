"""The operator CLI, modelled on cnitool: `cnish add|check|del|gc|status NETWORK [NETNS]`.

Runs a whole network config the way a runtime does (libcni): ADD in order passing each
result on as prevResult, DEL in reverse with the cached final result, CHECK in order, GC and
STATUS to every plugin. cnish's own plugins run in-process through the same engine CNI mode
uses; other plugins are executed from CNI_PATH. Results are cached in libcni's layout, so
podman, cnitool and cnish can each see what the others added.
"""

import hashlib
import json
import os
import sys

import click

from cnish import __version__, engine, jsonfast, libcni, plugin_exec, plugins, results, scripts
from cnish.config import canonical_keys, check_name, parse_cni_args, parse_env
from cnish.errors import INCOMPATIBLE_VERSION, INTERNAL, INVALID_CONFIG, NOT_AVAILABLE, CNIError
from cnish.log import Log, log_file
from cnish.runner import Runner
from cnish.validate import identifier_problem, ifname_problem

NETNS_DIR = "/var/run/netns"


def _netns_path(netns: str) -> tuple[str, str | None]:
    """NETNS as a path, and its name when it lives in /var/run/netns."""
    if "/" not in netns:
        problem = identifier_problem(netns)
        if problem:
            raise CNIError(INVALID_CONFIG, f"invalid namespace name {netns!r}: {problem}")
        return f"{NETNS_DIR}/{netns}", netns
    # The path as given (made absolute), as cnitool passes it and hashes it into the default
    # container id: /run/netns/x and /var/run/netns/x are two ids there too.
    path = os.path.abspath(netns)
    for run_dir in (NETNS_DIR, "/run/netns"):
        if os.path.dirname(path) == run_dir:
            return path, os.path.basename(path)
    return path, None


def _plugins_up_to(index: int) -> str:
    return _plugins_named(list(range(index)))


def _plugins_named(indexes: list) -> str:
    """'plugin 2 was', 'plugins 1-3 were', 'plugins 1, 3 were' for 0-based `indexes`."""
    numbers = [i + 1 for i in indexes]
    if len(numbers) == 1:
        return f"plugin {numbers[0]} was"
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"plugins {numbers[0]}-{numbers[-1]} were"
    return "plugins " + ", ".join(map(str, numbers)) + " were"


def _default_cid(netns_path: str) -> str:
    """cnitool's container id: "cnitool-" + the first 10 bytes of sha512(netns path), in hex."""
    return "cnitool-" + hashlib.sha512(netns_path.encode()).hexdigest()[:20]


class Session:
    """One CLI invocation: the network list, the attachment, and how to run each plugin."""

    def __init__(self, network, netns=None, ifname="eth0", cid=None, config=None, cni_args="",
                 cap_args="", cache_dir=libcni.DEFAULT_CACHE_DIR, create_netns=False,
                 dry_run=False, adding=False):
        # (adding: a file must hold what its name says, as libcni reads it; DEL, CHECK and GC
        # still take what an older cnish let ADD use, or its attachments could not go)
        if config:
            conf, data = libcni.read_config(config)
            self.conflist = libcni.as_list(conf, config, by_name=adding)
            self.source = config
            if network is not None and self.conflist.get("name") != network:
                raise CNIError(INVALID_CONFIG, f"--config {config} is the network "
                               f"{self.conflist.get('name')!r}, not {network!r}",
                               "give the network's own name with --config")
        else:
            # (an empty NETCONFPATH is cnitool's default directory too)
            dirs = [d for d in (os.environ.get("NETCONFPATH") or libcni.DEFAULT_CONF_DIR).split(":") if d]
            conf, self.source, data = libcni.find(network, dirs)
            self.conflist = libcni.as_list(conf, self.source, by_name=adding)
        # What the result cache keeps: the list as run (a .conf as the list libcni makes of it).
        self.conf_bytes = data if self.conflist is conf else json.dumps(self.conflist).encode()
        # (the network's name, too, is part of the result cache's path: checked as libcni does)
        self.network = check_name(self.conflist)
        self.version = libcni.select_version(self.conflist)
        self.netns, self.netns_name = _netns_path(netns) if netns else ("", None)
        if create_netns and self.netns_name is None:
            raise CNIError(INVALID_CONFIG, "--create-netns needs a namespace name",
                           f"{netns!r} is a path outside {NETNS_DIR}")
        if create_netns and os.path.lexists(self.netns):
            raise CNIError(INVALID_CONFIG, f"--create-netns: the namespace {self.netns_name!r} "
                           "exists already", "leave out --create-netns to attach it, or "
                           f"delete it first with `ip netns del {self.netns_name}`")
        self.ifname = ifname
        self.cid_given = cid is not None
        self.cid = cid or (_default_cid(self.netns) if self.netns else "")
        # (checked here, not only by cnish's own plugins: the result cache's path is made of
        # them, also for a list of other plugins only)
        for what, value, problem_of in (("--cid", cid, identifier_problem),
                                        ("--ifname", ifname, ifname_problem)):
            problem = problem_of(value) if value is not None else None
            if problem:
                raise CNIError(INVALID_CONFIG, f"{what} {value!r}: {problem}")
        self.cni_args_text = cni_args or ""
        self.cni_args = parse_cni_args(self.cni_args_text)
        try:
            # (jsonfast, the plugin's own decoder: NaN and Infinity are no JSON there either)
            self.cap_args = jsonfast.loads(cap_args) if cap_args else {}
        except ValueError as exc:
            raise CNIError(INVALID_CONFIG, "--cap-args (CAP_ARGS) is not JSON", str(exc)) from None
        if not isinstance(self.cap_args, dict):
            raise CNIError(INVALID_CONFIG, "--cap-args (CAP_ARGS) must be a JSON object",
                           'e.g. {"portMappings": [...]}; got ' + cap_args[:80])
        # (absolute: the dry-run script records it, and a later `cnish check` or `del` may run
        # from another directory)
        self.cache_dir = os.path.abspath(cache_dir)
        self.create_netns = create_netns
        self.dry_run = dry_run
        self.cni_path = [d for d in os.environ.get("CNI_PATH", "/opt/cni/bin:/usr/lib/cni").split(":") if d]
        self.plugins = self.conflist["plugins"]
        if create_netns:
            self.require_cnish_first("--create-netns", "make it with `ip netns add` first")

    def ours(self, index: int) -> bool:
        return plugins.get(self.plugins[index].get("type")) is not None

    def require_cnish_first(self, option: str, instead: str) -> None:
        """The namespace is made (deleted) as the first step of a cnish plugin's plan."""
        if not self.ours(0):
            raise CNIError(INVALID_CONFIG, f"{option} needs one of cnish's plugins first in the "
                           "list", f"{self.plugins[0]['type']!r} is not cnish's: {instead}")

    def env(self, command: str) -> dict:
        return plugin_exec.environment(command, self.cid, self.netns, self.ifname,
                                       self.cni_args_text, self.cni_path)

    def request(self, index, prev_result, version=None, extra=None) -> dict:
        raw = libcni.request(self.conflist, index, version or self.version, self.cap_args,
                             prev_result)
        raw.update(extra or {})
        return raw

    def operation(self, index: int, command: str, prev_result, opts=None, version=None,
                  extra=None) -> engine.Operation:
        # (keys read as the plugin reads them; CNI mode does it on stdin, an external plugin
        # gets the config as written)
        raw = canonical_keys(self.request(index, prev_result, version, extra))
        # A dry-run checks the namespace as the real operation would: a plan for a namespace
        # that does not exist would fail half-way when run (only --create-netns makes it).
        try:
            runtime = parse_env(self.env(command), netns_exists=not self.create_netns)
        except CNIError as exc:
            if command == "ADD" and self.netns_name and not os.path.lexists(self.netns):
                exc.details = "; ".join(([exc.details] if exc.details else [])
                                        + ["--create-netns makes it as the plan's first step"])
            raise
        # (a dry run changes nothing: not even the log file, or the log's directory)
        log = Log(None if self.dry_run else log_file(os.environ, raw, command, sys.stderr),
                  f"{command} {self.network}/{self.cid or '-'}/{self.ifname}", sys.stderr)
        return engine.Operation(raw, runtime, dry_run=self.dry_run, opts=opts, log=log)

    def run(self, index: int, command: str, prev_result, opts=None, version=None, extra=None):
        """Run plugin `index` for `command`; its result (converted to the list's version)."""
        if self.ours(index):
            op = self.operation(index, command, prev_result, opts, version, extra)
            if command == "STATUS":
                engine.status(op)
                return None
            outcome = engine.execute(op)
            return results.convert(outcome, op.version) if command == "ADD" else None
        path = plugin_exec.find_in_path(self.plugins[index].get("type"), self.cni_path)
        raw = self.request(index, prev_result, version, extra)
        out = libcni.exec_plugin(Runner(), path, self.env(command), raw)
        if command == "ADD":
            if out is None:
                raise CNIError(INTERNAL, f"plugin {path} printed no result for ADD")
            try:
                return results.convert(results.parse(out, self.version), self.version)
            except (ValueError, TypeError) as exc:
                raise CNIError(INTERNAL, f"plugin {path} printed a result that cannot be read",
                               str(exc)) from None
        return None

    def cache_entry(self) -> dict | None:
        """The attachment's cache entry, read once. As libcni does, one that cannot be read is
        ignored (DEL then runs without prevResult and cleans up from the config), never a dead
        end, and the operator is told why."""
        if not hasattr(self, "_cache_entry"):
            try:
                self._cache_entry = libcni.read_cache_entry(self.cache_dir, self.network,
                                                            self.cid, self.ifname)
            except ValueError as exc:
                self._ignore_cache(exc)
                self._cache_entry = None
        return self._cache_entry

    def cached_here(self, cid: str) -> bool:
        return os.path.lexists(libcni.cache_path(self.cache_dir, self.network, cid, self.ifname))

    def find_other_spelling(self) -> None:
        """DEL and CHECK of an attachment whose ADD named the namespace another way (`n1`,
        /var/run/netns/n1, /run/netns/n1: one namespace, two default container ids, as in
        cnitool; where /var/run is /run): when the container id was not given and this
        spelling's id has no cache entry, take the other spelling's id if that one has an
        entry, and say so."""
        if self.cid_given or self.netns_name is None or self.cached_here(self.cid):
            return
        if os.path.realpath(NETNS_DIR) != os.path.realpath("/run/netns"):
            return              # (/var/run is no link to /run here: two namespaces, not one)
        for path in (f"{NETNS_DIR}/{self.netns_name}", f"/run/netns/{self.netns_name}"):
            cid = _default_cid(path)
            if path != self.netns and self.cached_here(cid):
                click.echo(f"cnish: using the attachment ADD cached for {path} (container id "
                           f"{cid}): there is none for {self.netns}", err=True)
                self.cid = cid
                self.__dict__.pop("_cache_entry", None)
                return

    def _ignore_cache(self, why) -> None:
        click.echo(f"cnish: ignoring the cached result of {self.network}/{self.cid}/"
                   f"{self.ifname}, which cannot be read: {why}", err=True)

    def reuse_cached_args(self) -> None:
        """DEL and CHECK get the CNI_ARGS and capability arguments of the ADD, as libcni does
        (portmap, for one, removes nothing without its portMappings)."""
        entry = self.cache_entry()
        if not entry:
            return
        if not self.cap_args and isinstance(entry.get("capabilityArgs"), dict):
            self.cap_args = entry["capabilityArgs"]
        if not self.cni_args_text and isinstance(entry.get("cniArgs"), list):
            pairs = [p for p in entry["cniArgs"] if isinstance(p, list) and len(p) == 2]
            self.cni_args = {k: v for k, v in pairs}
            self.cni_args_text = ";".join(f"{k}={v}" for k, v in pairs)

    def cached(self):
        entry = self.cache_entry()
        result = entry.get("result") if entry else None
        if result is None:
            return None
        try:
            return results.convert(results.parse(result, self.version), self.version)
        except (ValueError, TypeError) as exc:
            self._ignore_cache(exc)
            return None

    def dry_run_plan(self, command: str, prev_result, opts):
        """Print the plan of the list's cnish plugin (one per list; others are named)."""
        ours = [i for i in range(len(self.plugins)) if self.ours(i)]
        if len(ours) != 1:
            raise CNIError(INVALID_CONFIG, "--dry-run prints the plan of one cnish plugin",
                           f"{self.network} has {len(ours)} cnish plugins")
        op = self.operation(ours[0], command, prev_result, opts)
        plan = engine.dry_run(op)
        path = libcni.cache_path(self.cache_dir, self.network, self.cid, self.ifname)
        if command == "DEL" and len(self.plugins) == 1:
            # (an entry too long for a file name cannot exist: `rm -f` would fail on its name)
            if libcni.cache_name_problem(self.network, self.cid, self.ifname) is None:
                plan.cache = {"path": path}
        elif command == "DEL":
            plan.notes.append("this script keeps the CLI's result cache: the other plugins' DEL "
                              "needs it (their arguments and the result); `cnish del` removes it")
        elif command == "ADD" and len(self.plugins) == 1 and plan.result is not None:
            plan.cache = {"path": path, "entry": libcni.cache_entry(
                self.conf_bytes, self.network, self.cid, self.ifname, self.netns, self.cni_args,
                self.cap_args, plan.result)}
        elif command == "ADD":
            plan.notes.append("this script does not write the CLI's result cache (the other "
                              "plugins' results are unknown): `cnish check` will not find the "
                              "attachment" + (" and `cnish gc` will take it for a stale one"
                                              if results.at_least(self.version, "1.1.0") else ""))
        for i, plugin in enumerate(self.plugins):
            if i != ours[0]:
                when = "before" if (i < ours[0]) != (command == "DEL") else "after"   # DEL: reversed
                plan.notes.append(f"the runtime also runs plugin {i + 1} ({plugin.get('type')}) "
                                  f"{when} this one; it is not cnish's, so its actions are not "
                                  "shown here")
                try:
                    plugin_exec.find_in_path(plugin.get("type"), self.cni_path)
                except plugin_exec.NotFound as exc:     # (what `cnish add` would refuse)
                    plan.notes.append(f"plugin {i + 1}: {exc.msg}")
        return plan


def _fail(exc: CNIError):
    click.echo(f"cnish: error {exc.code}: {exc.msg}" + (f": {exc.details}" if exc.details else ""),
               err=True)
    sys.exit(1)


def _print_plan(plan, fmt: str):
    click.echo(scripts.bash(plan) if fmt == "bash" else scripts.as_json(plan), nl=fmt != "bash")


def _resolve_netns(netns, pid) -> str:
    """NETNS argument or --pid PID (a container started with --network=none, say)."""
    if pid is not None:
        if netns:
            raise CNIError(INVALID_CONFIG, "give NETNS or --pid, not both")
        if pid <= 0:
            raise CNIError(INVALID_CONFIG, f"--pid {pid}: not a process id")
        return f"/proc/{pid}/ns/net"
    if not netns:
        raise CNIError(INVALID_CONFIG, "missing NETNS (a namespace path or name) or --pid")
    return netns


def network_options(fn):
    fn = click.option("--cache-dir", envvar="CNI_CACHE_DIR", show_envvar=True,
                      default=libcni.DEFAULT_CACHE_DIR, show_default=True,
                      help="Where results are cached (libcni layout).")(fn)
    fn = click.option("--config", "config", type=click.Path(dir_okay=False),
                      help="Read the network config from this file instead of NETCONFPATH.")(fn)
    return fn


def attachment_options(fn):
    fn = network_options(fn)
    fn = click.option("--cap-args", envvar="CAP_ARGS", show_envvar=True, default="",
                      help="Capability arguments as JSON (like cnitool's CAP_ARGS).")(fn)
    fn = click.option("--args", "cni_args", envvar="CNI_ARGS", show_envvar=True, default="",
                      help="CNI_ARGS for the plugins: K=V;K2=V2.")(fn)
    fn = click.option("--format", "fmt", type=click.Choice(["bash", "json"]), default="bash",
                      show_default=True, help="Dry-run output: a bash script or the JSON plan.")(fn)
    fn = click.option("--dry-run", is_flag=True,
                      help="Print the plan instead of running it; changes nothing.")(fn)
    fn = click.option("--cid", help="Container id (default: derived from NETNS, like cnitool).")(fn)
    fn = click.option("--ifname", "-i", envvar="CNI_IFNAME", show_envvar=True, default="eth0",
                      show_default=True, help="Interface name inside the namespace.")(fn)
    fn = click.option("--pid", type=int, default=None,
                      help="Use the network namespace of this process (/proc/PID/ns/net); "
                           "NETNS may then be omitted.")(fn)
    fn = click.argument("netns", required=False)(fn)
    fn = click.argument("network")(fn)
    return fn


@click.group(help="cnish: a CNI plugin whose every action is an auditable ip/iptables command.\n\n"
                  "Run by a runtime (CNI_COMMAND set) it is a CNI plugin; run by hand it works "
                  "like cnitool. NETWORK is looked up in NETCONFPATH (default /etc/cni/net.d); "
                  "NETNS is a path or a name in /var/run/netns; plugins that are not cnish's "
                  "are executed from CNI_PATH (default /opt/cni/bin:/usr/lib/cni).")
@click.version_option(__version__, prog_name="cnish")
def cli():
    pass


@cli.command(help="Attach NETNS to NETWORK (CNI ADD, every plugin in order) and print the result.")
@attachment_options
@click.option("--create-netns", is_flag=True,
              help="Create the namespace (a name in /var/run/netns) as the plan's first step.")
def add(network, netns, pid, ifname, cid, config, dry_run, fmt, cni_args, cap_args, cache_dir,
        create_netns):
    try:
        s = Session(network, _resolve_netns(netns, pid), ifname, cid, config, cni_args, cap_args,
                    cache_dir, create_netns, dry_run, adding=True)
        opts = {"create_netns": create_netns, "netns_name": s.netns_name}
        # (before anything is done: a result that cannot be cached undoes the whole ADD)
        problem = libcni.cache_name_problem(s.network, s.cid, s.ifname)
        if problem:
            raise CNIError(INVALID_CONFIG, f"the network's name, --cid and --ifname are too "
                           f"long together: {problem}", "use a shorter container id, "
                           "interface or network name")
        if dry_run:
            _print_plan(s.dry_run_plan("ADD", None, opts), fmt)
            return
        # Every plugin that is not cnish's must be there before the first one runs: one
        # missing half-way would have the others' work undone for nothing.
        for index in range(len(s.plugins)):
            if not s.ours(index):
                plugin_exec.find_in_path(s.plugins[index].get("type"), s.cni_path)
        prev, succeeded, internal = None, [], False
        try:
            for index in range(len(s.plugins)):
                opts = {"create_netns": create_netns and index == 0, "netns_name": s.netns_name}
                try:
                    prev = s.run(index, "ADD", prev, opts)
                except CNIError:
                    raise
                except Exception as exc:        # a bug: undone like any failure, its own
                    internal = True             # part too (it may not have undone it)
                    kind = s.plugins[index].get("type")
                    raise CNIError(INTERNAL, f"plugin {index + 1} ({kind}) failed with an "
                                   f"internal error: {exc!r}") from exc
                succeeded.append(index)
            libcni.write_cache(s.cache_dir, s.conf_bytes, s.network, s.cid, s.ifname, s.netns,
                               s.cni_args, s.cap_args, prev)
        except CNIError as exc:
            left = []
            failed = len(succeeded) if len(succeeded) < len(s.plugins) else None
            to_delete = list(succeeded)
            if (failed is not None and (internal or not s.ours(failed))
                    and not isinstance(exc, plugin_exec.NotFound)):
                # (the plugin that failed, if it is not cnish's: it may have left something,
                # which DEL removes; cnish's own undo their part before they report; one that
                # could not be found never ran)
                to_delete.append(failed)
            deleted = []
            for index in reversed(to_delete):   # leave nothing of a half-made attachment,
                undo = {"delete_netns": create_netns and index == 0,      # nor the namespace
                        "netns_name": s.netns_name}
                try:
                    s.run(index, "DEL", prev, undo)
                    deleted.append(index)
                except CNIError as undo_exc:   # the operator must know what is still there
                    left.append(f"DEL of plugin {index + 1} ({s.plugins[index].get('type')}) "
                                f"failed: {undo_exc}")
                    if index == failed:         # (its ADD did not finish: best effort)
                        continue
                    if index > 0:               # (and stops there, as DEL does: see delete)
                        left.append(f"{_plugins_up_to(index)} not asked to DEL: cnish "
                                    "del removes the rest")
                    break
            if deleted:                         # (the operator must know that, too)
                left.insert(0, _plugins_named(sorted(deleted)) + " deleted again" + (
                    " and the namespace removed" if create_netns and 0 in deleted else ""))
            if left:
                exc.details = "; ".join(([exc.details] if exc.details else []) + left)
            raise
        click.echo(json.dumps(prev, indent=2))
    except CNIError as exc:
        _fail(exc)


@cli.command(help="Verify the attachment against the cached ADD result (CNI CHECK).")
@attachment_options
def check(network, netns, pid, ifname, cid, config, dry_run, fmt, cni_args, cap_args,
          cache_dir):
    try:
        s = Session(network, _resolve_netns(netns, pid), ifname, cid, config, cni_args, cap_args,
                    cache_dir, dry_run=dry_run)
        if not results.at_least(s.version, "0.4.0"):        # (libcni asks this first too)
            raise CNIError(INCOMPATIBLE_VERSION, f"configuration version {s.version!r} does "
                           "not support the CHECK command", "CHECK needs cniVersion 0.4.0 or "
                           "later")
        if libcni.flag(s.conflist, "disableCheck"):
            click.echo(f"cnish: {s.network} has disableCheck: nothing was checked", err=True)
            return
        s.find_other_spelling()
        prev = s.cached()
        s.reuse_cached_args()
        if prev is None:
            raise CNIError(INVALID_CONFIG, f"no cached result for {s.network}/{s.cid}/{s.ifname}",
                           f"looked in {libcni.cache_path(s.cache_dir, s.network, s.cid, s.ifname)};"
                           " CHECK compares the attachment with what ADD returned")
        if dry_run:
            _print_plan(s.dry_run_plan("CHECK", prev, {}), fmt)
            return
        for index in range(len(s.plugins)):
            s.run(index, "CHECK", prev)
    except CNIError as exc:
        _fail(exc)


@cli.command(name="del", help="Detach NETNS from NETWORK (CNI DEL, plugins in reverse); safe to "
                              "repeat.")
@attachment_options
@click.option("--delete-netns", is_flag=True,
              help="Also delete the namespace (a name in /var/run/netns) as the last step.")
def delete(network, netns, pid, ifname, cid, config, dry_run, fmt, cni_args, cap_args,
           cache_dir, delete_netns):
    try:
        s = Session(network, _resolve_netns(netns, pid), ifname, cid, config, cni_args, cap_args,
                    cache_dir, dry_run=dry_run)
        if delete_netns and s.netns_name is None:
            raise CNIError(INVALID_CONFIG, "--delete-netns needs a namespace name in /var/run/netns")
        if delete_netns:
            s.require_cnish_first("--delete-netns", "delete it with `ip netns del` afterwards")
        s.find_other_spelling()
        if s.netns and not s.cached_here(s.cid):
            # (safe, and what a repeated DEL meets; but a DEL given another id than its ADD's
            # would find nothing of the attachment: the operator must be able to tell)
            click.echo(f"cnish: no cached result for {s.network}/{s.cid}/{s.ifname} in "
                       f"{s.cache_dir}: this DEL goes by the config alone" + (
                           "" if s.cid_given else " (an ADD given --cid has another container "
                           "id: give it here too)"), err=True)
        prev = s.cached() if results.at_least(s.version, "0.4.0") else None
        s.reuse_cached_args()
        if dry_run:
            _print_plan(s.dry_run_plan("DEL", prev, {"delete_netns": delete_netns,
                                                     "netns_name": s.netns_name}), fmt)
            return
        for index in reversed(range(len(s.plugins))):
            opts = {"delete_netns": delete_netns and index == 0, "netns_name": s.netns_name}
            try:
                s.run(index, "DEL", prev, opts)
            except CNIError as exc:
                # Stop here, as libcni does: the plugins before this one in the list keep
                # their part (the main plugin its addresses) while this one's may remain —
                # portmap's DNAT rules for an address the next container could be given.
                # The cache stays, so DEL can be run again.
                if index > 0:
                    exc.details = "; ".join(([exc.details] if exc.details else []) + [
                        f"{_plugins_up_to(index)} not asked to DEL: run DEL again"])
                raise
        libcni.remove_cache(s.cache_dir, s.network, s.cid, s.ifname)
    except CNIError as exc:
        _fail(exc)


@cli.command(help="Remove what attachments of NETWORK without a cached result left behind "
                  "(CNI GC: reservations, masquerade chains, host veths).")
@click.argument("network")
@network_options
@click.option("--dry-run", is_flag=True, help="Print the GC plan of the cnish plugin instead.")
@click.option("--format", "fmt", type=click.Choice(["bash", "json"]), default="bash")
def gc(network, config, cache_dir, dry_run, fmt):
    try:
        s = Session(network, config=config, cache_dir=cache_dir, dry_run=dry_run)
        if libcni.flag(s.conflist, "disableGC"):
            # (libcni's GCNetworkList returns at once: the list's owner turned GC off, for
            # example because several runtimes share the network and none knows every attachment)
            click.echo(f"{s.network} has disableGC: nothing to do")
            return
        blockers = _gc_blockers(s)
        if blockers:
            raise CNIError(INVALID_CONFIG, f"cannot garbage-collect {s.network}: "
                           + "; ".join(blockers),
                           "releasing a stale attachment's address would hand what they keep "
                           "for it to the next container given the address; DEL the stale "
                           "attachment by its container id instead (cnish del NETWORK NETNS "
                           "--cid ID, with the --cap-args it was added with: portmap finds its "
                           "rules by them; NETNS may be a path that is gone), which every "
                           "plugin of the list gets")
        valid = [{"containerID": cid, "ifname": ifname}
                 for cid, ifname in libcni.cached_attachments(s.cache_dir, s.network)]
        extra = {"cni.dev/valid-attachments": valid, "cni.dev/attachments": valid}
        # cnish's own plugins serve GC whatever the list's version; others need 1.1.0, and so
        # does a delegated IPAM plugin of cnish's (list_version: it must not get GC or STATUS
        # under a cniVersion the list does not have)
        version = "1.1.0"
        caveats = _gc_caveats(s)
        if dry_run:
            ours = [i for i in range(len(s.plugins)) if s.ours(i)]
            if len(ours) != 1:
                raise CNIError(INVALID_CONFIG, "--dry-run prints the plan of one cnish plugin",
                               f"{s.network} has {len(ours)} cnish plugins")
            op = s.operation(ours[0], "GC", None, {"list_version": s.version}, version=version,
                             extra=extra)
            plan = engine.dry_run(op)
            if not results.at_least(s.version, "1.1.0"):     # (why the header says 1.1.0)
                others = [p.get("type") for i, p in enumerate(s.plugins) if not s.ours(i)]
                plan.notes.append(f"the list's cniVersion is {s.version}: cnish's plugins are "
                                  f"asked for GC at {version} all the same" + (
                                      f"; {', '.join(others)} get none" if others else ""))
            plan.notes.extend(caveats)
            _print_plan(plan, fmt)
            return
        for caveat in caveats:
            click.echo(f"cnish: note: {caveat}", err=True)
        errors = []
        for index in range(len(s.plugins)):
            if not s.ours(index) and not results.at_least(s.version, "1.1.0"):
                continue
            try:
                s.run(index, "GC", None, {"list_version": s.version},
                      version=version if s.ours(index) else None, extra=extra)
            except CNIError as exc:
                errors.append(exc)
        if errors:
            raise CNIError(errors[0].code, "GC could not remove everything: "
                           + "; ".join(e.msg for e in errors),
                           " | ".join(e.details for e in errors if e.details))
        click.echo(f"kept {len(valid)} attachment(s) with a cached result")
    except CNIError as exc:
        _fail(exc)


# Plugins that keep state for an attachment by its address (portmap's port forwards,
# firewall's rules) and do not remove it on GC (the reference's answer GC without cleaning
# up): cnish's plugins releasing a stale attachment's address would hand that state to the
# next container given it (a mixing audit: the next container got the old one's forwarded
# port). The reference's others keep theirs by container id or in the container.
ADDRESS_KEYED = ("portmap", "firewall")
NOT_ADDRESS_KEYED = ("tuning", "bandwidth", "sbr", "vrf")


def _gc_blockers(s) -> list:
    """Why `cnish gc` must not run cnish's plugins' GC on this list, if it must not."""
    others = [p.get("type") for i, p in enumerate(s.plugins) if not s.ours(i)]
    keyed = [t for t in others if t in ADDRESS_KEYED]
    unknown = [t for t in others if t not in ADDRESS_KEYED + NOT_ADDRESS_KEYED]
    out = []
    if keyed:
        out.append(", ".join(keyed) + " keep" + ("s" if len(keyed) == 1 else "")
                   + " state by the attachment's address and do" + ("es" if len(keyed) == 1
                                                                     else "")
                   + " not remove it on GC")
    if unknown and not results.at_least(s.version, "1.1.0"):
        out.append(", ".join(unknown) + f" get{'s' if len(unknown) == 1 else ''} no GC below "
                   f"cniVersion 1.1.0 (the list has {s.version}) and may keep such state")
    return out


def _gc_caveats(s) -> list:
    """What `cnish gc` leaves on a list older than GC (spec 1.1.0), for the operator to know:
    not a reason to refuse (a leak, never state handed to another container)."""
    out = []
    if results.at_least(s.version, "1.1.0"):
        return out
    for i, conf in enumerate(s.plugins):
        ipam = conf.get("ipam") if s.ours(i) else None
        try:        # (as the engine reads it: none, cnish's own, or run from CNI_PATH)
            module = engine.ipam_module(ipam) if isinstance(ipam, dict) else None
        except CNIError:
            continue                    # (the plugin's GC reports the bad ipam.type)
        if getattr(module, "TYPE", None) == "delegate":
            out.append(f"the IPAM plugin {ipam['type']} of {conf.get('type')} gets no GC "
                       f"below cniVersion 1.1.0 (the list has {s.version}): what it holds for "
                       "the stale attachments removed here stays reserved; DEL one by its "
                       "container id (cnish del NETWORK NETNS --cid ID) to release it")
    return out


@cli.command(help="Can every plugin of NETWORK serve ADD now? (CNI STATUS)")
@click.argument("network")
@network_options
def status(network, config, cache_dir):
    try:
        s = Session(network, config=config, cache_dir=cache_dir)
        for index in range(len(s.plugins)):
            if s.ours(index):
                s.run(index, "STATUS", None, {"list_version": s.version}, version="1.1.0")
                continue
            try:                  # it must be there: without it, ADD cannot be served
                plugin_exec.find_in_path(s.plugins[index].get("type"), s.cni_path)
            except plugin_exec.NotFound as exc:
                raise CNIError(NOT_AVAILABLE, "cannot serve ADD: " + exc.msg,
                               exc.details) from None
            if results.at_least(s.version, "1.1.0"):
                s.run(index, "STATUS", None)
        click.echo(f"{s.network}: ready")
    except CNIError as exc:
        _fail(exc)


@cli.command(name="install", help="Install cnish into a CNI plugin directory (e.g. /opt/cni/bin): "
                                  "a fast-starting launcher DIR/cnish, plus links such as "
                                  "cnish-bridge, bridge, host-local for the types it should "
                                  "answer to.")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--link", "links", multiple=True, metavar="NAME",
              help="Also link DIR/NAME to the launcher (repeatable), e.g. --link cnish-bridge.")
@click.option("--python", "python", metavar="PATH",
              help="The interpreter the launcher runs (absolute path). It must be the same "
                   "Python X.Y as the one running this command; checked by running it. Default: "
                   "the distribution's /usr/bin/pythonX.Y when it can run this cnish (a "
                   "statically linked, PGO-built python3 starts faster than a pyenv build), "
                   "else the one running this command.")
def install_cmd(directory, links, python):
    from cnish.install import InterpreterError, install, launcher_python
    for name in links:
        if name not in plugins.PLUGINS and plugins.canonical(name) not in plugins.PLUGINS:
            _fail(CNIError(INVALID_CONFIG, f"--link {name}: not a plugin type cnish implements",
                           "cnish implements " + ", ".join(plugins.implemented())))
    try:
        paths = install(directory, links, python)
        for path in paths:
            click.echo(path)
        click.echo(f"the launcher runs {launcher_python(paths[0])}", err=True)
    except InterpreterError as exc:
        _fail(CNIError(INVALID_CONFIG, f"--python: {exc}"))
    except OSError as exc:
        _fail(CNIError(5, f"cannot install into {directory}", str(exc)))
