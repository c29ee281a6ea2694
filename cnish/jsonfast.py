"""JSON encode/decode through the C accelerator `_json`, without importing `json`.

Why: `import json` imports `re`, and together they cost about 6 ms — a fifth of a container
start. The hot path (every ADD/DEL/VERSION a runtime execs) only needs strict decoding and
compact encoding, which the C scanner and encoder behind the `json` module do on their own.
Everything else (pretty printing in the operator CLI, tests) may use `json` freely.
Falls back to `json` where `_json` is missing (non-CPython interpreters).
"""

try:
    import _json
except ImportError:  # pragma: no cover - CPython always has it
    _json = None


def _reject_constant(name):
    # NaN and Infinity are not JSON (Go's decoder rejects them too).
    raise ValueError(f"invalid JSON constant {name}")


def _finite_float(text):
    # 1e400 overflows to infinity, which no encoder writes back (a DEL carrying it failed for
    # good, found by an audit); Go's decoder refuses it as out of range.
    value = float(text)
    if value - value != 0:
        raise ValueError(f"number {text} is out of range")
    return value


class _Context:
    strict = True              # control characters inside strings are errors, as in Go
    object_hook = None
    object_pairs_hook = None
    parse_float = staticmethod(_finite_float)
    parse_int = int
    parse_constant = staticmethod(_reject_constant)
    memo = None


_WS = " \t\n\r"

def _default(obj):
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


if _json is not None:
    _scan = _json.make_scanner(_Context())
    _encode = _json.make_encoder(None, _default, _json.encode_basestring_ascii, None,
                                 ":", ",", False, False, False)


def loads(text):
    """Decode one JSON document; raises ValueError with the position on bad input."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    if _json is None:  # pragma: no cover
        import json
        return json.loads(text)
    idx = len(text) - len(text.lstrip(_WS))
    try:
        try:
            value, end = _scan(text, idx)
        except SystemError:
            # The C scanner builds its error from json.decoder.JSONDecodeError but only finds
            # it once json.decoder is imported; on this (rare) bad-input path, import and retry.
            import json.decoder  # noqa: F401
            value, end = _scan(text, idx)
    except StopIteration as stop:
        raise ValueError(f"expecting a JSON value at char {stop.value}") from None
    except (ValueError, RecursionError) as exc:
        raise ValueError(str(exc)) from None
    rest = text[end:].strip(_WS)
    if rest:
        raise ValueError(f"extra data after the JSON value at char {end}")
    return value


def dumps(value) -> str:
    """Compact JSON (no spaces), ASCII-only, keys in insertion order."""
    if _json is None:  # pragma: no cover
        import json
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, str):
        return _json.encode_basestring_ascii(value)
    return "".join(_encode(value, 0))
