"""host-local IPAM: range validation, round-robin allocation, the shared store format."""

import os
import stat

import pytest

from cnish import store
from cnish.errors import IPAM_FAILED, CNIError
from cnish.plugins import hostlocal
from lab import operation


def conf(tmp_path, ranges=None, **ipam):
    ipam = dict({"type": "host-local", "dataDir": str(tmp_path)}, **ipam)
    if ranges is not None:
        ipam["ranges"] = ranges
    return {"cniVersion": "1.0.0", "name": "net1", "type": "host-local", "ipam": ipam}


def allocate(tmp_path, raw, cid="c1", ifname="eth0", args=""):
    """Allocate and reserve like an ADD does (allocation + the reserve steps)."""
    op = operation(raw, cid=cid, ifname=ifname, args=args, dry_run=False)
    att, result = hostlocal.ipam_add(op)
    try:
        for r in att["reservations"]:
            assert store.Store(tmp_path, "net1").reserve(r["ip"], cid, ifname, r["set"])
    finally:
        store.drop_locks()
    return [ip["address"] for ip in result["ips"]], result


def test_reference_defaults_and_round_robin(tmp_path):
    raw = conf(tmp_path, [[{"subnet": "10.99.0.0/29"}]])
    got = [allocate(tmp_path, raw, cid=f"c{i}")[0][0] for i in range(5)]
    # .1 is the gateway, .7 the broadcast: .2 .. .6 are handed out in order
    assert got == ["10.99.0.2/29", "10.99.0.3/29", "10.99.0.4/29", "10.99.0.5/29", "10.99.0.6/29"]
    with pytest.raises(CNIError) as info:
        allocate(tmp_path, raw, cid="c9")
    assert "no IP addresses available in range set: 10.99.0.1-10.99.0.6" in info.value.msg
    # release .2 and the next one continues round-robin from the last reserved (.6): wraps to .2
    store.Store(str(tmp_path), "net1").release("c0", "eth0")
    assert allocate(tmp_path, raw, cid="c10")[0] == ["10.99.0.2/29"]


def test_store_format_matches_reference(tmp_path):
    raw = conf(tmp_path, [[{"subnet": "10.99.0.0/24"}], [{"subnet": "fd99::/120"}]])
    addrs, result = allocate(tmp_path, raw, cid="ctrA")
    assert addrs == ["10.99.0.2/24", "fd99::2/120"]
    d = tmp_path / "net1"
    assert (d / "10.99.0.2").read_bytes() == b"ctrA\r\neth0"
    assert (d / "fd99::2").read_bytes() == b"ctrA\r\neth0"
    assert (d / "last_reserved_ip.0").read_bytes() == b"10.99.0.2"
    assert (d / "last_reserved_ip.1").read_bytes() == b"fd99::2"
    assert stat.S_IMODE(os.stat(d / "10.99.0.2").st_mode) == 0o600
    assert result["ips"][0]["gateway"] == "10.99.0.1"


def test_duplicate_allocation_refused(tmp_path):
    raw = conf(tmp_path, [[{"subnet": "10.99.0.0/24"}]])
    allocate(tmp_path, raw)
    with pytest.raises(CNIError) as info:
        allocate(tmp_path, raw)
    assert "duplicate allocation is not allowed" in info.value.msg
    assert allocate(tmp_path, raw, ifname="eth1")[0] == ["10.99.0.3/24"]


def test_requested_addresses(tmp_path):
    raw = conf(tmp_path, [[{"subnet": "10.99.0.0/24"}]])
    assert allocate(tmp_path, raw, args="IP=10.99.0.50")[0] == ["10.99.0.50/24"]
    with pytest.raises(CNIError) as info:
        allocate(tmp_path, raw, cid="c2", args="IP=10.99.0.50")
    assert "not available" in info.value.msg
    with pytest.raises(CNIError) as info:
        allocate(tmp_path, raw, cid="c3", args="IP=10.99.0.1")
    assert "gateway" in info.value.msg
    with pytest.raises(CNIError) as info:
        allocate(tmp_path, raw, cid="c4", args="IP=10.1.1.1")
    assert "failed to allocate all requested IPs" in info.value.msg
    raw2 = dict(raw, runtimeConfig={"ips": ["10.99.0.60/24"]})
    assert allocate(tmp_path, raw2, cid="c5")[0] == ["10.99.0.60/24"]
    # one requested address per range set, each with its own range's prefix and gateway
    raw4 = conf(tmp_path, [[{"subnet": "10.99.0.0/24"}], [{"subnet": "10.98.0.0/16"}]])
    raw4["runtimeConfig"] = {"ips": ["10.99.0.80", "10.98.3.4"]}
    got, result = allocate(tmp_path, raw4, cid="c7")
    assert got == ["10.99.0.80/24", "10.98.3.4/16"]
    assert [ip["gateway"] for ip in result["ips"]] == ["10.99.0.1", "10.98.0.1"]
    # two requested addresses in one range set: one address per set, so the second is refused
    # (as the reference does), and nothing is reserved
    with pytest.raises(CNIError) as info:
        allocate(tmp_path, dict(raw, runtimeConfig={"ips": ["10.99.0.90", "10.99.0.91"]}),
                 cid="c8")
    assert info.value.code == IPAM_FAILED
    assert info.value.msg == "failed to allocate all requested IPs: 10.99.0.91"
    # (the detail says why: both lie in the set; it said they lay in none before, an audit's find)
    assert info.value.details == ("10.99.0.90 and 10.99.0.91 were both asked for in range set "
                                  "10.99.0.1-10.99.0.254, which gives an attachment one address")
    assert not (tmp_path / "net1" / "10.99.0.90").exists()
    # an IPv4-mapped IPv6 address asks for the IPv4 address, as the reference's Go net.IP reads
    # it (refused as lying in no range before: an audit's find); the same one twice counts once
    raw5 = dict(raw, runtimeConfig={"ips": ["::ffff:10.99.0.95", "10.99.0.95/24"]})
    assert allocate(tmp_path, raw5, cid="c9")[0] == ["10.99.0.95/24"]
    assert (tmp_path / "net1" / "10.99.0.95").exists()
    # the same address through several conventions counts once (the reference's map)
    raw3 = dict(raw, runtimeConfig={"ips": ["10.99.0.70/24"]}, args={"cni": {"ips": ["10.99.0.70"]}})
    assert allocate(tmp_path, raw3, cid="c6", args="IgnoreUnknown=1;IP=10.99.0.70")[0] \
        == ["10.99.0.70/24"]


