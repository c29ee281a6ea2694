"""Executing a plan: ADD with rollback, DEL best effort, CHECK read-only.

The executor knows steps, commands and tools — nothing about bridges or addresses. Its rules:

- **apply** (ADD): steps run in order. A failure that a step declares harmless ("File exists"
  for an `on_exists = "done"` step) counts as done-but-not-ours. Any other failure stops the
  plan, and every step this invocation completed that has an undo is undone in reverse order
  — except shared steps, which other attachments may rely on at this very moment (a step
  whose effect goes with an earlier one, `undone_by`, has no undo of its own). Undo keeps
  going when an undo fails and reports both the original failure and what could not be
  undone.
- **teardown** (DEL): every step runs; "not found" is success; other failures are collected
  and reported after the last step, so one stubborn object does not keep the rest alive —
  except the IPAM steps after a failed `guards_addresses` step (the container's interface
  could not be deleted and may still hold its addresses): releasing them could hand an
  address in use to the next container, so they stay reserved until a DEL succeeds.
- **check** (CHECK): every step's check runs (all at once: they only read); all mismatches are
  reported together.
- **deadlines**: a runtime gives up on a plugin after its own timeout (kubelet's calls to the
  runtime: 2 min), kills it (not its tools) and retries; work that goes on after that only
  gets in the retry's way. So each phase has a deadline (PHASE_SECONDS): a tool still running
  then is killed (the runner's limit), an ADD starts no step after it and rolls back, with time
  of its own for the undo; a DEL still tries its later steps, a few seconds each. A batch or
  command killed that way may have done part of its work: its steps count as "unknown", so an
  ADD undoes them, but for those whose object may be another attachment's (_killed); a killed
  batch is never replayed one step at a time past the deadline. An ADD whose tools hang ends
  within ≈ 110 s where it took up to 120 s a tool, undo included.

Consecutive commands of one tool in one namespace are sent to the tool's batch mode
(batching.py); a batch failure is traced back to its step, so rollback stays per step. A step
that runs on its own (its iptables-restore transaction failed and is replayed one step at a
time, or nothing could be batched with it) first asks its `skip_if_unbatched` probe, if it
has one: how two interfaces of one container share a masquerade chain (plans/README.md).
"""

from cnish import batching, natives
from cnish.errors import CHECK_FAILED, STEP_FAILED, CNIError
from cnish.runner import TIMED_OUT

# Seconds each phase may take (see "deadlines" above): "prepare" is what runs while the plan
# is made (the recipes' facts, a delegated IPAM's ADD; engine.execute); an ADD's three phases
# stay under kubelet's 2 minutes with the runner's GRACE after each, and so do a DEL's two.
PHASE_SECONDS = {"prepare": 30, "apply": 45, "rollback": 30, "teardown": 90, "check": 60}

# Stderr fragments that mean "already there" / "already gone" for the tools plans use
# (cnish-store's "is already reserved ...: File exists" included).
EXISTS = ("File exists", "Chain already exists")
MISSING = ("Cannot find device", "No such device", "No such file or directory",
           "does not exist", "Address not found", "No such process",
           "No chain/target/match by that name", "Bad rule (does a matching rule exist",
           "Cannot assign requested address")


def classify(stderr: str) -> str:
    if any(s in stderr for s in EXISTS):
        return "exists"
    if any(s in stderr for s in MISSING):
        return "missing"
    return "failed"


def show(argv) -> str:
    import shlex        # only for messages: shlex imports re, ~5 ms at every start otherwise
    return " ".join(shlex.quote(a) for a in argv)


class Outcome:
    """What happened to one step (or one undo)."""

    __slots__ = ("step", "status", "returncode", "stderr", "argv", "seconds")

    def __init__(self, step, status, returncode=0, stderr="", argv=(), seconds=0.0):
        self.step = step
        # done | exists | missing | skipped | failed | unknown, or (not run) kept: an IPAM step
        # held back by a failed guards_addresses step; not-run: a batch stopped before it
        self.status = status
        self.returncode = returncode
        self.stderr = stderr.strip()
        self.argv = tuple(argv)
        self.seconds = seconds


