#!/usr/bin/env python3
"""A wrapper for fault injection: placed earlier in PATH under the name of a tool (ip,
iptables, iptables-restore, ip6tables, ip6tables-restore, sysctl, test, grep, cnish-store), it
runs the real tool for everything except the command(s) named by the environment:

  CNISH_FAULT       a JSON argv (without any nsenter prefix), or a JSON list of argvs
  CNISH_FAULT_MODE  fail (default): the command fails the way the real tool fails, also inside
                        `ip -batch` and `iptables-restore` input;
                    crash: the command runs for real, then the calling process (cnish) is
                        killed with SIGKILL — a crash right after that step;
                    garbage: the tool prints nonsense and fails without saying where;
                    missing: the tool behaves as if it were not installed (exit 127).
"""

import json
import os
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.basename(sys.argv[0])
ARGS = sys.argv[1:]
_spec = json.loads(os.environ.get("CNISH_FAULT", "[]"))
TARGETS = _spec if _spec and isinstance(_spec[0], list) else ([_spec] if _spec else [])
MODE = os.environ.get("CNISH_FAULT_MODE", "fail")
LOG = os.environ.get("CNISH_FAULT_LOG")


def real(tool):
    for d in os.environ.get("PATH", "").split(":") + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]:
        if d and os.path.realpath(d) != HERE and os.path.realpath(d) != os.path.realpath(
                os.path.dirname(sys.argv[0])) and os.access(os.path.join(d, tool), os.X_OK):
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


def run_real(argv, stdin=None):
    if TOOL == "cnish-store":        # no binary of that name: do what cnish does natively
        sys.path.insert(0, os.environ["CNISH_SRC"])
        from cnish import natives
        rc, out, err = natives.run(tuple(argv))
        sys.stdout.write(out)
        sys.stderr.write(err)
        return rc
    return subprocess.run([real(TOOL)] + argv[1:], input=stdin, text=True).returncode


def hit(detail):
    """The target was reached: fail, crash or misbehave as asked."""
    note(f"{MODE}: {TOOL} {detail}")
    if MODE == "crash":
        os.kill(os.getppid(), signal.SIGKILL)
        sys.exit(0)
    if MODE == "garbage":
        sys.stderr.write("\x00\x01 something unexpected happened ###\n")
        sys.exit(1)
    if MODE == "missing":
        sys.stderr.write(f"{TOOL}: not found (simulated)\n")
        sys.exit(127)


def main():
    if MODE == "missing":            # the tool is not installed: every call fails
        hit(" ".join(ARGS))
    mine = [t for t in TARGETS if t and t[0] == (TOOL[:-len("-restore")] if TOOL.endswith("-restore") else TOOL)]
    if TOOL == "ip" and ARGS == ["-batch", "-"] and mine:
        lines = sys.stdin.read().splitlines()
        wanted = {" ".join(t[1:]) for t in mine}
        n = next((i for i, l in enumerate(lines) if l in wanted), None)
        if n is None:
            sys.exit(run_real(["ip", "-batch", "-"], "\n".join(lines) + "\n"))
        done = lines[:n + 1] if MODE == "crash" else lines[:n]
        if done:
            rc = run_real(["ip", "-batch", "-"], "\n".join(done) + "\n")
            if rc:
                sys.exit(rc)
        hit(f"batch line {n + 1}: {lines[n]}")
        sys.stderr.write(f"RTNETLINK answers: Operation not permitted\nCommand failed -:{n + 1}\n")
        sys.exit(1)
    if TOOL.endswith("-restore") and mine:
        data = sys.stdin.read()
        wanted = {restore_line(t) for t in mine}
        current = None
        for number, text in enumerate(data.splitlines(), start=1):
            if text.startswith("*"):
                current = text[1:]
            elif (current, text) in wanted:
                if MODE == "crash":
                    rc = run_real([TOOL] + ARGS, data)
                    if rc:
                        sys.exit(rc)
                hit(f"line {number}")
                sys.stderr.write(f"{TOOL}: line {number} failed: Operation not permitted (injected)\n")
                sys.exit(1)
        sys.exit(run_real([TOOL] + ARGS, data))
    if TOOL == "sysctl" and mine and any(t[-1] in ARGS for t in mine):
        settings = [a for a in ARGS[2:] if not any(t[-1] == a for t in mine)]
        if MODE == "crash":
            settings = ARGS[2:]
        if settings:
            subprocess.run([real("sysctl")] + ARGS[:2] + settings)
        hit("setting")
        sys.stderr.write("sysctl: permission denied on key (injected)\n")
        sys.exit(255)
    if [TOOL] + ARGS in TARGETS:
        if MODE == "crash":
            rc = run_real([TOOL] + ARGS)
            if rc:
                sys.exit(rc)
        hit(" ".join(ARGS))
        sys.stderr.write("Operation not permitted (injected)\n")
        sys.exit(1)
    if TOOL == "cnish-store":
        sys.exit(run_real([TOOL] + ARGS))
    os.execv(real(TOOL), [TOOL] + ARGS)


main()
