"""Helpers for tests that use real network namespaces, links and iptables rules."""

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import uuid
from pathlib import Path

RUN_ID = uuid.uuid4().hex[:6]
ROOT = Path(__file__).resolve().parent.parent
_counter = [0]


# The machine's forwarding sysctls: tests that run where an operator would (in the machine's
# own namespace) let cnish enable them, then give them their old values back.
FORWARDING = ("/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding")


def forwarding() -> dict:
    """The forwarding sysctls' values now (None where a file is missing: no IPv6)."""
    saved = {}
    for path in FORWARDING:
        try:
            with open(path) as f:
                saved[path] = f.read().strip()
        except OSError:
            saved[path] = None
    return saved


def restore_forwarding(saved: dict) -> None:
    """Give the forwarding sysctls the values forwarding() returned (only those that changed)."""
    now = forwarding()
    for path, value in saved.items():
        if value is not None and now[path] != value:
            with open(path, "w") as f:
                f.write(value)


def kernel_problem() -> str | None:
    """Why kernel tests cannot run here (None when they can)."""
    if os.geteuid() != 0:
        return "kernel tests need root (network namespaces, links, iptables)"
    for tool in ("ip", "iptables", "nsenter", "sysctl"):
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            return f"kernel tests need {tool} (apt install iproute2 iptables util-linux procps)"
    return None


_kinds = {}
BRIDGE_VLANS = "bridge VLAN filtering"      # (a `linktype` marker's kind, like "vlan")


def link_kind_missing(kind: str) -> bool:
    """Does this kernel lack a link kind? Asked like cnish does: `ip link add` in a network
    namespace of its own that vanishes with the command (nothing on the host changes)."""
    if kind not in _kinds:
        if kind == BRIDGE_VLANS:        # not a link kind: a bridge that filters VLANs
            argv = ["name", "probe", "type", "bridge", "vlan_filtering", "1"]
        else:
            argv = ["link", "lo", "name", "probe", "type", kind] + (["id", "1"] if kind == "vlan" else [])
        proc = subprocess.run(["unshare", "--net", "ip", "link", "add", *argv],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        _kinds[kind] = ("Unknown device type" in proc.stderr
                        or "Operation not supported" in proc.stderr)
    return _kinds[kind]


_launcher = []


def cnish_command() -> list:
    """cnish as a runtime execs it: the launcher `cnish install` writes (an isolated, fast
    interpreter start), installed once per test run into a temporary directory."""
    if not _launcher:
        import atexit
        import tempfile
        from cnish.install import install
        directory = tempfile.mkdtemp(prefix=f"cnish-{RUN_ID}-bin-")
        atexit.register(shutil.rmtree, directory, True)
        _launcher.append(install(directory)[0])
    return list(_launcher)


@contextlib.contextmanager
def interrupts_held():
    """Clean-up that a second Ctrl-C (or a SIGTERM) must not cut short: the signal is
    delivered when the block is done (outside the main thread, signals cannot be caught)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    saved = {s: signal.signal(s, lambda signum, _frame: caught.append(signum))
             for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
        if caught:
            signal.raise_signal(caught[0])


def _sweep_this_run():
    """The last resort, at the interpreter's exit: Ctrl-C pressed again while pytest winds
    down can abort its teardown of the fixtures (a run interrupted twice during fifty parallel
    ADDs kept every namespace). Whatever still carries this run's unique names is deleted:
    namespaces cnish-<run id>-*, and the links the machine-level tests make (cm<run id>*,
    the quick start's bridge cnbr<run id>, podman's bridges cnp<run id>*). A run that tore down normally finds nothing here."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        names = os.listdir("/var/run/netns")
    except OSError:
        names = []
    left = [n for n in names if n.startswith(f"cnish-{RUN_ID}-")]
    try:
        links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                               stdin=subprocess.DEVNULL).stdout
        for line in links.splitlines():
            name = line.split(":")[1].split("@")[0].strip() if line.count(":") > 1 else ""
            if name.startswith((f"cm{RUN_ID}", f"cnp{RUN_ID}", f"cnbr{RUN_ID}")):
                left.append(f"link {name}")
        if left:
            batch = "".join(f"link del {n[5:]}\n" if n.startswith("link ")
                            else f"netns del {n}\n" for n in left)
            subprocess.run(["ip", "-force", "-batch", "-"], input=batch, capture_output=True,
                           text=True)
    except OSError:         # no `ip` here: then no test made anything to sweep
        pass


