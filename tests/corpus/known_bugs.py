"""cnish bugs the corpus found, by the key a case names in "xfail" (the test is then
xfail(strict=True): it fails as XPASS once the bug is fixed, so remove the key then).

BUGS: key -> (one-line summary, used as the xfail reason; what is wrong and the suggested fix).
WHEN: key -> the condition under which the bug shows (elsewhere the case must pass).
"""

BUGS = {
    # None open. Fixed (with the corpus cases that found them): "inf" (1e400 crashed the error
    # formatting), "not-an-object" (runtimeConfig/args not objects), "prev-formats" (prevResult
    # values unchecked), "hostlocal-late" and "late-validation" (refusals after the store's
    # lock file was created), "hostlocal-gc", "gc-unvalidated", "mac-after-probe", and the
    # property test's "dummy-check".
}

WHEN = {}
