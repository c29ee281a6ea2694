#!/usr/bin/env bash
# cnish ADD plan (dry run: nothing was changed)
#
#   cnish          0.1.0
#   command        ADD
#   network        vlannet (plugin bridge, cniVersion 1.0.0)
#   container id   ctr1
#   netns          /var/run/netns/cnish-test
#   ifname         eth0
#
# Running this script does what cnish would do: the same commands in the same
# order. If a step fails, the completed steps are undone newest first (shared
# objects such as the bridge are kept) and the script exits with the failure.
# Note: host-local: this script reserves 10.15.0.2, the next free address in /nonexistent/cnish-golden/vlannet now, and fails (rolling back) if another ADD took it in the meantime

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

# cnish-store OP DIR ARGS...: the host-local IPAM store, as cnish's own store (cnish/store.py)
# handles it, with the reference plugin's format and lock. KEY is the attachment's index key:
# each address file DIR/IP has an index entry DIR/.cnish-owner-KEY.IP, a hard link to it (an entry
# that is not, a leftover, does not count).
#   reserve DIR IP CID IFNAME SET KEY
#       create DIR/IP holding "CID\r\nIFNAME" (fails if it exists), its index entry, and record
#       IP in DIR/last_reserved_ip.SET
#   release-ip DIR IP CID IFNAME SET PREV KEY
#       remove DIR/IP and its index entry if they hold this attachment; if
#       last_reserved_ip.SET still names IP, restore PREV (or remove the file when PREV is empty)
#   release DIR CID IFNAME KEY    remove every file holding this attachment (legacy files
#                                 holding only CID when there is none)
#   prune DIR                     remove index entries that are not a link to their address,
#                                 and temporary files killed writers left
#   check DIR IP CID IFNAME       true when DIR/IP holds this attachment
# The store's lock is waited for at most this long, as cnish does (store.LOCK_WAIT).
CNISH_STORE_WAIT=30
# Write DIR/last_reserved_ip.SET as cnish does: a new file (never one already there, nor a
# symlink's target) renamed over the old name.
_cnish_store_last() {
  local tmp=$1/.cnish-tmp-last-$$
  rm -f -- "$tmp"
  (set -o noclobber; printf '%s' "$3" >"$tmp") && mv -f -T -- "$tmp" "$1/last_reserved_ip.$2"
}

