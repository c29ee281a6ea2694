"""Where cnish finds its recipes (plans/) and templates (templates/).

They live at the top of the repository, outside the package (the design card's layout), and are
installed inside it as cnish/plans and cnish/templates (see setup.cfg). Looking next to the
package first and at the repository second works for an installed copy, an editable install
and a plain checkout alike, whatever the current directory is.
"""

import os

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def _find(name: str) -> str:
    for base in (os.path.join(_PACKAGE, name), os.path.join(os.path.dirname(_PACKAGE), name)):
        if os.path.isdir(base):
            return base
    raise FileNotFoundError(f"cnish cannot find its {name}/ directory next to {_PACKAGE}")


def templates_dir() -> str:
    return _find("templates")


def plans_dir() -> str:
    return _find("plans")


# Which recipe and template files a render reads (plancache.py validates a cached plan against
# exactly these), each with its stamp (size, mtime) taken when it was first recorded: callers
# record a file before they read it, so a file changed during the render is seen to differ
# from its stamp afterwards. None when nobody is recording.
_reads = None


def stamp(path: str) -> list:
    """[path, size, mtime_ns]; OSError when the file is gone."""
    st = os.stat(path)
    return [path, st.st_size, st.st_mtime_ns]


def record(path: str) -> None:
    if _reads is not None and path not in _reads:
        try:
            _reads[path] = stamp(path)
        except OSError:
            _reads[path] = None            # (gone: the render fails, or is not cached)


def recording(active: bool) -> dict | None:
    """Start (True) or stop (False) recording; stopping returns {path: stamp} of the files read
    meanwhile."""
    global _reads
    reads, _reads = _reads, ({} if active else None)
    return reads
