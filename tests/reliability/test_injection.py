"""Injection-proof rendering: arbitrary strings in every field that passes validation, and the
dry-run script still says exactly what it means.

Hypothesis draws the values a runtime or an operator controls — the netns path (CNI_NETNS),
`ipam.dataDir`, the network name, container id, ifname, bridge and master names, `logFile`,
CNI_ARGS values, dns strings and the words of `ipam.resolvConf` (which only reach the result
printed by the script's heredoc), the host veth's name in CHECK's prevResult and, with a
delegated IPAM plugin, arbitrary config keys and values (the whole config is embedded in the
script for it) — mixed with shell payloads that would touch a canary file if any of them ever
ran. Plans are built in-process (engine.build_plan on a dry-run Operation) for ADD, DEL and
CHECK of bridge, ptp, loopback, host-local and static (DEL and CHECK also of macvlan, ipvlan,
vlan and dummy, whose ADD probes this machine's kernel and master link), printed with
scripts.bash(), and then:

1. the script parses with `bash -n`;
2. the script is *executed* in a sandbox — inside a private network namespace, with every tool
   the plan calls (ip, iptables, ip6tables, sysctl, nsenter, test, grep, nft, bridge) replaced by a stub
   that records its argv (NUL-separated) — and the recorded argv equal the plan's
   (`plan.steps[i].run/undo/check/skip_if/skip_if_unbatched.argv`, and the `iptables -L` a
   `cnish-chain-used` probe makes, and the `nft -a list chain` of the
   `cnish-nft-delete-commented` function), in the order the script's rules give
   (skip probes, rollback newest first after an injected failure, every DEL step, every
   CHECK); the `cnish-store` function really writes the store under a temporary dataDir and
   must leave exactly the reservations the plan's arguments name; the result heredoc prints
   exactly plan.result; a delegated IPAM plugin receives exactly the environment and config
   cnish would give it;
3. the canary file never appears.

Stubs are bash functions defined through BASH_ENV (functions win over builtins such as `test`
and over PATH), backed by stub executables first in PATH that record any call that got past
the functions as "escaped:<tool>", so such a call fails the comparison too.
"""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from unittest import mock

import pytest

from figures import count
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from cnish import engine, jsonfast, scripts
from cnish.config import parse_env
from cnish.errors import CNIError
from cnish.validate import CONTROLS, identifier_problem, ifname_problem, path_problem
from lab import RUN_ID, Lab, kernel_problem

pytestmark = pytest.mark.kernel

TOOLS = ("ip", "iptables", "ip6tables", "iptables-save", "iptables-restore",
         "ip6tables-restore", "sysctl", "nsenter", "test", "grep", "nft", "bridge")
FUNCTIONS = ("cnish-store", "cnish-delegate", "cnish-chain-used",      # defined by the script
             "cnish-nft-delete-commented", "cnish-dad-wait", "cnish-foreign-veth",
             "cnish-foreign-link")
