"""The operator CLI, modelled on cnitool: `cnish add|check|del NETWORK NETNS`.

Runs the network's plugins in-process through the same engine a runtime reaches through CNI
mode, keeps libcni's result cache so that check and del find what add did, and prints plans
instead of running them with --dry-run.
"""

import hashlib
import json
import os
import sys

import click

from cnish import __version__, engine, libcni, plugins, results, scripts
from cnish.config import parse_cni_args, parse_env
from cnish.errors import INVALID_CONFIG, CNIError
from cnish.log import Log
from cnish.validate import identifier_problem

NETNS_DIR = "/var/run/netns"


def _netns_path(netns: str) -> tuple[str, str | None]:
    """NETNS as a path, and its name when it lives in /var/run/netns."""
    if "/" not in netns:
        problem = identifier_problem(netns)
        if problem:
            raise CNIError(INVALID_CONFIG, f"invalid namespace name {netns!r}: {problem}")
        return f"{NETNS_DIR}/{netns}", netns
    path = os.path.abspath(netns)
    for run_dir in (NETNS_DIR, "/run/netns"):
        if os.path.dirname(path) == run_dir:
            return path, os.path.basename(path)
    return path, None


def _default_cid(netns_path: str) -> str:
    """cnitool's container id: "cnitool-" + the first 10 bytes of sha512(netns path), in hex."""
    return "cnitool-" + hashlib.sha512(netns_path.encode()).hexdigest()[:20]


class Session:
    """One CLI invocation: the network list, the attachment, and how to run each plugin."""

    def __init__(self, command, network, netns, ifname, cid, config, cni_args, cap_args,
                 cache_dir, create_netns=False, dry_run=False):
        self.command = command
        if config:
            conf = libcni._read_json(config)
            self.conflist, self.source = libcni.as_list(conf, config), config
        else:
            dirs = [d for d in os.environ.get("NETCONFPATH", libcni.DEFAULT_CONF_DIR).split(":") if d]
            self.conflist, self.source = libcni.find(network, dirs)
        with open(self.source, "rb") as f:
            self.conf_bytes = f.read()
        self.network = self.conflist.get("name")
        self.version = libcni.select_version(self.conflist)
        self.netns, self.netns_name = _netns_path(netns)
        if create_netns and self.netns_name is None:
            raise CNIError(INVALID_CONFIG, "--create-netns needs a namespace name",
                           f"{netns!r} is a path outside {NETNS_DIR}")
        self.ifname = ifname
        self.cid = cid or _default_cid(self.netns)
        self.cni_args_text = cni_args or ""
        self.cni_args = parse_cni_args(self.cni_args_text)
        try:
            self.cap_args = json.loads(cap_args) if cap_args else {}
        except ValueError as exc:
            raise CNIError(INVALID_CONFIG, "--cap-args (CAP_ARGS) is not JSON", str(exc)) from None
        self.cache_dir = cache_dir
        self.create_netns = create_netns
        self.dry_run = dry_run
        for plugin in self.conflist["plugins"]:
            if plugins.get(plugin.get("type")) is None:
                raise CNIError(INVALID_CONFIG,
                               f"plugin type {plugin.get('type')!r} is not one cnish implements",
                               "the operator CLI runs cnish's own plugins: "
                               + ", ".join(plugins.implemented()))

    def operation(self, index: int, command: str, prev_result, opts=None) -> engine.Operation:
        raw = libcni.request(self.conflist, index, self.version, self.cap_args, prev_result)
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": self.cid, "CNI_NETNS": self.netns,
               "CNI_IFNAME": self.ifname, "CNI_ARGS": self.cni_args_text,
               "CNI_PATH": os.environ.get("CNI_PATH", "/opt/cni/bin")}
        runtime = parse_env(env, netns_exists=not (self.create_netns or self.dry_run))
        log = Log(os.environ.get("CNISH_LOG_FILE") or raw.get("logFile"),
                  f"{command} {self.network}/{self.cid}/{self.ifname}", sys.stderr)
        return engine.Operation(raw, runtime, dry_run=self.dry_run, opts=opts, log=log)

    def cached(self):
        result = libcni.read_cache(self.cache_dir, self.network, self.cid, self.ifname)
        if result is None:
            return None
        internal = results.parse(result, self.version)
        return results.convert(internal, self.version)


def _fail(exc: CNIError):
    click.echo(f"cnish: error {exc.code}: {exc.msg}" + (f": {exc.details}" if exc.details else ""),
               err=True)
    sys.exit(1)


def _print_plan(plan, fmt: str):
    click.echo(scripts.bash(plan) if fmt == "bash" else scripts.as_json(plan), nl=fmt != "bash")


