"""Wires sminit together: config, plan, checks, the child, the wait loop and the exit status."""

from __future__ import annotations

import os
import _signal
import time

from sminit import config as cli
from sminit.child import SpawnError, controlling_terminal, spawn
from sminit.log import Log, write_line
from sminit.loop import supervise
from sminit.plan import Plan, resolve
from sminit.signals import STOP_SIGNALS, signal_name
from sminit.stop import StopSequence


def main(argv: list[str], original_mask: set[int]) -> int:
    """Run sminit; returns the exit status. Signals are already blocked by the entry point."""
    started = time.monotonic()
    environ = dict(os.environ)
    try:
        config = cli.parse(argv, environ)
        if config.action:
            write_line(1, cli.USAGE if config.action == "help" else cli.version_text())
            return 0
        log = Log(config.log_level, config.log_format)
        plan = resolve(config, environ, log)
    except cli.UsageError as exc:
        write_line(Log("error").fd, f"[sminit] {exc}\n")
        return 125
    if config.check:
        from sminit.check import run_check

        return run_check(config, plan, environ, log)
    return Run(config, plan, environ, log, started).execute(original_mask)


_SHELL_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_")


def shell_quote(word: str) -> str:
    """shlex.quote without importing shlex and re on the start-up path (a few ms)."""
    if word and _SHELL_SAFE.issuperset(word):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


class Run:
    """One supervised run of the plan's command, and how it ended."""

    def __init__(self, config: cli.Config, plan: Plan, environ: dict[str, str], log: Log, started: float) -> None:
        self.config = config
        self.plan = plan
        self.environ = environ
        self.log = log
        self.started = started

    def execute(self, original_mask: set[int]) -> int:
        plan, log = self.plan, self.log
        if plan.problem:
            return self.fail(*plan.problem)
        gpu_problem = self.check_gpus()
        if gpu_problem:
            return self.fail(125, gpu_problem)
        self.become_reaper()
        pending = _signal.sigpending() & STOP_SIGNALS
        if pending:
            signo = min(pending)
            return self.fail(128 + signo, f"received {signal_name(signo)} before the command started: not starting it")
        tty = controlling_terminal()
        try:
            pid = spawn(plan.command, original_mask, tty)
        except SpawnError as exc:
            return self.fail(exc.code, str(exc))
        finally:
            if tty is not None:
                os.close(tty)
        runtime = f"{plan.max_runtime:g} s" if plan.max_runtime else "none"
        log.info(f"started {self.shown_command()} as pid {pid} (mode {plan.mode}, grace {plan.grace:g} s, "
                 f"max runtime {runtime})", pid=pid, mode=plan.mode, grace=plan.grace, max_runtime=plan.max_runtime)
        stop = StopSequence(
            log, pid, grace=plan.grace, cleanup_grace=self.config.cleanup_grace,
            single_child=self.config.single_child, rewrite=self.config.rewrite,
            max_runtime=plan.max_runtime, warn_before=self.config.warn_before,
            warn_signal=self.config.warn_signal, now=self.started,
        )
        status = supervise(pid, stop, log)
        return self.finish(status, stop)

    def shown_command(self) -> str:
        return " ".join(shell_quote(word) for word in self.plan.command)

    def check_gpus(self) -> str | None:
        """The NVIDIA check of SPEC section 6, when this plan requires GPUs."""
        requirement = self.config.require_gpus
        if requirement == "none" or (requirement == "auto" and self.plan.mode != "train"):
            return None
        from sminit.gpu import gpu_report

        report = gpu_report(requirement, self.plan.mode, self.config.ml_root, self.environ, self.log)
        for warning in report.warnings:
            self.log.warning(warning)
        return report.problem

    def become_reaper(self) -> None:
        from sminit.subreaper import become_subreaper, set_process_name

        set_process_name("sminit")
        if os.getpid() == 1:
            return
        try:
            how = become_subreaper()
            self.log.debug(f"registered as child subreaper ({how})")
        except OSError as exc:
            self.log.warning(f"not PID 1 and cannot become a child subreaper ({exc.strerror}): "
                             "orphans will not be reaped by sminit")

    def fail(self, code: int, message: str) -> int:
        """sminit's own decision not to run: one error line, the failure file, the status."""
        self.log.error(f"exiting with {code}: {message}", status=code)
        self.write_failure(f"exiting with {code}: {message}")
        return code

    def finish(self, status: int | None, stop: StopSequence) -> int:
        if status is None:
            code, what = 128 + _signal.SIGKILL, "was not reaped"
        else:
            returned = os.waitstatus_to_exitcode(status)
            if returned < 0:
                code, what = 128 - returned, f"was killed by {signal_name(-returned)}"
            else:
                code = 0 if returned in self.config.success_exit else returned
                what = f"exited with {returned}"
        if stop.timed_out:
            code = 124
        reason = "; ".join([f"exiting with {code}: {self.shown_command()} {what}", *stop.events])
        decided = stop.timed_out or stop.killing
        self.log.emit("warning" if decided and code else "info",
                      f"{reason} (ran {time.monotonic() - self.started:.1f} s)", status=code)
        if code:
            self.write_failure(reason)
        return code

    def write_failure(self, reason: str) -> None:
        if self.plan.mode != "train":
            return
        from sminit.sagemaker import write_failure

        write_failure(self.config.ml_root, f"sminit: {reason}\n", self.log)
