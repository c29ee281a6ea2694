"""Shared fixtures.

Kernel tests never touch the machine's own network: each test gets a private "host" network
namespace in which cnish runs (`ip netns exec`), with its own bridges, iptables tables and
sysctls, plus container namespaces. Deleting the namespaces at teardown removes everything the
test created, also when it fails. Names carry a per-run prefix (cnish-<run id>-...).
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from lab import RUN_ID, Lab, kernel_problem, link_kind_missing  # noqa: E402


# What the run may add to the machine's /run/cnish without a way to send it elsewhere: the
# per-boot record of link kinds the kernel has (cnish/kernel.py), written by any real ADD of
# macvlan, ipvlan, vlan or dummy (`ip netns exec` shares /run). The entries the run added are
# removed at its end, and the directories if the run made them (a cache: cnish probes again).
_kernel_cache_before = {}


def _interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.hookimpl(tryfirst=True)       # (before the tmp_path plugin reads --basetemp)
def pytest_configure(config):
    # Plans rendered by the tests go to a cache of this run, removed at the end.
    import atexit
    import shutil
    import signal
    import tempfile
    # The tests' tmp_path directories (stores, result caches, conflists, logs) go to a base of
    # this run, removed at its end, also after failures. (pytest's own numbered bases under
    # /tmp/pytest-of-root keep failed tests' directories; and with retention "none", a second
    # session's clean-up deleted a running session's base, failing all its later tests.)
    if config.option.basetemp is None:
        directory = tempfile.mkdtemp(prefix=f"cnish-{RUN_ID}-tmp-")
        config.option.basetemp = directory
        atexit.register(shutil.rmtree, directory, True)
    if "CNISH_ATTACHMENT_LOCKS" not in os.environ:      # (cnish/attachlock.py)
        directory = tempfile.mkdtemp(prefix=f"cnish-{RUN_ID}-locks-")
        os.chmod(directory, 0o700)
        os.environ["CNISH_ATTACHMENT_LOCKS"] = directory
        atexit.register(shutil.rmtree, directory, True)
    if "CNISH_PLAN_CACHE" not in os.environ:
        directory = tempfile.mkdtemp(prefix=f"cnish-{RUN_ID}-plans-")
        os.chmod(directory, 0o700)
        os.environ["CNISH_PLAN_CACHE"] = directory
        atexit.register(shutil.rmtree, directory, True)
    # hypothesis keeps state in .hypothesis/ of the current directory (the checkout)
    if "HYPOTHESIS_STORAGE_DIRECTORY" not in os.environ:
        directory = tempfile.mkdtemp(prefix=f"cnish-{RUN_ID}-hypothesis-")
        os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = directory
        atexit.register(shutil.rmtree, directory, True)
    # a SIGTERM (a CI time-out) ends the run like Ctrl-C: the fixtures' finalizers still run
    signal.signal(signal.SIGTERM, _interrupt)
    from cnish.kernel import CACHE
    for d in (CACHE, os.path.dirname(CACHE)):
        _kernel_cache_before[d] = set(os.listdir(d)) if os.path.isdir(d) else None


def pytest_unconfigure(config):
    import contextlib
    from cnish.kernel import CACHE
    before = _kernel_cache_before.get(CACHE, set())
    with contextlib.suppress(OSError):
        for name in set(os.listdir(CACHE)) - (before or set()):
            os.unlink(os.path.join(CACHE, name))
    for d in (CACHE, os.path.dirname(CACHE)):
        if _kernel_cache_before.get(d, set()) is None:
            with contextlib.suppress(OSError):
                os.rmdir(d)         # only when empty: something else may use it now


def pytest_addoption(parser):
    parser.addoption("--regen-golden", action="store_true",
                     help="rewrite tests/cases/*/*/expected files from the current code")


def pytest_collection_modifyitems(config, items):
    problem = kernel_problem()
    for item in items:
        if problem and (item.get_closest_marker("kernel") or item.get_closest_marker("podman")):
            item.add_marker(pytest.mark.skip(reason=problem))
            continue
        marker = item.get_closest_marker("linktype")
        if marker and not problem and link_kind_missing(marker.kwargs["kind"]):
            item.add_marker(pytest.mark.skip(
                reason=f"this kernel ({os.uname().release}) has no {marker.kwargs['kind']}"
                       f"{'' if ' ' in marker.kwargs['kind'] else ' links'}; "
                       "they run in the kernel lab (../shared/kernel-lab)"))


@pytest.fixture
def lab(tmp_path):
    """Namespaces, a data directory and a result cache that vanish after the test."""
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="session")
def run_id():
    return RUN_ID


def pytest_terminal_summary(terminalreporter):
    from figures import FIGURES
    if FIGURES:
        terminalreporter.section("reliability figures")
        for name, value in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{name}: {value}")
