"""procsys.py: every /proc/sys file the natives open goes through cnish's own procfs root when
there is one, and through the machine's /proc when there is none. The root is replaced here by
a directory laid out like procfs, so the test sees which tree was read and written; the kernel
tests (tests/kernel/test_netns_natives.py) do the same against real procfs instances."""

import os

import pytest

from cnish import libc, natives, netns, procsys


@pytest.fixture
def fake_root(tmp_path, monkeypatch):
    (tmp_path / "sys/net/ipv4/conf/eth0").mkdir(parents=True)
    (tmp_path / "sys/net/ipv4/ip_forward").write_text("1\n")
    (tmp_path / "sys/net/ipv4/conf/eth0/arp_notify").write_text("0\n")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    monkeypatch.setattr(procsys, "_root", [fd])
    yield tmp_path
    os.close(fd)


def test_probes_read_through_the_private_root(fake_root):
    assert natives.run(("grep", "-qxF", "1", "/proc/sys/net/ipv4/ip_forward")) == (0, "", "")
    (fake_root / "sys/net/ipv4/ip_forward").write_text("0\n")
    assert natives.run(("grep", "-qxF", "1", "/proc/sys/net/ipv4/ip_forward")) == (1, "", "")
    status, _, err = natives.run(("grep", "-qxF", "1", "/proc/sys/net/ipv4/nosuch"))
    assert status == 2 and "/proc/sys/net/ipv4/nosuch" in err        # grep's message, grep's path


def test_sysctl_writes_go_to_the_private_root(fake_root):
    done = netns.sysctl_write(["sysctl", "-q", "-w", "net/ipv4/conf/eth0/arp_notify=1"])
    assert done == (0, "", "")
    assert (fake_root / "sys/net/ipv4/conf/eth0/arp_notify").read_text() == "1\n"
    status, _, err = netns.sysctl_write(["sysctl", "-q", "-w", "net/ipv4/conf/eth9/arp_notify=1"])
    assert status == 1
    assert err == ("sysctl: cannot stat /proc/sys/net/ipv4/conf/eth9/arp_notify: "
                   "No such file or directory\n")


def test_other_files_are_read_where_they_are(fake_root, tmp_path_factory):
    other = tmp_path_factory.mktemp("other") / "value"
    other.write_text("yes\n")
    assert natives.run(("grep", "-qxF", "yes", str(other))) == (0, "", "")


@pytest.mark.parametrize("path,key", [
    ("/proc/sys/net/ipv4/ip_forward", "net/ipv4/ip_forward"),
    ("/proc/sys/net/ipv6/conf/cni0/accept_ra", "net/ipv6/conf/cni0/accept_ra"),
    ("/proc/sys/net/../../self/environ", None),
    ("/proc/sys/./net/ipv4/ip_forward", None),
    ("/proc/sys//net/ipv4/ip_forward", None),
    ("/proc/sys/", None),
    ("/proc/sysrq-trigger", None),
    ("/sys/class/net/cni0/bridge", None),
])
def test_only_plain_proc_sys_paths_are_redirected(path, key):
    assert procsys.key_of(path) == key


def test_without_fsopen_the_machine_proc_is_used(monkeypatch):
    monkeypatch.setattr(procsys, "_root", [])
    real = libc.function
    monkeypatch.setattr(libc, "function", lambda name: None if name == "fsopen" else real(name))
    assert procsys.root() is None
    fd = procsys.open_key("kernel/ostype", os.O_RDONLY)
    try:
        assert os.read(fd, 100) == b"Linux\n"
    finally:
        os.close(fd)
