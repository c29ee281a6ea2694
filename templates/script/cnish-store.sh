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