CANARY_DIR = os.path.join(tempfile.gettempdir(), f"cnish-{RUN_ID}-canary")
CANARY = os.path.join(CANARY_DIR, "pwned")
IP = shutil.which("ip", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") or "ip"
SETTINGS = dict(deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

# -- strategies ----------------------------------------------------------------------------------

_SHELL_PAYLOADS = [
    "$(touch {c})", "`touch {c}`", ";touch {c}", "&&touch {c}", "|touch {c}", "'$(touch {c})'",
    '"`touch {c}`"', "$'\\x3b'touch {c}", "${{IFS}}touch${{IFS}}{c}", "\\$(touch {c})",
    "' ; touch {c} ; '", '" ; touch {c} ; "', "-o", "--help", "*", "?", "[a]", "~", "!!", "#",
    "{{a,b}}", "$((1/0))", "$PATH", "\\", "'", '"', "%s%n", " ", "a b", "=", "--", "-",
]
_LINE_PAYLOADS = ["\ntouch {c}\n", "\nCNISH_RESULT\ntouch {c}\n", "CNISH_RESULT",
                  "\nCNISH_CONFIG_JSON\n)\ntouch {c}\n", "CNISH_CONFIG_JSON", "\nEOF\n", "\r",
                  "\x1b[2J", "\u2028", "\x85", "\x00", "\t"]
PATH_PAYLOADS = [p.format(c=CANARY) for p in _SHELL_PAYLOADS]
TEXT_PAYLOADS = PATH_PAYLOADS + [p.format(c=CANARY) for p in _LINE_PAYLOADS]

_any_char = st.characters(blacklist_categories=("Cs",))
_path_char = st.characters(blacklist_categories=("Cs",), min_codepoint=32,
                           blacklist_characters="\x7f")


def _mixed(chars, payloads, max_size, min_size=0):
    """Free text, a payload, or a payload inside free text."""
    free = st.text(chars, max_size=max_size)
    return st.one_of(st.text(chars, min_size=min_size, max_size=max_size),
                     st.sampled_from(payloads),
                     st.builds(lambda a, p, b: a + p + b, free, st.sampled_from(payloads), free))


_segment = _mixed(_path_char, PATH_PAYLOADS, 10, min_size=1).filter(lambda s: s != "..")
# a relative path that passes validation: no control characters, no ".." component
relpath = st.lists(_segment, min_size=1, max_size=4).map("/".join).filter(
    lambda p: path_problem("/" + p) is None)
text = _mixed(_any_char, TEXT_PAYLOADS, 12)
# dns strings of a config: without control characters, which are refused (code 7: a runtime
# writes them into resolv.conf as lines), but with every shell payload
dns_text = _mixed(st.characters(blacklist_categories=("Cs", "Cc")),
                  [p for p in TEXT_PAYLOADS if not any(ord(c) in CONTROLS for c in p)], 12)
_env_char = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00;=")
# CNI_ARGS keys and values that pass validation: no ";" or "=" (and, in an environment, no NUL)
args_value = _mixed(_env_char, [p.replace(";", "").replace("=", "").replace("\x00", "")
                                for p in TEXT_PAYLOADS], 12)
args_key = _mixed(_env_char, [p.replace(";", "").replace("=", "").replace("\x00", "")
                              for p in TEXT_PAYLOADS], 12, min_size=1).filter(
    lambda k: k and k not in ("IP", "MAC", "GATEWAY", "IgnoreUnknown"))

_ID = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
identifier = st.builds(lambda a, b: a + b, st.sampled_from(_ID),
                       st.text(_ID + "_.-", max_size=40)).filter(
    lambda s: identifier_problem(s) is None)
# (not "lo": every plugin but loopback refuses it, code 4, since every namespace has its lo)
ifname = st.text(_ID + "_.-", min_size=1, max_size=15).filter(
    lambda s: ifname_problem(s) is None and s != "lo")
# the bridge must not exist on this machine: plans are built here and read /sys/class/net
bridge_name = ifname.filter(lambda s: not os.path.lexists(f"/sys/class/net/{s}"))
mac = st.integers(0, (1 << 48) - 1).map(
    lambda n: ":".join(f"{b:02x}" for b in ((n & ~(1 << 40)) | (1 << 41)).to_bytes(6, "big")))


@st.composite
def cni_args(draw, known=()):
    """CNI_ARGS that pass validation: IgnoreUnknown=1 and arbitrary other pairs."""
    pairs = ["IgnoreUnknown=1"]
    for _ in range(draw(st.integers(0, 3))):
        key = draw(args_key)
        pairs.append(f"{key}={draw(args_value)}")
    if "MAC" in known and draw(st.booleans()):
        pairs.append(f"MAC={draw(mac)}")
    order = draw(st.permutations(pairs))
    return ";".join(order)


RESOLV_KEYS = ["nameserver", "search", "domain", "options", "#", ";", "sortlist"]


@st.composite
def dns(draw):
    out = {}
    if draw(st.booleans()):
        out["nameservers"] = draw(st.lists(st.sampled_from(["10.0.0.53", "fd00::53", "1.1.1.1"]),
                                           max_size=2))
    if draw(st.booleans()):
        out["search"] = draw(st.lists(dns_text, max_size=3))
    if draw(st.booleans()):
        out["options"] = draw(st.lists(dns_text, max_size=3))
    if draw(st.booleans()):
        out["domain"] = draw(dns_text)
    return out


ADD_PLUGINS = ["bridge", "bridge", "ptp", "loopback", "host-local", "static"]
# ADD of these probes the kernel and reads the master link on this machine: DEL and CHECK only
LINK_PLUGINS = ["macvlan", "ipvlan", "vlan", "dummy"]
MAIN = {"bridge", "ptp", "loopback", *LINK_PLUGINS}


@st.composite
def attachment(draw, plugins=tuple(ADD_PLUGINS)):
    """One network config plus the runtime's values, all of them valid."""
    plugin = draw(st.sampled_from(plugins))
    ipam_kind = plugin
    if plugin in MAIN:
        kinds = {"loopback": ["none"], "ptp": ["host-local", "static"],
                 "vlan": ["host-local", "static"], "dummy": ["host-local", "static"]}
        ipam_kind = draw(st.sampled_from(kinds.get(plugin, ["host-local", "host-local",
                                                              "static", "none"])))
    families = draw(st.sampled_from([(4,), (6,), (4, 6)]))
    raw = {"cniVersion": draw(st.sampled_from(["0.4.0", "1.0.0", "1.1.0"])),
           "name": draw(identifier), "type": plugin if plugin in MAIN else "bridge"}
    if draw(st.booleans()):
        raw["logFile"] = "/" + draw(text)
    if draw(st.booleans()):
        raw["dns"] = draw(dns())
    if plugin == "bridge":
        raw["bridge"] = draw(bridge_name)
        raw["isGateway"] = draw(st.booleans())
        raw["isDefaultGateway"] = draw(st.booleans())
        raw["forceAddress"] = draw(st.booleans())
        raw[draw(st.sampled_from(["hairpinMode", "promiscMode"]))] = draw(st.booleans())
        raw["acceptRA"] = draw(st.booleans())
        raw["portIsolation"] = draw(st.booleans())
        raw["macspoofchk"] = draw(st.booleans())
        raw["enabledad"] = draw(st.booleans())
        raw["vlan"] = draw(st.sampled_from([0, 0, 1, 100, 4094]))
        if draw(st.booleans()):
            raw["vlanTrunk"] = draw(st.lists(st.one_of(
                st.builds(lambda v: {"id": v}, st.integers(1, 4094)),
                st.builds(lambda a, n: {"minID": a, "maxID": a + n}, st.integers(1, 4000),
                          st.integers(0, 5))), max_size=3))
        raw["preserveDefaultVlan"] = draw(st.booleans())
    if plugin in ("bridge", "ptp"):
        raw["ipMasq"] = draw(st.booleans())
        backend = draw(st.sampled_from([None, "iptables", "nftables"]))
        if backend:
            raw["ipMasqBackend"] = backend
    if plugin in ("bridge", "ptp", *LINK_PLUGINS):
        raw["mtu"] = draw(st.sampled_from([0, 1280, 1500, 9000]))
    if plugin in ("macvlan", "ipvlan", "vlan"):
        raw["master"] = draw(ifname)
    if plugin == "macvlan":
        raw["mode"] = draw(st.sampled_from(["bridge", "private", "vepa", "passthru"]))
        raw["bcqueuelen"] = draw(st.sampled_from([0, 1, 2 ** 32 - 1]))
        if draw(st.booleans()):
            raw["mac"] = draw(mac)
    if plugin == "ipvlan":
        raw["mode"] = draw(st.sampled_from(["l2", "l3", "l3s"]))
    if plugin == "vlan":
        raw["vlanId"] = draw(st.integers(0, 4094))
    resolv = None
    if ipam_kind == "host-local":
        sets = [[{"subnet": {4: "10.77.0.0/24", 6: "fd77::/64"}[f]}] for f in families]
        raw["ipam"] = {"type": "host-local", "ranges": sets}      # dataDir: see operation()
        if draw(st.booleans()):       # ipam.resolvConf: its words end up in the result's dns
            resolv = "\n".join(f"{draw(st.sampled_from(RESOLV_KEYS))} {draw(text)} {draw(text)}"
                                for _ in range(draw(st.integers(1, 4))))
        if draw(st.booleans()):
            raw["ipam"]["routes"] = [{"dst": {4: "0.0.0.0/0", 6: "::/0"}[f]} for f in families]
    elif ipam_kind == "static":
        raw["ipam"] = {"type": "static", "addresses": [
            {"address": {4: "10.78.0.5/24", 6: "fd78::5/64"}[f],
             "gateway": {4: "10.78.0.1", 6: "fd78::1"}[f]} for f in families]}
        if draw(st.booleans()):
            raw["ipam"]["dns"] = draw(dns())
    elif plugin != "loopback":
        raw["ipam"] = {}
    known = {"bridge": {"MAC"}, "ptp": {"MAC"}, "macvlan": {"MAC"}, "dummy": {"MAC"}}
    return {"plugin": plugin, "raw": raw, "data_rel": draw(relpath), "resolv": resolv,
            "families": families,
            "prev_veth": draw(st.none() | text.map(lambda s: s.replace("\x00", ""))),
            "cid": draw(identifier), "ifname": draw(ifname),
            "netns": "/" + draw(relpath), "del_netns": draw(relpath),
            "del_netns_real": draw(st.booleans()), "args": draw(cni_args(known.get(plugin, ()))),
            # which external step of ADD fails (-1: the last one, so every undo runs)
            "fail": draw(st.one_of(st.none(), st.just(-1), st.integers(0, 1000))),
            "prev": draw(st.booleans())}


def handmade_prev(att: dict) -> dict:
    """A prevResult for plugins whose ADD cannot be planned here (links on a master)."""
    ipam = att["raw"].get("ipam", {})
    if ipam.get("type") == "static":
        ips = [dict(a) for a in ipam["addresses"]]
    elif ipam.get("type") == "host-local":
        ips = [{"address": {4: "10.77.0.2/24", 6: "fd77::2/64"}[f],
                "gateway": {4: "10.77.0.1", 6: "fd77::1"}[f]} for f in att["families"]]
    else:
        ips = []
    return {"cniVersion": att["raw"]["cniVersion"],
            "interfaces": [{"name": att["ifname"], "mac": "0a:58:0a:4d:00:02",
                            "sandbox": att["netns"]}],
            "ips": [dict(ip, interface=0) for ip in ips]}


# -- the sandbox ---------------------------------------------------------------------------------

PRELUDE = r"""
# Sourced through BASH_ENV before the script: every tool the plan calls becomes a recording
# stub. Record: argc, then the argv NUL-terminated. Exit 1 if the argv (joined with \037) is a
# line of $CNISH_STUB_FAIL (or, the first time only, follows \036 on one), with
# $CNISH_STUB_MESSAGE on stderr, else 0.
__cnish_stub() {
  { printf '%d\0' "$#"; printf '%s\0' "$@"; } >>"$CNISH_STUB_LOG"
  local key line used
  printf -v key '%s\037' "$@"
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line == $'\036'"$key" ]]; then
      while IFS= read -r used; do [[ $used == "$key" ]] && continue 2; done \
        <"$CNISH_STUB_FAIL.used"
      printf '%s\n' "$key" >>"$CNISH_STUB_FAIL.used"
      line=$key
    fi
    if [[ $line == "$key" ]]; then printf '%s\n' "$CNISH_STUB_MESSAGE" >&2; return 1; fi
  done <"$CNISH_STUB_FAIL"
  return 0
}
"""

PATH_STUB = r"""#!/bin/bash
# a call that got past the BASH_ENV functions: recorded as escaped:<tool>, and it fails
{ printf '%d\0' "$(( $# + 1 ))"; printf '%s\0' "escaped:${0##*/}" "$@"; } >>"$CNISH_STUB_LOG"
exit 1
"""

IPAM_STUB = r"""#!/bin/bash
# a delegated IPAM plugin: records its CNI_* environment and its stdin
{ printf '%s\0' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS" \
    "$CNI_PATH"; cat; printf '\0'; } >>"$CNISH_DELEGATE_LOG"
"""


class Sandbox:
    def __init__(self, root: Path, netns: str, target_netns: str):
        self.root = root
        self.netns = netns                       # where scripts run
        self.target = f"/var/run/netns/{target_netns}"   # a real namespace for DEL
        self.stubs = root / "stubs"
        self.stubs.mkdir()
        for tool in TOOLS:
            (self.stubs / tool).write_text(PATH_STUB)
            (self.stubs / tool).chmod(0o755)
        self.cni_path = root / "cni-bin"
        self.cni_path.mkdir()
        (self.cni_path / "fuzz-ipam").write_text(IPAM_STUB)
        (self.cni_path / "fuzz-ipam").chmod(0o755)
        self.prelude = root / "prelude.sh"
        self.prelude.write_text(PRELUDE + "".join(
            f'{t}() {{ __cnish_stub {t} "$@"; }}\n' for t in TOOLS))

    def example_dir(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="ex", dir=self.root))

    def run(self, script: str, workdir: Path, fail=(), message="stub: told to fail",
            fail_once=()) -> dict:
        # bash silently drops NUL bytes (or refuses the file when one is on its first line):
        # a script holding one cannot run what it shows
        assert "\x00" not in script, "the script contains a NUL byte"
        path = workdir / "plan.sh"
        path.write_text(script, encoding="utf-8")
        parsed = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert parsed.returncode == 0, f"bash -n: {parsed.stderr}\n{script}"
        log, fail_file, delegate_log = (workdir / "calls", workdir / "fail",
                                        workdir / "delegate")
        log.write_bytes(b"")
        delegate_log.write_bytes(b"")
        fail_file.write_bytes(b"".join(_key(argv) + b"\n" for argv in fail)
                              + b"".join(b"\x1e" + _key(argv) + b"\n" for argv in fail_once))
        Path(f"{fail_file}.used").write_bytes(b"")
        env = {"PATH": f"{self.stubs}:/usr/bin:/bin", "BASH_ENV": str(self.prelude),
               "CNISH_STUB_LOG": str(log), "CNISH_STUB_FAIL": str(fail_file),
               "CNISH_DELEGATE_LOG": str(delegate_log), "HOME": str(workdir),
               "CNISH_STUB_MESSAGE": message,
               # (the script takes the attachment's lock there, as cnish does: the test run's)
               "CNISH_ATTACHMENT_LOCKS": os.environ.get("CNISH_ATTACHMENT_LOCKS", "off")}
        proc = subprocess.run([IP, "netns", "exec", self.netns, "/bin/bash", str(path)],
                              capture_output=True, env=env, cwd=workdir, timeout=60)
        return {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr,
                "calls": _records(log.read_bytes()),
                "delegate": delegate_log.read_bytes()}


def _key(argv) -> bytes:
    return "".join(a + "\x1f" for a in argv).encode()


def _records(data: bytes) -> list:
    """The stubs' log: argc\\0 argv[0]\\0 ... -> [(argv...), ...]."""
    fields = data.split(b"\0")
    out, i = [], 0
    while i < len(fields) - 1:
        n = int(fields[i])
        out.append(tuple(f.decode() for f in fields[i + 1:i + 1 + n]))
        i += 1 + n
    return out


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    problem = kernel_problem()
    if problem:
        pytest.skip(problem)
    root = tmp_path_factory.mktemp("injection")
    lab = Lab(root)
    os.makedirs(CANARY_DIR, exist_ok=True)
    try:
        yield Sandbox(root, lab.netns("s"), lab.netns("t"))
        assert not os.path.lexists(CANARY), "an injected command ran"
    finally:
        lab.close()
        shutil.rmtree(CANARY_DIR, ignore_errors=True)


# -- plans ---------------------------------------------------------------------------------------

def data_dir(att: dict, data: Path) -> str:
    """ipam.dataDir: the drawn relative path under this example's own directory."""
    return f"{data}/{att['data_rel']}"


def operation(att: dict, command: str, data: Path, cni_path: Path, netns: str, prev=None):
    raw = json.loads(json.dumps(att["raw"]))
    if raw.get("ipam", {}).get("type") == "host-local":
        raw["ipam"]["dataDir"] = data_dir(att, data)
        if att["resolv"] is not None:
            resolv = data.parent / "resolv.conf"
            resolv.write_text(att["resolv"], encoding="utf-8")
            raw["ipam"]["resolvConf"] = str(resolv)
    if prev is not None:
        raw["prevResult"] = prev
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": att["cid"], "CNI_NETNS": netns,
           "CNI_IFNAME": att["ifname"], "CNI_PATH": str(cni_path), "CNI_ARGS": att["args"]}
    type_name = None if att["plugin"] in MAIN else att["plugin"]
    return engine.Operation(raw, parse_env(env, netns_exists=False), dry_run=True,
                            type_name=type_name)


