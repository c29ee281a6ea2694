"""Files cnish writes: modes, atomic writes, and symlinks planted to redirect them."""

import json
import os
import stat

import pytest

from cnish import libcni, store
from cnish.errors import CNIError
from cnish.plugins import hostlocal
from lab import operation


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_store_files_are_private(tmp_path):
    s = store.Store(str(tmp_path), "net")
    with s:
        assert s.reserve("10.0.0.2", "c1", "eth0", 0)
    assert mode(tmp_path / "net" / "10.0.0.2") == 0o600
    assert mode(tmp_path / "net" / "last_reserved_ip.0") == 0o600
    assert mode(tmp_path / "net" / "lock") == 0o600
    assert mode(tmp_path / "net") == 0o755            # like the reference's store directory
    index = [n for n in os.listdir(tmp_path / "net") if n.startswith(".")]
    assert index == [f".cnish-owner-{store.owner_key('c1', 'eth0')}.10.0.0.2"]  # no temp files
    assert mode(tmp_path / "net" / index[0]) == 0o600


def test_a_planted_address_symlink_is_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "net").mkdir()
    os.symlink(victim, tmp_path / "net" / "10.0.0.2")
    s = store.Store(str(tmp_path), "net")
    with s:
        assert not s.reserve("10.0.0.2", "c1", "eth0", 0)      # taken, not written through
    assert victim.read_text() == "precious"
    assert s.owned("c1", "eth0") == []                           # not read through either
    s.release("precious", "")
    assert victim.read_text() == "precious"


def test_a_planted_cursor_symlink_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "net").mkdir()
    os.symlink(victim, tmp_path / "net" / "last_reserved_ip.0")
    with store.Store(str(tmp_path), "net") as s:
        assert s.reserve("10.0.0.3", "c1", "eth0", 0)
    assert victim.read_text() == "precious"
    assert not os.path.islink(tmp_path / "net" / "last_reserved_ip.0")


@pytest.mark.parametrize("planted", ["dir", "lock"])
def test_a_symlinked_store_or_lock_is_refused(tmp_path, planted):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if planted == "dir":
        os.symlink(elsewhere, tmp_path / "net")
    else:
        (tmp_path / "net").mkdir()
        os.symlink(elsewhere / "lock", tmp_path / "net" / "lock")
    with pytest.raises(CNIError) as info:
        store.Store(str(tmp_path), "net").acquire()
    assert info.value.code == 102
    assert not os.listdir(elsewhere)


def hostlocal_conf(tmp_path):
    return {"cniVersion": "1.0.0", "name": "net", "type": "host-local",
            "ipam": {"type": "host-local", "dataDir": str(tmp_path),
                     "ranges": [[{"subnet": "10.0.0.0/24"}]]}}


def add(raw, cid):
    """An ADD's allocation and reserve steps, in-process; the addresses it got."""
    att, result = hostlocal.ipam_add(operation(raw, cid=cid, dry_run=False))
    try:
        for r in att["reservations"]:
            assert store.Store(att["store"].rsplit("/", 1)[0], "net").reserve(
                r["ip"], cid, "eth0", r["set"]), r
    finally:
        store.drop_locks()
    return [ip["address"] for ip in result["ips"]]


def test_a_directory_in_the_store_is_skipped(tmp_path):
    """The reference skips it; once, every ADD and DEL failed with code 999 (EISDIR)."""
    (tmp_path / "net" / "backup").mkdir(parents=True)
    (tmp_path / "net" / "backup" / "10.0.0.9").write_bytes(b"old\r\neth0")
    (tmp_path / "net" / "10.0.0.3").mkdir()                # a directory named like an address
    raw = hostlocal_conf(tmp_path)
    assert add(raw, "c1") == ["10.0.0.2/24"]
    assert add(raw, "c2") == ["10.0.0.4/24"]               # .3 is taken, whatever it is
    s = store.Store(str(tmp_path), "net")
    assert hostlocal.ipam_del(operation(raw, "DEL", cid="c1"))[1] == ["10.0.0.2"]
    assert s.release("c1", "eth0") == ["10.0.0.2"]
    assert sorted(n for n, _ in s.entries()) == ["10.0.0.4"]
    assert s.holder("backup") is None and s.holder("10.0.0.3") is None
    assert s.prune() == [] and s.release("old", "eth0") == []
    assert (tmp_path / "net" / "backup" / "10.0.0.9").read_bytes() == b"old\r\neth0"


