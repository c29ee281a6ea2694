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
