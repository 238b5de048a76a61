"""Wires sminit together: config, plan, checks, the child, the wait loop and the exit status.

Reading order: `config` parses the command line and SMINIT_* variables, `plan` resolves them into
the one settings object (`Plan`), `child` starts the command. Everything else is imported late,
when first needed, so that none of it delays the job's start (tests/test_layout.py keeps it so):
`check` (--check), `gpu` and `sagemaker` (the GPU check, the config files), `subreaper`,
`executable` (why exec failed), and once the job runs `endings`, `loop`, `stop` (with `handlers`
and `proctree`) and `reports` (where an ending is written).
"""

from __future__ import annotations

import os
import _signal
import time

from sminit import config
from sminit.child import SpawnError, controlling_terminal, original_environment, spawn
from sminit.log import Log, quote_command, write_line
from sminit.plan import JOB_MODES, Plan, resolve
from sminit.signals import STOP_SIGNALS, signal_name

TYPE_CHECKING = False  # typing's own would cost an import at every start; mypy knows this name
if TYPE_CHECKING:
    from sminit.endings import Witness
    from sminit.stop import StopSequence

# Exit statuses of a shell or Python that could not run its script (126, 127: not executable or
# not found; 2: Python's "can't open file"), and how soon after the start they suggest it.
QUICK_FAILURES = (2, 126, 127)
QUICK_FAILURE_SECONDS = 1.0
# Characters of the command in the exit line: the facts after it must fit into the failure file.
SHOWN_COMMAND = 160


def main(argv: list[str], original_mask: set[int]) -> int:
    """Run sminit; returns the exit status. Signals are already blocked by the entry point."""
    started, started_wall, parent = time.monotonic(), time.time(), os.getppid()
    environ = dict(os.environ)
    try:
        options = config.parse(argv, environ)
        if options.action:
            write_line(1, config.USAGE if options.action == "help" else config.version_text())
            return 0
        log = Log(options.log_level, options.log_format)
        plan = resolve(options, environ)
    except config.UsageError as exc:
        report_usage_error(str(exc), *config.json_wanted(argv, environ))
        return 125
    if options.check:
        from sminit.check import run_check

        return run_check(plan)
    return Run(plan, log, started, started_wall).execute(original_mask, parent)


def report_usage_error(message: str, check_json: bool, log_json: bool) -> None:
    """One line in the form asked for: a --check --json report on stdout, a JSON record, or text."""
    if check_json:
        import json

        write_line(1, json.dumps({"ok": False, "usage_error": message, "problems": [message],
                                  "warnings": []}) + "\n")
    elif log_json:
        Log("error", "json").error(message, status=125)
    else:
        write_line(Log("error").fd, f"[sminit] {message}\n")


