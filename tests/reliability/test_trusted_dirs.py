"""The directories cnish keeps root's state in (cnish/trusteddirs.py): made with fixed modes
whatever the umask, and used only when no other user can swap a file in them, or them.

A security audit, as an unprivileged user: under umask 000, cnish made /run/cnish, the result
cache's parents and the store's parents world-writable; with /run/cnish writable, a user
swapped the plan cache directory for their own between cnish's check and its read (root ran
their commands) and planted links where the kernel-kind cache wrote (root overwrote a file of
their choosing); `cnish install`'s launcher was writable by anyone while it was written; a
log file another user made first was written to."""

import json
import os
import stat
import subprocess

import pytest

from cnish import attachlock, install, kernel, libcni, log, plancache, store, trusteddirs
from cnish.errors import IO_FAILURE, IPAM_FAILED, CNIError

NOBODY = 65534


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def umask_000():
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.fixture
def base(tmp_path):
    """A directory of root's own (tmp_path's parents are root's and not writable by others,
    or /tmp, sticky)."""
    d = tmp_path / "base"
    d.mkdir(mode=0o755)
    return d


def test_make_gives_every_level_a_fixed_mode_whatever_the_umask(base, umask_000):
    assert trusteddirs.make(str(base / "a" / "b" / "c"), 0o700) is None
    assert [mode(base / "a"), mode(base / "a" / "b"), mode(base / "a" / "b" / "c")] == \
        [0o755, 0o755, 0o700]


@pytest.mark.parametrize("parent_mode,trusted", [(0o755, True), (0o775, False), (0o777, False),
                                                 (0o1777, True)])
def test_a_directory_above_that_others_can_write_to_is_not_trusted(base, parent_mode, trusted):
    """Sticky (as /tmp): others cannot rename or remove what is not theirs there."""
    (base / "p").mkdir()
    (base / "p" / "d").mkdir(mode=0o700)
    os.chmod(base / "p", parent_mode)
    assert trusteddirs.trusted(str(base / "p" / "d")) is trusted


def test_the_directory_itself_must_be_this_users_and_not_writable_by_others(base):
    (base / "d").mkdir(mode=0o700)
    assert trusteddirs.trusted(str(base / "d"))
    os.chmod(base / "d", 0o1777)
    assert not trusteddirs.trusted(str(base / "d"))
    os.chmod(base / "d", 0o700)
    os.chown(base / "d", NOBODY, NOBODY)
    assert not trusteddirs.trusted(str(base / "d"))
    assert trusteddirs.make(str(base / "d" / "sub"), 0o700) == f"{base / 'd'} is owned by another user"
    (base / "f").write_text("")
    assert not trusteddirs.trusted(str(base / "f"))
    assert not trusteddirs.trusted(str(base / "missing"))


def test_symlinks_are_followed_only_through_directories_no_one_else_can_write(base):
    (base / "real").mkdir(mode=0o700)
    os.symlink("real", base / "link")                 # in a trusted directory: fine
    assert trusteddirs.trusted(str(base / "link"))
    (base / "open").mkdir(mode=0o777)
    os.chmod(base / "open", 0o777)
    os.symlink(str(base / "real"), base / "open" / "link")   # another user could repoint it
    assert not trusteddirs.trusted(str(base / "open" / "link"))
    (base / "open" / "target").mkdir(mode=0o700)
    os.symlink(str(base / "open" / "target"), base / "to-open")  # leads through an open one
    assert not trusteddirs.trusted(str(base / "to-open"))
    os.symlink("loop", base / "loop")
    assert not trusteddirs.trusted(str(base / "loop"))


