"""C library functions that Python's os module lacks here, called through _ctypes.

netns.py needs setns(2) (os.setns only exists from Python 3.12) and procsys.py needs
fsopen/fsconfig/fsmount (glibc 2.36+, in no Python's os module yet). The ctypes package would
cost 3 ms to import at every container start; its C core `_ctypes` costs 0.3 ms and can look a
symbol up and call it with int, bytes and None (NULL) arguments, which is all these need.
Every function returns the C int result; -1 means failure (errno is not available this way,
and callers that need a reason fall back to a command or a path that reports one).
"""

_functions = {}


def function(name: str):
    """The libc function `name` as a callable, or None when this libc does not have it."""
    if name not in _functions:
        import _ctypes
        try:
            address = _ctypes.dlsym(_ctypes.dlopen(None), name)
        except OSError:
            _functions[name] = None
        else:
            _functions[name] = lambda *args: _ctypes.call_function(address, args)
    return _functions[name]
