# cnish-foreign-veth NETNS IFNAME HOSTVETH MASTER: DEL asks this before it deletes the container's
# IFNAME, as cnish does (cnish/natives.py). Exit 0 (leave it alone) when IFNAME inside NETNS is
# missing or is not this attachment's: not a veth, its peer not in another namespace, or not a
# veth here that names IFNAME's ifindex back, its peer another cnish attachment's host end
# ("veth" + 11 hex digits, not HOSTVETH), or its peer, not HOSTVETH, a port of another bridge
# than MASTER ("": of any; "*": of none). Exit 1 (delete it) when its peer here is HOSTVETH, a
# port of MASTER or of nothing (a pair the reference plugin made has a random host name; its
# bridge may be gone), and when that cannot be found out: the deletion then runs and says why.
# It reads `ip -j` (JSON: a quote inside a name or an alias is escaped, so `{"ifindex":` and
# `"master":"` can only be ip's own).
cnish-foreign-veth() {
  local inside all host index peer name='' master=''
  if ! inside=$(nsenter --net="$1" ip -j -d link show dev "$2" 2>&1); then
    [[ $inside == *'does not exist'* ]] && return 0
    return 1
  fi
  [[ $inside =~ ^\[\{\"ifindex\":([0-9]+),\"link_index\":([0-9]+), ]] || return 0
  index=${BASH_REMATCH[1]} peer=${BASH_REMATCH[2]}
  [[ $inside == *'"link_netnsid":'* && $inside == *'"linkinfo":{"info_kind":"veth"'* ]] || return 0
  all=$(ip -j -d link show) || return 1
  # one link per line (a node's thousands of links are too much for bash's own matching)
  host=$(sed 's/},{"ifindex":/}\n{"ifindex":/g' <<<"$all" | grep -F "{\"ifindex\":$peer,") \
    || return 0
  [[ $host == *"{\"ifindex\":$peer,\"link_index\":$index,"* && $host == *'"link_netnsid":'* \
     && $host == *'"linkinfo":{"info_kind":"veth"'* ]] || return 0
  [[ $host =~ \"ifname\":\"(([^\"\\]|\\.)*)\" ]] && name=${BASH_REMATCH[1]}
  [[ $name == "$3" ]] && return 1
  [[ $name =~ ^veth[0-9a-f]{11}$ ]] && return 0
  [[ $host =~ ,\"master\":\"(([^\"\\]|\\.)*)\" ]] && master=${BASH_REMATCH[1]}
  [[ -z $master || $master == "$4" || $4 == '*' ]] && return 1
  return 0
}
