"""The stop sequence: where each forwarded signal goes, the grace clock, clean-up of leftovers,
the final SIGKILL, max runtime and its warning.

The wait loop calls the `on_*` methods and sleeps until `next_deadline()`. Its state:

- `warn_at`: armed at the start with a max runtime and a warning; fires the warn signal (to its
  handlers only); cleared when it fires, by a stop, or when the main child exits.
- `runtime_at`: armed at the start with a max runtime; fires a stop as on SIGTERM (`timed_out`);
  cleared when it fires, by a stop, or when the main child exits.
- `stopping`: set by the first stop signal or `runtime_at`, never cleared; arms `kill_at`.
- `held` (`handlers` only): a stop found no handler in the job's first second; it waits, with
  `poll_at` every 10 ms, until a handler appears, the second ends or the main child exits.
- `watched` (`handlers` only): the processes a stop was delivered to; `poll_at` every 50 ms
  checks them, and when all have exited and others remain, `settle_at` is armed.
- `settle_at`: 1 s after `watched` emptied; fires the stop signal again by the rule to what is left.
- `kill_at`: the grace's end (armed by a stop) or the cleanup grace's (armed when the main child
  exits, leaving processes); fires SIGKILL to everything left, sets `killing`, clears `poll_at`,
  `settle_at` and `held`, and arms `give_up_at`.
- `give_up_at`: 5 s after the SIGKILL; fires `gave_up`: stop waiting for unkillable processes.

Only `poll_at` wakes the loop at a short interval, and only while a stop is held or watched;
otherwise every deadline is a single wake-up, and with none armed the loop sleeps until a signal.
"""

from __future__ import annotations

import os
import _signal

from sminit.handlers import Table, find_handlers, job_processes
from sminit.log import Log, plural
from sminit.proctree import Proc
from sminit.signals import STOP_SIGNALS, signal_name

# After the final SIGKILL, how long to wait for the kernel to finish off the tree (a process
# stuck in uninterruptible sleep cannot die) before exiting anyway.
KILL_WAIT = 5.0
# A stop in the job's first second that finds no handler waits this long after the start for one.
START_WINDOW = 1.0
HOLD_POLL = 0.01  # how often a held stop looks for a handler
WATCH_POLL = 0.05  # how often the processes that got a stop are checked for their exit
SETTLE = 1.0  # once they have exited, what is left gets this long before the stop signal again
# Job control and terminal size concern every process on the terminal: always the whole group.
GROUP_SIGNALS = frozenset({_signal.SIGTSTP, _signal.SIGTTIN, _signal.SIGTTOU, _signal.SIGCONT,
                           _signal.SIGWINCH})
SHOWN_LEFT = 4  # processes named in a delivery line's "left running"


