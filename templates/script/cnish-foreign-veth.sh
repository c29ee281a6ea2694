# cnish-foreign-veth NETNS IFNAME HOSTVETH MASTER: DEL asks this before it deletes the container's
# IFNAME, as cnish does (cnish/natives.py). Exit 0 (leave it alone) when IFNAME inside NETNS is
# missing or is not this attachment's: not a veth, its peer not in this namespace (the peer's
# line here must name IFNAME's ifindex back), its peer another cnish attachment's host end
# ("veth" + 11 hex digits, not HOSTVETH), or its peer, not HOSTVETH, not a port of MASTER ("":
# of nothing). Exit 1 (delete it) when its peer here is HOSTVETH or such a port (a pair the
# reference plugin made has a random host name), and when IFNAME cannot be listed for another
# reason than its absence: the deletion then runs and says why.
cnish-foreign-veth() {
  local line index peer name master=''
  if ! line=$(nsenter --net="$1" ip -d -o link show dev "$2" 2>&1); then
    [[ $line == *'does not exist'* ]] && return 0
    return 1
  fi
  [[ $line =~ ^([0-9]+):\ [^:\ ]+@if([0-9]+): ]] || return 0
  index=${BASH_REMATCH[1]} peer=${BASH_REMATCH[2]}
  [[ $line == *'\    veth '* ]] || return 0
  line=$(ip -d -o link show | grep -m1 "^$peer: ") || return 0
  [[ $line =~ ^$peer:\ ([^:\ ]+)@if$index: && $line == *'\    veth '* ]] || return 0
  name=${BASH_REMATCH[1]}
  [[ $name == "$3" ]] && return 1
  [[ $name =~ ^veth[0-9a-f]{11}$ ]] && return 0
  [[ $line =~ \ master\ ([^\ ]+)\  ]] && master=${BASH_REMATCH[1]}
  [[ $master == "$4" ]] && return 1
  return 0
}