def test_the_plan_cache_is_neither_read_nor_written_under_a_directory_others_can_write(base):
    (base / "open").mkdir()
    os.chmod(base / "open", 0o777)
    plans = str(base / "open" / "plans")
    plancache._store(plans, "k" * 64, {"sources": [], "value": [["/bin/true"]]})
    assert not os.path.exists(plans)
    os.mkdir(plans, 0o700)
    with open(os.path.join(plans, "k" * 64 + ".json"), "w") as f:
        json.dump({"sources": [], "value": [["/bin/true"]]}, f)
    assert not plancache._trusted(plans)             # (so _cached renders instead)
    os.chmod(base / "open", 0o755)
    assert plancache._trusted(plans)


def test_the_attachment_locks_are_not_taken_in_a_directory_others_can_write(
        base, monkeypatch, umask_000):
    (base / "open").mkdir()
    os.chmod(base / "open", 0o777)
    monkeypatch.setenv("CNISH_ATTACHMENT_LOCKS", str(base / "open" / "locks"))
    assert attachlock._directory() is None
    monkeypatch.setenv("CNISH_ATTACHMENT_LOCKS", str(base / "run" / "locks"))
    assert attachlock._directory() == str(base / "run" / "locks")
    assert mode(base / "run") == 0o755 and mode(base / "run" / "locks") == 0o700


def test_the_kernel_kind_answer_is_written_privately_and_read_only_from_roots_directory(
        base, monkeypatch, umask_000):
    cache = base / "kernel"
    monkeypatch.setattr(kernel, "CACHE", str(cache))
    kernel._remember("macvlan")
    assert kernel._remembered("macvlan")
    assert mode(cache) == 0o700 and mode(cache / "macvlan") == 0o600
    assert os.listdir(cache) == ["macvlan"]          # (no temporary file left)
    os.chown(cache, NOBODY, NOBODY)                    # another user's answers are none
    assert not kernel._remembered("macvlan")
    victim = base / "victim"
    victim.write_text("precious")
    os.chown(cache, 0, 0)
    for pid in range(os.getpid() - 5, os.getpid() + 5):   # the names it once wrote through
        os.symlink(victim, cache / f".macvlan.{pid}")
    kernel._remember("macvlan")
    assert victim.read_text() == "precious"
    assert kernel._remembered("macvlan")


@pytest.mark.parametrize("where", ["open-parent", "others-data-dir"])
def test_a_store_another_user_could_swap_is_refused(base, where):
    (base / "d").mkdir()
    data_dir = base / "d" / "cni"
    data_dir.mkdir()
    if where == "open-parent":
        os.chmod(base / "d", 0o777)
    else:
        os.chown(data_dir, NOBODY, NOBODY)
    s = store.Store(str(data_dir), "net")
    with pytest.raises(CNIError) as caught:
        s.acquire()
    assert caught.value.code == IPAM_FAILED and "another user" in caught.value.details
    assert str(base / "d") in caught.value.details or str(data_dir) in caught.value.details
    assert os.listdir(data_dir) == []


def test_the_store_and_its_parents_are_made_0755_whatever_the_umask(base, umask_000):
    with store.Store(str(base / "var" / "lib" / "cni"), "net") as s:
        assert s.reserve("10.0.0.2", "c1", "eth0", 0)
    assert {mode(base / "var"), mode(base / "var" / "lib"), mode(base / "var" / "lib" / "cni"),
            mode(base / "var" / "lib" / "cni" / "net")} == {0o755}


def test_the_result_cache_is_not_used_under_a_directory_others_can_write(base, umask_000):
    fresh = base / "fresh" / "cni"
    libcni.write_cache(str(fresh), b"{}", "net", "c1", "eth0", "/run/netns/x", {}, {}, {})
    assert mode(base / "fresh") == 0o755 and mode(fresh) == 0o755
    assert mode(fresh / "results") == 0o700
    os.chmod(base / "fresh", 0o777)
    with pytest.raises(CNIError) as caught:
        libcni.write_cache(str(fresh), b"{}", "net", "c2", "eth0", "/run/netns/x", {}, {}, {})
    assert caught.value.code == IO_FAILURE
    with pytest.raises(ValueError):
        libcni.read_cache_entry(str(fresh), "net", "c1", "eth0")
    with pytest.raises(CNIError) as caught:            # (GC would remove every attachment)
        libcni.cached_attachments(str(fresh), "net")
    assert caught.value.code == IO_FAILURE and "writable by other users" in caught.value.details
    os.chmod(base / "fresh", 0o755)
    assert libcni.cached_attachments(str(fresh), "net") == [("c1", "eth0")]