def plan_for(att, command, data, cni_path, netns, prev=None):
    try:
        op = operation(att, command, data, cni_path, netns, prev)
        return engine.dry_run(op), op
    except CNIError as exc:
        # every value drawn is valid on its own; the refusals left are combinations the
        # strategies do not avoid: a masquerade comment over 255 characters, a bridge name
        # too long for its VLAN's gateway link, and a fuzzed prevResult value cnish refuses
        # (code 7 naming prevResult)
        if exc.code == 7 and ("comment would exceed" in exc.msg or "prevResult" in exc.msg
                              or "would exceed the kernel's 15 bytes" in exc.msg):
            reject()
        raise


def external(argv) -> bool:
    return argv[0] not in FUNCTIONS


def chain_listing(argv) -> tuple:
    """The `iptables -L` the script's cnish-chain-used function runs for a probe's argv."""
    _, version, table, chain, *_rules = argv
    return ("iptables" if version == "4" else "ip6tables", "-w", "-t", table, "-n", "-L", chain)


def nft_listing(argv) -> tuple:
    """The `nft -a list chain` the script's cnish-nft-delete-commented function runs first (its
    stub prints no rule, so the function deletes nothing more). An undo has a fifth argument,
    NEWEST-WITH (natives.py)."""
    _, family, table, chain, _comment, *_newest_with = argv
    return ("nft", "-a", "list", "chain", family, table, chain)


