"""The executor's ordering, batching and rollback, against a fake host (pytest-subprocess).

The plan is the real bridge ADD plan (dual-stack, gateway, masquerade, hairpin). The fake host
executes nothing: it records every command a step runs — including those inside `ip -batch`,
`iptables-restore` and multi-setting `sysctl` calls — and fails the one the test chooses,
with the error text the real tool prints. Unregistered commands fail the test (fail closed).
"""

import threading

import pytest

from cnish import batching, engine
from cnish.errors import CNIError
from cnish.executor import Executor
from cnish.runner import Completed, Runner
from lab import operation

RAW = {"cniVersion": "1.0.0", "name": "net1", "type": "bridge", "bridge": "br9",
       "isDefaultGateway": True, "ipMasq": True, "hairpinMode": True,
       "ipam": {"type": "host-local", "dataDir": "/nonexistent/cnish-engine",
                "ranges": [[{"subnet": "10.5.0.0/24"}], [{"subnet": "fd05::/64"}]]}}


def add_steps():
    plan, _ = engine.build_plan(operation(dict(RAW)))
    return plan.steps


class FakeHost:
    """Runs nothing; records step-level commands; fails `fail` (an argv) with `error`."""

    def __init__(self, fp, fail=None, error="RTNETLINK answers: Operation not permitted",
                 fail_undo=None, batch_line="actual", restore_reason=True):
        self.ran = []
        self.errors = {}     # more failing argv -> their error
        self.answers = {}    # probe argv -> its exit status, whatever has run
        self.asked = []      # the probes asked (answers and probes), in order; not in `ran`
        # False: iptables-legacy's restore, which names the failed line but not the reason
        self.restore_reason = restore_reason
        # what a failing `ip -batch` says about where it stopped: "Command failed -:N" with the
        # real N ("actual"), another number (an int), or nothing (None: a parse error)
        self.batch_line = batch_line
        self.probes = {}     # skip_if probe argv -> the run argv of the step it guards
        self.fail = tuple(fail) if fail else None
        self.fail_undo = tuple(fail_undo) if fail_undo else None
        self.error = error
        self._lock = threading.Lock()
        self._stdin_result = {}
        fp.register([fp.any()], callback=self._callback, stdin_callable=self._stdin,
                    occurrences=1000)
        fp.allow_unregistered(False)

    def _bad(self, argv):
        return argv in (self.fail, self.fail_undo) or argv in self.errors

    def _error(self, argv):
        return self.errors.get(argv, self.error)

    def _single(self, argv):
        if argv in self.answers:
            self.asked.append(argv)
            return self.answers[argv], ""
        if argv in self.probes and self.probes[argv] not in self.ran:
            self.asked.append(argv)
            # a skip_if probe answers "not there yet" until its step has run, so every step
            # runs; afterwards the same argv is a step of its own (bridge-is-bridge checks
            # with the bridge step's probe) and is recorded and failed like any step
            return 1, ""
        self.ran.append(argv)
        return (1, self._error(argv)) if self._bad(argv) else (0, "")

    def _stdin(self, data):
        argv = self._pending
        wrapper = argv[:argv.index("ip")] if "ip" in argv and argv[-2:] == ("-batch", "-") else None
        rc, err = 0, ""
        if wrapper is not None:
            for number, line in enumerate(data.splitlines(), start=1):
                step = wrapper + ("ip",) + tuple(line.split())
                self.ran.append(step)
                if self._bad(step):
                    line = number if self.batch_line == "actual" else self.batch_line
                    rc, err = 1, self._error(step) + (f"\nCommand failed -:{line}" if line else "")
                    break
        else:                                            # iptables-restore: atomic
            tool = argv[-3][:-len("-restore")]
            table = None
            lines = data.splitlines()
            candidates = []
            for number, line in enumerate(lines, start=1):
                if line.startswith("*"):
                    table = line[1:]
                elif line != "COMMIT":
                    candidates.append((number, table, line))
            steps = {}
            for number, table, line in candidates:
                for cand in self._restore_steps:
                    if cand[0] == tool and batching._restore_line(cand) == (table, line):
                        steps[number] = cand
            for number, _t, _l in candidates:
                if self._bad(steps[number]):
                    rc, err = 1, f"{tool}-restore: line {number} failed"
                    if self.restore_reason:
                        err += f": {self._error(steps[number])}"
                    self.ran.append(steps[number])      # attempted; nothing was applied
                    break
            if rc == 0:
                self.ran.extend(steps[n] for n, _t, _l in candidates)
        self._stdin_result[argv] = rc
        self._done.set()
        return {"stderr": err}

    def _callback(self, process):
        argv = tuple(process.args)
        if argv[-2:] == ("-batch", "-") or argv[-2:] == ("-w", "--noflush"):
            self._done.wait(5)
            process.returncode = self._stdin_result.pop(argv)
            return
        if "sysctl" in argv and len(argv) - argv.index("sysctl") > 4:     # a sysctl batch
            start = argv.index("sysctl")
            wrapper = argv[:start]
            for setting in argv[start + 3:]:
                step = wrapper + ("sysctl", "-q", "-w", setting)
                self.ran.append(step)
                if self._bad(step):
                    process.returncode = 255
                    process.stderr.write(f"sysctl: {self._error(step)}\n")
                    return
            process.returncode = 0
            return
        rc, err = self._single(argv)
        if err:
            process.stderr.write(err)
        process.returncode = rc

    def reset(self):
        self._done = threading.Event()


@pytest.fixture
def host(fp):
    def make(**kw):
        h = FakeHost(fp, **kw)
        h._done = threading.Event()
        return h
    return make


