"""Driving a program on a new pty, as a person at a terminal would: start it as a session leader
whose controlling terminal is the pty, read until a text appears, wait for its exit status."""

from __future__ import annotations

import os
import pty
import select
import signal
import time


def pty_session(argv: list[str], env: dict[str, str] | None = None,
                cwd: str | None = None) -> tuple[int, int]:
    """Start argv as a session leader whose controlling terminal is a new pty: (pid, master fd)."""
    pid, master = pty.fork()
    if pid == 0:
        try:
            if cwd is not None:
                os.chdir(cwd)
            if env is None:
                os.execvp(argv[0], argv)
            else:
                os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    return pid, master


def read_until(master: int, fragment: bytes, timeout: float = 15) -> bytes:
    """What the pty shows until fragment appears in it; AssertionError after timeout."""
    seen = b""
    deadline = time.monotonic() + timeout
    while fragment not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{fragment!r} not seen in {seen[-1000:]!r}")
        ready, _, _ = select.select([master], [], [], remaining)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError(f"pty closed before {fragment!r}: {seen[-1000:]!r}")
            seen += chunk
    return seen


def finish(pid: int, timeout: float = 15) -> int:
    """The session leader's exit status; it is killed (by pid) and the test fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("the pty session did not end")
        time.sleep(0.01)


def drain(master: int) -> bytes:
    """Whatever the pty still has within 0.2 s (b"" when nothing more comes)."""
    ready, _, _ = select.select([master], [], [], 0.2)
    if not ready:
        return b""
    try:
        return os.read(master, 4096)
    except OSError:
        return b""