class Job:
    """One command to run for a step, with what its failures may mean."""

    __slots__ = ("step", "cmd", "tolerate", "probe", "alone")

    def __init__(self, step, cmd, tolerate=(), probe=None, alone=False):
        self.step = step
        self.cmd = cmd
        self.tolerate = tolerate
        self.probe = probe
        self.alone = alone      # the step's run: its skip_if_unbatched applies (not to undos)


def start_phase(runner, phase: str) -> int:
    """Start `phase`'s clock on the runner (see deadlines above); returns its seconds."""
    seconds = PHASE_SECONDS[phase]
    runner.limit(seconds)
    return seconds


class Executor:
    def __init__(self, runner, log=None):
        self.runner = runner
        self.log = log
        self.phase_seconds = None

    def _run_phase(self, phase: str, jobs, stop_on_failure: bool, concurrent: bool = True):
        """run_jobs on a phase's clock: the runner kills what runs past it (see deadlines
        above); what runs outside a phase gets the runner's TIMEOUT."""
        self.phase_seconds = start_phase(self.runner, phase)
        try:
            return self.run_jobs(jobs, stop_on_failure, concurrent)
        finally:
            self.runner.limit(None)

    # -- running jobs, batched ------------------------------------------------------------------

    def _run(self, argv, stdin=None):
        return self.runner.run(argv, stdin)

    def run_jobs(self, jobs, stop_on_failure: bool, concurrent: bool = True) -> list:
        """Run jobs in order, batching where possible; one Outcome per job that was reached.

        Jobs of steps marked `concurrent` depend on nothing but the steps that run in-process
        (the IPAM reservation): they are started, batched, right after the first other command
        (which is on the critical path, so it goes first) and collected at the end, so their
        processes run while the others do. Outcomes come back in plan order."""
        def early(job):
            return concurrent and job.step.concurrent and job.probe is None

        background = [j for j in jobs if early(j)]
        jobs = [j for j in jobs if not early(j)]
        warm = concurrent       # (see the Runner.prepare call below)
        pending = []
        outcomes = []
        stopped = False
        i = 0
        while i < len(jobs):
            job = jobs[i]
            if job.step.ipam and any(j.step.guards_addresses
                                     for j in background + [j for g, _ in pending for j in g]):
                # A concurrent step that guards addresses (DEL's masquerade rules, found by
                # these addresses) must have ended before IPAM releases them: collected here.
                pending += self._start_all(background)
                background = []
                for group, started in pending:
                    outcomes.extend(self._finish_group(group, stop_on_failure, started))
                pending = []
            if job.step.ipam and any(o.step.guards_addresses and o.status in ("failed", "unknown")
                                     and o.step.keeps_addresses_of(job.step) for o in outcomes):
                outcomes.append(Outcome(job.step, "kept"))      # see teardown
                i += 1
                continue
            if job.probe is not None:
                if background and not _native(job.probe):
                    pending, background = self._start_all(background), []
                probe = self._run(job.probe.argv)
                if probe.returncode == 0:
                    outcomes.append(Outcome(job.step, "skipped", argv=job.probe.argv))
                    i += 1
                    continue
            if stop_on_failure and self.runner.overdue():
                # (ADD: what is left does not start; what ran is undone, in time of its own)
                outcomes.append(self._not_started(job))
                stopped = True
                break
            group = self._group(jobs, i)
            started = self._start_group(group)
            if background and not _native(job.cmd):
                pending, background = self._start_all(background), []
            if warm and started[0] != "skipped" and not _native(job.cmd):
                # While the first process runs (an ADD's host links, which the container's
                # steps wait for), the in-process parts of the later steps get ready.
                warm = False
                later = jobs[i + len(group):]
                self.runner.prepare([j.cmd.argv for j in later]
                                    + [j.probe.argv for j in later if j.probe is not None])
            done = self._finish_group(group, stop_on_failure, started)
            outcomes.extend(done)
            i += len(done)
            if stop_on_failure and done and done[-1].status in ("failed", "unknown"):
                stopped = True
                break
        if background and not stopped:  # (after a failure they are not reached: nothing to undo)
            pending = self._start_all(background)
        for group, started in pending:
            outcomes.extend(self._finish_group(group, stop_on_failure, started))
        if concurrent:
            outcomes.sort(key=lambda o: o.step.number)         # back in plan order
        return outcomes

    def _not_started(self, job) -> Outcome:
        return Outcome(job.step, "failed", None, "not started: the steps before it took longer "
                       f"than the {self.phase_seconds} s an ADD's steps may take", job.cmd.argv)

    def _start_all(self, jobs) -> list:
        pending, i = [], 0
        while i < len(jobs):
            group = self._group(jobs, i)
            pending.append((group, self._start_group(group)))
            i += len(group)
        return pending

    @staticmethod
    def _group(jobs, i) -> list:
        """The batch starting at jobs[i]: following jobs of the same tool and namespace."""
        group = [jobs[i]]
        family = batching.kind(jobs[i].cmd)
        if family is not None:
            while (i + len(group) < len(jobs)
                   and jobs[i + len(group)].probe is None
                   and batching.kind(jobs[i + len(group)].cmd) == family
                   and jobs[i + len(group)].cmd.wrapper == jobs[i].cmd.wrapper):
                group.append(jobs[i + len(group)])
        return group

    def _alone_skip(self, job) -> Outcome | None:
        """A step that runs on its own (not inside a batch that succeeded) first asks its
        `skip_if_unbatched` probe; exit status 0 skips it. A batch that succeeds with the step
        in it has shown the probe's answer to be no (plans/README.md), so it is asked only
        here: after a batch failed, or when nothing could be batched with the step."""
        probe = job.step.skip_if_unbatched if job.alone else None
        if probe is not None and self._run(probe.argv).returncode == 0:
            return Outcome(job.step, "skipped", argv=probe.argv)
        return None

    def _single(self, job, started=None) -> Outcome:
        if started is None:
            skipped = self._alone_skip(job)
            if skipped is not None:
                return skipped
        res = (started or self.runner.start(job.cmd.argv)).wait()
        if res.returncode == 0:
            return Outcome(job.step, "done", 0, res.stderr, job.cmd.argv, res.seconds)
        if res.returncode == TIMED_OUT:
            return _killed(job, res.stderr, job.cmd.argv)
        status = classify(res.stderr)
        if status not in job.tolerate:
            status = "failed"
        return Outcome(job.step, status, res.returncode, res.stderr, job.cmd.argv, res.seconds)

    def _start_group(self, group):
        """Start the process of a batch (or of a single command)."""
        family = batching.kind(group[0].cmd) if len(group) > 1 else None
        cmds = [j.cmd for j in group]
        if family is None:
            skipped = self._alone_skip(group[0])
            if skipped is not None:
                return ("skipped", skipped, None)
            return (None, self.runner.start(group[0].cmd.argv), None)
        if family == "ip":
            argv, stdin = batching.ip_batch(cmds)
            return (family, self.runner.start(argv, stdin), None)
        if family in ("iptables", "ip6tables"):
            argv, stdin, owner = batching.restore_batch(cmds)
            return (family, self.runner.start(argv, stdin), owner)
        if family == "sysctl":
            return (family, self.runner.start(batching.sysctl_batch(cmds)), None)
        raise AssertionError(family)

    def _finish_group(self, group, stop_on_failure, started) -> list:
        """Wait for a batch and trace its outcome back to its steps."""
        family, pending, owner = started
        if family == "skipped":
            return [pending]
        if family is None:
            return [self._single(group[0], pending)]
        res = pending.wait()
        if res.returncode == 0:
            return [Outcome(j.step, "done", 0, "", j.cmd.argv, res.seconds) for j in group]
        if res.returncode == TIMED_OUT:
            # Killed at its phase's deadline: any of its lines may have run, and none is
            # replayed alone (past the deadline); see _killed
            return [_killed(group[0], res.stderr, res.argv)] + \
                   [_killed(j, "", j.cmd.argv) for j in group[1:]]
        if family == "ip":
            line = batching.ip_batch_failed_line(res.stderr)
            if line is None or not 1 <= line <= len(group):
                # The batch died without saying where (a parse error): any line may have run.
                return [Outcome(group[0].step, "unknown", res.returncode, res.stderr, res.argv)] + \
                       [Outcome(j.step, "unknown", res.returncode, "", j.cmd.argv) for j in group[1:]]
            out = [Outcome(j.step, "done", 0, "", j.cmd.argv) for j in group[:line - 1]]
            failed = group[line - 1]
            stderr = batching.strip_batch_marker(res.stderr)
            status = classify(stderr)
            out.append(Outcome(failed.step, status if status in failed.tolerate else "failed",
                               res.returncode, stderr, failed.cmd.argv, res.seconds))
            return out      # the caller continues after the failed line (or stops)
        if family in ("iptables", "ip6tables"):
            # Nothing was applied. If the culprit tolerates some failures (iptables-legacy's
            # restore names the line but not the reason), or we cannot tell which rule
            # failed, replay one by one to get a per-step answer.
            index = owner.get(batching.restore_failed_line(res.stderr))
            if index is None or not stop_on_failure or group[index].tolerate:
                return self._one_by_one(group, stop_on_failure)
            out = [Outcome(j.step, "not-run") for j in group[:index]]
            bad = group[index]
            return out + [Outcome(bad.step, "failed", res.returncode, res.stderr, bad.cmd.argv,
                                  res.seconds)]
        return self._one_by_one(group, stop_on_failure)   # sysctl is idempotent: find the culprit

    def _one_by_one(self, group, stop_on_failure) -> list:
        out = []
        for job in group:
            if stop_on_failure and self.runner.overdue():
                out.append(self._not_started(job))
                break
            out.append(self._single(job))
            if stop_on_failure and out[-1].status == "failed":
                break
        return out

    # -- the three modes ------------------------------------------------------------------------

    def apply(self, steps) -> list:
        """ADD: run steps in order; on failure undo what was done and raise the error."""
        jobs = [Job(s, s.run, tolerated(s), s.skip_if, alone=True) for s in steps if s.run is not None]
        outcomes = self._run_phase("apply", jobs, stop_on_failure=True)
        self._log_outcomes("apply", outcomes)
        failure = next((o for o in outcomes if o.status in ("failed", "unknown")), None)
        if failure is None:
            return outcomes
        undo_errors = self.rollback(outcomes)
        shared = [o.step for o in outcomes if o.status in ("done", "unknown") and o.step.shared]
        raise step_error(failure, undo_errors, shared)

    def rollback(self, outcomes) -> list:
        """Undo, newest first, every step this invocation completed. Returns undo failures."""
        done = [o for o in outcomes
                if o.status in ("done", "unknown") and o.step.undo is not None
                and not o.step.shared]
        jobs = [Job(o.step, o.step.undo, ("missing",)) for o in reversed(done)]
        undone = self._run_phase("rollback", jobs, stop_on_failure=False, concurrent=False)   # strictly newest first
        self._log_outcomes("rollback", undone)
        return [o for o in undone if o.status in ("failed", "unknown")]

    def teardown(self, steps) -> list:
        """DEL: run every step; "not found" is fine; raise once at the end if anything failed."""
        jobs = [Job(s, s.run, tolerated(s), s.skip_if, alone=True) for s in steps if s.run is not None]
        outcomes = self._run_phase("teardown", jobs, stop_on_failure=False)
        self._log_outcomes("teardown", outcomes)
        failures = [o for o in outcomes if o.status in ("failed", "unknown")]
        kept = [o for o in outcomes if o.status == "kept"]
        if failures:
            raise CNIError(
                STEP_FAILED,
                "could not remove everything: " + "; ".join(
                    f"step {o.step.number} ({o.step.description})" for o in failures)
                + ("; the addresses stay reserved while the interface may still hold them, "
                   "and so that the next DEL finds the rules made for them "
                   f"(step{'s' if len(kept) > 1 else ''} {', '.join(str(o.step.number) for o in kept)} "
                   "not run): DEL (GC) again once it can be removed" if kept else ""),
                " | ".join(_failure_details(o) for o in failures))
        return outcomes

    def check(self, steps) -> list:
        """CHECK: run every check; raise one error listing all mismatches."""
        problems = []
        # The checks only read, and none depends on another: all are started at once and
        # collected in plan order, so the processes' start-up costs overlap.
        start_phase(self.runner, "check")
        try:
            started = [(step, self.runner.start(step.check.argv)) for step in steps
                       if step.check is not None]
            results = [(step, pending.wait()) for step, pending in started]
        finally:
            self.runner.limit(None)
        for step, res in results:
            ok = res.returncode == 0
            missing = None       # what of the expected texts its output lacks
            if ok and step.expect == "output":
                ok = res.stdout.strip() != ""
            elif ok and isinstance(step.expect, dict):
                missing = step.lacking(res.stdout)
                ok = missing is None
            if not ok:
                problems.append((step, res, missing))
        if self.log:
            for step, res, _ in problems:
                self.log.write(f"check failed: step {step.number} {step.id}: {show(res.argv)}")
        if problems:
            raise CNIError(
                CHECK_FAILED,
                # (what the output lacked in the message too: "bring eth0 up" is also where
                # the container's MAC and MTU are compared)
                "check failed: " + "; ".join(f"{s.description} (step {s.number}"
                                            + (f": no {missing} found" if missing else "")
                                            + ")" for s, _, missing in problems),
                " | ".join(f"step {s.number} {s.id}: `{show(r.argv)}` "
                           + (f"exited {r.returncode}" if r.returncode
                              else f"printed no {missing}" if missing
                              else "printed nothing, where output was expected")
                           + (f": {r.stderr.strip()}" if r.stderr.strip() else "")
                           for s, r, missing in problems))
        return []

    def _log_outcomes(self, phase, outcomes):
        if not self.log:
            return
        for o in outcomes:
            line = f"{phase}: step {o.step.number} {o.step.id}: {o.status}"
            if o.argv:
                line += f": {show(o.argv)}"
            if o.status not in ("done", "skipped") and o.stderr:
                line += f" -> {o.stderr}"
            self.log.write(line)


