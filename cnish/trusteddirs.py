"""The directories cnish keeps root's state in, made and checked so that no other user can
swap what is in them.

cnish runs as root and writes, reads and removes files by path in a few directories: the plan
cache and the attachment locks under /run/cnish, the kernel-kind answers, host-local's store,
the operator CLI's result cache. Were one of them, or a directory above it, writable by
another user, that user could replace an entry, or the directory itself, between cnish's check
and its use (a cached plan is a list of commands root runs; found by a security audit, which
made root run its commands, and overwrite a file of its choosing, that way). So:

- `make` creates the missing levels with fixed modes, set explicitly: parents 0755, the last
  its own mode. (`os.makedirs` gives the parents 0777 less the caller's umask: world-writable
  under umask 000, which a runtime may pass on.)
- `trusted` follows the path from / as the kernel would, one component at a time, and accepts
  it only when every directory it passes through is owned by root or this user and writable
  by no one else (a sticky directory such as /tmp is fine above: others cannot rename or
  remove what is not theirs there; in a user namespace, the host's directories the namespace
  has no owner for count as root's: `_unmapped`), and the directory it ends at is this
  user's own. A symlink on the way lies in a directory already accepted, so no one else can
  repoint it (in a sticky one, only root's or this user's is followed): the path keeps naming
  the same directory for as long as cnish uses it.
"""

import os
import stat

SYMLINK_HOPS = 40           # as the kernel's limit (ELOOP)


def _open_to_others(st) -> bool:
    return bool(st.st_mode & 0o022)


def _refusal(st, where: str, last: bool, above_own: bool, parent_st) -> str | None:
    """Why the directory `where` (its lstat `st`) cannot be on the path, or None.
    `above_own`: no directory of root's or cnish's user has been passed yet; `parent_st`: the
    directory it lies in (None for /)."""
    if not stat.S_ISDIR(st.st_mode):
        return f"{where} is not a directory"
    euid = os.geteuid()
    if last:
        if st.st_uid != euid:
            return f"{where} is owned by another user"
        return f"{where} is writable by other users" if _open_to_others(st) else None
    if st.st_uid not in (0, euid):
        # (the host's directories, seen from a user namespace; but only above cnish's own,
        # and never one another user could have made: in a directory others can write to)
        if not (above_own and _unmapped(st.st_uid)
                and (parent_st is None or not _open_to_others(parent_st))):
            return f"{where} is owned by another user"
    if _open_to_others(st) and not st.st_mode & stat.S_ISVTX:
        return f"{where} is writable by other users"
    return None


_unmapped_owner = None       # the overflow uid inside a user namespace, else -1 (read once)


def _unmapped(uid: int) -> bool:
    """Is `uid` the owner a user namespace cnish runs in shows for the users it has no
    mapping for (the overflow uid, 65534 by default)? Rootless podman runs its CNI plugins as
    root of such a namespace, where / and the host's directories above the ones it mounts for
    them belong to unmapped users: no user in the namespace can change them (only the host's
    can, which cnish cannot tell apart; a directory in one that others can write to does not
    count), so above cnish's own directories they count as root's. In the initial namespace
    that uid is a real user, nobody, and does not count. (Read only when a directory of
    neither root nor cnish's user is met.)"""
    global _unmapped_owner
    if _unmapped_owner is None:
        _unmapped_owner = -1
        try:
            with open("/proc/self/uid_map") as f:
                ranges = [[int(n) for n in line.split()] for line in f if line.strip()]
            with open("/proc/sys/kernel/overflowuid") as f:
                overflow = int(f.read())
            # (in the initial namespace, or where the namespace maps that uid to a user of
            # its own, such as a container's nobody, it is a real user)
            if not any(inside <= overflow < inside + count for inside, _, count in ranges):
                _unmapped_owner = overflow
        except (OSError, ValueError):
            pass
    return uid == _unmapped_owner


def _walk(path: str, mode: int | None, missing_ok: bool = False) -> str | None:
    """Follow `path` checking each directory; with `mode`, create what is missing (parents
    0755, the last `mode`). None when the path is trusted (or, `missing_ok`, when a part of
    it is missing below directories that are: no other user can make it), else why not.
    One lstat per component (a few on the CNI path's every call)."""
    if not path.startswith("/"):
        path = os.path.join(os.getcwd(), path)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    root_st = os.lstat("/")
    current, current_st, parent_st, hops = "/", root_st, None, 0
    above_own = True
    while parts:
        why = _refusal(current_st, current, False, above_own, parent_st)
        if why:
            return why
        above_own = above_own and current_st.st_uid not in (0, os.geteuid())
        name = parts.pop(0)
        if name == "..":
            current = os.path.dirname(current)      # (physical: no symlink in `current`)
            current_st, parent_st = os.lstat(current), None
            continue
        following = os.path.join(current, name)
        try:
            st = os.lstat(following)
        except FileNotFoundError:
            if mode is None:
                return None if missing_ok else f"{following} does not exist"
            level = 0o755 if parts else mode
            try:
                os.mkdir(following, level)
                os.chmod(following, level)        # (not subject to the caller's umask)
            except FileExistsError:
                pass                              # (a parallel cnish made it first)
            st = os.lstat(following)
        if stat.S_ISLNK(st.st_mode):
            # it lies in `current`, accepted; but where others may write (a sticky /tmp), the
            # link's owner can replace it: only root's or cnish's user's is followed there
            # (as the kernel's fs.protected_symlinks would, which may be off)
            if _open_to_others(current_st) and st.st_uid not in (0, os.geteuid()):
                return f"{following} is a symlink another user owns"
            hops += 1
            if hops > SYMLINK_HOPS:
                return f"{path} has too many symlinks"
            target = os.readlink(following)
            parts[:0] = [p for p in target.split("/") if p not in ("", ".")]
            if target.startswith("/"):     # (a new way down from /: its own host part)
                current, current_st, parent_st, above_own = "/", root_st, None, True
            continue
        parent_st = current_st
        current, current_st = following, st
    return _refusal(current_st, current, True, above_own, parent_st)


def trusted(path: str) -> bool:
    """Is `path` a directory of this user's own that no other user can swap (see above)?"""
    return refusal(path) is None


def refusal(path: str, missing_ok: bool = False) -> str | None:
    """Why `path` is not trusted ("/run/cnish is writable by other users"), or None.
    `missing_ok`: a path that does not exist (and that no other user can make) is fine: a
    reader finds nothing there."""
    try:
        return _walk(path, None, missing_ok)
    except OSError as exc:
        return f"{path} cannot be looked at: {exc.strerror}"


def make(path: str, mode: int = 0o700) -> str | None:
    """Create `path` if missing (parents 0755, it `mode`); None when it is then trusted,
    else why not (as `refusal`). OSError when it cannot be made (a read-only file system)."""
    return _walk(path, mode)
