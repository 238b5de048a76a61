"""Signal names and numbers, the set sminit waits on, and what counts as a stop signal."""

from __future__ import annotations

import signal

CATCHABLE = frozenset(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}
FORWARDED = CATCHABLE - {signal.SIGCHLD}
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


def signal_name(signo: int) -> str:
    """SIGTERM, SIGRTMIN+3, or the bare number for anything unnamed."""
    if signal.SIGRTMIN < signo < signal.SIGRTMAX:
        return f"SIGRTMIN+{signo - signal.SIGRTMIN}"
    try:
        return signal.Signals(signo).name
    except ValueError:
        return str(signo)


def parse_signal(text: str, allow_zero: bool = False) -> int:
    """Turn TERM, SIGTERM, sigterm, 15 or RTMIN+2 into a signal number; ValueError if none."""
    if text.isdigit() and text.isascii():
        signo = int(text)
        if (signo == 0 and allow_zero) or signo in CATCHABLE or signo in (signal.SIGKILL, signal.SIGSTOP):
            return signo
        raise ValueError(text)
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    for base, sign in (("SIGRTMIN+", 1), ("SIGRTMAX-", -1)):
        offset = name[len(base):]
        if name.startswith(base) and offset.isdigit() and offset.isascii():
            signo = (signal.SIGRTMIN if sign > 0 else signal.SIGRTMAX) + sign * int(offset)
            if signal.SIGRTMIN <= signo <= signal.SIGRTMAX:
                return signo
            raise ValueError(text)
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ValueError(text) from None
