"""podman as a real CNI runtime for cnish's end-to-end tests (see /work/shared/podman.md).

Everything podman keeps (storage, run root, events, network configs) lives in one temporary
directory, chosen through CONTAINERS_CONF and CONTAINERS_STORAGE_CONF. What podman cannot
relocate — libcni's result cache and host-local's store under /var/lib/cni, portmap's shared
chains, tuning's saved state under /run/cni/tuning — is removed per network by `Networks.close`
and per session by `Podman.close`. Only what this run created is removed: names carry the
run id, and shared chains and directories go only if they did not exist before.
"""

import contextlib
import glob
import hashlib
import json
import os
import random
import select
import shlex
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from lab import RUN_ID, cnish_command, forwarding, interrupts_held, restore_forwarding

IMAGE = "localhost/cnish-test:latest"
NETWORKS_DIR = "/var/lib/cni/networks"        # host-local's default dataDir; podman cannot move it
RESULTS_DIR = "/var/lib/cni/results"          # libcni's result cache
TUNING_DIR = "/run/cni/tuning"                # where the reference tuning saves original values
APPLETS = ("sh", "ip", "ping", "sleep", "cat", "nc", "ls", "true")
PACKAGES = "podman runc conmon containernetworking-plugins busybox-static"
# Directories podman or the plugins create on first use: removed at the end of the session
# when they did not exist before it and are empty again (deepest first).
CREATED_DIRS = (NETWORKS_DIR, RESULTS_DIR, "/var/lib/cni", TUNING_DIR, "/run/cni", "/run/runc")
# containers/image's blob-info cache is always under /var/lib/containers for root.
BLOB_CACHE_DIR = "/var/lib/containers"
BLOB_CACHE = f"{BLOB_CACHE_DIR}/cache/blob-info-cache-v1.boltdb"

_counter = [0]


def podman_problem() -> str | None:
    """Why podman tests cannot run at all (None when they can)."""
    if shutil.which("podman") is None:
        return f"podman is not installed (apt-get install -y --no-install-recommends {PACKAGES})"
    return None


def _require(tool: str, package: str) -> str:
    path = shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if path is None:
        raise AssertionError(f"podman is installed but {tool} is not: apt-get install -y "
                             f"--no-install-recommends {package}")
    return path


def _is_static(path: str) -> bool:
    """True when the ELF file has no PT_INTERP (needs no dynamic loader inside the image)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:            # 64-bit ELF only
            return False
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            if struct.unpack("<I", f.read(4))[0] == 3:      # PT_INTERP
                return False
    return True


def unique_name() -> str:
    """cnp + run id + counter: a network, bridge and container-name prefix (<= 15 bytes)."""
    _counter[0] += 1
    return f"cnp{RUN_ID}{_counter[0]}"


def cni_hash(network: str, container_id: str) -> str:
    """The reference naming scheme's hash: the masquerade chain is "CNI-" + its first 24 hex
    digits, portmap's DNAT chain "CNI-DN-" + its first 21."""
    return hashlib.sha512((network + container_id).encode()).hexdigest()


def sh(*argv, check=True, env=None, timeout=60, input=None,
       own_session=False) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env,
                          timeout=timeout, input=input, start_new_session=own_session)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc


