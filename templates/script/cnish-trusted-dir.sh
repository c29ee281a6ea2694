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
