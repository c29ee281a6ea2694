# cnish-chain-used 4|6 TABLE CHAIN: true when a rule of TABLE jumps to CHAIN (the header of
# `iptables -n -L CHAIN` counts its references), as cnish checks it (cnish/natives.py); false
# when none does or there is no such chain.
cnish-chain-used() {
  local tool=iptables listed
  if [[ $1 == 6 ]]; then tool=ip6tables; fi
  listed=$("$tool" -w -t "$2" -n -L "$3" 2>/dev/null) || return 1
  listed=${listed%%$'\n'*}
  [[ $listed != *"(0 references)" ]]
}