atexit.register(_sweep_this_run)


def unique(kind: str) -> str:
    _counter[0] += 1
    return f"cnish-{RUN_ID}-{kind}{_counter[0]}"


def sh(*argv, check=True, input=None, env=None) -> subprocess.CompletedProcess:
    # stdin is never inherited: in the kernel-lab guest it is a console that never ends
    proc = subprocess.run(argv, capture_output=True, text=True, input=input, env=env,
                          stdin=None if input is not None else subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} failed ({proc.returncode}): {proc.stderr}")
    return proc


class Lab:
    """Namespaces and directories of one test; everything is removed by close()."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.namespaces = []
        self.data_dir = str(tmp_path / "networks")
        self.cache_dir = str(tmp_path / "cache")

    def netns(self, kind: str = "c") -> str:
        name = unique(kind)
        self.namespaces.append(name)     # first: an interrupt right after the add leaks nothing
        sh("ip", "netns", "add", name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def host(self) -> "Node":
        return Node(self, self.netns("h"))

    def close(self):
        # A second Ctrl-C while this runs would leave the rest behind: held off until done.
        with interrupts_held():
            for name in reversed(self.namespaces):
                subprocess.run(["ip", "netns", "del", name], capture_output=True)


class Node:
    """A private "host" namespace: cnish runs here as a runtime would run it on a node."""

    def __init__(self, lab: Lab, name: str):
        self.lab = lab
        self.name = name

    def run(self, *argv, check=True, input=None, env=None):
        return sh("ip", "netns", "exec", self.name, *argv, check=check, input=input, env=env)

    def cni(self, command: str, conf: dict, netns: str | None, cid: str = "ctr1",
            ifname: str = "eth0", args: str = "", path_prefix: str | None = None,
            plugin: list | None = None, extra_env: dict | None = None):
        """Exec a CNI plugin (cnish by default) like a runtime: env + config on stdin."""
        env = {"PATH": (path_prefix + ":" if path_prefix else "") + os.environ["PATH"],
               "CNISH_PLAN_CACHE": os.environ.get("CNISH_PLAN_CACHE", ""),
               "CNISH_ATTACHMENT_LOCKS": os.environ.get("CNISH_ATTACHMENT_LOCKS", ""),
               "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
               "CNI_NETNS": f"/var/run/netns/{netns}" if netns and "/" not in netns else (netns or ""),
               "CNI_IFNAME": ifname, "CNI_PATH": "/usr/lib/cni", "CNI_ARGS": args}
        env.update(extra_env or {})
        proc = self.run(*(plugin or cnish_command()), check=False, input=json.dumps(conf), env=env)
        out = json.loads(proc.stdout) if proc.stdout.strip() else None
        return proc.returncode, out, proc.stderr

    def settle(self, *namespaces, timeout: float = 5.0):
        """Wait until IPv6 duplicate address detection has finished in these namespaces (the
        kernel keeps changing addresses and routes until it has)."""
        import time
        deadline = time.monotonic() + timeout
        for ns in (self.name,) + namespaces:
            while time.monotonic() < deadline:
                proc = sh("ip", "-n", ns, "-6", "addr", "show", "tentative", check=False)
                if not proc.stdout.strip():
                    break
                time.sleep(0.1)

    # -- state snapshots, for "exactly as before" assertions -----------------------------------

    def state(self, container: str | None = None) -> dict:
        def lines(*argv, ns=self.name):
            proc = sh("ip", "netns", "exec", ns, *argv, check=False)
            return sorted(_steady(l) for l in proc.stdout.splitlines() if l.strip())

        def tables(tool):
            """Rules and chains; an empty table (iptables-nft makes one on first use) with its
            built-in chains at their default ACCEPT policy counts as no table."""
            out = []
            for line in lines(tool + "-save"):
                line = line.split(" [")[0] if line.startswith(":") else line
                if line.startswith(("#", "*")) or line == "COMMIT":
                    continue
                if line.startswith(":") and line.endswith(" ACCEPT") and not line.startswith(":CNI"):
                    continue
                out.append(line)
            return out

        snap = {
            "links": lines("ip", "-o", "link", "show"),
            "addresses": lines("ip", "-o", "addr", "show"),
            "routes4": lines("ip", "-4", "route", "show", "table", "all"),
            "routes6": lines("ip", "-6", "route", "show", "table", "all"),
            "iptables": tables("iptables"),
            "ip6tables": tables("ip6tables"),
            "nftables": nft_ruleset(self.name),
            "sysctls": lines("sysctl", "-a", "-r", SYSCTLS),
            "store": store_files(self.lab.data_dir),
            "cache": store_files(self.lab.cache_dir),
        }
        if container:
            snap["container"] = {
                "links": lines("ip", "-o", "link", "show", ns=container),
                "addresses": lines("ip", "-o", "addr", "show", ns=container),
                "routes": lines("ip", "route", "show", "table", "all", ns=container),
                "sysctls": lines("sysctl", "-a", "-r", SYSCTLS, ns=container),
            }
        return snap


# Every kernel parameter a cnish plan sets (templates/sysctl/set.j2 and the plans that use it).
SYSCTLS = (r"^net\.ipv4\.(ip_forward|conf\.[^.]+\.(forwarding|arp_notify))$|"
           r"^net\.ipv6\.conf\.[^.]+\.(forwarding|accept_ra|disable_ipv6|accept_dad|ndisc_notify)$")


def nft_ruleset(ns: str) -> list:
    """`nft list ruleset` of a namespace as comparable items (tables, chains, rules, sets),
    without handles, and without what iptables-nft creates on first use and never removes:
    base chains with no rules and the default policy, and tables left with nothing else."""
    if shutil.which("nft") is None:
        return []
    proc = sh("ip", "netns", "exec", ns, "nft", "-j", "list", "ruleset", check=False)
    if proc.returncode != 0:
        return [f"nft failed: {proc.stderr.strip()}"]
    items = [next(iter(o.items())) for o in json.loads(proc.stdout)["nftables"]
             if "metainfo" not in o]
    for _kind, body in items:
        body.pop("handle", None)
    used = {(b["family"], b["table"], b["chain"]) for k, b in items if k == "rule"}
    keep = []
    for kind, body in items:
        if kind == "chain" and body.get("hook") and body.get("policy") == "accept" \
                and (body["family"], body["table"], body["name"]) not in used:
            continue
        keep.append((kind, body))
    tables = {(b["family"], b.get("table")) for k, b in keep if k != "table"}
    return sorted(json.dumps([k, b], sort_keys=True) for k, b in keep
                  if k != "table" or (b["family"], b["name"]) in tables)


def _steady(line: str) -> str:
    """Drop what the kernel changes on its own, a moment after a port joins or leaves a
    bridge (carrier and operational state, linkwatch runs up to a second later)."""
    for flag in ("LOWER_UP", "NO-CARRIER", "M-DOWN"):
        line = line.replace(f",{flag}", "").replace(f"<{flag},", "<")
    line = line.replace(" linkdown", "")
    words = line.split(" ")
    if "state" in words:
        at = words.index("state")
        del words[at:at + 2]
    return " ".join(words)


def store_files(data_dir: str) -> dict:
    """Every file of a host-local data directory: relative path -> (mode, content)."""
    out = {}
    for dirpath, _dirs, files in os.walk(data_dir):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, data_dir)] = (oct(os.stat(path).st_mode & 0o777), f.read())
    return out


def wipe_store(data_dir: str, network: str) -> None:
    """Remove a network's reservations and cursors, keeping its lock: the store wiped by hand,
    as in the "rm -rf /var/lib/cni" recovery."""
    store = os.path.join(data_dir, network)
    for name in os.listdir(store):
        if name != "lock":
            os.unlink(os.path.join(store, name))


def bridge_conf(lab: Lab, name: str | None = None, **overrides) -> dict:
    """A bridge network config with host-local IPAM in the test's data directory."""
    conf = {
        "cniVersion": "1.0.0",
        "name": name or unique("net"),
        "type": "bridge",
        "bridge": "cni-test0",
        "isGateway": True,
        "ipMasq": True,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.77.0.0/24"}]],
                 "routes": [{"dst": "0.0.0.0/0"}], "dataDir": lab.data_dir},
    }
    ipam = overrides.pop("ipam", None)
    conf.update(overrides)
    if ipam is not None:
        conf["ipam"] = dict(conf["ipam"], **ipam) if ipam else {}
    return conf


