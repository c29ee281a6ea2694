"""`cnish install DIR`: put cnish into a CNI plugin directory with a launcher that starts fast.

Runtimes exec the plugin for every container start and stop, so interpreter start-up matters.
The console script pip writes runs Python with its `site` module, which on many hosts imports
whatever `.pth` hooks the environment carries (tens of milliseconds), and it may be reached
through a version-manager shim (hundreds). The launcher written here names the interpreter by
its absolute path and runs it isolated (`-I`: no PYTHON* variables, no user site directory,
no script directory on sys.path; `-S`: no site hooks), with exactly the directories cnish and
its dependencies are installed in on sys.path.
"""

import os
import sys

LAUNCHER = """#!{python} -IS
# cnish {version} CNI plugin launcher, written by `cnish install`.
# -I: ignore PYTHON* variables and the user site; -S: no site hooks (a fast, predictable start).
import sys
sys.path[:0] = {paths!r}
from cnish.main import main
main()
"""


def _package_dirs() -> list:
    """The sys.path entries that hold cnish and the libraries it may import."""
    import importlib.util
    dirs = []
    for name in ("cnish", "jinja2", "markupsafe", "click"):
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        parent = os.path.dirname(list(spec.submodule_search_locations)[0])
        if parent not in dirs:
            dirs.append(parent)
    return dirs


def launcher_text() -> str:
    from cnish import __version__
    return LAUNCHER.format(python=os.path.realpath(sys.executable), version=__version__,
                           paths=_package_dirs())


def install(directory: str, links=()) -> list:
    """Write DIR/cnish (the launcher) and symlinks DIR/<name> -> cnish. Returns the paths."""
    os.makedirs(directory, mode=0o755, exist_ok=True)
    target = os.path.join(directory, "cnish")
    tmp = target + f".tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(launcher_text())
    os.chmod(tmp, 0o755)
    os.rename(tmp, target)
    made = [target]
    for name in links:
        link = os.path.join(directory, name)
        if os.path.lexists(link):
            if os.path.islink(link) and os.readlink(link) == "cnish":
                made.append(link)
                continue
            raise FileExistsError(f"{link} exists; remove it first to replace it with cnish")
        os.symlink("cnish", link)
        made.append(link)
    return made
