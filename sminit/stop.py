"""The stop sequence: the grace clock, clean-up of leftovers, the final SIGKILL, max runtime."""

from __future__ import annotations

import os
import _signal

from sminit.log import Log, plural
from sminit.proctree import descendants, signal_process
from sminit.signals import STOP_SIGNALS, signal_name

# After the final SIGKILL, how long to wait for the kernel to finish off the tree (a process
# stuck in uninterruptible sleep cannot die) before exiting anyway.
KILL_WAIT = 5.0


class StopSequence:
    """Decides what to signal and when; the wait loop calls it and sleeps until next_deadline()."""

    def __init__(
        self, log: Log, main_pid: int, *, grace: float, cleanup_grace: float, single_child: bool,
        rewrite: dict[int, int], max_runtime: float | None = None, warn_before: float | None = None,
        warn_signal: int = _signal.SIGUSR1, now: float = 0.0,
    ) -> None:
        self.log = log
        self.main_pid = main_pid
        self.main_alive = True
        self.grace = grace
        self.cleanup_grace = cleanup_grace
        self.single_child = single_child
        self.rewrite = rewrite
        self.pid1 = os.getpid() == 1
        self.warn_signal = warn_signal
        self.stopping = False  # a stop signal came, or the max runtime passed
        self.timed_out = False  # the max runtime passed and started the stop
        self.killing = False  # the final SIGKILL has gone out
        self.sent_sigkill = False  # sminit itself sent SIGKILL to the main child's group or to it
        self.stopped_by: str | None = None  # the stop signal's name, or "max_runtime"
        self.gave_up = False
        self.events: list[str] = []  # what sminit did, for the exit line and the failure file
        self.max_runtime = max_runtime
        self.runtime_at = now + max_runtime if max_runtime else None
        self.warn_at = self.runtime_at - warn_before if self.runtime_at and warn_before else None
        self.kill_at: float | None = None
        self.give_up_at: float | None = None

    def next_deadline(self) -> float | None:
        armed = [t for t in (self.warn_at, self.runtime_at, self.kill_at, self.give_up_at) if t is not None]
        return min(armed) if armed else None

    # -- signals -------------------------------------------------------------------------

    def on_signal(self, signo: int, now: float, sender: int = 0) -> None:
        if signo in STOP_SIGNALS and not self.stopping:
            name = signal_name(signo)
            self.events.append(f"stopped on {name}")
            self.stopped_by = name
            self.log.info(f"received {name} from pid {sender}: stopping, SIGKILL in {self.grace:g} s",
                          signal=name, sender_pid=sender, grace=self.grace)
            self.begin_stop(signo, now)
        else:
            self.forward(signo, "info" if signo in STOP_SIGNALS else "debug")

    def begin_stop(self, signo: int, now: float) -> None:
        """The first stop signal: forward it and start the grace clock, which never restarts."""
        self.stopping = True
        self.warn_at = self.runtime_at = None
        self.arm_kill(now + self.grace)
        self.forward(signo, "info")

    def forward(self, signo: int, level: str = "debug") -> None:
        target = self.rewrite.get(signo, signo)
        if target == 0:
            self.log.emit(level, f"dropped {signal_name(signo)} (rewritten to 0)")
            return
        if self.single_child:
            if not self.main_alive:
                self.log.emit(level, f"no child to forward {signal_name(signo)} to")
                return
            sent = _kill(self.main_pid, target)
            where = "child"
        else:
            sent = self.signal_group(target)
            where = "group"
        self.sent_sigkill = self.sent_sigkill or (sent and target == _signal.SIGKILL)
        if sent and self.log.enabled(level):
            shown = signal_name(target) + ("" if target == signo else f" (for {signal_name(signo)})")
            self.log.emit(level, f"forwarded {shown} to {where} {self.main_pid}", signal=signal_name(target),
                          received=signal_name(signo), target=where, pid=self.main_pid)

    # -- children ------------------------------------------------------------------------

    def on_main_exit(self, now: float, children_left: bool) -> None:
        """The main child is reaped: what it left behind gets SIGTERM now and SIGKILL later."""
        self.main_alive = False
        self.warn_at = self.runtime_at = None
        if not children_left or self.killing:
            return
        if self.stopping:
            # The group already had the stop signal; only the others get SIGTERM, and the
            # SIGKILL still comes when the stop's grace ends.
            had_it = None if self.single_child else self.main_pid
            count = self.signal_leftovers(_signal.SIGTERM, skip_group=had_it)
            if count:
                others = plural(count, "other process")
                self.log.info(f"main child exited during the stop: SIGTERM to {others}",
                              left=count, signal="SIGTERM", signalled=count)
        else:
            count = self.signal_leftovers(_signal.SIGTERM, skip_group=None)
            self.log.info(f"main child exited, leaving {plural(count, 'process')}: SIGTERM, SIGKILL in "
                          f"{self.cleanup_grace:g} s", left=count, signal="SIGTERM", signalled=count,
                          grace=self.cleanup_grace)
            self.arm_kill(now + self.cleanup_grace)

    def after_reap(self) -> None:
        """Children remain after a reap: while escalating, finish off any that just appeared."""
        if self.killing:
            self.kill_everything()

    def signal_group(self, signo: int) -> bool:
        """Signal the main child's process group.

        While the main child is unreaped its pid cannot be reused, so kill(-pgid) can only
        reach its group. Once it is reaped, a new, unrelated group could take that number:
        then only our own descendants still in the group are signalled, each by pidfd.
        """
        if self.main_alive:
            return _kill(-self.main_pid, signo)
        sent = False
        for proc in descendants():
            if proc.pgid == self.main_pid:
                sent = signal_process(proc, signo) or sent
        return sent

    def signal_leftovers(self, signo: int, skip_group: int | None) -> int:
        count = 0
        for proc in descendants():
            if proc.pgid != skip_group:
                count += signal_process(proc, signo)
        return count

    def kill_everything(self) -> int:
        """SIGKILL to every process left; returns how many there were."""
        self.sent_sigkill = self.sent_sigkill or self.main_alive
        if self.pid1:
            # As PID 1 this reaches every process in the namespace, whatever its group or
            # session, including any forked while we were deciding. Counted afterwards.
            _kill(-1, _signal.SIGKILL)
            return len(descendants())
        if self.main_alive:
            _kill(-self.main_pid, _signal.SIGKILL)  # at once, before the walk, for the whole group
        left = descendants()  # one /proc walk: the group's members and everyone else
        for proc in left:
            signal_process(proc, _signal.SIGKILL)
        return len(left)

    # -- deadlines -----------------------------------------------------------------------

    def arm_kill(self, when: float) -> None:
        if self.kill_at is None or when < self.kill_at:
            self.kill_at = when

    def on_deadline(self, now: float) -> None:
        if self.warn_at is not None and now >= self.warn_at:
            self.warn_at = None
            remaining = (self.runtime_at or now) - now
            name = signal_name(self.warn_signal)
            self.log.info(f"max runtime ends in {remaining:.1f} s: warning with {name}",
                          signal=name, remaining=round(remaining, 3))
            self.forward(self.warn_signal, "info")
        if self.runtime_at is not None and now >= self.runtime_at:
            self.events.append(f"max runtime of {self.max_runtime:g} s passed")
            self.log.info(f"{self.events[-1]}: stopping as on SIGTERM, SIGKILL in {self.grace:g} s",
                          max_runtime=self.max_runtime, grace=self.grace)
            self.timed_out = True
            self.stopped_by = "max_runtime"
            self.begin_stop(_signal.SIGTERM, now)
        if self.kill_at is not None and now >= self.kill_at:
            self.kill_at = None
            self.events.append("grace expired" if self.stopping else "cleanup grace expired")
            self.killing = True
            self.give_up_at = now + KILL_WAIT
            count = self.kill_everything()
            self.log.info(f"{self.events[-1]}: SIGKILL to every process left ({plural(count, 'process')})",
                          signal="SIGKILL", signalled=count,
                          grace=self.grace if self.stopping else self.cleanup_grace)
        if self.give_up_at is not None and now >= self.give_up_at:
            self.give_up_at = None
            self.gave_up = True
            self.log.warning(f"processes still not reaped {KILL_WAIT:g} s after SIGKILL: exiting anyway")


def _kill(pid: int, signo: int) -> bool:
    try:
        os.kill(pid, signo)
        return True
    except OSError:
        return False
