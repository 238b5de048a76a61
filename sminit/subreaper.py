"""Child-subreaper registration and the process name: python-prctl if installed, else libc."""

from __future__ import annotations

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


def _libc_prctl(option: int, arg: object) -> int:
    """prctl(2) through ctypes, for when python-prctl (which needs libcap to build) is absent."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, arg, 0, 0, 0) != 0:
        import os

        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return 0


def become_subreaper() -> str:
    """Make orphaned descendants ours to reap. Returns which path did it; OSError if none."""
    try:
        import prctl
    except ImportError:
        _libc_prctl(PR_SET_CHILD_SUBREAPER, 1)
        return "libc"
    prctl.set_child_subreaper(1)
    return "python-prctl"


def is_subreaper() -> bool:
    """Read the flag back from the kernel (PR_GET_CHILD_SUBREAPER)."""
    import ctypes

    flag = ctypes.c_int(0)
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) == 0 and flag.value == 1


def set_process_name(name: str) -> None:
    """Show `sminit` rather than `python3` in ps and top (best effort)."""
    try:
        import prctl
    except ImportError:
        try:
            # Same effect as PR_SET_NAME for the main thread, without loading ctypes.
            with open("/proc/self/comm", "w") as comm:
                comm.write(name)
        except OSError:
            pass
        return
    prctl.set_name(name)
