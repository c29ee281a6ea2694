"""What running another CNI plugin takes, as libcni does it: FindInPath, the CNI_* environment,
and the error a plugin that failed reports. Shared by the operator CLI (libcni.exec_plugin: the
other plugins of a list) and the delegated IPAM plugin (plugins/delegate.py, on the CNI path: no
heavy imports here); both run the plugin through the runner.
"""

import os

from cnish import jsonfast
from cnish.errors import INTERNAL, INVALID_CONFIG, CNIError


class NotFound(CNIError):
    """No executable of that name in CNI_PATH: code 7 for ADD, DEL and CHECK (as libcni), where
    STATUS says 50 (the network cannot serve ADD until it is installed)."""


def find_in_path(type_name, cni_path, what: str = "plugin", hint: str = "") -> str:
    """libcni's FindInPath: a regular executable file named `type_name` in a CNI_PATH dir."""
    if not isinstance(type_name, str) or "/" in type_name or type_name in ("", ".", ".."):
        raise CNIError(INVALID_CONFIG, f"invalid {what} type {type_name!r}",
                       "a plugin type is a file name, without '/'")
    for directory in cni_path:
        path = os.path.join(directory, type_name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise NotFound(INVALID_CONFIG, f"failed to find {what} {type_name!r} in path "
                   f"[{' '.join(cni_path)}]", hint or "set CNI_PATH to the plugin directories")


def environment(command: str, container_id, netns, ifname, args_text, cni_path) -> dict:
    """The CNI_* variables a plugin is executed with."""
    return {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
            "CNI_IFNAME": ifname, "CNI_ARGS": args_text, "CNI_PATH": ":".join(cni_path)}


def printed_error(out: str, label: str) -> CNIError | None:
    """The error object a failed plugin printed on stdout ({"code", "msg", "details"}), as a
    CNIError whose message starts with `label`; None when it printed none."""
    try:
        obj = jsonfast.loads(out)
    except (ValueError, TypeError):
        return None
    if not isinstance(obj, dict) or "code" not in obj:
        return None
    code = obj["code"]
    if isinstance(code, float) and code.is_integer() and abs(code) < 2 ** 31:
        code = int(code)
    if not isinstance(code, int) or isinstance(code, bool) or not 0 < code < 2 ** 31:
        code = INTERNAL       # (an error object without a usable code is still an error)
    return CNIError(code, f"{label}: {obj.get('msg', '')}", str(obj.get("details", "")))


def failure(label: str, command: str, returncode: int, out: str, err: str,
            printed_label: str | None = None) -> CNIError:
    """The error of a plugin that exited with `returncode` != 0: the one it printed (its own
    code, message and details, after `printed_label`, by default `label`), else how it ended,
    with its stderr: code 7 when it could not be executed at all (126, 127: not executable, no
    interpreter; the runner's statuses when it cannot start it), else 999, as the reference's
    skel reports an error that is no CNI error."""
    printed = printed_error(out, printed_label or label)
    if printed is not None:
        return printed
    return CNIError(INVALID_CONFIG if returncode in (126, 127) else INTERNAL,
                    f"{label} failed ({command}, exit {returncode})", (err or out).strip())