class ResettingRunner(Runner):
    """Runner whose commands all go to the fake (no natives), one event per process."""

    def __init__(self, fake):
        super().__init__(path="/usr/sbin:/usr/bin", use_natives=False, spawner="subprocess")
        self.fake = fake

    def start(self, argv, stdin=None, env=None):
        # the subprocess spawner runs each command to completion when it is started, so the
        # fake sees one process at a time even when the executor starts a batch early
        self.fake._done = threading.Event()
        self.fake._pending = tuple(argv)
        return super().start(argv, stdin, env)


def guarded(steps) -> dict:
    """Probe argv -> the run argv of the step it guards (skip_if and skip_if_unbatched)."""
    return {p.argv: s.run.argv for s in steps for p in (s.skip_if, s.skip_if_unbatched) if p}


def execute_add(fake, steps):
    fake.probes = guarded(steps)
    fake._restore_steps = [s.run.argv for s in steps] + [s.undo.argv for s in steps if s.undo]
    executor = Executor(ResettingRunner(fake))
    return executor.apply(steps)


def test_success_runs_every_step_once_in_order(host):
    steps = add_steps()
    fake = host()
    execute_add(fake, steps)
    runs = [s.run.argv for s in steps]
    executed = [a for a in fake.ran if a in runs]
    assert sorted(executed) == sorted(runs)                      # each step exactly once
    plain = [s.run.argv for s in steps if not s.concurrent]
    concurrent = [s.run.argv for s in steps if s.concurrent]
    assert concurrent, "the masquerade steps are marked concurrent"
    assert [a for a in executed if a in plain] == plain          # in plan order
    assert [a for a in executed if a in concurrent] == concurrent
    # concurrent steps start after the in-process reservation, right after the first process
    # (the critical path goes first), and run alongside the rest
    processes = [a for a in executed if a[0] not in ("cnish-store", "test", "grep")]
    assert processes[0] in plain
    first_concurrent = processes.index(concurrent[0])
    assert processes[first_concurrent - 1] in plain
    assert any(a in plain for a in processes[first_concurrent:])


class PreparingRunner(ResettingRunner):
    """Records process starts, waits and Runner.prepare calls, in order."""

    def __init__(self, fake):
        super().__init__(fake)
        self.events = []

    def prepare(self, argvs):
        self.events.append(("prepare", list(argvs)))

    def start(self, argv, stdin=None, env=None):
        pending = super().start(argv, stdin, env)
        self.events.append(("start", tuple(argv)))
        events = self.events

        class Recorded:
            def wait(self):
                events.append(("wait", tuple(argv)))
                return pending.wait()
        return Recorded()


def test_later_steps_are_prepared_while_the_first_process_runs(host):
    """The in-process parts of the container's steps (setns, natives' imports) are made
    ready between starting the first process and waiting for it, once."""
    steps = add_steps()
    fake = host()
    fake.probes = guarded(steps)
    fake._restore_steps = [s.run.argv for s in steps] + [s.undo.argv for s in steps if s.undo]
    runner = PreparingRunner(fake)
    Executor(runner).apply(steps)
    kinds = [kind for kind, _ in runner.events]
    assert kinds.count("prepare") == 1
    at = kinds.index("prepare")
    first = next(i for i, (kind, argv) in enumerate(runner.events)
                 if kind == "start" and argv[0] not in ("cnish-store", "test", "grep"))
    assert first < at
    assert ("wait", runner.events[first][1]) in runner.events[at:]     # not yet waited for
    prepared = runner.events[at][1]
    container = [s.run.argv for s in steps if s.run.argv[0] == "nsenter"]
    assert container and all(argv in prepared for argv in container)
    probes = [s.skip_if.argv for s in steps if s.skip_if is not None and s.skip_if.argv[0] == "grep"]
    assert probes and all(argv in prepared for argv in probes)


def expected_undo(completed_steps):
    return [s.undo.argv for s in reversed(completed_steps) if s.undo is not None and not s.shared]


@pytest.mark.parametrize("k", range(1, len(add_steps()) + 1))
def test_failure_at_step_k_undoes_completed_steps_in_reverse(host, k):
    steps = add_steps()
    target = steps[k - 1]
    fake = host(fail=target.run.argv)
    with pytest.raises(CNIError) as info:
        execute_add(fake, steps)
    err = info.value
    assert err.code == 100 and f"step {k} ({target.id})" in err.msg
    assert "Operation not permitted" in err.details
    runs = [s.run.argv for s in steps]
    undos = {s.undo.argv for s in steps if s.undo}
    first_undo = next((i for i, a in enumerate(fake.ran) if a in undos), len(fake.ran))
    applied = [a for a in fake.ran[:first_undo] if a in runs and a != target.run.argv]
    # every plain step before k ran, no plain step after k did (concurrent ones may have: they
    # started early, and are undone like the rest)
    assert all(s.run.argv in applied for s in steps[:k - 1]
               if not s.concurrent and not (s.run.argv[0] in ("iptables", "ip6tables")
                                            and target.run.argv[0] == s.run.argv[0]))
    assert not [s for s in steps[k:] if not s.concurrent and s.run.argv in applied]
    # ... and exactly the completed, non-shared steps were undone, newest first
    completed = [s for s in steps if s.run.argv in applied]
    assert [a for a in fake.ran[first_undo:] if a in undos] == expected_undo(completed)


def test_concurrent_steps_do_not_start_after_an_earlier_failure(host):
    """The masquerade steps start alongside the first process; when ADD fails before any
    process ran (the in-process reservation), they are never started, so nothing is made
    only to be removed again."""
    steps = add_steps()
    target = next(s for s in steps if s.run.argv[0] == "cnish-store")
    fake = host(fail=target.run.argv, error="cnish-store: 10.5.0.2 is already reserved")
    with pytest.raises(CNIError):
        execute_add(fake, steps)
    concurrent = {s.run.argv for s in steps if s.concurrent}
    assert target.run.argv in fake.ran and not [a for a in fake.ran if a in concurrent]


