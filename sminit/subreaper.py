"""prctl settings of sminit's own process: child subreaper and parent-death signal (before the job
starts: libc, the fast path), and its process name (after: python-prctl if installed, else /proc)."""

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
    """prctl(2) for integer arguments, straight from libc.

    _ctypes alone, not the ctypes package: the package's import costs about 2 ms of every start
    (struct, ctypes._endian and their Python code), the C module a tenth of that; python-prctl's
    import costs 2.5 ms (measured with -X importtime), so the calls made before the job starts
    never use it, whether or not it is installed.
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
    """Make orphaned descendants ours to reap (before the job starts: libc). Returns the path that
    did it; OSError if it cannot."""
    _libc_prctl(PR_SET_CHILD_SUBREAPER, 1)
    return "libc"


def set_parent_death_signal(signo: int) -> None:
    """Have the kernel send signo to sminit when its parent dies (tini's -p); before the job
    starts, so libc; OSError if it cannot."""
    _libc_prctl(PR_SET_PDEATHSIG, signo)


def is_subreaper() -> bool:
    """Read the flag back from the kernel (PR_GET_CHILD_SUBREAPER)."""
    import ctypes

    flag = ctypes.c_int(0)
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) == 0 and flag.value == 1


def set_process_name(name: str) -> None:
    """Show `sminit` rather than `python3` in ps and top (best effort; once the job runs, so
    python-prctl's import costs the job nothing)."""
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
