"""Golden plans: tests/cases/<plugin>/<case>/ holds a config and the dry-run output cnish must
produce for it. A change in these files is a change in what cnish does to a host — review it
as such. Regenerate after an intended change with:  pytest tests/golden --regen-golden
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from cnish import engine, scripts
from lab import operation

CASES = Path(__file__).resolve().parent.parent / "cases"
OUTPUTS = ("add.sh", "add.json", "check.sh", "del.sh")


def cases():
    return sorted(p for p in CASES.glob("*/*") if (p / "config.json").exists())


def render(case: Path) -> dict:
    raw = json.loads((case / "config.json").read_text())
    extra = json.loads((case / "case.json").read_text()) if (case / "case.json").exists() else {}
    kw = {k: extra[k] for k in ("cid", "ifname", "netns", "args") if k in extra}
    add, _ = engine.build_plan(operation(dict(raw), "ADD", opts=extra.get("add_opts"), **kw))
    out = {"add.sh": scripts.bash(add), "add.json": scripts.as_json(add) + "\n"}
    with_prev = dict(raw, prevResult=add.result)
    if engine.results.at_least(raw.get("cniVersion", "0.1.0"), "0.4.0"):
        check, _ = engine.build_plan(operation(dict(with_prev), "CHECK", **kw))
        out["check.sh"] = scripts.bash(check)
    delete, _ = engine.build_plan(operation(dict(with_prev), "DEL", opts=extra.get("del_opts"), **kw))
    out["del.sh"] = scripts.bash(delete)
    return out


# What the plans read from the host, pinned so that they are the same on every machine: the
# machine id (derived MACs), the kernel's link kinds, and the links the configs name (eth9,
# a master; hd9, a device for host-device).
HOST_FILES = {"/sys/class/net/eth9/address": "02:00:00:00:e9:09",
              "/sys/class/net/eth9/mtu": "1500",
              "/sys/class/net/eth9/ifindex": "9",
              "/sys/class/net/hd9/address": "02:00:00:00:d9:09"}


@pytest.fixture(autouse=True)
def fixed_machine(monkeypatch):
    from cnish import kernel
    from cnish.plugins import hostdevice
    monkeypatch.setattr(engine, "machine_id", lambda: "golden-machine")
    monkeypatch.setattr(kernel, "problem", lambda op, kind: None)
    monkeypatch.setattr(engine.Operation, "read_sys", staticmethod(HOST_FILES.get))
    monkeypatch.setattr(hostdevice, "find_device", lambda op: op.conf.device)
    monkeypatch.setattr(engine.Operation, "fact", lambda op, fact_id, **values: FACTS.get(fact_id))


class _Read:
    def __init__(self, returncode, stdout=""):
        self.returncode, self.stdout, self.stderr = returncode, stdout, ""


# Reads a plan makes with `ip` before planning: the master inside the container
# (linkInContainer), and no interface of the container's name yet (host-device).
FACTS = {"container-master": _Read(0, '[{"mtu": 1500, "address": "02:00:00:00:e9:09"}]'),
         "container-link": _Read(1)}


@pytest.mark.parametrize("case", cases(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden(case, request):
    rendered = render(case)
    if request.config.getoption("--regen-golden"):
        for name in OUTPUTS:
            path = case / name
            if name in rendered:
                path.write_text(rendered[name])
            elif path.exists():
                path.unlink()
        return
    for name, text in rendered.items():
        expected = case / name
        assert expected.exists(), f"{expected} missing: run pytest tests/golden --regen-golden"
        assert text == expected.read_text(), f"{expected} differs from what cnish prints now"


@pytest.mark.parametrize("case", cases(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden_scripts_are_valid(case):
    for name in OUTPUTS:
        path = case / name
        if name.endswith(".sh") and path.exists():
            subprocess.run(["bash", "-n", str(path)], check=True)
            if os.path.exists("/usr/bin/shellcheck"):
                proc = subprocess.run(["shellcheck", "-s", "bash", str(path)],
                                      capture_output=True, text=True)
                assert proc.returncode == 0, proc.stdout


def test_scripts_never_take_a_command_bash_could_not_start_for_done(tmp_path):
    """With no file descriptor left for the pipe, bash runs no $(...) and reports status 0:
    the script's `run` took every step for done without running it (and its helpers took /
    for the store; a review's find). Its `capture` says status 126 instead, and the script
    stops before its first step. Both parts of a rendered script run here, and no step."""
    script = (CASES / "bridge" / "minimal" / "add.sh").read_text()
    head = script[:script.index("\nfi\n", script.index("if [[ $(printf ok) != ok ]]")) + 4]
    assert "\nrun " not in head and "\ncnish-" not in head      # (no step in it)
    starved = "ulimit -n 10; exec 3</dev/null 4</dev/null 5</dev/null 6</dev/null " \
              "7</dev/null 8</dev/null 9</dev/null; "
    marker = tmp_path / "ran"
    proc = subprocess.run(["bash", "-c", head + starved + f"capture touch {marker}\n"
                           'printf "%s|%s" "$STATUS" "$OUT" >&2'], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr.endswith(
        "126|cannot run touch: bash could not start it (no file descriptor left?)"), proc.stderr
    assert not marker.exists()
    proc = subprocess.run(["bash", "-c", head + 'capture sh -c "echo a; echo b >&2; exit 3"\n'
                           'printf "%s|%s" "$STATUS" "$OUT"'], capture_output=True, text=True)
    assert proc.stdout == "3|a\nb", proc.stdout
    proc = subprocess.run(["bash", "-c", starved + head + "echo not-reached"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "no file descriptor left?): nothing done" in proc.stderr
    assert "not-reached" not in proc.stdout