def test_a_failing_undo_does_not_stop_the_rollback(host):
    steps = add_steps()
    ids = [s.id for s in steps]
    target = steps[ids.index("masquerade[1].jump[0]")]
    veth = steps[ids.index("veth")]
    fake = host(fail=target.run.argv, fail_undo=veth.undo.argv)
    with pytest.raises(CNIError) as info:
        execute_add(fake, steps)
    assert "rollback could not undo" in info.value.details and "veth" in info.value.details
    undos = {s.undo.argv for s in steps if s.undo}
    undone = [a for a in fake.ran if a in undos]
    # every other undo still ran after the failing one, in reverse order; the ip6tables
    # transaction that failed applied nothing, so its chain is not undone
    completed = [s for s in steps if not s.id.startswith("masquerade[1]")]
    assert undone == expected_undo(completed)


@pytest.mark.parametrize("batch_line", [None, 99], ids=["no line named", "line out of range"])
def test_a_batch_that_does_not_say_where_it_stopped_is_undone_whole(host, batch_line):
    """When `ip -batch` fails without naming a line of this batch (a parse error; a number it
    does not have), any of its lines may have run: every step of the batch counts as done
    for the rollback, and the error says so."""
    steps = add_steps()
    ids = [s.id for s in steps]
    veth, target = steps[ids.index("veth")], steps[ids.index("host-up")]
    fake = host(fail=target.run.argv, batch_line=batch_line)
    with pytest.raises(CNIError) as info:
        execute_add(fake, steps)
    assert "the batch stopped without naming a line" in info.value.details
    assert "rollback could not undo" not in info.value.details
    undos = {s.undo.argv for s in steps if s.undo}
    assert veth.undo.argv in [a for a in fake.ran if a in undos]   # the veth of that batch


def test_an_undo_finding_its_object_gone_is_no_rollback_error(host):
    """Rollback tolerates "already gone" (the veth vanished with its namespace, say): the
    ADD's error then says everything was undone, not that the undo failed."""
    steps = add_steps()
    ids = [s.id for s in steps]
    target = steps[ids.index("masquerade[1].jump[0]")]
    veth = steps[ids.index("veth")]
    fake = host(fail=target.run.argv, fail_undo=veth.undo.argv,
                error=f'Cannot find device "{veth.undo.argv[-1]}"')
    with pytest.raises(CNIError) as info:
        execute_add(fake, steps)
    assert veth.undo.argv in fake.ran
    assert "rollback could not undo" not in info.value.details
    assert "everything this ADD had done was undone" in info.value.details


def test_the_error_names_the_shared_steps_a_rollback_keeps(host):
    """A failed ADD keeps what other attachments may use (the bridge it created, forwarding):
    its error says which steps those were, instead of claiming everything was undone."""
    steps = add_steps()
    ids = [s.id for s in steps]
    target = steps[ids.index("masquerade[1].jump[0]")]
    fake = host(fail=target.run.argv)
    with pytest.raises(CNIError) as info:
        execute_add(fake, steps)
    details = info.value.details
    assert "everything this ADD had done was undone but its shared steps; kept, since" in details
    kept = details.partition("; kept, since other attachments may use them: ")[2]
    bridge = steps[ids.index("bridge")]
    assert f"step {bridge.number} ({bridge.description})" in kept
    assert "(bring the bridge br9 up)" in kept
    assert not any(f"({s.description})" in kept for s in steps if not s.shared)


def test_exists_is_tolerated_where_declared(host):
    steps = add_steps()
    bridge = next(s for s in steps if s.id == "bridge")
    fake = host(fail=bridge.run.argv, error="RTNETLINK answers: File exists")
    outcomes = execute_add(fake, steps)          # a bridge created concurrently is fine
    assert next(o for o in outcomes if o.step is bridge).status == "exists"
    assert all(o.status in ("done", "exists", "skipped") for o in outcomes)
    assert not [a for a in fake.ran if a in {s.undo.argv for s in steps if s.undo}]


def test_exists_is_an_error_elsewhere(host):
    steps = add_steps()
    veth = next(s for s in steps if s.id == "veth")
    fake = host(fail=veth.run.argv, error="RTNETLINK answers: File exists")
    with pytest.raises(CNIError) as info:
        execute_add(fake, steps)
    assert "File exists" in info.value.details and "already has an interface" in info.value.details


def _masq(steps, name, tool="iptables"):
    return [s for s in steps if s.id.startswith("masquerade")
            and s.id.split(".")[-1].split("[")[0] == name and s.run.argv[0] == tool]


@pytest.mark.parametrize("reason", [True, False], ids=["nft", "legacy"])
def test_add_shares_the_chain_another_interface_made(host, reason):
    """A second interface of the container on the same network: its chain is already there.
    The transaction fails on the chain ("Chain already exists"; iptables-legacy's restore does
    not say why), so its steps run one at a time: the chain counts as there, the rules already
    in it are left alone (their -C probes answer yes), and only the interface's own jump is
    added. A later failure then undoes the jump only: the chain and its rules are the other
    interface's."""
    steps = add_steps()
    (chain,) = _masq(steps, "chain")
    rules = _masq(steps, "accept") + _masq(steps, "masquerade")
    (jump,) = _masq(steps, "jump")
    fake = host(fail=chain.run.argv, error="iptables: Chain already exists.", restore_reason=reason)
    fake.answers = {s.skip_if_unbatched.argv: 0 for s in rules}       # the rules are there
    outcomes = {o.step.id: o for o in execute_add(fake, steps)}
    assert outcomes[chain.id].status == "exists"
    assert all(outcomes[s.id].status == "skipped" for s in rules)
    assert outcomes[jump.id].status == "done" and jump.run.argv in fake.ran
    assert not [s for s in rules if s.run.argv in fake.ran]


