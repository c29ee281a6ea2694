#!/usr/bin/env bash
# cnish CHECK plan (dry run: nothing was changed)
#
#   cnish          0.1.0
#   command        CHECK
#   network        ptpnet (plugin ptp, cniVersion 1.0.0)
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

# ---------------------------------------------------------------------------------------------

# Check of ADD step 1 [reserve[0]] reserve 10.20.0.2 for ctr1/eth0 in /nonexistent/cnish-golden/ptpnet
#   why:  the file is created exclusively, so two ADDs can never hold the same address
check 1 status '' -- cnish-store check /nonexistent/cnish-golden/ptpnet 10.20.0.2 ctr1 eth0

# Check of ADD step 2 [reserve[1]] reserve fd20::2 for ctr1/eth0 in /nonexistent/cnish-golden/ptpnet
#   why:  the file is created exclusively, so two ADDs can never hold the same address
check 2 status '' -- cnish-store check /nonexistent/cnish-golden/ptpnet fd20::2 ctr1 eth0

# Check of ADD step 4 [veth] create the veth pair veth106fd44ef41 (host) / eth0 (inside /var/run/netns/cnish-test)
check 4 status '' -- test -e /sys/class/net/veth106fd44ef41

# Check of ADD step 6 [host-no-ra] make veth106fd44ef41 ignore IPv6 router advertisements
#   why:  the host end of a ptp pair is a routed interface of the host: a container could otherwise announce itself as the host's IPv6 router (routes, a SLAAC address); set before the link comes up, tolerated on hosts without IPv6
check 6 status '' -- grep -qxF 0 /proc/sys/net/ipv6/conf/veth106fd44ef41/accept_ra

# Check of ADD step 7 [host-up] bring veth106fd44ef41 up
check 7 status '' -- grep -qxF 1 /sys/class/net/veth106fd44ef41/carrier

# Check of ADD step 8 [host-gateway[0]] give veth106fd44ef41 the gateway address 10.20.0.1/32
#   why:  the container's next hop is the host end of its own veth
check 8 output '' -- ip -o addr show dev veth106fd44ef41 to 10.20.0.1

# Check of ADD step 9 [host-gateway[1]] give veth106fd44ef41 the gateway address fd20::1/128
#   why:  the container's next hop is the host end of its own veth
check 9 output '' -- ip -o addr show dev veth106fd44ef41 to fd20::1

# Check of ADD step 10 [host-route[0]] route 10.20.0.2/32 to the container through veth106fd44ef41
check 10 output '' -- ip -4 -o route show exact 10.20.0.2/32 type unicast via 0.0.0.0 dev veth106fd44ef41

# Check of ADD step 11 [host-route[1]] route fd20::2/128 to the container through veth106fd44ef41
check 11 output '' -- ip -6 -o route show exact fd20::2/128 type unicast via :: dev veth106fd44ef41

# Check of ADD step 12 [forward-ipv4] enable IPv4 forwarding on the host
#   why:  the host routes the container's traffic; host-wide and shared, never turned off again, so it comes after the veth pair: an ADD refused there (the container has the name already) leaves it as it was
check 12 status '' -- grep -qxF 1 /proc/sys/net/ipv4/ip_forward

# Check of ADD step 13 [forward-ipv6] enable IPv6 forwarding on the host
check 13 status '' -- grep -qxF 1 /proc/sys/net/ipv6/conf/all/forwarding

# Check of ADD step 19 [address[0]] lesson step 6: assign 10.20.0.2/24 to eth0
check 19 contains ' 10.20.0.2/24 ' -- nsenter --net=/var/run/netns/cnish-test ip -o addr show dev eth0 to 10.20.0.2

# Check of ADD step 20 [address[1]] lesson step 6: assign fd20::2/64 to eth0
check 20 contains ' fd20::2/64 ' -- nsenter --net=/var/run/netns/cnish-test ip -o addr show dev eth0 to fd20::2

# Check of ADD step 21 [container-up] lesson step 7: bring eth0 up inside the container
check 21 contains '"address":"4e:e1:72:8e:e8:b5"' -- nsenter --net=/var/run/netns/cnish-test ip -j link show dev eth0 up