def test_legacy_fields_and_range_limits(tmp_path):
    raw = conf(tmp_path, subnet="10.98.0.0/24", rangeStart="10.98.0.100", rangeEnd="10.98.0.101",
               gateway="10.98.0.254", routes=[{"dst": "0.0.0.0/0"}])
    assert allocate(tmp_path, raw, cid="a")[0] == ["10.98.0.100/24"]
    assert allocate(tmp_path, raw, cid="b")[0] == ["10.98.0.101/24"]
    with pytest.raises(CNIError):
        allocate(tmp_path, raw, cid="c")


@pytest.mark.parametrize("version,v4_sets,v6_sets,refused", [
    ("0.2.0", 2, 0, True), ("0.2.0", 0, 2, True), ("0.2.0", 1, 1, False), ("0.3.0", 2, 0, False)])
def test_several_range_sets_of_one_family_need_cni_0_3(tmp_path, version, v4_sets, v6_sets,
                                                        refused):
    """A 0.1/0.2 result holds one address per family, so two range sets of one family
    cannot be reported in it: refused (code 7, naming cniVersion) before anything is made."""
    ranges = [[{"subnet": f"10.9{i}.0.0/24"}] for i in range(v4_sets)] + \
             [[{"subnet": f"fd9{i}::/64"}] for i in range(v6_sets)]
    raw = dict(conf(tmp_path, ranges), cniVersion=version)
    if refused:
        with pytest.raises(CNIError) as info:
            operation(raw)
        assert info.value.code == 7 and "cniVersion" in info.value.msg
        assert "several range sets of one IP family" in info.value.msg
    else:
        operation(raw)