def probe_of(step):
    """The probe the script asks before the step (it runs every step on its own)."""
    return step.skip_if or step.skip_if_unbatched


def not_there(plan) -> list:
    """Stub argv to fail so that every probe of the plan answers "not there": the step runs.
    (A stub prints nothing, which cnish-chain-used takes for a chain in use.)"""
    out = []
    for step in plan.steps:
        probe = probe_of(step)
        if probe is not None:
            out.append(chain_listing(probe.argv) if probe.argv[0] == "cnish-chain-used"
                       else probe.argv)
    return out


def simulate(plan, fail=(), fail_once=()) -> tuple:
    """The stub calls the script must make, by its rules, and whether it fails. Stubs answer 1
    for the argv in `fail`, and the first time for those in `fail_once`, 0 otherwise; the
    script's own functions succeed, but for cnish-chain-used, whose `iptables -L` stub answers
    0 with no output (in use) unless failed."""
    fail = {tuple(a) for a in fail}
    once = {tuple(a) for a in fail_once}
    calls = []

    def call(argv):
        argv = tuple(argv)
        if argv[0] == "cnish-chain-used":
            argv = chain_listing(argv)
        elif argv[0] == "cnish-nft-delete-commented":
            argv = nft_listing(argv)
        elif argv[0] == "cnish-dad-wait":      # its listing (the stub's is empty: nothing tentative)
            argv = ("nsenter", f"--net={argv[1]}", "cat", "/proc/net/if_inet6")
        elif argv[0] in ("cnish-foreign-veth", "cnish-foreign-link"):   # its listing (empty:
            # the stub's link is no attachment's, so the script leaves it)
            argv = ("nsenter", f"--net={argv[1]}", "ip", "-j", "-d", "link", "show", "dev",
                    argv[2])
        elif not external(argv):
            return 0
        calls.append(argv)
        if argv in fail:
            return 1
        if argv in once:
            once.discard(argv)
            return 1
        return 0

    if plan.command == "ADD":
        done = []
        for step in plan.steps:
            if probe_of(step) and call(probe_of(step).argv) == 0:
                continue
            if call(step.run.argv) != 0:
                for s in reversed(done):
                    call(s.undo.argv)
                return calls, True
            if step.undo and not step.shared:
                done.append(step)
        return calls, False
    if plan.command in ("DEL", "GC"):
        failed = False
        for step in plan.steps:
            if probe_of(step) and call(probe_of(step).argv) == 0:
                continue
            failed |= call(step.run.argv) != 0
        return calls, failed
    for step in plan.steps:            # CHECK
        call(step.check.argv)
    return calls, None


