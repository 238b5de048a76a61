"""Where a forwarded signal goes: the processes of the job that handle it, read from /proc
(README, "Where signals go").

A process handles a signal when it catches or blocks it (`SigCgt`, `SigBlk` in /proc/PID/status,
or the set it waits for in sigwaitinfo, which the kernel takes out of `SigBlk` while it waits).
Going down each line of descent from sminit, the first process that handles the signal gets it,
and what is below it is its own business; a shell is looked through (it gets the signal if it
traps it, and so do the first handlers below it). Everything else is left running.
"""

from __future__ import annotations

import os
import sys

from sminit.executable import SHELL_NAMES
from sminit.fds import above_stdio
from sminit.proctree import (Proc, alive, below, children_by_parent, lists_children, read, signal_process,
                             subtree)

# rt_sigtimedwait's number, by machine: the system call behind sigwait, sigwaitinfo, sigtimedwait.
_SIGTIMEDWAIT = {"x86_64": 128, "aarch64": 137}.get(os.uname().machine)
# Shells are looked through; busybox is the process name of its shell applet.
SHELLS = SHELL_NAMES | {"busybox"}
_SHOWN_ARGS = 200  # characters of a command line in a log line


class Table:
    """The live process table, as the delivery rule reads and signals it. The stop sequence's unit
    tests give it a fake with the same methods.

    The main child's /proc files stay open and are read with pread: its pid cannot be reused
    while it is unreaped, and that makes the common case (the main child handles the signal)
    about four times cheaper than opening them at each signal."""

    def __init__(self) -> None:
        self.own_pid = os.getpid()
        self.subtrees = lists_children()
        self.kept: dict[str, int] = {}  # path -> descriptor, for sminit's and the main child's files
        self.kept_pid: int | None = None
        self.children_file = f"task/{self.own_pid}/children"
        self.shells: dict[tuple[int, int, str], bool] = {}  # (pid, start time, name) -> is a shell

    def keep_open(self, pid: int) -> None:
        """Keep pid's stat, status and syscall files open once read (the main child, until forget())."""
        self.kept_pid = pid

    def forget(self, pid: int) -> None:
        if pid != self.kept_pid:
            return
        self.kept_pid = None
        for path in [path for path in self.kept if path.startswith(f"/proc/{pid}/")]:
            os.close(self.kept.pop(path))

    def _pread(self, pid: int, name: str, size: int, offset: int = 0) -> bytes | None:
        path = f"/proc/{pid}/{name}"
        if offset or (pid != self.kept_pid and pid != self.own_pid):
            # /proc/PID/mem is never kept: it stays bound to the program that ran when it was
            # opened, and an exec (a shell's `exec python`) replaces that program.
            if offset:
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    return None
                try:
                    return os.pread(fd, size, offset)
                except OSError:
                    return None
                finally:
                    os.close(fd)
            return read(path, size)
        try:
            kept = self.kept.get(path)
            if kept is None:
                kept = self.kept[path] = above_stdio(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
            return os.pread(kept, size, offset)
        except OSError:
            return None

    def only_child(self, pid: int) -> bool:
        """Whether pid is sminit's one child (no orphan adopted beside it): one pread, no parse."""
        return self.subtrees and self._pread(self.own_pid, self.children_file, 64) == b"%d " % pid  # "7 "

    def tree(self) -> dict[int, list[Proc]]:
        return subtree(self.own_pid) if self.subtrees else children_by_parent()

    def signal_state(self, pid: int, signo: int) -> tuple[bool, bool] | None:
        """(whether pid handles signo, whether it is a shell); None if it is gone.

        Signals 1 to 31 are read from /proc/PID/stat (its blocked and caught masks hold exactly
        those, and it is half the kernel's work of /proc/PID/status, which real-time ones need)."""
        bit = 1 << (signo - 1)
        if signo < 32:
            data = self._pread(pid, "stat", 4096)
            if not data:
                return None
            opened, closed = data.find(b"("), data.rfind(b")")
            fields = data[closed + 2:].split(None, 32)
            try:
                handled = int(fields[29]) | int(fields[31])  # (32) blocked, (34) sigcatch in proc(5)
                start = int(fields[19])  # (22) starttime
            except (IndexError, ValueError):
                return None
            name = data[opened + 1:closed]
        else:
            data = self._pread(pid, "status", 8192)
            if not data:
                return None
            # The kernel escapes a newline in a process's name, so these markers start real lines.
            name_at, blocked_at = data.find(b"Name:"), data.find(b"\nSigBlk:")
            caught_at = data.find(b"\nSigCgt:")
            if min(name_at, blocked_at, caught_at) < 0:
                return None
            try:
                blocked = int(data[blocked_at + 8:blocked_at + 25], 16)
                handled = blocked | int(data[caught_at + 8:caught_at + 25], 16)
            except ValueError:
                return None
            name = data[name_at + 5:data.index(b"\n", name_at)].strip()
            start = -1  # not in status: nothing is remembered
        handles = bool(handled & bit or self.waited(pid) & bit)
        return handles, self._is_shell(pid, start, name.decode(errors="replace"))

    def waited(self, pid: int) -> int:
        """The signals pid waits for in rt_sigtimedwait, as a mask (0 if it is not waiting there).

        While a process waits in sigwaitinfo, the kernel takes the waited signals out of its
        blocked mask (they return when the wait ends), so SigBlk hides exactly the process that
        blocks a signal to wait for it (dumb-init, tini, an init like sminit itself). The set is
        the system call's first argument, read from the process's memory (an ancestor may)."""
        if _SIGTIMEDWAIT is None:
            return 0
        fields = (self._pread(pid, "syscall", 512) or b"").split()
        if len(fields) < 2 or fields[0] != str(_SIGTIMEDWAIT).encode():
            return 0
        try:
            address = int(fields[1], 16)
        except ValueError:
            return 0
        return int.from_bytes(self._pread(pid, "mem", 8, address) or b"", sys.byteorder)

    def _is_shell(self, pid: int, start: int, name: str) -> bool:
        """By its name, or, for a script run through its #! line (named after the script), by its
        executable. Remembered per pid and name: only an exec changes the executable, and an exec
        renames the process too (a program exec'd under the very name of the script before it
        would be taken for a shell: it is then looked through, and still gets what it handles);
        the start time keeps a reused pid apart."""
        if name in SHELLS:
            return True
        known = self.shells.get((pid, start, name)) if start >= 0 else None
        if known is None:
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                return False
            known = os.path.basename(exe.removesuffix(" (deleted)")) in SHELLS
            if start >= 0:
                if len(self.shells) >= 4096:  # pids come and go: never let it grow without bound
                    self.shells.clear()
                self.shells[(pid, start, name)] = known
        return known

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
        data = read(f"/proc/{pid}/cmdline", 4096)
        if not data:
            return "?"
        words = data.rstrip(b"\0").split(b"\0")
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
    if main_alive and table.only_child(main_pid):
        if table.signal_state(main_pid, signo) == (True, False):
            return Found([Proc(main_pid, main_pid, 0, table.own_pid)], None)
    children = table.tree()
    targets: list[Proc] = []
    left: list[Proc] = []
    pending = list(reversed(children.get(table.own_pid, [])))
    while pending:
        proc = pending.pop()
        state = table.signal_state(proc.pid, signo)
        if state is None:
            continue  # gone since the walk
        handles, shell = state
        if handles:
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