# Check of ADD step 22 [route[0]] route 10.20.0.1/32 (scope link) through eth0
#   why:  prepend, like the reference: a container on several networks may already have a route to the same destination (a default route) through another interface
check 22 output '' -- nsenter --net=/var/run/netns/cnish-test ip -4 -o route show exact 10.20.0.1/32 type unicast via 0.0.0.0 dev eth0 scope link

# Check of ADD step 23 [route[1]] route 10.20.0.0/24 via 10.20.0.1 through eth0
#   why:  prepend, like the reference: a container on several networks may already have a route to the same destination (a default route) through another interface
check 23 output '' -- nsenter --net=/var/run/netns/cnish-test ip -4 -o route show exact 10.20.0.0/24 type unicast via 10.20.0.1 dev eth0

# Check of ADD step 24 [route[2]] route fd20::1/128 (scope link) through eth0
#   why:  prepend, like the reference: a container on several networks may already have a route to the same destination (a default route) through another interface
check 24 output '' -- nsenter --net=/var/run/netns/cnish-test ip -6 -o route show exact fd20::1/128 type unicast via :: dev eth0

# Check of ADD step 25 [route[3]] route fd20::/64 via fd20::1 through eth0
#   why:  prepend, like the reference: a container on several networks may already have a route to the same destination (a default route) through another interface
check 25 line 'via fd20::1 dev eth0 ' -- nsenter --net=/var/run/netns/cnish-test ip -6 -o route show exact fd20::/64 type unicast

# Check of ADD step 26 [route[4]] route 0.0.0.0/0 via 10.20.0.1 through eth0
#   why:  prepend, like the reference: a container on several networks may already have a route to the same destination (a default route) through another interface
check 26 output '' -- nsenter --net=/var/run/netns/cnish-test ip -4 -o route show exact 0.0.0.0/0 type unicast via 10.20.0.1 dev eth0

# Check of ADD step 28 [masquerade[0].accept[0]] do not masquerade traffic from the container to its own subnet 10.20.0.0/24
#   why:  inserted at the top, so that it comes before the masquerade rule also when another interface made the chain
check 28 status '' -- iptables -w -t nat -C CNI-341c64caf8d4656260708f60 -d 10.20.0.0/24 -m comment --comment 'name: "ptpnet" id: "ctr1"' -j ACCEPT

# Check of ADD step 29 [masquerade[0].masquerade] masquerade everything else the container sends, except multicast
check 29 status '' -- iptables -w -t nat -C CNI-341c64caf8d4656260708f60 '!' -d 224.0.0.0/4 -m comment --comment 'name: "ptpnet" id: "ctr1"' -j MASQUERADE

# Check of ADD step 30 [masquerade[0].jump[0]] send traffic from 10.20.0.2/32 through CNI-341c64caf8d4656260708f60
check 30 status '' -- iptables -w -t nat -C POSTROUTING -s 10.20.0.2/32 -m comment --comment 'name: "ptpnet" id: "ctr1"' -j CNI-341c64caf8d4656260708f60

# Check of ADD step 32 [masquerade[1].accept[0]] do not masquerade traffic from the container to its own subnet fd20::/64
#   why:  inserted at the top, so that it comes before the masquerade rule also when another interface made the chain
check 32 status '' -- ip6tables -w -t nat -C CNI-341c64caf8d4656260708f60 -d fd20::/64 -m comment --comment 'name: "ptpnet" id: "ctr1"' -j ACCEPT

# Check of ADD step 33 [masquerade[1].masquerade] masquerade everything else the container sends, except multicast
check 33 status '' -- ip6tables -w -t nat -C CNI-341c64caf8d4656260708f60 '!' -d ff00::/8 -m comment --comment 'name: "ptpnet" id: "ctr1"' -j MASQUERADE

# Check of ADD step 34 [masquerade[1].jump[0]] send traffic from fd20::2/128 through CNI-341c64caf8d4656260708f60
check 34 status '' -- ip6tables -w -t nat -C POSTROUTING -s fd20::2/128 -m comment --comment 'name: "ptpnet" id: "ctr1"' -j CNI-341c64caf8d4656260708f60

# ---------------------------------------------------------------------------------------------
if (( ${#FAILED[@]} )); then
  printf 'cnish: check failed (steps %s)\n' "${FAILED[*]}" >&2
  exit 1
fi
