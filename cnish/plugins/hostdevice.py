"""The host-device plugin: an existing link of the host handed to the container
(containernetworking/plugins, plugins/main/host-device), given back on DEL.

The device is chosen by `device` (its name), `hwaddr`, `kernelpath` (its sysfs path) or
`pciBusID`, or by the runtime's `runtimeConfig.deviceID` (a PCI address or an auxiliary
device). ADD labels it with its original name (the link alias, as the reference does, so the
reference can give back what cnish took and the other way round), then moves and renames it
in one step (`ip link set DEV netns NS name IFNAME`). DEL moves it back under its original name
— and, unlike the reference, succeeds when the device is already back or the namespace gone,
and when repeated.

The runtime's own namespace, where the device returns, is passed to the commands that run
inside the container as /dev/fd/3: cnish (and the dry-run script, with `exec 3<`) keeps it
open on file descriptor 3 for them.
"""

import os

from cnish.errors import INVALID_CONFIG, TRY_AGAIN, CNIError, invalid_config, unsupported_field
from cnish.plugins import common
from cnish.validate import ifname_problem

TYPE = "host-device"
KIND = "interface"
CNI_ARGS = frozenset()
HOST_NETNS = "/dev/fd/3"
DPDK_DRIVERS = ("vfio-pci", "uio_pci_generic", "igb_uio")


def parse(f, op) -> dict:
    conf = {"device": f.ifname("device"), "hwaddr": f.mac("hwaddr"),
            "kernelpath": f.abspath("kernelpath"), "pciBusID": f.text("pciBusID")}
    device_id = (op.raw.get("runtimeConfig") or {}).get("deviceID")
    if device_id is not None and not isinstance(device_id, str):
        raise invalid_config("runtimeConfig.deviceID", device_id, "must be a string")
    for key, value in (("pciBusID", conf["pciBusID"]), ("runtimeConfig.deviceID", device_id)):
        if value is not None and ("/" in value or value in ("", ".", "..") or not value.isprintable()):
            raise invalid_config(key, value, "must be a PCI address such as 0000:03:00.0")
    if conf["kernelpath"] is not None and not conf["kernelpath"].startswith("/sys/devices/"):
        # (the reference's rule; a config could otherwise point cnish, as root, at any
        # directory and move whatever link name it finds in its net/ subdirectory)
        raise invalid_config("kernelpath", conf["kernelpath"], "must begin with /sys/devices/")
    conf["deviceID"] = device_id
    if op.command in ("ADD", "CHECK") and not any(conf[k] for k in
                                                  ("device", "hwaddr", "kernelpath", "pciBusID",
                                                   "deviceID")):
        raise invalid_config("device", None, 'specify either "device", "hwaddr", "kernelpath" '
                             'or "pciBusID" (or the runtime\'s deviceID)')
    return conf


def _single_net_dir(path: str, what: str) -> str:
    try:
        names = sorted(os.listdir(os.path.join(path, "net")))
    except OSError:
        driver = os.path.basename(os.path.realpath(os.path.join(path, "driver")))
        if driver in DPDK_DRIVERS:
            raise unsupported_field(what, f"{path} (bound to {driver}: DPDK mode)") from None
        raise CNIError(INVALID_CONFIG, f"{what}: no network device at {path}") from None
    if not names:
        raise CNIError(INVALID_CONFIG, f"{what}: no network device at {path}")
    if ifname_problem(names[0]) or not os.path.exists(f"/sys/class/net/{names[0]}"):
        raise CNIError(INVALID_CONFIG, f"{what}: no network device of this namespace at {path}")
    return names[0]


