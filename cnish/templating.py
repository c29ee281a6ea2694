"""Jinja rendering of recipes into plan templates: the only module that imports jinja2.

Two rules make the rendered commands safe and cacheable:

1. **Quoting.** Every `{{ value }}` in a command template goes through `finalize`, which
   shell-quotes it (shlex.quote) and refuses None; undefined names are errors (StrictUndefined).
   The rendered line is then split back into an argv list with shlex.split — the one place where
   text becomes argv. A value can never add an argument or a command.

2. **Slots.** Per-attachment values (container id, ifname, netns, addresses, derived names) are
   rendered as *slots*: markers that `bind()` later replaces inside the argv tokens. Every string
   under `att` is a slot; numbers, booleans, None and list lengths are not. So a plan rendered
   once for a network config serves every container of that network — templates may print
   per-container values but never branch on them (a Slot refuses to be tested for truth or
   compared, which turns such a template bug into an error instead of a wrong cached plan).
"""

import os
import shlex

import jinja2

from cnish.paths import record, templates_dir
from cnish.templating_marks import MARK_CLOSE, MARK_OPEN

# The iptables verb for each action of a rule template: append, delete, test.
RULE_OP = {"run": "-A", "undo": "-D", "check": "-C"}


class PlanError(Exception):
    """A recipe or template cannot be rendered: a bug in plans/ or templates/."""


class Slot:
    """A per-attachment string, unknown while a plan is rendered; see the module docstring."""

    __slots__ = ("path",)

    def __init__(self, path: str):
        self.path = path

    def __str__(self) -> str:
        return MARK_OPEN + self.path + MARK_CLOSE

    def _refuse(self, *_):
        raise PlanError(f"a recipe or template branches on the per-container value {self.path}; "
                        "only configuration values and the shape of the attachment may be tested")

    __bool__ = __eq__ = __ne__ = __lt__ = __gt__ = __len__ = __contains__ = _refuse
    __hash__ = None