def test_a_log_file_another_user_made_is_not_written(base):
    path = base / "cnish.log"
    path.write_text("")
    os.chown(path, NOBODY, NOBODY)
    errors = []
    out = log.Log(str(path), "test", stderr=None)
    out.error = errors.append
    out.write("a line")
    assert path.read_text() == "" and "another user" in errors[0]
    os.chown(path, 0, 0)
    os.chmod(path, 0o666)
    out = log.Log(str(path), "test", stderr=None)
    out.error = errors.append
    out.write("a line")
    assert path.read_text() == "" and "writable by other users" in errors[1]


def test_install_writes_the_launcher_privately_and_refuses_an_open_directory(base, umask_000):
    made = install.install(str(base / "opt" / "cni" / "bin"), ["bridge"])
    launcher = base / "opt" / "cni" / "bin" / "cnish"
    assert made[0] == str(launcher) and mode(launcher) == 0o755
    assert mode(base / "opt") == 0o755 and mode(base / "opt" / "cni" / "bin") == 0o755
    assert sorted(os.listdir(launcher.parent)) == ["bridge", "cnish"]
    os.chmod(base / "opt" / "cni", 0o777)
    with pytest.raises(PermissionError):
        install.install(str(base / "opt" / "cni" / "bin"))
    os.chmod(base / "opt" / "cni", 0o755)
    os.unlink(launcher)
    launcher.mkdir()                                   # the rename fails: no file is left
    with pytest.raises(OSError):
        install.install(str(base / "opt" / "cni" / "bin"))
    assert sorted(os.listdir(launcher.parent)) == ["bridge", "cnish"]


def test_the_scripts_store_refuses_a_store_another_user_could_swap(base):
    from cnish.paths import templates_dir
    function = os.path.join(templates_dir(), "script", "cnish-store.sh")
    data_dir = base / "cni"
    data_dir.mkdir()
    os.chmod(data_dir, 0o777)

    def run(*args):
        return subprocess.run(["bash", "-c", 'source "${0%/*}/cnish-trusted-dir.sh"; source "$0"; cnish-store "$@"', function, *args],
                              capture_output=True, text=True)
    proc = run("reserve", str(data_dir / "net"), "10.0.0.5", "c1", "eth0", "0", "k" * 16)
    assert proc.returncode == 1 and "another user" in proc.stderr
    assert os.listdir(data_dir) == []
    os.chmod(data_dir, 0o755)
    proc = run("reserve", str(data_dir / "net"), "10.0.0.5", "c1", "eth0", "0", "k" * 16)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def rootless(tmp_path):
    """Run trusteddirs as root of a user namespace that an unprivileged user (nobody) made, as
    rootless podman runs its CNI plugins: the host's directories show as owned by the
    overflow uid there. A directory in /run (not under /tmp: see below) that nobody can
    reach, holding a copy of trusteddirs.py (it imports only os and stat), removed after."""
    import shutil
    import sys
    import tempfile
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    top = tempfile.mkdtemp(prefix="cnish-test-userns-", dir="/run")
    os.chmod(top, 0o755)
    shutil.copy(trusteddirs.__file__, top)
    os.chmod(os.path.join(top, "trusteddirs.py"), 0o644)

    def probe(path: str) -> str:
        proc = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
             "unshare", "--user", "--map-root-user", python, "-c",
             "import sys; sys.path.insert(0, sys.argv[1]); import trusteddirs; "
             "print(trusteddirs.refusal(sys.argv[2]))", top, path],
            capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()
    yield top, probe
    shutil.rmtree(top)


