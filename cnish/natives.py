"""In-process equivalents of a few commands that plans use, with the commands' semantics.

- `test [!] -e|-d|-f PATH`: the coreutils test (exit 0 true, 1 false);
- `grep -qxF VALUE FILE`: 0 when a line of FILE equals VALUE, 1 when none does, 2 when FILE
  cannot be read; the sysctls of netlink.py (ip_forward, a device's accept_ra, ...) are asked
  through netlink rather than read from /proc/sys/net (same kernel value, constant cost);
- `cnish-store reserve|release-ip|release|check|prune ...`: the host-local store operations
  (store.py). The dry-run script defines a bash function of the same name
  (templates/script/cnish-store.sh) that does the same with flock and printf.
- `cnish-delegate COMMAND PLUGIN`: run a delegated IPAM plugin with the invocation's
  environment and config (plugins/delegate.py; templates/script/cnish-delegate.sh).
- `cnish-chain-used 4|6 TABLE CHAIN [rules]`: exit 0 when a rule of TABLE jumps to CHAIN (with
  `rules`: or when CHAIN still holds rules), 1 otherwise or when there is no such chain. It
  asks `iptables -n -L CHAIN`, whose header counts the chain's references (the one probe here
  that starts a process: iptables has no read-only command whose exit status answers it);
  templates/script/cnish-chain-used.sh does the same.
- `cnish-nft-delete-commented FAMILY TABLE CHAIN COMMENT`: delete the rules of an nftables
  chain that carry COMMENT, in one transaction; nothing to do (no such rule, chain or table)
  is success. nft deletes a rule only by its handle, which exists only once the rule does, so
  this lists the chain with handles (`nft -a list chain ...`) and then runs one
  `nft delete rule ... handle N ; ...`. With a fifth argument NEWEST-WITH, only the newest
  rule (highest handle) carrying COMMENT whose listing contains that text: the undo of one
  added rule, which leaves an identical older one alone (an ADD repeated for an attachment
  that exists adds its rule a second time, then fails and is undone). No `nft` on the host:
  nothing to do either (DEL runs this for both masquerade backends, plans/masquerade.toml). Whether the table exists is
  asked in-process first (netlink.py, NFT_MSG_GETTABLE: the question nft's listing asks the
  kernel, with the same answer), so a host without that table starts no nft at all;
  templates/script/cnish-nft-delete-commented.sh does the same with nft alone.
- `cnish-dad-wait NETNS IFNAME SECONDS`: wait until no IPv6 address of IFNAME inside NETNS is
  tentative (the kernel's duplicate address detection is done): 0 then, 1 as soon as one
  failed (dadfailed) or after SECONDS. It reads /proc/net/if_inet6 inside the namespace;
  templates/script/cnish-dad-wait.sh does the same through nsenter.
- `cnish-foreign-veth NETNS IFNAME HOSTVETH MASTER`: DEL's question before it deletes a
  container's interface by name: exit 0 when IFNAME inside NETNS is missing or is not this
  attachment's (not a veth whose peer is in another namespace; its peer not a veth here that
  names it back; its peer another cnish attachment's host end, shaped like HOSTVETH; or its
  peer, not named HOSTVETH, a port of another bridge than MASTER: "" for any, "*" for none),
  1 when it is (its peer here is HOSTVETH, or a port of MASTER or of nothing: a pair the
  reference plugin made, with a random host name, whose bridge may be gone) and when that
  cannot be found out (the deletion then runs, as it did before). It asks rtnetlink (netlink.link) inside NETNS
  and here; templates/script/cnish-foreign-veth.sh reads `ip -j -d link show`. Neither
  checks that the peer's namespace is NETNS itself, only that the two ifindexes match.
- `cnish-foreign-link NETNS IFNAME KIND LABEL`: the same question for a link cnish makes
  inside the container (macvlan, ipvlan, vlan, dummy), whose label ADD puts in its alias
  (names.link_label): exit 0 when IFNAME inside NETNS is missing, is not a KIND link, or
  carries another attachment's label; 1 when it is a KIND link with LABEL or with no cnish
  label (one the reference made, or cnish before it labelled them), and when that cannot be
  found out. templates/script/cnish-foreign-link.sh reads `ip -j -d link show`.

Anything else (or an unexpected argument shape) returns None and is executed for real: `test`
and `grep`; cnish's own commands, which exist only here and as the script's functions, fail
with exit status 2 and say why instead.
"""

import os

from cnish.errors import CNIError

# cnish's own commands: the dry-run script defines each as a bash function of the same name
# (templates/script/<name>.sh), in this order; `test` and `grep` are the real tools there.
SCRIPT_FUNCTIONS = ("cnish-store", "cnish-delegate", "cnish-chain-used",
                    "cnish-nft-delete-commented", "cnish-dad-wait", "cnish-foreign-veth",
                    "cnish-foreign-link")
NAMES = frozenset({"test", "grep", *SCRIPT_FUNCTIONS})