def find_device(op) -> str:
    """The host link this attachment takes, from whichever selector the config uses."""
    conf = op.conf
    if conf.device:
        if not os.path.exists(f"/sys/class/net/{conf.device}"):
            raise CNIError(INVALID_CONFIG, f"device {conf.device} not found",
                           "no link of that name in the host's namespace (lent to a container "
                           "already? a device is in one namespace at a time)")
        return conf.device
    if conf.hwaddr:
        # In ifindex order, as the reference looks: several links can share a MAC (a bridge
        # takes its first port's, a VLAN or macvlan passthru its master's), and the oldest is
        # the device itself, not the bridge made on top of it later.
        found = [name for name in os.listdir("/sys/class/net")
                 if (op.read_sys(f"/sys/class/net/{name}/address") or "").lower() == conf.hwaddr]
        if found:
            return min(found, key=lambda name: int(op.read_sys(f"/sys/class/net/{name}/ifindex")
                                                   or 1 << 31))
        raise CNIError(INVALID_CONFIG, f"no link with hwaddr {conf.hwaddr}")
    if conf.kernelpath:
        return _single_net_dir(conf.kernelpath, "kernelpath")
    pci = conf.deviceID or conf.pciBusID
    for bus in ("/sys/bus/pci/devices", "/sys/bus/auxiliary/devices"):
        if os.path.isdir(os.path.join(bus, pci)):
            return _single_net_dir(os.path.join(bus, pci), "pciBusID")
    raise CNIError(INVALID_CONFIG, f"device {pci} not found on the PCI or auxiliary bus")


def prepare(op) -> dict:
    if op.command == "GC":
        return {"ipam": op.ipam_gc()}            # (the valid attachments, checked by Operation)
    cid, ifname = op.runtime.container_id, op.runtime.ifname
    att = {"cid": cid, "ifname": ifname, "lent_as": ifname, "netns": op.runtime.netns, "device": "",
           "alias": "", "old_alias": "", "host_netns": HOST_NETNS, "container_mac": ""}
    if op.command == "ADD":
        device = find_device(op)
        common.require_free_ifname(op, f"{device} was left where it is, in the host's namespace")
        att["device"] = device
        att["alias"] = device           # the original name, as the reference records it
        att["old_alias"] = op.read_sys(f"/sys/class/net/{device}/ifalias") or ""
        att["container_mac"] = op.read_sys(f"/sys/class/net/{device}/address") or ""
        ipam_att, ipam_result = op.ipam_add()
        common.require_ips(op, ipam_result)
        op.ipam_result = ipam_result
        ips, routes = ipam_result.get("ips", []), ipam_result.get("routes", [])
    elif op.command == "CHECK":
        prev = common.prev_for_check(op)
        att["container_mac"] = common.container_mac(prev, ifname) or ""
        # (only for the messages: the device is in the container now, under CNI_IFNAME)
        att["device"] = op.conf.get("device") or "the device"
        mine = common.own_part(op, prev)
        ips, routes = mine["ips"], mine["routes"]
        ipam_att = op.ipam_check(ips)
    else:  # DEL: where is it now, and what was it called?
        ipam_att, held = op.ipam_del()
        att["netns"] = common.live_netns(att["netns"], op.runtime.ifname)
        if att["netns"] is not None:    # (gone: the kernel has given a real device back already)
            att["device"], att["lent_as"] = _lent_device(op, _was_lent(op, held))
        if att["device"] and op.read_sys(f"/sys/class/net/{att['device']}/ifindex"):
            # The kernel moves the device back under its container name and renames it after:
            # with its name taken, the rename would fail after the move and leave it in the
            # host as CNI_IFNAME, where no DEL finds it again. Nothing is done (its addresses
            # stay reserved); the runtime retries DEL.
            raise CNIError(TRY_AGAIN, f"cannot give {ifname} back as {att['device']}: another "
                           f"link of the host is named {att['device']} now",
                           "rename or delete that link, then DEL again; the device stays in "
                           "the container until then")
        ips, routes = common.ips_for_del(op, held), []
    att["returning"] = bool(att["device"]) and op.command == "DEL"
    att["unlabel"] = False
    if op.command == "DEL" and not att["device"]:
        att["device"] = _labelled_in_host(op)
        att["unlabel"] = bool(att["device"])
    common.container(op, att, ips, routes, link_step="move")
    att["ipam"] = ipam_att
    return att


