# cnish-delegate COMMAND PLUGIN: run a delegated IPAM plugin as cnish does — the invocation's
# CNI_* environment (set at the top of this script) and the network config on stdin; and
# CNISH_IPAM_OF, the main plugin's type, which makes a cnish launcher under another name
# refuse to serve a main plugin instead of delegating to itself again (plugins/__init__.py).
cnish-delegate() {
  CNI_COMMAND=$1 CNI_CONTAINERID=$CNISH_CONTAINERID CNI_NETNS=$CNISH_NETNS \
    CNI_IFNAME=$CNISH_IFNAME CNI_ARGS=$CNISH_ARGS CNI_PATH=$CNISH_PATH \
    CNISH_IPAM_OF=$CNISH_IPAM_OF "$2" <<<"$CNISH_CONFIG"
}
