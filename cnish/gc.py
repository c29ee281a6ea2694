"""GC support: which attachments are still valid, and reading what stale ones left behind.

A GC request (spec 1.1.0) carries the attachments that are still valid in
`cni.dev/valid-attachments` (the spec's name since 2024) or `cni.dev/attachments` (the first
name, still sent by libcni). Everything of this network that belongs to another attachment is
stale: IP reservations, masquerade chains or rules (both backends, whatever the config's
ipMasqBackend: the config may have changed since), host veth ends, MAC spoof checks.
"""

import shlex

from cnish import jsonfast
from cnish.errors import invalid_config

KEYS = ("cni.dev/valid-attachments", "cni.dev/attachments")


def valid_attachments(raw: dict) -> set:
    """{(containerID, ifname)} from the request; a missing list means nothing is valid."""
    for key in KEYS:
        if key in raw:
            value = raw[key]
            if not isinstance(value, list):
                raise invalid_config(key, value, "must be a list of {containerID, ifname}")
            out = set()
            for i, item in enumerate(value):
                if not isinstance(item, dict) or not isinstance(item.get("containerID"), str) \
                        or not isinstance(item.get("ifname"), str):
                    raise invalid_config(f"{key}[{i}]", item,
                                         "must be an object with string containerID and ifname")
                out.add((item["containerID"], item["ifname"]))
            return out
    return set()


def _network_rules(save_output: str, network: str):
    """(chain, tokens, container id, jump target) of every rule in `iptables-save -t nat`
    output that carries `network`'s masquerade comment (the reference's wording). A comment
    cut at iptables' 255 characters (a long network name or container id) gives the start of
    the container id, ending in "…" (it can match no whole id: ids have no such character)."""
    from cnish.names import COMMENT_MAX
    prefix = f'name: "{network}" id: "'
    for line in save_output.splitlines():
        if not line.startswith("-A "):
            continue
        try:
            tokens = shlex.split(line)
        except ValueError:
            continue
        comment = tokens[tokens.index("--comment") + 1] if "--comment" in tokens else ""
        if not comment.startswith(prefix):
            continue
        if comment.endswith('"'):
            cid = comment[len(prefix):-1]
        elif len(comment) == COMMENT_MAX:
            cid = comment[len(prefix):] + "…"
        else:
            continue
        target = tokens[tokens.index("-j") + 1] if "-j" in tokens else ""
        yield tokens[1], tokens, cid, target


def _owned_by_valid(chain: str, cid: str, network: str, valid_cids: set) -> bool:
    """Is the chain a valid attachment's? A cut container id (ending in "…") is told apart by
    the chain's name, which hashes the whole id (names.masq_chain)."""
    from cnish.names import masq_chain
    if not cid.endswith("…"):
        return cid in valid_cids
    return any(masq_chain(network, valid) == chain for valid in valid_cids
               if valid.startswith(cid[:-1]))


def stale_chains(save_output: str, network: str, valid_cids: set) -> list:
    """Masquerade chains (reference naming) of `network` whose container id is not valid,
    with the exact POSTROUTING rules that jump to them, from `iptables-save -t nat`."""
    owner = {}          # chain -> container id, from the comment on its rules
    jumps = {}
    for chain, tokens, cid, target in _network_rules(save_output, network):
        if chain.startswith("CNI-"):
            owner[chain] = cid
        if chain == "POSTROUTING" and target.startswith("CNI-"):
            owner.setdefault(target, cid)
            jumps.setdefault(target, []).append(tokens[2:])
    return [{"chain": chain, "cid": cid, "jumps": jumps.get(chain, [])}
            for chain, cid in sorted(owner.items())
            if not _owned_by_valid(chain, cid, network, valid_cids)]


def stale_jumps(save_output: str, network: str, stale_sources: set) -> list:
    """POSTROUTING jumps (reference naming) of `network` that send traffic from an address of
    a stale interface to the chain its container's other, valid interfaces still use:
    `stale_sources` holds (container id, address) pairs (host-local's stale reservations)."""
    out = []
    for chain, tokens, cid, target in _network_rules(save_output, network):
        if chain != "POSTROUTING" or not target.startswith("CNI-") or "-s" not in tokens:
            continue
        source = tokens[tokens.index("-s") + 1].split("/")[0]
        if (cid, source) in stale_sources:
            out.append({"chain": target, "cid": cid, "source": source, "rule": tokens[2:]})
    return out


def stale_veths(link_json: str, network: str, valid: set) -> list:
    """Host veth ends labelled by cnish (names.veth_label) of stale attachments."""
    from cnish.names import label_attachment
    try:
        links = jsonfast.loads(link_json or "[]")
    except ValueError:
        return []
    out = []
    for link in links:
        found = label_attachment(link.get("ifalias") or "", network, valid)
        if found is not None and not found[2]:
            cid, ifname = found[0], found[1]
            key = f"{cid}/{ifname}" if cid is not None else ""      # "": not known whose
            out.append({"name": link.get("ifname"), "key": key,
                        "attachment": key or "(hashed label)"})
    return out


