"""The `cnish` executable: CNI plugin for runtimes, command-line tool for operators.

CNI mode when there are no arguments and either CNI_COMMAND is set or the executable is named
after a plugin type (`bridge`, `host-local`, `cnish-bridge`, ... — how a runtime or a main
plugin execs an IPAM plugin). Otherwise the operator CLI (click), which CNI mode never imports.
"""

import os
import sys

from cnish.plugins import PLUGINS, canonical


def main() -> None:
    name = canonical(os.path.basename(sys.argv[0]))
    plugin_type = name if name in PLUGINS else None
    if len(sys.argv) == 1 and (os.environ.get("CNI_COMMAND") or plugin_type):
        from cnish.cni import main as cni_main
        sys.exit(cni_main(os.environ, sys.stdin.buffer, sys.stdout, sys.stderr, plugin_type))
    from cnish.cli import cli
    cli(prog_name="cnish")


if __name__ == "__main__":
    main()
