"""The host-local IPAM store, byte-compatible with the reference plugin's on-disk format.

Layout of `<dataDir>/<network>/` (the reference's: containernetworking/plugins,
plugins/ipam/host-local):
    <ip>                    "<containerID>\\r\\n<ifname>" (no trailing newline)
    last_reserved_ip.<set>  the last address reserved in range set <set>, no newline
    lock                    empty; flock()ed around every read-modify-write, release included
cnish writes its files with mode 0600 (the reference: 0644, and 0750 for `lock`; README,
"Where cnish deliberately differs"): a reservation names a container.

Because the format and the lock are the reference's, cnish and the reference host-local can
share one store: either can release what the other reserved. Beyond the reference:
- each address file cnish writes has a second name, the index entry `.cnish-owner-<key>.<ip>`
  (a hard link: same inode, same content), where <key> is a hash of (container id, ifname).
  One directory listing (os.scandir: names, types and inode numbers, no stat) then tells whose
  addresses are whose. An entry counts only while its inode is the address file's, so a
  leftover entry (its address file removed by hand or by a crash between two unlinks, then
  reserved again by cnish or the reference) is ignored and never hides the address's owner;
  the leftover keeps its own inode alive, so no new file can get its number. Address files
  without a matching entry (the reference's, and old stores' index files, which were separate
  copies) are read. The reference ignores the entries when it allocates (their names are not
  addresses) and deletes them when it releases the owner (their content is the owner); GC's
  prune removes entries that do not match;
- reservations are written to a temporary file and hard-linked into place, so a crash never
  leaves an empty address file behind (reference issue #498);
- files are opened with O_NOFOLLOW and the network directory may not be a symlink, so a link
  planted in the store cannot redirect a write;
- scans look at regular files only, so a directory, a FIFO or a symlink in the store is
  skipped (the reference skips it too); a file that is missing or cannot be opened for what it
  is (a link, no permission) is no reservation, but a read the host could not serve (too many
  open files, no memory, an I/O error) fails the operation instead of passing for an empty
  store, which would let DEL report a release it never made — a store whose directories
  another user could swap is refused (code 102) before anything is read, see trusteddirs.py;
  the allocator treats any entry named like an address, whatever its type, as taken and
  moves on to the next address;
- scans tolerate files that disappear while they run (parallel DELs).
"""

import errno
import fcntl
import os
import stat

from cnish.errors import IPAM_FAILED, TRY_AGAIN, CNIError
from cnish.ipnet import IP

_ADDRESS_CHARS = frozenset("0123456789abcdefABCDEF.:")

LINE_BREAK = "\r\n"
LAST_RESERVED = "last_reserved_ip."
LOCK_FILE = "lock"
LOCK_WAIT = 30.0           # seconds an operation waits for the store's lock, then code 11
TMP_PREFIX = ".cnish-tmp-"
INDEX_PREFIX = ".cnish-owner-"


def owner_key(cid: str, ifname: str) -> str:
    """16 hex digits of sha512(cid NUL ifname): the index entries' owner part."""
    from cnish.names import short_hash
    return short_hash(f"{cid.strip()}\0{ifname}")


def _index_ip(name: str) -> str:
    """The address an index entry .cnish-owner-<16 hex>.<ip> stands for."""
    return name[len(INDEX_PREFIX) + 17:]


def _index_key(name: str) -> str:
    """The owner key of an index entry .cnish-owner-<16 hex>.<ip>."""
    return name[len(INDEX_PREFIX):len(INDEX_PREFIX) + 16]


_held = {}   # directory -> [fd, depth]: the lock is re-entrant within one process


# What opening a store file may say that means "not a reservation here": missing (a parallel
# release), a symlink (O_NOFOLLOW), not openable for reading. Any other error is the host's.
_NOT_THERE = frozenset((errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EACCES, errno.EPERM,
                        errno.ENXIO, errno.EISDIR))
# The host's errors that pass: the runtime's retry (code 11) may find them gone.
_TRANSIENT = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN, errno.EINTR))


class Unreadable(CNIError):
    """The host could not serve a read of the store (see _read): not "nothing there"."""


def _fail(msg: str, exc: OSError | None = None, kind=CNIError) -> CNIError:
    details = ""
    if exc is not None:
        details = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc.strerror)
    code = TRY_AGAIN if exc is not None and exc.errno in _TRANSIENT else IPAM_FAILED
    return kind(code, msg, details)