def assert_calls(ran, expected):
    assert ran["calls"] == expected, (
        "the script's commands differ from the plan's argv\n"
        + "\n".join(f"{'=' if a == b else '!'} ran {a!r}\n  plan {b!r}"
                    for a, b in zip(ran["calls"] + [None] * len(expected),
                                    expected + [None] * len(ran["calls"]))
                    if a is not None or b is not None)
        + f"\nstderr: {ran['stderr'].decode(errors='replace')[-2000:]}")


def store_dir(att, data: Path) -> str:
    """Where the host-local store of this attachment is, computed from the inputs."""
    return os.path.join(data_dir(att, data).rstrip("/") or "/", att["raw"]["name"])


def uses_hostlocal(att) -> bool:
    return att["plugin"] == "host-local" or att["raw"].get("ipam", {}).get("type") == "host-local"


# -- the properties ------------------------------------------------------------------------------

@settings(max_examples=120, **SETTINGS)
@given(att=attachment())
def test_add_script_runs_exactly_the_plan(sandbox, att):
    count("injection examples tried (hypothesis)")
    work = sandbox.example_dir()
    data = work / "data"
    plan, _op = plan_for(att, "ADD", data, sandbox.cni_path, att["netns"])
    skips = not_there(plan)
    runs = [s.run.argv for s in plan.steps if external(s.run.argv)]
    fail = [runs[att["fail"] % len(runs)]] if runs and att["fail"] is not None else []
    # the intended values are whole argv elements of the plan
    for step in plan.steps:
        argv = step.run.argv
        if step.netns == "container":
            assert argv[:2] == ("nsenter", f"--net={att['netns']}"), argv
        if step.id == "veth":
            assert argv[-2:] == ("netns", att["netns"]) and att["ifname"] in argv, argv
        if step.id == "bridge":
            assert argv[:5] == ("ip", "link", "add", "name", att["raw"]["bridge"]), argv
        if argv[:2] == ("cnish-store", "reserve"):
            assert argv[2] == store_dir(att, data) and argv[4:6] == (att["cid"], att["ifname"])

    # The probes answer "not there" once: a step whose command is also an earlier step's probe
    # (the bridge's `test -d`: created, then verified) then finds its object.
    ran = sandbox.run(scripts.bash(plan), work, fail=fail, fail_once=skips)
    expected, failed = simulate(plan, fail, fail_once=skips)
    assert_calls(ran, expected)
    assert (ran["rc"] != 0) == failed, ran["stderr"]
    reserves = [s.run.argv for s in plan.steps if s.run.argv[:2] == ("cnish-store", "reserve")]
    if reserves:
        store = store_dir(att, data)
        held = {n: Path(store, n).read_bytes() for n in os.listdir(store)}
        if failed:          # rolled back: the reservations and last_reserved_ip are gone
            assert set(held) <= {"lock"}, held
        else:
            for argv in reserves:
                assert held[argv[3]] == f"{att['cid']}\r\n{att['ifname']}".encode()
                assert held[f"last_reserved_ip.{argv[6]}"] == argv[3].encode()
    if not failed:
        assert json.loads(ran["stdout"]) == plan.result      # the heredoc printed it whole
    else:
        assert ran["stdout"] == b""
    assert not os.path.lexists(CANARY)


