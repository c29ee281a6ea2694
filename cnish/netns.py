"""Entering a network namespace in-process: what `nsenter --net=PATH` does, without a process.

Plans enter the container's namespace with `nsenter --net=PATH CMD...` (that is what the
dry-run script runs and what an auditor reads). Executing it, the runner does the same thing
itself: setns(2) into PATH, start CMD (which inherits the namespace) or, for `sysctl -w`, write
/proc/sys (which shows the namespace of the process that opens it), and setns back. That saves
the nsenter and sysctl processes, two of the five an ADD would start; the Go reference
plugins do the same with their netns package.

setns is os.setns on Python >= 3.12; before that, libc's setns called through _ctypes (0.4 ms
to import, where the ctypes package costs 3 ms). cnish's CNI path is single-threaded, and
setns changes the namespace of the calling thread only.
"""

import os

from cnish.config import CLONE_NEWNET
_setns = []


def _libc_setns():
    setns = getattr(os, "setns", None)
    if setns is not None:
        return setns
    import _ctypes
    address = _ctypes.dlsym(_ctypes.dlopen(None), "setns")

    def libc_setns(fd: int, nstype: int) -> None:
        if _ctypes.call_function(address, (fd, nstype)) != 0:
            raise OSError(f"setns({fd}, {nstype:#x}) failed")
    return libc_setns


def prepare() -> None:
    """Look setns up (for _ctypes: load it, ≈ 0.5 ms) before the first namespace change."""
    if not _setns:
        _setns.append(_libc_setns())


def setns(fd: int) -> None:
    prepare()
    _setns[0](fd, CLONE_NEWNET)


def enter(path: str) -> None:
    """Move this thread into the network namespace at `path`. OSError when `path` cannot be
    opened or is not a network namespace; the caller then runs the real nsenter, whose error
    message is the one plans expect."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        setns(fd)
    finally:
        os.close(fd)


def leave(home_fd: int) -> None:
    """Back to the namespace `home_fd` refers to (the runner's own, opened at start)."""
    try:
        setns(home_fd)
    except OSError as error:
        # Carrying on would run the host's commands (and any rollback) in the container.
        raise SystemExit(f"cnish: cannot return to its own network namespace: {error}")


def sysctl_write(args) -> tuple | None:
    """`sysctl -q -w key=value...` (keys in slash form, as plans write them), procps-style:
    every setting is tried, exit status 1 if any failed, procps' messages. None for any other
    argument shape (the real sysctl runs)."""
    if len(args) < 4 or tuple(args[1:3]) != ("-q", "-w"):
        return None
    settings = []
    for arg in args[3:]:
        key, sep, value = arg.partition("=")
        if not sep or not key or key.startswith("/") or "." in key.split("/")[0] \
                or ".." in key.split("/") or "//" in key or "\0" in arg:
            return None
        settings.append((key, value))
    status, errors = 0, []
    for key, value in settings:
        path = "/proc/sys/" + key
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            status = 1
            errors.append(f"sysctl: cannot stat {path}: {exc.strerror}\n")
            continue
        try:
            os.write(fd, (value + "\n").encode())
        except OSError as exc:
            status = 1
            errors.append(f'sysctl: setting key "{key.replace("/", ".")}": {exc.strerror}\n')
        finally:
            os.close(fd)
    return status, "", "".join(errors)
