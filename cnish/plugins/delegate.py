"""Delegated IPAM: an IPAM plugin cnish does not implement, executed from CNI_PATH.

As the spec wants (SPEC.md, "Delegated plugins"): the plugin gets the same environment and the full
config cnish received, for ADD, DEL, CHECK, STATUS and GC; its errors are passed on; when a
later step of ADD fails, cnish runs DEL on it. The ADD happens while cnish prepares the plan
(the plan needs the addresses it returns), and appears in the plan as the step `ipam` whose
undo is the plugin's DEL; when preparing the plan fails after that ADD (a config the addresses
make invalid, say), the engine runs the DEL itself (ipam_abandon).

A dry-run cannot preview the addresses of an external IPAM plugin (asking it allocates them),
so `--dry-run` of an ADD with one is refused with an explanation; DEL and CHECK plans print
fine.
"""

from cnish import jsonfast, natives, plugin_exec, plugins, results
from cnish.errors import INTERNAL, INVALID_CONFIG, NOT_AVAILABLE, CNIError
from cnish.runner import TIMED_OUT

TYPE = "delegate"
KIND = "ipam"
CNI_ARGS = frozenset()          # the delegate validates CNI_ARGS itself (IgnoreUnknown applies)


def find(type_name: str, cni_path) -> str:
    return plugin_exec.find_in_path(type_name, cni_path, "IPAM plugin",
                                    "install it in one of the CNI_PATH directories, or use an "
                                    "IPAM type cnish implements (host-local, static)")


def parse(fields, op) -> dict:
    try:
        path = find(fields.obj["type"], op.runtime.path)
    except plugin_exec.NotFound as exc:
        if op.command == "STATUS":
            exc.code = NOT_AVAILABLE     # (not installed yet: ADD cannot be served now)
        raise
    return {"type": fields.obj.get("type"), "path": path}


class Delegate:
    """Runs the plugin with the invocation's environment and config."""

    def __init__(self, op):
        self.op = op
        self.path = op.ipam_conf.path
        self.config = jsonfast.dumps(op.raw)
        self.done = set()
        self.may_hold = False       # its ADD ran (or was killed running): DEL gives back

    def env(self, command: str) -> dict:
        rt = self.op.runtime
        return dict(plugin_exec.environment(command, rt.container_id, rt.netns, rt.ifname,
                                            rt.args_text, rt.path),
                    **{plugins.DELEGATED_BY: self.op.type})

    def run(self, command: str):
        """(returncode, stdout, stderr) of the plugin for `command`."""
        if command in self.done:        # ADD already ran while the plan was prepared
            return 0, "", ""
        res = self.op.runner.run((self.path,), stdin=self.config, env=self.env(command))
        if res.returncode == 0:
            self.done.add(command)
        if command == "ADD" and res.returncode in (0, TIMED_OUT):
            self.may_hold = True    # (killed at its deadline, it may have allocated already)
        return res.returncode, res.stdout, res.stderr

    def error(self, command: str, rc: int, out: str, err: str) -> CNIError:
        """The delegate's own error (code, msg, details) when it printed one."""
        return plugin_exec.failure(f"IPAM plugin {self.op.ipam_conf.type}", command, rc, out, err)


    def step(self, command: str):
        """`cnish-delegate COMMAND PLUGIN` as a plan step: on failure its stderr carries the
        plugin's own error (code, msg, details), which the plugin prints on stdout."""
        rc, out, err = self.run(command)
        if rc != 0:
            e = self.error(command, rc, out, err)
            err = f"{err.rstrip()}\nerror {e.code}: {e}\n".lstrip()
        return rc, out, err


def _delegate(op) -> Delegate:
    d = getattr(op, "_delegate", None)
    if d is None:
        d = op._delegate = Delegate(op)
        natives.DELEGATES[d.path] = d.step     # for the plan's cnish-delegate steps
    return d


def ipam_add(op):
    if op.dry_run:
        raise CNIError(INVALID_CONFIG, f"dry-run cannot preview the addresses of IPAM plugin "
                       f"{op.ipam_conf.type}",
                       "asking an external IPAM plugin for addresses allocates them; DEL and "
                       "CHECK plans can be printed, and a real ADD logs its plan (logFile)")
    op.refuse_if_overdue(f"ask the IPAM plugin {op.ipam_conf.type} for addresses")
    d = _delegate(op)
    rc, out, err = d.run("ADD")
    if rc != 0:
        raise d.error("ADD", rc, out, err)
    try:
        result = results.parse(jsonfast.loads(out), op.version)
    except ValueError as exc:
        # (the engine's abandon_ipam sends the DEL: ADD succeeded, so the plugin holds addresses)
        raise CNIError(INTERNAL, f"IPAM plugin {op.ipam_conf.type} returned an unreadable result",
                       str(exc)) from None
    return {"plugin": d.path}, result


def ipam_abandon(op) -> str:
    """The ADD failed before its plan ran (the plan's rollback would have run DEL): give the
    addresses back now. Returns what went wrong with that DEL, or ""."""
    d = getattr(op, "_delegate", None)
    if d is None or not d.may_hold:
        return ""
    rc, out, err = d.run("DEL")
    if rc == 0:
        return ""
    e = d.error("DEL", rc, out, err)
    return f"{e.msg} {e.details}".strip()


def ipam_del(op):
    _delegate(op)
    return {"plugin": op.ipam_conf.path}, []


def ipam_check(op, ips):
    _delegate(op)
    return {"plugin": op.ipam_conf.path}


def _serves_gc_and_status(op) -> bool:
    """GC and STATUS exist from spec 1.1.0: libcni sends them to a plugin only for a list of
    that version. cnish's CLI runs its own plugins' GC and STATUS whatever the list's version
    (opts list_version), but must not hand them on to the IPAM plugin under a cniVersion the
    list does not have (the reference's host-local answered such a STATUS with code 3)."""
    return results.at_least(op.opts.get("list_version") or op.version, "1.1.0")


def ipam_status(op) -> None:
    """STATUS is forwarded; the delegate's error (code 50/51 included) is passed on."""
    if not _serves_gc_and_status(op):
        return
    d = _delegate(op)
    rc, out, err = d.run("STATUS")
    if rc != 0:
        raise d.error("STATUS", rc, out, err)


def ipam_gc(op, valid: set) -> dict:
    """GC is forwarded by the plan's gc step (with the valid attachments in the config)."""
    _delegate(op)
    return {"plugin": op.ipam_conf.path, "forward": _serves_gc_and_status(op)}

