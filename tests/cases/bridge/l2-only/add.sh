#!/usr/bin/env bash
# cnish ADD plan (dry run: nothing was changed)
#
#   cnish          0.1.0
#   command        ADD
#   network        l2net (plugin bridge, cniVersion 0.4.0)
#   container id   ctr1
#   netns          /var/run/netns/cnish-test
#   ifname         eth0
#
# Running this script does what cnish would do: the same commands in the same
# order. If a step fails, the completed steps are undone newest first (shared
# objects such as the bridge are kept) and the script exits with the failure.

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

# On failure, undo the completed steps newest first (shared objects are never undone).
DONE=()
rollback() {
  local status=$? i
  set +e
  trap - EXIT
  if (( status != 0 )); then
    printf 'cnish: undoing %s completed step(s)\n' "${#DONE[@]}" >&2
    for ((i = ${#DONE[@]} - 1; i >= 0; i--)); do
      "undo_${DONE[i]}" || printf 'cnish: could not undo step %s\n' "${DONE[i]}" >&2
    done
  fi
  if declare -F cnish-unlock >/dev/null; then cnish-unlock; fi    # (defined below)
  exit "$status"
}
trap rollback EXIT

# cnish-trusted-dir DIR: print DIR's physical path when no other user can swap a file in it,
# or it, as cnish decides (cnish/trusteddirs.py): on the way from / every directory is root's
# or this user's and writable by no one else (a sticky one, as /tmp, is fine above), a
# symlink in a directory others can write to is root's or this user's, and DIR itself is
# this user's own and writable by no one else (with a second argument `above`, DIR is held
# to the rule of the directories above instead: one to make a directory in). Otherwise say
# why and fail. The callers use the printed path from then on. (cnish also takes, inside a user namespace, the host's
# directories above the namespace's own for root's; this script does not.)
# (no bare `return`: in a function run by a trap, as the rollback is, it returns the status
# of the command the trap interrupted)
_cnish_dir_ok() {   # UID MODE KIND above|last
  [[ $3 == directory ]] || return 1
  if [[ $4 == last ]]; then
    (( $1 == EUID && (8#$2 & 8#022) == 0 ))
  else
    (( ($1 == 0 || $1 == EUID) && ((8#$2 & 8#022) == 0 || (8#$2 & 8#1000) != 0) ))
  fi
}

cnish-trusted-dir() {
  local current=/ next part target uid mode kind cur_uid cur_mode cur_kind hops=0
  local -a parts more
  if [[ $1 != /* ]]; then
    printf 'cnish: %s is not an absolute path\n' "$1" >&2
    return 1
  fi
  IFS=/ read -r -a parts <<<"$1"
  read -r cur_uid cur_mode cur_kind < <(stat -c '%u %a %F' -- /) || return 1
  while (( ${#parts[@]} )); do
    part=${parts[0]}
    parts=("${parts[@]:1}")
    [[ -n $part && $part != . ]] || continue
    if ! _cnish_dir_ok "$cur_uid" "$cur_mode" "$cur_kind" above; then
      printf 'cnish: %s is owned by another user or writable by one\n' "$current" >&2
      return 1
    fi
    if [[ $part == .. ]]; then
      current=$(dirname -- "$current")
      read -r cur_uid cur_mode cur_kind < <(stat -c '%u %a %F' -- "$current") || return 1
      continue
    fi
    next=${current%/}/$part
    if ! read -r uid mode kind < <(stat -c '%u %a %F' -- "$next" 2>/dev/null); then
      printf 'cnish: %s does not exist\n' "$next" >&2
      return 1
    fi
    if [[ $kind == "symbolic link" ]]; then
      if (( (8#$cur_mode & 8#022) != 0 && uid != 0 && uid != EUID )); then
        printf 'cnish: %s is a symlink another user owns\n' "$next" >&2
        return 1
      fi
      if (( ++hops > 40 )); then
        printf 'cnish: %s has too many symlinks\n' "$1" >&2
        return 1
      fi
      target=$(readlink -- "$next")
      IFS=/ read -r -a more <<<"$target"
      parts=("${more[@]}" "${parts[@]}")
      if [[ $target == /* ]]; then
        current=/
        read -r cur_uid cur_mode cur_kind < <(stat -c '%u %a %F' -- /) || return 1
      fi
      continue
    fi
    current=$next cur_uid=$uid cur_mode=$mode cur_kind=$kind
  done
  if ! _cnish_dir_ok "$cur_uid" "$cur_mode" "$cur_kind" "${2:-last}"; then
    printf 'cnish: %s is not a directory of this user alone\n' "$current" >&2
    return 1
  fi
  printf '%s\n' "$current"
}

# One ADD or DEL of this attachment at a time, and none while the tools of a killed one still
# run: the lock cnish takes (cnish/attachlock.py), an flock on a file named after the
# attachment, held on a descriptor the tools inherit; given up after 30 s. A lock directory
# another user could swap a file of (cnish-trusted-dir), or CNISH_ATTACHMENT_LOCKS=off,
# means no lock, as for cnish.
CNISH_LOCK_DIR=${CNISH_ATTACHMENT_LOCKS-/run/cnish/attachments}
CNISH_LOCK=
cnish-lock() {
  local path deadline=$((SECONDS + 30)) fd status dir
  [[ -n $CNISH_LOCK_DIR && $CNISH_LOCK_DIR != off ]] || return 0
  if ! command -v flock >/dev/null; then     # (util-linux's)
    printf 'cnish: no flock here: the attachment is not locked\n' >&2
    return 0
  fi
  # (its parents as the umask makes them, the directory itself 0700, as cnish makes them)
  [[ -d $CNISH_LOCK_DIR ]] || { mkdir -p -- "$(dirname -- "$CNISH_LOCK_DIR")" &&
    mkdir -m 0700 -- "$CNISH_LOCK_DIR"; } 2>/dev/null || [[ -d $CNISH_LOCK_DIR ]] || return 0
  dir=$(cnish-trusted-dir "$CNISH_LOCK_DIR" 2>/dev/null) || return 0
  [[ $dir == /?* ]] || return 0     # (no descriptor left for $(...)'s pipe: empty, status 0)
  path=$dir/$1
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
cnish-lock 9119b813cb05a1fb.lock

# ---------------------------------------------------------------------------------------------

# Step 1/11 [new-attachment] verify that veth9119b813cb0 does not exist: eth0 of this container is not attached to this network already
#   why:  before anything that names the attachment (the MAC spoof check's chains and rules, the masquerade rules, which cnish starts alongside the first command): an ADD repeated for an attachment that exists would otherwise fail only at the veth, and its rollback would delete what the existing attachment uses; a check in-process, no command
run 1 strict -- test '!' -e /sys/class/net/veth9119b813cb0

# Step 2/11 [bridge] lesson step 2: create the bridge golden3 unless it exists
#   why:  the bridge is shared by every container of the network, so neither rollback nor DEL removes it; a bridge created by a parallel ADD in the meantime is fine. The probe looks for the bridge's own sysfs directory, which the kernel adds after the link's: a bridge that a parallel ADD is still creating counts as missing, and `ip link add` then waits for that creation to finish and answers "File exists"
#   undo: none, shared with other attachments
if ! test -d /sys/class/net/golden3/bridge 2>/dev/null; then
  run 2 exists-ok -- ip link add name golden3 address 92:a3:1f:35:e9:e9 type bridge
fi

# Step 3/11 [bridge-is-bridge] verify that golden3 is a bridge
#   why:  an existing link of that name that is not a bridge would otherwise receive the container's veth
run 3 strict -- test -d /sys/class/net/golden3/bridge

# Step 4/11 [bridge-up] bring the bridge golden3 up
#   undo: none, shared with other attachments
run 4 strict -- ip link set dev golden3 up

# Step 5/11 [bridge-promisc] put the bridge golden3 into promiscuous mode (promiscMode)
#   undo: none, shared with other attachments
run 5 strict -- ip link set dev golden3 promisc on

# Step 6/11 [veth] lesson steps 3-4: create the veth pair veth9119b813cb0 (host) / eth0 (inside /var/run/netns/cnish-test)
#   why:  the container end is created directly inside the namespace, so it never appears on the host under the container's interface name
#   undo: ip link del dev veth9119b813cb0
undo_6() { undo ip link del dev veth9119b813cb0; }
run 6 strict -- ip link add name veth9119b813cb0 address be:98:bb:e9:08:7a type veth peer name eth0 address ea:a9:7f:b3:22:4a netns /var/run/netns/cnish-test

# Step 7/11 [label] label veth9119b813cb0 with its attachment (cnish/l2net/ctr1/eth0)
#   why:  GC recognises the host ends of attachments it must remove by this label; operators see whose veth it is
#   undo: none of its own, undone with step "veth"
run 7 strict -- ip link set dev veth9119b813cb0 alias cnish/l2net/ctr1/eth0

# Step 8/11 [attach] lesson step 5: attach veth9119b813cb0 to the bridge golden3
#   undo: none of its own, undone with step "veth"
run 8 strict -- ip link set dev veth9119b813cb0 master golden3

# Step 9/11 [host-up] lesson step 7: bring veth9119b813cb0 up
#   undo: none of its own, undone with step "veth"
run 9 strict -- ip link set dev veth9119b813cb0 up

# Step 10/11 [bridge-no-ra] make the bridge golden3 ignore IPv6 router advertisements
#   why:  otherwise a container could announce itself as the host's IPv6 router; skipped when already set, tolerated on hosts without IPv6
#   undo: none, shared with other attachments
if ! grep -qxF 0 /proc/sys/net/ipv6/conf/golden3/accept_ra 2>/dev/null; then
  run 10 missing-ok -- sysctl -q -w net/ipv6/conf/golden3/accept_ra=0
fi

# Step 11/11 [container-up] lesson step 7: bring eth0 up inside the container
#   undo: none of its own, undone with step "veth"
run 11 strict -- nsenter --net=/var/run/netns/cnish-test ip link set dev eth0 up

# ---------------------------------------------------------------------------------------------
trap - EXIT
cnish-unlock
# The CNI result cnish would print:
cat <<'CNISH_RESULT'
{
  "cniVersion": "0.4.0",
  "interfaces": [
    {
      "name": "golden3",
      "mac": "92:a3:1f:35:e9:e9"
    },
    {
      "name": "veth9119b813cb0",
      "mac": "be:98:bb:e9:08:7a"
    },
    {
      "name": "eth0",
      "mac": "ea:a9:7f:b3:22:4a",
      "sandbox": "/var/run/netns/cnish-test"
    }
  ],
  "dns": {}
}
CNISH_RESULT