def _labelled_in_host(op) -> str:
    """The device an ADD labelled but never moved (it was killed in between): still in the
    host, with its own name as its alias. DEL clears the label, so that nothing that only
    the killed ADD knew about remains."""
    conf = op.conf
    if not any(conf[k] for k in ("device", "hwaddr", "kernelpath", "pciBusID", "deviceID")):
        return ""
    try:
        device = find_device(op)
    except CNIError:
        return ""                   # not in the host either: nothing of ours to clear
    return device if op.read_sys(f"/sys/class/net/{device}/ifalias") == device else ""


def _was_lent(op, held: list) -> bool:
    """Did this attachment's ADD get as far as lending the device? Its result reports the
    container's interface (prevResult), or host-local holds addresses for it (ADD reserves
    them only after it has found the device). Without either, DEL does not look for the device
    under another name: the ADD may have been refused (the device was elsewhere, lent to
    another of the container's interfaces, say), and the link such a search finds is then
    another attachment's (a lifecycle audit's find). static's addresses are the config's, no
    record of an ADD."""
    if common.lists_container_interface(op.prev_result, op.runtime.ifname):
        return True
    return bool(held) and getattr(op.ipam_module, "RESERVES_PER_ATTACHMENT", False)


def _lent_device(op, was_lent: bool) -> tuple:
    """(the name the device had on the host, its name in the container now), or ("", "") when
    it is not in the container (given back already, or gone with a virtual device). Under
    another name only when the ADD lent it (`was_lent`)."""
    from cnish import jsonfast
    found = op.fact("container-link")
    if found is not None and found.returncode == 0:
        try:
            info = (jsonfast.loads(found.stdout or "[{}]") or [{}])[0]
        except ValueError:
            return "", ""
        if _lendable(info):
            if _marked_as_lent(op, info):
                return _original_name(op, info), op.runtime.ifname
            # Not marked as the device: another network's link, say, and this DEL the one
            # the runtime sends after an ADD refused because the container had CNI_IFNAME
            # already, or because the device was not found. Nothing was lent under that name;
            # the link is not ours to take (the device may still be there under another one).
    if not was_lent or _back_in_host(op):
        return "", ""                   # (or a repeated DEL, with links the container left)
    info = _renamed(op)
    if info is None:
        return "", ""
    return _original_name(op, info), info["ifname"]


def _lendable(info: dict) -> bool:
    """Could this link of the container (ip -j) be a device the host lent? Not one whose peer
    or lower device is in the container too (`link` names it there; a lent device's is in the
    host, `link_netnsid`): the container made that one, say a veth with the device's MAC, and
    giving it to the host under the device's name would hand the host a link into the
    container."""
    return "link" not in info and info.get("link_type") != "loopback"


def _marked_as_lent(op, info: dict) -> bool:
    """Is the container's link (`ip -d -j`) marked as the device ADD lent? The marks: the MAC
    the ADD's result reported for it (a container may change the alias, not the result); the
    config's hwaddr; the parent device the config's kernelpath, pciBusID or deviceID names
    (`parentdev`); and, when the config names the `device`, the alias ADD gives it (its host
    name; the reference labels it the same way). Any alias will not do without `device`:
    another network's lent device carries one too (a review's find). A device found by
    hwaddr, kernelpath or PCI address that is in the host is not in the container; a host
    link of the `device`'s name may be another one, which took the name after the device
    left (DEL then waits for it to be free). An unmarked link is left in the container (an
    audit's case: another network's, after a refused ADD); so is a device whose alias the
    container changed when DEL has no prevResult, until the namespace goes (the kernel then
    gives a real device back)."""
    conf = op.conf
    device = conf.get("device")
    if not device and _back_in_host(op):
        return False
    if device and info.get("ifalias") == device:
        return True
    parent = info.get("parentdev")
    named = [conf.get("deviceID") or conf.get("pciBusID"),
             os.path.basename(conf.get("kernelpath") or "") or None]
    if isinstance(parent, str) and parent and parent in named:
        return True
    try:
        reported = common.container_mac(op.prev_result or {}, op.runtime.ifname)
    except CNIError:
        reported = None                 # (a malformed prevResult: the other marks tell)
    macs = {str(m).lower() for m in (reported, conf.get("hwaddr")) if m}
    return str(info.get("address", "")).lower() in macs


