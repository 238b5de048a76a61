"""The wait loop: sleep in sigwaitinfo until a signal or the next deadline, reap, dispatch."""

from __future__ import annotations

import os
import _signal
import time

from sminit.log import Log
from sminit.signals import FORWARDED, signal_name
from sminit.stop import StopSequence

WAITED = FORWARDED | {_signal.SIGCHLD}
SELF_RAISED = frozenset({_signal.SIGPIPE, _signal.SIGXFSZ})


def supervise(main_pid: int, stop: StopSequence, log: Log) -> int | None:
    """Run until no child is left; returns the main child's wait status (None: never reaped).

    Every signal stays blocked, so nothing is lost between two waits: standard signals stay
    pending (merged, as the kernel always does), and SIGCHLD is answered by reaping until
    waitpid has nothing more, which covers any number of merged exits.
    """
    own_pid = os.getpid()
    status = None
    while True:
        deadline = stop.next_deadline()
        info: _signal.struct_siginfo | None
        if deadline is None:
            info = _signal.sigwaitinfo(WAITED)  # no timeout: no wake-up while nothing happens
        else:
            remaining = deadline - time.monotonic()
            info = _signal.sigtimedwait(WAITED, remaining) if remaining > 0 else None
        now = time.monotonic()
        if info is None:
            stop.on_deadline(now)
            if stop.gave_up:
                return status
        elif info.si_signo == _signal.SIGCHLD:
            main_status, children_left = reap(main_pid, log)
            if main_status is not None:
                status = main_status
                stop.on_main_exit(now, children_left)
            if not children_left:
                return status
            stop.after_reap()
        elif info.si_signo in SELF_RAISED and info.si_code <= 0 and info.si_pid == own_pid:
            # The kernel raised it on us for our own write (a closed or oversized stderr).
            continue
        else:
            if log.enabled("debug"):
                log.debug(f"received {signal_name(info.si_signo)} from pid {info.si_pid}",
                          signal=signal_name(info.si_signo), sender_pid=info.si_pid)
            stop.on_signal(info.si_signo, now, info.si_pid)


def reap(main_pid: int, log: Log) -> tuple[int | None, bool]:
    """Reap every exited child; returns (main child's status if reaped now, children left)."""
    main_status = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return main_status, False
        if pid == 0:
            return main_status, True
        if pid == main_pid:
            main_status = status
        elif log.enabled("debug"):
            log.debug(f"reaped process {pid} (status {os.waitstatus_to_exitcode(status)})")
