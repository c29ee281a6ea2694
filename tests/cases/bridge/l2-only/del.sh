#!/usr/bin/env bash
# cnish DEL plan (dry run: nothing was changed)
#
#   cnish          0.1.0
#   command        DEL
#   network        l2net (plugin bridge, cniVersion 0.4.0)
#   container id   ctr1
#   netns          /var/run/netns/cnish-test
#   ifname         eth0
#
# Running this script removes what cnish would remove: every step runs,
# anything already gone counts as removed, shared objects (the bridge) are kept.

set -euo pipefail
# Like cnish: tools come from PATH first, then the system directories; messages in English.
PATH="${PATH:+$PATH:}/usr/sbin:/sbin:/usr/bin:/bin"
export LC_ALL=C

# Failures that mean "already there" (steps marked on_exists = done) and "already gone"
# (on_missing = done, and every undo): the same list cnish's executor uses.
already_there() { case $1 in *'File exists'*|*'Chain already exists'*) return 0 ;; esac; return 1; }
already_gone() { case $1 in *'Cannot find device'*|*'No such device'*|*'No such file or directory'*|*'does not exist'*|*'Address not found'*|*'No such process'*|*'No chain/target/match by that name'*|*'Bad rule (does a matching rule exist'*|*'Cannot assign requested address'*) return 0 ;; esac; return 1; }

# run STEP MODE -- COMMAND...: run one step; MODE says which failures are harmless.
run() {
  local step=$1 mode=$2 out status=0
  shift 3
  out=$("$@" 2>&1) || status=$?
  if (( status == 0 )); then
    if declare -F "undo_$step" >/dev/null; then DONE+=("$step"); fi
    return 0
  fi
  if [[ $mode == *exists-ok* ]] && already_there "$out"; then return 0; fi
  if [[ $mode == *missing-ok* ]] && already_gone "$out"; then return 0; fi
  printf 'cnish: step %s failed with status %s: %s\n' "$step" "$status" "$out" >&2
  return "$status"
}

# undo COMMAND...: an undo; an object that is already gone counts as undone.
undo() {
  local out status=0
  out=$("$@" 2>&1) || status=$?
  if (( status != 0 )) && ! already_gone "$out"; then
    printf 'cnish: undo failed with status %s: %s\n' "$status" "$out" >&2
    return 1
  fi
}

# DEL is best effort: every step runs; failures are reported at the end.
FAILED=()

# ---------------------------------------------------------------------------------------------

# Step 1/1 [host-link] delete the host end veth9119b813cb0 if it is there (its peer in the container goes with it)
#   why:  first, by the name only this attachment has: the container's eth0 goes with it without being looked up. It also covers a namespace that is already gone from the filesystem but still alive
if ! test '!' -e /sys/class/net/veth9119b813cb0 2>/dev/null; then
  run 1 missing-ok -- ip link del dev veth9119b813cb0 || FAILED+=(1)
fi

# ---------------------------------------------------------------------------------------------
if (( ${#FAILED[@]} )); then
  printf 'cnish: could not remove everything (steps %s)\n' "${FAILED[*]}" >&2
  exit 1
fi
