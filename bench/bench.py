#!/usr/bin/env python3
"""Benchmark cnish against the reference bridge + host-local plugins, side by side in one run.

Usage (as root; iproute2, iptables, util-linux, procps installed; the plot needs matplotlib,
which the project's `bench` extra installs: `python3 -m pip install '.[bench]'`):

    python3 bench/bench.py --quick          # smoke run: 0 and 20 attached, 5 reps (~0.5-1 min)
    python3 bench/bench.py                  # full run: 0, 100 and 1000 attached, 20 reps (~4-8 min)
    python3 bench/bench.py --levels 0,500 --reps 30 --parallel 20,50 --parallel-levels 0,500

Options: --reference-dir DIR (default /usr/lib/cni), --cnish PATH (default: cnish as a runtime
would exec it — the launcher `cnish install` writes, installed into a temporary directory with
this interpreter and removed afterwards), --out DIR (default bench/out: results.json + results.png),
--levels, --reps, --parallel, --parallel-reps, --parallel-levels, --quick. See --help.

What it does
------------
Everything happens inside private network namespaces that the script creates and removes (also
on error, Ctrl-C or SIGTERM); the machine's own network, iptables and sysctls are never touched.

* Two private "host" namespaces, one per plugin (cnish, reference), so their bridges, nat tables,
  sysctls and host-local stores never mix. The network config is identical for both (cniVersion
  1.0.0, bridge `cnb0` with isGateway + ipMasq, host-local 10.200.0.0/16 with a default route,
  a temporary dataDir of its own); only the plugin binary differs.
* In each host namespace one long-lived helper process (this file, `--serve`, started once with
  `ip netns exec H`) execs the plugin as a runtime would: CNI_* variables in the environment,
  config on stdin, `time.perf_counter()` around the plugin process only. So no `ip netns exec`
  cost is in any figure (it is measured once and reported as `netns_exec_overhead_ms`).
* Each helper creates the container namespaces of its plugin itself, in its own mount namespace
  on a private tmpfs over /run/netns: `ip -n NAME` (which cnish uses) copies the mount table,
  one bind mount per namespace, so each plugin sees as many namespace mounts as it has
  containers, as on a real node, not the other plugin's as well; and the machine's /run/netns
  only ever holds the two host namespaces. Namespaces are created in `ip -batch` runs, outside
  any timing; they vanish with the helper's mount namespace, however the helper ends.
* "Attached" containers are ADDed once per level (sequentially, untimed; both plugins' helpers
  at the same time) and stay on the bridge; levels accumulate (0 -> 100 -> 1000). An attach
  ADD that fails is retried in up to three rounds (and recorded in results.json's errors).
* Per level and repetition, alternating cnish / reference and swapping who goes first every
  repetition (A B, B A, ...): ADD alone (fresh namespace), CHECK (with prevResult), DEL alone
  (prevResult, as libcni passes it), a container lifecycle = 2 x VERSION + ADD + DEL in a fresh
  namespace (what podman does per container), VERSION alone, and cnish's operator dry-run
  `cnish add NET NS --config FILE --dry-run` (cnish only). Ratios are cnish / reference per pair;
  the table shows the median of the per-pair ratios.
* Parallel ADDs (default 20 and 50 at once, at 0 attached): each in its own fresh namespace,
  throughput = ADDs / wall time; then the same containers are DELeted in parallel. Results are
  checked (exit status, no duplicate address).
* Exec counts: once per level, an ADD, CHECK, DEL and VERSION run with a PATH whose first
  directory holds wrappers for ip, iptables, ip6tables, iptables-restore, tc, nft, ... that log
  their name and argv then exec the real tool; CNI_PATH points at wrappers of the plugin
  binaries too (so the reference's exec of host-local is counted). These runs are not timed.
  nsenter and sysctl are not wrapped: cnish enters the container's namespace and writes its
  sysctls in-process (as the Go plugins do), and a wrapper of that name earlier in PATH would
  make it run the real tools instead (runner.py).
* VERSION is asked with the bytes libcni sends, {"cniVersion":"1.0.0"}.
* The kernel floor (for scale, cnish's host namespace, once per repetition): FLOOR_SCRIPT below
  does the kernel work of one cnish ADD on the same bridge in sh, without Python or IPAM, timed
  like a plugin; its ratio between the highest and lowest level is printed under the targets
  as context for the growth target.

Output: a table of medians (ms) and ratios on stdout, a "targets" section (PASS/MISS, report
only: the exit status does not depend on them), `OUT/results.json` (machine info, settings,
every raw sample, summary, exec counts with argv) and `OUT/results.png` (ADD, DEL and lifecycle
latency against attached containers, median with a p10-p90 band).
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

STD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NETNS_DIR = "/var/run/netns"
WRAPPED_TOOLS = ("ip", "iptables", "ip6tables", "iptables-restore", "ip6tables-restore",
                 "iptables-save", "ip6tables-save", "bridge", "tc", "nft",
                 "ethtool", "modprobe")
PLUGINS = ("cnish", "ref")
LABEL = {"cnish": "cnish", "ref": "reference"}
SUBNET = "10.200.0.0/16"
NETWORK = "benchnet"
BRIDGE = "cnb0"
PLUGIN_TIMEOUT = 120
GATEWAY = "10.200.0.1"

# The kernel floor: the kernel work of one cnish bridge ADD on the same bridge, without Python
# and without IPAM, as a POSIX sh script: cnish's three tool processes with the lines that
# change the kernel (the veth pair attached and up; the container's address, link and route;
# the masquerade chain and rules, restored alongside the container's batch), plus the
# container's three sysctls through nsenter, which cnish writes in-process. So its base has ~2 ms
# of process starts more than cnish needs, and its growth with the attached containers is the
# kernel's.
# The addresses come from 10.200.250.0/24, which host-local (allocating from 10.200.0.2 up)
# does not reach in a bench run. Usage: floor.sh NETNS_PATH VETH IP CHAIN [del]
FLOOR_SCRIPT = f"""#!/bin/sh
set -e
netns=$1 veth=$2 ip=$3 chain=$4
if [ "${{5-}}" = del ]; then
    ip link del "$veth"
    printf '*nat\\n-D POSTROUTING -s %s/32 -j %s\\n-F %s\\n-X %s\\nCOMMIT\\n' \\
        "$ip" "$chain" "$chain" "$chain" | iptables-restore -w --noflush
    exit 0