class Run:
    """One supervised run of the plan's command, and how it ended."""

    def __init__(self, plan: Plan, log: Log, started: float, started_wall: float) -> None:
        self.plan = plan
        self.log = log
        self.started = started
        self.started_wall = started_wall
        self.spawned = started

    def execute(self, original_mask: set[int], parent: int) -> int:
        plan, log = self.plan, self.log
        if plan.problem:
            return self.fail(*plan.problem)
        for warning in plan.warnings:
            log.warning(warning)
        gpu_problem = self.check_gpus()
        if gpu_problem:
            return self.fail(125, gpu_problem)
        self.become_reaper()
        self.watch_parent(parent)
        if plan.max_runtime and time.monotonic() - self.started >= plan.max_runtime:
            return self.fail(124, f"max runtime of {plan.max_runtime:g} s passed before the command started: "
                                  "not starting it")
        pending = _signal.sigpending() & STOP_SIGNALS
        if pending:
            signo = min(pending)
            return self.fail(128 + signo,
                             f"received {signal_name(signo)} before the command started: not starting it")
        tty = controlling_terminal()
        environment = original_environment()
        try:
            pid = spawn(plan.command, environment, original_mask, tty)
        except SpawnError as exc:
            from sminit.executable import explain_failure  # why, in words: only now, off the start-up path

            path = environment.get(b"PATH")
            return self.fail(*explain_failure(plan.command[0], exc.errno,
                                              None if path is None else os.fsdecode(path)))
        finally:
            if tty is not None:
                os.close(tty)
        spawned = self.spawned = time.monotonic()
        # Everything below runs while the command already does: none of it delays its start.
        from sminit.endings import Witness
        from sminit.loop import supervise
        from sminit.stop import StopSequence
        from sminit.subreaper import set_process_name

        set_process_name("sminit")
        witness = Witness(plan)
        runtime = f"{plan.max_runtime:g} s" if plan.max_runtime else "none"
        local = ", SageMaker local mode" if plan.local else ""
        log.info(f"started {quote_command(plan.command)} as pid {pid} (mode {plan.mode}{local}, "
                 f"grace {plan.grace:g} s, max runtime {runtime})",
                 pid=pid, mode=plan.mode, local=plan.local, grace=plan.grace, max_runtime=plan.max_runtime)
        if plan.mode in JOB_MODES:
            from sminit.sagemaker import config_files

            _states, problems, warnings = config_files(plan.ml_root, plan.mode)
            for line in problems + warnings:  # the words of --check
                log.warning(line)
        stop = StopSequence(
            log, pid, grace=plan.grace, cleanup_grace=plan.cleanup_grace,
            forward=plan.forward, rewrite=plan.rewrite,
            max_runtime=plan.max_runtime, warn_before=plan.warn_before,
            warn_signal=plan.warn_signal, now=self.started, spawned=spawned,
        )
        status = supervise(pid, stop, log)
        return self.finish(status, stop, witness)

    def shown_command(self) -> str:
        shown = quote_command(self.plan.command)
        return shown if len(shown) <= SHOWN_COMMAND else shown[:SHOWN_COMMAND - 3] + "..."

    def check_gpus(self) -> str | None:
        """The NVIDIA check (README: Using sminit on SageMaker), when this plan requires GPUs."""
        requirement = self.plan.require_gpus
        if requirement == "none" or (requirement == "auto" and self.plan.mode not in JOB_MODES):
            return None
        from sminit.gpu import gpu_report

        report = gpu_report(self.plan)
        for warning in report.warnings:
            self.log.warning(warning)
        return report.problem

    def become_reaper(self) -> None:
        from sminit.subreaper import become_subreaper

        if os.getpid() == 1:
            return
        try:
            how = become_subreaper()
            self.log.debug(f"registered as child subreaper ({how})")
        except OSError as exc:
            self.log.warning(f"not PID 1 and cannot become a child subreaper ({exc.strerror}): "
                             "orphans will not be reaped by sminit")

    def watch_parent(self, parent: int) -> None:
        """--parent-death-signal: the kernel signals us when the parent dies; if it already has,
        the signal is raised now, blocked, so it is handled exactly as one from the kernel."""
        signo = self.plan.parent_death_signal
        if signo is None:
            return
        if os.getpid() == 1:
            self.log.debug("PID 1: --parent-death-signal does not apply (its parent is outside)")
            return
        from sminit.subreaper import set_parent_death_signal

        try:
            set_parent_death_signal(signo)
        except OSError as exc:
            self.log.warning(f"cannot set the parent-death signal ({exc.strerror}): "
                             "the parent's death will go unnoticed")
            return
        if os.getppid() != parent:
            self.log.info(f"parent {parent} is already gone: acting on {signal_name(signo)} now")
            os.kill(os.getpid(), signo)

    def fail(self, code: int, message: str) -> int:
        """sminit's own decision not to run: one error line, the failure file, the status."""
        self.log.error(f"exiting with {code}: {message}", status=code)
        self.report_ending(f"exiting with {code}: {message}")
        return code

    def finish(self, status: int | None, stop: StopSequence, witness: Witness) -> int:
        """The exit status sminit passes on (the child's, decoded), after --success-exit and the max
        runtime; the exit line; the ending where the platform shows it."""
        from sminit.endings import exit_status  # loaded with Witness already

        code = exit_status(status)
        if code in self.plan.success_exit:
            code = 0
        if stop.timed_out:
            code = 124
        ending = witness.explain(status, stop.sent_sigkill, failed=code != 0)
        resources, usage = witness.resources(time.monotonic() - self.started)
        what = f"exiting with {code}: {self.shown_command()} {ending.what}"
        reason = "; ".join([what, *ending.facts, *self.quick_failure_hints(status), *stop.events])
        decided = stop.timed_out or stop.killing
        self.log.emit("warning" if decided and code else "info", f"{reason}; {resources}",
                      status=code, stopped_by=stop.stopped_by, **ending.fields, **usage)
        if code:
            self.report_ending(f"{reason}; {resources}")
        return code

    def quick_failure_hints(self, status: int | None) -> list[str]:
        """A job that exits 126, 127 or 2 within a second is most often one whose script a shell or
        Python could not run: missing, or CRLF line endings (exec itself accepted the command)."""
        if (status is None or not os.WIFEXITED(status) or os.WEXITSTATUS(status) not in QUICK_FAILURES
                or time.monotonic() - self.spawned > QUICK_FAILURE_SECONDS):
            return []
        from sminit.executable import command_hints

        return [f"hint: {hint}" for hint in command_hints(self.plan.command, self.plan.path)]

    def report_ending(self, reason: str) -> None:
        """A non-zero exit, explained where the platform shows it: the failure file (training),
        the message file (processing), the termination log (Kubernetes, in every mode)."""
        if self.plan.mode not in JOB_MODES and self.plan.termination_log is None:
            return
        from sminit import reports

        # One line, as in the log: a command's source may hold newlines.
        text = "sminit: " + reason.replace("\n", " ") + "\n"
        if self.plan.mode == "train":
            reports.write_failure(self.plan.ml_root, text, self.log, self.started_wall)
        elif self.plan.mode == "processing":
            reports.write_exit_message(self.plan.ml_root, text, self.log, self.started_wall)
        if self.plan.termination_log is not None:
            reports.write_termination_log(self.plan.termination_log, text, self.log)