class StopSequence:
    """Decides what to signal and when (the state table above)."""

    def __init__(
        self, log: Log, main_pid: int, *, grace: float, cleanup_grace: float, forward: str = "handlers",
        rewrite: dict[int, int] | None = None, max_runtime: float | None = None,
        warn_before: float | None = None, warn_signal: int = _signal.SIGUSR1, now: float = 0.0,
        spawned: float | None = None, table: Table | None = None, pid1: bool | None = None,
    ) -> None:
        self.log = log
        self.main_pid = main_pid
        self.main_alive = True
        self.grace = grace
        self.cleanup_grace = cleanup_grace
        self.forward = forward  # "handlers", "group" or "child"
        self.rewrite = rewrite or {}
        self.table = table or Table()
        self.table.keep_open(main_pid)
        self.pid1 = os.getpid() == 1 if pid1 is None else pid1
        self.warn_signal = warn_signal
        self.spawned = now if spawned is None else spawned
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
        self.held: int | None = None  # the received stop signal, while it waits for a handler
        self.stop_signal: int | None = None  # the received stop signal, for a delivery again
        self.watched: list[Proc] = []
        self.poll_at: float | None = None
        self.settle_at: float | None = None
        self.command_lines: dict[int, str] = {}  # pid -> command line, read before a delivery

    def next_deadline(self) -> float | None:
        armed = [t for t in (self.warn_at, self.runtime_at, self.poll_at, self.settle_at, self.kill_at,
                             self.give_up_at) if t is not None]
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
        elif signo in STOP_SIGNALS:
            if self.held is None and not self.killing:
                self.deliver(signo, now, "stop", "info")
        else:
            self.deliver(signo, now, "other", "debug")

    def begin_stop(self, signo: int, now: float) -> None:
        """The first stop: deliver it and start the grace clock, which never restarts."""
        self.stopping = True
        self.stop_signal = signo
        self.warn_at = self.runtime_at = None
        self.arm_kill(now + self.grace)
        self.deliver(signo, now, "stop", "info", may_hold=True)

    def deliver(self, received: int, now: float, purpose: str, level: str, may_hold: bool = False) -> None:
        """Send received (after --rewrite) where it goes; purpose is "stop", "warn" or "other"."""
        signo = self.rewrite.get(received, received)
        if signo == 0:
            self.log.emit(level, f"dropped {signal_name(received)} (rewritten to 0)",
                          signal=None, received=signal_name(received), rule="dropped", targets=[], left=0)
            return
        main = Proc(self.main_pid, self.main_pid, 0)
        if self.forward == "child":
            if not self.main_alive:
                self.log.emit(level, f"no child to send {signal_name(signo)} to")
                return
            self.commands(level, [main])
            self.delivered(level, received, signo, "child", [main] if self.send(main, signo) else [], None)
            return
        if self.forward == "group" or signo in GROUP_SIGNALS:
            self.commands(level, [main])
            self.delivered(level, received, signo, "group", self.signal_group(signo, None), None)
            return
        found = find_handlers(signo, self.main_pid, self.main_alive, self.table)
        if found.targets:
            # Before the signal: a target may exit at once, and a shell or relay right after it.
            self.commands(level, [*found.targets, *(found.left or [])[:SHOWN_LEFT]])
            sent = [proc for proc in found.targets if self.send(proc, signo)]
            self.delivered(level, received, signo, "handlers", sent, found.left)
        elif purpose == "warn":
            self.log.warning(f"{signal_name(signo)} not sent: no process of the job handles it, and it "
                             "would kill the processes it reached", signal=signal_name(signo),
                             received=signal_name(received), rule="no_handler", targets=[],
                             left=len(found.left or ()))
            return
        elif purpose == "stop" and may_hold and now < self.spawned + START_WINDOW:
            self.hold(received, now, found.left or [])
            return
        else:
            self.commands(level, found.left or [])
            sent = self.signal_group(signo, found.left)
            self.delivered(level, received, signo, "no_handler", sent, [p for p in found.left or []
                                                                         if p not in sent])
        if purpose == "stop":
            self.watch(sent, now)

    def send(self, proc: Proc, signo: int) -> bool:
        if proc.pid == self.main_pid:
            if not self.main_alive:
                return False
            sent = self.table.kill(self.main_pid, signo)  # unreaped: its pid cannot be reused
        else:
            sent = self.table.send(proc, signo)
        if sent and signo == _signal.SIGKILL and proc.pid == self.main_pid:
            self.sent_sigkill = True
        return sent

    def signal_group(self, signo: int, known: list[Proc] | None) -> list[Proc]:
        """Signal the main child's process group; returns what was signalled (the group leader
        alone stands for the group when its members were not listed).

        While the main child is unreaped its pid cannot be reused, so kill(-pgid) can only
        reach its group. Once it is reaped, a new, unrelated group could take that number:
        then every process left of the job is signalled, each by pidfd (sminit's own group
        may be gone, and what is left is the job)."""
        if self.main_alive:
            if not self.table.kill(-self.main_pid, signo):
                return []
            self.sent_sigkill = self.sent_sigkill or signo == _signal.SIGKILL
            if known is None:
                return [Proc(self.main_pid, self.main_pid, 0)]
            return [proc for proc in known if proc.pgid == self.main_pid]
        left = job_processes(self.table) if known is None else known
        return [proc for proc in left if self.table.send(proc, signo)]

    # -- held and watched stops ----------------------------------------------------------

    def hold(self, received: int, now: float, job: list[Proc]) -> None:
        self.held = received
        self.poll_at = now + HOLD_POLL
        wait = self.spawned + START_WINDOW - now
        self.log.info(f"{signal_name(received)} held: no process of the job handles it yet; delivered when "
                      f"one does, or in {wait:.2f} s at the latest", signal=signal_name(received),
                      rule="held", targets=[], left=len(job))

    def watch(self, sent: list[Proc], now: float) -> None:
        """Follow the processes a stop went to; if there are none (each target exited before its
        signal), what is left gets its second at once, as after they exited."""
        if self.forward != "handlers":
            return
        known = {proc.pid for proc in self.watched}
        self.watched.extend(proc for proc in sent if proc.pid not in known)
        if self.watched:
            self.settle_at = None
            if self.poll_at is None:
                self.poll_at = now + WATCH_POLL
        elif self.settle_at is None:
            self.settle_at = now + SETTLE

    def alive(self, proc: Proc) -> bool:
        return self.main_alive if proc.pid == self.main_pid else self.table.alive(proc)

    def on_poll(self, now: float) -> None:
        self.poll_at = None
        if self.killing:
            return
        if self.held is not None:
            received = self.held
            if now >= self.spawned + START_WINDOW or find_handlers(
                    self.rewrite.get(received, received), self.main_pid, self.main_alive, self.table).targets:
                self.held = None
                self.deliver(received, now, "stop", "info")
            else:
                self.poll_at = now + HOLD_POLL
            return
        self.watched = [proc for proc in self.watched if self.alive(proc)]
        if self.watched:
            self.poll_at = now + WATCH_POLL
        else:
            self.settle_at = now + SETTLE

    def on_settled(self, now: float) -> None:
        """What got the stop has exited and what is left had a second: the stop again, by the rule."""
        self.settle_at = None
        left = job_processes(self.table)
        if not left or self.stop_signal is None or self.killing:
            return
        self.log.info(f"the processes that got {signal_name(self.stop_signal)} have exited; "
                      f"{plural(len(left), 'process')} left after {SETTLE:g} s: delivering it again",
                      signal=signal_name(self.stop_signal), left=len(left))
        self.deliver(self.stop_signal, now, "stop", "info")

    # -- children ------------------------------------------------------------------------

    def on_main_exit(self, now: float, children_left: bool) -> None:
        """The main child is reaped: what it left behind gets SIGTERM now and SIGKILL later."""
        self.main_alive = False
        self.table.forget(self.main_pid)
        self.warn_at = self.runtime_at = None
        if not children_left or self.killing:
            return
        watching = self.held is not None or bool(self.watched) or self.settle_at is not None
        if self.stopping and self.forward == "handlers" and self.stop_signal is not None and watching:
            if self.held is not None:  # nothing to wait for now: the rule decides at once
                received, self.held = self.held, None
                self.deliver(received, now, "stop", "info")
            return  # the watch gives what is left its second, then the stop again
        if self.stopping:
            # The group already had the stop signal; only the others get SIGTERM, and the
            # SIGKILL still comes when the stop's grace ends.
            had_it = None if self.forward == "child" else self.main_pid
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

    def signal_leftovers(self, signo: int, skip_group: int | None) -> int:
        return sum(self.table.send(proc, signo) for proc in job_processes(self.table)
                   if proc.pgid != skip_group)

    def kill_everything(self) -> int:
        """SIGKILL to every process left; returns how many there were."""
        self.sent_sigkill = self.sent_sigkill or self.main_alive
        left = job_processes(self.table)  # one walk of sminit's subtree, counted before the SIGKILL
        if self.pid1:
            # As PID 1 this reaches every process in the namespace, whatever its group or
            # session, including any forked since the walk.
            self.table.kill(-1, _signal.SIGKILL)
            return len(left)
        if self.main_alive:
            self.table.kill(-self.main_pid, _signal.SIGKILL)  # the group, also what forked since the walk
        for proc in left:
            self.table.send(proc, _signal.SIGKILL)
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
            self.deliver(self.warn_signal, now, "warn", "info")
        if self.runtime_at is not None and now >= self.runtime_at:
            self.events.append(f"max runtime of {self.max_runtime:g} s passed")
            self.log.info(f"{self.events[-1]}: stopping as on SIGTERM, SIGKILL in {self.grace:g} s",
                          max_runtime=self.max_runtime, grace=self.grace)
            self.timed_out = True
            self.stopped_by = "max_runtime"
            self.begin_stop(_signal.SIGTERM, now)
        if self.poll_at is not None and now >= self.poll_at:
            self.on_poll(now)
        if self.settle_at is not None and now >= self.settle_at:
            self.on_settled(now)
        if self.kill_at is not None and now >= self.kill_at:
            self.kill_at = self.poll_at = self.settle_at = self.held = None
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

    # -- the delivery line ---------------------------------------------------------------

    def delivered(self, level: str, received: int, signo: int, rule: str, sent: list[Proc],
                  left: list[Proc] | None) -> None:
        """One line for a delivery: where it went, why, and what was left running."""
        if not self.log.enabled(level):
            return
        name = signal_name(signo) + ("" if signo == received else f" (for {signal_name(received)})")
        if not sent:
            self.log.emit(level, f"{name}: no process to send it to", signal=signal_name(signo),
                          received=signal_name(received), rule=rule, targets=[], left=0)
            return
        if rule in ("group", "no_handler") and self.main_alive:
            why = ": no process of the job handles it" if rule == "no_handler" else (
                " (--forward group)" if self.forward == "group" else " (job control goes to the whole group)")
            where = f"process group {self.main_pid}{why}"
        else:
            shown = ", ".join(self.describe(proc.pid) for proc in sent)
            noun = "pid" if len(sent) == 1 else "pids"
            why = {"handlers": ", which handles it" if len(sent) == 1 else ", which handle it",
                   "child": " (--forward child)", "no_handler": ": no process of the job handles it"}[rule]
            where = f"{noun} {shown}{why}"
        if left is None and rule == "handlers":
            targets = {proc.pid for proc in sent}
            left = [proc for proc in job_processes(self.table) if proc.pid not in targets]
        left = left or []
        running = [self.describe(proc.pid) for proc in left[:SHOWN_LEFT]]
        more = f" and {len(left) - SHOWN_LEFT} more" if len(left) > SHOWN_LEFT else ""
        tail = f"; left running: {', '.join(running)}{more}" if left else ""
        self.log.emit(level, f"{name} to {where}{tail}", signal=signal_name(signo),
                      received=signal_name(received), rule=rule, targets=[proc.pid for proc in sent],
                      commands=[self.command(proc.pid) for proc in sent], left=len(left),
                      left_running=running)

    def commands(self, level: str, procs: list[Proc]) -> None:
        """Read the command lines of the processes about to be signalled, for the delivery line."""
        self.command_lines = {proc.pid: self.table.command(proc.pid) for proc in procs} if self.log.enabled(
            level) else {}

    def command(self, pid: int) -> str:
        return self.command_lines.get(pid) or self.table.command(pid)

    def describe(self, pid: int) -> str:
        return f"{pid} ({self.command(pid)})"
