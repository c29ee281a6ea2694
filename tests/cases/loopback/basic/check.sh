#!/usr/bin/env bash
# cnish CHECK plan (dry run: nothing was changed)
#
#   cnish          0.1.0
#   command        CHECK
#   network        lonet (plugin loopback, cniVersion 1.0.0)
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

# Check of ADD step 1 [lo-up] bring lo up inside the container
check 1 contains '"ifname":"lo"' -- nsenter --net=/var/run/netns/cnish-test ip -j link show dev lo up

# ---------------------------------------------------------------------------------------------
if (( ${#FAILED[@]} )); then
  printf 'cnish: check failed (steps %s)\n' "${FAILED[*]}" >&2
  exit 1
fi
