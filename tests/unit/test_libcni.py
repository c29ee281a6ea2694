"""The CLI's reading of network config files, as libcni reads them."""

import pytest

from cnish import libcni
from cnish.errors import CNIError

ONE = {"cniVersion": "1.0.0", "name": "net", "type": "bridge"}
LIST = {"cniVersion": "1.0.0", "name": "net", "plugins": [{"type": "bridge"}]}


@pytest.mark.parametrize("path,conf,wanted", [
    ("/etc/cni/net.d/10-crio-bridge.conflist", ONE, '"plugins"'),
    ("/etc/cni/net.d/10-net.conf", LIST, '"type"'),
    ("/etc/cni/net.d/10-net.json", LIST, '"type"'),
])
def test_a_file_holds_what_its_name_says_as_libcni_reads_it(path, conf, wanted):
    """CRI-O once shipped a .conflist holding one plugin's config: libcni and the runtimes
    refuse it ("no 'plugins' key"), and a .conf holding a list ("missing 'type'"); the CLI
    ran both, so an operator's dry run passed a file the runtime would not load (a configs
    audit)."""
    with pytest.raises(CNIError) as info:
        libcni.as_list(dict(conf), path)
    assert info.value.code == 7 and wanted in info.value.msg and path in info.value.msg
    # (DEL, CHECK and GC still read it by its content: what an older cnish let ADD use must
    # be deletable; a review's find)
    assert libcni.as_list(dict(conf), path, by_name=False)["plugins"][0]["type"] == "bridge"


def test_files_that_hold_what_their_names_say_and_pipes_by_content():
    assert libcni.as_list(dict(LIST), "/x/10.conflist")["plugins"] == LIST["plugins"]
    assert libcni.as_list(dict(ONE), "/x/10.conf")["plugins"][0]["type"] == "bridge"
    assert libcni.as_list(dict(ONE), "/x/10.json")["plugins"][0]["type"] == "bridge"
    assert libcni.as_list(dict(LIST), "/dev/fd/63")["plugins"] == LIST["plugins"]
    assert libcni.as_list(dict(ONE), "/dev/fd/63")["plugins"][0]["type"] == "bridge"
    # (a .conf with both is one plugin, a .conflist with both a list: libcni's reading)
    both = dict(ONE, plugins=[{"type": "ptp"}])
    assert libcni.as_list(dict(both), "/x/10.conf")["plugins"][0]["type"] == "bridge"
    assert libcni.as_list(dict(both), "/x/10.conflist")["plugins"][0]["type"] == "ptp"
