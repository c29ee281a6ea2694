#!/usr/bin/env bash
# cnish ADD plan (dry run: nothing was changed)
#
#   cnish          0.1.0
#   command        ADD
#   network        mvl2 (plugin macvlan, cniVersion 0.4.0)
#   container id   ctr1
#   netns          /var/run/netns/cnish-test
#   ifname         eth0
#
# Running this script does what cnish would do: the same commands in the same
# order. If a step fails, the completed steps are undone newest first (shared
# objects such as the bridge are kept) and the script exits with the failure.

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
  exit "$status"
}
trap rollback EXIT

# ---------------------------------------------------------------------------------------------

# Step 1/5 [link-in-container] create the macvlan eth0 on eth9 (mode private) (linkInContainer: the master is in the container)
#   undo: nsenter --net=/var/run/netns/cnish-test ip link del dev eth0
undo_1() { undo nsenter --net=/var/run/netns/cnish-test ip link del dev eth0; }
run 1 strict -- nsenter --net=/var/run/netns/cnish-test ip link add link eth9 name eth0 address aa:21:41:ce:20:19 type macvlan mode private

# Step 2/5 [label-in-container] label eth0 as this attachment's link (its alias cnish#8b5533acd2403bde7df040897db59c0c)
#   why:  as in step label: DEL tells this attachment's link by it
#   undo: none of its own, undone with step "link-in-container"
run 2 strict -- nsenter --net=/var/run/netns/cnish-test ip link set dev eth0 alias 'cnish#8b5533acd2403bde7df040897db59c0c'

# Step 3/5 [arp-notify] announce eth0's address with a gratuitous ARP when it comes up (arp_notify)
#   why:  a reused address gets a new MAC; neighbours learn it at once instead of after their ARP entry expires
#   undo: none of its own, undone with step "link-in-container"
run 3 strict -- nsenter --net=/var/run/netns/cnish-test sysctl -q -w net/ipv4/conf/eth0/arp_notify=1

# Step 4/5 [no-dad] skip duplicate address detection on eth0
#   why:  IPAM guarantees the address is unique; DAD would keep it unusable for a second or more (set for IPv4-only networks too, like the reference, for addresses added later; tolerated when the kernel has no IPv6)
#   undo: none of its own, undone with step "link-in-container"
run 4 missing-ok -- nsenter --net=/var/run/netns/cnish-test sysctl -q -w net/ipv6/conf/eth0/accept_dad=0

# Step 5/5 [container-up] lesson step 7: bring eth0 up inside the container
#   undo: none of its own, undone with step "link-in-container"
run 5 strict -- nsenter --net=/var/run/netns/cnish-test ip link set dev eth0 up

# ---------------------------------------------------------------------------------------------
trap - EXIT
# The CNI result cnish would print:
cat <<'CNISH_RESULT'
{
  "cniVersion": "0.4.0",
  "interfaces": [
    {
      "name": "eth0",
      "mac": "aa:21:41:ce:20:19",
      "sandbox": "/var/run/netns/cnish-test"
    }
  ],
  "dns": {}
}
CNISH_RESULT
