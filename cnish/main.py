"""The `cnish` executable: CNI plugin for runtimes, command-line tool for operators.

CNI mode when there are no arguments and either CNI_COMMAND is set or the executable is named
after a plugin type (`bridge`, `host-local`, `cnish-bridge`, ... — how a runtime or a main
plugin execs an IPAM plugin). Otherwise the operator CLI (click), which CNI mode never imports.

A runtime such as podman asks VERSION twice for every container it starts. The launcher
`cnish install` writes answers libcni's exact request in the shell (install.py); any other
VERSION request is answered here with as little as possible imported (not even `os`).
"""

import sys
from posix import environ

from cnish.plugins import PLUGINS, canonical


def _getenv(name: str) -> str:
    value = environ.get(name.encode())
    return value.decode("utf-8", "surrogateescape") if value else ""


def version_answer(request: bytes) -> str:
    """The VERSION answer (one line) to a request: its cniVersion echoed when cnish supports
    it (the spec's rule), cnish's current version otherwise. The launcher `cnish install`
    writes carries this function's answers to the exact requests runtimes send."""
    from cnish import jsonfast, results
    try:
        parsed = jsonfast.loads(request or b"{}")
    except (ValueError, UnicodeDecodeError):
        parsed = {}
    return jsonfast.dumps({"cniVersion": results.version_in_use(parsed),
                           "supportedVersions": list(results.SUPPORTED_VERSIONS)}) + "\n"


def version(stdin, stdout) -> int:
    """VERSION: needs no other variable and tolerates a missing or broken stdin (a binary
    stream, or None when the process was started with it closed)."""
    try:
        request = stdin.read(1 << 20)
    except (OSError, AttributeError):
        request = b""
    if stdout is None:                 # started with stdout closed: no way to answer
        return 1
    stdout.write(version_answer(request))
    return 0


def _exit_now(code: int) -> None:
    """End a CNI invocation without the interpreter's teardown (freeing every module and
    object costs ~1.5 ms of each container start). Nothing is lost: cnish writes its files with
    os.write or closes them with `with`, has waited for every process it started, and the
    standard streams are flushed here — an answer that cannot be delivered is an error."""
    from posix import _exit
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            if stream is sys.stdout:
                code = code or 1
    _exit(code)


def main() -> None:
    name = canonical(sys.argv[0].rpartition("/")[2])
    plugin_type = name if name in PLUGINS else None
    command = _getenv("CNI_COMMAND")
    if len(sys.argv) == 1 and (command or plugin_type):
        import gc
        gc.disable()     # one short invocation: collecting cycles would only cost time
        if command == "VERSION":
            _exit_now(version(getattr(sys.stdin, "buffer", None), sys.stdout))
        import os
        from cnish.cni import main as cni_main
        # (stdin is None when the process was started with it closed: code 5, see read_stdin)
        _exit_now(cni_main(os.environ, getattr(sys.stdin, "buffer", None), sys.stdout,
                           sys.stderr, plugin_type))
    from cnish.cli import cli
    cli(prog_name="cnish")


if __name__ == "__main__":
    main()