fi
printf 'link add %s type veth peer name eth0 netns %s\\nlink set %s master {BRIDGE} up\\n' \\
    "$veth" "$netns" "$veth" | ip -batch -
nsenter --net="$netns" sh -c 'echo 1 > /proc/sys/net/ipv4/conf/eth0/arp_notify
                               echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad
                               echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_ra'
printf '*nat\\n:%s - [0:0]\\n-A %s -d {SUBNET} -j ACCEPT\\n-A %s ! -d 224.0.0.0/4 -j MASQUERADE\\n-A POSTROUTING -s %s/32 -j %s\\nCOMMIT\\n' \\
    "$chain" "$chain" "$chain" "$ip" "$chain" | iptables-restore -w --noflush &
printf 'addr add %s/16 dev eth0\\nlink set eth0 up\\nroute add default via {GATEWAY} dev eth0\\n' \\
    "$ip" | nsenter --net="$netns" ip -batch -
wait $!
"""


# =============================================================================================
# The helper: runs inside one private host namespace, execs plugins and times them.
# Protocol: one JSON request per line on stdin, one JSON response per line on stdout.
# =============================================================================================

def serve() -> None:
    owned = []                       # namespaces this helper created (in its mount namespace)
    out = sys.stdout
    # `ip netns exec` gave this process a mount namespace of its own (a slave of the machine's:
    # nothing mounted here propagates back). A private tmpfs on the namespace directory keeps
    # this plugin's container namespaces out of the machine's /run/netns and out of the other
    # plugin's helper; they vanish with this mount namespace however the helper ends.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=16m", "cnish-bench-netns",
                    os.path.realpath(NETNS_DIR)], check=True)

    def run_one(cmd, prev_out=None):
        stdin = cmd.get("stdin") or ""
        if cmd.get("conf") is not None:
            conf = cmd["conf"]
            if prev_out is not None:
                conf = dict(conf, prevResult=json.loads(prev_out))
            stdin = json.dumps(conf)
        data = stdin.encode()
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd["argv"], input=data, capture_output=True, env=cmd["env"],
                                  timeout=PLUGIN_TIMEOUT)
            rc, so, se = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired:
            rc, so, se = -9, b"", b"timed out"
        ms = (time.perf_counter() - t0) * 1000.0
        return {"rc": rc, "ms": ms, "out": so.decode(errors="replace"),
                "err": se.decode(errors="replace")[-4000:]}

    def op_seq(req):
        results = []
        t0 = time.perf_counter()
        for cmd in req["cmds"]:
            prev = cmd.get("prev_from")
            prev_out = results[prev]["out"] if prev is not None else None
            if prev is not None and results[prev]["rc"] != 0:
                prev_out = None
            results.append(run_one(cmd, prev_out))
        total = (time.perf_counter() - t0) * 1000.0
        return {"total_ms": total, "results": results}

    def op_parallel(req):
        cmds = req["cmds"]
        results = [None] * len(cmds)

        def work(i):
            results[i] = run_one(cmds[i])
        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(cmds))]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = (time.perf_counter() - t0) * 1000.0
        return {"wall_ms": wall, "results": results}

    def op_attach(req):
        ms, failures = [], []
        for cmd in req["cmds"]:
            r = run_one(cmd)
            ms.append(r["ms"])
            if r["rc"] != 0:
                failures.append({"env": cmd["env"], "rc": r["rc"], "out": r["out"][-2000:],
                                 "err": r["err"][-2000:]})
        return {"ms": ms, "failures": failures}

    def ip_batch(lines):
        proc = subprocess.run(["ip", "-force", "-batch", "-"], input="\n".join(lines) + "\n",
                              capture_output=True, text=True)
        return proc.returncode, proc.stderr

    def op_netns(req):
        names = req["names"]
        if req["action"] == "add":
            owned.extend(names)
            rc, err = ip_batch([f"netns add {n}" for n in names])
        else:
            rc, err = ip_batch([f"netns del {n}" for n in names])
            gone = set(names)
            owned[:] = [n for n in owned if n not in gone]
        return {"rc": rc, "err": err[-2000:]}

    handlers = {"seq": op_seq, "parallel": op_parallel, "attach": op_attach, "netns": op_netns,
                "ping": lambda req: {"pid": os.getpid()}}
    try:
        for line in sys.stdin:
            req = json.loads(line)
            if req["op"] == "quit":
                break
            try:
                resp = handlers[req["op"]](req)
            except Exception as exc:      # report, keep serving
                resp = {"error": f"{type(exc).__name__}: {exc}"}
            out.write(json.dumps(resp) + "\n")
            out.flush()
    finally:
        if owned:
            ip_batch([f"netns del {n}" for n in owned])


# =============================================================================================
# The driver (in the machine's own namespaces, but it only creates and deletes namespaces there)
# =============================================================================================

class Interrupted(Exception):
    pass


def _launcher_python(path: str) -> str | None:
    """The interpreter a `cnish install` launcher runs (its `python=` line), with its version."""
    try:
        with open(path, errors="replace") as f:
            line = next((l for l in f if l.startswith("python=")), None)
    except OSError:
        return None
    if line is None:
        return None
    python = line[len("python="):].strip().strip("'")
    version = subprocess.run([python, "-IS", "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True).stdout.strip()
    return f"{python} ({version})"


def _on_signal(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


def sh(*argv, check=True, input=None):
    proc = subprocess.run(argv, capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def cid_for(label: str) -> str:
    """A 64-hex container id, like podman's; the same label gives the same id for both plugins."""
    return hashlib.sha256(label.encode()).hexdigest()


def stats(values):
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return {"n": 0, "median": None, "p10": None, "p90": None, "min": None, "max": None}
    if len(vals) >= 2:
        q = statistics.quantiles(vals, n=10, method="inclusive")
        p10, p90 = q[0], q[8]
    else:
        p10 = p90 = vals[0]
    return {"n": len(vals), "median": statistics.median(vals), "p10": p10, "p90": p90,
            "min": vals[0], "max": vals[-1]}


