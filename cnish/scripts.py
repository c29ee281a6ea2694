"""Printing a Plan: as a bash script (the dry-run's default) or as versioned JSON.

The script is rendered from templates/script/bash.sh.j2 and runs the plan's commands one per
step, with the same tolerance rules and rollback as the executor; the executor's batching
(batching.py) is an optimisation that changes the number of processes, not what is done.
"""

import json
import os
import shlex

from cnish import __version__, attachlock, executor, plugins
from cnish.natives import SCRIPT_FUNCTIONS
from cnish.paths import templates_dir

INTRO = {
    "apply": ("Running this script does what cnish would do: the same commands in the same",
              "order. If a step fails, the completed steps are undone newest first (shared",
              "objects such as the bridge are kept) and the script exits with the failure."),
    "teardown": ("Running this script removes what cnish would remove: every step runs,",
                 "anything already gone counts as removed, shared objects (the bridge) are kept."),
    "check": ("Running this script checks the attachment the way cnish would (reads only)",
              "and exits 1 naming every step whose check failed."),
}
MODE = {"ADD": "apply", "DEL": "teardown", "GC": "teardown", "CHECK": "check"}


def _comment(text) -> str:
    return "".join(c if c.isprintable() else "?" for c in str(text))


def _case_patterns(fragments) -> list:
    return ["*" + shlex.quote(f) + "*" for f in fragments]


def bash(plan) -> str:
    from cnish.templating import script_template
    mode = MODE[plan.command]
    modes, expects = {}, {}
    for step in plan.steps:       # the executor's tolerance rules, as the script's run modes
        modes[step.number] = "+".join(k + "-ok" for k in executor.tolerated(step)) or "strict"
        if isinstance(step.expect, dict):
            expects[step.number] = ["line" if step.expects_one_line() else "contains",
                                    *step.expected_texts()]
        else:
            expects[step.number] = [step.expect or "status", ""]
    commands = [c for s in plan.steps
                for c in (s.run, s.undo, s.check, s.skip_if, s.skip_if_unbatched) if c is not None]
    used = {c.argv[0] for c in commands}
    functions = []
    for helper in SCRIPT_FUNCTIONS:
        if helper in used:
            functions.append(_script_function(helper))
    lock = attachlock.lock_name(plan.network, plan.container_id, plan.ifname) \
        if attachlock.guards(plan.command, getattr(plugins.get(plan.plugin), "KIND", None)) \
        else None
    if "cnish-store" in used or lock or plan.cache:     # (the directories they use)
        functions.insert(0, _script_function("cnish-trusted-dir"))
    result = json.dumps(plan.result, indent=2) if plan.result is not None else None
    cache_dir = os.path.dirname(plan.cache["path"]) if plan.cache else ""
    title = f"cnish {plan.command} plan"
    return script_template("script/bash.sh.j2", {"sh": executor.show, "comment": _comment}).render(
        plan=plan, mode=mode, modes=modes, expects=expects, functions=functions,
        own_netns_fd=any("/dev/fd/3" in c.argv for c in commands),
        delegate="cnish-delegate" in used, invocation=plan.invocation,
        guarded=(any(s.guards_addresses for s in plan.steps) and any(s.ipam for s in plan.steps)),
        by_attachment=any(s.attachment for s in plan.steps),     # GC: per attachment
        cache=plan.cache, cache_dir=cache_dir, cache_parent=os.path.dirname(cache_dir) or ".",
        cache_name=os.path.basename(plan.cache["path"]) if plan.cache else "",
        cache_json=json.dumps(plan.cache["entry"]) if plan.cache and "entry" in plan.cache else "",
        result=result, title=title + " (dry run: nothing was changed)", version=__version__,
        cni_version=plan.cni_version, intro=INTRO[mode], lock=lock,
        lock_functions=_script_function("cnish-lock") if lock else "",
        exists=_case_patterns(executor.EXISTS), missing=_case_patterns(executor.MISSING))


def _script_function(name: str) -> str:
    """A bash function the script defines, from templates/script/NAME.sh."""
    with open(f"{templates_dir()}/script/{name}.sh") as f:
        return f.read().rstrip("\n")


def as_json(plan) -> str:
    return json.dumps(plan.to_json(__version__), indent=2)
