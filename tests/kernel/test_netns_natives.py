"""`nsenter --net=PATH CMD` executed in-process (netns.py, runner.py): the command runs inside
the namespace, `sysctl -q -w` writes the namespace's /proc/sys, the runner returns to its own
namespace, and every outcome (output, exit status, error text) is the real nsenter's."""

import contextlib
import os

import pytest

from cnish import natives, netlink, netns
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


# -- sysctls through netlink (netlink.py) ----------------------------------------------------------

@contextlib.contextmanager
def inside(c):
    """This thread in namespace `c` (what the runner does for `nsenter --net=`)."""
    home = runner_module._own_netns_fd()
    netns.enter(f"/var/run/netns/{c}")
    try:
        yield
    finally:
        netns.leave(home)


def proc_sys(key):
    with open("/proc/sys/" + key) as f:
        return f.read().strip()


@pytest.fixture
def probe_ns(lab):
    """A namespace with a veth pair probe0/probe1 whose settings differ from the defaults."""
    c = lab.netns()
    sh("ip", "-n", c, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1")
    sh("ip", "netns", "exec", c, "sysctl", "-q", "-w", "net.ipv4.conf.probe0.arp_notify=1",
       "net.ipv6.conf.probe0.accept_ra=2", "net.ipv6.conf.probe0.accept_dad=0",
       "net.ipv6.conf.probe0.dad_transmits=3", "net.ipv6.conf.probe0.ndisc_notify=1",
       "net.ipv6.conf.probe1.disable_ipv6=1", "net.ipv6.conf.all.forwarding=1",
       "net.ipv4.conf.probe1.forwarding=1")
    return c


def test_every_netlink_sysctl_reads_what_proc_sys_shows(probe_ns):
    keys = ["net/ipv4/ip_forward", "net/ipv4/conf/all/forwarding", "net/ipv6/conf/all/forwarding"]
    for dev in ("probe0", "probe1", "lo"):
        keys += [f"net/ipv4/conf/{dev}/{name}" for name in netlink.IPV4_KEYS]
        keys += [f"net/ipv6/conf/{dev}/{name}" for name in netlink.IPV6_KEYS]
    with inside(probe_ns):
        answers = {key: (netlink.read(key), proc_sys(key)) for key in keys}
    assert all(nl == proc for nl, proc in answers.values()), answers
    # (the settings above made the answers differ between devices and from the defaults)
    assert answers["net/ipv6/conf/probe0/accept_ra"][0] == "2"
    assert answers["net/ipv6/conf/lo/accept_dad"][0] == "-1"
    assert answers["net/ipv6/conf/all/forwarding"][0] == "1"


@pytest.mark.parametrize("key", ["net/ipv4/conf/nosuchif/arp_notify", "net/core/somaxconn",
                                 "net/ipv4/conf/default/arp_notify", "net/ipv6/conf/lo/mtu",
                                 "net/ipv4/conf/lo/../lo/arp_notify"])
def test_keys_netlink_does_not_answer_are_left_to_proc_sys(probe_ns, key):
    with inside(probe_ns):
        assert netlink.read(key) is None


def test_an_alternative_name_is_not_answered_for(probe_ns):
    """The kernel finds a link by its alternative names too; /proc/sys does not."""
    sh("ip", "-n", probe_ns, "link", "property", "add", "dev", "probe0", "altname", "probealt")
    with inside(probe_ns):
        assert netlink.read("net/ipv6/conf/probe0/accept_ra") == "2"
        assert netlink.read("net/ipv6/conf/probealt/accept_ra") is None
        assert not os.path.exists("/proc/sys/net/ipv6/conf/probealt")


def test_the_plans_sysctl_probes_never_look_up_proc_sys_net(probe_ns, monkeypatch):
    """The point of netlink.py: the host's forwarding and accept_ra checks (grep natives) open
    nothing under /proc/sys/net."""
    with inside(probe_ns):
        forwarding = proc_sys("net/ipv4/ip_forward")       # (a new namespace has the host's)
    opened = []

    def refuse(path, *args, **kwargs):
        opened.append(str(path))
        raise AssertionError(f"opened {path}")
    monkeypatch.setattr("builtins.open", refuse)
    with inside(probe_ns):
        assert natives.run(("grep", "-qxF", forwarding, "/proc/sys/net/ipv4/ip_forward"))[0] == 0
        assert natives.run(("grep", "-qxF", "1", "/proc/sys/net/ipv6/conf/all/forwarding"))[0] == 0
        assert natives.run(("grep", "-qxF", "0", "/proc/sys/net/ipv6/conf/probe0/accept_ra"))[0] == 1
    assert opened == []


def test_a_link_name_that_is_not_utf8_is_answered_for(probe_ns):
    """Link names are bytes; /proc shows them as they are, and so does the native grep."""
    sh("ip", "-n", probe_ns, "link", "add", b"br\xff".decode("utf-8", "surrogateescape"),
       "type", "bridge")
    key = "net/ipv4/conf/br\udcff/forwarding"
    with inside(probe_ns):
        assert netlink.read(key) == proc_sys(key)
        assert natives.run(("grep", "-qxF", proc_sys(key), "/proc/sys/" + key))[0] == 0


@pytest.mark.parametrize("value", ["-1", "1\n0"], ids=["option", "two-patterns"])
def test_grep_values_grep_would_read_otherwise_run_the_real_grep(probe_ns, value, spawned):
    argv = ["nsenter", f"--net=/var/run/netns/{probe_ns}",
            "grep", "-qxF", value, "/proc/sys/net/ipv6/conf/lo/accept_dad"]
    native = Runner().run(argv)
    assert "grep" in spawned
    assert outcome(native) == outcome(Runner(use_natives=False).run(argv))


def test_a_sysctl_key_with_repeated_separators_runs_the_real_sysctl(lab, spawned):
    """procps warns about `//` (and still sets the key): the real tool gives that warning."""
    c = lab.netns()
    argv = ["nsenter", f"--net=/var/run/netns/{c}", "sysctl", "-q", "-w",
            "net/ipv4/conf/lo//arp_notify=0"]
    native = Runner().run(argv)
    assert spawned == ["sysctl"]
    assert outcome(native) == outcome(Runner(use_natives=False).run(argv))


# -- nftables tables through netlink (netlink.nft_table_exists, cnish-nft-delete-commented) ----

def nft_tables(c) -> set:
    listed = sh("ip", "netns", "exec", c, "nft", "list", "tables").stdout
    return {tuple(line.split()[1:3]) for line in listed.splitlines() if line.startswith("table")}


def test_nft_table_exists_answers_what_nft_lists(lab):
    c = lab.netns()
    sh("ip", "netns", "exec", c, "nft", "add", "table", "inet", "cni_plugins_masquerade")
    sh("ip", "netns", "exec", c, "nft", "add", "table", "ip6", "t6")
    with inside(c):
        answers = {(family, table): netlink.nft_table_exists(family, table)
                   for family in ("inet", "ip", "ip6", "bridge")
                   for table in ("cni_plugins_masquerade", "t6", "nat")}
        assert netlink.nft_table_exists("nosuchfamily", "t6") is None
    assert {key for key, exists in answers.items() if exists} == nft_tables(c), answers
    assert all(exists is False for key, exists in answers.items() if key not in nft_tables(c))


def test_deleting_commented_rules_of_a_missing_table_starts_no_nft(lab, spawned):
    """DEL with ipMasqBackend iptables also removes nftables masquerade rules: on a host without
    that table it costs no process, and the outcome is the script function's (nft's)."""
    c = lab.netns()
    argv = ["nsenter", f"--net=/var/run/netns/{c}", "cnish-nft-delete-commented", "inet",
            "cni_plugins_masquerade", "masq_checks", "some comment"]
    assert outcome(Runner().run(argv)) == (0, "", "")
    assert spawned == []
    sh("ip", "netns", "exec", c, "nft", "add", "table", "inet", "cni_plugins_masquerade")
    sh("ip", "netns", "exec", c, "nft", "add", "chain", "inet", "cni_plugins_masquerade",
       "masq_checks")
    sh("ip", "netns", "exec", c, "nft", "add", "rule", "inet", "cni_plugins_masquerade",
       "masq_checks", "ip", "saddr", "10.1.2.3", "masquerade", "comment", '"some comment"')
    assert outcome(Runner().run(argv)) == (0, "", "")
    assert spawned == ["nft", "nft"]                # the listing, then the deletion
    listed = sh("ip", "netns", "exec", c, "nft", "list", "chain", "inet",
                "cni_plugins_masquerade", "masq_checks").stdout
    assert "10.1.2.3" not in listed


FUNCTIONS = os.path.join(os.path.dirname(__file__), "..", "..", "templates", "script")


@pytest.mark.parametrize("how", ["native", "script"])
def test_deleting_the_newest_commented_rule_of_an_address_keeps_the_older_ones(lab, how):
    """The undo of the rule one nftables masquerade step added: of the rules carrying the
    comment, only the newest whose listing has `ip saddr 10.1.2.3 ` (an identical older rule,
    from the attachment an ADD repeated by mistake, and another address's rule stay); the
    dry-run script's function does the same as cnish's native."""
    c = lab.netns()
    nft = ("ip", "netns", "exec", c, "nft")
    sh(*nft, "add", "table", "inet", "t")
    sh(*nft, "add", "chain", "inet", "t", "masq")
    for source in ("10.1.2.3", "10.1.2.30", "10.1.2.3"):
        sh(*nft, "add", "rule", "inet", "t", "masq", "ip", "saddr", source, "masquerade",
           "comment", '"c 1"')

    def handles():
        listed = sh(*nft, "-a", "list", "chain", "inet", "t", "masq").stdout
        return [(l.split()[2], int(l.rsplit("# handle ", 1)[1])) for l in listed.splitlines()
                if "# handle" in l and "saddr" in l]
    first = handles()
    args = ["inet", "t", "masq", "c 1", "ip saddr 10.1.2.3 "]
    if how == "native":
        res = Runner().run(["nsenter", f"--net=/var/run/netns/{c}",
                            "cnish-nft-delete-commented", *args])
        assert outcome(res) == (0, "", "")
    else:
        script = os.path.join(FUNCTIONS, "cnish-nft-delete-commented.sh")
        sh("ip", "netns", "exec", c, "bash", "-c",
           f'source "{script}" && cnish-nft-delete-commented "$@"', "-", *args)
    assert handles() == first[:2]               # the newest 10.1.2.3 rule only


@pytest.mark.parametrize("argv", [("cnish-store",), ("cnish-store", "bogus"),
                                  ("cnish-dad-wait", "/x", "eth0", "ten"),
                                  ("cnish-foreign-veth", "only-one")])
def test_cnish_commands_it_cannot_run_in_process_fail_saying_why(argv):
    """cnish's own commands exist only in-process and as the dry-run script's functions; an
    argument shape natives.py does not take was executed from PATH, where nothing of that name
    is installed: exit status 127, "not found" (a code review). They now fail with status 2
    and name the command."""
    from cnish import natives
    rc, out, err = natives.run(argv)
    assert rc == 2 and out == "" and err.startswith(f"{argv[0]}: cannot run"), err
    assert natives.run(("test", "-z", "x")) is None          # (real tools still run for real)
