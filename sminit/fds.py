"""sminit's own descriptors: kept out of the stdio slots the child must find as sminit got them."""

from __future__ import annotations

import os


def above_stdio(fd: int) -> int:
    """Move one of our own descriptors above 2, in case sminit started with 0, 1 or 2 closed:
    the child must find those slots exactly as sminit got them."""
    if fd > 2:
        return fd
    import fcntl  # only here: a shared library, and stdio is almost never closed

    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)
    return moved
