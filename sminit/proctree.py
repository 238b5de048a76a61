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


def read(path: str, size: int = 65536) -> bytes | None:
    """A /proc file's content (os.open and os.read: a third of open()'s cost), None if it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)


def _stat(pid: int) -> tuple[int, int, int, bytes, int] | None:
    """(ppid, pgid, start time, state letter, threads) from /proc/PID/stat, or None if it is gone."""
    data = read(f"/proc/{pid}/stat", 4096)
    if not data:
        return None
    fields = data[data.rindex(b")") + 2:].split()  # the name in parentheses may hold spaces
    return int(fields[1]), int(fields[2]), int(fields[19]), fields[0], int(fields[17])


def descends_from(pid: int, ancestor: int) -> bool:
    """Whether pid is ancestor or below it, by the parents /proc names; a pid that is gone (or 0,
    a process outside this PID namespace) is not."""
    for _ in range(4096):  # a parent chain is never this long; a cycle read mid-change must end
        if pid == ancestor:
            return True
        stat = _stat(pid) if pid > 0 else None
        if stat is None or stat[0] == pid:
            return False
        pid = stat[0]
    return False


def children_by_parent() -> dict[int, list[Proc]]:
    """Every live process on the system, listed under its parent's pid (one /proc walk). Zombies
    are left out: they cannot handle or die of anything, and their children are already another's."""
    children: dict[int, list[Proc]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return children
    for name in names:
        if name.isdigit():
            stat = _stat(int(name))
            if stat and stat[3] not in (b"Z", b"X"):
                children.setdefault(stat[0], []).append(Proc(int(name), stat[1], stat[2], stat[0]))
    return children


def children_of(pid: int, threads: int = 0) -> list[int]:
    """pid's children, from the kernel's list of each of its threads (empty if it is gone); a
    process known to have one thread (`threads`, from its stat) has one list, its own."""
    if threads == 1:
        return [int(word) for word in (read(f"/proc/{pid}/task/{pid}/children") or b"").split()]
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for thread in tasks:
        found.extend(int(word) for word in (read(f"/proc/{pid}/task/{thread}/children") or b"").split())
    return found


def subtree(root: int) -> dict[int, list[Proc]]:
    """The live processes below root, listed under their parents: children_by_parent() for one
    subtree, read through the kernel's children lists instead of every process on the system."""
    children: dict[int, list[Proc]] = {}
    pending = [(root, 1 if root == os.getpid() else 0)]  # sminit itself has one thread
    while pending:
        parent, threads = pending.pop()
        for pid in children_of(parent, threads):
            stat = _stat(pid)
            if stat and stat[0] == parent and stat[3] not in (b"Z", b"X"):
                children.setdefault(parent, []).append(Proc(pid, stat[1], stat[2], parent))
                pending.append((pid, stat[4]))
    return children


def lists_children() -> bool:
    """Whether this kernel has /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN)."""
    pid = os.getpid()
    return os.path.exists(f"/proc/{pid}/task/{pid}/children")


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
