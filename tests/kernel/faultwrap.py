#!/usr/bin/env python3
"""A failing wrapper for fault injection: placed earlier in PATH under the name of a tool
(ip, iptables, iptables-restore, ip6tables, ip6tables-restore, sysctl, test, grep,
cnish-store), it runs the real tool for everything except the one command named by the
environment variable CNISH_FAULT (a JSON argv, without any nsenter prefix), which fails the
way the real tool fails — inside `ip -batch` and `iptables-restore` input too.
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.basename(sys.argv[0])
ARGS = sys.argv[1:]
TARGET = json.loads(os.environ.get("CNISH_FAULT", "[]"))
LOG = os.environ.get("CNISH_FAULT_LOG")


def real(tool):
    for d in os.environ.get("PATH", "").split(":") + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]:
        if d and os.path.realpath(d) != HERE and os.access(os.path.join(d, tool), os.X_OK):
            return os.path.join(d, tool)
    sys.exit(f"faultwrap: no real {tool}")


def note(text):
    if LOG:
        with open(LOG, "a") as f:
            f.write(text + "\n")


def restore_line(argv):
    sys.path.insert(0, os.environ["CNISH_SRC"])
    from cnish import batching
    return batching._restore_line(tuple(argv))


def main():
    if TOOL == "ip" and ARGS == ["-batch", "-"] and TARGET[:1] == ["ip"]:
        lines = sys.stdin.read().splitlines()
        wanted = " ".join(TARGET[1:])
        if wanted in lines:
            n = lines.index(wanted)
            if n:
                proc = subprocess.run([real("ip"), "-batch", "-"], input="\n".join(lines[:n]) + "\n",
                                      text=True)
                if proc.returncode:
                    sys.exit(proc.returncode)
            note(f"injected: ip batch line {n + 1}: {wanted}")
            sys.stderr.write(f"RTNETLINK answers: Operation not permitted\nCommand failed -:{n + 1}\n")
            sys.exit(1)
        proc = subprocess.run([real("ip"), "-batch", "-"], input="\n".join(lines) + "\n", text=True)
        sys.exit(proc.returncode)
    if TOOL.endswith("-restore") and TARGET[:1] == [TOOL[:-len("-restore")]]:
        data = sys.stdin.read()
        table, line = restore_line(TARGET)
        current = None
        for number, text in enumerate(data.splitlines(), start=1):
            if text.startswith("*"):
                current = text[1:]
            elif current == table and text == line:
                note(f"injected: {TOOL} line {number}")
                sys.stderr.write(f"{TOOL}: line {number} failed: Operation not permitted (injected)\n")
                sys.exit(1)
        sys.exit(subprocess.run([real(TOOL)] + ARGS, input=data, text=True).returncode)
    if TOOL == "sysctl" and TARGET[:1] == ["sysctl"] and TARGET[-1] in ARGS:
        others = [a for a in ARGS[2:] if a != TARGET[-1]]
        if others:
            subprocess.run([real("sysctl")] + ARGS[:2] + others)
        note(f"injected: sysctl {TARGET[-1]}")
        sys.stderr.write(f"sysctl: permission denied on key \"{TARGET[-1]}\" (injected)\n")
        sys.exit(255)
    if [TOOL] + ARGS == TARGET:
        note(f"injected: {' '.join(TARGET)}")
        sys.stderr.write("Operation not permitted (injected)\n")
        sys.exit(1)
    if TOOL == "cnish-store":          # no binary of that name: do what cnish does natively
        sys.path.insert(0, os.environ["CNISH_SRC"])
        from cnish import natives
        rc, out, err = natives.run(tuple([TOOL] + ARGS))
        sys.stdout.write(out)
        sys.stderr.write(err)
        sys.exit(rc)
    os.execv(real(TOOL), [TOOL] + ARGS)


main()
