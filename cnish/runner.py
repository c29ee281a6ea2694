"""Running commands: the only module that starts processes (and imports subprocess).

Commands are argv tuples, never shell strings. The program is looked up in PATH at run time,
with the usual system directories appended (runtimes often pass a minimal PATH), so auditors
and tests can interpose a wrapper earlier in PATH. Children inherit cnish's environment with
that PATH and LC_ALL=C (so error messages are the English ones cnish recognises).

Processes are started with os.posix_spawn and read through pipes (`spawn` below): importing
`subprocess` costs ~6 ms — it pulls in re, locale, threading, signal and selectors — which a
CNI plugin would pay at every container start. `Runner(spawner="subprocess")` uses the
subprocess module instead; the executor's tests use it with pytest-subprocess.

A few read-only probes (`test -e`, `grep -qxF`) and the IPAM store helper (`cnish-store`) are
evaluated in-process by natives.py with the same semantics as the commands the dry-run script
runs, because a process start costs more than the whole probe — unless an executable of that
name comes earlier in PATH than the system directories, in which case it is executed. The
probe `cnish-chain-used` is natives.py's too, and runs one `iptables` through this runner; so is
`cnish-nft-delete-commented`, which lists an nftables chain and deletes rules by their handles.
"""

import os
import time

from cnish import natives

SYSTEM_PATH = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
TIMEOUT = 120   # seconds; a tool that hangs this long is broken, not slow
GRACE = 2       # seconds a command still gets once its phase's deadline has passed (limit)
TIMED_OUT = 124     # the status of a command killed for taking too long (as timeout(1)'s)


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
    """Executes commands (argv lists), in-process where a native stands in for the tool."""

    def __init__(self, path: str | None = None, use_natives: bool = True, before_exec=None,
                 spawner: str = "posix"):
        self.path = search_path(path if path is not None else os.environ.get("PATH"))
        self.env = dict(os.environ, PATH=self.path, LC_ALL="C")
        self.use_natives = use_natives
        self.before_exec = before_exec    # called once, before the first process is started
        self.spawner = spawner
        self._native_ok = {}
        self.deadline = None              # time.monotonic() by which the phase ends (limit)
        self.left_running = 0             # killed tools that had not ended when cnish went on

    def limit(self, seconds: float | None) -> None:
        """The phase starting now (ADD's steps, their undo, DEL's steps) ends within `seconds`:
        a command still running then is killed, and each started later gets GRACE seconds
        (a DEL still tries every step). None: each command gets TIMEOUT."""
        self.deadline = None if seconds is None else time.monotonic() + seconds

    def overdue(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def time_left(self) -> float:
        """How long the command waited for now may still take."""
        if self.deadline is None:
            return TIMEOUT
        return min(TIMEOUT, max(GRACE, self.deadline - time.monotonic()))

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
        return self.start(argv, stdin, env).wait()

    def start(self, argv, stdin: str | None = None, env: dict | None = None) -> "Pending":
        """Start a command; `.wait()` collects it. Natives (and failures to start) are
        finished at once."""
        argv = tuple(argv)
        started = time.monotonic()
        if self._native_tool(argv):
            done = natives.run(argv, self.run)
            if done is not None:
                return Pending(self, argv, started, done)
        if self._enters_natively(argv):
            entered = self._start_in_netns(argv, started, stdin, env)
            if entered is not None:
                return entered
        if self.before_exec is not None:
            hook, self.before_exec = self.before_exec, None
            hook()
        child_env = dict(self.env, **env) if env else self.env
        if self.spawner == "subprocess":
            return Pending(self, argv, started,
                           _subprocess_run(argv, stdin, child_env, self.time_left()))
        program = argv[0] if "/" in argv[0] else self.which(argv[0])
        if program is None:
            return Pending(self, argv, started,
                           (127, "", f"{argv[0]}: command not found (PATH={self.path})"))
        try:
            child = Child(program, argv, stdin, child_env)
        except PermissionError as exc:
            return Pending(self, argv, started,
                           (126, "", f"{argv[0]}: cannot execute: {exc.strerror}"))
        except FileNotFoundError:
            return Pending(self, argv, started,
                           (127, "", f"{argv[0]}: command not found (PATH={self.path})"))
        except (OSError, ValueError) as exc:
            # (a NUL byte in an argument, E2BIG, EAGAIN...: a step that failed, which the
            # executor rolls back, never an exception that would skip the rollback)
            return Pending(self, argv, started, (126, "", f"{argv[0]}: cannot start: {exc}"))
        return Pending(self, argv, started, child=child)

    def _native_tool(self, argv) -> bool:
        """A command natives.py may run in-process (it returns None where it does not)."""
        return self.use_natives and argv[0] in natives.NAMES and self._native_allowed(argv[0])

    def _enters_natively(self, argv) -> bool:
        """`nsenter --net=PATH CMD...`, which this runner does itself (_start_in_netns)."""
        return (self.use_natives and argv[0] == "nsenter" and len(argv) > 2
                and argv[1].startswith("--net=") and self._native_allowed("nsenter"))

    def prepare(self, argvs) -> None:
        """Import and set up now what running these commands in-process will need (natives'
        modules; for `nsenter --net=`, the setns function and cnish's own namespace), so that
        the executor can pay for it while a process runs rather than between two."""
        if not self.use_natives:
            return
        try:
            for argv in argvs:
                if self._enters_natively(argv):
                    from cnish import netns
                    _own_netns_fd()
                    netns.prepare()
                    argv = argv[2:]
                if argv and self._native_tool(argv):
                    natives.prepare(argv)
        except Exception:   # (only a head start: whatever failed here fails, or falls back to
            pass            # the real tool, where the command runs, as before)

    def _start_in_netns(self, argv, started, stdin, env) -> "Pending | None":
        """`nsenter --net=PATH CMD...` without the nsenter process (netns.py): CMD starts
        inside the namespace, or `sysctl -q -w` writes /proc/sys there. None when PATH cannot
        be entered: the real nsenter then runs and reports why, as the plan expects."""
        from cnish import netns
        home = _own_netns_fd()
        if home is None:
            return None
        inner = argv[2:]
        try:
            netns.enter(argv[1][len("--net="):])
        except OSError:
            return None
        try:
            if inner[0] == "sysctl" and self._native_allowed("sysctl"):
                done = netns.sysctl_write(inner)
                if done is not None:
                    return Pending(self, argv, started, done)
            pending = self.start(inner, stdin, env)
        finally:
            netns.leave(home)
        pending.argv = argv
        return pending


class Pending:
    """A started command."""

    __slots__ = ("runner", "argv", "started", "done", "child")

    def __init__(self, runner, argv, started, done=None, child=None):
        self.runner, self.argv, self.started, self.done, self.child = \
            runner, argv, started, done, child

    def wait(self) -> Completed:
        done = self.done if self.child is None else self.child.collect(self.runner.time_left())
        if self.child is not None and self.child.left:
            self.runner.left_running += 1
        return Completed(self.argv, done[0], done[1], done[2], time.monotonic() - self.started)


_own_netns = []


def _own_netns_fd() -> int | None:
    """cnish's own network namespace, opened once: a command that names /dev/fd/3 (host-device
    moving a link back from the container) gets it as file descriptor 3; no other does."""
    if not _own_netns:
        try:
            _own_netns.append(os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC))
        except OSError:
            _own_netns.append(None)
    return _own_netns[0]


