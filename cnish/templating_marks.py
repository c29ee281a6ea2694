"""Slot markers shared by the renderer (templating.py) and the binder (plan.py).

Kept apart so that binding a cached plan never imports jinja2. The markers are the control
characters SOH and STX (not whitespace to str.split or shlex, unlike the ASCII separators);
binding substitutes in one pass, so a value is never scanned for markers itself.
"""

MARK_OPEN, MARK_CLOSE = "\x01", "\x02"