# Delegated IPAM plugins prepared by this process: plugin path -> run(command) (delegate.py).
DELEGATES = {}


def run(argv: tuple, execute=None):
    """(exit status, stdout, stderr), or None. `execute(argv)` runs a real command (the
    runner's run), for the natives that need one."""
    out = _run(argv, execute)
    if out is None and argv[0] in SCRIPT_FUNCTIONS:
        # cnish's own commands exist only here and as the dry-run script's functions: no
        # executable of that name is installed, so an exec would only say "not found"
        return 2, "", f"{argv[0]}: cannot run {' '.join(argv[1:])!r} in-process here\n"
    return out


def _run(argv: tuple, execute):
    tool = argv[0]
    if tool == "test":
        return _test(argv[1:])
    if tool == "grep" and len(argv) == 4 and argv[1] == "-qxF" and argv[2][:1] != "-" \
            and "\n" not in argv[2]:     # (grep reads those as options / several patterns)
        return _grep(argv[2], argv[3])
    if tool == "cnish-store":
        return _store(argv[1:])
    if tool == "cnish-delegate" and len(argv) == 3 and argv[2] in DELEGATES:
        return DELEGATES[argv[2]](argv[1])
    if tool == "cnish-chain-used" and argv[1:2] in (("4",), ("6",)) and execute \
            and (len(argv) == 4 or (len(argv) == 5 and argv[4] == "rules")):
        return _chain_used(execute, *argv[1:4], rules=len(argv) == 5)
    if tool == "cnish-nft-delete-commented" and len(argv) in (5, 6) and execute:
        return _nft_delete_commented(execute, *argv[1:])
    if tool == "cnish-dad-wait" and len(argv) == 4 and argv[3].isdigit():
        return _dad_wait(argv[1], argv[2], int(argv[3]))
    if tool == "cnish-foreign-veth" and len(argv) == 5:
        return _foreign_veth(*argv[1:])
    if tool == "cnish-foreign-link" and len(argv) == 5:
        return _foreign_link(*argv[1:])
    return None


def prepare(argv) -> None:
    """Import what run(argv) will import (Runner.prepare)."""
    if (argv[0] == "grep" and argv[-1].startswith("/proc/sys/net/")) \
            or argv[0] == "cnish-nft-delete-commented":
        from cnish import netlink   # noqa: F401


def _chain_used(execute, version, table, chain, rules=False):
    listed = execute(("iptables" if version == "4" else "ip6tables", "-w", "-t", table,
                      "-n", "-L", chain))
    if listed.returncode != 0:          # no such chain (or iptables failed: the step will say)
        return 1, "", ""
    lines = listed.stdout.splitlines()  # Chain NAME (N references), the columns, the rules
    if not lines or not lines[0].endswith("(0 references)"):
        return 0, "", ""
    return (0 if rules and len(lines) > 2 else 1), "", ""


def _nft_delete_commented(execute, family, table, chain, comment, newest_with=None):
    from cnish import netlink
    if netlink.nft_table_exists(family, table) is False:
        return 0, "", ""                # (nft's listing would say: no such file or directory)
    listed = execute(("nft", "-a", "list", "chain", family, table, chain))
    if listed.returncode == 127:        # no nft on this host: no nftables rules of its making
        return 0, "", ""
    if listed.returncode != 0:
        if "No such file or directory" in listed.stderr:      # no chain or table: no rule
            return 0, "", ""
        return listed.returncode, listed.stdout, listed.stderr
    marker = f'comment "{comment}" # handle '
    rules = [(line, line.rsplit(marker, 1)[1].strip()) for line in listed.stdout.splitlines()
             if marker in line]
    rules = [(line, h) for line, h in rules if h.isascii() and h.isdigit()]   # (nft's argv)
    handles = [h for line, h in rules]
    if newest_with is not None:         # only the newest rule (highest handle) that has it
        handles = sorted((h for line, h in rules if newest_with in line), key=int)[-1:]
    if not handles:
        return 0, "", ""
    argv = ["nft"]
    for handle in handles:
        argv += ["delete", "rule", family, table, chain, "handle", handle, ";"]
    deleted = execute(tuple(argv[:-1]))
    return deleted.returncode, deleted.stdout, deleted.stderr


# /proc/net/if_inet6 flags (linux/if_addr.h)
IFA_F_TENTATIVE, IFA_F_DADFAILED = 0x40, 0x08