@pytest.mark.parametrize("reason", [True, False], ids=["nft", "legacy"])
def test_add_rollback_leaves_the_chain_another_interface_made(host, reason):
    """The same, and a later step fails: the rollback undoes the jump only, since the chain
    and its rules are the other interface's."""
    steps = add_steps()
    (chain,) = _masq(steps, "chain")
    rules = _masq(steps, "accept") + _masq(steps, "masquerade")
    (jump,) = _masq(steps, "jump")
    failing = [s for s in steps if not s.concurrent and s.run.argv[0] == "ip"][-1]
    fake = host(fail=failing.run.argv, restore_reason=reason)
    fake.errors = {chain.run.argv: "iptables: Chain already exists."}
    fake.answers = {s.skip_if_unbatched.argv: 0 for s in rules}
    with pytest.raises(CNIError):
        execute_add(fake, steps)
    undos = {s.undo.argv for s in steps if s.undo}
    undone = [a for a in fake.ran if a in undos]
    assert jump.undo.argv in undone
    assert chain.undo.argv not in undone and not [s for s in rules if s.undo.argv in undone]


def test_del_leaves_a_chain_another_interface_still_uses(host):
    """DEL of one of two interfaces on the network: the transaction fails on deleting the
    chain (another jump still uses it), so nothing of it was applied, and its steps run one
    at a time: the interface's jump is deleted, and the flush and the deletion are skipped
    because the chain is still used. DEL succeeds."""
    raw = dict(RAW, prevResult={"cniVersion": "1.0.0", "ips": [{"address": "10.5.0.2/24"}]})
    plan, _ = engine.build_plan(operation(raw, "DEL"))
    (jump,) = _masq(plan.steps, "jump")
    (flush,) = _masq(plan.steps, "flush")
    (chain,) = _masq(plan.steps, "chain")
    # the deletion's probe asks for rules too (the flush may have been skipped for a jump
    # that a parallel DEL removes in between: that DEL then empties and deletes the chain)
    assert chain.skip_if_unbatched.argv == flush.skip_if_unbatched.argv + ("rules",)
    assert flush.skip_if_unbatched.argv[0] == "cnish-chain-used"
    fake = host(fail=chain.run.argv,
                error="iptables v1.8.9 (nf_tables):  CHAIN_DEL failed (Device or resource busy)")
    fake.answers = {flush.skip_if_unbatched.argv: 0, chain.skip_if_unbatched.argv: 0}  # used
    fake._restore_steps = [s.run.argv for s in plan.steps]
    outcomes = {o.step.id: o for o in Executor(ResettingRunner(fake)).teardown(plan.steps)}
    assert outcomes[jump.id].status == "done"
    assert outcomes[flush.id].status == "skipped" and outcomes[chain.id].status == "skipped"
    assert fake.asked.count(flush.skip_if_unbatched.argv) == 1
    assert fake.asked.count(chain.skip_if_unbatched.argv) == 1
    # the flush was part of the failed transaction (nothing of which was applied) and never
    # ran on its own; the chain's deletion was attempted there only; the jump ran again alone
    assert flush.run.argv not in fake.ran and fake.ran.count(chain.run.argv) == 1
    assert jump.run.argv in fake.ran[fake.ran.index(chain.run.argv) + 1:]


def test_a_batch_that_succeeds_asks_no_probe(host):
    """skip_if_unbatched probes are asked only when a step runs on its own: a DEL whose
    transaction succeeds runs none (no cnish-chain-used, no process more)."""
    raw = dict(RAW, prevResult={"cniVersion": "1.0.0", "ips": [{"address": "10.5.0.2/24"}]})
    plan, _ = engine.build_plan(operation(raw, "DEL"))
    fake = host()
    fake.probes = guarded(plan.steps)
    fake._restore_steps = [s.run.argv for s in plan.steps]
    Executor(ResettingRunner(fake)).teardown(plan.steps)
    assert all(s.run.argv in fake.ran for s in _masq(plan.steps, "flush") + _masq(plan.steps, "chain"))
    assert not [a for a in fake.asked + fake.ran if a[0] == "cnish-chain-used"]


def test_del_keeps_going_and_reports(host):
    raw = dict(RAW, prevResult={"cniVersion": "1.0.0", "ips": [{"address": "10.5.0.2/24"}]})
    plan, _ = engine.build_plan(operation(raw, "DEL"))
    flush = next(s for s in plan.steps if s.id.endswith("flush"))
    fake = host(fail=flush.run.argv, error="iptables: Resource temporarily unavailable.")
    # the chain is not used by another interface (and, while the flush fails, holds rules)
    fake.answers = {flush.skip_if_unbatched.argv: 1}
    fake._restore_steps = [s.run.argv for s in plan.steps]
    with pytest.raises(CNIError) as info:
        Executor(ResettingRunner(fake)).teardown(plan.steps)
    assert "could not remove everything" in info.value.msg and flush.description in info.value.msg
    # the release does not run: the addresses stay reserved, so that the next DEL, even
    # without prevResult, finds the chain by them (they were released, and the chain stayed
    # for good; an audit)
    release = next(s for s in plan.steps if s.id == "release")
    assert release.run.argv not in fake.ran
    assert "the addresses stay reserved" in info.value.msg


