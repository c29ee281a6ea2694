#!/usr/bin/env bash
# cnish CHECK plan (dry run: nothing was changed)
#
#   cnish          0.1.0
#   command        CHECK
#   network        ipvnet (plugin ipvlan, cniVersion 1.1.0)
#   container id   ctr1
#   netns          /var/run/netns/cnish-test
#   ifname         eth0
#
# Running this script checks the attachment the way cnish would (reads only)
# and exits 1 naming every step whose check failed.

set -euo pipefail
# Like cnish: no directory or file it makes is writable by another user, whatever umask it
# was started with (a stricter one stays).
umask g-w,o-w
# Like cnish: tools come from PATH first, then the system directories; messages in English.
PATH="${PATH:+$PATH:}/usr/sbin:/sbin:/usr/bin:/bin"
export LC_ALL=C

# capture COMMAND...: its output (stdout and stderr) in OUT, its exit status in STATUS. With
# no file descriptor left for the pipe, bash runs no $(...) and reports status 0: a step that
# never ran would pass for done; here it is status 126, saying so.
capture() {
  OUT=$("$@" 2>&1; printf '\n%s' "$?") || true
  if [[ $OUT != *$'\n'* ]]; then
    STATUS=126 OUT="cannot run $1: bash could not start it (no file descriptor left?)"
    return 0
  fi
  STATUS=${OUT##*$'\n'}
  OUT=${OUT%$'\n'*}
  while [[ $OUT == *$'\n' ]]; do OUT=${OUT%$'\n'}; done    # (as $(...) strips them)
}
if [[ $(printf ok) != ok ]]; then       # (the helpers' own $(...) would misjudge, likewise)
  printf 'cnish: bash cannot start commands here (no file descriptor left?): nothing done\n' >&2
  exit 1
fi

# Failures that mean "already there" (steps marked on_exists = done) and "already gone"
# (on_missing = done, and every undo): the same list cnish's executor uses.
already_there() { case $1 in *'File exists'*|*'Chain already exists'*) return 0 ;; esac; return 1; }
already_gone() { case $1 in *'Cannot find device'*|*'No such device'*|*'No such file or directory'*|*'does not exist'*|*'Address not found'*|*'No such process'*|*'No chain/target/match by that name'*|*'Bad rule (does a matching rule exist'*|*'Cannot assign requested address'*) return 0 ;; esac; return 1; }

# run STEP MODE -- COMMAND...: run one step; MODE says which failures are harmless.
run() {
  local step=$1 mode=$2 out status=0
  shift 3
  capture "$@"
  out=$OUT status=$STATUS
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
  capture "$@"
  out=$OUT status=$STATUS
  if (( status != 0 )) && ! already_gone "$out"; then
    printf 'cnish: undo failed with status %s: %s\n' "$status" "$out" >&2
    return 1
  fi
}

# check STEP EXPECT NEEDLE... -- COMMAND...: EXPECT is status, output, contains (every
# NEEDLE) or line (every NEEDLE in one line of the output).
FAILED=()
check() {
  local step=$1 expect=$2 out status=0 needle found=1 line
  local needles=()
  shift 2
  while [[ $1 != -- ]]; do needles+=("$1"); shift; done
  shift
  capture "$@"
  out=$OUT status=$STATUS
  if (( status == 0 )); then
    case $expect in
      status) return 0 ;;
      output) [[ -n $out ]] && return 0 ;;
      contains)
        for needle in "${needles[@]}"; do [[ $out == *"$needle"* ]] || found=0; done
        (( found )) && return 0 ;;
      line)
        while IFS= read -r line; do
          found=1
          for needle in "${needles[@]}"; do [[ $line == *"$needle"* ]] || found=0; done
          (( found )) && return 0
        done <<<"$out" ;;
    esac
  fi
  printf 'cnish: check of step %s failed: %s\n' "$step" "${out:-no output}" >&2
  FAILED+=("$step")
}

# ---------------------------------------------------------------------------------------------

# Check of ADD step 3 [move] move cnsld00644ac0f1 into /var/run/netns/cnish-test as eth0
check 3 contains '"info_kind":"ipvlan","info_data":{"mode":"l3"' '"link_index":9,' -- nsenter --net=/var/run/netns/cnish-test ip -j -d link show dev eth0

# Check of ADD step 6 [address[0]] lesson step 6: assign 10.22.0.5/24 to eth0
check 6 contains ' 10.22.0.5/24 ' -- nsenter --net=/var/run/netns/cnish-test ip -o addr show dev eth0 to 10.22.0.5

# Check of ADD step 7 [container-up] lesson step 7: bring eth0 up inside the container
check 7 contains '"address":"02:00:00:00:e9:09"' -- nsenter --net=/var/run/netns/cnish-test ip -j link show dev eth0 up

# Check of ADD step 8 [route[0]] route 0.0.0.0/0 via 10.22.0.1 through eth0
#   why:  prepend, like the reference: a container on several networks may already have a route to the same destination (a default route) through another interface
check 8 output '' -- nsenter --net=/var/run/netns/cnish-test ip -4 -o route show exact 0.0.0.0/0 type unicast via 10.22.0.1 dev eth0

# ---------------------------------------------------------------------------------------------
if (( ${#FAILED[@]} )); then
  printf 'cnish: check failed (steps %s)\n' "${FAILED[*]}" >&2
  exit 1
fi
