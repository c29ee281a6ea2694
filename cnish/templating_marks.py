"""Slot markers and attachment shapes, shared by the renderer (templating.py), the plan
cache (plancache.py) and the binder (plan.py).

Kept apart so that binding a cached plan never imports jinja2. The markers are the control
characters SOH and STX (not whitespace to str.split or shlex, unlike the ASCII separators);
binding substitutes in one pass, so a value is never scanned for markers itself.
"""

MARK_OPEN, MARK_CLOSE = "\x01", "\x02"


def shape(value):
    """What of the attachment a rendered plan depends on: everything but the strings (which
    are slots). Two attachments with the same shape share one rendered plan."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    if isinstance(value, str):
        return ""
    return value