def _back_in_host(op) -> bool:
    """Is the configured device in the host's namespace (given back by an earlier DEL)?"""
    try:
        find_device(op)
    except CNIError:
        return False
    return True


def _renamed(op) -> dict | None:
    """The device under another name in the container (a container with CAP_NET_ADMIN can
    rename it): the one link there with the MAC ADD reported (or the config's hwaddr), or,
    failing those, with the alias ADD recorded, the config's `device`. The reference fails such
    a DEL for good; taking the device for gone would release its addresses while it still
    holds them and leave it to the container until the namespace goes."""
    try:
        reported = common.container_mac(op.prev_result or {}, op.runtime.ifname)
    except CNIError:                    # (a malformed prevResult: DEL goes on without it)
        reported = None
    macs = {m for m in (reported, op.conf.get("hwaddr")) if m}
    alias = op.conf.get("device")
    if not macs and not alias:
        return None
    listed = op.fact("container-links")
    if listed is None or listed.returncode != 0:
        return None
    from cnish import jsonfast
    try:
        links = [link for link in jsonfast.loads(listed.stdout or "[]")
                 if isinstance(link, dict) and isinstance(link.get("ifname"), str)
                 and ifname_problem(link["ifname"]) is None and _lendable(link)]
    except ValueError:
        return None
    for how, matches in (("its MAC", [link for link in links
                                      if str(link.get("address", "")).lower() in macs]),
                         ("its alias", [link for link in links
                                        if alias and link.get("ifalias") == alias])):
        if len(matches) == 1:
            op.notes.append(f"{op.runtime.ifname} is not in the container: the device was "
                            f"found there by {how} as {matches[0]['ifname']}")
            return matches[0]
        if matches:
            raise CNIError(TRY_AGAIN, f"{op.runtime.ifname} is not in the container, and "
                           f"{len(matches)} of its links could be the device: "
                           + ", ".join(sorted(m["ifname"] for m in matches)),
                           "nothing was changed and its addresses stay reserved; move the "
                           "device back to the host's namespace by hand, then DEL again")
    return None


def _original_name(op, info: dict) -> str:
    """The name the device had on the host; `info`: its link in the container (ip -j)."""
    # The config's name first: the alias is the container's to change (a container with
    # CAP_NET_ADMIN could otherwise choose the name the device gets on the host); it is the
    # only record when the config finds the device by hwaddr, kernelpath or PCI address.
    name = op.conf.get("device") or info.get("ifalias")
    if name and ifname_problem(name) is None:
        return name
    raise CNIError(INVALID_CONFIG, f"cannot tell what {op.runtime.ifname} was called on the host",
                   "the config names no \"device\", and its alias (where ADD recorded the "
                   f"original name) is {'not a valid name' if name else 'empty'}")


def status(op) -> None:
    """The device must be in the host's namespace (engine.status makes a refusal code 50):
    not missing, nor lent to a container (a host-device network serves one at a time)."""
    find_device(op)


def result(op, att) -> dict:
    interfaces = [{"name": att["ifname"], "mac": att["container_mac"], "sandbox": att["netns"]}]
    return common.chain_result(op.prev_result, common.own_result(op, interfaces, 0))


def tools(op) -> list:
    return ["ip", "nsenter", "sysctl"]
