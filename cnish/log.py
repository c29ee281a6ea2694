"""Logging for a process whose stdout belongs to the CNI protocol.

Runtimes such as podman discard a plugin's stderr, so besides stderr (errors only) cnish can
append a full account — the plan that ran and how each step ended — to a log file named by
the environment variable CNISH_LOG_FILE or the config key `logFile` (limited to cnish's own log
files, see config_log_file). Each line is written with
one write() on an O_APPEND descriptor, so parallel invocations never interleave inside a line.
No `logging` import: it costs ~5 ms at every container start.
"""

import os
import stat
import time

from cnish.errors import CNIError
from cnish.validate import CONTROLS

# A network config may come from a user (Kubernetes with Multus: NetworkAttachmentDefinitions
# are namespaced objects), and cnish runs as root: its `logFile` may only name cnish's own log
# files, or it could create or append to any file on the host. CNISH_LOG_FILE, which comes
# from the runtime's environment, may name any file.
CONFIG_LOG_FILE = "/var/log/cnish.log"
CONFIG_LOG_DIR = "/var/log/cnish"

# What a line may not carry raw: control characters (a CR that forges a line for `tail -f`, a
# terminal escape) become \xNN. Line breaks were already replaced with " | ".
_CONTROLS = {c: f"\\x{c:02x}" for c in CONTROLS}


def config_log_file(value) -> str | None:
    """The config's `logFile`, when it is one cnish may write; a CNI error naming the field
    otherwise (before anything is opened)."""
    if value is None:
        return None
    from cnish.validate import path_problem      # (absolute, no '..', no control characters)
    if path_problem(value) is None:
        directory, _, name = value.rpartition("/")
        if value == CONFIG_LOG_FILE or (directory == CONFIG_LOG_DIR and name[:1] not in ("", ".")):
            return value
    from cnish.errors import invalid_config
    raise invalid_config("logFile", value, f"must be {CONFIG_LOG_FILE} or a file directly in "
                         f"{CONFIG_LOG_DIR}/ (the runtime's CNISH_LOG_FILE may name any file)")


def log_file(env, raw, command: str | None = None, stderr=None) -> str | None:
    """Where an invocation logs: CNISH_LOG_FILE (the runtime's), else the config's logFile.
    DEL and GC (`command`) go on without a `logFile` cnish may not write, and say so on
    `stderr`: they only remove, and refusing that config would fail the attachment's every
    DEL for good (ADD refused it already)."""
    try:
        return env.get("CNISH_LOG_FILE") or config_log_file(
            raw.get("logFile") if isinstance(raw, dict) else None)
    except CNIError as exc:
        if command not in ("DEL", "GC"):
            raise
        if stderr is not None:
            stderr.write(f"cnish: {command} goes on without a log file: {exc}\n")
        return None


class Log:
    def __init__(self, path: str | None, prefix: str, stderr=None):
        self.path = path
        self.prefix = prefix
        self.stderr = stderr
        self._fd = None

    def __bool__(self) -> bool:
        """True when there is a log file: callers skip building lines nobody will read."""
        return bool(self.path)

    def _open(self):
        if self._fd is None and self.path:
            # O_NONBLOCK: a FIFO nobody reads fails (ENXIO) instead of blocking the ADD, which
            # may hold the IPAM store's lock; anything but a regular file is refused below
            flags = (os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
                     | os.O_NONBLOCK)
            try:
                try:
                    self._fd = os.open(self.path, flags, 0o600)
                except FileNotFoundError:
                    # cnish's own log directory is made on first use (a config's `logFile` in
                    # it would otherwise log nothing, and say so only on the stderr runtimes
                    # discard); no other directory is created: CNISH_LOG_FILE's must exist
                    if os.path.dirname(self.path) != CONFIG_LOG_DIR:
                        raise
                    try:
                        os.mkdir(CONFIG_LOG_DIR, 0o700)
                    except FileExistsError:
                        pass                    # (a parallel invocation made it first)
                    self._fd = os.open(self.path, flags, 0o600)
                st = os.fstat(self._fd)
                # (a file another user made first, in /tmp say, would let them read the log
                # and write lines into it)
                problem = ("is not a regular file" if not stat.S_ISREG(st.st_mode) else
                           "is owned by another user than root" if st.st_uid not in
                           (0, os.geteuid()) else
                           "is writable by other users" if st.st_mode & 0o022 else None)
                if problem:
                    os.close(self._fd)
                    self._fd = None
                    raise OSError(f"{self.path} {problem}")
            except (OSError, ValueError) as exc:    # (ValueError: a name it cannot encode)
                self.path = None
                self.error(f"cannot open log file: {exc}")
        return self._fd

    def write(self, message: str) -> None:
        fd = self._open()
        if fd is None:
            return
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        line = f"{stamp} cnish[{os.getpid()}] {self.prefix}: {message}".replace("\n", " | ")
        line = line.translate(_CONTROLS)
        try:
            os.write(fd, (line + "\n").encode("utf-8", "replace"))
        except OSError:
            pass

    def error(self, message: str) -> None:
        if self.stderr is not None:
            try:
                # (the prefix names the network as the config spelled it, before validation)
                self.stderr.write(f"cnish: {self.prefix.translate(_CONTROLS)}: {message}\n")
                self.stderr.flush()
            except (OSError, ValueError):
                pass
        self.write("error: " + message)

    def plan(self, plan) -> None:
        if not self.path:
            return
        self.write(f"plan: {len(plan.steps)} steps")
        from cnish.executor import show
        for step in plan.steps:
            self.write(f"  step {step.number} {step.id}: {step.description}: "
                       + (show(step.run.argv) if step.run else "-"))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
