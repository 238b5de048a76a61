"""prctl settings of sminit's own process: child subreaper, parent-death signal and process name
(python-prctl if installed, else libc)."""

from __future__ import annotations

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
_NOT_LOOKED_UP = object()
_prctl: object = _NOT_LOOKED_UP


def _python_prctl():
    """The python-prctl module, or None; looked up once (a failed import searches every path entry)."""
    global _prctl
    if _prctl is _NOT_LOOKED_UP:
        try:
            import prctl

            _prctl = prctl
        except ImportError:
            _prctl = None
    return _prctl


def _libc_prctl(option: int, arg: int) -> None:
    """prctl(2) for integer arguments, for when python-prctl (which needs libcap to build) is absent.

    _ctypes alone, not the ctypes package: the package's import costs about 2 ms of every start
    (struct, ctypes._endian and their Python code), the C module a tenth of that.
    """
    try:
        import _ctypes

        # None: the program itself, libc included (typeshed asks for a path).
        function = _ctypes.dlsym(_ctypes.dlopen(None), "prctl")  # type: ignore[arg-type]
        if _ctypes.call_function(function, (option, arg, 0, 0, 0)) == 0:
            return
    except (ImportError, AttributeError, OSError):
        pass
    import ctypes  # the fallback, and the one way to read errno when the call failed
    import os

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, arg, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def become_subreaper() -> str:
    """Make orphaned descendants ours to reap. Returns which path did it; OSError if none."""
    prctl = _python_prctl()
    if prctl is None:
        _libc_prctl(PR_SET_CHILD_SUBREAPER, 1)
        return "libc"
    prctl.set_child_subreaper(1)
    return "python-prctl"


def set_parent_death_signal(signo: int) -> None:
    """Have the kernel send signo to sminit when its parent dies (tini's -p); OSError if it cannot."""
    prctl = _python_prctl()
    if prctl is None:
        _libc_prctl(PR_SET_PDEATHSIG, signo)
        return
    prctl.set_pdeathsig(signo)


def is_subreaper() -> bool:
    """Read the flag back from the kernel (PR_GET_CHILD_SUBREAPER)."""
    import ctypes

    flag = ctypes.c_int(0)
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) == 0 and flag.value == 1


def set_process_name(name: str) -> None:
    """Show `sminit` rather than `python3` in ps and top (best effort)."""
    prctl = _python_prctl()
    if prctl is None:
        try:
            # Same effect as PR_SET_NAME for the main thread, without loading ctypes.
            with open("/proc/self/comm", "w") as comm:
                comm.write(name)
        except OSError:
            pass
        return
    prctl.set_name(name)
