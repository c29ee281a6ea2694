"""README's quick start runs as written: its shell block, verbatim, on a real kernel.

The block writes /etc/cni/net.d, creates the namespace ns1 and the bridge demo0, and caches in
/var/lib/cni: names an operator's machine may hold already. So it runs in a world of its own:
a new network namespace (the bridge, its address, the masquerade rules and the forwarding
sysctl live and die there) and a new mount namespace in which /etc, /var and /run are
overlays whose writes go to the test's temporary directory. Nothing of it reaches the host,
and all of it vanishes with the block's process, also when the block fails."""

import os
import subprocess
import sys

import pytest

from lab import ROOT, cnish_command

pytestmark = pytest.mark.kernel


def quick_start() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Quick start\n", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


# Runs in the new namespaces: overlays first (an overlay's upper and work directories must be
# on one file system, one pair per directory), then the README's block with `set -e`, so that
# any command that fails fails the test. `less` is the operator reading the script: here a
# check that it is there and says what it will do. After each step, what the README says it did.
WORLD = r"""
set -eu
for dir in etc var run; do
    mkdir -p "$SCRATCH/$dir.upper" "$SCRATCH/$dir.work"
    mount -t overlay overlay -o "lowerdir=/$dir,upperdir=$SCRATCH/$dir.upper,workdir=$SCRATCH/$dir.work" "/$dir"
done
mount -t sysfs sysfs /sys          # (/sys/class/net shows the namespace that mounted it)
ip link set lo up
less() { grep -q 'ip link add' "$1"; }
cd "$SCRATCH"
set -x
"""


def test_the_quick_start_runs_as_written(tmp_path):
    block = quick_start()
    # the README's claims between its commands, checked where they are made
    block = block.replace(
        "less add.sh\n",
        "less add.sh\n"
        "! ip link show demo0 && ! ip netns list | grep -qw ns1   # the dry run changed nothing\n")
    block = block.replace(
        "cnish check demo ns1 ",
        "ip link show demo0 && ip -n ns1 addr show eth0\ncnish check demo ns1 ")
    assert "cnish del demo ns1 --delete-netns" in block
    block += ("! ip netns list | grep -qw ns1                # deleted\n"
              "cnish del demo ns1 --delete-netns             # safe to repeat\n"
              "ip link show demo0                            # the bridge stays\n")
    bindir = os.path.dirname(cnish_command()[0])          # `cnish` as README's set-up installs
    env = dict(os.environ, SCRATCH=str(tmp_path),
               PATH=f"{bindir}:{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '')}")
    proc = subprocess.run(["unshare", "--mount", "--net", "--propagation", "private",
                           "bash", "-c", WORLD + block], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 received" in proc.stdout, proc.stdout                       # the ping
    assert '"cniVersion": "1.0.0"' in proc.stdout and "10.99.0.2/24" in proc.stdout
    assert "#!/usr/bin/env bash" in (tmp_path / "add.sh").read_text()
    # its writes went to the overlays, not to the host's /etc
    assert (tmp_path / "etc.upper" / "cni" / "net.d" / "10-demo.conflist").exists()