class Podman:
    """One session's podman: private storage and config, the cnish plugin, a busybox image."""

    def __init__(self):
        self.podman = shutil.which("podman")
        self.root = Path(tempfile.mkdtemp(prefix=f"cnish-podman-{RUN_ID}-"))
        self.existed = {d: os.path.exists(d) for d in CREATED_DIRS + (BLOB_CACHE_DIR,)}
        self.nat_tables_before = nft_nat_tables()
        self.plugins = self.root / "plugins"
        self.netd = self.root / "netd"
        for d in (self.plugins, self.netd, self.root / "tmp"):
            d.mkdir()
        self.env = dict(os.environ, CONTAINERS_CONF=str(self.root / "containers.conf"),
                        CONTAINERS_STORAGE_CONF=str(self.root / "storage.conf"))
        self.env.pop("CONTAINER_HOST", None)
        self.env.pop("CONTAINER_CONNECTION", None)

    def setup(self):
        _require("runc", "runc")
        _require("conmon", "conmon")
        for plugin in ("portmap", "tuning"):
            if not os.access(f"/usr/lib/cni/{plugin}", os.X_OK):
                raise AssertionError(f"/usr/lib/cni/{plugin} is missing: apt-get install -y "
                                     "--no-install-recommends containernetworking-plugins")
        exe = cnish_command()
        if len(exe) != 1:
            raise AssertionError("the cnish console script is not installed next to "
                                 f"{exe[0]}: python3 -m pip install '.[test]'")
        # "type": "cnish-bridge" finds it in the first plugin directory; the reference plugins
        # (portmap, tuning) come from /usr/lib/cni. It is a script that runs cnish through a
        # link named cnish-bridge with this run's plan cache: the DEL at a container's exit
        # comes from `podman container cleanup`, which conmon starts without the test's
        # environment, and would leave its plans in the machine's /run/cnish/plans.
        link = self.root / "bin" / "cnish-bridge"
        link.parent.mkdir()
        os.symlink(exe[0], link)
        wrapper = self.plugins / "cnish-bridge"
        wrapper.write_text("#!/bin/sh\n"
                           f"CNISH_PLAN_CACHE={shlex.quote(os.environ['CNISH_PLAN_CACHE'])} "
                           "CNISH_ATTACHMENT_LOCKS="
                           f"{shlex.quote(os.environ.get('CNISH_ATTACHMENT_LOCKS', ''))} "
                           f"exec {shlex.quote(str(link))} \"$@\"\n")
        wrapper.chmod(0o755)
        r = self.root
        (r / "containers.conf").write_text(f"""\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{r}/events.log"
runtime = "runc"
tmp_dir = "{r}/tmp"
[network]
network_backend = "cni"
cni_plugin_dirs = ["{self.plugins}", "/usr/lib/cni"]
network_config_dir = "{self.netd}"
""")
        (r / "storage.conf").write_text(f"""\
[storage]
driver = "overlay"
runroot = "{r}/run"
graphroot = "{r}/storage"
""")
        self.build_image()

    def build_image(self):
        busybox = _require("busybox", "busybox-static")
        busybox = os.path.realpath(busybox)
        if not _is_static(busybox):
            raise AssertionError(f"{busybox} is dynamically linked: the image needs "
                                 "busybox-static (apt-get install -y busybox-static)")
        rootfs = self.root / "rootfs"
        (rootfs / "bin").mkdir(parents=True)
        (rootfs / "etc").mkdir()
        (rootfs / "tmp").mkdir()
        shutil.copy(busybox, rootfs / "bin" / "busybox")
        for applet in APPLETS:
            os.symlink("busybox", rootfs / "bin" / applet)
        (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        (rootfs / "etc" / "group").write_text("root:x:0:\n")
        tar = self.root / "rootfs.tar"
        sh("tar", "-C", rootfs, "-cf", tar, ".")
        self("import", "--change", 'CMD ["/bin/sh"]', tar, IMAGE)

    def __call__(self, *args, check=True, timeout=60) -> subprocess.CompletedProcess:
        # podman runs in a session of its own, so a terminal's Ctrl-C reaches pytest and not a
        # podman half-way through making a container; and a Ctrl-C during `run` waits for it
        # (at most the timeout): killed half-way, it left a namespace (netns-<uuid>) and a
        # conmon that `podman rm` does not know of
        if args and args[0] == "run":
            with interrupts_held():
                return sh(self.podman, *args, check=check, env=self.env, timeout=timeout,
                          own_session=True)
        return sh(self.podman, *args, check=check, env=self.env, timeout=timeout,
                  own_session=True)

    def popen(self, *args, stderr) -> subprocess.Popen:
        return subprocess.Popen([self.podman, *map(str, args)], env=self.env, bufsize=0,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                start_new_session=True)

    def container_ids(self, names) -> set:
        """The ids podman gave containers of these names (its event log keeps them after
        the containers are removed)."""
        ids = set()
        try:
            with open(self.root / "events.log") as f:
                for line in f:
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    if event.get("Type") == "container" and event.get("Name") in names:
                        ids.add(event.get("ID", ""))
        except FileNotFoundError:
            pass
        return {i for i in ids if len(i) == 64}

    def pid(self, container: str) -> int:
        return int(self("inspect", "-f", "{{.State.Pid}}", container).stdout.strip())

    def close(self):
        problems = []
        if os.path.exists(self.env["CONTAINERS_CONF"]):
            for args in (("rm", "-a", "-f", "-t", "0"), ("rmi", "-a", "-f")):
                proc = self(*args, check=False)
                if proc.returncode != 0:
                    problems.append(f"podman {' '.join(args)}: {proc.stderr.strip()}")
        for mount in reversed(_mounts_under(self.root)):      # never delete through a mount
            problems.append(f"podman left {mount} mounted")
            subprocess.run(["umount", "-l", mount], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
        for d in CREATED_DIRS:
            if not self.existed[d] and os.path.isdir(d) and not os.listdir(d):
                os.rmdir(d)
        for table in nft_nat_tables() - self.nat_tables_before:
            remove_if_empty(table)
        if not self.existed[BLOB_CACHE_DIR]:
            # only the blob-info cache podman made, and the directories when empty again: a
            # podman of someone else's may have started using /var/lib/containers since
            with contextlib.suppress(OSError):
                os.unlink(BLOB_CACHE)
            for directory in (os.path.dirname(BLOB_CACHE), BLOB_CACHE_DIR):
                with contextlib.suppress(OSError):
                    os.rmdir(directory)
        return problems


def _mounts_under(root: Path) -> list:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == str(root) or p.startswith(str(root) + "/")]


class Network:
    """A CNI network of this run: its bridge (named like the network) and a 198.19.X.0 subnet."""

    def __init__(self, name: str, third_octet: int, prefix_len: int, main_type: str,
                 chained: list):
        self.name = self.bridge = name
        self.prefix = f"198.19.{third_octet}"
        self.subnet = f"{self.prefix}.0/{prefix_len}"
        self.gateway = f"{self.prefix}.1"
        self.conflist = {
            "cniVersion": "1.0.0", "name": name,
            "plugins": [{
                "type": main_type, "bridge": self.bridge, "isGateway": True, "ipMasq": True,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": self.subnet}]],
                         "routes": [{"dst": "0.0.0.0/0"}]},
            }] + list(chained)}

    def address(self, host: int) -> str:
        return f"{self.prefix}.{host}"

    @property
    def store(self) -> str:
        return os.path.join(NETWORKS_DIR, self.name)