def attachment_options(fn):
    fn = click.option("--cache-dir", envvar="CNI_CACHE_DIR", default=libcni.DEFAULT_CACHE_DIR,
                      show_default=True, help="Where results are cached (libcni layout).")(fn)
    fn = click.option("--cap-args", envvar="CAP_ARGS", default="",
                      help="Capability arguments as JSON (like cnitool's CAP_ARGS).")(fn)
    fn = click.option("--args", "cni_args", envvar="CNI_ARGS", default="",
                      help="CNI_ARGS for the plugins: K=V;K2=V2.")(fn)
    fn = click.option("--format", "fmt", type=click.Choice(["bash", "json"]), default="bash",
                      show_default=True, help="Dry-run output: a bash script or the JSON plan.")(fn)
    fn = click.option("--dry-run", is_flag=True,
                      help="Print the plan instead of running it; changes nothing.")(fn)
    fn = click.option("--config", "config", type=click.Path(dir_okay=False),
                      help="Read the network config from this file instead of NETCONFPATH.")(fn)
    fn = click.option("--cid", help="Container id (default: derived from NETNS, like cnitool).")(fn)
    fn = click.option("--ifname", "-i", envvar="CNI_IFNAME", default="eth0", show_default=True,
                      help="Interface name inside the namespace.")(fn)
    fn = click.option("--pid", type=int, default=None,
                      help="Use the network namespace of this process (/proc/PID/ns/net); "
                           "NETNS may then be omitted.")(fn)
    fn = click.argument("netns", required=False)(fn)
    fn = click.argument("network")(fn)
    return fn


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


@click.group(help="cnish: a CNI plugin whose every action is an auditable ip/iptables command.\n\n"
                  "Run by a runtime (CNI_COMMAND set) it is a CNI plugin; run by hand it works "
                  "like cnitool. NETWORK is looked up in NETCONFPATH (default /etc/cni/net.d); "
                  "NETNS is a path or a name in /var/run/netns.")
@click.version_option(__version__, prog_name="cnish")
def cli():
    pass


@cli.command(help="Attach NETNS to NETWORK (CNI ADD) and print the result.")
@attachment_options
@click.option("--create-netns", is_flag=True,
              help="Create the namespace (a name in /var/run/netns) as the plan's first step.")
def add(network, netns, pid, ifname, cid, config, dry_run, fmt, cni_args, cap_args, cache_dir,
        create_netns):
    try:
        netns = _resolve_netns(netns, pid)
        s = Session("ADD", network, netns, ifname, cid, config, cni_args, cap_args, cache_dir,
                    create_netns, dry_run)
        if dry_run:
            if len(s.conflist["plugins"]) != 1:
                raise CNIError(INVALID_CONFIG, "--dry-run prints one plugin's plan",
                               f"{network} chains {len(s.conflist['plugins'])} plugins")
            opts = {"create_netns": create_netns, "netns_name": s.netns_name}
            _print_plan(engine.dry_run(s.operation(0, "ADD", None, opts)), fmt)
            return
        prev, done = None, []
        try:
            for index in range(len(s.conflist["plugins"])):
                opts = {"create_netns": create_netns and index == 0, "netns_name": s.netns_name}
                op = s.operation(index, "ADD", prev, opts)
                prev = results.convert(engine.execute(op), s.version)
                done.append(index)
        except CNIError:
            for index in reversed(done):       # leave nothing of a half-made attachment
                try:
                    engine.execute(s.operation(index, "DEL", prev))
                except CNIError:
                    pass
            raise
        libcni.write_cache(s.cache_dir, s.conf_bytes, s.network, s.cid, s.ifname, s.netns,
                           s.cni_args, s.cap_args, prev)
        click.echo(json.dumps(prev, indent=2))
    except CNIError as exc:
        _fail(exc)


@cli.command(help="Verify the attachment against the cached ADD result (CNI CHECK).")
@attachment_options
def check(network, netns, pid, ifname, cid, config, dry_run, fmt, cni_args, cap_args,
          cache_dir):
    try:
        netns = _resolve_netns(netns, pid)
        s = Session("CHECK", network, netns, ifname, cid, config, cni_args, cap_args, cache_dir,
                    dry_run=dry_run)
        if s.conflist.get("disableCheck") in (True, "true", "True"):
            return
        prev = s.cached()
        if prev is None:
            raise CNIError(INVALID_CONFIG, f"no cached result for {s.network}/{s.cid}/{s.ifname}",
                           f"looked in {libcni.cache_path(s.cache_dir, s.network, s.cid, s.ifname)};"
                           " CHECK compares the attachment with what ADD returned")
        for index in range(len(s.conflist["plugins"])):
            op = s.operation(index, "CHECK", prev)
            if dry_run:
                _print_plan(engine.dry_run(op), fmt)
            else:
                engine.execute(op)
    except CNIError as exc:
        _fail(exc)


@cli.command(name="del", help="Detach NETNS from NETWORK (CNI DEL); safe to repeat.")
@attachment_options
@click.option("--delete-netns", is_flag=True,
              help="Also delete the namespace (a name in /var/run/netns) as the last step.")
def delete(network, netns, pid, ifname, cid, config, dry_run, fmt, cni_args, cap_args,
           cache_dir, delete_netns):
    try:
        netns = _resolve_netns(netns, pid)
        s = Session("DEL", network, netns, ifname, cid, config, cni_args, cap_args, cache_dir,
                    dry_run=dry_run)
        if delete_netns and s.netns_name is None:
            raise CNIError(INVALID_CONFIG, "--delete-netns needs a namespace name in /var/run/netns")
        prev = s.cached() if results.at_least(s.version, "0.4.0") else None
        for index in reversed(range(len(s.conflist["plugins"]))):
            opts = {"delete_netns": delete_netns and index == 0, "netns_name": s.netns_name}
            op = s.operation(index, "DEL", prev, opts)
            if dry_run:
                _print_plan(engine.dry_run(op), fmt)
            else:
                engine.execute(op)
        if not dry_run:
            libcni.remove_cache(s.cache_dir, s.network, s.cid, s.ifname)
    except CNIError as exc:
        _fail(exc)
