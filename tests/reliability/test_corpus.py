"""The bad-input corpus (tests/corpus/): every hostile or broken input gets the right CNI error
and leaves the host exactly as it was.

cnish is exec'd like a runtime execs a plugin (environment + config on stdin) inside a private
"host" network namespace, with a container namespace beside it. For every case the test
asserts: exit status 1; exactly one JSON object on stdout with cniVersion, code and msg (and
optionally details); the expected code; the field (or variable) named in msg or details; and an
unchanged host — links, addresses, routes, iptables (node.state() with the container
namespace) plus every file and directory of the test's sandbox (the host-local store, the
canary file that injected commands would create).

Speed: each case gets a fresh dataDir of its own, which must still not exist afterwards
(checked case by case). The rest of the host is snapshotted before and after each chunk of
cases (run a few processes in parallel), so an unchanged chunk proves that every case in it
left the host alone. If a chunk changed the host, each of its cases is run again alone, on a
fresh host, to find which one did it.
"""

import copy
import importlib.util
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from figures import count

from lab import ROOT, Lab, cnish_command, kernel_problem

pytestmark = pytest.mark.kernel

CORPUS = ROOT / "tests" / "corpus"
DROP = "@drop"
CHUNK = 48
WORKERS = 4
ERROR_KEYS = {"cniVersion", "code", "msg", "details"}
SUPPORTED = {"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}


# -- loading the corpus --------------------------------------------------------------------------

def _load(path):
    spec = importlib.util.spec_from_file_location(f"cnish_corpus_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_MODULES = {p.stem: _load(p) for p in sorted(CORPUS.glob("*.py"))}
_KNOWN = _MODULES.pop("known_bugs")
BUGS = _KNOWN.BUGS                              # xfail key -> what is wrong, and the fix
WHEN = getattr(_KNOWN, "WHEN", {})              # xfail key -> where it shows
FILES = {stem: m for stem, m in _MODULES.items() if hasattr(m, "CASES")}
TARGETS = {m.PLUGIN["name"]: m.PLUGIN for m in FILES.values() if hasattr(m, "PLUGIN")}


def _runs_for(source: str, target: dict) -> bool:
    """A file with SCOPE = "executable" holds cases decided before cnish looks at the plugin
    type: they run once per executable name, against the first target (by name) exec'd so."""
    if getattr(FILES[source], "SCOPE", None) != "executable":
        return True
    same = sorted(t["name"] for t in TARGETS.values()
                  if t.get("exec") == target.get("exec") and source in t.get("uses", ()))
    return same[0] == target["name"]


def _cases(target: dict):
    """(source file, case) pairs that run against a target: its `uses` files, then its own."""
    own = next(stem for stem, m in FILES.items() if getattr(m, "PLUGIN", None) is target)
    for source in tuple(target.get("uses", ())) + (own,):
        if not _runs_for(source, target):
            continue
        for case in FILES[source].CASES:
            if "only" in case and target["name"] not in case["only"]:
                continue
            yield source, case


ITEMS = {}           # "target/source/case id" -> (target, case)
for _target in TARGETS.values():
    for _source, _case in _cases(_target):
        _key = f"{_target['name']}/{_source}/{_case['id']}"
        assert _key not in ITEMS, f"duplicate corpus case {_key}"
        ITEMS[_key] = (_target, _case)


def known_bug(target: dict, case: dict) -> str | None:
    """The known_bugs.py key this case trips over on this target, if any. A case's "xfail" is
    a key (every target) or {target name: key, "*": key for the other targets} (None: no bug
    there). A bug listed in known_bugs.WHEN only counts where its condition holds."""
    bug = case.get("xfail")
    if isinstance(bug, dict):
        bug = bug.get(target["name"], bug.get("*"))
    if bug and bug in WHEN and not _holds(WHEN[bug]):
        return None
    return bug


_CONDITIONS = {}


def _holds(condition: str) -> bool:
    """"kernel-lacks:KIND": this kernel cannot create KIND links (probed in a throwaway
    network namespace, once)."""
    if condition not in _CONDITIONS:
        kind = condition.split(":", 1)[1]
        assert condition.startswith("kernel-lacks:"), condition
        if kernel_problem():
            _CONDITIONS[condition] = False
        else:
            try:
                probe = subprocess.run(["unshare", "--net", "ip", "link", "add", "cnishprobe0",
                                        "type", kind], capture_output=True, timeout=30)
                _CONDITIONS[condition] = probe.returncode != 0
            except OSError:
                _CONDITIONS[condition] = False
    return _CONDITIONS[condition]


def _params():
    for key, (target, case) in ITEMS.items():
        bug = known_bug(target, case)
        marks = [pytest.mark.xfail(strict=True, reason=f"cnish bug [{bug}] (known_bugs.py): "
                                   + BUGS[bug][0])] if bug else []
        yield pytest.param(key, id=key, marks=marks)


# -- turning a case into one exec ----------------------------------------------------------------

class Context:
    """Where a chunk runs: the private host, its container namespace, the sandbox."""

    def __init__(self, lab: Lab, sandbox, bin_dir, target: dict):
        self.lab = lab
        self.sandbox = sandbox
        self.bin_dir = bin_dir
        self.node = lab.host()
        self.container = lab.netns()
        for argv in target.get("setup", ()):      # e.g. the master link a config names
            self.node.run(*argv)
        self.tokens = {"$SANDBOX": str(sandbox), "$CANARY": str(sandbox / "canary"),
                       "$CONTAINER": f"/var/run/netns/{self.container}",
                       "$HOSTNS": f"/var/run/netns/{self.node.name}"}

    def snapshot(self) -> dict:
        """The host as node.state() sees it (links, addresses, routes, iptables, store,
        container) plus the sandbox's files and directories — minus the cases' own data
        directories (networks/d<N>), which run_case() checks case by case."""
        snap = self.node.state(self.container)
        snap["store"] = {k: v for k, v in snap["store"].items() if not _own(k)}
        snap["sandbox"] = {k: v for k, v in tree(self.sandbox).items()
                           if not (k.startswith("networks/") and _own(k[len("networks/"):]))}
        return snap


def _own(relpath: str) -> bool:
    """Whether a path relative to the networks directory lies in a case's own data dir."""
    first = relpath.split("/")[0]
    return first[:1] == "d" and first[1:].isdigit()


def tree(root) -> dict:
    """Every directory and file under root: relative path -> (mode, content of a file)."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            content = None
            if name in files and os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    content = f.read()
            out[os.path.relpath(path, root)] = (oct(st.st_mode), content)
    return out


def _substitute(value, tokens):
    if isinstance(value, str):
        for token, replacement in tokens.items():
            value = value.replace(token, replacement)
        return value
    if isinstance(value, bytes):
        return value
    if isinstance(value, dict):
        return {k: _substitute(v, tokens) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, tokens) for v in value]
    return value


def _patch(conf: dict, path: str, value) -> None:
    """Set (or with "@drop" remove) conf[a][b][0]... for the dotted path "a.b.0...". A path
    starting with "=" is one top-level key ("=cni.dev/attachments"). Every list index and
    object along the path must exist (a typo must not silently build another config), and so
    must the last key when removing it."""
    parts = [path[1:]] if path.startswith("=") else path.split(".")
    node = conf
    for i, part in enumerate(parts):
        key = int(part) if isinstance(node, list) else part
        last = i == len(parts) - 1
        if isinstance(node, list):
            assert -len(node) <= key < len(node), f"{path}: no index {key}"
        else:
            assert isinstance(node, dict), f"{path}: {node!r} is not an object"
            assert (last and value != DROP) or key in node, f"{path}: no key {key!r}"
        if last:
            if value == DROP:
                del node[key]
            else:
                node[key] = copy.deepcopy(value)
        else:
            node = node[key]


def invocation(target: dict, case: dict, ctx: Context, data_dir: str):
    """(argv, env, stdin bytes) exactly as a runtime would exec the plugin for this case."""
    tokens = dict(ctx.tokens, **{"$DATA": data_dir})
    if "stdin" in case:
        stdin = case["stdin"]
        stdin = stdin.encode() if isinstance(stdin, str) else stdin
    else:
        conf = copy.deepcopy(case.get("conf", target["config"]))
        if case.get("prev"):
            conf["prevResult"] = copy.deepcopy(target["prev_result"])
        for path, value in case.get("set", {}).items():
            _patch(conf, path, value)
        stdin = json.dumps(_substitute(conf, tokens)).encode()
    env = {"PATH": os.environ["PATH"], "CNISH_PLAN_CACHE": str(ctx.sandbox.parent / "plans"),
           "CNISH_ATTACHMENT_LOCKS": os.environ.get("CNISH_ATTACHMENT_LOCKS", ""),
           "CNI_COMMAND": case.get("command", "ADD"),
           "CNI_CONTAINERID": "ctr1", "CNI_NETNS": case.get("netns", "$CONTAINER"),
           "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin", "CNI_ARGS": case.get("args", "")}
    for key, value in case.get("env", {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    env = {k: _substitute(v, tokens) for k, v in env.items()}
    plugin = [str(ctx.bin_dir / target["exec"])] if target.get("exec") else cnish_command()
    argv = ["ip", "netns", "exec", ctx.node.name]
    if case.get("pidns"):
        # a PID namespace of its own: /proc/1 is then the private host's "init" (a shell whose
        # child is the plugin), never the machine's real PID 1
        argv += ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", '"$@"; exit $?', "sh"]
    return argv + plugin, env, stdin


def run_case(target, case, ctx, data_dir) -> dict:
    """Exec one case. `changed` says what appeared in the case's own (fresh) data directory:
    a refused request must not even create it."""
    argv, env, stdin = invocation(target, case, ctx, data_dir)
    proc = subprocess.run(argv, input=stdin, capture_output=True, env=env, timeout=120)
    changed = None
    if os.path.lexists(data_dir):
        changed = "created in the case's dataDir:\n" + "\n".join(
            f"  {k or '.'} {v[0]} {v[1]!r}" for k, v in
            sorted({"": (oct(os.lstat(data_dir).st_mode), None), **tree(data_dir)}.items()))
    return {"rc": proc.returncode, "stdout": proc.stdout.decode("utf-8", "replace"),
            "stderr": proc.stderr.decode("utf-8", "replace"), "changed": changed}


def describe_change(before: dict, after: dict) -> str:
    lines = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            for sub in sorted(set(old) | set(new)):
                if old.get(sub) != new.get(sub):
                    lines.append(f"{key}/{sub}: {old.get(sub)!r} -> {new.get(sub)!r}")
        elif isinstance(old, list) and isinstance(new, list):
            lines += [f"{key}: - {l}" for l in old if l not in new]
            lines += [f"{key}: + {l}" for l in new if l not in old]
        else:
            lines.append(f"{key}: {old!r} -> {new!r}")
    return "\n".join(lines)[:4000]


# -- running the whole corpus once ---------------------------------------------------------------

class CorpusRun:
    def __init__(self, lab: Lab, sandbox):
        self.lab = lab
        self.sandbox = sandbox
        self.bin_dir = sandbox.parent / "bin"
        self.bin_dir.mkdir()
        exe = cnish_command()
        for target in TARGETS.values():
            if target.get("exec"):
                assert len(exe) == 1, "the cnish console script is needed to exec it by name"
                os.symlink(exe[0], self.bin_dir / target["exec"])
        (sandbox / "file").write_text("not a namespace\n")
        (sandbox / "dir").mkdir()
        (sandbox / "networks").mkdir()
        self.results = {}
        self._n = 0

    def data_dir(self) -> str:
        self._n += 1
        return str(self.sandbox / "networks" / f"d{self._n}")

    def run(self):
        for target in TARGETS.values():
            keys = [k for k, (t, _c) in ITEMS.items() if t is target]
            chunks = [keys[i:i + CHUNK] for i in range(0, len(keys), CHUNK)]
            ctx = Context(self.lab, self.sandbox, self.bin_dir, target)
            before = ctx.snapshot()
            for chunk in chunks:
                jobs = [(k, self.data_dir()) for k in chunk]
                with ThreadPoolExecutor(WORKERS) as pool:
                    outs = list(pool.map(lambda j: run_case(*ITEMS[j[0]], ctx, j[1]), jobs))
                for (key, _d), out in zip(jobs, outs):
                    self.results[key] = out
                after = ctx.snapshot()
                if after != before:
                    self._attribute(target, chunk, describe_change(before, after))
                    ctx = Context(self.lab, self.sandbox, self.bin_dir, target)  # a clean host
                    after = ctx.snapshot()
                before = after

    def _attribute(self, target, chunk, chunk_change: str):
        """Run each case of a chunk that changed the host alone, on a fresh host each time."""
        ctx = Context(self.lab, self.sandbox, self.bin_dir, target)
        before = ctx.snapshot()
        found = False
        for key in chunk:
            out = run_case(*ITEMS[key], ctx, self.data_dir())
            after = ctx.snapshot()
            if after != before:
                out["changed"] = "\n".join(filter(None, [out["changed"],
                                                         describe_change(before, after)]))
                found = True
                self.results[key] = out
                ctx = Context(self.lab, self.sandbox, self.bin_dir, target)
                after = ctx.snapshot()
            before = after
        if not found:         # changed in the batch but not alone: blame the whole chunk
            for key in chunk:
                self.results[key]["changed"] = "(in a batch of cases) " + chunk_change


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    problem = kernel_problem()
    if problem:
        pytest.skip(problem)
    root = tmp_path_factory.mktemp("corpus")
    sandbox = root / "sandbox"
    sandbox.mkdir()
    lab = Lab(sandbox)
    lab.data_dir = str(sandbox / "networks")     # node.state()'s "store": every case's dataDir
    try:
        run = CorpusRun(lab, sandbox)
        run.run()
        yield run
    finally:
        lab.close()


# -- the tests -----------------------------------------------------------------------------------

@pytest.mark.parametrize("key", list(_params()))
def test_bad_input(corpus, key):
    target, case = ITEMS[key]
    out = corpus.results[key]
    context = f"stdout={out['stdout'][:2000]!r}\nstderr={out['stderr'][-3000:]}"
    assert out["rc"] == 1, f"exit status {out['rc']}, expected 1\n{context}"
    try:
        error = json.loads(out["stdout"])      # exactly one JSON document, nothing else
    except ValueError as exc:
        raise AssertionError(f"stdout is not one JSON document ({exc})\n{context}") from None
    assert isinstance(error, dict), context
    assert {"cniVersion", "code", "msg"} <= set(error) <= ERROR_KEYS, context
    assert error["cniVersion"] in SUPPORTED, context
    assert isinstance(error["code"], int) and isinstance(error["msg"], str), context
    assert isinstance(error.get("details", ""), str), context
    assert error["code"] == case["code"], f"code {error['code']}, expected {case['code']}: {error}"
    text = error["msg"] + "\n" + error.get("details", "")
    assert case["field"] in text, f"{case['field']!r} is not named in {error}"
    assert out["changed"] is None, f"the host changed:\n{out['changed']}"
    count("hostile inputs refused cleanly (corpus)")


def test_corpus_is_big_enough():
    assert len(ITEMS) >= 150
    assert sum(len(m.CASES) for m in FILES.values()) >= 150


def test_cases_are_well_formed():
    allowed = {"id", "set", "conf", "stdin", "env", "args", "netns", "pidns", "prev", "only",
               "command", "code", "field", "xfail"}
    for key, (target, case) in ITEMS.items():
        assert set(case) <= allowed, (key, set(case) - allowed)
        bug = case.get("xfail")
        for name in (bug.values() if isinstance(bug, dict) else [bug]):
            assert name is None or name in BUGS, (key, name)
        if isinstance(bug, dict):
            assert set(bug) <= set(TARGETS) | {"*"}, (key, bug)
        if "stdin" not in case:       # every patch path exists in the base config
            conf = copy.deepcopy(case.get("conf", target["config"]))
            if case.get("prev"):
                conf["prevResult"] = copy.deepcopy(target["prev_result"])
            for path, value in case.get("set", {}).items():
                _patch(conf, path, value)
        assert isinstance(case["code"], int) and case["field"], key
        assert case.get("command", "ADD") in ("ADD", "DEL", "CHECK", "GC", "STATUS"), key
        if case.get("prev"):
            assert "prev_result" in target, key


def _control_params():
    for name in sorted(TARGETS):
        kind = TARGETS[name].get("link_kind")
        marks = [pytest.mark.linktype(kind=kind)] if kind in ("vlan", "ipvlan", "dummy") else []
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("target", _control_params())
def test_base_config_works(lab, target):
    """The control: a target's base config with the default environment succeeds for real (ADD,
    CHECK, DEL), so every corpus failure comes from the case's own change."""
    plugin = TARGETS[target]
    bin_dir = lab.tmp / "bin"
    bin_dir.mkdir()
    if plugin.get("exec"):
        os.symlink(cnish_command()[0], bin_dir / plugin["exec"])
    sandbox = lab.tmp / "sandbox"
    sandbox.mkdir()
    ctx = Context(lab, sandbox, bin_dir, plugin)
    data = str(sandbox / "networks")
    results = {}
    for command in ("ADD", "CHECK", "DEL"):
        case = {"id": "control", "command": command}
        if command == "CHECK":
            case["set"] = {"prevResult": results["ADD"]}
        out = run_case(plugin, case, ctx, data)
        assert out["rc"] == 0, (command, out)
        results[command] = json.loads(out["stdout"]) if out["stdout"].strip() else None
    if "ipam" in plugin["config"]:
        assert results["ADD"]["ips"][0]["address"].startswith("10.99.0.")
