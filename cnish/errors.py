"""CNI errors: the codes of the CNI specification (SPEC §Error) and cnish's own codes (>= 100).

Every failure that reaches a runtime is a CNIError. Messages are lower-case, name the object or
field at fault, and carry the tool's stderr in `details` so that a user who only sees podman's
one-line summary still learns what to fix.
"""

# Codes from the specification.
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENV = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN = 11
NOT_AVAILABLE = 50
LIMITED_CONNECTIVITY = 51

# cnish's own codes (the spec reserves 0-99; plugins use 100 and up).
STEP_FAILED = 100        # a command of the plan failed (ADD rolled back; DEL/GC kept going)
CHECK_FAILED = 101       # CHECK found the attachment different from prevResult
IPAM_FAILED = 102        # no address available, duplicate allocation, store unusable
KERNEL_LACKS = 103       # this kernel cannot create the plugin's link kind (kernel.py)
INTERNAL = 999           # a bug in cnish: please report it


class CNIError(Exception):
    """An error to be reported to the runtime as CNI error JSON."""

    def __init__(self, code: int, msg: str, details: str = ""):
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details
        self.field = None          # the config field at fault, when invalid_config named one

    def to_json(self, cni_version: str) -> dict:
        out = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out

    def __str__(self) -> str:
        return f"{self.msg}: {self.details}" if self.details else self.msg


def invalid_config(field: str, value, why: str) -> CNIError:
    """Code 7 for a config field with a wrong type or value; names the key and the value (also
    as `field`, the path engine.py's DEL looks at: see DEL_TOLERATES there). Code 4 for a
    value from the environment (`CNI_ARGS IP`, ...), which the same parsers read."""
    if field.startswith("CNI_"):        # a value of CNI_ARGS (IP=, MAC=...): the environment's
        error = CNIError(INVALID_ENV, f"invalid environment: {field}={_show(value)}: {why}")
    else:
        error = CNIError(INVALID_CONFIG, f"invalid network config: {field}={_show(value)}: {why}")
    error.field = field
    return error


def unsupported_field(field: str, value) -> CNIError:
    """Code 2 for a field cnish knows but does not implement."""
    return CNIError(UNSUPPORTED_FIELD,
                    f"unsupported field in network config: {field}={_show(value)}",
                    "cnish does not implement this option; remove it or use the reference plugin")


def _show(value) -> str:
    from cnish import jsonfast
    try:
        text = jsonfast.dumps(value)
    except (ValueError, TypeError):      # e.g. 1e400 decodes to inf, which JSON cannot print
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
