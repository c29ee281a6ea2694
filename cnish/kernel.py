"""Does this kernel support a link kind (vlan, ipvlan, macvlan, dummy, ...), or bridges that
filter VLANs (bridge_vlans_problem)?

A kernel without 8021q, ipvlan or dummy (built in or loadable) fails `ip link add` with
"Unknown device type", and cnish must find that out before it changes anything. The probe is
the recipe fact "link-kind" (templates/unshare/link-kind-probe.j2): the same `ip link add`, in
a network namespace of its own that vanishes with the command. A positive answer is remembered
for the current boot in /run/cnish/kernel (a kernel does not lose a link kind while it runs;
a module loaded later turns a negative answer positive on the next call). A dry-run does not
probe when the running kernel's module lists can answer: the probe may load a module.
"""

import os

from cnish.errors import KERNEL_LACKS, CNIError

MODULES = {"vlan": "8021q", "ipvlan": "ipvlan", "macvlan": "macvlan", "dummy": "dummy",
           "vrf": "vrf"}
CACHE = "/run/cnish/kernel"


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _remembered(kind: str) -> bool:
    from cnish import trusteddirs
    if not trusteddirs.trusted(CACHE):         # (another user's answer is no answer)
        return False
    try:
        fd = os.open(os.path.join(CACHE, kind), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        if os.fstat(fd).st_uid != os.geteuid():
            return False
        return os.read(fd, 100).decode(errors="replace").strip() == _boot_id() != ""
    except OSError:
        return False
    finally:
        os.close(fd)


def _remember(kind: str) -> None:
    """Written to a new file of a random name (never through a link planted there), then
    renamed into place, in a directory no other user can write to (trusteddirs.py)."""
    from cnish import trusteddirs
    tmp = os.path.join(CACHE, f".{kind}.{os.urandom(8).hex()}")
    try:
        if trusteddirs.make(CACHE, 0o700):
            return                             # (refused: not remembered)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, _boot_id().encode())
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(CACHE, kind))
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


SYS_MODULE = "/sys/module"
LIB_MODULES = "/lib/modules"


def _known_without_loading(kind: str) -> bool | None:
    """For a dry-run, which must change nothing (the probe's `ip link add` can make the kernel
    load a module): True when the module is loaded, or built in or installed per the module
    lists of the running kernel; False when those lists exist and do not name it; None when
    they cannot tell (then the probe runs: without module lists, no module can be loaded)."""
    module = MODULES.get(kind, kind)
    if os.path.isdir(os.path.join(SYS_MODULE, module)):
        return True
    base = os.path.join(LIB_MODULES, os.uname().release)
    seen_lists = False
    for listing in ("modules.builtin", "modules.dep"):
        try:
            with open(os.path.join(base, listing)) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        seen_lists = True
        for line in lines:
            path = line.split(":", 1)[0]
            if path.rsplit("/", 1)[-1].split(".ko", 1)[0] == module:
                return True
    return False if seen_lists else None


def problem(op, kind: str) -> str | None:
    """Why links of `kind` cannot be created here, or None."""
    if _remembered(kind):
        return None
    if op.dry_run:
        known = _known_without_loading(kind)
        if known is not None:
            return None if known else _lacks(kind)
    # Any answer but "Unknown device type" means the kernel has the kind (on lo, most kinds
    # refuse with another error)
    return _lacks(kind) if _probe_lacks(op, kind, "link-kind", "Unknown device type") else None


def _probe_lacks(op, key: str, fact_id: str, lacking: str, proven=lambda probe: True) -> bool:
    """Ask the probe fact: True when its error says `lacking`. An answer that `proven`
    accepts is remembered for the boot (not by a dry-run); no probe, or no unshare to ask
    with (127), is no answer: the step itself will tell."""
    probe = op.fact(fact_id)
    if probe is None or probe.returncode == 127:
        return False
    if lacking in probe.stderr:
        return True
    if not op.dry_run and proven(probe):
        _remember(key)
    return False


def _lacks(kind: str) -> str:
    return (f"this kernel ({os.uname().release}) cannot create {kind} links: it has no "
            f"{MODULES.get(kind, kind)} support (not built in, module not loadable)")


def require(op, kind: str) -> None:
    refuse(op, problem(op, kind), "its link step",
           f"load the {MODULES.get(kind, kind)} module, or run on a kernel that has it")


def refuse(op, reason: str | None, failing_step: str, remedy: str) -> None:
    """Code 103 for what this kernel lacks, before anything changes; a dry-run notes it
    instead (the plan is still worth reading; running it here is not)."""
    if reason and op.dry_run:
        op.notes.append(f"{reason}; on this host the script would fail at {failing_step}")
    elif reason:
        raise CNIError(KERNEL_LACKS, reason, f"{remedy}; nothing was changed on this host")


BRIDGE_VLANS = "bridge-vlans"


def bridge_vlans_problem(op) -> str | None:
    """Why this kernel's bridges cannot filter VLANs (the bridge's vlan and vlanTrunk), or
    None. A kernel built without CONFIG_BRIDGE_VLAN_FILTERING answers "Operation not
    supported" to the recipe fact "vlan-filtering" (templates/unshare/bridge-vlans-probe.j2,
    in a namespace of its own). A positive answer is remembered for the boot; a dry-run does
    not probe while the bridge module is not loaded (the probe would load it)."""
    if _remembered(BRIDGE_VLANS):
        return None
    if op.dry_run and not os.path.isdir(os.path.join(SYS_MODULE, "bridge")):
        return None
    if _probe_lacks(op, BRIDGE_VLANS, "vlan-filtering", "Operation not supported",
                    proven=lambda probe: probe.returncode == 0):
        return (f"this kernel ({os.uname().release}) cannot filter VLANs on a bridge (it was "
                "built without CONFIG_BRIDGE_VLAN_FILTERING), which vlan and vlanTrunk need")
    return None