def test_dns_from_resolv_conf(tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# comment\nnameserver 10.0.0.53\nsearch a.test b.test\noptions ndots:2\n")
    raw = conf(tmp_path, [[{"subnet": "10.99.0.0/24"}]], resolvConf=str(resolv))
    _, result = allocate(tmp_path, raw)
    assert result["dns"] == {"nameservers": ["10.0.0.53"], "search": ["a.test", "b.test"],
                             "options": ["ndots:2"]}


@pytest.mark.parametrize("kind", ["fifo", "directory", "huge"])
def test_resolv_conf_must_be_a_small_regular_file(tmp_path, kind):
    """A FIFO named by resolvConf hung cnish (a file nobody writes to never ends) and /dev/zero
    ate its memory (found by an audit): a regular file of at most 64 KiB, else code 7."""
    path = tmp_path / "resolv"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path.write_text("nameserver 10.0.0.53\n" * 4000)
    raw = conf(tmp_path, [[{"subnet": "10.99.0.0/24"}]], resolvConf=str(path))
    with pytest.raises(CNIError) as info:
        allocate(tmp_path, raw)
    assert info.value.code == 7 and "resolvConf" in info.value.msg

@pytest.mark.parametrize("ranges,field", [
    ([[{"subnet": "10.0.0.1/24"}]], "host bits"),
    ([[{"subnet": "10.0.0.0/31"}]], "too small"),
    ([[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.1.5"}]], "rangeStart"),
    ([[{"subnet": "10.0.0.0/24", "rangeEnd": "10.0.0.3", "rangeStart": "10.0.0.9"}]], "rangeEnd"),
    ([[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/25"}]], "overlaps"),
    ([[{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]], "mixes"),
    ([[{"subnet": "banana"}]], "subnet"),
    ([], "no IP ranges"),
    ([[]], "non-empty"),
    ([[{"subnet": "0.0.0.0/0"}]], "overlaps 0.0.0.0/8"),
    ([[{"subnet": "0.0.0.0/1"}]], "overlaps 0.0.0.0/8"),
    ([[{"subnet": "127.0.0.0/24"}]], "overlaps 127.0.0.0/8"),
    ([[{"subnet": "239.1.0.0/16"}]], "overlaps 224.0.0.0/4"),
    ([[{"subnet": "::/64"}]], "overlaps ::/128"),
    ([[{"subnet": "ff05::/64"}]], "overlaps ff00::/8"),
])
def test_bad_ranges(tmp_path, ranges, field):
    with pytest.raises(CNIError) as info:
        operation(conf(tmp_path, ranges))
    assert info.value.code == 7 and field in info.value.msg


def test_an_ipv4_route_with_host_bits_is_refused_before_anything_runs(tmp_path):
    """The kernel refuses such a route ("Invalid prefix for given prefix length") only at the
    route step, after the bridge and its address were made: code 7 at once instead."""
    raw = conf(tmp_path, [[{"subnet": "10.0.0.0/24"}]], routes=[{"dst": "10.9.0.1/16"}])
    with pytest.raises(CNIError) as info:
        operation(raw)
    assert info.value.code == 7 and "ipam.routes[0].dst" in info.value.msg
    assert "host bits" in info.value.msg


def test_an_ipv6_route_with_host_bits_is_to_its_network(tmp_path):
    """The kernel takes fd00:200::1/24 as fd00:200::/24, and so does the reference: CRI-O's
    10-crio-bridge ships such a route, and cnish refused every ADD of it (a configs audit)."""
    raw = conf(tmp_path, [[{"subnet": "fd00:200::/24"}]],
               routes=[{"dst": "fd00:200::1/24"}, {"dst": "3ffe:ffff:0:01ff::1/64"}])
    op = operation(raw)
    _, result = hostlocal.ipam_add(op)
    assert [r["dst"] for r in result["routes"]] == ["fd00:200::/24", "3ffe:ffff:0:1ff::/64"]


def test_overlaps_among_thousands_of_ranges(tmp_path):
    """Overlaps are found by sorting (a pairwise check took 17 s for 4000 ranges, and a 4 MiB
    config can hold 140 000): within a set, and between sets, wherever they are in the list."""
    many = [{"subnet": f"10.{i >> 6}.0.{(i & 63) * 4}/30"} for i in range(3000)]
    operation(conf(tmp_path, [many]))                                   # disjoint: fine
    clash = many + [{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.9", "rangeEnd": "10.0.0.9"}]
    with pytest.raises(CNIError) as info:
        operation(conf(tmp_path, [clash[::-1]]))
    assert info.value.code == 7 and "10.0.0.9-10.0.0.9" in info.value.msg and "overlap" in \
        info.value.msg
    with pytest.raises(CNIError) as info:
        operation(conf(tmp_path, [many, [{"subnet": "10.60.0.0/24"}], [{"subnet": "fd00::/64"}],
                                  [{"subnet": "10.20.0.0/26"}]]))
    assert info.value.code == 7 and "range set 0 overlaps with range set 3" in info.value.msg

@pytest.mark.parametrize("data_dir", ["relative/dir", "/var/lib/../etc", "/tmp/x\ny"])
def test_bad_data_dir(tmp_path, data_dir):
    raw = conf(tmp_path, [[{"subnet": "10.0.0.0/24"}]])
    raw["ipam"]["dataDir"] = data_dir
    with pytest.raises(CNIError) as info:
        operation(raw)
    assert info.value.code == 7 and "dataDir" in info.value.msg


def test_release_legacy_and_vanishing_files(tmp_path):
    d = tmp_path / "net1"
    d.mkdir()
    (d / "10.0.0.5").write_text("old-ctr")
    s = store.Store(str(tmp_path), "net1")
    assert s.release("old-ctr", "eth0") == ["10.0.0.5"]
    assert s.release("old-ctr", "eth0") == []          # idempotent


def test_a_host_short_of_file_descriptors_fails_the_release_instead_of_faking_it(tmp_path):
    """EMFILE while reading or listing the store is the host's trouble, not "no reservation":
    a release that read None would keep the address reserved and report nothing to release
    (DEL answered 0, the address leaked). It fails with code 11, the runtime retries."""
    import resource
    import subprocess
    import sys
    d = tmp_path / "net1"
    d.mkdir()
    (d / "10.0.0.5").write_text("ctr\r\neth0")
    # (a child process: the limit must not reach pytest's own descriptors)
    child = f"""
import os, resource, sys
from cnish import store
from cnish.errors import CNIError
s = store.Store({str(tmp_path)!r}, "net1")
s.acquire()                                   # (the lock file is open before the limit)
spare = []
while True:                                   # use up every descriptor there is
    try:
        spare.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        break
for call in (lambda: s.holder("10.0.0.5"), s.files, lambda: s.release("ctr", "eth0")):
    try:
        print("returned", call())
    except CNIError as exc:
        print("raised", exc.code, exc.msg, exc.details)
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True,
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)))
    lines = out.stdout.splitlines()
    assert len(lines) == 3, out
    assert lines[0].startswith("raised 11 cannot read 10.0.0.5 in IPAM store"), lines
    assert "Too many open files" in lines[0]
    assert lines[1].startswith("raised 11 cannot list IPAM store"), lines
    assert lines[2].startswith("raised 11"), lines
    assert (d / "10.0.0.5").read_bytes() == b"ctr\r\neth0"    # still reserved, not lost


def test_a_store_directory_that_cannot_be_looked_at_is_no_missing_store(tmp_path):
    """release() took any failed stat of the store's directory for "no store": DEL released
    nothing and succeeded (a review's find). Only a missing one is that now."""
    os.symlink("loop", tmp_path / "loop")
    with pytest.raises(CNIError) as info:
        store.Store(str(tmp_path), "loop").release("ctr", "eth0")
    assert "cannot look at IPAM store" in info.value.msg
    assert info.value.details.startswith("Too many levels of symbolic links")
    assert store.Store(str(tmp_path), "missing").release("ctr", "eth0") == []
    (tmp_path / "file").write_text("")
    assert store.Store(str(tmp_path / "file"), "net1").release("ctr", "eth0") == []


def test_del_goes_on_when_the_store_cannot_be_read_while_its_plan_is_made(tmp_path,
                                                                         monkeypatch):
    """DEL reads the store while its plan is made (the addresses it finds the rules by): a
    read the host cannot serve failed the whole DEL there, the link and rules kept too (a
    review's find). It goes on without them; the release step reads the store again and
    fails, and the runtime retries the DEL."""
    def unreadable(self, *args):
        raise store.Unreadable(11, f"cannot list IPAM store {self.dir}", "Too many open files")
    monkeypatch.setattr(store.Store, "owned", unreadable)
    (tmp_path / "net1").mkdir()
    att, held = hostlocal.ipam_del(operation(conf(tmp_path, [[{"subnet": "10.0.0.0/24"}]]),
                                             "DEL"))
    assert held == [] and att["store"] == str(tmp_path / "net1")


def test_files_that_are_not_reservations_still_read_as_none(tmp_path):
    d = tmp_path / "net1"
    d.mkdir()
    os.symlink("/etc/hostname", d / "10.0.0.6")
    os.mkdir(d / "10.0.0.7")
    s = store.Store(str(tmp_path), "net1")
    assert s.holder("10.0.0.6") is None and s.holder("10.0.0.7") is None
    assert s.holder("10.0.0.8") is None
    assert store.Store(str(tmp_path), "no-such-network").files() == {}


def _hold_store_lock(tmp_path, seconds):
    """A process that holds net1's store lock for `seconds` (a hung IPAM process's part)."""
    import subprocess
    import sys
    (tmp_path / "net1").mkdir(exist_ok=True)
    lock = tmp_path / "net1" / "lock"
    child = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        f"time.sleep({seconds})\n")], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "held\n"
    return child


def test_a_store_lock_held_too_long_is_code_11_not_a_wait_without_end(tmp_path, monkeypatch):
    """The store's flock was taken blocking, without a limit: one hung or stopped holder
    held every ADD of the network until the runtime killed it, with no word of why."""
    import signal
    import time
    monkeypatch.setattr(store, "LOCK_WAIT", 0.5)
    child = _hold_store_lock(tmp_path, 30)
    try:
        t0 = time.monotonic()
        with pytest.raises(CNIError) as info:
            store.Store(str(tmp_path), "net1").acquire()
        assert 0.4 < time.monotonic() - t0 < 3
        assert info.value.code == 11 and "held by another process for 0.5 s" in info.value.msg
    finally:
        child.kill()
        child.wait()
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL       # (put back)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    s = store.Store(str(tmp_path), "net1")
    s.acquire()                          # (free again: taken at once; no descriptor was kept)
    s.release_lock()


def test_the_store_lock_wait_puts_back_the_process_timer_handler_and_mask(tmp_path,
                                                                          monkeypatch):
    """A review's finds: the wait cancelled a timer the process had of its own, and with
    SIGALRM blocked (a mask a process may be started with) it waited without limit."""
    import signal
    import time
    monkeypatch.setattr(store, "LOCK_WAIT", 0.5)
    child = _hold_store_lock(tmp_path, 30)
    mine = []
    old_handler = signal.signal(signal.SIGALRM, lambda *_: mine.append(1))
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    try:
        signal.setitimer(signal.ITIMER_REAL, 20)
        t0 = time.monotonic()
        with pytest.raises(CNIError) as info:
            store.Store(str(tmp_path), "net1").acquire()
        assert 0.4 < time.monotonic() - t0 < 3 and info.value.code == 11
        assert signal.SIGALRM in signal.pthread_sigmask(signal.SIG_BLOCK, set())  # (blocked again)
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 15 < left < 19.6, left                   # (its own timer, less the wait)
        assert signal.getsignal(signal.SIGALRM) is not signal.SIG_DFL and not mine
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        signal.signal(signal.SIGALRM, old_handler)
        child.kill()
        child.wait()


@pytest.mark.parametrize("where", ["main thread", "another thread"])
def test_a_store_lock_freed_in_time_is_taken(tmp_path, monkeypatch, where):
    """(Only the main thread may handle SIGALRM: another one waits as the reference does.)"""
    import threading
    import time
    monkeypatch.setattr(store, "LOCK_WAIT", 10)
    child = _hold_store_lock(tmp_path, 0.4)
    waited = []

    def take():
        t0 = time.monotonic()
        s = store.Store(str(tmp_path), "net1")
        s.acquire()
        waited.append(time.monotonic() - t0)
        s.release_lock()
    try:
        if where == "main thread":
            take()
        else:
            thread = threading.Thread(target=take)
            thread.start()
            thread.join()
        assert waited and 0.2 < waited[0] < 5, waited
    finally:
        child.kill()
        child.wait()


def test_symlinked_store_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "net1")
    with pytest.raises(CNIError) as info:
        store.Store(str(tmp_path), "net1").acquire()
    assert "symlink" in info.value.details


def test_dry_run_preview_creates_nothing(tmp_path):
    raw = conf(tmp_path / "nothing-here", [[{"subnet": "10.99.0.0/24"}]])
    op = operation(raw, dry_run=True)
    att, result = hostlocal.ipam_add(op)
    assert result["ips"][0]["address"] == "10.99.0.2/24"
    assert not (tmp_path / "nothing-here").exists()


def test_static_check_compares_only_configured_gateways():
    """static's CHECK: a configured gateway must match prevResult's; an address configured
    without one accepts the gateway a main plugin added (bridge with isGateway does)."""
    from cnish.plugins import static
    raw = {"cniVersion": "1.0.0", "name": "net1", "type": "static",
           "ipam": {"type": "static", "addresses": [
               {"address": "10.94.0.5/24", "gateway": "10.94.0.1"}, {"address": "fd94::5/64"}]}}
    op = operation(raw, command="CHECK")
    static.ipam_check(op, [{"address": "10.94.0.5/24", "gateway": "10.94.0.1"},
                           {"address": "fd94::5/64", "gateway": "fd94::1"}])
    with pytest.raises(CNIError) as info:
        static.ipam_check(op, [{"address": "10.94.0.5/24", "gateway": "10.94.0.254"}])
    assert info.value.code == 101 and "10.94.0.254" in info.value.msg


def test_static_refuses_one_address_twice_but_del_goes_on():
    """The second `ip addr add` of one address would fail only after the link was made; DEL
    removes what there is (the reference's ADD of such a config failed: its DEL must work)."""
    raw = {"cniVersion": "1.0.0", "name": "net1", "type": "static",
           "ipam": {"type": "static", "addresses": [
               {"address": "10.94.0.5/24"}, {"address": "10.94.0.6/24"},
               {"address": "10.94.0.5/16"}]}}
    with pytest.raises(CNIError) as info:
        operation(raw)
    assert info.value.code == 7 and "ipam.addresses[2].address" in info.value.msg
    assert "ipam.addresses[0] again" in info.value.msg
    assert operation(raw, command="DEL").ipam_conf is not None


# -- the owner index (README: "An owner index in the host-local store") ------------------------

def entry(d, cid, ip, ifname="eth0"):
    """The path of (cid, ifname)'s index entry for `ip` in store directory `d`."""
    return d / f".cnish-owner-{store.owner_key(cid, ifname)}.{ip}"


def reference_reserve(d, ip, cid, ifname="eth0"):
    """Reserve `ip` as the reference host-local does: exclusive create, no index entry."""
    with open(d / ip, "x", newline="") as f:
        f.write(f"{cid}\r\n{ifname}")


def test_index_entries_are_hard_links(tmp_path):
    raw = conf(tmp_path, [[{"subnet": "10.99.0.0/24"}]])
    allocate(tmp_path, raw, cid="a")
    d = tmp_path / "net1"
    assert os.path.samestat(os.stat(entry(d, "a", "10.99.0.2")), os.stat(d / "10.99.0.2"))
    assert os.stat(d / "10.99.0.2").st_nlink == 2


def test_a_leftover_index_entry_hides_no_reservation(tmp_path):
    """The operator removes a's address files by hand (a's index entries stay), then b gets
    each address again: b's DEL finds and releases it, a's finds nothing. Eight owners, so
    that the directory's order can hardly make this pass by chance (it once did with one)."""
    raw = conf(tmp_path, [[{"subnet": "10.99.0.0/24", "rangeStart": "10.99.0.10",
                            "rangeEnd": "10.99.0.17"}]])
    d = tmp_path / "net1"
    ips = [f"10.99.0.{10 + i}" for i in range(8)]
    for i, ip in enumerate(ips):
        assert allocate(tmp_path, raw, cid=f"a{i}")[0] == [f"{ip}/24"]
    for ip in ips:
        os.unlink(d / ip)
    for i, ip in enumerate(ips):
        assert allocate(tmp_path, raw, cid=f"b{i}")[0] == [f"{ip}/24"]
    s = store.Store(str(tmp_path), "net1")
    for i, ip in enumerate(ips):
        assert s.owned(f"a{i}", "eth0") == []
        assert hostlocal.ipam_del(operation(raw, "DEL", cid=f"b{i}"))[1] == [ip]
        assert s.release(f"b{i}", "eth0") == [ip]
        assert not os.path.lexists(d / ip) and not os.path.lexists(entry(d, f"b{i}", ip))
    assert sorted(s.prune()) == sorted(entry(d, f"a{i}", ip).name for i, ip in enumerate(ips))
    assert not [n for n in os.listdir(d) if n.startswith(".")]


def hidden_by_a_leftover(tmp_path):
    """a's address file 10.99.0.2 is removed (by hand, or by a release that crashed between its
    two unlinks: the address file goes first, a's index entry stays); the reference then
    reserves the address for h2, without an index entry. The store and its directory."""
    allocate(tmp_path, conf(tmp_path, [[{"subnet": "10.99.0.0/24"}]]), cid="a")
    d = tmp_path / "net1"
    os.unlink(d / "10.99.0.2")
    reference_reserve(d, "10.99.0.2", "h2")
    return store.Store(str(tmp_path), "net1"), d


def test_a_leftover_index_entry_hides_no_reference_reservation(tmp_path):
    """cnish's DEL of h2 releases the address a's leftover entry names."""
    s, d = hidden_by_a_leftover(tmp_path)
    assert s.owned("a", "eth0") == []
    assert s.owned("h2", "eth0") == ["10.99.0.2"]
    assert s.release("h2", "eth0") == ["10.99.0.2"]
    assert entry(d, "a", "10.99.0.2").exists()                       # until GC's prune
    assert s.prune() == [entry(d, "a", "10.99.0.2").name]


def test_two_index_entries_for_one_address(tmp_path):
    """A leftover entry of a next to b's live one, made before and after b's (the directory's
    order decides which one a scan sees last), and in the old stores' format (a copy): the
    address is b's whichever comes last; an address linked to two keys is read."""
    d = tmp_path / "net1"
    d.mkdir()
    s = store.Store(str(tmp_path), "net1")
    entry(d, "a", "10.99.0.2").write_bytes(b"a\r\neth0")
    assert s.reserve("10.99.0.2", "b", "eth0", 0)
    assert s.reserve("10.99.0.3", "b", "eth0", 0)
    entry(d, "a", "10.99.0.3").write_bytes(b"a\r\neth0")
    assert s.reserve("10.99.0.4", "b", "eth0", 0)
    os.link(d / "10.99.0.4", entry(d, "a", "10.99.0.4"))       # linked to two keys
    assert s.owned("a", "eth0") == []
    assert sorted(s.owned("b", "eth0")) == ["10.99.0.2", "10.99.0.3", "10.99.0.4"]
    assert sorted(s.release("b", "eth0")) == ["10.99.0.2", "10.99.0.3", "10.99.0.4"]
    assert sorted(s.prune()) == sorted(entry(d, "a", ip).name
                                       for ip in ("10.99.0.2", "10.99.0.3", "10.99.0.4"))
    assert sorted(os.listdir(d)) == ["last_reserved_ip.0", "lock"]


def test_reserve_replaces_a_leftover_entry_of_its_own_key(tmp_path):
    d = tmp_path / "net1"
    d.mkdir()
    entry(d, "a", "10.99.0.2").write_bytes(b"a\r\neth0")         # not a link: a leftover
    s = store.Store(str(tmp_path), "net1")
    assert s.reserve("10.99.0.2", "a", "eth0", 0)
    assert os.path.samestat(os.stat(entry(d, "a", "10.99.0.2")), os.stat(d / "10.99.0.2"))
    assert s.stale_index() == []


def test_old_stores_index_copies_still_work(tmp_path):
    """Index entries written by earlier cnish versions are copies, not links: the addresses
    they name count as unindexed and are read; GC's prune removes the copies."""
    d = tmp_path / "net1"
    d.mkdir()
    for ip, cid in (("10.99.0.2", "a"), ("10.99.0.3", "b")):
        (d / ip).write_bytes(f"{cid}\r\neth0".encode())
        entry(d, cid, ip).write_bytes(f"{cid}\r\neth0".encode())
    s = store.Store(str(tmp_path), "net1")
    assert s.owned("a", "eth0") == ["10.99.0.2"]
    assert s.release("a", "eth0") == ["10.99.0.2"]
    assert s.prune() == [entry(d, "b", "10.99.0.3").name]
    assert s.owned("b", "eth0") == ["10.99.0.3"]


def test_gc_frees_a_hidden_reservation_in_one_run(tmp_path):
    """GC's steps (release every stale owner, then prune) free an address that a leftover
    entry names in one run."""
    from cnish.gc import stale_owners
    s, d = hidden_by_a_leftover(tmp_path)
    stale = stale_owners(s, {("a", "eth0")})
    assert [o["cid"] for o in stale] == ["h2"]
    for owner in stale:
        s.release(owner["cid"], owner["ifname"])
    s.prune()
    assert sorted(os.listdir(d)) == ["last_reserved_ip.0", "lock"]


def test_a_killed_writers_temporary_file_is_never_written_through_and_is_swept(tmp_path):
    """A reserve killed after linking its temporary file leaves `.cnish-tmp-<pid>`, a hard
    link to the live address file. A later writer with the same pid must not rewrite it (that
    gave the first container's address to the second), and the next ADD or GC removes it.
    Found by the concurrency audit."""
    raw = conf(tmp_path, [[{"subnet": "10.99.0.0/24"}]])
    allocate(tmp_path, raw, cid="first")
    d = tmp_path / "net1"
    left = d / f".cnish-tmp-{os.getpid()}"          # what the killed writer left behind
    os.link(d / "10.99.0.2", left)
    st = store.Store(str(tmp_path), "net1")
    assert st.reserve("10.99.0.9", "second", "eth0", 0)
    assert (d / "10.99.0.2").read_bytes() == b"first\r\neth0"
    assert (d / "10.99.0.9").read_bytes() == b"second\r\neth0"
    os.link(d / "10.99.0.2", left)
    (d / ".cnish-tmp-last-4242").write_text("10.99.0.2")
    allocate(tmp_path, raw, cid="third")
    assert not [n for n in os.listdir(d) if n.startswith(".cnish-tmp-")]
    os.link(d / "10.99.0.2", left)
    st.prune()
    assert not left.exists() and (d / "10.99.0.2").read_bytes() == b"first\r\neth0"


def test_undoing_a_reservation_removes_only_its_own(tmp_path):
    """release_ip is the reserve step's undo (an ADD's rollback): it removes the address only
    while this attachment holds it (the reference's owner rule, legacy id-only files
    included), with its index entry, and gives last_reserved_ip back the value it had before
    the ADD — unless a later ADD has moved it on since."""
    raw = conf(tmp_path, [[{"subnet": "10.99.0.0/24"}]])
    d = tmp_path / "net1"
    s = store.Store(str(tmp_path), "net1")
    try:
        allocate(tmp_path, raw, cid="a")                        # .2
        allocate(tmp_path, raw, cid="b")                        # .3, last_reserved .3
        # another attachment's address stays, whatever the caller claims
        assert not s.release_ip("10.99.0.2", "b", "eth0", 0, previous="10.99.0.2")
        assert (d / "10.99.0.2").read_bytes() == b"a\r\neth0"
        assert (d / "last_reserved_ip.0").read_bytes() == b"10.99.0.3"
        # its own: gone with its index entry, and last_reserved_ip back at .2
        assert s.release_ip("10.99.0.3", "b", "eth0", 0, previous="10.99.0.2")
        assert not (d / "10.99.0.3").exists() and not entry(d, "b", "10.99.0.3").exists()
        assert (d / "last_reserved_ip.0").read_bytes() == b"10.99.0.2"
        # a later ADD moved last_reserved_ip on (.3 then .4): undoing .3 leaves it at .4
        allocate(tmp_path, raw, cid="c")                        # .3
        allocate(tmp_path, raw, cid="e")                        # .4
        assert s.release_ip("10.99.0.3", "c", "eth0", 0, previous="10.99.0.2")
        assert (d / "last_reserved_ip.0").read_bytes() == b"10.99.0.4"
        # no previous value: the file goes
        assert s.release_ip("10.99.0.4", "e", "eth0", 0, previous="")
        assert not (d / "last_reserved_ip.0").exists()
        # a store older than plugins 0.8.0 names the container only
        (d / "10.99.0.9").write_text("old-ctr")
        assert not s.release_ip("10.99.0.9", "other", "eth0")
        assert s.release_ip("10.99.0.9", "old-ctr", "eth0")
        assert not (d / "10.99.0.9").exists()
    finally:
        store.drop_locks()


def test_gc_finds_stale_owners_by_container_and_interface(tmp_path):
    """GC (spec 1.1.0) keeps exactly the valid attachments, (container id, interface) pairs:
    another interface of a valid container is stale; a legacy id-only file counts as its
    container's, valid through any of its interfaces."""
    from cnish import gc
    d = tmp_path / "net1"
    d.mkdir()
    (d / "10.0.0.2").write_bytes(b"c1\r\neth0")
    (d / "10.0.0.3").write_bytes(b"c1\r\neth1")
    (d / "10.0.0.4").write_text("c2")
    (d / "10.0.0.5").write_text("c3")
    stale = gc.stale_owners(store.Store(str(tmp_path), "net1"), {("c1", "eth0"), ("c2", "eth9")})
    assert sorted((o["cid"], o["ifname"]) for o in stale) == [("c1", "eth1"), ("c3", "")]
    assert all(o["key"] == store.owner_key(o["cid"], o["ifname"]) for o in stale)
    assert {(o["cid"], tuple(o["ips"])) for o in stale} == {("c1", ("10.0.0.3",)),
                                                             ("c3", ("10.0.0.5",))}


def test_gc_finds_stale_chains_of_its_own_network_only():
    """GC of network A removes A's masquerade chains of containers no longer valid, and never
    a chain of network B, whatever B's container ids (the rules' comments say whose it is)."""
    from cnish import gc
    save = "\n".join([
        "*nat",
        ":POSTROUTING ACCEPT [0:0]",
        ":CNI-aaa - [0:0]", ":CNI-bbb - [0:0]", ":CNI-ccc - [0:0]",
        '-A POSTROUTING -s 10.1.0.2/32 -m comment --comment "name: \\"A\\" id: \\"gone\\"" -j CNI-aaa',
        '-A CNI-aaa -d 10.1.0.0/24 -m comment --comment "name: \\"A\\" id: \\"gone\\"" -j ACCEPT',
        '-A POSTROUTING -s 10.1.0.3/32 -m comment --comment "name: \\"A\\" id: \\"live\\"" -j CNI-bbb',
        '-A CNI-bbb -d 10.1.0.0/24 -m comment --comment "name: \\"A\\" id: \\"live\\"" -j ACCEPT',
        '-A POSTROUTING -s 10.2.0.2/32 -m comment --comment "name: \\"B\\" id: \\"gone\\"" -j CNI-ccc',
        '-A CNI-ccc -d 10.2.0.0/24 -m comment --comment "name: \\"B\\" id: \\"gone\\"" -j ACCEPT',
        "COMMIT"])
    stale = gc.stale_chains(save, "A", {"live"})
    assert [(s["chain"], s["cid"]) for s in stale] == [("CNI-aaa", "gone")]
    assert stale[0]["jumps"] == [["-s", "10.1.0.2/32", "-m", "comment",     # the rule's spec
                                  "--comment", 'name: "A" id: "gone"', "-j", "CNI-aaa"]]


def test_gc_finds_the_jumps_of_stale_interfaces_of_a_valid_container():
    """Interfaces eth0 (valid) and eth1 (stale) of container "live" share its chain: GC
    removes only the jump from eth1's address, and only with network A's comment and the
    container id that holds the stale reservation."""
    from cnish import gc
    jump = '-A POSTROUTING -s {} -m comment --comment "name: \\"{}\\" id: \\"{}\\"" -j {}'
    save = "\n".join([
        "*nat",
        jump.format("10.1.0.2/32", "A", "live", "CNI-bbb"),        # eth0: valid
        jump.format("10.1.0.3/32", "A", "live", "CNI-bbb"),        # eth1: stale
        jump.format("10.1.0.3/32", "B", "live", "CNI-ccc"),        # another network's
        jump.format("10.1.0.3/32", "A", "other", "CNI-ddd"),       # another container's
        '-A POSTROUTING -s 10.1.0.3/32 -j MASQUERADE',             # not a CNI chain
        '-A POSTROUTING -s 10.1.0.3/32 -m comment --comment "unbalanced -j CNI-x',
        "COMMIT"])
    stale = gc.stale_jumps(save, "A", {("live", "10.1.0.3")})
    assert [(s["chain"], s["cid"], s["source"]) for s in stale] == [("CNI-bbb", "live", "10.1.0.3")]
    assert stale[0]["rule"] == ["-s", "10.1.0.3/32", "-m", "comment",
                                "--comment", 'name: "A" id: "live"', "-j", "CNI-bbb"]


def test_gc_finds_stale_spoof_checks_of_its_own_network_only():
    """macspoofchk: a hook rule is network A's when its veth is the one cnish derives for A
    from the comment's container id and interface name (ids may hold "-"); B's, the
    reference's (random veth) and valid attachments' are left."""
    from cnish import gc, names
    hook = '\t\tiifname "{}" jump cni-br-iface-{ref} comment "macspoofchk-{ref}" # handle 9'
    listing = "\n".join([
        "table bridge nat {", "\tchain PREROUTING {",
        "\t\ttype filter hook prerouting priority dstnat; policy accept;",
        hook.format(names.host_veth("A", "gone-1", "eth0"), ref="gone-1-eth0"),    # stale
        hook.format(names.host_veth("A", "live", "eth0"), ref="live-eth0"),        # valid
        hook.format(names.host_veth("B", "other", "eth1"), ref="other-eth1"),      # B's
        hook.format("veth1a2b3c4d", ref="ref-eth0"),                               # reference's
        "\t}", "}"])
    stale = gc.stale_spoofchks(listing, "A", {("live", "eth0")})
    assert stale == [dict(names.spoofchk("gone-1", "eth0"), cid="gone-1", ifname="eth0")]
    assert stale[0]["iface_chain"] == "cni-br-iface-gone-1-eth0"


def test_gc_finds_the_nftables_masquerade_rules_of_stale_attachments():
    """ipMasqBackend nftables: a rule is network A's when its comment starts with A's hash;
    it is stale unless it is the comment a valid attachment's rules carry."""
    from cnish import gc, names
    rule = '\t\tip saddr 10.0.0.{} ip daddr != 10.0.0.0/24 masquerade comment "{}" # handle {}'
    gone, live = names.masq_nft_comment("A", "gone", "eth0"), names.masq_nft_comment("A", "live", "eth0")
    listing = "\n".join([
        "table inet cni_plugins_masquerade {", "\tchain masq_checks {",
        '\t\tcomment "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet"',
        rule.format(2, gone, 5), rule.format(3, gone, 6),                       # stale, twice
        rule.format(4, live, 7),                                                # valid
        rule.format(5, names.masq_nft_comment("B", "gone", "eth0"), 8),         # B's
        rule.format(6, names.masq_nft_comment("A", "live", "eth1"), 9),         # stale ifname
        "\t}", "}"])
    assert gc.stale_masq_nft(listing, "A", {("live", "eth0")}) == [
        gone, names.masq_nft_comment("A", "live", "eth1")]
    assert gc.stale_masq_nft("", "A", set()) == []


def test_a_dry_runs_note_tells_a_requested_address_from_the_next_free_one(tmp_path):
    """The script's note names what it will reserve: an address the runtime asked for
    (CNI_ARGS IP=) is not "the next free address" (an operator audit found it so called)."""
    raw = conf(tmp_path, [[{"subnet": "10.99.0.0/24"}], [{"subnet": "fd99::/120"}]])
    op = operation(raw, args="IP=10.99.0.60", dry_run=True)
    hostlocal.ipam_add(op)
    assert op.notes == [f"host-local: this script reserves 10.99.0.60 (requested) and fd99::2 "
                        f"(the next free address), free in {tmp_path}/net1 now, and fails "
                        "(rolling back) if another ADD took one in the meantime"]


def test_three_reference_host_local_bugs_cnish_does_not_have(tmp_path):
    """Found by a differential audit against Debian's host-local 1.1.1 (README, "cnish does
    better"): its failed duplicate ADD with a requested address releases the attachment's
    existing addresses; its DEL with two range sets also removes a legacy id-only file of the
    container in the other set; a container id shaped like an address makes its second DEL
    remove the round-robin cursor naming that address."""
    d = tmp_path / "net1"
    dual = conf(tmp_path, [[{"subnet": "10.1.0.0/29"}], [{"subnet": "fd00::/125"}]])
    assert allocate(tmp_path, dual)[0] == ["10.1.0.2/29", "fd00::2/125"]
    with pytest.raises(CNIError) as info:
        allocate(tmp_path, dict(dual, runtimeConfig={"ips": ["10.1.0.5"]}))
    assert "duplicate allocation is not allowed" in info.value.msg
    assert sorted(n for n in os.listdir(d) if n[0].isdigit() or n[0] == "f") \
        == ["10.1.0.2", "fd00::2"]

    assert allocate(tmp_path, dict(dual, runtimeConfig={"ips": ["10.1.0.3"]}), cid="c2")[0] \
        == ["10.1.0.3/29", "fd00::3/125"]
    (d / "fd00::6").write_text("c2")               # a legacy file: the container id alone
    store.Store(str(tmp_path), "net1").release("c2", "eth0")
    assert (d / "fd00::6").read_text() == "c2"     # (exact owners found: legacy ones stay)

    single = conf(tmp_path, [[{"subnet": "10.99.0.0/29"}]])
    assert allocate(tmp_path, single, cid="10.99.0.2")[0] == ["10.99.0.2/29"]
    for _ in range(2):
        store.Store(str(tmp_path), "net1").release("10.99.0.2", "eth0")
    assert (d / "last_reserved_ip.0").read_text() == "10.99.0.2"
    assert allocate(tmp_path, single, cid="c3")[0] == ["10.99.0.3/29"]
