# cnish-dad-wait NETNS IFNAME SECONDS: wait until no IPv6 address of IFNAME inside the namespace
# NETNS is tentative (duplicate address detection done), as cnish does (cnish/natives.py):
# /proc/net/if_inet6 lists each address with its flags (0x40 tentative, 0x08 dadfailed).
# Fails as soon as an address failed, or after SECONDS.
cnish-dad-wait() {
  local deadline=$((SECONDS + $3)) listed addr flags name tentative failed
  while :; do
    listed=$(nsenter --net="$1" cat /proc/net/if_inet6) || return 1
    tentative='' failed=''
    while read -r addr _ _ _ flags name; do
      [[ $name == "$2" ]] || continue
      if (( 16#$flags & 0x08 )); then
        failed+=" ${addr:0:4}:${addr:4:4}:${addr:8:4}:${addr:12:4}:${addr:16:4}:${addr:20:4}:${addr:24:4}:${addr:28:4}"
      elif (( 16#$flags & 0x40 )); then
        tentative=1
      fi
    done <<<"$listed"
    if [[ -n $failed ]]; then
      printf 'cnish-dad-wait: duplicate address detection failed on %s for%s\n' "$2" "$failed" >&2
      return 1
    fi
    [[ -z $tentative ]] && return 0
    if (( SECONDS >= deadline )); then
      printf 'cnish-dad-wait: addresses of %s still tentative after %s s\n' "$2" "$3" >&2
      return 1
    fi
    sleep 0.05
  done
}
