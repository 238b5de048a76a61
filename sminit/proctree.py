"""sminit's descendants read from /proc, and signalling one without hitting a reused pid.

Standard library only: importing psutil costs over 20 ms, and this runs at the worst moment,
when the grace period ends and the SIGKILL is due.
"""

from __future__ import annotations

import os
import _signal


class Proc:
    """One process as /proc showed it; `start` (clock ticks since boot) tells a reused pid apart."""

    __slots__ = ("pid", "ppid", "pgid", "start")

    def __init__(self, pid: int, pgid: int, start: int, ppid: int = 0) -> None:
        self.pid = pid
        self.ppid = ppid
        self.pgid = pgid
        self.start = start

    def __repr__(self) -> str:
        return f"Proc({self.pid}, ppid={self.ppid}, pgid={self.pgid})"


def _stat(pid: int) -> tuple[int, int, int, bytes] | None:
    """(ppid, pgid, start time, state letter) from /proc/PID/stat, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()  # the name in parentheses may hold spaces
    return int(fields[1]), int(fields[2]), int(fields[19]), fields[0]


def children_by_parent() -> dict[int, list[Proc]]:
    """Every process on the system, listed under its parent's pid (one /proc walk)."""
    children: dict[int, list[Proc]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return children
    for name in names:
        if name.isdigit():
            stat = _stat(int(name))
            if stat:
                children.setdefault(stat[0], []).append(Proc(int(name), stat[1], stat[2], stat[0]))
    return children


def below(root: int, children: dict[int, list[Proc]]) -> list[Proc]:
    """Every process under root in a children_by_parent() map, top-down."""
    found: list[Proc] = []
    pending = [root]
    while pending:
        for proc in children.get(pending.pop(), ()):
            found.append(proc)
            pending.append(proc.pid)
    return found


def descendants(root: int | None = None) -> list[Proc]:
    """Every process below root (default: sminit), orphans reparented to us included."""
    return below(os.getpid() if root is None else root, children_by_parent())


def own_children() -> list[int] | None:
    """sminit's children, main child and adopted orphans, from one read of /proc (None where the
    kernel does not list them: then walk)."""
    pid = os.getpid()
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as handle:
            return [int(word) for word in handle.read().split()]
    except OSError:
        return None


def alive(proc: Proc) -> bool:
    """Whether proc still runs: neither gone, nor a zombie, nor its pid taken by another process."""
    stat = _stat(proc.pid)
    return stat is not None and stat[2] == proc.start and stat[3] not in (b"Z", b"X")


def signal_process(proc: Proc, signo: int) -> bool:
    """Signal proc, never a process that took its pid after it was listed."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except ProcessLookupError:
        return False
    except (AttributeError, OSError):
        pidfd = None  # Python 3.8 or a kernel before 5.3: kill after the same check
    try:
        # A pidfd is bound to the process holding the pid when it was opened; if that one
        # started when the listed one did, it is the listed one, and the signal cannot stray.
        stat = _stat(proc.pid)
        if stat is None or stat[2] != proc.start:
            return False
        if pidfd is None:
            os.kill(proc.pid, signo)
        else:
            _signal.pidfd_send_signal(pidfd, signo)
        return True
    except OSError:
        return False
    finally:
        if pidfd is not None:
            os.close(pidfd)
