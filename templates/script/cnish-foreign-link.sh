# cnish-foreign-link NETNS IFNAME KIND LABEL: DEL asks this before it deletes the container's
# IFNAME, a link cnish makes there (macvlan, ipvlan, vlan, dummy), as cnish does
# (cnish/natives.py). Exit 0 (leave it alone) when IFNAME inside NETNS is missing, is not a
# KIND link, or carries another attachment's label (an alias "cnish#..." other than LABEL).
# Exit 1 (delete it) when it is a KIND link with LABEL or with no cnish label (made by the
# reference plugin, or by cnish before it labelled its links), and when IFNAME cannot be
# listed for another reason than its absence: the deletion then runs and says why.
# It reads `ip -j` (JSON: a quote inside the alias is escaped, so `"ifalias":"` is ip's own).
cnish-foreign-link() {
  local inside alias=''
  if ! inside=$(nsenter --net="$1" ip -j -d link show dev "$2" 2>&1); then
    [[ $inside == *'does not exist'* ]] && return 0
    return 1
  fi
  [[ $inside == *"\"linkinfo\":{\"info_kind\":\"$3\""* ]] || return 0
  [[ $inside =~ \"ifalias\":\"(([^\"\\]|\\.)*)\" ]] && alias=${BASH_REMATCH[1]}
  [[ $alias == cnish#* && $alias != "$4" ]] && return 0
  return 1
}