def _dad_wait(path, ifname, seconds):
    import time
    from cnish import hostinfo, netns
    from cnish.runner import _own_netns_fd
    home = _own_netns_fd()
    if home is None:
        return 1, "", "cnish-dad-wait: cannot open this process's own network namespace\n"
    deadline = time.monotonic() + seconds
    while True:
        try:
            netns.enter(path)
        except OSError as exc:
            return 1, "", f"cnish-dad-wait: {path}: {exc.strerror}\n"
        try:
            entries = hostinfo.ipv6_entries(ifname)      # (no IPv6 in this kernel: none)
        finally:
            netns.leave(home)
        failed = [hostinfo.ipv6_text(address)
                  for address, _, _, flags in entries if flags & IFA_F_DADFAILED]
        if failed:
            return 1, "", (f"cnish-dad-wait: duplicate address detection failed on {ifname} "
                           f"for {' '.join(failed)}\n")
        if not any(flags & IFA_F_TENTATIVE for *_, flags in entries):
            return 0, "", ""
        if time.monotonic() >= deadline:
            return 1, "", f"cnish-dad-wait: addresses of {ifname} still tentative after {seconds} s\n"
        time.sleep(0.05)


def _link_inside(path, ifname):
    """netlink.link(ifname) inside the namespace at `path`; None when that cannot be asked."""
    from cnish import netlink, netns
    # Back to the namespace this runs in (the host's, or a test's host inside `nsenter`).
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            netns.enter(path)
        except OSError:
            return None                   # (the deletion runs, and says why it cannot)
        try:
            return netlink.link(ifname)
        finally:
            netns.leave(here)
    finally:
        os.close(here)


def _foreign(path, ifname, ours) -> tuple:
    """A cnish-foreign-* probe's outcome: exit 0 (leave it) when `ifname` inside the namespace
    at `path` is missing or `ours(link)` says it is not this attachment's; 1 (delete it) when
    it is, and when that cannot be found out (`ours` answers True when in doubt)."""
    inside = _link_inside(path, ifname)
    if inside is None:
        return 1, "", ""
    return (0 if inside is False or not ours(inside) else 1), "", ""


def _foreign_link(path, ifname, kind, label):
    from cnish import names
    return _foreign(path, ifname, lambda link: link.kind == kind and (
        link.alias == label or not link.alias.startswith(names.LINK_LABEL)))


def _foreign_veth(path, ifname, host_veth, master):
    from cnish import names, netlink

    def ours(inside) -> bool:
        if inside.kind != "veth" or inside.link_netnsid is None or not inside.link:
            return False                  # (a veth whose peer is in the container too)
        peer = netlink.link(index=inside.link)
        if peer is None:
            return True
        # The peer must be a veth here whose own peer, in another namespace, has the
        # container's link's ifindex (ifindexes are per namespace).
        if peer is False or peer.kind != "veth" or peer.link != inside.index \
                or peer.link_netnsid is None:
            return False
        if peer.name == host_veth:
            return True
        if names.is_host_veth(peer.name):
            return False                  # another cnish attachment's
        if not peer.master or master == "*":
            return True                   # (a port of no bridge: MASTER's, since deleted?)
        bridge = netlink.link(index=peer.master)
        return True if bridge is None else bridge is not False and bridge.name == master
    return _foreign(path, ifname, ours)


def _test(args):
    negate = False
    if args and args[0] == "!":
        negate, args = True, args[1:]
    if len(args) != 2 or args[0] not in ("-e", "-d", "-f"):
        return None
    op, path = args
    check = {"-e": os.path.exists, "-d": os.path.isdir, "-f": os.path.isfile}[op]
    return (0 if check(path) != negate else 1), "", ""


def _grep(value, path):
    if path.startswith("/proc/sys/net/"):
        # (the value through netlink: a /proc/sys/net lookup slows with the node's namespaces)
        from cnish import netlink
        current = netlink.read(path[len("/proc/sys/"):])
        if current is not None:
            return (0 if current == value else 1), "", ""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        return 2, "", f"grep: {path}: {exc.strerror}\n"
    return (0 if value in lines else 1), "", ""


def _store(args):
    from cnish.store import Store
    if len(args) < 2:
        return None
    op, directory, rest = args[0], args[1], args[2:]
    store = Store(os.path.dirname(directory), os.path.basename(directory))
    try:
        # The last argument of reserve, release-ip and release is the index key, which the
        # bash function needs; Store derives it itself from the container id and ifname.
        if op == "reserve" and len(rest) == 5:
            ip, cid, ifname, set_index, _key = rest
            if store.reserve(ip, cid, ifname, int(set_index)):
                return 0, "", ""
            return 1, "", f"cnish-store: {ip} is already reserved in {directory}: File exists\n"
        if op == "release-ip" and len(rest) == 6:
            ip, cid, ifname, set_index, previous, _key = rest
            store.release_ip(ip, cid, ifname, int(set_index), previous)
            return 0, "", ""
        if op == "release" and len(rest) == 3:
            store.release(rest[0], rest[1])
            return 0, "", ""
        if op == "prune" and not rest:
            store.prune()
            return 0, "", ""
        if op == "check" and len(rest) == 3:
            ip, cid, ifname = rest
            if store.held_by(ip, cid, ifname):
                return 0, "", ""
            return 1, "", f"cnish-store: {ip} is not reserved for {cid}/{ifname} in {directory}\n"
    except CNIError as exc:
        return 1, "", f"cnish-store: {exc}\n"
    return None
