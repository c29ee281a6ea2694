#!/usr/bin/env bash
# cnish DEL plan (dry run: nothing was changed)
#
#   cnish          0.1.0
#   command        DEL
#   network        gwnet (plugin bridge, cniVersion 1.0.0)
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

# DEL is best effort: every step runs; failures are reported at the end.
FAILED=()

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

# cnish-chain-used 4|6 TABLE CHAIN [rules]: true when a rule of TABLE jumps to CHAIN (the header
# of `iptables -n -L CHAIN` counts its references) or, with `rules`, when CHAIN still holds rules
# (lines after the header and the column titles), as cnish checks it (cnish/natives.py); false
# otherwise or when there is no such chain.
cnish-chain-used() {
  local tool=iptables listed
  local -a lines
  if [[ $1 == 6 ]]; then tool=ip6tables; fi
  listed=$("$tool" -w -t "$2" -n -L "$3" 2>/dev/null) || return 1
  mapfile -t lines <<<"$listed"
  [[ ${lines[0]-} != *"(0 references)" ]] && return 0
  [[ ${4-} == rules ]] && (( ${#lines[@]} > 2 ))
}

# cnish-nft-delete-commented FAMILY TABLE CHAIN COMMENT [NEWEST-WITH]: delete the rules of an
# nftables chain that carry COMMENT, in one transaction, as cnish does (cnish/natives.py): nft
# deletes a rule only by its handle, so list the chain with handles first. With NEWEST-WITH,
# only the newest such rule (highest handle) whose listing contains that text. No such rule,
# chain or table, or no nft on this host: nothing to do.
cnish-nft-delete-commented() {
  local listed line handles=() argv=() handle newest=
  command -v nft >/dev/null || return 0
  if ! listed=$(nft -a list chain "$1" "$2" "$3" 2>&1); then
    [[ $listed == *"No such file or directory"* ]] && return 0
    printf '%s\n' "$listed" >&2
    return 1
  fi
  while IFS= read -r line; do
    if [[ $line == *"comment \"$4\" # handle "* && ( $# -lt 5 || $line == *"$5"* ) ]]; then
      handles+=("${line##*"comment \"$4\" # handle "}")
    fi
  done <<<"$listed"
  if (( $# >= 5 )); then
    for handle in "${handles[@]}"; do
      case $handle in ''|*[!0-9]*) continue ;; esac
      if [[ -z $newest ]] || (( handle > newest )); then newest=$handle; fi
    done
    handles=(${newest:+"$newest"})
  fi
  (( ${#handles[@]} )) || return 0
  for handle in "${handles[@]}"; do
    case $handle in ''|*[!0-9]*) continue ;; esac     # (they reach nft's argv)
    argv+=(delete rule "$1" "$2" "$3" handle "$handle" ';')
  done
  (( ${#argv[@]} )) || return 0
  unset 'argv[${#argv[@]}-1]'
  nft "${argv[@]}"
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
cnish-lock 977ff90b17e859f7.lock
trap cnish-unlock EXIT

# ---------------------------------------------------------------------------------------------

# Step 1/6 [host-link] delete the host end veth977ff90b17e if it is there (its peer in the container goes with it)
#   why:  first, by the name only this attachment has: the container's eth0 goes with it without being looked up. It also covers a namespace that is already gone from the filesystem but still alive
if ! test '!' -e /sys/class/net/veth977ff90b17e 2>/dev/null; then
  run 1 missing-ok -- ip link del dev veth977ff90b17e || { FAILED+=(1); KEEP_ADDRESSES=1; }
fi

# Step 2/6 [masquerade[0].jump[0]] stop sending traffic from 10.11.0.2/32 through CNI-51ecab9495c29c4cd56b6316
run 2 missing-ok -- iptables -w -t nat -D POSTROUTING -s 10.11.0.2/32 -m comment --comment 'name: "gwnet" id: "ctr1"' -j CNI-51ecab9495c29c4cd56b6316 || { FAILED+=(2); KEEP_ADDRESSES=1; }

# Step 3/6 [masquerade[0].flush] empty the masquerade chain CNI-51ecab9495c29c4cd56b6316 (IPv4) unless another interface of this container still uses it
#   why:  deleting the chain fails while a jump still uses it, and then the whole transaction is undone: the flush runs only together with the deletion, or after the probe found no jump
if ! cnish-chain-used 4 nat CNI-51ecab9495c29c4cd56b6316 2>/dev/null; then
  run 3 missing-ok -- iptables -w -t nat -F CNI-51ecab9495c29c4cd56b6316 || { FAILED+=(3); KEEP_ADDRESSES=1; }
fi

# Step 4/6 [masquerade[0].chain] delete the masquerade chain CNI-51ecab9495c29c4cd56b6316 (IPv4) unless another interface of this container still uses it
#   why:  unless the chain still holds rules, too: the flush above was skipped for another interface's jump, which that interface's DEL has removed since; that DEL, running now, empties and deletes the chain (deleting a chain with rules fails)
if ! cnish-chain-used 4 nat CNI-51ecab9495c29c4cd56b6316 rules 2>/dev/null; then
  run 4 missing-ok -- iptables -w -t nat -X CNI-51ecab9495c29c4cd56b6316 || { FAILED+=(4); KEEP_ADDRESSES=1; }
fi

# Step 5/6 [masquerade-nft] delete the nftables masquerade rules of this attachment (table inet cni_plugins_masquerade)
#   why:  also with ipMasqBackend iptables: an ADD made with the nftables backend, before the config changed, may have left rules there
run 5 missing-ok -- cnish-nft-delete-commented inet cni_plugins_masquerade masq_checks 'ba4fffc0627692f0-7883a6f9ce71eedb, net: gwnet, if: eth0, id: ctr1' || FAILED+=(5)

# Step 6/6 [release] release every address ctr1/eth0 holds in /nonexistent/cnish-golden/gwnet
# The interface may still hold the addresses if it could not be deleted: keep them reserved.
if [[ -z ${KEEP_ADDRESSES-} ]]; then
  run 6 missing-ok -- cnish-store release /nonexistent/cnish-golden/gwnet ctr1 eth0 608c92e125bbee99 || FAILED+=(6)
fi

# ---------------------------------------------------------------------------------------------
if (( ${#FAILED[@]} )); then
  printf 'cnish: could not remove everything (steps %s)\n' "${FAILED[*]}" >&2
  exit 1
fi