@settings(max_examples=100, **SETTINGS)
@given(att=attachment(tuple(ADD_PLUGINS + LINK_PLUGINS)))
def test_del_script_runs_exactly_the_plan(sandbox, att):
    count("injection examples tried (hypothesis)")
    work = sandbox.example_dir()
    data = work / "data"
    real = False
    if att["del_netns_real"]:        # a real namespace, reached through a hostile path
        netns = os.path.join(str(work), "ns", att["del_netns"])
        try:
            os.makedirs(os.path.dirname(netns), exist_ok=True)
            os.symlink(sandbox.target, netns)
            real = os.path.samestat(os.stat(netns), os.stat(sandbox.target))
        except OSError:
            reject()
    else:
        netns = "/" + att["del_netns"]
    prev = None
    if att["prev"] and att["plugin"] in LINK_PLUGINS:
        prev = handmade_prev(att)
    elif att["prev"]:
        add, _ = plan_for(att, "ADD", data, sandbox.cni_path, att["netns"])
        prev = add.result
    plan, _op = plan_for(att, "DEL", data, sandbox.cni_path, netns, prev)
    if att["plugin"] in ("bridge", "ptp", *LINK_PLUGINS):
        # the container's link is deleted inside the namespace only when it is one
        entered = [s.run.argv for s in plan.steps if s.run.argv[0] == "nsenter"]
        assert all(a[1] == f"--net={netns}" for a in entered) and bool(entered) == real, entered
    store = None
    if uses_hostlocal(att):
        store = Path(store_dir(att, data))
        store.mkdir(parents=True)
        (store / "10.77.0.9").write_text(f"{att['cid']}\r\n{att['ifname']}")
        (store / "10.77.0.10").write_text(f"{att['cid']}x\r\n{att['ifname']}")
    skips = not_there(plan)
    ran = sandbox.run(scripts.bash(plan), work, fail=skips)
    expected, failed = simulate(plan, skips)
    assert_calls(ran, expected)
    assert ran["rc"] == 0 and not failed, ran["stderr"]
    if store is not None:    # the release step got this attachment's cid and ifname, intact
        assert sorted(os.listdir(store)) == ["10.77.0.10", "lock"]
    assert not os.path.lexists(CANARY)