def test_del_replays_a_failed_restore_transaction_rule_by_rule(host):
    """iptables-restore applies all or nothing: when one masquerade rule of DEL's transaction
    fails, DEL replays the transaction's steps one by one, so every other rule and chain is
    still removed, and names the one that failed."""
    raw = dict(RAW, prevResult={"cniVersion": "1.0.0", "ips": [{"address": "10.5.0.2/24"}]})
    plan, _ = engine.build_plan(operation(raw, "DEL"))
    masq = [s for s in plan.steps if s.id.startswith("masquerade")]
    v4 = [s for s in masq if s.run.argv[0] == "iptables"]
    assert len(v4) > 2
    target = v4[0]
    fake = host(fail=target.run.argv, error="iptables: Resource temporarily unavailable.")
    fake.probes = guarded(plan.steps)
    fake._restore_steps = [s.run.argv for s in plan.steps]
    with pytest.raises(CNIError) as info:
        Executor(ResettingRunner(fake)).teardown(plan.steps)
    assert target.description in info.value.msg
    assert all(s.run.argv in fake.ran for s in v4[1:])      # the rest, one by one


def test_del_fails_when_a_batch_does_not_say_where_it_stopped(host):
    """DEL: when a batch of two host-side deletions dies without naming its line, neither can
    be counted as done, and DEL reports that it could not remove everything."""
    import copy
    from cnish.plan import Command
    plan, _ = engine.build_plan(operation(dict(RAW), "DEL"))
    first = next(s for s in plan.steps if s.id == "host-link")
    second = copy.copy(first)
    second.id, second.number, second.skip_if = "host-link-2", first.number + 1, None
    second.run = Command(first.run.argv[:-1] + ("vethother",))
    first.skip_if = None
    steps = [first, second]
    fake = host(fail=second.run.argv, batch_line=None)
    fake._restore_steps = []
    with pytest.raises(CNIError) as info:
        Executor(ResettingRunner(fake)).teardown(steps)
    assert "could not remove everything" in info.value.msg
    assert f"step {first.number} " in info.value.msg and f"step {second.number} " in info.value.msg


def test_del_treats_missing_as_done(host):
    plan, _ = engine.build_plan(operation(dict(RAW), "DEL"))
    fake = host(fail=plan.steps[0].run.argv, error='Cannot find device "eth0"')
    fake.probes = guarded(plan.steps)                   # so the step does run
    fake._restore_steps = [s.run.argv for s in plan.steps]
    outcomes = Executor(ResettingRunner(fake)).teardown(plan.steps)
    assert outcomes[0].step is plan.steps[0] and outcomes[0].status == "missing"
    assert plan.steps[-1].run.argv in fake.ran          # and DEL went on to the end


class RecordingRunner:
    """Records when each check is started and when it is waited for; `failing` checks exit 1,
    the others print what their step expects (`expects`: check argv -> text)."""

    def __init__(self, expects, failing=()):
        self.events = []
        self.failing = set(failing)
        self.stdout = expects

    def start(self, argv, stdin=None, env=None):
        argv = tuple(argv)
        self.events.append(("start", argv))
        runner = self

        class Pending:
            def wait(self):
                runner.events.append(("wait", argv))
                if argv in runner.failing:
                    return Completed(argv, 1, stderr="not there")
                return Completed(argv, 0, stdout=runner.stdout.get(argv, "something"))
        return Pending()

    def run(self, argv, stdin=None, env=None):      # one at a time: start, then wait
        return self.start(argv, stdin, env).wait()

    def limit(self, seconds):       # (the phase's deadline: nothing here takes time)
        self.seconds = seconds


def check_plan(interface=None, **conf):
    raw = dict(RAW, prevResult={"cniVersion": "1.0.0", "interfaces": [interface or {"name": "eth0"}],
                                "ips": [{"address": "10.5.0.2/24", "gateway": "10.5.0.1"}]},
               **conf)
    plan, _ = engine.build_plan(operation(raw, "CHECK"))
    return [s for s in plan.steps if s.check is not None]


def expected_outputs(steps) -> dict:
    """Check argv -> an output that holds every text its step expects."""
    return {s.check.argv: " ".join(s.expect["contains"]) if isinstance(s.expect["contains"], list)
            else s.expect["contains"] for s in steps if isinstance(s.expect, dict)}


def test_check_starts_every_check_before_waiting_and_reports_all_mismatches_in_order():
    steps = check_plan()
    assert len(steps) > 3
    second, last = steps[1], steps[-1]
    runner = RecordingRunner(expected_outputs(steps), failing=(last.check.argv, second.check.argv))
    with pytest.raises(CNIError) as info:
        Executor(runner).check(steps)
    kinds = [kind for kind, _ in runner.events]
    assert kinds == ["start"] * len(steps) + ["wait"] * len(steps)      # all started at once
    assert [argv for _, argv in runner.events[len(steps):]] == [s.check.argv for s in steps]
    msg = info.value.msg
    assert f"(step {second.number})" in msg and f"(step {last.number})" in msg
    assert msg.index(f"(step {second.number})") < msg.index(f"(step {last.number})")
    assert f"(step {steps[0].number})" not in msg


def test_check_fails_a_step_that_expects_output_and_gets_none():
    """`expect = "output"` (a route, an address): a check command that succeeds but prints
    nothing (or only blanks) means the thing is not there."""
    steps = check_plan()
    wants_output = [s for s in steps if s.expect == "output"]
    assert wants_output
    expects = expected_outputs(steps)
    expects[wants_output[0].check.argv] = " \n"
    with pytest.raises(CNIError) as info:
        Executor(RecordingRunner(expects)).check(steps)
    assert f"(step {wants_output[0].number})" in info.value.msg


