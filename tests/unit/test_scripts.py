"""The dry-run script is valid bash, passes shellcheck, and quotes whatever it prints."""

import json
import os
import shutil
import subprocess

import pytest

from cnish import engine, scripts
from lab import operation

CONFIGS = {
    "minimal": {"ipam": {"type": "host-local", "ranges": [[{"subnet": "10.5.0.0/24"}]],
                         "dataDir": "/nonexistent/cnish-unit"}},
    "full": {"isDefaultGateway": True, "ipMasq": True, "hairpinMode": True, "mtu": 1400,
             "ipam": {"type": "host-local", "dataDir": "/nonexistent/with space",
                      "ranges": [[{"subnet": "10.5.0.0/24"}], [{"subnet": "fd05::/64"}]]}},
    "l2": {"ipam": {}},
}


def build(name, command):
    raw = dict({"cniVersion": "1.0.0", "name": "net1", "type": "bridge"}, **CONFIGS[name])
    prev, netns = None, "/var/run/netns/with 'quote"
    if command != "ADD":
        add, _ = engine.build_plan(operation(dict(raw), netns=netns))
        prev = add.result if add.result else None
    if prev is not None:
        raw["prevResult"] = prev
    if command == "CHECK" and prev is None:
        pytest.skip("CHECK needs a prevResult with addresses")
    p, _ = engine.build_plan(operation(raw, command, netns=netns))
    return p


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
def test_script_is_valid_bash(name, command, tmp_path):
    script = tmp_path / "plan.sh"
    script.write_text(scripts.bash(build(name, command)))
    subprocess.run(["bash", "-n", str(script)], check=True)
    if shutil.which("shellcheck"):
        proc = subprocess.run(["shellcheck", "-s", "bash", str(script)], capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("command", ["ADD", "DEL"])
def test_script_with_the_cli_result_cache_passes_shellcheck(tmp_path, command):
    """The CLI's single-plugin scripts end by writing (ADD) or removing (DEL) the result
    cache entry; that part is checked too (its mkdir -p -m failed SC2174)."""
    plan = build("minimal", command)
    path = "/var/lib/cni/results/net1-cnitool-0123456789abcdef0123-eth0"
    plan.cache = {"path": path, **({"entry": {"kind": "cniCacheV1"}} if command == "ADD" else {})}
    script = tmp_path / "plan.sh"
    script.write_text(scripts.bash(plan))
    text = script.read_text()
    assert os.path.dirname(path) in text and os.path.basename(path) in text
    subprocess.run(["bash", "-n", str(script)], check=True)
    if shutil.which("shellcheck"):
        proc = subprocess.run(["shellcheck", "-s", "bash", str(script)], capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stdout


def test_json_plan_is_versioned_argv():
    plan = json.loads(scripts.as_json(build("full", "ADD")))
    assert plan["format"] == "cnish-plan/1" and plan["command"] == "ADD"
    veth = next(s for s in plan["steps"] if s["id"] == "veth")
    assert veth["argv"][:3] == ["ip", "link", "add"] and veth["undo"][:3] == ["ip", "link", "del"]
    assert plan["result"]["ips"][0]["address"] == "10.5.0.2/24"