@settings(max_examples=100, **SETTINGS)
@given(att=attachment(tuple(ADD_PLUGINS + [p for p in LINK_PLUGINS if p != "dummy"])))
def test_check_script_runs_exactly_the_plan(sandbox, att):
    count("injection examples tried (hypothesis)")
    # dummy is left out: its CHECK cannot be planned at all (test_dummy_check_can_be_planned)
    work = sandbox.example_dir()
    data = work / "data"
    if att["plugin"] in LINK_PLUGINS:
        prev = handmade_prev(att)
    else:
        prev = plan_for(att, "ADD", data, sandbox.cni_path, att["netns"])[0].result
    if att["plugin"] in ("bridge", "ptp") and att["prev_veth"] is not None:
        # prevResult comes from the runtime: the host end's name reaches CHECK's commands
        host_end = next(i for i in prev["interfaces"] if "sandbox" not in i
                        and i["name"] != att["raw"].get("bridge"))
        host_end["name"] = att["prev_veth"]
    # (CHECK of a link plugin reads its master's ifindex: the drawn master is on no machine)
    real = engine.Operation.read_sys
    with mock.patch.object(engine.Operation, "read_sys", staticmethod(
            lambda path: real(path) or ("7" if path.endswith("/ifindex") else None))):
        plan, _op = plan_for(att, "CHECK", data, sandbox.cni_path, att["netns"], prev)
    reserved = []
    for step in plan.steps:           # hold the reservations the checks look for
        if step.check.argv[:2] == ("cnish-store", "check"):
            _, _, directory, ip, cid, ifname = step.check.argv
            assert directory == store_dir(att, data) and (cid, ifname) == (att["cid"],
                                                                          att["ifname"])
            os.makedirs(directory, exist_ok=True)
            Path(directory, ip).write_text(f"{att['cid']}\r\n{att['ifname']}")
            reserved.append(step.number)
    ran = sandbox.run(scripts.bash(plan), work)
    expected, _ = simulate(plan)
    assert_calls(ran, expected)
    failed_steps = {int(line.split()[4]) for line in ran["stderr"].decode(errors="replace")
                    .splitlines() if line.startswith("cnish: check of step ")}
    assert not failed_steps & set(reserved), ran["stderr"]
    assert not os.path.lexists(CANARY)


@pytest.mark.parametrize("where,value", [(("interfaces", 1, "name"), "veth\x00x"),
                                         (("interfaces", 2, "mac"), "0a:58:0a:63:00:02\x00")])
def test_nul_from_prev_result_is_refused_or_rendered(sandbox, where, value):
    """A prevResult string that reaches an argv: either refused (code 7), or the CHECK script
    still parses and runs exactly the plan."""
    att = {"plugin": "bridge", "raw": {"cniVersion": "1.0.0", "name": "nulnet", "type": "bridge",
                                       "bridge": "cnishnul0", "hairpinMode": True, "ipam": {}},
           "data_rel": "d", "resolv": None, "cid": "ctr1", "ifname": "eth0",
           "netns": "/var/run/netns/x", "args": ""}
    work = sandbox.example_dir()
    add, _ = plan_for(att, "ADD", work / "data", sandbox.cni_path, att["netns"])
    prev = add.result
    prev[where[0]][where[1]][where[2]] = value
    try:
        plan = engine.dry_run(operation(att, "CHECK", work / "data", sandbox.cni_path,
                                        att["netns"], prev))
    except CNIError as exc:
        assert exc.code == 7 and "prevResult" in str(exc)
        return
    ran = sandbox.run(scripts.bash(plan), work)
    assert_calls(ran, simulate(plan)[0])


def test_dummy_check_can_be_planned(sandbox):
    att = {"plugin": "dummy", "raw": {"cniVersion": "1.0.0", "name": "dummynet", "type": "dummy",
                                      "ipam": {"type": "static",
                                               "addresses": [{"address": "10.78.0.5/24"}]}},
           "data_rel": "d", "resolv": None, "families": (4,), "cid": "ctr1", "ifname": "eth0",
           "netns": "/var/run/netns/x", "args": ""}
    work = sandbox.example_dir()
    plan, _op = plan_for(att, "CHECK", work / "data", sandbox.cni_path, att["netns"],
                         handmade_prev(att))
    ran = sandbox.run(scripts.bash(plan), work)
    assert_calls(ran, simulate(plan)[0])


