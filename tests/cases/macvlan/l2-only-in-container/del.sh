#!/usr/bin/env bash
# cnish DEL plan (dry run: nothing was changed)
#
#   cnish          0.1.0
#   command        DEL
#   network        mvl2 (plugin macvlan, cniVersion 0.4.0)
#   container id   ctr1
#   netns          /var/run/netns/cnish-test
#   ifname         eth0
#
# Running this script removes what cnish would remove: every step runs,
# anything already gone counts as removed, shared objects (the bridge) are kept.

set -euo pipefail
# Like cnish: no directory or file it makes is writable by another user, whatever umask it
# was started with (a stricter one stays).
umask g-w,o-w
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

# One ADD or DEL of this attachment at a time, and none while the tools of a killed one still
# run: the lock cnish takes (cnish/attachlock.py), an flock on a file named after the
# attachment, held on a descriptor the tools inherit; given up after 30 s. A lock directory
# that is not root's own alone (or CNISH_ATTACHMENT_LOCKS=off) means no lock, as for cnish.
CNISH_LOCK_DIR=${CNISH_ATTACHMENT_LOCKS-/run/cnish/attachments}
CNISH_LOCK=
cnish-lock() {
  local path=$CNISH_LOCK_DIR/$1 deadline=$((SECONDS + 30)) fd status
  [[ -n $CNISH_LOCK_DIR && $CNISH_LOCK_DIR != off ]] || return 0
  if ! command -v flock >/dev/null; then     # (util-linux's)
    printf 'cnish: no flock here: the attachment is not locked\n' >&2
    return 0
  fi
  # (its parents as the umask makes them, the directory itself 0700, as cnish makes them)
  [[ -d $CNISH_LOCK_DIR ]] || { mkdir -p -- "$(dirname -- "$CNISH_LOCK_DIR")" &&
    mkdir -m 0700 -- "$CNISH_LOCK_DIR"; } 2>/dev/null || [[ -d $CNISH_LOCK_DIR ]] || return 0
  [[ -d $CNISH_LOCK_DIR && ! -L $CNISH_LOCK_DIR && -O $CNISH_LOCK_DIR ]] || return 0
  (( (8#$(stat -c %a -- "$CNISH_LOCK_DIR") & 8#022) == 0 )) || return 0
  while :; do
    [[ ! -L $path ]] || return 0          # (a planted link: work on unguarded, as cnish does)
    exec {fd}<>"$path" || return 0
    status=0
    flock -w "$((deadline > SECONDS ? deadline - SECONDS : 0))" "$fd" || status=$?
    if (( status == 1 )); then
      printf 'cnish: another ADD or DEL of this attachment is still running (or the tools of one that was killed are): try again later\n' >&2
      exit 1
    elif (( status != 0 )); then
      printf 'cnish: flock failed with status %s: the attachment is not locked\n' "$status" >&2
      exec {fd}>&-
      return 0
    fi
    # the file locked must still be the one there: the holder removes it when done
    if [[ $(stat -L -c %i "/proc/self/fd/$fd") == "$(stat -c %i -- "$path" 2>/dev/null)" ]]; then
      CNISH_LOCK=$path
      return 0
    fi
    exec {fd}>&-
  done
}
# cnish-unlock: the file goes first, then the lock (the tools have ended).
cnish-unlock() {
  if [[ -n $CNISH_LOCK ]]; then rm -f -- "$CNISH_LOCK"; CNISH_LOCK=; fi
}
cnish-lock 8b5533acd2403bde.lock
trap cnish-unlock EXIT

# ---------------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------------
if (( ${#FAILED[@]} )); then
  printf 'cnish: could not remove everything (steps %s)\n' "${FAILED[*]}" >&2
  exit 1
fi
