"""The host-local IPAM store, byte-compatible with the reference plugin's on-disk format.

Layout of `<dataDir>/<network>/` (cni-reference.md §3.10):
    <ip>                    "<containerID>\\r\\n<ifname>" (no trailing newline), mode 0600
    last_reserved_ip.<set>  the last address reserved in range set <set>, no newline
    lock                    empty; flock()ed around every read-modify-write, release included

Because the format and the lock are the reference's, cnish and the reference host-local can
share one store: either can release what the other reserved. Beyond the reference:
- next to each address file cnish writes an index file `.cnish-owner-<key>.<ip>` with the same
  content, where <key> is a hash of (container id, ifname): finding an attachment's addresses
  is then a directory listing instead of reading every reservation (the reference reads them
  all, which grows with the number of containers). The reference ignores these files when it
  allocates (their names are not addresses) and deletes them when it releases the owner
  (their content is the owner), so the index never outlives its reservations for long; files
  without an index entry (the reference's) are still read;
- reservations are written to a temporary file and hard-linked into place, so a crash never
  leaves an empty address file behind (reference issue #498);
- files are opened with O_NOFOLLOW and the network directory may not be a symlink, so a link
  planted in the store cannot redirect a write;
- scans tolerate files that disappear while they run (parallel DELs).
"""

import fcntl
import os

from cnish.errors import IPAM_FAILED, CNIError

LINE_BREAK = "\r\n"
LAST_RESERVED = "last_reserved_ip."
LOCK_FILE = "lock"
TMP_PREFIX = ".cnish-tmp-"
INDEX_PREFIX = ".cnish-owner-"


def owner_key(cid: str, ifname: str) -> str:
    """16 hex digits of sha512(cid NUL ifname): the index entries' owner part."""
    from cnish.names import short_hash
    return short_hash(f"{cid.strip()}\0{ifname}")


def _index_ip(name: str) -> str:
    """The address an index entry .cnish-owner-<16 hex>.<ip> stands for."""
    return name[len(INDEX_PREFIX) + 17:]

_held = {}   # directory -> [fd, depth]: the lock is re-entrant within one process


def _fail(msg: str, exc: OSError | None = None) -> CNIError:
    details = ""
    if exc is not None:
        details = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc.strerror)
    return CNIError(IPAM_FAILED, msg, details)