class Helper:
    """A helper process inside one host namespace."""

    def __init__(self, hostns: str):
        self.hostns = hostns
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", hostns, sys.executable, "-I", "-S", str(Path(__file__).resolve()),
             "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
            env={"PATH": STD_PATH, "LC_ALL": "C"})
        self.call({"op": "ping"})

    def send(self, req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()

    def recv(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the helper in {self.hostns} exited ({self.proc.poll()})")
        resp = json.loads(line)
        if "error" in resp:
            raise RuntimeError(f"helper in {self.hostns}: {resp['error']}")
        return resp

    def call(self, req):
        self.send(req)
        return self.recv()

    def close(self, graceful: bool):
        if self.proc.poll() is not None:
            return
        if graceful:
            try:
                self.send({"op": "quit"})
                self.proc.stdin.close()
                self.proc.wait(timeout=120)
                return
            except (OSError, subprocess.TimeoutExpired, ValueError):
                pass
        try:   # its own process group: the helper and the plugin processes it started
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass


class Bench:
    def __init__(self, args):
        self.args = args
        self.run_id = uuid.uuid4().hex[:6]
        self.prefix = f"cnb{self.run_id}"
        self.tmp = self.plan_cache = self.locks = None
        self.helpers = {}
        self.hostns = {}
        self.samples = {}          # key -> plugin -> list of values (None = failed)
        self.errors = []
        self.exec_counts = {}
        self.attach_phase = {}
        self.attached = 0
        self.info = {}
        self.started = time.monotonic()

    # -- set-up ----------------------------------------------------------------------------------

    def setup(self):
        a = self.args
        self.tmp = Path(tempfile.mkdtemp(prefix="cnish-bench-"))
        # cnish's plan cache: on a tmpfs like its default /run/cnish/plans, but the bench's own,
        # removed at the end (the bench leaves nothing behind)
        self.plan_cache = tempfile.mkdtemp(prefix="cnish-bench-plans-", dir="/run")
        # and its attachment locks (cnish/attachlock.py; default /run/cnish/attachments)
        self.locks = tempfile.mkdtemp(prefix="cnish-bench-locks-", dir="/run")
        self.binary = {"cnish": str(Path(a.cnish).absolute()),
                       "ref": str(Path(a.reference_dir) / "bridge")}
        for p, b in self.binary.items():
            if not os.access(b, os.X_OK):
                raise SystemExit(f"bench: {LABEL[p]} plugin {b} is not an executable")
        if not os.access(Path(a.reference_dir) / "host-local", os.X_OK):
            raise SystemExit(f"bench: no host-local in {a.reference_dir}")

        # Tool wrappers (exec counting): log name + argv (and batch input), then exec the tool.
        toolwrap = self.tmp / "toolwrap"
        toolwrap.mkdir()
        for tool in WRAPPED_TOOLS:
            real = shutil.which(tool, path=STD_PATH)
            if real:
                self._wrapper(toolwrap / tool, tool, real)
        self.toolwrap = str(toolwrap)
        (self.tmp / "execlog").mkdir()
        self.floor = self.tmp / "floor.sh"
        self.floor.write_text(FLOOR_SCRIPT)
        self.floor.chmod(0o755)

        self.conf, self.cnipath, self.cniwrap, self.conffile = {}, {}, {}, {}
        for p in PLUGINS:
            base = self.tmp / p
            base.mkdir()
            cnipath, cniwrap = base / "cnipath", base / "cniwrap"
            cnipath.mkdir()
            cniwrap.mkdir()
            if p == "ref":
                cnipath = Path(a.reference_dir)
                names = sorted(n for n in os.listdir(cnipath) if os.access(cnipath / n, os.X_OK))
            else:   # cnish answers to these names when a plugin execs another by type
                names = ["bridge", "host-local"]
                for n in names:
                    os.symlink(self.binary["cnish"], cnipath / n)
            for n in names:
                self._wrapper(cniwrap / n, "plugin:" + n, str(cnipath / n), capture=False)
            self.cnipath[p], self.cniwrap[p] = str(cnipath), str(cniwrap)
            self.conf[p] = {
                "cniVersion": "1.0.0", "name": NETWORK, "type": "bridge", "bridge": BRIDGE,
                "isGateway": True, "ipMasq": True,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]],
                         "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(base / "networks")}}
            self.conffile[p] = base / f"{NETWORK}.conf"
            self.conffile[p].write_text(json.dumps(self.conf[p], indent=2) + "\n")

        # Host namespaces (created from here, so `ip netns exec` can find them) and helpers.
        for p in PLUGINS:
            name = f"{self.prefix}h{p[0]}"
            self.hostns[p] = name
            sh("ip", "netns", "add", name)
            sh("ip", "-n", name, "link", "set", "lo", "up")
        for p in PLUGINS:
            self.helpers[p] = Helper(self.hostns[p])

        self.info = self._machine_info()
        self.info["netns_exec_overhead_ms"] = self._netns_exec_overhead()

    def _wrapper(self, path: Path, name: str, real: str, capture: bool = True):
        """A PATH wrapper: log the name and argv, then exec the real program; what a batch or
        a restore reads from stdin is logged as "| line"."""
        lines = [
            "#!/bin/sh",
            'if [ -n "$CNISH_BENCH_EXECLOG" ]; then',
            f'  line="{name}"; for a in "$@"; do line="$line $a"; done',
        ]
        # Each record is written by one printf (one append): tools run concurrently.
        if capture:
            lines += [
                '  case " $* " in *" -batch - "*) b=1;; *) b=;; esac',
                *(['  b=1'] if name.endswith("-restore") else []),
                '  if [ -n "$b" ]; then',
                '    in=$(cat); block=$(printf "%s\\n" "$in" | sed "s/^/    | /")',
                '    printf "%s\\n%s\\n" "$line" "$block" >> "$CNISH_BENCH_EXECLOG"',
                f'    printf "%s\\n" "$in" | {real} "$@"; exit $?',
                '  fi',
            ]
        lines += ['  printf "%s\\n" "$line" >> "$CNISH_BENCH_EXECLOG"']
        lines += ["fi", f'exec {real} "$@"', ""]
        path.write_text("\n".join(lines))
        path.chmod(0o755)

    def _machine_info(self) -> dict:
        cpu = "unknown"
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        repo = Path(__file__).resolve().parent.parent
        git = sh("git", "-C", str(repo), "rev-parse", "--short", "HEAD", check=False).stdout.strip()
        dirty = sh("git", "-C", str(repo), "status", "--porcelain", "--", "cnish", "templates",
                   "plans", check=False).stdout.strip()
        ref_pkg = sh("dpkg-query", "-W", "-f", "${Version}", "containernetworking-plugins",
                     check=False).stdout.strip() if shutil.which("dpkg-query") else ""
        iptables = sh("iptables", "--version", check=False).stdout.strip()
        return {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "cpu_model": cpu, "cpus": os.cpu_count(), "kernel": platform.release(),
            "uname": " ".join(platform.uname()), "python": sys.version.split()[0],
            "python_executable": sys.executable, "loadavg_start": os.getloadavg(),
            "cnish_launcher_python": _launcher_python(self.binary["cnish"]),
            "cnish_binary": self.binary["cnish"], "cnish_git": git + ("-dirty" if dirty else ""),
            "reference_dir": self.args.reference_dir,
            "reference_package": ref_pkg or None, "iptables": iptables,
        }

    def _netns_exec_overhead(self) -> float:
        ts = []
        for _ in range(10):
            t0 = time.perf_counter()
            sh("ip", "netns", "exec", self.hostns["ref"], "true")
            ts.append((time.perf_counter() - t0) * 1000.0)
        return statistics.median(ts)

    # -- building commands -----------------------------------------------------------------------

    def env(self, p, command, cid="", netns="", count_log=None):
        e = {"PATH": STD_PATH, "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
             "CNI_NETNS": f"{NETNS_DIR}/{netns}" if netns else "",
             "CNI_IFNAME": "eth0" if command != "VERSION" else "",
             "CNI_PATH": self.cnipath[p], "CNI_ARGS": "", "CNISH_PLAN_CACHE": self.plan_cache,
             "CNISH_ATTACHMENT_LOCKS": self.locks}
        if count_log:
            e.update(PATH=self.toolwrap + ":" + STD_PATH, CNI_PATH=self.cniwrap[p],
                     CNISH_BENCH_EXECLOG=count_log)
        return e

    def cmd(self, p, command, cid="", netns="", prev=None, count_log=None):
        if command == "VERSION":
            conf = None
            stdin = '{"cniVersion":"1.0.0"}'        # exactly what libcni sends
        else:
            conf = self.conf[p] if prev is None else dict(self.conf[p], prevResult=json.loads(prev))
            stdin = json.dumps(conf)
        return {"argv": [self.binary[p]], "env": self.env(p, command, cid, netns, count_log),
                "stdin": stdin}

    # -- recording -------------------------------------------------------------------------------

    def record(self, key, p, value):
        self.samples.setdefault(key, {q: [] for q in PLUGINS})[p].append(value)

    def check_ok(self, what, p, r):
        if r["rc"] == 0:
            return True
        self.errors.append({"what": what, "plugin": p, "rc": r["rc"], "out": r["out"][-1000:],
                            "err": r["err"][-1000:]})
        print(f"  ! {LABEL[p]} {what} failed ({r['rc']}): {(r['out'] or r['err']).strip()[:300]}",
              file=sys.stderr)
        return False

    # -- namespaces ------------------------------------------------------------------------------

    def netns(self, action, names_by_plugin):
        for p, names in names_by_plugin.items():
            if names:
                self.helpers[p].send({"op": "netns", "action": action, "names": names})
        for p, names in names_by_plugin.items():
            if names:
                resp = self.helpers[p].recv()
                if resp["rc"] != 0 and action == "add":
                    raise RuntimeError(f"creating namespaces failed: {resp['err']}")

    def ns(self, p, tag):
        return f"{self.prefix}{p[0]}{tag}"

    # -- phases ----------------------------------------------------------------------------------

    def warm_up(self):
        """One ADD + DEL per plugin: the bridge, its address and the nat table exist afterwards
        (as on a node that has run a container), and caches (page cache, .pyc) are warm."""
        names = {p: [self.ns(p, "w")] for p in PLUGINS}
        self.netns("add", names)
        for p in PLUGINS:
            cid = cid_for("warm-up")
            for command in ("VERSION", "ADD", "DEL"):
                r = self._one(p, self.cmd(p, command, cid, names[p][0]))
                if r["rc"] != 0:
                    raise RuntimeError(f"{LABEL[p]} warm-up {command} failed ({r['rc']}): "
                                       f"{r['out'].strip()} {r['err'].strip()[-1500:]}")
        self.netns("del", names)

    def attach(self, level):
        """ADD containers until `level` are attached (untimed; both plugins at the same time)."""
        todo = range(self.attached, level)
        if not todo:
            return
        print(f"attaching containers {self.attached} -> {level} (untimed) ...", flush=True)
        t0 = time.monotonic()
        names = {p: [self.ns(p, f"a{i}") for i in todo] for p in PLUGINS}
        self.netns("add", names)
        for p in PLUGINS:
            cmds = [self.cmd(p, "ADD", cid_for(f"attached-{i}"), names[p][k])
                    for k, i in enumerate(todo)]
            self.helpers[p].send({"op": "attach", "cmds": cmds})
        failed = {}
        for p in PLUGINS:
            resp = self.helpers[p].recv()
            self.attach_phase.setdefault(p, []).extend(resp["ms"])
            failed[p] = resp["failures"]
        # A transient failure (say, cnish being edited during the run) is retried, in rounds.
        for p in PLUGINS:
            pending = []
            for f in failed[p]:
                env = f["env"]
                pending.append((env["CNI_CONTAINERID"], env["CNI_NETNS"].rsplit("/", 1)[1]))
                self.errors.append({"what": f"attach ADD ({env['CNI_CONTAINERID'][:12]})",
                                    "plugin": p, "rc": f["rc"], "out": f["out"][-1000:],
                                    "err": f["err"][-1000:]})
            for delay in (1, 5, 15):
                if not pending:
                    break
                print(f"  retrying {len(pending)} failed {LABEL[p]} ADDs in {delay} s", flush=True)
                time.sleep(delay)
                still = []
                for cid, netns in pending:
                    r = self.helpers[p].call({"op": "seq", "cmds": [
                        self.cmd(p, "DEL", cid, netns), self.cmd(p, "ADD", cid, netns)]})
                    r = r["results"][1]
                    if r["rc"] != 0:
                        still.append((cid, netns))
                pending = still
            if pending:
                raise RuntimeError(f"{LABEL[p]}: {len(pending)} attach ADDs still fail after 3 "
                                   f"retries: rc {r['rc']} {r['out'].strip()} "
                                   f"{r['err'].strip()[-1500:]}")
        self.attached = level
        print(f"  done in {time.monotonic() - t0:.1f} s", flush=True)

    def count_execs(self, level):
        """One ADD, CHECK, DEL and VERSION per plugin with the wrappers first in PATH."""
        names = {p: [self.ns(p, f"x{level}")] for p in PLUGINS}
        self.netns("add", names)
        logs = self.tmp / "execlog"
        for p in PLUGINS:
            h = self.helpers[p]
            cid = cid_for(f"count-{level}")
            counts = {}
            prev = None
            for command in ("VERSION", "ADD", "CHECK", "DEL"):
                log = logs / f"{p}-{level}-{command}.log"
                log.touch()
                c = self.cmd(p, command, cid, names[p][0], prev=prev if command != "ADD" else None,
                             count_log=str(log))
                r = h.call({"op": "seq", "cmds": [c]})["results"][0]
                self.check_ok(f"counted {command} at {level}", p, r)
                if command == "ADD" and r["rc"] == 0:
                    prev = r["out"]
                lines = log.read_text().splitlines()
                tally = {}
                for l in lines:
                    if not l.startswith(" "):
                        tool = l.split(" ", 1)[0]
                        tally[tool] = tally.get(tool, 0) + 1
                counts[command] = {"counts": tally,
                                   "processes": sum(n for t, n in tally.items()
                                                    if not t.startswith("plugin:")),
                                   "log": lines}
            self.exec_counts.setdefault(str(level), {})[p] = counts
        self.netns("del", names)

    def measure_level(self, level):
        a = self.args
        reps = a.reps
        par = a.parallel if level in a.parallel_levels else []
        print(f"measuring at {level} attached: {reps} reps"
              + (f", parallel {','.join(map(str, par))} x {a.parallel_reps}" if par else ""),
              flush=True)
        t0 = time.monotonic()
        fresh = {p: [] for p in PLUGINS}
        for p in PLUGINS:
            for r in range(reps):
                fresh[p] += [self.ns(p, f"f{level}-{r}"), self.ns(p, f"l{level}-{r}")]
                if p == "cnish":
                    fresh[p].append(self.ns(p, f"k{level}-{r}"))
            for n in par:
                for k in range(a.parallel_reps):
                    fresh[p] += [self.ns(p, f"p{level}-{n}-{k}-{i}") for i in range(n)]
        self.netns("add", fresh)

        for rep in range(reps):
            order = PLUGINS if rep % 2 == 0 else PLUGINS[::-1]
            cid = cid_for(f"single-{level}-{rep}")
            lcid = cid_for(f"lifecycle-{level}-{rep}")
            ns = {p: self.ns(p, f"f{level}-{rep}") for p in PLUGINS}
            lns = {p: self.ns(p, f"l{level}-{rep}") for p in PLUGINS}
            added = {}
            for p in order:                                   # ADD alone
                r = self._one(p, self.cmd(p, "ADD", cid, ns[p]))
                ok = self.check_ok(f"ADD at {level}", p, r)
                self.record(f"add@{level}", p, r["ms"] if ok else None)
                added[p] = r["out"] if ok else None
            for p in order:                                   # CHECK with prevResult
                if added[p] is None:
                    self.record(f"check@{level}", p, None)
                    continue
                r = self._one(p, self.cmd(p, "CHECK", cid, ns[p], prev=added[p]))
                ok = self.check_ok(f"CHECK at {level}", p, r)
                self.record(f"check@{level}", p, r["ms"] if ok else None)
            for p in order:                                   # DEL alone, with prevResult
                r = self._one(p, self.cmd(p, "DEL", cid, ns[p], prev=added[p]))
                ok = self.check_ok(f"DEL at {level}", p, r)
                self.record(f"del@{level}", p, r["ms"] if ok and added[p] else None)
            for p in order:                                   # lifecycle
                cmds = [self.cmd(p, "VERSION"), self.cmd(p, "VERSION"),
                        self.cmd(p, "ADD", lcid, lns[p]), self.cmd(p, "DEL", lcid, lns[p])]
                cmds[3]["conf"] = self.conf[p]
                cmds[3]["prev_from"] = 2
                resp = self.helpers[p].call({"op": "seq", "cmds": cmds})
                ok = all([self.check_ok(f"lifecycle {c} at {level}", p, r)
                          for c, r in zip(("VERSION", "VERSION", "ADD", "DEL"), resp["results"])])
                self.record(f"lifecycle@{level}", p, resp["total_ms"] if ok else None)
                self.record(f"lifecycle_parts@{level}", p,
                            [r["ms"] for r in resp["results"]] if ok else None)
            for p in order:                                   # VERSION alone
                r = self._one(p, self.cmd(p, "VERSION"))
                ok = self.check_ok(f"VERSION at {level}", p, r)
                self.record(f"version@{level}", p, r["ms"] if ok else None)
            # the operator's dry-run (cnish only, whole process)
            r = self._one("cnish", {
                "argv": [self.binary["cnish"], "add", NETWORK, ns["cnish"], "--config",
                         str(self.conffile["cnish"]), "--dry-run"],
                "env": {"PATH": STD_PATH, "CNI_PATH": self.cnipath["cnish"],
                        "CNISH_PLAN_CACHE": self.plan_cache,
                        "CNISH_ATTACHMENT_LOCKS": self.locks}, "stdin": ""})
            ok = self.check_ok(f"dry-run at {level}", "cnish", r)
            self.record(f"dryrun@{level}", "cnish", r["ms"] if ok else None)
            self._floor(level, rep)

        for n in par:
            for k in range(a.parallel_reps):
                order = PLUGINS if k % 2 == 0 else PLUGINS[::-1]
                for p in order:
                    self._parallel(p, level, n, k)
        self.netns("del", fresh)
        print(f"  done in {time.monotonic() - t0:.1f} s", flush=True)

    def _floor(self, level, rep):
        """The kernel floor's ADD (timed) on cnish's bridge, then its clean-up (untimed)."""
        args = [f"{NETNS_DIR}/{self.ns('cnish', f'k{level}-{rep}')}", f"flr{level}x{rep}",
                f"10.200.250.{rep + 2}", f"CNISH-FLOOR-{level}-{rep}"]
        cmd = {"argv": [str(self.floor), *args], "env": {"PATH": STD_PATH}, "stdin": ""}
        r = self._one("cnish", cmd)
        ok = self.check_ok(f"kernel floor ADD at {level}", "cnish", r)
        self.record(f"floor@{level}", "cnish", r["ms"] if ok else None)
        r = self._one("cnish", dict(cmd, argv=cmd["argv"] + ["del"]))
        self.check_ok(f"kernel floor clean-up at {level}", "cnish", r)

    def _one(self, p, cmd):
        return self.helpers[p].call({"op": "seq", "cmds": [cmd]})["results"][0]

    def _parallel(self, p, level, n, k):
        names = [self.ns(p, f"p{level}-{n}-{k}-{i}") for i in range(n)]
        cids = [cid_for(f"parallel-{level}-{n}-{k}-{i}") for i in range(n)]
        h = self.helpers[p]
        resp = h.call({"op": "parallel",
                       "cmds": [self.cmd(p, "ADD", c, ns) for c, ns in zip(cids, names)]})
        res = resp["results"]
        ok = [self.check_ok(f"parallel ADD x{n} at {level}", p, r) for r in res]
        addresses = []
        for r, good in zip(res, ok):
            if good:
                try:
                    addresses += [ip["address"] for ip in json.loads(r["out"]).get("ips", [])]
                except (ValueError, AttributeError):
                    pass
        dups = len(addresses) - len(set(addresses))
        if dups:
            self.errors.append({"what": f"parallel ADD x{n} at {level}", "plugin": p,
                                "duplicates": dups})
            print(f"  ! {LABEL[p]}: {dups} duplicate addresses in {n} parallel ADDs", file=sys.stderr)
        all_ok = all(ok) and not dups
        self.record(f"par{n}_add_per_s@{level}", p, n / (resp["wall_ms"] / 1000.0) if all_ok else None)
        self.record(f"par{n}_add_wall@{level}", p, resp["wall_ms"] if all_ok else None)
        self.samples.setdefault(f"par{n}_add_each@{level}", {q: [] for q in PLUGINS})[p].extend(
            r["ms"] for r, good in zip(res, ok) if good)
        dels = [self.cmd(p, "DEL", c, ns, prev=r["out"] if good else None)
                for c, ns, r, good in zip(cids, names, res, ok)]
        dresp = h.call({"op": "parallel", "cmds": dels})
        dok = all([self.check_ok(f"parallel DEL x{n} at {level}", p, r) for r in dresp["results"]])
        self.record(f"par{n}_del_per_s@{level}", p, n / (dresp["wall_ms"] / 1000.0) if dok else None)

    # -- the whole run ---------------------------------------------------------------------------

    def run(self):
        print("warming up (one ADD + DEL per plugin: bridge, nat table, caches) ...", flush=True)
        self.warm_up()
        for level in self.args.levels:
            self.attach(level)
            self.count_execs(level)
            self.measure_level(level)

    # -- cleanup ---------------------------------------------------------------------------------

    def cleanup(self, graceful: bool):
        for h in self.helpers.values():
            h.close(graceful)
        # Whatever is left under our prefix: host namespaces (mounted here) and the files of the
        # helpers' container namespaces (their mounts vanished with the helpers' mount namespaces).
        try:
            left = [n for n in os.listdir(NETNS_DIR) if n.startswith(self.prefix)]
        except FileNotFoundError:
            left = []
        if left:
            subprocess.run(["ip", "-force", "-batch", "-"],
                           input="".join(f"netns del {n}\n" for n in left),
                           capture_output=True, text=True)
            for n in left:
                try:
                    os.unlink(os.path.join(NETNS_DIR, n))
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    print(f"bench: could not remove {NETNS_DIR}/{n}: {exc}", file=sys.stderr)
        for path in (self.tmp, self.plan_cache, self.locks):
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)

    # -- report ----------------------------------------------------------------------------------

    def summarize(self):
        rows = []
        levels = self.args.levels

        def add_row(key, what, level, unit="ms", ratio=True, higher_is_better=False):
            s = self.samples.get(key)
            if not s:
                return
            row = {"key": key, "what": what, "attached": level, "unit": unit,
                   "cnish": stats(s["cnish"]), "ref": stats(s["ref"]) if ratio else None,
                   "ratio": None, "ratio_of_medians": None}
            if ratio:
                pairs = [c / r for c, r in zip(s["cnish"], s["ref"])
                         if c is not None and r is not None and r > 0]
                row["ratio"] = statistics.median(pairs) if pairs else None
                row["pairs"] = len(pairs)
                cm, rm = row["cnish"]["median"], row["ref"]["median"]
                row["ratio_of_medians"] = cm / rm if cm and rm else None
            rows.append(row)

        for kind, what in (("lifecycle", "lifecycle 2xVERSION+ADD+DEL"), ("add", "ADD"),
                           ("del", "DEL"), ("check", "CHECK"), ("version", "VERSION")):
            for level in levels:
                add_row(f"{kind}@{level}", what, level)
        for level in levels:
            for n in self.args.parallel:
                add_row(f"par{n}_add_per_s@{level}", f"{n} parallel ADDs", level, "ADD/s")
                add_row(f"par{n}_del_per_s@{level}", f"{n} parallel DELs", level, "DEL/s")
        for level in levels:
            add_row(f"dryrun@{level}", "cnish add --dry-run (CLI)", level, ratio=False)
        for level in levels:
            add_row(f"floor@{level}", "kernel floor ADD (sh, no Py)", level, ratio=False)
        return rows

    def targets(self, rows):
        by = {r["key"]: r for r in rows}
        lo, hi = min(self.args.levels), max(self.args.levels)
        out = []

        def target(name, value, op, limit):
            status = "n/a" if value is None else (
                "PASS" if (value <= limit if op == "<=" else value >= limit) else "MISS")
            out.append({"figure": name, "value": value, "target": f"{op} {limit:g}",
                        "status": status})

        def ratio(key):
            r = by.get(key)
            return r["ratio"] if r else None

        def med(key, p="cnish"):
            r = by.get(key)
            return r[p]["median"] if r and r[p] else None

        target(f"lifecycle cnish/ref at {lo} attached", ratio(f"lifecycle@{lo}"), "<=", 0.8)
        target(f"lifecycle cnish/ref at {hi} attached", ratio(f"lifecycle@{hi}"), "<=", 0.5)
        target(f"ADD cnish/ref at {lo} attached", ratio(f"add@{lo}"), "<=", 1.0)
        a_lo, a_hi = med(f"add@{lo}"), med(f"add@{hi}")
        target(f"cnish ADD at {hi} / at {lo} attached", a_hi / a_lo if a_lo and a_hi else None,
               "<=", 1.3)
        pl = min(self.args.parallel_levels) if self.args.parallel_levels else lo
        pn = max(self.args.parallel) if self.args.parallel else None
        if pn:
            target(f"{pn} parallel ADDs throughput cnish/ref at {pl} attached",
                   ratio(f"par{pn}_add_per_s@{pl}"), ">=", 1.2)
        target(f"dry-run median ms at {lo} attached", med(f"dryrun@{lo}"), "<=", 150)
        f_lo, f_hi = med(f"floor@{lo}"), med(f"floor@{hi}")
        if f_lo and f_hi:     # context for the growth target: the kernel's own growth
            out.append({"figure": f"kernel floor ADD at {hi} / at {lo} attached (context)",
                        "value": f_hi / f_lo, "target": "", "status": "info"})
        return out

    def report(self, rows, targets, elapsed):
        def f(v, d=1):
            return "-" if v is None else f"{v:.{d}f}"

        def band(s):
            return "" if not s or s["median"] is None else f"({f(s['p10'])}-{f(s['p90'])})"

        i = self.info
        print()
        print(f"cnish vs reference - {i['date']}, {i['cpu_model']} x{i['cpus']}, kernel {i['kernel']}, "
              f"cnish {i['cnish_git']} on {i.get('cnish_launcher_python') or '?'}, "
              f"reference {i['reference_package'] or '?'}")
        print(f"medians (p10-p90); ratio = median of per-pair cnish/ref; "
              f"`ip netns exec` overhead {i['netns_exec_overhead_ms']:.1f} ms is in no figure")
        head = f"{'what':<30} {'attached':>8} {'n':>3}  {'cnish':>22}  {'reference':>22}  {'cnish/ref':>9}"
        print(head)
        print("-" * len(head))
        for r in rows:
            unit = r["unit"]
            c = f"{f(r['cnish']['median'])} {band(r['cnish'])}"
            ref = f"{f(r['ref']['median'])} {band(r['ref'])}" if r["ref"] else ""
            ratio = f(r["ratio"], 2) if r["ref"] else ""
            what = r["what"] + ("" if unit == "ms" else f" ({unit})")
            print(f"{what:<30} {r['attached']:>8} {r['cnish']['n']:>3}  {c:>22}  {ref:>22}  {ratio:>9}")
        print()
        print("tool processes per operation (ip, iptables*, tc, nft, ...; plugin:X = an exec of "
              "CNI plugin X, not counted)")
        levels = list(self.exec_counts)
        for p in PLUGINS:
            for command in ("VERSION", "ADD", "CHECK", "DEL"):
                seen = {}
                for level in levels:
                    c = self.exec_counts[level].get(p, {}).get(command)
                    if c is None:
                        continue
                    detail = ", ".join(f"{t} {n}" for t, n in sorted(c["counts"].items())) or "none"
                    seen.setdefault((c["processes"], detail), []).append(level)
                for (n, detail), at in seen.items():
                    where = "all levels" if len(seen) == 1 else "at " + ",".join(at)
                    print(f"  {LABEL[p]:<9} {command:<7} {n:>2}  {detail}  [{where}]")
        print()
        print("targets (reported, never enforced)")
        for t in targets:
            v = t["value"]
            vs = "-" if v is None else (f"{v:.0f} ms" if "ms" in t["figure"] else f"{v:.2f}")
            print(f"  {t['figure']:<52} {vs:>9}  {t['target']:<7} {t['status']}")
        if self.errors:
            print(f"\n{len(self.errors)} failed plugin runs (excluded from the figures; "
                  "details in results.json)")
        print(f"\ntotal time {elapsed:.0f} s")

    def write(self, rows, targets, elapsed):
        out = Path(self.args.out)
        out.mkdir(parents=True, exist_ok=True)
        self.info["loadavg_end"] = os.getloadavg()
        doc = {
            "format": "cnish-bench/1",
            "machine": self.info,
            "settings": {"levels": self.args.levels, "reps": self.args.reps,
                         "parallel": self.args.parallel, "parallel_reps": self.args.parallel_reps,
                         "parallel_levels": self.args.parallel_levels, "quick": self.args.quick,
                         "config": {p: self.conf[p] for p in PLUGINS},
                         "binaries": self.binary},
            "duration_s": elapsed,
            "summary": rows,
            "targets": targets,
            "exec_counts": self.exec_counts,
            "samples": self.samples,
            "attach_phase_ms": self.attach_phase,
            "errors": self.errors,
        }
        path = out / "results.json"
        path.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {path}")
        self.plot(rows, out / "results.png")

    def plot(self, rows, path):
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("matplotlib is not installed: no plot. The project's bench extra installs it: "
                  "python3 -m pip install '.[bench]'")
            return
        kinds = (("add", "ADD"), ("del", "DEL"), ("lifecycle", "lifecycle (2xVERSION+ADD+DEL)"))
        fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 4.2))
        by = {r["key"]: r for r in rows}
        for ax, (kind, title) in zip(axes, kinds):
            for p, color in (("cnish", "tab:blue"), ("ref", "tab:orange")):
                xs, med, lo, hi = [], [], [], []
                for level in self.args.levels:
                    r = by.get(f"{kind}@{level}")
                    if r and r[p] and r[p]["median"] is not None:
                        xs.append(level)
                        med.append(r[p]["median"])
                        lo.append(r[p]["p10"])
                        hi.append(r[p]["p90"])
                if xs:
                    ax.plot(xs, med, "o-", color=color, label=f"{LABEL[p]} median")
                    ax.fill_between(xs, lo, hi, color=color, alpha=0.2, label=f"{LABEL[p]} p10-p90")
            floor = [(level, by[f"floor@{level}"]["cnish"]["median"]) for level in self.args.levels
                     if kind == "add" and f"floor@{level}" in by
                     and by[f"floor@{level}"]["cnish"]["median"] is not None]
            if floor:
                ax.plot(*zip(*floor), "s--", color="tab:gray", label="kernel floor (sh, no Python)")
            ax.set_title(title)
            ax.set_xticks(self.args.levels)
            ax.set_xlabel("attached containers")
            ax.set_ylabel("ms")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        i = self.info
        fig.suptitle(f"cnish {i['cnish_git']} vs reference bridge+host-local - {i['date']}, "
                     f"{i['cpu_model']} x{i['cpus']}", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        print(f"wrote {path}")


def int_list(text: str) -> list:
    try:
        return sorted({int(x) for x in text.split(",") if x.strip() != ""})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")


def parse_args(argv=None):
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(
        description="cnish vs the reference bridge + host-local plugins, side by side "
                    "in private network namespaces (needs root).")
    ap.add_argument("--reference-dir", default="/usr/lib/cni",
                    help="directory of the reference plugins (bridge, host-local)")
    ap.add_argument("--cnish", default=None,
                    help="the cnish executable (default: a launcher from `cnish install`, as a "
                         "runtime would exec it, in a temporary directory)")
    ap.add_argument("--python", default=None, metavar="PATH",
                    help="the interpreter the default launcher runs (`cnish install --python`; "
                         "default: cnish install's choice)")
    ap.add_argument("--out", default=str(here / "out"), help="where results.json and results.png go")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: levels 0,20, 5 reps, 1 parallel rep (unless given explicitly)")
    ap.add_argument("--levels", type=int_list, default=None,
                    help="attached-container levels (default 0,100,1000; quick 0,20)")
    ap.add_argument("--reps", type=int, default=None,
                    help="repetitions per measurement and level (default 20; quick 5)")
    ap.add_argument("--parallel", type=int_list, default=None,
                    help="parallel ADD batch sizes (default 20,50); empty string for none")
    ap.add_argument("--parallel-reps", type=int, default=None,
                    help="repetitions of each parallel batch (default 3; quick 1)")
    ap.add_argument("--parallel-levels", type=int_list, default=None,
                    help="levels at which the parallel batches run (default: the lowest level)")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.levels is None:
        args.levels = [0, 20] if args.quick else [0, 100, 1000]
    if args.reps is None:
        args.reps = 5 if args.quick else 20
    if args.parallel is None:
        args.parallel = [20, 50]
    if args.parallel_reps is None:
        args.parallel_reps = 1 if args.quick else 3
    if args.parallel_levels is None:
        args.parallel_levels = [min(args.levels)]
    if not args.levels or args.reps < 1 or args.parallel_reps < 1:
        ap.error("need at least one level and one repetition")
    bad = [lv for lv in args.parallel_levels if lv not in args.levels]
    if bad:
        ap.error(f"--parallel-levels {bad} are not among --levels {args.levels}")
    return args


def preflight(args):
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (network namespaces, links, iptables)")
    for tool in ("ip", "iptables", "nsenter", "sysctl"):
        if shutil.which(tool, path=STD_PATH) is None:
            raise SystemExit(f"bench: needs {tool} (apt-get install iproute2 iptables util-linux procps)")
    if max(args.levels) + 2 * args.reps + 50 * len(args.parallel) > 60000:
        raise SystemExit("bench: too many containers for one /16")


def main(argv=None) -> int:
    if argv is None and sys.argv[1:2] == ["--serve"]:
        serve()
        return 0
    args = parse_args(argv)
    preflight(args)
    launcher_dir = None
    if args.cnish is None:
        # What a runtime would exec: the launcher `cnish install` writes (isolated interpreter,
        # no site hooks), not the console script pip writes.
        launcher_dir = tempfile.mkdtemp(prefix="cnish-bench-bin-")
        subprocess.run([sys.executable, "-m", "cnish", "install", launcher_dir]
                       + (["--python", args.python] if args.python else []), check=True,
                       stdout=subprocess.DEVNULL)
        args.cnish = os.path.join(launcher_dir, "cnish")
    try:
        return _main(args)
    finally:
        if launcher_dir:
            shutil.rmtree(launcher_dir, ignore_errors=True)


def _main(args) -> int:
    bench = Bench(args)
    signal.signal(signal.SIGINT, signal.default_int_handler)   # even if started ignoring it
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    graceful, status = True, 0
    try:
        bench.setup()
        bench.run()
    except (KeyboardInterrupt, Interrupted) as exc:
        print(f"\nbench: interrupted ({str(exc) or 'SIGINT'}), cleaning up ...", file=sys.stderr)
        graceful, status = False, 130
    except RuntimeError as exc:        # a plugin or a namespace operation failed
        print(f"bench: {exc}", file=sys.stderr)
        graceful, status = False, 1
    except BaseException:
        graceful, status = False, 1
        raise
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        bench.cleanup(graceful)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
    if status:
        return status
    elapsed = time.monotonic() - bench.started
    rows = bench.summarize()
    targets = bench.targets(rows)
    bench.report(rows, targets, elapsed)
    bench.write(rows, targets, elapsed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