@st.composite
def delegated(draw):
    """A bridge config whose IPAM is an external plugin: the script embeds the whole config
    (arbitrary extra keys and values included) and the invocation's environment."""
    att = draw(attachment(("bridge", "ptp")))
    att["raw"]["ipam"] = {"type": "fuzz-ipam", "x" + draw(text): draw(text)}
    extra = draw(st.dictionaries(text, st.one_of(text, st.lists(text, max_size=2),
                                                 st.dictionaries(text, text, max_size=2)),
                                 max_size=3))
    for key, value in extra.items():        # keys no plugin reads: "x" + anything
        att["raw"]["x" + key] = value
    att["command"] = draw(st.sampled_from(["DEL", "CHECK"]))
    return att


@settings(max_examples=100, **SETTINGS)
@given(att=delegated())
def test_delegated_ipam_gets_exactly_the_invocation(sandbox, att):
    count("injection examples tried (hypothesis)")
    work = sandbox.example_dir()
    command = att["command"]
    prev = None
    if command == "CHECK":
        prev = {"cniVersion": att["raw"]["cniVersion"],
                "ips": [{"address": "10.79.0.5/24", "gateway": "10.79.0.1"}]}
    plan, op = plan_for(att, command, work / "data", sandbox.cni_path, att["netns"], prev)
    skips = not_there(plan)
    ran = sandbox.run(scripts.bash(plan), work, fail=skips)
    expected, _ = simulate(plan, skips)
    assert_calls(ran, expected)
    records = ran["delegate"].split(b"\0")
    assert len(records) == 8 and records[-1] == b"", ran
    got = [r.decode() for r in records[:7]]
    assert got[:6] == [command, att["cid"], att["netns"], att["ifname"], att["args"],
                       str(sandbox.cni_path)]
    assert got[6] == jsonfast.dumps(op.raw) + "\n"        # the config, byte for byte
    assert json.loads(got[6]) == op.raw
    assert not os.path.lexists(CANARY)


# -- the script's failure rules, one case each -----------------------------------------------------

BRIDGE_ATT = {"raw": {"cniVersion": "1.0.0", "name": "scriptnet", "type": "bridge",
                      "bridge": "sbr0", "isGateway": True, "ipMasq": True,
                      "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.77.0.0/24"}]]}},
              "plugin": "bridge", "cid": "ctr1", "ifname": "eth0", "args": "",
              "data_rel": "store", "resolv": None, "netns": "/var/run/netns/scriptns"}


def bridge_plan(sandbox, command, prev=None):
    work = sandbox.example_dir()
    plan, _ = plan_for(BRIDGE_ATT, command, work / "data", sandbox.cni_path,
                       BRIDGE_ATT["netns"], prev)
    return plan, work


def test_add_script_accepts_an_existing_shared_object(sandbox):
    """on_exists = "done" (the bridge, made by a parallel ADD meanwhile): the script goes on,
    as cnish does, and undoes nothing."""
    plan, work = bridge_plan(sandbox, "ADD")
    bridge = next(s for s in plan.steps if s.id == "bridge")
    # the probe says "no bridge" once (so the step runs), then "a bridge" (bridge-is-bridge)
    ran = sandbox.run(scripts.bash(plan), work, fail=[bridge.run.argv],
                      fail_once=[bridge.skip_if.argv], message="RTNETLINK answers: File exists")
    assert bridge.run.argv in ran["calls"]
    assert ran["rc"] == 0, ran["stderr"]
    assert not [c for c in ran["calls"] if c in {s.undo.argv for s in plan.steps if s.undo}]


def test_add_script_rollback_counts_an_object_already_gone_as_undone(sandbox):
    """An undo that finds its object gone ("Cannot find device") is no rollback failure: the
    script reports the step that failed, not the undo."""
    plan, work = bridge_plan(sandbox, "ADD")
    up = next(s for s in plan.steps if s.id == "container-up")
    veth = next(s for s in plan.steps if s.id == "veth")
    ran = sandbox.run(scripts.bash(plan), work, fail=[up.run.argv, veth.undo.argv],
                      message='Cannot find device "eth0"')
    assert ran["rc"] != 0 and veth.undo.argv in ran["calls"]
    stderr = ran["stderr"].decode()
    assert f"step {up.number} failed" in stderr
    assert "undo failed" not in stderr and "could not undo" not in stderr, stderr


def test_del_script_runs_every_step_and_fails_when_one_did(sandbox):
    """DEL is best effort: after a failing step every other step still runs, and the script
    ends with status 1 naming it."""
    add, _ = bridge_plan(sandbox, "ADD")
    plan, work = bridge_plan(sandbox, "DEL", prev=add.result)
    skips = not_there(plan)
    target = next(s for s in plan.steps if s.id.startswith("masquerade"))
    ran = sandbox.run(scripts.bash(plan), work, fail=skips + [target.run.argv])
    expected, failed = simulate(plan, skips + [target.run.argv])
    assert failed
    assert_calls(ran, expected)
    assert ran["rc"] == 1 and "could not remove everything" in ran["stderr"].decode()