def stale_spoofchks(listing: str, network: str, valid: set) -> list:
    """bridge's MAC spoof checks (macspoofchk) of stale attachments of `network`, from
    `nft list table bridge nat`. A hook rule in PREROUTING names its attachment in its comment,
    "macspoofchk-<container id>-<ifname>", and matches the host veth by name: the attachment is
    this network's when that name is the one cnish derives from the network, container id and
    interface name (a container id may hold "-", so each split is tried). The chains do not
    name the network, and the reference's veths have random names: anything else is another
    network's, or the reference's, and is left alone."""
    from cnish.names import SPOOFCHK_COMMENT, host_veth, spoofchk
    out, seen = [], set()
    for line in listing.splitlines():
        words = line.split()
        comment = _nft_comment(line)
        if "iifname" not in words[:-1] or comment is None:
            continue
        veth = words[words.index("iifname") + 1].strip('"')
        if not comment.startswith(SPOOFCHK_COMMENT) or comment in seen:
            continue
        ref = comment[len(SPOOFCHK_COMMENT):]
        for at, char in enumerate(ref):
            if char == "-" and host_veth(network, ref[:at], ref[at + 1:]) == veth:
                cid, ifname = ref[:at], ref[at + 1:]
                if (cid, ifname) not in valid:
                    seen.add(comment)
                    out.append(dict(spoofchk(cid, ifname), cid=cid, ifname=ifname))
                break
    return out


def stale_masq_nft(listing: str, network: str, valid: set) -> list:
    """Comments of the nftables masquerade rules (ipMasqBackend "nftables") of stale
    attachments of `network`, from `nft list chain inet cni_plugins_masquerade masq_checks`:
    a rule's comment starts with the hash of its network, and is the one the valid
    attachments' rules would carry or it is stale (as the reference's GC decides)."""
    from cnish.names import masq_nft_comment, masq_nft_network
    mine = masq_nft_network(network)
    keep = {masq_nft_comment(network, cid, ifname) for cid, ifname in valid}
    out = []
    for line in listing.splitlines():
        comment = _nft_comment(line)
        if comment and comment.startswith(mine) and comment not in keep and comment not in out:
            out.append(comment)
    return out


def _nft_comment(line: str) -> str | None:
    """The comment of a rule in `nft list` output (`... comment "TEXT"`), or None."""
    _, marker, rest = line.partition(' comment "')
    return rest.partition('"')[0] if marker else None


def stale_owners(store, valid: set) -> list:
    """Owners (cid, ifname) of reservations in a host-local store that are not valid."""
    valid_cids = {cid for cid, _ in valid}
    owners = {}
    for name, content in store.entries():
        cid, _, ifname = content.strip().partition("\r\n")
        stale = (cid, ifname) not in valid if ifname else cid not in valid_cids
        if stale:
            owners.setdefault((cid, ifname), []).append(name)
    from cnish.store import owner_key
    return [{"cid": cid, "ifname": ifname, "key": owner_key(cid, ifname), "ips": ips}
            for (cid, ifname), ips in owners.items()]


def veth_plugin_values(op) -> dict:
    """GC's values for the veth plugins (bridge, ptp): the stale host veth ends, masquerade
    chains and reservations of this network (from the facts the recipes read)."""
    valid = op.valid_attachments
    cids = {cid for cid, _ in valid}
    ipam = op.ipam_gc()
    # addresses of stale interfaces whose containers still have a valid one (host-local)
    sources = {(owner["cid"], ip) for owner in ipam.get("stale", ())
               if owner["cid"] in cids for ip in owner.get("ips", ())}
    chains, jumps = [], []
    for version in (4, 6):
        saved = op.fact(f"nat-v{version}")
        if saved is not None and saved.returncode == 0:
            for chain in stale_chains(saved.stdout, op.name, cids):
                chains.append(dict(chain, version=version))
            for jump in stale_jumps(saved.stdout, op.name, sources) if sources else ():
                jumps.append(dict(jump, version=version))
    listed = op.fact("masq-nft") if op.runner.which("nft") else None
    masq_nft = (stale_masq_nft(listed.stdout, op.name, valid)
                if listed is not None and listed.returncode == 0 else [])
    links = op.fact("veths")
    veths = stale_veths(links.stdout, op.name, valid) if links and links.returncode == 0 else []
    return {"stale_veths": veths, "stale_chains": chains, "stale_jumps": jumps,
            "stale_masq_nft": masq_nft, "ipam": ipam}
