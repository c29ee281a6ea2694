"""CNI binary mode: what a runtime gets when it execs cnish (the CNI spec, SPEC.md in
containernetworking/cni, and what the reference plugins' skel does before a plugin's code runs).

Environment and stdin in, exactly one JSON document out: the result (converted to the
request's cniVersion) or the error object with exit status 1. No click, no jinja2 on this path
when a cached plan exists: runtimes call the plugin for every container start.
"""

from cnish import __version__, results
from cnish.config import (decode_config, parse_env, read_stdin)
from cnish.errors import INTERNAL, INVALID_CONFIG, CNIError

ABOUT = "CNI cnish plugin version {version}\nCNI protocol versions supported: {versions}\n"


def _write(stream, obj) -> None:
    from cnish import jsonfast
    stream.write(jsonfast.dumps(obj) + "\n")
    stream.flush()


def _request_for_version(stdin) -> dict:
    """The request on stdin, read only so that an error found in the environment first (a
    missing CNI_NETNS, say) carries the request's cniVersion, as every later error does; {}
    when it cannot be read or decoded, and without reading a terminal (an operator's typing
    would be waited for)."""
    try:
        if stdin is None or stdin.isatty():
            return {}
        return decode_config(read_stdin(stdin))
    except (CNIError, OSError, ValueError):
        return {}


def main(env, stdin, stdout, stderr, plugin_type: str | None = None) -> int:
    """Serve one CNI invocation. `plugin_type` is set when the executable's name chose it."""
    command = env.get("CNI_COMMAND")
    if not command:
        stderr.write(ABOUT.format(version=__version__,
                                  versions=", ".join(results.SUPPORTED_VERSIONS)))
        return 0
    if stdout is None:       # started with stdout closed: no result or error could be reported,
        if stderr is not None:         # so change nothing (an ADD would otherwise stay, unseen)
            stderr.write("cnish: stdout is closed: the runtime could read no answer; "
                         "nothing was done\n")
        return 1
    if command == "VERSION":
        from cnish.main import version      # the same answer as the fast path in main.py
        return version(stdin, stdout)

    raw = {}
    log = None
    try:
        try:
            runtime = parse_env(env)
        except CNIError:
            raw = _request_for_version(stdin)     # the error object answers in its cniVersion
            raise
        raw = decode_config(read_stdin(stdin))
        from cnish.log import Log, log_file
        log = Log(log_file(env, raw, command, stderr),
                  f"{command} {raw.get('name')}/{runtime.container_id or '-'}/{runtime.ifname or '-'}",
                  stderr)
        from cnish import engine
        op = engine.Operation(raw, runtime, type_name=plugin_type, log=log)
        from cnish.plugins import DELEGATED_BY
        if env.get(DELEGATED_BY) is not None and op.plugin.KIND != "ipam":
            raise CNIError(INVALID_CONFIG, f"ipam.type runs cnish as a {op.type} plugin, "
                           f"not as an IPAM plugin", "ipam.type names an IPAM plugin such as "
                           "host-local or static (this would run itself again, without end)")
        if command == "STATUS":
            engine.status(op)
            log.write("status: ready")
            return 0
        outcome = engine.execute(op)
        if command == "ADD":
            _write(stdout, results.convert(outcome, op.version))
            log.write("done: " + ", ".join(ip["address"] for ip in outcome.get("ips", [])))
        else:
            log.write("done")
        return 0
    except CNIError as exc:
        if log is not None:
            log.error(str(exc))
        else:
            stderr.write(f"cnish: {exc}\n")
        _write(stdout, exc.to_json(results.version_in_use(raw)))
        return 1
    except Exception as exc:     # a bug: still answer in the protocol, with the trace in the log
        import traceback
        trace = traceback.format_exc()
        if log is not None:
            log.error(trace)
        else:
            stderr.write(trace)
        error = CNIError(INTERNAL, f"internal error in cnish: {exc!r}",
                         "please report this with the log")
        _write(stdout, error.to_json(results.version_in_use(raw)))
        return 1
    finally:
        if log is not None:
            log.close()
