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
