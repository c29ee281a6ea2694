"""Validation of the names that reach commands: the boundary where hostile input stops.

Quoting (done by the templating layer) prevents shell injection; these rules prevent option
injection and names the kernel or the tools would misread. They are deliberately stricter
than the kernel's dev_valid_name(): a leading "-" reads as an option, and whitespace, quotes,
"#", "@", ":", "/" and non-ASCII break `ip -batch` lines, `ip` output parsing or file paths.
No regular expressions: `re` costs ~5 ms to import on every container start.
"""

_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ID_CHARS = _ALNUM | frozenset("_.-")
_HEX = frozenset("0123456789abcdefABCDEF")

# C0 controls, DEL and C1 controls: what must never reach a line of a file raw (resolv.conf,
# which a runtime writes from a result's dns; the log), as a line break or a terminal escape
CONTROLS = frozenset((*range(0x20), 0x7f, *range(0x80, 0xa0)))

IFNAME_MAX = 15       # IFNAMSIZ - 1
ID_MAX = 255          # network names become directory names; ids become parts of file names


# /proc/sys/net/*/conf/all and default: the kernel refuses a link of either name
KERNEL_KEEPS = ("all", "default")


def ifname_problem(name) -> str | None:
    """Why `name` is not a usable interface name, or None when it is."""
    if not isinstance(name, str) or name == "":
        return "must be a non-empty string"
    if not set(name) <= _ID_CHARS:     # (first: a lone surrogate cannot even be encoded)
        return "may only contain letters, digits, '_', '.' and '-'"
    if len(name) > IFNAME_MAX:         # (ASCII now: a byte per character)
        return f"must be at most {IFNAME_MAX} bytes long (the kernel's limit)"
    if name in (".", ".."):
        return "must not be '.' or '..'"
    if name in KERNEL_KEEPS:
        return "must not be 'all' or 'default' (the kernel keeps those names for its settings)"
    if name[0] == "-":
        return "must not start with '-'"
    return None


def identifier_problem(name) -> str | None:
    """Rule of the CNI spec for container ids and network names: [a-zA-Z0-9][a-zA-Z0-9_.-]*."""
    if not isinstance(name, str) or name == "":
        return "must be a non-empty string"
    if len(name) > ID_MAX:
        return f"must be at most {ID_MAX} characters long"
    if name[0] not in _ALNUM:
        return "must start with a letter or a digit"
    if not set(name) <= _ID_CHARS:
        return "may only contain letters, digits, '_', '.' and '-'"
    return None


def mac_problem(mac) -> str | None:
    """A unicast Ethernet address written as six colon-separated hex pairs."""
    if not isinstance(mac, str):
        return "must be a string"
    parts = mac.split(":")
    if len(parts) != 6 or any(len(p) != 2 or not set(p) <= _HEX for p in parts):
        return "must look like 0a:58:0a:16:00:02"
    if int(parts[0], 16) & 1:
        return "must be a unicast address (lowest bit of the first byte clear)"
    if not any(int(p, 16) for p in parts):
        return "must not be all zeros (no Ethernet link takes it; the loopback device has it)"
    return None


def hwaddr_problem(mac) -> str | None:
    """A link-layer address as results record it: Ethernet (6 bytes), EUI-64 (8) or InfiniBand
    (20), colon-separated hex pairs."""
    parts = mac.split(":") if isinstance(mac, str) else []
    if len(parts) not in (6, 8, 20) or any(len(p) != 2 or not set(p) <= _HEX for p in parts):
        return "must be a hardware address such as 0a:58:0a:16:00:02"
    return None


def path_problem(path) -> str | None:
    """An absolute path without '..' components, NUL bytes, control characters or other
    characters that do not print as themselves (Unicode's "other" and "separator" classes but
    the space: a C1 control that a terminal acts on, a right-to-left override that makes the
    dry-run script read otherwise than it runs, a lone surrogate that cannot be encoded)."""
    if not isinstance(path, str) or path == "":
        return "must be a non-empty string"
    if not path.startswith("/"):
        return "must be an absolute path"
    if not path.isprintable():
        return "must not contain control characters or others that do not print"
    if ".." in path.split("/"):
        return "must not contain '..' components"
    return None