def _killed(job, stderr: str, argv) -> Outcome:
    """The outcome of a step whose command (or batch) was killed at its deadline: it may have
    done its part, so it is "unknown" and ADD undoes it — unless its object may be another
    attachment's (the step takes finding it there for done, or a probe skips it then: a second
    interface's masquerade chain, rules and jump, which are the first's too). An undo on a
    guess would take that from it (a review's find: eth0's rules went with eth1's rollback),
    so such a step is "failed", not undone; what it may have left, DEL finds by its address."""
    step = job.step
    theirs_too = (step.on_exists == "done" or step.skip_if is not None
                  or step.skip_if_unbatched is not None)
    return Outcome(step, "failed" if theirs_too else "unknown", TIMED_OUT, stderr, argv)


def tolerated(step) -> tuple:
    """Which failures of a step's command count as done: "exists" (on_exists = "done") and
    "missing" (on_missing = "done")."""
    return tuple(kind for kind, flag in (("exists", step.on_exists), ("missing", step.on_missing))
                 if flag == "done")


def _failure_details(o) -> str:
    if o.returncode is None:                            # (a step never started)
        return f"command `{show(o.argv)}` {o.stderr}"
    text = f"command `{show(o.argv)}` exited with status {o.returncode}"
    if o.stderr:
        text += f": {o.stderr}"
    if o.step.hint:
        text += f" ({o.step.hint})"
    return text


def step_error(failure, undo_errors, shared=()) -> CNIError:
    """The ADD's error: the step that failed, why, and what the rollback left (`shared`: the
    completed steps it keeps because other attachments may rely on them, such as a bridge
    this ADD created)."""
    step = failure.step
    msg = f"step {step.number} ({step.id}) failed: {step.description}"
    details = _failure_details(failure)
    if failure.status == "unknown":
        details += "; the batch stopped without naming a line, so every step of it was undone"
    if undo_errors:
        details += "; rollback could not undo: " + "; ".join(
            f"step {o.step.number} ({o.step.id}) `{show(o.argv)}`: {o.stderr or o.status}"
            for o in undo_errors)
    else:
        details += "; everything this ADD had done was undone" + (
            " but its shared steps" if shared else "")
    if shared:
        details += ("; kept, since other attachments may use them: "
                    + ", ".join(f"step {s.number} ({s.description})" for s in shared))
    return CNIError(STEP_FAILED, msg, details)


def _native(cmd) -> bool:
    """Commands natives.py may run in-process: no process for the command itself (some start
    the one tool they wrap: cnish-chain-used's iptables, cnish-nft-delete-commented's nft, a
    delegated IPAM plugin)."""
    return cmd.argv[0] in natives.NAMES
