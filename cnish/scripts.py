"""Printing a Plan: as a bash script (the dry-run's default) or as versioned JSON.

The script is rendered from templates/script/bash.sh.j2 and runs the plan's commands one per
step, with the same tolerance rules and rollback as the executor; the executor's batching
(batching.py) is an optimisation that changes the number of processes, not what is done.
"""

import json
import os
import shlex

from cnish import __version__, executor
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


def _sh(argv) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def _comment(text) -> str:
    return "".join(c if c.isprintable() else "?" for c in str(text))


def _case_patterns(fragments) -> list:
    return ["*" + shlex.quote(f) + "*" for f in fragments]


def bash(plan) -> str:
    import jinja2
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(templates_dir()),
                             undefined=jinja2.StrictUndefined, autoescape=False,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             comment_start_string="{##", comment_end_string="##}")
    env.filters["sh"] = _sh
    env.filters["comment"] = _comment
    mode = MODE[plan.command]
    modes, expects = {}, {}
    for step in plan.steps:
        tolerate = []
        if step.on_exists == "done":
            tolerate.append("exists-ok")
        if step.on_missing == "done":
            tolerate.append("missing-ok")
        modes[step.number] = "+".join(tolerate) or "strict"
        if isinstance(step.expect, dict):
            expects[step.number] = ["contains", step.expect["contains"]]
        else:
            expects[step.number] = [step.expect or "status", ""]
    used = {c.argv[0] for s in plan.steps for c in (s.run, s.undo, s.check) if c is not None}
    functions = []
    for helper in ("cnish-store", "cnish-delegate"):
        if helper in used:
            with open(f"{templates_dir()}/script/{helper}.sh") as f:
                functions.append(f.read().rstrip("\n"))
    if any("/dev/fd/3" in c.argv for s in plan.steps for c in (s.run, s.undo, s.check) if c):
        functions.insert(0, "# Commands run inside the container reach the runtime's own namespace as\n"
                            "# /dev/fd/3, as they do when cnish runs them.\nexec 3</proc/self/ns/net")
    if "cnish-delegate" in used:
        inv = plan.invocation
        functions.insert(0, "\n".join([
            "# The invocation, for the delegated IPAM plugin (what cnish received).",
            f"CNISH_CONTAINERID={shlex.quote(plan.container_id)}",
            f"CNISH_NETNS={shlex.quote(plan.netns or '')}",
            f"CNISH_IFNAME={shlex.quote(plan.ifname)}",
            f"CNISH_ARGS={shlex.quote(inv.get('args', ''))}",
            f"CNISH_PATH={shlex.quote(inv.get('path', ''))}",
            "CNISH_CONFIG=$(cat <<'CNISH_CONFIG_JSON'",
            inv.get("config", "{}"),
            "CNISH_CONFIG_JSON",
            ")"]))
    result = json.dumps(plan.result, indent=2) if plan.result is not None else None
    title = f"cnish {plan.command} plan"
    return env.get_template("script/bash.sh.j2").render(
        plan=plan, mode=mode, modes=modes, expects=expects, functions=functions,
        guarded=(any(s.guards_addresses for s in plan.steps) and any(s.ipam for s in plan.steps)),
        cache=plan.cache, cache_dir=os.path.dirname(plan.cache["path"]) if plan.cache else "",
        cache_json=json.dumps(plan.cache["entry"]) if plan.cache and "entry" in plan.cache else "",
        result=result, title=title + " (dry run: nothing was changed)", version=__version__,
        cni_version=plan.cni_version, intro=INTRO[mode],
        exists=_case_patterns(executor.EXISTS), missing=_case_patterns(executor.MISSING))


def as_json(plan) -> str:
    return json.dumps(plan.to_json(__version__), indent=2)
