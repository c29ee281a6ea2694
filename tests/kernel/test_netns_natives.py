"""`nsenter --net=PATH CMD` executed in-process (netns.py, runner.py): the command runs inside
the namespace, `sysctl -q -w` writes the namespace's /proc/sys, the runner returns to its own
namespace, and every outcome (output, exit status, error text) is the real nsenter's."""

import os

import pytest

from cnish import runner as runner_module
from cnish.runner import Runner
from lab import sh

pytestmark = pytest.mark.kernel


@pytest.fixture
def spawned(monkeypatch):
    """The programs the runner really starts."""
    programs = []
    real = runner_module.Child.__init__

    def record(self, program, argv, stdin, env):
        programs.append(os.path.basename(program))
        real(self, program, argv, stdin, env)
    monkeypatch.setattr(runner_module.Child, "__init__", record)
    return programs


def outcome(res):
    return res.returncode, res.stdout, res.stderr


def test_command_runs_inside_without_nsenter_and_the_runner_comes_back(lab, spawned):
    c = lab.netns()
    path = f"/var/run/netns/{c}"
    home = os.readlink("/proc/self/ns/net")
    sh("ip", "-n", c, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1")
    native = Runner().run(["nsenter", f"--net={path}", "ip", "-o", "link", "show", "probe0"])
    assert os.readlink("/proc/self/ns/net") == home
    assert spawned == ["ip"]
    real = Runner(use_natives=False).run(["nsenter", f"--net={path}", "ip", "-o", "link", "show",
                                           "probe0"])
    assert spawned == ["ip", "nsenter"]
    assert native.returncode == 0 and "probe0@probe1" in native.stdout
    assert outcome(native) == outcome(real)
    assert native.argv[:2] == ("nsenter", f"--net={path}")            # logged as planned


def test_batch_input_reaches_the_command_inside(lab, spawned):
    c = lab.netns()
    res = Runner().run(["nsenter", f"--net=/var/run/netns/{c}", "ip", "-batch", "-"],
                       "link add probe0 type veth peer name probe1\nlink set probe0 up\n")
    assert res.returncode == 0, res.stderr
    assert "probe0" in sh("ip", "-n", c, "-o", "link", "show", "up").stdout
    assert "probe0" not in sh("ip", "-o", "link").stdout
    assert spawned == ["ip"]


def test_sysctl_is_written_in_the_namespace_only(lab, spawned):
    c = lab.netns()
    host_value = sh("sysctl", "-n", "net.ipv4.conf.lo.arp_notify").stdout
    res = Runner().run(["nsenter", f"--net=/var/run/netns/{c}", "sysctl", "-q", "-w",
                        "net/ipv4/conf/lo/arp_notify=1", "net/ipv6/conf/lo/accept_dad=0"])
    assert outcome(res) == (0, "", "")
    assert spawned == []
    assert sh("ip", "netns", "exec", c, "sysctl", "-n", "net.ipv4.conf.lo.arp_notify").stdout == "1\n"
    assert sh("sysctl", "-n", "net.ipv4.conf.lo.arp_notify").stdout == host_value


@pytest.mark.parametrize("settings", [
    ["net/ipv4/conf/nosuchif/arp_notify=1"],                      # missing key
    ["net/ipv4/conf/lo/arp_notify=notanumber"],                   # value the kernel refuses
    ["net/ipv4/conf/nosuchif/arp_notify=1", "net/ipv4/conf/lo/arp_notify=1"],   # one of two
], ids=["missing", "invalid", "one-of-two"])
def test_sysctl_failures_match_procps(lab, settings):
    c = lab.netns()
    argv = ["nsenter", f"--net=/var/run/netns/{c}", "sysctl", "-q", "-w", *settings]
    native = Runner().run(argv)
    real = Runner(use_natives=False).run(argv)
    assert native.returncode == real.returncode == 1
    assert native.stderr == real.stderr


@pytest.mark.parametrize("target", ["/var/run/netns/cnish-no-such-netns", "/etc/hostname",
                                    "/proc/self/ns/uts"], ids=["missing", "file", "other-ns"])
def test_a_path_that_cannot_be_entered_gets_the_real_nsenter(target, spawned):
    home = os.readlink("/proc/self/ns/net")
    argv = ["nsenter", f"--net={target}", "ip", "link", "show", "lo"]
    native = Runner().run(argv)
    assert spawned == ["nsenter"]
    assert os.readlink("/proc/self/ns/net") == home
    assert outcome(native) == outcome(Runner(use_natives=False).run(argv))
    assert native.returncode != 0


def test_a_wrapper_earlier_in_path_is_executed(lab, tmp_path, spawned):
    c = lab.netns()
    (tmp_path / "nsenter").write_text('#!/bin/sh\necho "wrapped $*"\n')
    (tmp_path / "nsenter").chmod(0o755)
    res = Runner(path=str(tmp_path)).run(["nsenter", f"--net=/var/run/netns/{c}", "true"])
    assert res.stdout == f"wrapped --net=/var/run/netns/{c} true\n"
    assert spawned == ["nsenter"]


def test_only_a_command_that_names_dev_fd_3_gets_the_own_namespace_there():
    """host-device moves a link back to /dev/fd/3, the runtime's namespace kept open by the
    runner; every other command (delegated IPAM plugins included) starts without that
    descriptor."""
    home = os.readlink("/proc/self/ns/net")
    named = Runner().run(["readlink", "/dev/fd/3"])
    assert named.returncode == 0 and named.stdout.strip() == home
    batch = Runner().run(["sh", "-c", "readlink /proc/$$/fd/3 || echo none"],    # ip -batch
                         stdin="link set dev net1 netns /dev/fd/3 name hd9\n")
    assert batch.stdout.strip() == home, batch.stdout
    other = Runner().run(["sh", "-c", "readlink /proc/$$/fd/3 || echo none"])
    assert other.stdout.strip() == "none", other.stdout
