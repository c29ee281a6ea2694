"""kernel.py: a dry-run learns whether the kernel has a link kind from the running kernel's
module lists when it can, without the probe (whose `ip link add` may load a module: a dry-run
changes nothing)."""

import os

import pytest

from cnish import kernel


class Op:
    dry_run = True

    def __init__(self):
        self.probed = 0

    def fact(self, fact_id):
        self.probed += 1
        return None


@pytest.fixture
def host(tmp_path, monkeypatch):
    sys_module, lib = tmp_path / "sys-module", tmp_path / "lib-modules"
    sys_module.mkdir()
    monkeypatch.setattr(kernel, "SYS_MODULE", str(sys_module))
    monkeypatch.setattr(kernel, "LIB_MODULES", str(lib))
    monkeypatch.setattr(kernel, "_remembered", lambda kind: False)
    release = lib / os.uname().release
    return sys_module, release


def test_a_loaded_module_answers_without_the_probe(host):
    sys_module, _ = host
    (sys_module / "8021q").mkdir()
    op = Op()
    assert kernel.problem(op, "vlan") is None and op.probed == 0


def test_module_lists_answer_both_ways_without_the_probe(host):
    _, release = host
    release.mkdir(parents=True)
    (release / "modules.dep").write_text("kernel/drivers/net/ipvlan/ipvlan.ko.xz: \n")
    (release / "modules.builtin").write_text("kernel/drivers/net/dummy.ko\n")
    op = Op()
    assert kernel.problem(op, "ipvlan") is None
    assert kernel.problem(op, "dummy") is None
    assert "no 8021q support" in kernel.problem(op, "vlan")
    assert op.probed == 0


def test_without_module_lists_the_probe_answers(host):
    op = Op()
    assert kernel.problem(op, "vlan") is None and op.probed == 1
    op.dry_run = False
    kernel.problem(op, "vlan")
    assert op.probed == 2                 # a real ADD always asks the kernel itself