def _flock_within(fd: int, seconds: float) -> None:
    """flock(LOCK_EX) on `fd`, or TimeoutError after `seconds`. The reference (and cnish
    before) waited without end, so one hung holder held every ADD of the network until the
    runtime killed it. A blocking flock that an interval timer's SIGALRM interrupts, rather
    than polling with LOCK_NB: fifty parallel ADDs queue for this lock, and a poll's sleep
    would be added to every wait. What the process had (SIGALRM's handler and mask, a timer
    of its own) is put back as it was."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    # `_signal`, the C module behind `signal`, is loaded at start-up; `signal` itself imports
    # enum (≈ 4 ms, on the path of a contended ADD)
    import _signal
    import time

    def expired(signum, frame):
        raise TimeoutError
    alarm, real = _signal.SIGALRM, _signal.ITIMER_REAL
    try:
        previous = _signal.signal(alarm, expired)
    except ValueError:
        # not the main thread, the only one that may handle signals (cnish's CNI path is
        # single-threaded; a library caller may not be): wait as the reference does
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    # (a process may be started with SIGALRM blocked: the timer would then never interrupt)
    mask = _signal.pthread_sigmask(_signal.SIG_UNBLOCK, {alarm})
    started, theirs = time.monotonic(), (0.0, 0.0)
    try:
        try:
            theirs = _signal.setitimer(real, seconds)
            fcntl.flock(fd, fcntl.LOCK_EX)    # (Python resumes it after other signals: PEP 475)
        finally:
            _signal.setitimer(real, 0)
    except TimeoutError:
        # the alarm may have come just after flock returned: this descriptor holds it then
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TimeoutError from None
    finally:
        _signal.signal(alarm, previous)
        _signal.pthread_sigmask(_signal.SIG_SETMASK, mask)
        if theirs[0]:                         # (a timer of the process's own: what it had left)
            left = theirs[0] - (time.monotonic() - started)
            _signal.setitimer(real, max(left, 0.001), theirs[1])


class Store:
    """One network's directory in a host-local data directory."""

    def __init__(self, data_dir: str, network: str):
        self.data_dir = data_dir
        self.network = network
        self.dir = os.path.join(data_dir, network)
        self._trusted = False     # (checked before the first read or write: _require_trusted)

    # -- locking ---------------------------------------------------------------------------------

    def ensure_dir(self) -> None:
        """Make the store (0755, as the reference; its parents too, whatever the umask) and
        use it only if no other user can swap a file in it, or it (trusteddirs.py): the data
        directory and every directory above it must be root's alone."""
        from cnish import trusteddirs
        try:
            # (a symlink is refused before it is followed; the walk then accepts the data
            # directory only if no other user could have put one there since)
            if os.path.islink(self.dir):
                raise CNIError(IPAM_FAILED, f"refusing to use IPAM store {self.dir}",
                               "it is a symlink or not a directory")
            why = trusteddirs.make(self.dir, 0o755)
            if why:
                # (e.g. "/var/lib/cni is writable by other users": cnish before b989165
                # made parents so under umask 000; `chmod go-w` them, README says)
                raise CNIError(IPAM_FAILED, f"refusing to use IPAM store {self.dir}",
                               f"{why}: another user could swap its files")
        except OSError as exc:
            raise _fail(f"cannot create the IPAM store directory {self.dir}", exc) from None
        self._trusted = True      # (reads need not walk it again)

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
        try:
            _flock_within(fd, LOCK_WAIT)
        except TimeoutError:
            os.close(fd)
            raise CNIError(TRY_AGAIN, f"the lock of IPAM store {self.dir} has been held by "
                           f"another process for {LOCK_WAIT:g} s",
                           "an IPAM process (cnish's or host-local's) that hangs, or was "
                           "stopped, holds it: try again later") from None
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

    def _require_trusted(self) -> None:
        """Reads (DEL's, GC's, CHECK's, which need not take the lock) look at the store only
        when no other user could have planted or swapped its files (trusteddirs.py): forged
        reservations would make GC and DEL act on addresses of another user's choosing. A
        missing store is fine: it has nothing."""
        if self._trusted:
            return
        from cnish import trusteddirs
        why = trusteddirs.refusal(self.dir, missing_ok=True)
        if why is None and os.path.islink(self.dir):
            why = f"{self.dir} is a symlink"
        if why:
            raise CNIError(IPAM_FAILED, f"refusing to use IPAM store {self.dir}",
                           f"{why}: another user could swap its files")
        self._trusted = True

    def _read(self, name: str) -> str | None:
        """The content of regular file `name`; None when it is missing, not a regular file
        (never followed: O_NOFOLLOW; a FIFO does not block: O_NONBLOCK) or unreadable. An
        error of the host's (EMFILE, EIO...) raises: None would say "no reservation"."""
        self._require_trusted()
        try:
            fd = os.open(os.path.join(self.dir, name),
                         os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in _NOT_THERE:
                return None      # vanished (a parallel release), a symlink, or unreadable
            raise _fail(f"cannot read {name} in IPAM store {self.dir}", exc, Unreadable) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid not in (0, os.geteuid()):
                return None      # a directory, a FIFO, a device, another user's: not one
            return os.read(fd, 4096).decode("utf-8", "replace")
        except OSError as exc:
            raise _fail(f"cannot read {name} in IPAM store {self.dir}", exc, Unreadable) from None
        finally:
            os.close(fd)

    def exists(self) -> bool:
        """Is there a store directory? Missing is False; a stat the host cannot serve (EIO,
        ENOMEM...) raises: taken for "no store", a DEL would release nothing and succeed."""
        try:
            return stat.S_ISDIR(os.stat(self.dir).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            raise _fail(f"cannot look at IPAM store {self.dir}", exc, Unreadable) from None

    def files(self) -> dict:
        """Regular files of the store: name -> inode number, both from one getdents pass
        (no stat where the file system reports types). Anything else is not the store's; a
        file that cannot be looked at is skipped, a missing directory has none; a listing the
        host cannot give (EMFILE, EIO...) raises rather than pass for an empty store."""
        self._require_trusted()
        files = {}
        try:
            with os.scandir(self.dir) as it:
                for entry in it:
                    try:     # (an lstat where the file system reports no types)
                        if entry.is_file(follow_symlinks=False):
                            files[entry.name] = entry.inode()
                    except FileNotFoundError:
                        pass                    # (gone since: a parallel release)
                    except OSError as exc:
                        raise _fail(f"cannot look at {entry.name} in IPAM store {self.dir}",
                                    exc, Unreadable) from None
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _fail(f"cannot list IPAM store {self.dir}", exc, Unreadable) from None
        return files

    @staticmethod
    def _is_address(name: str) -> bool:
        """Only a file named like an IP address is a reservation: the data directory comes
        from the config (a user's, with Multus), and GC releases the reservations of stale
        owners, so any other file there must never be read as one (or deleted)."""
        if not name or not _ADDRESS_CHARS.issuperset(name):
            return False          # (also lock, last_reserved_ip.N and the dot files)
        try:
            IP.parse(name)
        except ValueError:
            return False
        return True

    def entries(self):
        """(file name, content) of every reservation file; tolerant of files vanishing."""
        for name in self.files():
            if self._is_address(name):
                content = self._read(name)
                if content is not None:
                    yield name, content

    @staticmethod
    def _owner(cid: str, ifname: str) -> str:
        return cid.strip() + LINE_BREAK + ifname

    def _indexed(self, files: dict) -> dict:
        """address -> owner key, for the addresses whose index entry is a hard link to them
        (same inode). Entries that are not (leftovers, old stores' copies) do not count, nor
        do several keys linked to one address (it is read instead)."""
        out, ambiguous = {}, set()
        for name, inode in files.items():
            if name[:1] == "." and name.startswith(INDEX_PREFIX):
                ip = _index_ip(name)
                # (a character check only: IP.parse for every entry would double the cost of
                # the owner lookup; owned() parses the few names it reads)
                if files.get(ip) == inode and ip and _ADDRESS_CHARS.issuperset(ip):
                    key = _index_key(name)
                    if out.setdefault(ip, key) != key:
                        ambiguous.add(ip)
        for ip in ambiguous:
            del out[ip]
        return out

    def owned(self, cid: str, ifname: str, files: dict | None = None) -> list[str]:
        """Addresses reserved for (cid, ifname); legacy files holding only the id count too.

        Addresses linked to another key's index entry belong to that attachment and are not
        read; the rest are read: ours (to confirm them) and those without a linked entry (the
        reference's, legacy ones, or ones only a leftover entry names)."""
        mine = self._owner(cid, ifname)
        files = self.files() if files is None else files
        indexed = self._indexed(files)
        key = owner_key(cid, ifname)
        # (the order of the tests: most names are index entries or others' addresses)
        contents = {n: self._read(n) for n in files
                    if n[:1] != "." and indexed.get(n, key) == key and self._is_address(n)}
        found = [n for n, c in contents.items() if c is not None and c.strip() == mine]
        if found:
            return found
        return [n for n, c in contents.items() if c is not None and c.strip() == cid.strip()]

    def holder(self, ip: str) -> str | None:
        return self._read(ip)

    def held_by(self, ip: str, cid: str, ifname: str) -> bool:
        """Does (cid, ifname) hold `ip`? The reference's rule: the file reads
        "<cid>\\r\\n<ifname>", or "<cid>" alone (stores older than plugins 0.8.0)."""
        content = self.holder(ip)
        return content is not None and content.strip() in (self._owner(cid, ifname), cid.strip())

    def taken(self, ip: str) -> bool:
        """True when anything is named `ip` in the store, whatever its type: the allocator
        moves on (as the reference does when its exclusive create fails)."""
        try:
            os.lstat(os.path.join(self.dir, ip))
            return True
        except OSError:
            return False

    def last_reserved(self, set_index: int) -> str | None:
        value = self._read(f"{LAST_RESERVED}{set_index}")
        return value.strip() if value else None

    # -- writing (callers hold the lock) ---------------------------------------------------------

    def reserve(self, ip: str, cid: str, ifname: str, set_index: int) -> bool:
        """Reserve `ip`; False when it is taken. Atomic: the file appears with its content,
        then its index entry (a hard link to it, replacing a leftover entry of this key), then
        the range set's cursor; a failure undoes the earlier ones."""
        self.acquire()
        try:
            target = os.path.join(self.dir, ip)
            index = os.path.join(self.dir, f"{INDEX_PREFIX}{owner_key(cid, ifname)}.{ip}")
            tmp = os.path.join(self.dir, f"{TMP_PREFIX}{os.getpid()}")
            try:
                self._write_tmp(tmp, self._owner(cid, ifname))
                try:
                    os.link(tmp, target)     # never follows or replaces what is there
                except FileExistsError:
                    return False
                try:
                    try:
                        os.link(tmp, index)
                    except FileExistsError:
                        os.rename(tmp, index)    # a leftover entry: replaced by the new link
                    self._write_last(set_index, ip)
                except OSError:
                    _remove(target)              # all or nothing; without the address file,
                    _remove(index)               # a remaining entry would not count anyway
                    raise
            except OSError as exc:
                raise _fail(f"cannot reserve {ip} in IPAM store {self.dir}", exc) from None
            finally:
                _remove(tmp)
            return True
        finally:
            self.release_lock()

    @staticmethod
    def _write_tmp(tmp: str, content: str) -> None:
        """A new file `tmp` holding `content`. A file of that name is a dead writer's (the
        name carries the pid, which the kernel reuses), possibly still a link to a live
        reservation: it is unlinked, never written through."""
        _remove(tmp)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            data = content.encode()
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, "short write", tmp)
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)

    def sweep(self, files: dict) -> None:
        """Remove the temporary files of writers that were killed (`files`: a listing taken
        under the lock, which every writer holds from creating its temporary file until it
        is gone, so any left over is garbage)."""
        for name in files:
            if name.startswith(TMP_PREFIX):
                _remove(os.path.join(self.dir, name))     # (best effort: never fails an ADD)

    def _write_last(self, set_index: int, ip: str) -> None:
        final = os.path.join(self.dir, f"{LAST_RESERVED}{set_index}")
        tmp = os.path.join(self.dir, f"{TMP_PREFIX}last-{os.getpid()}")
        try:
            self._write_tmp(tmp, ip)
            os.rename(tmp, final)
        except OSError:
            _remove(tmp)
            raise

    def release_ip(self, ip: str, cid: str, ifname: str, set_index: int | None = None,
                   previous: str = "") -> bool:
        """Undo a reservation: remove `ip` (and its index entry) if (cid, ifname) holds it and,
        when the range set's last_reserved_ip still names it, put back the value it had before
        (`previous`; none when empty). True if the address file was removed."""
        if not self.exists():
            return False
        with self:
            self._unlink(f"{INDEX_PREFIX}{owner_key(cid, ifname)}.{ip}")
            if not self.held_by(ip, cid, ifname):
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
        if not self.exists():
            return []
        with self:
            files = self.files()
            released = [ip for ip in self.owned(cid, ifname, files) if self._unlink(ip)]
            prefix = INDEX_PREFIX + owner_key(cid, ifname) + "."
            for name in files:
                if name.startswith(prefix):
                    self._unlink(name)
            return released

    def prune(self) -> list[str]:
        """Remove the index entries that do not count and killed writers' temporary files
        (GC); returns the index entries' names."""
        with self:
            files = self.files()
            self.sweep(files)                 # (temporary files are not index entries)
            stale = self.stale_index(files)
            for name in stale:
                self._unlink(name)
            return stale

    def stale_index(self, files: dict | None = None) -> list[str]:
        """Index entries that are not a hard link to their address file: the address is gone,
        held by someone else since, or the entry is an old store's separate copy (GC)."""
        files = self.files() if files is None else files
        indexed = self._indexed(files)
        return [name for name in files if name.startswith(INDEX_PREFIX)
                and indexed.get(_index_ip(name)) != _index_key(name)]

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
    """Best effort (clean-up and rollback, whose callers report the error that matters)."""
    try:
        os.unlink(path)
    except OSError:
        pass
