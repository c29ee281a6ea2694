"""The CNI path's import list, guarded (`python -X importtime`): runtimes exec cnish for every
container start and stop, and a heavy import (tens of milliseconds each for jinja2 or click)
must not creep back onto it unnoticed. No timings are asserted: the benchmark measures them.

What the path may import is what a warm plan cache needs: the engine, the plugin and the
standard library's light modules. Rendering (jinja2), the operator CLI (click), recipe parsing
(tomllib) and general-purpose heavyweights stay off it."""

import json
import os

import pytest

from lab import bridge_conf, cnish_command

pytestmark = pytest.mark.kernel

# Never on the CNI path once the plan cache is warm (VERSION: never at all).
HEAVY = ("jinja2", "markupsafe", "click", "tomllib", "re", "json", "hashlib", "subprocess", "ctypes",
         "logging", "ipaddress", "typing", "shlex", "argparse", "dataclasses", "enum", "inspect",
         "tempfile", "shutil", "uuid", "datetime", "asyncio", "email", "urllib")


def imported(stderr: str) -> set:
    """Module names from `-X importtime` lines: 'import time: self | cumulative | name'."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name)
    return names


def run_traced(host, conf, command, c, cache_dir, prev=None):
    from cnish.install import python_argv
    python, isolated, _, entry = python_argv()        # what the launcher execs: python -IS -c
    launcher = cnish_command()[0]
    env = {"CNISH_PLAN_CACHE": cache_dir, "CNI_COMMAND": command, "CNI_CONTAINERID": "ctr1",
           "CNISH_ATTACHMENT_LOCKS": os.environ.get("CNISH_ATTACHMENT_LOCKS", ""),
           "CNI_NETNS": f"/var/run/netns/{c}", "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni",
           "PATH": os.environ["PATH"]}
    payload = dict(conf, prevResult=prev) if prev else conf
    proc = host.run(python, isolated, "-X", "importtime", "-c", entry, launcher, check=False,
                    input=json.dumps(payload), env=env)
    assert proc.returncode == 0, (command, proc.stdout, proc.stderr[-2000:])
    return imported(proc.stderr), proc.stdout


def test_warm_add_del_and_version_import_nothing_heavy(lab, tmp_path):
    host, c = lab.host(), lab.netns()
    conf = bridge_conf(lab, cniVersion="1.0.0")
    cache = str(tmp_path / "plans")
    cold, out = run_traced(host, conf, "ADD", c, cache)          # renders and caches the plan
    assert "jinja2" in cold                                       # (the guard sees imports)
    run_traced(host, conf, "DEL", c, cache, prev=json.loads(out))

    add, out = run_traced(host, conf, "ADD", c, cache)
    assert "cnish.engine" in add and "cnish.runner" in add
    assert not add & set(HEAVY), sorted(add & set(HEAVY))
    delete, _ = run_traced(host, conf, "DEL", c, cache, prev=json.loads(out))
    assert not delete & set(HEAVY), sorted(delete & set(HEAVY))
    # VERSION in Python (the launcher answers libcni's exact request without it).
    version, out = run_traced(host, dict(conf), "VERSION", c, cache)
    assert "1.1.0" in out
    assert not version & (set(HEAVY) | {"os", "cnish.engine"}), sorted(version)
