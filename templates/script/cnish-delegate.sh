# cnish-delegate COMMAND PLUGIN: run a delegated IPAM plugin as cnish does — the invocation's
# CNI_* environment (set at the top of this script) and the network config on stdin.
cnish-delegate() {
  CNI_COMMAND=$1 CNI_CONTAINERID=$CNISH_CONTAINERID CNI_NETNS=$CNISH_NETNS \
    CNI_IFNAME=$CNISH_IFNAME CNI_ARGS=$CNISH_ARGS CNI_PATH=$CNISH_PATH "$2" <<<"$CNISH_CONFIG"
}