def outside_namespace(lab: Lab, host: "Node") -> str:
    """A namespace routed from the host ("the world beyond the node") at 10.200.0.2 and
    fd20::2, with no route back to the containers' subnets: it answers a container only when
    the host masqueraded the container's address."""
    out = lab.netns("o")
    host.run("ip", "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", out)
    host.run("ip", "addr", "add", "10.200.0.1/24", "dev", "up0")
    host.run("ip", "addr", "add", "fd20::1/64", "dev", "up0", "nodad")
    host.run("ip", "link", "set", "up0", "up")
    sh("ip", "-n", out, "addr", "add", "10.200.0.2/24", "dev", "eth0")
    sh("ip", "-n", out, "addr", "add", "fd20::2/64", "dev", "eth0", "nodad")
    sh("ip", "-n", out, "link", "set", "eth0", "up")
    return out


def operation(raw: dict, command: str = "ADD", cid: str = "ctr1", ifname: str = "eth0",
              netns: str = "/var/run/netns/cnish-test", args: str = "", dry_run: bool = True,
              opts: dict | None = None, runner=None):
    """An in-process Operation (no namespace needs to exist; nothing is executed)."""
    from cnish.config import parse_env
    from cnish.engine import Operation
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns,
           "CNI_IFNAME": ifname, "CNI_PATH": "/opt/cni/bin", "CNI_ARGS": args}
    return Operation(raw, parse_env(env, netns_exists=False), dry_run=dry_run, opts=opts,
                     runner=runner)


