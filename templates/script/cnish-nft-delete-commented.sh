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