def test_check_wants_every_text_a_step_expects():
    """With an MTU the result records, the container interface's check expects its MAC and
    its MTU: an output with the MAC alone fails."""
    steps = check_plan({"name": "eth0", "sandbox": "/var/run/netns/cnish-test", "mtu": 1400},
                       cniVersion="1.1.0")
    (up,) = [s for s in steps if s.id == "container-up"]
    assert isinstance(up.expect["contains"], list) and '"mtu":1400,' in up.expect["contains"]
    expects = expected_outputs(steps)
    Executor(RecordingRunner(expects)).check(steps)
    expects[up.check.argv] = up.expect["contains"][0]
    with pytest.raises(CNIError) as info:
        Executor(RecordingRunner(expects)).check(steps)
    assert f"""(step {up.number}: no '"mtu":1400,' found)""" in info.value.msg


def test_check_passes_when_every_check_holds():
    steps = check_plan()
    runner = RecordingRunner(expected_outputs(steps))
    assert Executor(runner).check(steps) == []


def test_a_command_that_cannot_start_is_a_failed_step_not_an_exception():
    """posix_spawn refuses an argument with a NUL byte (ValueError), or fails with E2BIG or
    EAGAIN: the runner answers with a failed command, which the executor rolls back like any
    other, where the exception used to skip the rollback (found by an audit)."""
    from cnish.runner import Runner
    result = Runner().run(("echo", "a\0b"))
    assert result.returncode == 126 and "cannot start" in result.stderr


def test_preparing_is_only_a_head_start(monkeypatch):
    """Runner.prepare runs while a process of the plan is running: an error there must not
    escape (the rollback would be skipped); the command itself meets it, or falls back to the
    real tool, when it runs."""
    from cnish import netns
    runner = Runner(path="/usr/sbin:/usr/bin")

    def broken():
        raise OSError("setns: not here")
    monkeypatch.setattr(netns, "prepare", broken)
    runner.prepare([("nsenter", "--net=/run/netns/x", "ip", "-batch", "-")])


def test_preparing_readies_setns_only_where_cnish_enters_itself(monkeypatch):
    """What Runner.prepare does ahead: the setns function for `nsenter --net=` commands the
    runner runs in-process; nothing when it runs the real tools."""
    from cnish import netns
    argv = ("nsenter", "--net=/run/netns/x", "ip", "-batch", "-")
    monkeypatch.setattr(netns, "_setns", [])
    Runner(path="/usr/sbin:/usr/bin", use_natives=False).prepare([argv])
    assert netns._setns == []
    Runner(path="/usr/sbin:/usr/bin").prepare([("ip", "-batch", "-")])
    assert netns._setns == []
    Runner(path="/usr/sbin:/usr/bin").prepare([argv])
    assert len(netns._setns) == 1


@pytest.mark.parametrize("guard, ipam, held", [
    ("c1/eth0", "c1/eth0", True),       # the same attachment's reservation
    ("c1/eth0", "c2/eth0", False),      # another stale attachment's: released
    ("c1/eth0", "c1/eth1", False),      # another interface of the same container
    ("c1/eth0", "c1/", True),           # a legacy reservation (no ifname) of that container
    (None, "c2/eth0", True),            # a veth whose label does not say whose (or DEL's step)
    ("c1/eth0", None, True),            # an IPAM step that does not say (prune, a delegate)
])
def test_a_failed_guard_holds_back_its_own_attachments_addresses(guard, ipam, held):
    from cnish.plan import Step
    veth, release = Step(), Step()
    veth.attachment, release.attachment = guard, ipam
    assert veth.keeps_addresses_of(release) is held


# -- deadlines: real processes, a phase of a second ------------------------------------------

def _steps(*runs, undos=None):
    """Steps running these argvs (and undoing with `undos`), bound like a plan's."""
    from cnish import plan
    undos = undos or [None] * len(runs)

    def command(argv):
        return {"argv": list(argv), "prefix": 0} if argv else None
    return plan.bind([{"id": f"s{n}", "description": f"step {n}", "netns": "host",
                       "run": command(run), "undo": command(undo), "check": None,
                       "skip_if": None, "on_exists": "error", "on_missing": "error",
                       "shared": False, "undone_by": None}
                      for n, (run, undo) in enumerate(zip(runs, undos), start=1)], {})


@pytest.fixture
def short_phases(monkeypatch, tmp_path):
    from cnish import executor, runner
    # (engine.execute takes the attachment's lock: the test's own directory, not /run/cnish)
    monkeypatch.setenv("CNISH_ATTACHMENT_LOCKS", str(tmp_path / "locks"))
    monkeypatch.setattr(executor, "PHASE_SECONDS",
                        {"prepare": 1, "apply": 1, "rollback": 1, "teardown": 1, "check": 1})
    monkeypatch.setattr(runner, "GRACE", 0.5)


def _log(path):
    return path.read_text().split() if path.exists() else []


def test_a_hung_tool_is_killed_at_the_deadline_and_the_add_rolled_back(short_phases, tmp_path):
    """A tool that hangs (an `ip` stuck on a lock) used to hold ADD for 120 s, and its undo as
    long again: longer than kubelet waits. It is killed when ADD's phase ends; the steps after
    it do not start; what ran is undone."""
    import time
    log = tmp_path / "log"
    steps = _steps(("sh", "-c", f"echo 1 >> {log}"), ("sleep", "30"),
                   ("sh", "-c", f"echo 3 >> {log}"),
                   undos=[("sh", "-c", f"echo undo1 >> {log}"), None, None])
    t0 = time.monotonic()
    with pytest.raises(CNIError) as info:
        Executor(Runner()).apply(steps)
    assert time.monotonic() - t0 < 5
    assert "step 2" in info.value.msg
    assert "timed out after 1 s, killed" in info.value.details
    assert _log(log) == ["1", "undo1"]                  # step 3 never ran; step 1 was undone