def without_lock(state: dict) -> dict:
    """A state snapshot without the host-local store's lock file: the store's mutex, created on
    first use like the store directory and, like the bridge, never removed."""
    return dict(state, store={k: v for k, v in state["store"].items() if not k.endswith("/lock")})


FAULTWRAP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel", "faultwrap.py")


def fault_env(wrap_dir, targets, mode: str = "fail", tools=()) -> dict:
    """Put faultwrap in `wrap_dir` under the names of the tools the targets use (plus
    `tools`), and return the environment that makes it fail / crash on `targets` (argvs)."""
    for name in os.listdir(wrap_dir):
        os.unlink(os.path.join(wrap_dir, name))
    names = set(tools)
    for argv in targets:
        names.add(argv[0])
        if argv[0] in ("iptables", "ip6tables"):
            names.add(argv[0] + "-restore")
    for name in names:
        os.symlink(FAULTWRAP, os.path.join(wrap_dir, name))
    return {"CNISH_SRC": str(ROOT), "CNISH_FAULT": json.dumps([list(t) for t in targets]),
            "CNISH_FAULT_MODE": mode}


def plan_steps(node, conf, container, command="add", cid="ctr1", tmp=None, ifname="eth0"):
    """The JSON plan cnish would run (a dry-run through the operator CLI)."""
    path = Path(tmp or node.lab.tmp) / f"plan-{unique('p')}.conf"
    path.write_text(json.dumps(conf))
    out = node.run(*cnish_command(), command, conf["name"], container, "--config", str(path),
                   "--cid", cid, "-i", ifname, "--dry-run", "--format", "json").stdout
    return json.loads(out)["steps"]


def strip_netns(argv) -> list:
    """A step's argv without the `nsenter --net=...` prefix (what a wrapper sees)."""
    return list(argv[2:]) if argv and argv[0] == "nsenter" else list(argv)


def reservations_only(state: dict) -> dict:
    """Like without_lock, and without the range sets' last_reserved_ip files: the round-robin
    cursor, which a DEL never moves back (neither does the reference's)."""
    state = without_lock(state)
    return dict(state, store={k: v for k, v in state["store"].items()
                              if "/last_reserved_ip." not in k})
