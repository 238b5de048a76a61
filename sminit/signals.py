"""Signal names and numbers, the set sminit waits on, and what counts as a stop signal.

sminit uses `_signal`, the C module behind `signal`: the same functions and constants, minus
the enum wrappers, whose import (enum) would add about 3 ms to every container start.
"""

from __future__ import annotations

import _signal

CATCHABLE = frozenset(_signal.valid_signals()) - {_signal.SIGKILL, _signal.SIGSTOP}
FORWARDED = CATCHABLE - {_signal.SIGCHLD}
STOP_SIGNALS = frozenset({_signal.SIGTERM, _signal.SIGINT})
_ALIASES = ("SIGIOT", "SIGCLD", "SIGPOLL")  # the same numbers as SIGABRT, SIGCHLD, SIGIO
NUMBERS = {name: value for name, value in vars(_signal).items()
           if name.startswith("SIG") and not name.startswith("SIG_") and isinstance(value, int)}
NAMES = {value: name for name, value in NUMBERS.items() if name not in _ALIASES}


def signal_name(signo: int) -> str:
    """SIGTERM, SIGRTMIN+3, or the bare number for anything unnamed."""
    if _signal.SIGRTMIN < signo < _signal.SIGRTMAX:
        return f"SIGRTMIN+{signo - _signal.SIGRTMIN}"
    return NAMES.get(signo, str(signo))


def _small_number(text: str) -> bool:
    return text.isdigit() and text.isascii() and len(text) <= 3  # int() of 5000 digits raises


def parse_signal(text: str, allow_zero: bool = False) -> int:
    """Turn TERM, SIGTERM, sigterm, 15 or RTMIN+2 into a signal number; ValueError if none."""
    if _small_number(text):
        signo = int(text)
        if (signo == 0 and allow_zero) or signo in CATCHABLE or signo in (_signal.SIGKILL, _signal.SIGSTOP):
            return signo
        raise ValueError(text)
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    for base, sign in (("SIGRTMIN+", 1), ("SIGRTMAX-", -1)):
        offset = name[len(base):]
        if name.startswith(base) and _small_number(offset):
            signo = (_signal.SIGRTMIN if sign > 0 else _signal.SIGRTMAX) + sign * int(offset)
            if _signal.SIGRTMIN <= signo <= _signal.SIGRTMAX:
                return signo
            raise ValueError(text)
    if name in NUMBERS:
        return NUMBERS[name]
    raise ValueError(text)