class Networks:
    """The networks, containers and links of one test, and everything they leave on the host.

    `close()` removes them whether the test passed or not: containers first (so podman runs
    the plugins' DEL), then links, this network's nat rules and the chains they jump to,
    portmap's shared chains if this test created them, the store and the result cache, the
    conflists; the forwarding sysctls get their old values back.
    """

    def __init__(self, pm: Podman):
        self.pm = pm
        self.networks = []
        self.containers = []
        self.links = []
        self.saved_sysctls = forwarding()
        self.chains_before = set(nat_chains())

    def create(self, chained=(), prefix_len=24, main_type="cnish-bridge", install=True,
               directory: Path | None = None) -> Network:
        """A network; installed as a podman network unless `install` is false (then its
        conflist is written to `directory`, for the operator CLI)."""
        name = unique_name()
        net = Network(name, free_octet(), prefix_len, main_type, chained)
        self.networks.append(net)
        path = (self.pm.netd if install else directory) / f"{name}.conflist"
        path.write_text(json.dumps(net.conflist, indent=1))
        net.path = path
        return net

    def container(self, net_or_name) -> str:
        name = getattr(net_or_name, "name", net_or_name) + f"-c{len(self.containers)}"
        self.containers.append(name)
        return name

    def link(self, name: str, *spec):
        """`ip link add NAME *spec`, deleted at the end of the test."""
        self.links.append(name)       # first: an interrupt right after the add leaks nothing
        sh("ip", "link", "add", name, *spec)

    def close(self) -> list:
        problems = []
        # The masquerade and portmap chains of each (network, container) pair, by name: a DEL
        # that failed after removing the jumps to them leaves no rule that leads to them. The
        # ids come from podman's event log (a `--rm` container is gone by now).
        ids = self.pm.container_ids(self.containers)
        own_chains = {prefix + cni_hash(net.name, cid)[:length]
                      for net in self.networks for cid in ids
                      for prefix, length in (("CNI-", 24), ("CNI-DN-", 21))}
        for name in self.containers:
            proc = self.pm("rm", "-f", "-t", "0", "--ignore", name, check=False)
            if proc.returncode != 0:
                problems.append(f"podman rm {name}: {proc.stderr.strip()}")
        for net in self.networks:
            for port in bridge_ports(net.bridge):
                sh("ip", "link", "del", port, check=False)
            sh("ip", "link", "del", net.bridge, check=False)
        for name in self.links:
            sh("ip", "link", "del", name, check=False)
        for net in self.networks:
            remove_network_rules(net.name)
        remove_chains([c for c in nat_chains() if c in own_chains])
        # portmap's shared chains, if this test created them and no other container's port
        # mapping (another run's, say) is in them now
        new = [c for c in nat_chains() if c not in self.chains_before
               and c.startswith("CNI-HOSTPORT-")]
        if not any(l.startswith("-A CNI-HOSTPORT-DNAT ") for l in nat_lines()):
            remove_chains(new)
        for cid in ids:             # (tuning's DEL removes it; a test cut short may not reach it)
            for path in glob.glob(os.path.join(TUNING_DIR, f"{cid}_*.json")):
                os.unlink(path)
        for net in self.networks:
            shutil.rmtree(net.store, ignore_errors=True)
            for path in glob.glob(os.path.join(RESULTS_DIR, glob.escape(net.name) + "-*")):
                os.unlink(path)
            try:
                os.unlink(net.path)
            except FileNotFoundError:
                pass
        restore_forwarding(self.saved_sysctls)              # isGateway may have enabled them
        return problems


