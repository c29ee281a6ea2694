"""Recipes: the declarative plans in plans/<type>.toml, loaded and checked.

A recipe lists, per CNI operation, the steps a plugin takes, in order. Each step names the
template of its command and of its undo and check, the condition under which it applies
(`when`), what it repeats over (`each`), and how its failures are read (`on_exists`,
`on_missing`). plans/README.md describes the format for auditors; this module refuses a
recipe with an unknown key, so a typo cannot silently drop a safeguard.
"""

import os

from cnish.paths import plans_dir, record, stamp

SECTIONS = ("add", "del", "gc", "facts")
STEP_KEYS = {"id", "describe", "when", "each", "as", "run", "undo", "check", "expect", "skip_if",
             "skip_if_unbatched", "on_exists", "on_missing", "shared", "undone_by", "hint",
             "netns", "undo_netns", "check_netns", "skip_if_netns", "include", "steps", "why",
             "concurrent", "guards_addresses", "attachment"}


class RecipeError(Exception):
    """A recipe file is malformed: a bug in plans/, reported with the file and step."""


class StepSpec:
    """One step as written in a recipe (before rendering)."""

    __slots__ = ("id", "describe", "when", "each", "as_", "run", "undo", "check", "expect",
                 "skip_if", "skip_if_unbatched", "on_exists", "on_missing", "shared", "undone_by",
                 "hint", "netns", "undo_netns", "check_netns", "skip_if_netns", "include", "steps",
                 "why", "concurrent", "guards_addresses", "attachment")

    def __init__(self, raw: dict, where: str):
        unknown = set(raw) - STEP_KEYS
        if unknown:
            raise RecipeError(f"{where}: unknown key(s) {sorted(unknown)}")
        self.include = raw.get("include")
        self.id = raw.get("id", "")
        if not self.include and not self.id:
            raise RecipeError(f"{where}: a step needs an id")
        self.describe = raw.get("describe", "")
        self.when = raw.get("when")
        self.each = raw.get("each")
        self.as_ = raw.get("as", "item")
        self.run = _command(raw.get("run"), f"{where}.run")
        self.undo = _command(raw.get("undo"), f"{where}.undo")
        self.check = _command(raw.get("check"), f"{where}.check")
        self.skip_if = _command(raw.get("skip_if"), f"{where}.skip_if")
        # asked only when the step runs on its own (the executor's _alone_skip)
        self.skip_if_unbatched = _command(raw.get("skip_if_unbatched"), f"{where}.skip_if_unbatched")
        self.expect = raw.get("expect")
        self.on_exists = raw.get("on_exists")
        self.on_missing = raw.get("on_missing")
        self.shared = bool(raw.get("shared", False))
        # depends on nothing but the in-process steps before it (the IPAM reservation): cnish
        # may run it alongside the other commands
        self.concurrent = bool(raw.get("concurrent", False))
        self.undone_by = raw.get("undone_by")
        # DEL: while this step has not succeeded the container may still hold its addresses,
        # so the IPAM steps after it do not run (the executor and the script both keep them)
        self.guards_addresses = bool(raw.get("guards_addresses", False))
        # GC: whose step it is ("cid/ifname", Jinja text; empty: not known), so that a failed
        # guards_addresses step holds back only its own attachment's IPAM steps
        self.attachment = raw.get("attachment")
        self.hint = raw.get("hint")
        self.why = raw.get("why")
        self.netns = raw.get("netns", "host")
        # a link created from the host directly inside the container is deleted from inside
        self.undo_netns = raw.get("undo_netns", self.netns)
        self.check_netns = raw.get("check_netns", self.netns)
        # a probe that enters the container itself (it takes the namespace as an argument)
        self.skip_if_netns = raw.get("skip_if_netns", self.netns)
        self.steps = [StepSpec(s, f"{where}.steps[{i}]") for i, s in enumerate(raw.get("steps", []))]
        for key in ("netns", "undo_netns", "check_netns", "skip_if_netns"):
            if getattr(self, key) not in ("host", "container"):
                raise RecipeError(f"{where}: {key} must be 'host' or 'container'")
        for flag, allowed in (("on_exists", ("done",)), ("on_missing", ("done",))):
            value = getattr(self, flag)
            if value is not None and value not in allowed:
                raise RecipeError(f"{where}: {flag} must be one of {allowed}")
        if self.expect is not None and not (self.expect == "output" or isinstance(self.expect, dict)
                                            and set(self.expect) in ({"contains"}, {"line"})):
            raise RecipeError(f"{where}: expect must be \"output\", {{ contains = \"expr\" }} "
                              "or { line = \"expr\" }")
        if self.undone_by is not None and self.undo is not None:
            raise RecipeError(f"{where}: a step with undone_by has no undo of its own")
        if not self.include and not self.steps and self.run is None:
            raise RecipeError(f"{where}: step {self.id!r} has nothing to run")


def _command(raw, where: str):
    if raw is None:
        return None
    if not isinstance(raw, dict) or "template" not in raw:
        raise RecipeError(f"{where}: must be a table with a 'template' key")
    return dict(raw)


KINDS = ("interface", "ipam", "fragment")


class Recipe:
    """A plans/<type>.toml: its type and kind, and its steps per section."""

    __slots__ = ("type", "kind", "sections")

    def __init__(self, raw: dict, path: str):
        meta = raw.get("recipe", {})
        unknown = set(meta) - {"type", "kind", "summary"}
        if unknown:
            raise RecipeError(f"{path}: unknown [recipe] key(s) {sorted(unknown)}")
        self.type = meta.get("type")
        self.kind = meta.get("kind", "interface")
        if self.kind not in KINDS:
            raise RecipeError(f"{path}: [recipe] kind must be one of {KINDS}")
        unknown = set(raw) - set(SECTIONS) - {"recipe"}
        if unknown:
            raise RecipeError(f"{path}: unknown section(s) {sorted(unknown)}")
        self.sections = {name: [StepSpec(s, f"{path}:{name}[{i}]")
                                for i, s in enumerate(raw.get(name, []))]
                         for name in SECTIONS}


_cache = {}


def load(name: str) -> Recipe:
    """plans/<name>.toml, parsed once per process, and again when the file has changed."""
    path = os.path.join(plans_dir(), f"{name}.toml")
    record(path)
    try:
        current = stamp(path)         # (taken before the read, as paths.record's)
    except OSError:
        current = None
    if name not in _cache or _cache[name][0] != current:
        import tomllib   # only when a plan has to be rendered (not on a plan-cache hit)
        with open(path, "rb") as f:
            data = f.read()
        try:
            raw = tomllib.loads(data.decode())
        except tomllib.TOMLDecodeError as exc:
            raise RecipeError(f"{path}: {exc}") from None
        recipe = Recipe(raw, path)
        if recipe.type != name:
            raise RecipeError(f"{path}: [recipe] type must be {name!r}")
        _cache[name] = (current, recipe)
    return _cache[name][1]


def available() -> list[str]:
    return sorted(f[:-5] for f in os.listdir(plans_dir()) if f.endswith(".toml"))