class Store:
    """One network's directory in a host-local data directory."""

    def __init__(self, data_dir: str, network: str):
        self.data_dir = data_dir
        self.network = network
        self.dir = os.path.join(data_dir, network)

    # -- locking ---------------------------------------------------------------------------------

    def ensure_dir(self) -> None:
        try:
            os.makedirs(self.data_dir, mode=0o755, exist_ok=True)
            os.mkdir(self.dir, 0o755)
            os.chmod(self.dir, 0o755)   # not subject to the caller's umask, like the bash script
        except FileExistsError:
            pass
        except OSError as exc:
            raise _fail(f"cannot create the IPAM store directory {self.dir}", exc) from None
        if os.path.islink(self.dir) or not os.path.isdir(self.dir):
            raise CNIError(IPAM_FAILED, f"refusing to use IPAM store {self.dir}",
                           "it is a symlink or not a directory")

    def acquire(self) -> None:
        """Take the store's flock (blocking); re-entrant within this process."""
        entry = _held.get(self.dir)
        if entry:
            entry[1] += 1
            return
        self.ensure_dir()
        try:
            fd = os.open(os.path.join(self.dir, LOCK_FILE),
                         os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise _fail(f"cannot open the lock of IPAM store {self.dir}", exc) from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        _held[self.dir] = [fd, 1]

    def release_lock(self) -> None:
        entry = _held.get(self.dir)
        if not entry:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del _held[self.dir]
            os.close(entry[0])      # closing the only descriptor drops the flock

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release_lock()

    # -- reading ---------------------------------------------------------------------------------

    def _read(self, name: str) -> str | None:
        try:
            fd = os.open(os.path.join(self.dir, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None          # vanished (a parallel release), a symlink, or unreadable
        try:
            return os.read(fd, 4096).decode("utf-8", "replace")
        finally:
            os.close(fd)

    def entries(self):
        """(file name, content) of every reservation file; tolerant of files vanishing."""
        try:
            names = os.listdir(self.dir)
        except OSError:
            return
        for name in names:
            if name == LOCK_FILE or name.startswith(LAST_RESERVED) or name.startswith("."):
                continue
            content = self._read(name)
            if content is not None:
                yield name, content

    @staticmethod
    def _owner(cid: str, ifname: str) -> str:
        return cid.strip() + LINE_BREAK + ifname

    def _names(self) -> list:
        try:
            return os.listdir(self.dir)
        except OSError:
            return []

    def owned(self, cid: str, ifname: str) -> list[str]:
        """Addresses reserved for (cid, ifname); legacy files holding only the id count too.

        The index files answer for cnish's reservations without reading anything but the
        matching address files; only reservations without an index entry (made by the
        reference, or legacy ones) are read one by one."""
        mine = self._owner(cid, ifname)
        names = self._names()
        indexed = {}
        prefix = INDEX_PREFIX + owner_key(cid, ifname) + "."
        for name in names:
            if name.startswith(INDEX_PREFIX):
                indexed[_index_ip(name)] = name.startswith(prefix)
        found = [ip for ip, ours in indexed.items()
                 if ours and (self._read(ip) or "").strip() == mine]
        foreign = [n for n in names if n not in indexed and n != LOCK_FILE
                   and not n.startswith(LAST_RESERVED) and not n.startswith(".")]
        contents = {n: self._read(n) for n in foreign}
        found += [n for n, c in contents.items() if c is not None and c.strip() == mine]
        if found:
            return found
        return [n for n, c in contents.items() if c is not None and c.strip() == cid.strip()]

    def holder(self, ip: str) -> str | None:
        return self._read(ip)

    def last_reserved(self, set_index: int) -> str | None:
        value = self._read(f"{LAST_RESERVED}{set_index}")
        return value.strip() if value else None

    # -- writing (callers hold the lock) ---------------------------------------------------------

    def reserve(self, ip: str, cid: str, ifname: str, set_index: int) -> bool:
        """Reserve `ip`; False when it is taken. Atomic: the file appears with its content,
        then its index entry, then the range set's cursor; a failure undoes the earlier ones."""
        self.acquire()
        try:
            target = os.path.join(self.dir, ip)
            index = os.path.join(self.dir, f"{INDEX_PREFIX}{owner_key(cid, ifname)}.{ip}")
            try:
                if not self._create(target, self._owner(cid, ifname)):
                    return False
                try:
                    self._create(index, self._owner(cid, ifname), replace=True)
                    self._write_last(set_index, ip)
                except OSError:
                    _remove(index)
                    _remove(target)      # all or nothing
                    raise
            except OSError as exc:
                raise _fail(f"cannot reserve {ip} in IPAM store {self.dir}", exc) from None
            return True
        finally:
            self.release_lock()

    def _create(self, path: str, content: str, replace: bool = False) -> bool:
        """Write `content` to a temporary file and link it into place: the file never exists
        half-written. False when `path` exists (unless `replace`)."""
        tmp = os.path.join(self.dir, f"{TMP_PREFIX}{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            try:
                os.write(fd, content.encode())
                os.fchmod(fd, 0o600)
            finally:
                os.close(fd)
            if replace:
                os.rename(tmp, path)
                return True
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            _remove(tmp)

    def _write_last(self, set_index: int, ip: str) -> None:
        final = os.path.join(self.dir, f"{LAST_RESERVED}{set_index}")
        tmp = os.path.join(self.dir, f"{TMP_PREFIX}last-{os.getpid()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, ip.encode())
                os.fchmod(fd, 0o600)
            finally:
                os.close(fd)
            os.rename(tmp, final)
        except OSError:
            _remove(tmp)
            raise

    def release_ip(self, ip: str, cid: str, ifname: str, set_index: int | None = None,
                   previous: str = "") -> bool:
        """Undo a reservation: remove `ip` (and its index entry) if (cid, ifname) holds it and,
        when the range set's last_reserved_ip still names it, put back the value it had before
        (`previous`; none when empty). True if the address file was removed."""
        if not os.path.isdir(self.dir):
            return False
        with self:
            self._unlink(f"{INDEX_PREFIX}{owner_key(cid, ifname)}.{ip}")
            content = self.holder(ip)
            if content is None or content.strip() not in (self._owner(cid, ifname), cid.strip()):
                return False
            removed = self._unlink(ip)
            if set_index is not None and self.last_reserved(set_index) == ip:
                if previous:
                    self._write_last(set_index, previous)
                else:
                    self._unlink(f"{LAST_RESERVED}{set_index}")
            return removed

    def release(self, cid: str, ifname: str) -> list[str]:
        """Remove every reservation of (cid, ifname) (legacy id-only files if none match),
        with their index entries."""
        if not os.path.isdir(self.dir):
            return []
        with self:
            released = [ip for ip in self.owned(cid, ifname) if self._unlink(ip)]
            prefix = INDEX_PREFIX + owner_key(cid, ifname) + "."
            for name in self._names():
                if name.startswith(prefix):
                    self._unlink(name)
            return released

    def prune(self) -> list[str]:
        """Remove the stale index entries (GC); returns their names."""
        with self:
            stale = self.stale_index()
            for name in stale:
                self._unlink(name)
            return stale

    def stale_index(self) -> list[str]:
        """Index entries whose address file is gone or held by someone else (GC)."""
        out = []
        for name in self._names():
            if name.startswith(INDEX_PREFIX):
                if self._read(_index_ip(name)) != self._read(name):
                    out.append(name)
        return out

    def _unlink(self, name: str) -> bool:
        try:
            os.unlink(os.path.join(self.dir, name))
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise _fail(f"cannot release {name} in IPAM store {self.dir}", exc) from None


def drop_locks() -> None:
    """Release every store lock this process holds (after the reserve steps, or on failure)."""
    for directory, (fd, _depth) in list(_held.items()):
        del _held[directory]
        os.close(fd)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