def free_octet() -> int:
    """X for a 198.19.X.0/24 that no route of this machine uses now (a concurrent run's
    bridge, say), starting from a place that depends on the run id."""
    routes = sh("ip", "-4", "route", "show", "table", "all").stdout
    start = int(RUN_ID, 16) + _counter[0] * 7
    for step in range(256):
        octet = (start + step) % 256
        if f"198.19.{octet}." not in routes:
            return octet
    raise AssertionError("every 198.19.X.0/24 is routed on this machine")


# -- the host's state ---------------------------------------------------------------------------

def bridge_ports(bridge: str) -> list:
    """Names of the links whose master is `bridge`."""
    brif = f"/sys/class/net/{bridge}/brif"
    return sorted(os.listdir(brif)) if os.path.isdir(brif) else []


def nft_nat_tables() -> set:
    """The nftables nat tables there are ("ip nat", "ip6 nat"): iptables-nft makes one at its
    first use of `-t nat` (a listing included: nat_lines below) and never removes it."""
    if shutil.which("nft") is None:
        return set()                    # (no nft: nothing to see, nothing to remove)
    proc = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
    return {line[len("table "):] for line in proc.stdout.splitlines()
            if line.startswith("table ") and line.endswith(" nat")}


BUILTIN_CHAINS = ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")


def remove_if_empty(table: str) -> None:
    """Delete a nat table this session made when nothing is in it but its built-in chains,
    without rules (anything else someone may have put there since keeps it)."""
    proc = subprocess.run(["nft", "list", "table", *table.split()], capture_output=True,
                          text=True)
    for line in (l.strip() for l in proc.stdout.splitlines()):
        if line.startswith("chain ") and line.split()[1] not in BUILTIN_CHAINS:
            return
        if line and not line.startswith(("table ", "chain ", "type ", "}")):
            return                  # a rule, a set, a map...
    if proc.returncode == 0:
        subprocess.run(["nft", "delete", "table", *table.split()], capture_output=True)


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def nat_lines() -> list:
    return sh("iptables", "-w", "-t", "nat", "-S").stdout.splitlines()


