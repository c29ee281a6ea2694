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


def pytest_configure(config):
    # Plans rendered by the tests go to a cache of this run, removed at the end.
    import atexit
    import shutil
    import tempfile
    if "CNISH_PLAN_CACHE" not in os.environ:
        directory = tempfile.mkdtemp(prefix=f"cnish-{RUN_ID}-plans-")
        os.chmod(directory, 0o700)
        os.environ["CNISH_PLAN_CACHE"] = directory
        atexit.register(shutil.rmtree, directory, True)


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
                reason=f"this kernel ({os.uname().release}) has no {marker.kwargs['kind']} "
                       "links; they run in the kernel lab (../shared/kernel-lab)"))


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
