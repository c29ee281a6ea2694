"""`cnish install DIR`: put cnish into a CNI plugin directory with a launcher that starts fast.

Runtimes exec the plugin for every container start and stop, so interpreter start-up matters.
The console script pip writes runs Python with its `site` module, which on many hosts imports
whatever `.pth` hooks the environment carries (tens of milliseconds), and it may be reached
through a version-manager shim (hundreds). The launcher written here names the interpreter by
its absolute path and runs it isolated (`-I`: no PYTHON* variables, no user site directory,
no script directory on sys.path; `-S`: no site hooks), with exactly the directories cnish and
its dependencies are installed in on sys.path. It is a shell script, so that the VERSION
requests runtimes send can be answered without starting Python at all. The interpreter is,
unless `--python` names one, the distribution's build of the same Python X.Y when it can run
this cnish (default_python: they start faster than most self-built ones).
"""

import os
import sys

# The launcher is a POSIX shell script: the shell starts in about a millisecond, Python in
# seven. Everything but the exact VERSION requests runtimes send is handed to Python at once.
LAUNCHER = """#!/bin/sh
# cnish {version} CNI plugin launcher, written by `cnish install`.
#
# Python runs as: the interpreter chosen at install time (by default the distribution's
# pythonX.Y if it can run this cnish, else the one cnish was installed with; `cnish install
# --python`), by its absolute path, isolated
# (-I: no PYTHON* variables, no user site; -S: no site hooks), with exactly the directories
# cnish and its libraries are installed in on sys.path, and this file's path as sys.argv[0]
# (the name a runtime execs cnish by, such as `bridge`, selects the plugin type).
python={python}
entry={entry}

# The interpreter may have gone since (a distribution upgrade, a removed pyenv version): the
# runtime then gets a CNI error that says what to do, not an empty answer.
need_python() {{
    [ -x "$python" ] && return
    echo "cnish: $python is missing; run cnish install again" >&2
    if [ -n "${{CNI_COMMAND-}}" ]; then
        printf '%s\\n' '{{"cniVersion":"1.0.0","code":999,"msg":"cnish cannot start: the Python interpreter its launcher runs is missing (run cnish install again)"}}'
    fi
    exit 1
}}

# VERSION, asked twice for every container a runtime starts, is answered here when the request
# is exactly what libcni sends, {{"cniVersion":"V"}} without a newline (or the same with a space
# after the colon), for a V cnish supports.
# These answers were produced by cnish's own Python code (main.version_answer) at install time.
# Any other VERSION request goes to Python with the bytes read so far (the shell drops NUL
# bytes, which no JSON text contains), and so does every other command.
if [ "${{CNI_COMMAND-}}" = VERSION ] && [ $# -eq 0 ]; then
    if IFS= read -r request; then
        need_python
        {{ printf '%s\\n' "$request"; exec cat; }} | exec "$python" -IS -c "$entry" "$0"
        exit
    fi
    case $request in
{answers}
    esac
    need_python
    printf '%s' "$request" | exec "$python" -IS -c "$entry" "$0"
    exit
fi
need_python
exec "$python" -IS -c "$entry" "$0" "$@"
"""

# The install directories go after the standard library (as site-packages does): a package
# there cannot shadow a standard module, and standard imports do not search them first.
ENTRY = """import sys
sys.argv[:1] = []
sys.path += {paths}
try:
    from cnish.main import main
except ImportError as exc:      # cnish was moved or removed since this launcher was written
    import json, os
    why = "cnish cannot start: %s (run cnish install again after installing cnish)" % exc
    if os.environ.get("CNI_COMMAND"):       # a runtime: answer with a CNI error object
        try:
            version = json.loads(sys.stdin.read(1 << 22)).get("cniVersion") or "1.0.0"
        except Exception:   # any unreadable request: the error still needs a version
            version = "1.0.0"
        print(json.dumps({{"cniVersion": version, "code": 999, "msg": why}}))
    sys.exit(why)
main()"""


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


def python_argv(python: str | None = None) -> list:
    """The command the launcher execs; the launcher's path and the arguments follow it.
    `python`: an interpreter check_interpreter accepted (default: default_python())."""
    from cnish import jsonfast
    return [os.path.realpath(python or default_python()), "-IS", "-c",
            ENTRY.format(paths=jsonfast.dumps(_package_dirs()))]


