"""Plan templates: rendered from recipes and templates with Jinja.

`steps()` returns the steps of one recipe section rendered for one config and one
attachment *shape*, with per-container values left as slots (templating.py) for plan.bind().
"""

from cnish import recipes


def _renderer():
    from cnish.templating import renderer   # jinja2 is imported only here, only when rendering
    return renderer()


def steps(op, section: str, att: dict) -> list:
    from cnish.templating import skeleton
    recipe = recipes.load(op.type)
    includes = {name: recipes.load(target) for name, target in op.includes().items()}
    ctx = dict(op.context(), att=skeleton(att))
    return _renderer().render(recipe, section, ctx, includes)


def fact(op, fact_id: str) -> dict:
    """The rendered command of a recipe's [[facts]] entry (reads made before planning)."""
    recipe = recipes.load(op.type)
    for spec in recipe.sections["facts"]:
        if spec.id == fact_id:
            rendered = _renderer().render_one(spec, op.context())
            return rendered
    raise KeyError(f"recipe {op.type} has no fact {fact_id!r}")