class Child:
    """A process started with os.posix_spawn, its stdin fed and its output collected through
    pipes and poll: the part of subprocess cnish needs."""

    def __init__(self, program: str, argv, stdin: str | None, env: dict):
        in_r, self.in_w = os.pipe()
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        actions = [(os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
                   (os.POSIX_SPAWN_DUP2, err_w, 2)]
        if any("/dev/fd/3" in a for a in argv) or (stdin and "/dev/fd/3" in stdin):
            netns = _own_netns_fd()
            if netns is not None:
                actions.append((os.POSIX_SPAWN_DUP2, netns, 3))
        self.argv = argv
        self.left = False           # killed but not ended (asleep in the kernel): left running
        try:
            self.pid = os.posix_spawn(program, list(argv), env, file_actions=actions)
        except OSError:
            for fd in (self.in_w, self.out_r, self.err_r):
                os.close(fd)
            raise
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        self.data = (stdin or "").encode()
        if self.data:
            os.set_blocking(self.in_w, False)
            try:                               # small inputs go out now, the rest in collect
                self.data = self.data[os.write(self.in_w, self.data):]
            except (BlockingIOError, BrokenPipeError):
                pass
        if not self.data:
            os.close(self.in_w)
            self.in_w = None

    def collect(self, timeout: float):
        import select
        in_w, data = self.in_w, self.data
        out_r, err_r = self.out_r, self.err_r
        chunks = {out_r: [], err_r: []}
        poller = select.poll()
        poller.register(out_r, select.POLLIN)
        poller.register(err_r, select.POLLIN)
        if in_w is not None:
            poller.register(in_w, select.POLLOUT)
        open_fds = {out_r, err_r}
        deadline = time.monotonic() + timeout
        timed_out = False
        try:
            while open_fds or in_w is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                for fd, _event in poller.poll(remaining * 1000):
                    if fd == in_w:
                        try:
                            written = os.write(in_w, data)
                        except BrokenPipeError:
                            written = len(data)
                        data = data[written:]
                        if not data:
                            poller.unregister(in_w)
                            os.close(in_w)
                            in_w = None
                        continue
                    block = os.read(fd, 65536)
                    if block:
                        chunks[fd].append(block)
                    else:
                        poller.unregister(fd)
                        open_fds.discard(fd)
        finally:
            for fd in (out_r, err_r) + ((in_w,) if in_w is not None else ()):
                os.close(fd)
            if timed_out:
                os.kill(self.pid, 9)
                gone = self._reaped()
                self.left = not gone
            else:
                _, status = os.waitpid(self.pid, 0)
        if timed_out:
            return TIMED_OUT, "", (f"{self.argv[0]}: timed out after {timeout:.0f} s, killed"
                                   + ("" if gone else ", but it has not ended (stuck in the "
                                      "kernel, where a signal waits); left running"))
        return (os.waitstatus_to_exitcode(status),
                b"".join(chunks[out_r]).decode("utf-8", "replace"),
                b"".join(chunks[err_r]).decode("utf-8", "replace"))

    def _reaped(self, seconds: float = 1.0) -> bool:
        """Wait up to `seconds` for a killed child: one asleep in the kernel (an `ip` waiting
        for the RTNL lock) dies only when it wakes, and a blocking wait would hold cnish as
        long. Not reaped, it is left to init when cnish exits."""
        deadline = time.monotonic() + seconds
        while True:
            if os.waitpid(self.pid, os.WNOHANG)[0] != 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


def _subprocess_run(argv, stdin, env, timeout):
    import subprocess
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                              encoding="utf-8", errors="replace", timeout=timeout, env=env)
    except FileNotFoundError:
        return 127, "", f"{argv[0]}: command not found (PATH={env.get('PATH')})"
    except PermissionError as exc:
        return 126, "", f"{argv[0]}: cannot execute: {exc.strerror}"
    except subprocess.TimeoutExpired:
        return TIMED_OUT, "", f"{argv[0]}: timed out after {timeout:.0f} s, killed"
    return proc.returncode, proc.stdout or "", proc.stderr or ""
