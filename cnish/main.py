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
    asked = parsed.get("cniVersion") if isinstance(parsed, dict) else None
    answer = asked if asked in results.SUPPORTED_VERSIONS else results.CURRENT_VERSION
    return jsonfast.dumps({"cniVersion": answer,
                           "supportedVersions": list(results.SUPPORTED_VERSIONS)}) + "\n"


def version() -> int:
    """VERSION: needs no other variable and tolerates a missing or broken stdin."""
    try:
        request = sys.stdin.buffer.read(1 << 20)
    except (OSError, AttributeError):
        request = b""
    sys.stdout.write(version_answer(request))
    return 0


def main() -> None:
    name = canonical(sys.argv[0].rpartition("/")[2])
    plugin_type = name if name in PLUGINS else None
    command = _getenv("CNI_COMMAND")
    if len(sys.argv) == 1 and (command or plugin_type):
        if command == "VERSION":
            sys.exit(version())
        import os
        from cnish.cni import main as cni_main
        sys.exit(cni_main(os.environ, sys.stdin.buffer, sys.stdout, sys.stderr, plugin_type))
    from cnish.cli import cli
    cli(prog_name="cnish")


if __name__ == "__main__":
    main()