# Run by another interpreter before it is written into a launcher: same Python X.Y (compiled
# extensions and bytecode are per minor version), and able to import what the launcher needs,
# the C modules of the CNI path included (a distribution may ship them in a separate package).
_PROBE = """import sys
if sys.version_info[:2] != ({major}, {minor}):
    sys.exit("it is Python %d.%d; cnish is installed for Python {major}.{minor}" % sys.version_info[:2])
sys.path += {paths}
import cnish.main, cnish.engine, cnish.netlink, cnish.netns, jinja2, fcntl, select, _json, _sha512
cnish.netns.prepare()
"""


class InterpreterError(Exception):
    pass


def check_interpreter(python: str) -> str:
    """The absolute path of an interpreter the launcher may run instead of the one running
    `cnish install`; InterpreterError says why not."""
    from cnish import jsonfast
    from cnish.runner import Runner
    path = os.path.realpath(python)
    if not (os.path.isabs(python) and os.path.isfile(path) and os.access(path, os.X_OK)):
        raise InterpreterError(f"{python} is not an executable given by its absolute path")
    probe = _PROBE.format(major=sys.version_info[0], minor=sys.version_info[1],
                          paths=jsonfast.dumps(_package_dirs()))
    try:
        res = Runner().run([path, "-IS", "-c", probe])
    except OSError as exc:
        raise InterpreterError(f"{python} cannot run: {exc.strerror}") from None
    if res.returncode != 0:
        reason = (res.stderr.strip().splitlines() or [f"exit status {res.returncode}"])[-1]
        raise InterpreterError(f"{python} cannot run cnish: {reason}")
    return path


SYSTEM_PYTHON = "/usr/bin/python{}.{}"      # where Debian, Fedora, Ubuntu... put theirs
_default = []


def default_python() -> str:
    """The interpreter a launcher runs unless `--python` names one: the distribution's build
    of this Python X.Y (/usr/bin/pythonX.Y) when there is one that can run this installation
    of cnish (check_interpreter), else the interpreter running this code.

    Why: distributions build their python3 for speed (Debian's: libpython linked statically,
    PGO and LTO), where pyenv and most hand-made builds link a shared libpython without PGO;
    the same cnish code, from the same directories, starts ≈ 1.5 ms sooner and runs faster
    there (README, "Installing cnish as a CNI plugin"), on every container start and stop."""
    if not _default:
        own = os.path.realpath(sys.executable)
        system = SYSTEM_PYTHON.format(*sys.version_info[:2])
        choice = own
        if os.path.realpath(system) != own and os.path.isfile(system):
            try:
                choice = check_interpreter(system)
            except InterpreterError:
                pass
        _default.append(choice)
    return _default[0]


def launcher_text(python: str | None = None) -> str:
    import shlex
    from cnish import __version__
    from cnish.main import version_answer
    from cnish.results import SUPPORTED_VERSIONS
    answers = []
    for v in SUPPORTED_VERSIONS:
        requests = ['{"cniVersion":"%s"}' % v, '{"cniVersion": "%s"}' % v]   # Go's, Python's
        answer = version_answer(requests[0].encode()).rstrip("\n")
        answers.append(f"        {'|'.join(shlex.quote(r) for r in requests)})\n"
                       f"            printf '%s\\n' {shlex.quote(answer)}; exit 0 ;;")
    python, _, _, entry = python_argv(python)
    return LAUNCHER.format(version=__version__, answers="\n".join(answers),
                           python=shlex.quote(python), entry=shlex.quote(entry))


def launcher_python(path: str) -> str:
    """The interpreter the launcher at `path` runs (its `python=` line, as launcher_text
    quotes it)."""
    import shlex
    with open(path) as f:
        line = next(line for line in f if line.startswith("python="))
    return shlex.split(line[len("python="):])[0]


def install(directory: str, links=(), python: str | None = None) -> list:
    """Write DIR/cnish (the launcher) and symlinks DIR/<name> -> cnish. Returns the paths.
    `python`: the launcher's interpreter (checked by check_interpreter; default_python())."""
    python = check_interpreter(python) if python is not None else default_python()
    from cnish import trusteddirs
    why = trusteddirs.make(directory, 0o755)
    if why:     # (another user could replace the launcher every runtime execs as root)
        raise PermissionError(f"{directory} is not a plugin directory: {why}")
    target = os.path.join(directory, "cnish")
    # a new file of a random name, this user's alone until it is complete: no other user
    # can open it for writing meanwhile, nor plant a link where it is written
    tmp = target + f".tmp-{os.urandom(8).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o700)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(launcher_text(python))
            os.fchmod(f.fileno(), 0o755)
        os.rename(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
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
