"""One attachment's ADD and DEL, one at a time, and never a DEL before an ADD's tools are done.

A runtime that gives up on an ADD (a timeout: Go's exec.CommandContext) kills the plugin's
process, not its children: the `ip` or `iptables-restore` cnish had started runs on, and
could make the veth or the masquerade chain after the runtime's DEL had already cleaned up,
leaving them for good (found by a reliability audit). So ADD and DEL of a main plugin hold an
flock on a file named after the attachment (network, container id, ifname) in
/run/cnish/attachments, on a descriptor the tools they start inherit: the lock lives as long
as the last of them, and a DEL waits for it. The same lock keeps an ADD and a DEL of one
attachment from interleaving when a runtime runs them at once (which the spec forbids).

When the operation ends, its tools have ended too, and the file is removed (a waiter then
finds that the file it locked is no longer the one in the directory, and starts over): a file
stays only while an operation runs, or after one was killed, until its tools are done and
the next ADD or DEL of that attachment comes — or when a tool killed at its deadline had not
ended (asleep in the kernel, runner.py): it holds the lock still, on the file that stays.
After WAIT seconds a waiter gives up with code 11 (try again later): the runtime retries.
CNISH_ATTACHMENT_LOCKS names another directory (the tests' own), or "off".
IPAM plugins take no lock: their main plugin holds it (and may run cnish as its IPAM, a
child that inherits the lock and would wait for it for ever if it asked again).
"""

import fcntl
import os
import time

from cnish.errors import TRY_AGAIN, CNIError

DEFAULT_DIR = "/run/cnish/attachments"
WAIT = 30.0             # seconds

_held = {}              # path -> descriptor: the attachments this process holds (re-entrant)
refused = None          # why the lock directory was not used (the engine logs it), or None


def _directory() -> str | None:
    """The directory, made if missing; None when it is off, or when another user could swap
    its files (trusteddirs.py): it, or one above it, is not root's alone."""
    directory = os.environ.get("CNISH_ATTACHMENT_LOCKS", DEFAULT_DIR)
    if directory in ("", "off"):
        return None
    from cnish import trusteddirs
    global refused
    try:
        refused = trusteddirs.make(directory, 0o700)
        if refused is None:
            return directory
    except OSError as exc:
        refused = f"{directory} cannot be made: {exc.strerror}"   # (a read-only /run)
    return None                         # (unguarded, as without locks)


def guards(command: str, kind: str | None) -> bool:
    """Does an operation take the lock? ADD and DEL of a main plugin (its IPAM plugin runs
    under the main plugin's lock); the engine and the dry-run script ask the same."""
    return command in ("ADD", "DEL") and kind not in (None, "ipam")


def lock_name(network: str, cid: str, ifname: str) -> str:
    """The attachment's lock file in the directory (the dry-run script takes the same)."""
    from cnish.names import short_hash
    return short_hash(f"{network}\0{cid}\0{ifname}") + ".lock"


def acquire(network: str, cid: str, ifname: str) -> str | None:
    """Hold the attachment's lock (waiting for it); its path, or None without a lock."""
    global refused
    directory = _directory()
    if directory is None:
        return None
    path = os.path.join(directory, lock_name(network, cid, ifname))
    if path in _held:
        return None
    deadline = time.monotonic() + WAIT
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:  # (a planted link, a full /run: cnish works on unguarded, and
            refused = f"{path} cannot be opened: {exc.strerror}"   # the log says why)
            return None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise CNIError(TRY_AGAIN, "another ADD or DEL of this attachment is still "
                                   "running", "or the tools of one that was killed are: try "
                                   "again later") from None
                time.sleep(0.01)
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except OSError:
            same = False                # removed by the DEL that held it: start over
        if same:
            os.set_inheritable(fd, True)   # the tools this process starts hold it too
            _held[path] = fd
            return path
        os.close(fd)


def release(path: str | None, tools_left: bool = False) -> None:
    """Let go of the lock, its file removed first (the operation's tools have ended). With
    `tools_left` (a killed tool had not ended: runner.left_running) the file stays: the tool
    holds the lock through its inherited descriptor, and the next ADD or DEL of the
    attachment must find that file, and wait for it, not make a new one."""
    fd = _held.pop(path, None) if path else None
    if fd is None:
        return
    if not tools_left:
        try:
            os.unlink(path)
        except OSError:
            pass
    os.close(fd)