def test_a_symlink_named_like_the_next_address_is_skipped(tmp_path):
    """The allocator moves on, as the reference does when its exclusive create fails; once,
    every ADD failed with "already reserved" (its rollback put the cursor back)."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    raw = hostlocal_conf(tmp_path)
    assert add(raw, "c1") == ["10.0.0.2/24"]
    os.symlink(victim, tmp_path / "net" / "10.0.0.3")
    assert add(raw, "c2") == ["10.0.0.4/24"]
    assert os.readlink(tmp_path / "net" / "10.0.0.3") == str(victim)
    assert victim.read_text() == "precious"
    with pytest.raises(CNIError) as info:                  # nor can it be requested
        add(dict(raw, args={"cni": {"ips": ["10.0.0.3"]}}), "c3")
    assert "not available" in info.value.msg
    assert victim.read_text() == "precious"


def test_result_cache_is_private_and_atomic(tmp_path):
    libcni.write_cache(str(tmp_path), b"{}", "net", "c1", "eth0", "/run/netns/x", {}, {},
                       {"cniVersion": "1.0.0"})
    assert mode(tmp_path / "results") == 0o700
    path = tmp_path / "results" / "net-c1-eth0"
    assert mode(path) == 0o600
    assert json.loads(path.read_text())["kind"] == "cniCacheV1"
    assert os.listdir(tmp_path / "results") == ["net-c1-eth0"]


def test_a_cache_entry_that_cannot_be_written_leaves_no_temporary_file(tmp_path):
    """The entry is written to a temporary name and renamed; when the rename (or the write:
    a full disk) fails, the temporary file stayed for good, since nothing lists it (a code
    review)."""
    (tmp_path / "results" / "net-c1-eth0").mkdir(parents=True)      # where the entry goes
    (tmp_path / "results" / "net-c1-eth0" / "x").write_text("")
    os.chmod(tmp_path / "results", 0o700)
    with pytest.raises(CNIError) as info:
        libcni.write_cache(str(tmp_path), b"{}", "net", "c1", "eth0", "", {}, {}, {})
    assert info.value.code == 5
    assert os.listdir(tmp_path / "results") == ["net-c1-eth0"]


def test_a_planted_cache_symlink_is_neither_followed_nor_written_through(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "results").mkdir(mode=0o700)
    os.symlink(victim, tmp_path / "results" / "net-c1-eth0")
    with pytest.raises(ValueError):           # (ignored with a warning by the CLI)
        libcni.read_cache_entry(str(tmp_path), "net", "c1", "eth0")
    libcni.write_cache(str(tmp_path), b"{}", "net", "c1", "eth0", "", {}, {}, {"x": 1})
    assert victim.read_text() == "precious"
    assert not os.path.islink(tmp_path / "results" / "net-c1-eth0")


def test_a_symlinked_results_directory_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, tmp_path / "results")
    with pytest.raises(CNIError):
        libcni.write_cache(str(tmp_path), b"{}", "net", "c1", "eth0", "", {}, {}, {})
    assert not os.listdir(elsewhere)


def test_the_scripts_store_function_never_writes_through_a_symlink(tmp_path):
    """The dry-run script's cnish-store, like cnish's store: last_reserved_ip.N is replaced,
    not written through, and a symlinked lock file is refused (found by an audit: the script
    overwrote a canary that last_reserved_ip.0 pointed at)."""
    import subprocess
    from cnish.paths import templates_dir
    function = os.path.join(templates_dir(), "script", "cnish-store.sh")
    canary = tmp_path / "canary"
    canary.write_text("keep")
    d = tmp_path / "net"
    d.mkdir()
    os.symlink(canary, d / "last_reserved_ip.0")

    def run(*args):
        return subprocess.run(["bash", "-c", 'source "${0%/*}/cnish-trusted-dir.sh"; source "$0"; cnish-store "$@"', function, *args],
                              capture_output=True, text=True)
    proc = run("reserve", str(d), "10.0.0.5", "c1", "eth0", "0", "k" * 16)
    assert proc.returncode == 0, proc.stderr
    assert canary.read_text() == "keep"
    assert not (d / "last_reserved_ip.0").is_symlink()
    assert (d / "last_reserved_ip.0").read_text() == "10.0.0.5"
    assert not [n for n in os.listdir(d) if n.startswith(".cnish-tmp")]
    os.unlink(d / "lock")
    os.symlink(tmp_path / "elsewhere", d / "lock")
    proc = run("reserve", str(d), "10.0.0.6", "c2", "eth0", "0", "j" * 16)
    assert proc.returncode == 1 and "symlink" in proc.stderr
    assert not (tmp_path / "elsewhere").exists() and not (d / "10.0.0.6").exists()


def test_the_scripts_store_function_fails_when_the_host_is_out_of_descriptors(tmp_path):
    """With no file descriptor left, the dry-run script's cnish-store went on without its lock
    and without reading the reservations, and answered 0 having released nothing, as cnish's
    store did under EMFILE (a review's find): it fails now, and the reservation stays."""
    import subprocess
    from cnish.paths import templates_dir
    function = os.path.join(templates_dir(), "script", "cnish-store.sh")
    d = tmp_path / "net"
    d.mkdir()
    (d / "10.0.0.5").write_bytes(b"c1\r\neth0")
    fill = " ".join(f"{n}</dev/null" for n in range(3, 10))
    proc = subprocess.run(["bash", "-c", 'source "${0%/*}/cnish-trusted-dir.sh"; source "$0"; '
                           f'ulimit -n 11; exec {fill}; cnish-store release "$@"', function,
                           str(d), "c1", "eth0", "k" * 16], capture_output=True, text=True)
    assert proc.returncode != 0, proc.stderr
    assert (d / "10.0.0.5").read_bytes() == b"c1\r\neth0"


def test_the_scripts_store_function_gives_up_on_a_lock_held_too_long(tmp_path):
    """The dry-run script's cnish-store waits for the store's lock as cnish does (at most
    store.LOCK_WAIT, then fails naming the store); it waited without end before, and a BusyBox
    flock's failure let it go on unlocked. Held by another process here; the wait shortened."""
    import fcntl
    import subprocess
    from cnish import store
    from cnish.paths import templates_dir
    function = os.path.join(templates_dir(), "script", "cnish-store.sh")
    with open(function) as f:
        assert f"CNISH_STORE_WAIT={store.LOCK_WAIT:g}\n" in f.read()
    d = tmp_path / "net"
    d.mkdir()
    with open(d / "lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = subprocess.run(["bash", "-c", 'source "${0%/*}/cnish-trusted-dir.sh"; source "$0"; '
                               'CNISH_STORE_WAIT=1; cnish-store reserve "$@"', function,
                               str(d), "10.0.0.5", "c1", "eth0", "0", "k" * 16],
                              capture_output=True, text=True, timeout=20)
    assert proc.returncode == 1
    assert f"the lock of IPAM store {d} has been held by another process for 1 s" in proc.stderr
    assert sorted(os.listdir(d)) == ["lock"]


def test_the_scripts_prune_sweeps_temporary_files_like_cnish(tmp_path):
    """The dry-run script's `cnish-store prune` (a GC script's step) removes the temporary
    files killed writers left, as cnish's own prune does, and keeps reservations."""
    import subprocess
    from cnish import store
    from cnish.paths import templates_dir
    function = os.path.join(templates_dir(), "script", "cnish-store.sh")
    for prune in ("script", "cnish"):
        d = tmp_path / prune
        d.mkdir()
        (d / "10.0.0.5").write_bytes(b"c1\r\neth0")
        os.link(d / "10.0.0.5", d / ".cnish-tmp-4242")
        (d / ".cnish-tmp-last-77").write_text("10.0.0.5")
        if prune == "script":
            subprocess.run(["bash", "-c", 'source "${0%/*}/cnish-trusted-dir.sh"; source "$0"; cnish-store prune "$1"', function, str(d)],
                           check=True)
        else:
            store.Store(str(tmp_path), prune).prune()
        assert sorted(os.listdir(d)) == ["10.0.0.5", "lock"], prune
        assert (d / "10.0.0.5").read_bytes() == b"c1\r\neth0"


def test_the_scripts_release_ip_undoes_a_reservation_as_cnish_does(tmp_path):
    """The rollback of a dry-run script's ADD (`cnish-store release-ip`, the reserve step's
    undo) and cnish's own (Store.release_ip) leave the same store, case by case: another
    attachment's address stays, last_reserved_ip goes back to its value before the ADD only
    while it still names the address, a legacy id-only file counts as its container's."""
    import subprocess
    from cnish import store
    from cnish.paths import templates_dir
    function = os.path.join(templates_dir(), "script", "cnish-store.sh")
    # (ip, cid, ifname, set, previous) released after the reservations below
    releases = [("10.0.0.2", "b", "eth0", "0", "10.0.0.2"),     # a's address: stays
                ("10.0.0.3", "b", "eth0", "0", "10.0.0.2"),     # b's, still the last one
                ("10.0.0.4", "c", "eth0", "0", "10.0.0.1"),     # c's, but e's came after it
                ("10.0.0.5", "e", "eth0", "0", "10.0.0.4"),     # e's, the last: back to .4
                ("10.0.0.6", "f", "eth0", "1", ""),             # f's, last of set 1: file goes
                ("10.0.0.9", "old", "eth0", "0", "")]           # a legacy id-only file
    listings = {}
    for impl in ("script", "cnish"):
        d = tmp_path / impl
        d.mkdir()
        s = store.Store(str(tmp_path), impl)
        try:
            for ip, cid, ifname, set_index in [("10.0.0.2", "a", "eth0", 0),
                                               ("10.0.0.3", "b", "eth0", 0),
                                               ("10.0.0.4", "c", "eth0", 0),
                                               ("10.0.0.5", "e", "eth0", 0),
                                               ("10.0.0.6", "f", "eth0", 1)]:
                assert s.reserve(ip, cid, ifname, set_index)
            (d / "10.0.0.9").write_text("old")
            for ip, cid, ifname, set_index, previous in releases:
                if impl == "script":
                    subprocess.run(["bash", "-c", 'source "${0%/*}/cnish-trusted-dir.sh"; source "$0"; cnish-store "$@"', function,
                                    "release-ip", str(d), ip, cid, ifname, set_index, previous,
                                    store.owner_key(cid, ifname)], check=True)
                else:
                    s.release_ip(ip, cid, ifname, int(set_index), previous)
        finally:
            store.drop_locks()
        listings[impl] = {n: (d / n).read_bytes() for n in sorted(os.listdir(d)) if n != "lock"}
    assert listings["script"] == listings["cnish"]
    kept = listings["cnish"]
    assert kept["10.0.0.2"] == b"a\r\neth0" and kept["last_reserved_ip.0"] == b"10.0.0.4"
    assert "10.0.0.3" not in kept and "10.0.0.5" not in kept and "10.0.0.9" not in kept and "last_reserved_ip.1" not in kept


def test_the_scripts_store_waits_for_the_stores_lock(tmp_path):
    """The dry-run script's cnish-store takes the store's lock (the reference's flock on
    DIR/lock) before it writes: while another holder has it, a reservation waits."""
    import fcntl
    import subprocess
    from cnish.paths import templates_dir
    function = os.path.join(templates_dir(), "script", "cnish-store.sh")
    d = tmp_path / "net"
    d.mkdir()
    with open(d / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.Popen(["bash", "-c", 'source "${0%/*}/cnish-trusted-dir.sh"; source "$0"; cnish-store "$@"', function,
                                 "reserve", str(d), "10.0.0.5", "c1", "eth0", "0", "k" * 16])
        try:
            with pytest.raises(subprocess.TimeoutExpired):
                proc.wait(timeout=1)          # still waiting for the lock
            assert not (d / "10.0.0.5").exists()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    assert proc.wait(timeout=30) == 0
    assert (d / "10.0.0.5").read_bytes() == b"c1\r\neth0"