cnish-store() {
  local op=$1 dir=$2 fd status=0 old_umask real
  shift 2
  if [[ -L $dir ]]; then
    printf 'cnish-store: refusing to use %s: it is a symlink\n' "$dir" >&2
    return 1
  fi
  if [[ ! -d $dir ]]; then
    [[ $op != check ]] || return 1            # nothing is held here
    [[ $op == reserve ]] || return 0          # nothing was ever reserved here
    # (not in a directory another user could swap: the nearest one there is is checked)
    local above=$dir
    while [[ ! -e $above && $above == /* && $above != / ]]; do above=$(dirname -- "$above"); done
    if ! cnish-trusted-dir "$above" above >/dev/null; then
      printf 'cnish-store: refusing to make %s: another user could swap its files\n' "$dir" >&2
      return 1
    fi
    mkdir -p -- "$dir" && chmod 0755 -- "$dir"
  fi
  # as cnish: a store another user could swap a file of, or it, is not used
  if ! real=$(cnish-trusted-dir "$dir"); then
    printf 'cnish-store: refusing to use %s: another user could swap its files\n' "$dir" >&2
    return 1
  fi
  if [[ $real != /?* ]]; then       # (bash cannot always say why: with no descriptor left for
    printf 'cnish-store: cannot look at IPAM store %s\n' "$dir" >&2   # its pipe, $(...) is
    return 1                        # empty, and status 0: the store would be / itself)
  fi
  dir=$real
  if [[ $op == check ]]; then
    [[ ! -L $dir/$1 && -f $dir/$1 ]] || return 1
    local content
    content=$(<"$dir/$1")
    [[ $content == "$2"$'\r\n'"$3" || $content == "$2" ]]
    return $?             # (explicit: a bare return in a trap returns the trap's cause)
  fi
  if [[ -L $dir/lock ]]; then                  # as cnish: never write through a symlink
    printf 'cnish-store: refusing to use %s/lock: it is a symlink\n' "$dir" >&2
    return 1
  fi
  old_umask=$(umask)
  umask 077
  # (as cnish: a store whose lock file cannot be opened, with no descriptor left, say, fails
  # the step, and so does a lock another process holds for CNISH_STORE_WAIT seconds; an
  # flock that fails otherwise, a BusyBox one without -w say, is reported and the step goes
  # on, as the attachment's lock does, cnish-lock)
  if ! exec {fd}>>"$dir/lock"; then
    umask "$old_umask"
    printf 'cnish-store: cannot open the lock of IPAM store %s\n' "$dir" >&2
    return 1
  fi
  flock -w "$CNISH_STORE_WAIT" -E 75 "$fd" || status=$?
  if (( status == 75 )); then
    exec {fd}>&-
    umask "$old_umask"
    printf 'cnish-store: the lock of IPAM store %s has been held by another process for %s s\n' \
      "$dir" "$CNISH_STORE_WAIT" >&2
    return 1
  elif (( status != 0 )); then
    printf 'cnish-store: flock failed: IPAM store %s is not locked\n' "$dir" >&2
    status=0
  fi
  case $op in
    reserve)
      if (set -o noclobber; printf '%s\r\n%s' "$2" "$3" >"$dir/$1") 2>/dev/null; then
        ln -f -- "$dir/$1" "$dir/.cnish-owner-$5.$1"
        _cnish_store_last "$dir" "$4" "$1"
      else
        printf 'cnish-store: %s is already reserved in %s: File exists\n' "$1" "$dir" >&2
        status=1
      fi
      ;;
    release-ip)
      rm -f -- "$dir/.cnish-owner-$6.$1"
      if [[ ! -L $dir/$1 && -f $dir/$1 ]]; then
        local content
        if ! content=$(<"$dir/$1"); then
          if [[ -e $dir/$1 ]]; then            # (there but unreadable: the host's trouble,
            printf 'cnish-store: cannot read %s in %s\n' "$1" "$dir" >&2    # as in cnish)
            status=1
          fi
        elif [[ $content == "$2"$'\r\n'"$3" || $content == "$2" ]]; then
          rm -f -- "$dir/$1"
          if [[ -f $dir/last_reserved_ip.$4 && $(<"$dir/last_reserved_ip.$4") == "$1" ]]; then
            if [[ -n $5 ]]; then _cnish_store_last "$dir" "$4" "$5"
            else rm -f -- "$dir/last_reserved_ip.$4"; fi
          fi
        fi
      fi
      ;;
    release)
      local f content found=0 match
      for match in "$1"$'\r\n'"$2" "$1"; do       # exact owner first, then legacy id-only files
        for f in "$dir"/*; do
          # only files named like an address are reservations (not lock, last_reserved_ip.N)
          # (an IPv4 address: four dotted numbers; an IPv6 one: hex digits and colons)
          [[ ${f##*/} =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}$ ||
             ( ${f##*/} == *:* && ${f##*/} != *[!0-9a-fA-F.:]* ) ]] || continue
          [[ ! -L $f && -f $f ]] || continue
          if ! content=$(<"$f"); then
            [[ -e $f ]] || continue                # (gone: a parallel release)
            printf 'cnish-store: cannot read %s\n' "$f" >&2   # (the host's trouble, as cnish)
            status=1
            continue
          fi
          if [[ $content == "$match" ]]; then rm -f -- "$f"; found=1; fi
        done
        (( found )) && break
      done
      rm -f -- "$dir/.cnish-owner-$3".*
      ;;
    prune)
      local f ip
      rm -f -- "$dir"/.cnish-tmp-*               # killed writers' (we hold the lock)
      for f in "$dir"/.cnish-owner-*; do
        [[ ! -L $f && -f $f ]] || continue
        ip=${f##*/.cnish-owner-????????????????.}
        if [[ -L $dir/$ip || ! $f -ef $dir/$ip ]]; then rm -f -- "$f"; fi
      done
      ;;
  esac
  exec {fd}>&-
  umask "$old_umask"
  return "$status"
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
cnish-lock 32ddcdbc81737749.lock

# ---------------------------------------------------------------------------------------------

# Step 1/30 [reserve[0]] reserve 10.15.0.2 for ctr1/eth0 in /nonexistent/cnish-golden/vlannet
#   why:  the file is created exclusively, so two ADDs can never hold the same address
#   undo: cnish-store release-ip /nonexistent/cnish-golden/vlannet 10.15.0.2 ctr1 eth0 0 '' 608c92e125bbee99
undo_1() { undo cnish-store release-ip /nonexistent/cnish-golden/vlannet 10.15.0.2 ctr1 eth0 0 '' 608c92e125bbee99; }
run 1 strict -- cnish-store reserve /nonexistent/cnish-golden/vlannet 10.15.0.2 ctr1 eth0 0 608c92e125bbee99

# Step 2/30 [new-attachment] verify that veth32ddcdbc817 does not exist: eth0 of this container is not attached to this network already
#   why:  before anything that names the attachment (the MAC spoof check's chains and rules, the masquerade rules, which cnish starts alongside the first command): an ADD repeated for an attachment that exists would otherwise fail only at the veth, and its rollback would delete what the existing attachment uses; a check in-process, no command
run 2 strict -- test '!' -e /sys/class/net/veth32ddcdbc817

# Step 3/30 [bridge] lesson step 2: create the bridge golden5 unless it exists
#   why:  the bridge is shared by every container of the network, so neither rollback nor DEL removes it; a bridge created by a parallel ADD in the meantime is fine. The probe looks for the bridge's own sysfs directory, which the kernel adds after the link's: a bridge that a parallel ADD is still creating counts as missing, and `ip link add` then waits for that creation to finish and answers "File exists"
#   undo: none, shared with other attachments
if ! test -d /sys/class/net/golden5/bridge 2>/dev/null; then
  run 3 exists-ok -- ip link add name golden5 address 9a:8c:75:a5:06:e1 type bridge vlan_filtering 1
fi

# Step 4/30 [bridge-is-bridge] verify that golden5 is a bridge
#   why:  an existing link of that name that is not a bridge would otherwise receive the container's veth
run 4 strict -- test -d /sys/class/net/golden5/bridge

# Step 5/30 [bridge-mac] pin the MAC address of golden5 to 9a:8c:75:a5:06:e1 unless it is set already
#   why:  a bridge whose MAC was never set takes the lowest MAC of its ports, which changes as containers come and go, and the containers keep the gateway's old MAC until they ask again (seconds without a gateway); cnish sets it when it creates the bridge, and pins an existing bridge's current MAC (one made by hand or by another tool), as the reference does with isGateway. The probe reads the kernel's addr_assign_type (3: set)
#   undo: none, shared with other attachments
if ! grep -qxF 3 /sys/class/net/golden5/addr_assign_type 2>/dev/null; then
  run 5 strict -- ip link set dev golden5 address 9a:8c:75:a5:06:e1
fi

# Step 6/30 [bridge-vlan-filtering] make the bridge golden5 forward by VLAN
#   why:  vlan, vlanTrunk: a bridge that does not filter VLANs ignores its ports' VLANs, so every container would see every other's frames. A bridge made before without filtering gets it too (the reference leaves it as it is): its ports keep the default VLAN the kernel gave them, so their untagged traffic goes on as before
#   undo: none, shared with other attachments
if ! grep -qxF 1 /sys/class/net/golden5/bridge/vlan_filtering 2>/dev/null; then
  run 6 strict -- ip link set dev golden5 type bridge vlan_filtering 1
fi

# Step 7/30 [bridge-up] bring the bridge golden5 up
#   undo: none, shared with other attachments
run 7 strict -- ip link set dev golden5 up

# Step 8/30 [veth] lesson steps 3-4: create the veth pair veth32ddcdbc817 (host) / eth0 (inside /var/run/netns/cnish-test)
#   why:  the container end is created directly inside the namespace, so it never appears on the host under the container's interface name
#   undo: ip link del dev veth32ddcdbc817
undo_8() { undo ip link del dev veth32ddcdbc817; }
run 8 strict -- ip link add name veth32ddcdbc817 address fe:f5:19:0f:99:44 type veth peer name eth0 address ba:8e:23:08:a3:fe netns /var/run/netns/cnish-test

# Step 9/30 [label] label veth32ddcdbc817 with its attachment (cnish/vlannet/ctr1/eth0)
#   why:  GC recognises the host ends of attachments it must remove by this label; operators see whose veth it is
#   undo: none of its own, undone with step "veth"
run 9 strict -- ip link set dev veth32ddcdbc817 alias cnish/vlannet/ctr1/eth0

# Step 10/30 [attach] lesson step 5: attach veth32ddcdbc817 to the bridge golden5
#   undo: none of its own, undone with step "veth"
run 10 strict -- ip link set dev veth32ddcdbc817 master golden5

# Step 11/30 [vlan-clear] remove the VLANs the kernel gave the new bridge port veth32ddcdbc817 (the bridge's default VLAN)
#   why:  otherwise the container would be in the bridge's default VLAN (1) too and receive its untagged traffic; preserveDefaultVlan keeps it. The port is not up yet: no frame has passed
#   undo: none of its own, undone with step "veth"
run 11 strict -- bridge vlan del dev veth32ddcdbc817 vid 1-4094

# Step 12/30 [vlan-trunk[0]] let the bridge port veth32ddcdbc817 carry VLAN 200-202, tagged (vlanTrunk)
#   why:  added before the untagged VLAN, so that a trunk that names the untagged VLAN too does not turn it back into a tagged one
#   undo: none of its own, undone with step "veth"
run 12 strict -- bridge vlan add dev veth32ddcdbc817 vid 200-202

# Step 13/30 [vlan-trunk[1]] let the bridge port veth32ddcdbc817 carry VLAN 300, tagged (vlanTrunk)
#   why:  added before the untagged VLAN, so that a trunk that names the untagged VLAN too does not turn it back into a tagged one
#   undo: none of its own, undone with step "veth"
run 13 strict -- bridge vlan add dev veth32ddcdbc817 vid 300

# Step 14/30 [vlan-access] make VLAN 100 the untagged VLAN of the bridge port veth32ddcdbc817
#   why:  the container's untagged frames enter this VLAN, and this VLAN's frames reach it untagged
#   undo: none of its own, undone with step "veth"
run 14 strict -- bridge vlan add dev veth32ddcdbc817 vid 100 pvid untagged

# Step 15/30 [host-up] lesson step 7: bring veth32ddcdbc817 up
#   undo: none of its own, undone with step "veth"
run 15 strict -- ip link set dev veth32ddcdbc817 up

# Step 16/30 [vlan-gateway.link] create golden5.100, the link of the gateway addresses in VLAN 100, and its bridge port vethe8d0fac6a45
#   undo: none, shared with other attachments
run 16 exists-ok -- ip link add name golden5.100 address 96:04:fe:fc:7d:a3 type veth peer name vethe8d0fac6a45

# Step 17/30 [vlan-gateway.attach] attach vethe8d0fac6a45 to the bridge golden5
#   undo: none, shared with other attachments
run 17 strict -- ip link set dev vethe8d0fac6a45 master golden5

# Step 18/30 [vlan-gateway.vlan-clear] remove the bridge's default VLAN from the port vethe8d0fac6a45
#   undo: none, shared with other attachments
run 18 strict -- bridge vlan del dev vethe8d0fac6a45 vid 1-4094

# Step 19/30 [vlan-gateway.vlan] make vethe8d0fac6a45 an access port of VLAN 100
#   undo: none, shared with other attachments
run 19 strict -- bridge vlan add dev vethe8d0fac6a45 vid 100 pvid untagged

# Step 20/30 [vlan-gateway.port-up] bring vethe8d0fac6a45 up
#   undo: none, shared with other attachments
run 20 strict -- ip link set dev vethe8d0fac6a45 up

# Step 21/30 [vlan-gateway.no-ra] make golden5.100 ignore IPv6 router advertisements
#   why:  as the bridge (CVE-2020-10749): a container of the VLAN must not become the host's IPv6 router; tolerated on hosts without IPv6
#   undo: none, shared with other attachments
run 21 missing-ok -- sysctl -q -w net/ipv6/conf/golden5.100/accept_ra=0

# Step 22/30 [vlan-gateway.up] bring golden5.100 up
#   why:  last: once it is up, later ADDs take the gateway link as made
#   undo: none, shared with other attachments
run 22 strict -- ip link set dev golden5.100 up

# Step 23/30 [gateway[0]] give golden5.100 the gateway address 10.15.0.1/24
#   why:  isGateway: the VLAN's gateway link is the containers' next hop; `replace` makes this idempotent for the second and later containers
#   undo: none, shared with other attachments
run 23 strict -- ip addr replace 10.15.0.1/24 dev golden5.100 brd +

# Step 24/30 [forward-ipv4] enable IPv4 forwarding on the host
#   why:  a gateway forwards; host-wide and shared, never turned off again
#   undo: none, shared with other attachments
if ! grep -qxF 1 /proc/sys/net/ipv4/ip_forward 2>/dev/null; then
  run 24 strict -- sysctl -q -w net/ipv4/ip_forward=1
fi

# Step 25/30 [bridge-no-ra] make the bridge golden5 ignore IPv6 router advertisements
#   why:  otherwise a container could announce itself as the host's IPv6 router; skipped when already set, tolerated on hosts without IPv6
#   undo: none, shared with other attachments
if ! grep -qxF 0 /proc/sys/net/ipv6/conf/golden5/accept_ra 2>/dev/null; then
  run 25 missing-ok -- sysctl -q -w net/ipv6/conf/golden5/accept_ra=0
fi

# Step 26/30 [arp-notify] announce eth0's address with a gratuitous ARP when it comes up (arp_notify)
#   why:  a reused address gets a new MAC; neighbours learn it at once instead of after their ARP entry expires (with IPAM's addresses, as the reference: an interface without them keeps the kernel's settings)
#   undo: none of its own, undone with step "veth"
run 26 strict -- nsenter --net=/var/run/netns/cnish-test sysctl -q -w net/ipv4/conf/eth0/arp_notify=1

# Step 27/30 [no-dad] skip duplicate address detection on eth0
#   why:  IPAM guarantees the address is unique; DAD would keep it unusable for a second or more (set for IPv4-only networks too, like the reference, for addresses added later; tolerated when the kernel has no IPv6). Not without IPAM: the addresses then come from SLAAC or by hand, and only DAD finds their duplicates (a configs audit)
#   undo: none of its own, undone with step "veth"
run 27 missing-ok -- nsenter --net=/var/run/netns/cnish-test sysctl -q -w net/ipv6/conf/eth0/accept_dad=0

# Step 28/30 [no-router-advertisements] ignore IPv6 router advertisements on eth0 (accept_ra=0)
#   why:  IPAM gives the container its addresses and routes: another container on the bridge could otherwise give it an IPv6 address and default route with one router advertisement (the reference guards only the host's side); nor does it send router solicitations, which the bridge floods to every port (set for IPv4-only networks too; acceptRA: true keeps the kernel's default; tolerated when the kernel has no IPv6)
#   undo: none of its own, undone with step "veth"
run 28 missing-ok -- nsenter --net=/var/run/netns/cnish-test sysctl -q -w net/ipv6/conf/eth0/accept_ra=0

# Step 29/30 [address[0]] lesson step 6: assign 10.15.0.2/24 to eth0
#   undo: none of its own, undone with step "veth"
run 29 strict -- nsenter --net=/var/run/netns/cnish-test ip addr add 10.15.0.2/24 dev eth0 brd +

# Step 30/30 [container-up] lesson step 7: bring eth0 up inside the container
#   undo: none of its own, undone with step "veth"
run 30 strict -- nsenter --net=/var/run/netns/cnish-test ip link set dev eth0 up

# ---------------------------------------------------------------------------------------------
trap - EXIT
cnish-unlock
# The CNI result cnish would print:
cat <<'CNISH_RESULT'
{
  "cniVersion": "1.0.0",
  "interfaces": [
    {
      "name": "golden5",
      "mac": "9a:8c:75:a5:06:e1"
    },
    {
      "name": "veth32ddcdbc817",
      "mac": "fe:f5:19:0f:99:44"
    },
    {
      "name": "eth0",
      "mac": "ba:8e:23:08:a3:fe",
      "sandbox": "/var/run/netns/cnish-test"
    },
    {
      "name": "golden5.100",
      "mac": "96:04:fe:fc:7d:a3"
    }
  ],
  "ips": [
    {
      "address": "10.15.0.2/24",
      "gateway": "10.15.0.1",
      "interface": 2
    }
  ]
}
CNISH_RESULT