def test_no_step_starts_after_the_add_deadline(short_phases, monkeypatch, tmp_path):
    from cnish import runner
    monkeypatch.setattr(runner, "GRACE", 3)     # (step 1 may outlive the deadline: 1 s)
    log = tmp_path / "log"
    steps = _steps(("sh", "-c", f"sleep 1.2; echo 1 >> {log}"), ("sh", "-c", f"echo 2 >> {log}"),
                   undos=[("sh", "-c", f"echo undo1 >> {log}"), None])
    with pytest.raises(CNIError) as info:
        Executor(Runner()).apply(steps)
    assert "step 2" in info.value.msg
    assert "`sh -c 'echo 2 >> " in info.value.details
    assert "log'` not started: the steps before it took longer than the 1 s" in info.value.details
    assert _log(log) == ["1", "undo1"]


def test_a_batch_killed_at_the_deadline_is_undone_whole_and_not_replayed(short_phases,
                                                                        tmp_path):
    """A killed `iptables-restore` may have applied its rules: every step of it is undone,
    and none is replayed alone past the deadline (they were, with `iptables`, and the error
    then blamed a step that had not run; a review's find)."""
    import time
    bindir, log = tmp_path / "bin", tmp_path / "log"
    bindir.mkdir()
    for tool, hang in (("iptables-restore", True), ("iptables", False)):
        (bindir / tool).write_text(f"#!/bin/sh\necho \"{tool} $*\" >> {log}\n"
                                   + ("cat > /dev/null\nexec sleep 30\n" if hang else ""))
        (bindir / tool).chmod(0o755)
    steps = _steps(("iptables", "-w", "-t", "nat", "-N", "CNI-X"),
                   ("iptables", "-w", "-t", "nat", "-A", "CNI-X", "-j", "ACCEPT"),
                   undos=[("sh", "-c", f"echo undo1 >> {log}"),
                          ("sh", "-c", f"echo undo2 >> {log}")])
    t0 = time.monotonic()
    with pytest.raises(CNIError) as info:
        Executor(Runner(path=str(bindir), use_natives=False)).apply(steps)
    assert time.monotonic() - t0 < 5
    assert "step 1" in info.value.msg and "timed out after 1 s, killed" in info.value.details
    lines = log.read_text().splitlines()
    assert [l.split()[0] for l in lines] == ["iptables-restore", "undo2", "undo1"], lines


def test_a_killed_batch_leaves_what_may_be_another_attachments(short_phases, tmp_path):
    """Of a killed batch, a step whose object may be another attachment's (it takes finding
    it for done, or a probe skips it: a second interface's masquerade chain and rules, which
    are the first's too) is not undone on a guess: eth0's rules went with eth1's rollback (a
    review's find). The others are."""
    from cnish import plan
    bindir, log = tmp_path / "bin", tmp_path / "log"
    bindir.mkdir()
    (bindir / "iptables-restore").write_text(f"#!/bin/sh\necho restore >> {log}\n"
                                             "cat > /dev/null\nexec sleep 30\n")
    (bindir / "iptables-restore").chmod(0o755)
    steps = _steps(("iptables", "-w", "-t", "nat", "-N", "CNI-A"),
                   ("iptables", "-w", "-t", "nat", "-N", "CNI-X"),
                   ("iptables", "-w", "-t", "nat", "-A", "CNI-X", "-j", "ACCEPT"),
                   undos=[("sh", "-c", f"echo undo{n} >> {log}") for n in (1, 2, 3)])
    steps[1].on_exists = "done"                                   # (the chain: shared)
    steps[2].skip_if_unbatched = plan.Command(("false",))         # (the rule: probed alone)
    with pytest.raises(CNIError) as info:
        Executor(Runner(path=str(bindir), use_natives=False)).apply(steps)
    assert "timed out" in info.value.details
    assert log.read_text().split() == ["restore", "undo1"]


def test_a_delegated_ipam_killed_at_the_deadline_gets_its_del(short_phases, tmp_path):
    """A delegated IPAM's ADD killed at the prepare phase's deadline may have allocated: it
    gets its DEL (none was sent: only a finished ADD counted), in time of its own (the DEL ran
    under what the prepare phase had left: a review's find)."""
    from cnish import engine
    from cnish.config import parse_env
    bindir, log = tmp_path / "bin", tmp_path / "log"
    bindir.mkdir()
    (bindir / "slow-ipam").write_text(
        f'#!/bin/sh\necho "$CNI_COMMAND" >> {log}\ncat > /dev/null\n'
        '[ "$CNI_COMMAND" = ADD ] && exec sleep 30\nsleep 0.6\nexit 0\n')
    (bindir / "slow-ipam").chmod(0o755)
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ctr1", "CNI_NETNS": "/var/run/netns/x",
           "CNI_IFNAME": "eth0", "CNI_PATH": str(bindir), "CNI_ARGS": ""}
    op = engine.Operation(dict(RAW, ipam={"type": "slow-ipam"}),
                          parse_env(env, netns_exists=False), dry_run=False, runner=Runner())
    with pytest.raises(CNIError) as info:
        engine.execute(op)
    assert "timed out after 1 s" in str(info.value) + info.value.details
    assert "releasing the addresses failed" not in info.value.details  # (its DEL took 0.6 s)
    assert log.read_text().split() == ["ADD", "DEL"]


def test_a_fact_killed_at_the_deadline_is_no_answer(short_phases, tmp_path):
    """A recipe's fact (a read-only command while the plan is made) killed at the prepare
    phase's deadline read as its tool's silence: "no such chain", "no address", and a DEL
    then succeeded having removed less (a review's find). It is code 11 now: try again."""
    from cnish.executor import start_phase
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ip").write_text("#!/bin/sh\nexec sleep 30\n")
    (bindir / "ip").chmod(0o755)
    op = operation(dict(RAW, bridge="lo"), dry_run=False,
                   runner=Runner(path=str(bindir), use_natives=False))
    start_phase(op.runner, "prepare")
    with pytest.raises(CNIError) as info:
        op.fact("bridge-addresses")
    assert info.value.code == 11 and "cannot tell bridge-addresses" in info.value.msg
    assert "timed out after 1 s" in info.value.msg


