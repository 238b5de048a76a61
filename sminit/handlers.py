"""Where a forwarded signal goes: the processes of the job that handle it, read from /proc
(README, "Where signals go").

A process handles a signal when it catches or blocks it (`SigCgt`, `SigBlk` in /proc/PID/status).
Going down each line of descent from sminit, the first process that handles the signal gets it,
and what is below it is its own business; a shell is looked through (it gets the signal if it
traps it, and so do the first handlers below it). Everything else is left running.
"""

from __future__ import annotations

import os

from sminit.proctree import Proc, alive, below, children_by_parent, own_children, signal_process

SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "busybox"})
_SHOWN_ARGS = 200  # characters of a command line in a log line


def _mask(line: bytes) -> int:
    return int(line.split(b":", 1)[1], 16)


class Table:
    """The live process table, as the delivery rule reads and signals it. The stop sequence's unit
    tests give it a fake with the same methods."""

    def __init__(self) -> None:
        self.own_pid = os.getpid()

    def own_children(self) -> list[int] | None:
        return own_children()

    def tree(self) -> dict[int, list[Proc]]:
        return children_by_parent()

    def signal_state(self, pid: int) -> tuple[int, bool] | None:
        """(signals pid catches or blocks, as a bit mask; whether it is a shell), None if gone."""
        try:
            with open(f"/proc/{pid}/status", "rb") as handle:
                lines = handle.read().splitlines()
        except OSError:
            return None
        name, handled = b"", 0
        for line in lines:
            if line.startswith(b"Name:"):
                name = line[5:].strip()
            elif line.startswith((b"SigBlk:", b"SigCgt:")):
                handled |= _mask(line)
        return handled, self._is_shell(pid, name.decode(errors="replace"))

    @staticmethod
    def _is_shell(pid: int, name: str) -> bool:
        if name in SHELLS:
            return True
        # A script run by its #! line is named after the script: the executable tells.
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            return False
        return os.path.basename(exe.removesuffix(" (deleted)")) in SHELLS

    def send(self, proc: Proc, signo: int) -> bool:
        return signal_process(proc, signo)

    def kill(self, pid: int, signo: int) -> bool:
        """kill(2) for a pid (or -pgid) that cannot have been reused: an unreaped child's."""
        try:
            os.kill(pid, signo)
            return True
        except OSError:
            return False

    def alive(self, proc: Proc) -> bool:
        return alive(proc)

    def command(self, pid: int) -> str:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                words = handle.read(4096).rstrip(b"\0").split(b"\0")
        except OSError:
            return "?"
        text = " ".join(word.decode(errors="backslashreplace") for word in words)
        return text if len(text) <= _SHOWN_ARGS else text[:_SHOWN_ARGS - 3] + "..."


class Found:
    """Who handles a signal: `targets` get it; `left` (None: not looked at) are the job's other
    live processes, those above, beside and below the targets."""

    __slots__ = ("targets", "left")

    def __init__(self, targets: list[Proc], left: list[Proc] | None) -> None:
        self.targets = targets
        self.left = left


def find_handlers(signo: int, main_pid: int, main_alive: bool, table: Table) -> Found:
    """Apply the rule. The common case, a main child that handles the signal and is not a shell
    with no other child of sminit beside it, costs two reads and no walk of /proc."""
    bit = 1 << (signo - 1)
    if main_alive and table.own_children() == [main_pid]:
        state = table.signal_state(main_pid)
        if state is not None and state[0] & bit and not state[1]:
            return Found([Proc(main_pid, main_pid, 0, table.own_pid)], None)
    children = table.tree()
    targets: list[Proc] = []
    left: list[Proc] = []
    pending = list(reversed(children.get(table.own_pid, [])))
    while pending:
        proc = pending.pop()
        state = table.signal_state(proc.pid)
        if state is None:
            continue  # gone since the walk
        handled, shell = state
        if handled & bit:
            targets.append(proc)
            if not shell:
                left.extend(below(proc.pid, children))  # its children are its own business
                continue
        else:
            left.append(proc)
        pending.extend(reversed(children.get(proc.pid, [])))
    return Found(targets, left)


def job_processes(table: Table) -> list[Proc]:
    """Every live process below sminit."""
    return below(table.own_pid, table.tree())