def test_in_a_user_namespace_the_hosts_unmapped_directories_count_as_roots(rootless, base):
    """Above the namespace's own directories, the host's (root's, shown unmapped) count as
    root's: refusing them refused every store there. Not below one of its own, and not in a
    directory others can write to (a sticky /tmp: another host user's directory there shows
    as unmapped too); in the initial namespace, 65534 is a real user, nobody, and a directory
    of theirs on the path does not count."""
    top, probe = rootless
    state = os.path.join(top, "state")              # the namespace's root's (host nobody's)
    os.mkdir(state, 0o755)
    os.mkdir(os.path.join(state, "plans"), 0o700)
    for d in (state, os.path.join(state, "plans")):
        os.chown(d, NOBODY, NOBODY)
    assert probe(os.path.join(state, "plans")) == "None"
    hosts = os.path.join(state, "hosts")              # a host user's below its own
    os.mkdir(hosts, 0o755)
    os.mkdir(os.path.join(hosts, "plans"), 0o700)
    os.chown(os.path.join(hosts, "plans"), NOBODY, NOBODY)
    assert "owned by another user" in probe(os.path.join(hosts, "plans"))
    sticky = os.path.join(top, "sticky")              # as /tmp: another host user's there
    os.mkdir(sticky)
    os.chmod(sticky, 0o1777)
    os.mkdir(os.path.join(sticky, "theirs"), 0o755)
    os.chown(os.path.join(sticky, "theirs"), 1234, 1234)
    os.mkdir(os.path.join(sticky, "theirs", "plans"), 0o700)
    os.chown(os.path.join(sticky, "theirs", "plans"), NOBODY, NOBODY)
    assert probe(os.path.join(sticky, "theirs", "plans")) == \
        f"{sticky}/theirs is owned by another user"
    nobodys = base / "nobodys"                         # the initial namespace
    nobodys.mkdir(mode=0o755)
    os.chown(nobodys, NOBODY, NOBODY)
    (nobodys / "mine").mkdir(mode=0o700)
    assert trusteddirs.refusal(str(nobodys / "mine")) == f"{nobodys} is owned by another user"


def test_a_symlink_another_user_owns_in_a_sticky_directory_is_not_followed(base):
    """Its owner can rename another link over it (the review of the first version raced one
    in and had root load a plan of its choosing): only root's is followed there, as the
    kernel's fs.protected_symlinks would (which may be off)."""
    sticky = base / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    (base / "real").mkdir(mode=0o700)
    os.symlink(str(base / "real"), sticky / "link")
    assert trusteddirs.trusted(str(sticky / "link"))          # root's link: fine
    os.lchown(sticky / "link", NOBODY, NOBODY)
    assert trusteddirs.refusal(str(sticky / "link")) == \
        f"{sticky / 'link'} is a symlink another user owns"


def test_the_stores_reads_check_the_directory_too(base):
    """DEL, GC and CHECK read the store without taking its lock: they checked nothing, so
    reservations forged under a directory others can write made GC and DEL act on addresses
    of another user's choosing (found by a review). A missing store is fine: it has none."""
    (base / "open").mkdir()
    store_dir = base / "open" / "cni" / "net"
    store_dir.mkdir(parents=True)
    (store_dir / "10.0.0.5").write_text("victim\r\neth9")
    os.chmod(base / "open", 0o777)
    s = store.Store(str(base / "open" / "cni"), "net")
    with pytest.raises(CNIError) as caught:
        s.owned("victim", "eth9")
    assert caught.value.code == IPAM_FAILED and "writable by other users" in caught.value.details
    with pytest.raises(CNIError):
        store.Store(str(base / "open" / "cni"), "net").files()
    os.chmod(base / "open", 0o755)
    assert store.Store(str(base / "open" / "cni"), "net").owned("victim", "eth9") == ["10.0.0.5"]
    assert store.Store(str(base / "missing"), "net").files() == {}