def test_nothing_starts_while_the_plan_is_made_once_its_deadline_has_passed(short_phases,
                                                                              tmp_path):
    """Past the prepare phase's deadline a fact, or a delegated IPAM's ADD, still started and
    got the runner's grace (2 s each): neither starts now; code 11, and no DEL is owed."""
    import time
    from cnish import engine
    from cnish.config import parse_env
    from cnish.executor import start_phase
    bindir, log = tmp_path / "bin", tmp_path / "log"
    bindir.mkdir()
    for tool in ("ip", "some-ipam"):
        (bindir / tool).write_text(f'#!/bin/sh\necho "{tool} $CNI_COMMAND" >> {log}\n')
        (bindir / tool).chmod(0o755)
    op = operation(dict(RAW, bridge="lo"), dry_run=False,
                   runner=Runner(path=str(bindir), use_natives=False))
    start_phase(op.runner, "prepare")
    op.runner.deadline = time.monotonic() - 0.1        # (the phase's time is up)
    with pytest.raises(CNIError) as info:
        op.fact("bridge-addresses")
    assert info.value.code == 11 and "cannot tell bridge-addresses" in info.value.msg
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ctr1", "CNI_NETNS": "/var/run/netns/x",
           "CNI_IFNAME": "eth0", "CNI_PATH": str(bindir), "CNI_ARGS": ""}
    op = engine.Operation(dict(RAW, ipam={"type": "some-ipam"}),
                          parse_env(env, netns_exists=False), dry_run=False,
                          runner=Runner(path=str(bindir), use_natives=False))
    start_phase(op.runner, "prepare")
    op.runner.deadline = time.monotonic() - 0.1
    with pytest.raises(CNIError) as info:
        op.ipam_module.ipam_add(op)
    assert info.value.code == 11 and "some-ipam" in info.value.msg, info.value
    assert not log.exists()                             # (neither tool ran)
    # nor does a fact's command start when its probe (`test`) took the phase's last time
    (bindir / "test").write_text(f'#!/bin/sh\necho test >> {log}\nsleep 1.2\nexit 1\n')
    (bindir / "test").chmod(0o755)
    op = operation(dict(RAW, bridge="lo"), dry_run=False,
                   runner=Runner(path=str(bindir), use_natives=False))
    start_phase(op.runner, "prepare")
    with pytest.raises(CNIError) as info:
        op.fact("bridge-addresses")
    assert info.value.code == 11 and "deadline" in info.value.msg, info.value
    assert log.read_text().split() == ["test"]          # (the probe ran, `ip` did not)


def test_what_runs_while_the_plan_is_made_has_a_deadline_too(short_phases, monkeypatch):
    """The recipes' facts (a macvlan's container-link probe, DEL's chain reads) and a delegated
    IPAM's ADD run before the steps: they had 120 s each (a review's find)."""
    import time
    from cnish import engine
    seen = []

    def plan_with_a_hung_fact(op):
        seen.append(op.runner.run(("sleep", "30")))
        raise CNIError(7, "stop here")
    monkeypatch.setattr(engine, "build_plan", plan_with_a_hung_fact)
    op = operation(dict(RAW), dry_run=False, runner=Runner())
    monkeypatch.setattr(op, "abandon_ipam", lambda exc: None)
    t0 = time.monotonic()
    with pytest.raises(CNIError):
        engine.execute(op)
    assert time.monotonic() - t0 < 4
    assert seen[0].returncode == 124 and "timed out after 1 s" in seen[0].stderr
    assert op.runner.deadline is None                   # (and the clock is off again)


def test_a_hung_undo_ends_with_the_rollbacks_own_deadline(short_phases, tmp_path):
    import time
    log = tmp_path / "log"
    steps = _steps(("true",), ("true",), ("false",),
                   undos=[("sh", "-c", f"echo undo1 >> {log}"), ("sleep", "30"), None])
    t0 = time.monotonic()
    with pytest.raises(CNIError) as info:
        Executor(Runner()).apply(steps)
    assert time.monotonic() - t0 < 5
    assert "step 3" in info.value.msg
    assert "rollback could not undo: step 2 (s2) `sleep 30`: sleep: timed out after 1 s" \
        in info.value.details
    assert _log(log) == ["undo1"]                       # the rollback went on after it


def test_del_tries_every_step_after_its_deadline(short_phases, tmp_path):
    import time
    log = tmp_path / "log"
    steps = _steps(("sleep", "30"), ("sleep", "30"), ("sh", "-c", f"echo 3 >> {log}"))
    t0 = time.monotonic()
    with pytest.raises(CNIError) as info:
        Executor(Runner()).teardown(steps)
    assert time.monotonic() - t0 < 4                    # 1 s, then 0.5 s of grace
    assert "step 1" in info.value.msg and "step 2" in info.value.msg
    assert _log(log) == ["3"]


def test_hung_checks_end_with_checks_deadline(short_phases):
    import time
    from cnish import plan
    steps = _steps(("true",), ("true",))
    for step in steps:
        step.check, step.expect = plan.Command(("sleep", "30")), None
    t0 = time.monotonic()
    with pytest.raises(CNIError) as info:
        Executor(Runner()).check(steps)
    assert time.monotonic() - t0 < 4                    # 1 s for both, not 120 s each
    assert "(step 1)" in info.value.msg and "(step 2)" in info.value.msg
