# cnish-foreign-link NETNS IFNAME KIND LABEL: DEL asks this before it deletes the container's
# IFNAME, a link cnish makes there (macvlan, ipvlan, vlan, dummy), as cnish does
# (cnish/natives.py). Exit 0 (leave it alone) when IFNAME inside NETNS is missing, is not a
# KIND link, or carries another attachment's label (an alias "cnish#..." other than LABEL).
# Exit 1 (delete it) when it is a KIND link with LABEL or with no cnish label (made by the
# reference plugin, or by cnish before it labelled its links), and when IFNAME cannot be
# listed for another reason than its absence: the deletion then runs and says why.
cnish-foreign-link() {
  local line alias=''
  if ! line=$(nsenter --net="$1" ip -d -o link show dev "$2" 2>&1); then
    [[ $line == *'does not exist'* ]] && return 0
    return 1
  fi
  if [[ $line == *'\    alias '* ]]; then        # (last on the line: the alias itself may hold anything)
    alias=${line#*\\    alias }
    line=${line%%\\    alias *}
  fi
  [[ $line == *"\\    $3 "* ]] || return 0
  [[ $alias == cnish#* && $alias != "$4" ]] && return 0
  return 1
}