def test_files_another_user_owns_are_not_read(base, monkeypatch):
    """Planted while a directory was still open (before `chmod go-w`), they would be trusted
    afterwards: a plan, a reservation, a kernel answer, a cache entry."""
    plans = base / "plans"
    plans.mkdir(mode=0o700)
    (plans / "k.json").write_text(json.dumps({"sources": [], "value": [["/bin/true"]]}))
    assert plancache._load(str(plans), "k") is not None
    os.chown(plans / "k.json", NOBODY, NOBODY)
    assert plancache._load(str(plans), "k") is None
    (base / "cni" / "net").mkdir(parents=True)
    (base / "cni" / "net" / "10.0.0.5").write_text("victim\r\neth9")
    os.chown(base / "cni" / "net" / "10.0.0.5", NOBODY, NOBODY)
    assert store.Store(str(base / "cni"), "net")._read("10.0.0.5") is None
    monkeypatch.setattr(kernel, "CACHE", str(base / "kernel"))
    kernel._remember("macvlan")
    os.chown(base / "kernel" / "macvlan", NOBODY, NOBODY)
    assert not kernel._remembered("macvlan")
    libcni.write_cache(str(base / "c"), b"{}", "net", "c1", "eth0", "/run/netns/x", {}, {}, {})
    os.chown(libcni.cache_path(str(base / "c"), "net", "c1", "eth0"), NOBODY, NOBODY)
    with pytest.raises(ValueError):
        libcni.read_cache_entry(str(base / "c"), "net", "c1", "eth0")


def test_a_cache_entry_is_not_removed_from_a_directory_others_can_write(base):
    """`cnish del` unlinked the entry by path: a symlinked `results` there made root remove
    a file of that name anywhere (found by a review)."""
    libcni.write_cache(str(base / "c"), b"{}", "net", "c1", "eth0", "/run/netns/x", {}, {}, {})
    os.chmod(base / "c", 0o777)
    with pytest.raises(CNIError) as caught:
        libcni.remove_cache(str(base / "c"), "net", "c1", "eth0")
    assert caught.value.code == IO_FAILURE
    assert os.path.exists(libcni.cache_path(str(base / "c"), "net", "c1", "eth0"))
    os.chmod(base / "c", 0o755)
    libcni.remove_cache(str(base / "c"), "net", "c1", "eth0")
    assert not os.path.exists(libcni.cache_path(str(base / "c"), "net", "c1", "eth0"))


def test_the_scripts_walk_decides_as_cnish_does(base):
    """cnish-trusted-dir, the dry-run script's walk, against trusteddirs on the same paths:
    it checked only the last one or two directories (a review raced a lock file through a
    0777 directory above)."""
    from cnish.paths import templates_dir
    function = os.path.join(templates_dir(), "script", "cnish-trusted-dir.sh")

    def script(path):
        proc = subprocess.run(["bash", "-c", 'source "$0"; cnish-trusted-dir "$1"', function,
                               path], capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else None
    (base / "a" / "b" / "c").mkdir(parents=True)
    (base / "sticky").mkdir()
    os.chmod(base / "sticky", 0o1777)
    os.symlink(str(base / "a" / "b"), base / "sticky" / "roots")
    os.symlink(str(base / "a" / "b"), base / "sticky" / "theirs")
    os.lchown(base / "sticky" / "theirs", NOBODY, NOBODY)
    os.symlink("a/b/../b/c", base / "rel")
    cases = [base / "a" / "b" / "c", base / "sticky" / "roots" / "c",
             base / "sticky" / "theirs" / "c", base / "rel", base / "missing", base / "sticky"]
    for mode_a in (0o755, 0o777, 0o1777):
        os.chmod(base / "a", mode_a)
        for path in cases:
            expected = trusteddirs.trusted(str(path))
            assert (script(str(path)) is not None) == expected, (oct(mode_a), path, expected)
    os.chmod(base / "a", 0o755)
    assert script(str(base / "rel")) == str(base / "a" / "b" / "c")      # the physical path