def nat_chains() -> list:
    return [l.split()[1] for l in nat_lines() if l.startswith("-N ")]


def remove_network_rules(network: str):
    """Delete every nat rule whose comment names `network` (cnish's masquerade rules, portmap's
    DNAT jumps), then the per-container chains those rules jumped to."""
    marker = f'name: \\"{network}\\"'
    targets = []
    for line in nat_lines():
        if line.startswith("-A ") and marker in line:
            argv = shlex.split(line)
            if "-j" in argv:
                targets.append(argv[argv.index("-j") + 1])
            sh("iptables", "-w", "-t", "nat", "-D", *argv[1:], check=False)
    remove_chains([t for t in targets if t.startswith("CNI-") and not t.startswith("CNI-HOSTPORT-")
                   and t in nat_chains()])


def remove_chains(chains: list):
    """Delete the jumps to these nat chains, then flush and delete them."""
    if not chains:
        return
    for line in nat_lines():
        argv = shlex.split(line)
        if line.startswith("-A ") and "-j" in argv and argv[argv.index("-j") + 1] in chains:
            sh("iptables", "-w", "-t", "nat", "-D", *argv[1:], check=False)
    for chain in chains:
        sh("iptables", "-w", "-t", "nat", "-F", chain, check=False)
    for chain in chains:
        sh("iptables", "-w", "-t", "nat", "-X", chain, check=False)


def reservations(net: Network) -> dict:
    """host-local's reservations of the network: address -> file content (cnish's index
    entries, .cnish-owner-<key>.<address>, must mirror them exactly)."""
    if not os.path.isdir(net.store):
        return {}
    out, index = {}, {}
    for name in os.listdir(net.store):
        if name == "lock" or name.startswith("last_reserved_ip."):
            continue
        with open(os.path.join(net.store, name), newline="") as f:
            (index if name.startswith(".cnish-owner-") else out)[name] = f.read()
    assert {n[len(".cnish-owner-") + 17:]: c for n, c in index.items()} == out, index
    return out


def leftovers(net: Network, container_id: str, veths=(), alone=True) -> list:
    """Everything one container's attachment may have left on the host; [] when clean.
    `alone`: no other container is attached to the network, so its bridge has no ports."""
    problems = []
    for veth in veths:
        if link_exists(veth):
            problems.append(f"link {veth} still exists")
    ports = bridge_ports(net.bridge)
    if alone and ports:
        problems.append(f"bridge {net.bridge} still has ports {ports}")
    digest = cni_hash(net.name, container_id)
    for line in nat_lines():
        if container_id in line or digest[:21] in line:
            problems.append(f"nat table: {line}")
    for ip, owner in reservations(net).items():
        if owner.split("\r\n")[0] == container_id:
            problems.append(f"reservation {net.store}/{ip} ({owner!r})")
    for path in glob.glob(os.path.join(RESULTS_DIR, glob.escape(net.name) + "-*")):
        if container_id in path:
            problems.append(f"cached result {path}")
    if os.path.isdir(TUNING_DIR):
        problems += [f"tuning state {TUNING_DIR}/{f}" for f in os.listdir(TUNING_DIR)
                     if container_id in f]
    return problems


# -- small tools ------------------------------------------------------------------------------

def read_until(proc: subprocess.Popen, marker: str, timeout: float = 30) -> str:
    """Read the process's stdout until `marker` appears (or EOF, or the timeout)."""
    fd, buf = proc.stdout.fileno(), b""
    deadline = time.monotonic() + timeout
    while marker.encode() not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {marker!r} within {timeout} s; output so far: {buf!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
    return buf.decode(errors="replace")


def free_port() -> int:
    """A TCP port nothing on this machine listens on (for portmap's host port)."""
    for _ in range(100):
        port = random.randint(20000, 29999)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free TCP port found in 20000-29999")


def fetch(host: str, port: int, timeout: float = 10) -> bytes:
    """Connect to host:port and read until the peer closes; retry while it refuses."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=3) as s:
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
                if data:
                    return data
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing received from {host}:{port} within {timeout} s")
        time.sleep(0.1)
