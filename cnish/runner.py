"""Running commands: the only module that imports subprocess.

Commands are argv tuples, never shell strings. The program is looked up in PATH at run time,
with the usual system directories appended (runtimes often pass a minimal PATH), so auditors
and tests can interpose a wrapper earlier in PATH. Children get a fixed, small environment:
that PATH and LC_ALL=C (so error messages are the English ones cnish recognises).

A few read-only probes (`test -e`, `grep -qxF`) and the IPAM store helper (`cnish-store`) are
evaluated in-process by natives.py with the same semantics as the commands the dry-run script
runs, because a process start costs more than the whole probe.
"""

import os
import subprocess
import time

from cnish import natives

SYSTEM_PATH = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
TIMEOUT = 120   # seconds; a tool that hangs this long is broken, not slow


def search_path(path: str | None) -> str:
    dirs = [d for d in (path or "").split(":") if d]
    for d in SYSTEM_PATH:
        if d not in dirs:
            dirs.append(d)
    return ":".join(dirs)


class Completed:
    __slots__ = ("argv", "returncode", "stdout", "stderr", "seconds")

    def __init__(self, argv, returncode, stdout="", stderr="", seconds=0.0):
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.seconds = seconds


class Runner:
    """Executes commands and keeps a record of what ran (for the log)."""

    def __init__(self, path: str | None = None, use_natives: bool = True):
        self.path = search_path(path if path is not None else os.environ.get("PATH"))
        self.env = {"PATH": self.path, "LC_ALL": "C"}
        self.use_natives = use_natives
        self.history = []

    def run(self, argv, stdin: str | None = None, env: dict | None = None) -> Completed:
        argv = tuple(argv)
        started = time.monotonic()
        done = natives.run(argv) if self.use_natives else None
        if done is None:
            done = self._exec(argv, stdin, env)
        done = Completed(argv, done[0], done[1], done[2], time.monotonic() - started)
        self.history.append(done)
        return done

    def _exec(self, argv, stdin, env):
        try:
            proc = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                                  encoding="utf-8", errors="replace", timeout=TIMEOUT,
                                  env=dict(self.env, **env) if env else self.env)
        except FileNotFoundError:
            return 127, "", f"{argv[0]}: command not found (PATH={self.path})"
        except PermissionError as exc:
            return 126, "", f"{argv[0]}: cannot execute: {exc.strerror}"
        except subprocess.TimeoutExpired:
            return 124, "", f"{argv[0]}: timed out after {TIMEOUT} s"
        return proc.returncode, proc.stdout or "", proc.stderr or ""
