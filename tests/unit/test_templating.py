"""Templates render argv safely; recipes load; slots keep plans per-container-independent."""

import os
import shlex

import pytest

from cnish import recipes, templating
from cnish.paths import templates_dir
from cnish.plan import bind, fill
from cnish.templating import PlanError, Slot, renderer, skeleton

HOSTILE = ["a b", "a;b", "$(touch /tmp/x)", "`id`", "'", '"', "\\", "a\nb", "-rf", "*", "~root"]


@pytest.mark.parametrize("value", HOSTILE)
def test_values_become_exactly_one_argument(value):
    argv = renderer().command({"template": "ip/link-set-up", "dev": "v"}, {"v": value}, "run")
    assert argv == ["ip", "link", "set", "dev", value, "up"]


def test_none_is_refused():
    with pytest.raises(PlanError):
        renderer().command({"template": "ip/link-set-up", "dev": "v"}, {"v": None}, "run")


def test_undefined_names_are_errors():
    with pytest.raises(PlanError):
        renderer().command({"template": "ip/link-set-up", "dev": "nope.nothing"}, {}, "run")


def test_slots_survive_rendering_and_bind():
    att = {"dev": "eth0", "addr": "10.0.0.2/24"}
    ctx = {"att": skeleton(att)}
    argv = renderer().command({"template": "ip/addr-add", "address": "att.addr", "dev": "att.dev"},
                              ctx, "run")
    assert [fill(t, att) for t in argv] == ["ip", "addr", "add", "10.0.0.2/24", "dev", "eth0"]
    other = {"dev": "net1", "addr": "10.0.0.3/24"}
    assert [fill(t, other) for t in argv] == ["ip", "addr", "add", "10.0.0.3/24", "dev", "net1"]


def test_values_are_never_rescanned_for_markers():
    att = {"dev": templating.MARK_OPEN + "att.addr" + templating.MARK_CLOSE, "addr": "x"}
    argv = renderer().command({"template": "ip/link-set-up", "dev": "att.dev"},
                              {"att": skeleton(att)}, "run")
    assert fill(argv[4], att) == att["dev"]


def test_branching_on_a_slot_is_refused():
    with pytest.raises(PlanError):
        bool(Slot("att.x"))
    with pytest.raises(PlanError):
        Slot("att.x") == "eth0"      # noqa: B015


def test_every_recipe_loads_and_names_existing_templates():
    used = set()
    for name in recipes.available():
        recipe = recipes.load(name)
        stack = [s for section in recipe.sections.values() for s in section]
        while stack:
            spec = stack.pop()
            stack.extend(spec.steps)
            for cmd in (spec.run, spec.undo, spec.check, spec.skip_if):
                if cmd:
                    used.add(cmd["template"])
    for template in used:
        assert os.path.exists(os.path.join(templates_dir(), template + ".j2")), template


def test_recipe_typos_are_refused(tmp_path):
    with pytest.raises(recipes.RecipeError):
        recipes.Recipe({"recipe": {"type": "x"}, "add": [{"id": "a", "rnu": {}}]}, "x.toml")
    with pytest.raises(recipes.RecipeError):
        recipes.Recipe({"recipe": {"type": "x"}, "add": [{"id": "a", "run": {"template": "t"},
                                                            "on_exists": "maybe"}]}, "x.toml")


def test_a_misspelt_template_parameter_is_refused():
    """Optional flags are `is defined` tests in the templates: a typo would drop the flag
    silently, so a parameter the template does not read is an error."""
    with pytest.raises(PlanError, match="nodadd"):
        renderer().command({"template": "ip/addr-add", "address": "a", "dev": "d",
                            "nodadd": "true"}, {"a": "fd00::2/64", "d": "eth0"}, "run")


def test_every_recipe_passes_only_parameters_its_templates_read():
    r = renderer()
    for name in recipes.available():
        stack = [s for section in recipes.load(name).sections.values() for s in section]
        while stack:
            spec = stack.pop()
            stack.extend(spec.steps)
            for cmd in (spec.run, spec.undo, spec.check, spec.skip_if):
                if cmd:
                    unknown = set(cmd) - {"template"} - r._parameters(cmd["template"] + ".j2")
                    assert not unknown, (name, spec.id, cmd["template"], unknown)


def test_undone_by_names_an_earlier_step_of_every_golden_plan():
    import glob
    import json
    cases = os.path.join(os.path.dirname(__file__), "..", "cases")
    plans = glob.glob(os.path.join(cases, "*", "*", "*.json"))
    assert plans
    for path in plans:
        with open(path) as f:
            plan = json.load(f)
        seen = set()
        for step in plan.get("steps", []):
            if "undoneBy" in step:
                assert step["undoneBy"] in seen and step.get("undo") is None, (path, step["id"])
            seen.add(step["id"])
    with pytest.raises(recipes.RecipeError, match="undone_by"):
        recipes.Recipe({"recipe": {"type": "x"}, "add": [
            {"id": "a", "run": {"template": "t"}, "undo": {"template": "t"}, "undone_by": "b"}]},
            "x.toml")


def test_recipe_header_typos_are_refused():
    with pytest.raises(recipes.RecipeError, match="summry"):
        recipes.Recipe({"recipe": {"type": "x", "summry": "s"}}, "x.toml")
    with pytest.raises(recipes.RecipeError, match="kind"):
        recipes.Recipe({"recipe": {"type": "x", "kind": "interfce"}}, "x.toml")


def test_bind_numbers_and_fills():
    step = {"id": "s", "description": "set " + str(Slot("att.d")) + " up", "why": "", "netns": "host",
            "run": {"argv": ["ip", "link", "set", str(Slot("att.d")), "up"], "prefix": 0},
            "undo": None, "check": None, "expect": None, "skip_if": None, "on_exists": None,
            "on_missing": None, "shared": False, "undone_by": None, "hint": ""}
    (bound,) = bind([step], {"d": "veth1"}, first=7)
    assert bound.number == 7 and bound.run.argv == ("ip", "link", "set", "veth1", "up")
    assert bound.description == "set veth1 up"
    assert shlex.join(bound.run.argv) == "ip link set veth1 up"