def skeleton(value, path: str = "att"):
    """The attachment with every string replaced by a Slot carrying its path."""
    if isinstance(value, dict):
        return {k: skeleton(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [skeleton(v, f"{path}.{i}") for i, v in enumerate(value)]
    if isinstance(value, str):
        return Slot(path)
    return value


def _quote(value) -> str:
    if value is None:
        raise PlanError("a template printed None: a value the command needs is missing")
    if isinstance(value, bool):
        raise PlanError(f"a template printed the boolean {value}; test it with {{% if %}} instead")
    return shlex.quote(str(value))       # a Slot too: its markers are quoted with it


def _text(value) -> str:
    if value is None:
        raise PlanError("a description printed None")
    return str(value)


def _iptables(version) -> str:
    return "ip6tables" if version == 6 else "iptables"


class _RecordingLoader(jinja2.FileSystemLoader):
    """Tells paths.record every template file a render uses, also when Jinja serves it from
    its own cache (it then asks the loader's `uptodate` function)."""

    def get_source(self, environment, template):
        # recorded (stamped) before it is read: see paths.record
        record(os.path.join(self.searchpath[0], *template.split("/")))
        source, filename, uptodate = super().get_source(environment, template)
        record(filename)

        def fresh() -> bool:
            record(filename)
            return uptodate()
        return source, filename, fresh


def script_template(name: str, filters: dict):
    """A template of the dry-run script's frame (templates/script/), with `filters`: plain
    text, no quoting hook (the frame quotes with its `sh` filter), `{## ##}` comments."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(templates_dir()),
                             undefined=jinja2.StrictUndefined, autoescape=False,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             comment_start_string="{##", comment_end_string="##}")
    env.filters.update(filters)
    return env.get_template(name)


class Renderer:
    """Renders the steps of a recipe section for one config and one attachment shape."""

    def __init__(self):
        common = dict(undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=False)
        self.commands = jinja2.Environment(loader=_RecordingLoader(templates_dir()),
                                           finalize=_quote, **common)
        self.texts = jinja2.Environment(finalize=_text, **common)
        for env in (self.commands, self.texts):
            env.globals["iptables"] = _iptables
        self._exprs = {}
        self._strings = {}
        self._declared = {}

    # -- building blocks -------------------------------------------------------------------------

    def value(self, source, ctx: dict):
        """A recipe parameter: strings are Jinja expressions, other TOML values are literals."""
        if not isinstance(source, str):
            return source
        fn = self._exprs.get(source)
        if fn is None:
            try:
                fn = self._exprs[source] = self.texts.compile_expression(source,
                                                                         undefined_to_none=False)
            except jinja2.TemplateSyntaxError as exc:
                raise PlanError(f"bad expression {source!r}: {exc}") from None
        return fn(**ctx)

    def text(self, source: str, ctx: dict) -> str:
        tmpl = self._strings.get(source)
        if tmpl is None:
            tmpl = self._strings[source] = self.texts.from_string(source)
        return " ".join(tmpl.render(ctx).split())

    def command(self, spec: dict, ctx: dict, action: str) -> list[str]:
        """Render one command template to its argv tokens (slots still marked)."""
        name = spec["template"]
        try:
            tmpl = self.commands.get_template(name + ".j2")
            unknown = set(spec) - {"template"} - self._parameters(name + ".j2")
            if unknown:          # a misspelt flag would otherwise vanish (`is defined` tests)
                raise PlanError(f"template {name}.j2 has no parameter(s) {', '.join(sorted(unknown))}")
            params = {k: self.value(v, ctx) for k, v in spec.items() if k != "template"}
            variables = dict(ctx, action=action, op=RULE_OP.get(action, ""))
            variables.update(params)          # a recipe may override op (DEL deletes with -D)
            line = tmpl.render(variables)
        except jinja2.TemplateNotFound:
            raise PlanError(f"no template {name}.j2 in {templates_dir()}") from None
        except jinja2.UndefinedError as exc:
            raise PlanError(f"template {name}.j2: {exc}") from None
        argv = shlex.split(line)
        if not argv:
            raise PlanError(f"template {name}.j2 rendered an empty command")
        return argv

    def _parameters(self, filename: str) -> set:
        """The names a command template reads (what a recipe may pass it)."""
        names = self._declared.get(filename)
        if names is None:
            from jinja2 import meta
            source = self.commands.loader.get_source(self.commands, filename)[0]
            names = self._declared[filename] = meta.find_undeclared_variables(
                self.commands.parse(source))
        return names

    # -- recipes ---------------------------------------------------------------------------------

    def render(self, recipe, section: str, ctx: dict, includes) -> list[dict]:
        """`includes(name)` returns the recipe an `include = name` step stands for (or None)."""
        out = []
        for spec in recipe.sections[section]:
            self._render(spec, ctx, out, section, includes, "")
        return out

    def render_one(self, spec, ctx) -> dict:
        """One step without `each` (facts: reads made before planning)."""
        return self._step(spec, ctx, spec.id)

    def _render(self, spec, ctx, out, section, includes, parent_id):
        if spec.include:
            included = includes(spec.include)
            if included is not None:
                first = len(out)
                for child in included.sections[section]:
                    self._render(child, ctx, out, section, includes, parent_id)
                if spec.include == "ipam":          # what guards_addresses holds back
                    for step in out[first:]:
                        step["ipam"] = True
            return
        try:
            if spec.when is not None and not self.value(spec.when, ctx):
                return
            items = [None] if spec.each is None else list(self.value(spec.each, ctx))
        except jinja2.UndefinedError as exc:
            raise PlanError(f"step {spec.id}: {exc}") from None
        for index, item in enumerate(items):
            step_ctx = ctx if item is None else dict(ctx, **{spec.as_: item, "index": index})
            step_id = parent_id + spec.id + ("" if item is None else f"[{index}]")
            if spec.steps:
                first = len(out)
                for child in spec.steps:
                    self._render(child, step_ctx, out, section, includes, step_id + ".")
                if spec.concurrent:                 # a group's flag covers its steps
                    for step in out[first:]:
                        step["concurrent"] = True
                continue
            out.append(self._step(spec, step_ctx, step_id))

    def _step(self, spec, ctx, step_id) -> dict:
        def cmd(command_spec, action, netns=spec.netns):
            if command_spec is None:
                return None
            prefix = []
            if netns == "container":
                prefix = self.command({"template": "nsenter/net", "netns": "att.netns"}, ctx,
                                      "run")
            return {"argv": prefix + self.command(command_spec, ctx, action),
                    "prefix": len(prefix)}

        try:
            expect = spec.expect
            if isinstance(expect, dict):
                (kind, wanted), = expect.items()          # contains, or line
                value = self.value(wanted, ctx)
                # one text or a list of them, every one wanted; none: this attachment has
                # nothing particular to look for, any output will do
                texts = [str(t) for t in (value if isinstance(value, (list, tuple)) else [value])
                         if t is not None]
                expect = {kind: texts[0] if len(texts) == 1 else texts} if texts \
                    else "output"
            return {
                "id": step_id,
                "description": self.text(spec.describe, ctx),
                "why": self.text(spec.why, ctx) if spec.why else "",
                "netns": spec.netns,
                "run": cmd(spec.run, "run"),
                "undo": cmd(spec.undo, "undo", spec.undo_netns),
                "check": cmd(spec.check, "check", spec.check_netns),
                "expect": expect,
                "skip_if": cmd(spec.skip_if, "probe", spec.skip_if_netns),
                # rendered like a check: a rule template tests its rule with -C
                "skip_if_unbatched": cmd(spec.skip_if_unbatched, "check"),
                "on_exists": spec.on_exists,
                "on_missing": spec.on_missing,
                "shared": spec.shared,
                "concurrent": spec.concurrent,
                "guards_addresses": spec.guards_addresses,
                "attachment": self.text(spec.attachment, ctx) if spec.attachment else None,
                "undone_by": self.text(spec.undone_by, ctx) if spec.undone_by else None,
                "hint": self.text(spec.hint, ctx) if spec.hint else "",
            }
        except jinja2.UndefinedError as exc:
            raise PlanError(f"step {step_id}: {exc}") from None


_renderer = None


def renderer() -> Renderer:
    global _renderer
    if _renderer is None:
        _renderer = Renderer()
    return _renderer
