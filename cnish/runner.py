"""Running commands: the only module that imports subprocess.

Commands are argv tuples, never shell strings. The program is looked up in PATH at run time,
with the usual system directories appended (runtimes often pass a minimal PATH), so auditors
and tests can interpose a wrapper earlier in PATH. Children inherit cnish's environment with
that PATH and LC_ALL=C (so error messages are the English ones cnish recognises).

A few read-only probes (`test -e`, `grep -qxF`) and the IPAM store helper (`cnish-store`) are
evaluated in-process by natives.py with the same semantics as the commands the dry-run script
runs, because a process start costs more than the whole probe — unless an executable of that
name comes earlier in PATH than the system directories, in which case it is executed.
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

    def __init__(self, path: str | None = None, use_natives: bool = True, before_exec=None):
        self.path = search_path(path if path is not None else os.environ.get("PATH"))
        self.env = dict(os.environ, PATH=self.path, LC_ALL="C")
        self.use_natives = use_natives
        self.before_exec = before_exec    # called once, before the first process is started
        self._native_ok = {}
        self.history = []

    def _native_allowed(self, name: str) -> bool:
        """Natives stand in for the system's own tools only: an executable of that name placed
        earlier in PATH (an auditor's or a test's wrapper) is executed instead."""
        allowed = self._native_ok.get(name)
        if allowed is None:
            allowed = True
            for directory in self.path.split(":"):
                if directory in SYSTEM_PATH:
                    break
                if os.access(os.path.join(directory, name), os.X_OK):
                    allowed = False
                    break
            self._native_ok[name] = allowed
        return allowed

    def which(self, name: str) -> str | None:
        """The executable `name` would run as, or None."""
        for directory in self.path.split(":"):
            path = os.path.join(directory, name)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
        return None

    def run(self, argv, stdin: str | None = None, env: dict | None = None) -> Completed:
        argv = tuple(argv)
        started = time.monotonic()
        done = None
        if self.use_natives and argv[0] in natives.NAMES and self._native_allowed(argv[0]):
            done = natives.run(argv)
        if done is None:
            done = self._exec(argv, stdin, env)
        done = Completed(argv, done[0], done[1], done[2], time.monotonic() - started)
        self.history.append(done)
        return done

    def _exec(self, argv, stdin, env):
        if self.before_exec is not None:
            hook, self.before_exec = self.before_exec, None
            hook()
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
