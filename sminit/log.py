"""sminit's own log lines on stderr: text or JSON, levels, writes that never block, and how
commands and counts are written in them."""

from __future__ import annotations

import os
import stat
import time

from sminit.fds import above_stdio

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
_SHELL_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_")


def shell_quote(word: str) -> str:
    """shlex.quote without importing shlex and re on the start-up path (a few ms)."""
    if word and _SHELL_SAFE.issuperset(word):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


def quote_command(argv: list[str]) -> str:
    return " ".join(shell_quote(word) for word in argv)


def plural(count: int, noun: str) -> str:
    """1 process, 2 processes; 1 signal, 2 signals."""
    if count == 1:
        return f"1 {noun}"
    return f"{count} {noun}es" if noun.endswith("s") else f"{count} {noun}s"


def _nonblocking_stderr() -> int:
    """A descriptor for stderr whose writes fail with EAGAIN instead of waiting.

    O_NONBLOCK cannot be set on fd 2 itself: the child shares that open file description.
    Reopening a pipe or terminal through /proc gives a description of our own. A regular
    file never blocks, and reopening it would reset its offset, so it is used as it is.
    """
    try:
        if stat.S_ISREG(os.fstat(2).st_mode):
            return 2
    except OSError:
        return -1  # stderr closed: fd 2 may later be one of our own, so never write there
    try:
        fd = os.open("/proc/self/fd/2", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError:
        return 2  # a socket, or no /proc: write what we can, drop the rest
    return above_stdio(fd)  # it may have taken the slot of a closed stdin or stdout


def write_line(fd: int, line: str) -> None:
    """Best effort: a full, closed or broken stderr drops the line."""
    try:
        os.write(fd, line.encode("utf-8", "backslashreplace"))
    except OSError:
        pass


class Log:
    """Writes `[sminit] ...` lines (or one JSON object a line) at or above a level."""

    def __init__(self, level: str = "info", fmt: str = "text") -> None:
        self.threshold = LEVELS[level]
        self.json = fmt == "json"
        self.fd = _nonblocking_stderr()

    def enabled(self, level: str) -> bool:
        return LEVELS[level] >= self.threshold

    def emit(self, level: str, msg: str, **fields: object) -> None:
        if LEVELS[level] < self.threshold:
            return
        if self.json:
            import json

            now = time.time()
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
            record = {"ts": stamp, "level": level, "logger": "sminit", "msg": msg, **fields}
            line = json.dumps(record, default=str, ensure_ascii=False)
        else:
            prefix = "[sminit] " if level in ("info", "debug") else f"[sminit] {level}: "
            line = prefix + msg
        write_line(self.fd, line.replace("\n", " ") + "\n")

    def debug(self, msg: str, **fields: object) -> None:
        self.emit("debug", msg, **fields)

    def info(self, msg: str, **fields: object) -> None:
        self.emit("info", msg, **fields)

    def warning(self, msg: str, **fields: object) -> None:
        self.emit("warning", msg, **fields)

    def error(self, msg: str, **fields: object) -> None:
        self.emit("error", msg, **fields)


class Collector(Log):
    """A Log that keeps warning and error lines instead of writing them (for --check)."""

    def __init__(self) -> None:
        super().__init__("warning")
        self.lines: list[str] = []

    def emit(self, level: str, msg: str, **fields: object) -> None:
        if LEVELS[level] >= LEVELS["warning"]:
            self.lines.append(msg)
