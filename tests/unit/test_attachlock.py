"""The attachment lock (cnish/attachlock.py): one ADD or DEL of an attachment at a time, held by
the tools they start, its file gone when the operation ends."""

import os
import subprocess
import sys

import pytest

from cnish import attachlock
from cnish.errors import CNIError


@pytest.fixture
def locks(tmp_path, monkeypatch):
    directory = tmp_path / "locks"
    monkeypatch.setenv("CNISH_ATTACHMENT_LOCKS", str(directory))
    monkeypatch.setattr(attachlock, "_held", {})
    return directory


def test_held_then_removed(locks):
    path = attachlock.acquire("net", "ctr1", "eth0")
    assert os.path.exists(path) and oct(os.stat(locks).st_mode & 0o777) == "0o700"
    assert attachlock.acquire("net", "ctr1", "eth0") is None      # (re-entrant: held here)
    other = attachlock.acquire("net", "ctr1", "eth1")              # another attachment
    assert other != path
    attachlock.release(other)
    attachlock.release(path)
    assert os.listdir(locks) == []


def test_a_tool_started_meanwhile_keeps_holding_it(locks, monkeypatch):
    """The descriptor is inherited: a child outliving cnish's process holds the lock."""
    monkeypatch.setattr(attachlock, "WAIT", 0.2)
    path = attachlock.acquire("net", "ctr1", "eth0")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                             close_fds=False)
    try:
        fd = attachlock._held.pop(path)
        os.close(fd)                       # cnish's process gone, its file left (a kill)
        with pytest.raises(CNIError) as info:
            attachlock.acquire("net", "ctr1", "eth0")
        assert info.value.code == 11
    finally:
        child.kill()
        child.wait()
    held = attachlock.acquire("net", "ctr1", "eth0")       # the tool ended: free again
    assert held == path
    attachlock.release(held)


def test_a_killed_tool_left_running_keeps_the_lock_file(locks, monkeypatch):
    """A tool killed at its deadline that has not ended (asleep in the kernel) still holds the
    lock through its inherited descriptor: the engine's release leaves the file, so the next
    ADD or DEL waits for the tool (code 11 after WAIT) instead of making a new file and going
    on beside it (a review's find)."""
    from cnish import runner
    monkeypatch.setattr(attachlock, "WAIT", 0.2)
    path = attachlock.acquire("net", "ctr1", "eth0")
    # (a tool SIGKILL does not end at once cannot be made here: the runner's kill misses)
    real_kill = os.kill
    monkeypatch.setattr(os, "kill", lambda pid, sig: None)
    r = runner.Runner()
    pending = r.start(("sleep", "30"))
    try:
        r.limit(0.1)
        res = pending.wait()
        assert res.returncode == runner.TIMED_OUT and "left running" in res.stderr
        assert r.left_running == 1
        attachlock.release(path, tools_left=r.left_running > 0)
        assert os.path.exists(path)
        with pytest.raises(CNIError) as info:
            attachlock.acquire("net", "ctr1", "eth0")          # the tool holds it still
        assert info.value.code == 11
    finally:
        real_kill(pending.child.pid, 9)
        os.waitpid(pending.child.pid, 0)
    held = attachlock.acquire("net", "ctr1", "eth0")
    assert held == path
    attachlock.release(held)


def test_a_waiter_on_a_removed_file_starts_over(locks):
    """An operation that held the lock removes its file when it ends; another process that
    waited on that file must not go on with a lock nobody else can see: it locks the file
    that is there now."""
    import time
    path = attachlock.acquire("net", "ctr1", "eth0")
    waiter = subprocess.Popen(
        [sys.executable, "-c", "import os, sys; from cnish import attachlock; "
         "p = attachlock.acquire('net', 'ctr1', 'eth0'); "
         "print(os.fstat(attachlock._held[p]).st_ino == os.stat(p).st_ino)"],
        stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    time.sleep(0.5)                      # (the waiter has opened this file and waits on it)
    attachlock.release(path)             # removed: the waiter's lock is on a file gone
    out, _ = waiter.communicate(timeout=30)
    assert out.strip() == "True"


def test_off_or_not_private_means_no_lock(locks, monkeypatch):
    monkeypatch.setenv("CNISH_ATTACHMENT_LOCKS", "off")
    assert attachlock.acquire("net", "ctr1", "eth0") is None
    locks.mkdir(mode=0o777)
    os.chmod(locks, 0o777)
    monkeypatch.setenv("CNISH_ATTACHMENT_LOCKS", str(locks))
    assert attachlock.acquire("net", "ctr1", "eth0") is None


def test_a_lock_file_that_cannot_be_made_is_said(locks, monkeypatch):
    """Without its lock file (a planted link, a full /run) the operation goes on unguarded, as
    without a lock directory, and `refused` says why for the log; it said nothing (an audit)."""
    monkeypatch.setattr(attachlock, "refused", None)
    locks.mkdir(mode=0o700)
    os.symlink("/nonexistent", locks / attachlock.lock_name("net", "ctr1", "eth0"))
    assert attachlock.acquire("net", "ctr1", "eth0") is None
    assert attachlock.refused and "cannot be opened" in attachlock.refused
