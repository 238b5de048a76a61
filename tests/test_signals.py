"""Forwarding: every signal, group or child alone, rewrites, SIGCHLD, storms, early signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from conftest import RECORDER, SIGNALS_TO_FORWARD, SMINIT, run_sminit
from sminit.signals import signal_name


def test_every_forwardable_signal_reaches_the_child(start, as_pid1):
    run = start(["--", *RECORDER], pid1=as_pid1)
    run.expect("main ready")
    for signo in SIGNALS_TO_FORWARD:
        run.signal(signo)
        run.expect(f"main got {signal_name(signo)}")
    run.signal(signal.SIGTERM)
    run.expect("main got SIGTERM")
    assert run.wait() == 0


def test_sigchld_is_not_forwarded(start, as_pid1):
    run = start(["--", *RECORDER], pid1=as_pid1)
    run.expect("main ready")
    run.signal(signal.SIGCHLD)
    run.signal(signal.SIGUSR1)
    assert run.expect("main got") == "main got SIGUSR1"
    run.signal(signal.SIGTERM)
    assert run.wait() == 0
    assert "main got SIGCHLD" not in run.lines


def test_signals_reach_the_whole_group_through_a_shell(start, as_pid1):
    run = start(["--", "/bin/sh", "-c", f"{' '.join(RECORDER)} --tag worker; echo shell-done"], pid1=as_pid1)
    run.expect("worker ready")
    run.signal(signal.SIGUSR1)
    run.expect("worker got SIGUSR1")


@pytest.mark.parametrize("options, helper_too", [
    ([], False), (["--forward", "handlers"], False), (["--forward", "group"], True),
    (["--forward", "child"], False), (["--single-child"], False),
])
def test_where_signals_go_with_each_forward_mode(start, as_pid1, options, helper_too):
    # The helper is the main child's child and handles every signal too: by the rule, the main
    # child handles them first, so its children are its own business.
    run = start([*options, "-t", "0.3", "--", *RECORDER, "--spawn", "helper"], pid1=as_pid1)
    run.expect("main ready")
    run.expect("helper ready")
    run.signal(signal.SIGUSR2)
    run.expect("main got SIGUSR2")
    run.signal(signal.SIGHUP)
    run.expect("main got SIGHUP")
    run.signal(signal.SIGTERM)
    assert run.wait() == 0
    # The helper's SIGTERM comes from the clean-up after the main child exited.
    helper_lines = [line for line in run.lines if line.startswith("helper got") and "SIGTERM" not in line]
    if helper_too:
        assert "helper got SIGUSR2" in helper_lines and "helper got SIGHUP" in helper_lines
    else:
        assert helper_lines == []


def test_single_child_from_the_environment(start):
    run = start(["-t", "0.3", "--", *RECORDER, "--spawn", "helper"], env={"SMINIT_SINGLE_CHILD": "yes"})
    run.expect("main ready")
    run.expect("helper ready")
    run.signal(signal.SIGUSR1)
    run.expect("main got SIGUSR1")
    run.signal(signal.SIGTERM)
    assert run.wait() == 0
    assert "helper got SIGUSR1" not in run.lines


def test_rewrite_and_drop(start, as_pid1):
    run = start(["-r", "USR1:USR2", "--rewrite", "SIGHUP:0", "--", *RECORDER], pid1=as_pid1)
    run.expect("main ready")
    run.signal(signal.SIGHUP)  # dropped: the next line the child prints is about USR1
    run.signal(signal.SIGUSR1)
    assert run.expect("main got") == "main got SIGUSR2"
    run.signal(signal.SIGTERM)
    assert run.wait() == 0
    assert "main got SIGHUP" not in run.lines and "main got SIGUSR1" not in run.lines


def test_rewrite_from_the_environment_is_replaced_by_the_command_line(start):
    run = start(["-r", "USR1:WINCH", "--", *RECORDER], env={"SMINIT_REWRITE": "USR2:0,HUP:0"})
    run.expect("main ready")
    run.signal(signal.SIGUSR2)
    run.expect("main got SIGUSR2")  # the variable's list was replaced, not merged
    run.signal(signal.SIGUSR1)
    run.expect("main got SIGWINCH")
    run.signal(signal.SIGTERM)
    assert run.wait() == 0


def test_rewritten_stop_signal_still_starts_the_grace_clock(start, as_pid1):
    run = start(["-t", "0.5", "-r", "TERM:USR1", "--", *RECORDER], pid1=as_pid1)
    run.expect("main ready")
    run.signal(signal.SIGTERM)
    run.expect("main got SIGUSR1")
    assert run.wait() == 128 + signal.SIGKILL
    assert "main got SIGTERM" not in run.lines
    assert "grace expired" in run.stderr()


def test_sigint_is_a_stop_signal_too(start, as_pid1):
    run = start(["-t", "0.5", "--", *RECORDER, "--ignore-term"], pid1=as_pid1)
    run.expect("main ready")
    run.signal(signal.SIGINT)
    run.expect("main got SIGINT")
    assert run.wait() == 128 + signal.SIGKILL


def test_signal_storm_then_sigterm(start, as_pid1):
    run = start(["--", *RECORDER], pid1=as_pid1)
    run.expect("main ready")
    storm = [signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP, signal.SIGWINCH, signal.SIGRTMIN,
             signal.SIGRTMIN + 3]
    pid = run.pid
    for index in range(1000):
        os.kill(pid, storm[index % len(storm)])
    # Standard signals merge, real-time ones queue: every kind arrives at least once.
    run.expect_all([f"main got {signal_name(signo)}" for signo in storm], timeout=30)
    run.signal(signal.SIGTERM)
    run.expect("main got SIGTERM", timeout=30)
    assert run.wait() == 0
    assert "Traceback" not in run.stderr()


def test_a_stop_signal_pending_before_the_start_means_the_command_never_runs(tmp_path):
    marker = tmp_path / "ran"

    def pending_sigterm():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        os.kill(os.getpid(), signal.SIGTERM)  # stays pending across exec into sminit

    result = subprocess.run(
        [*SMINIT, "--", "touch", str(marker)],
        capture_output=True, text=True, timeout=20, preexec_fn=pending_sigterm,
    )
    assert result.returncode == 128 + signal.SIGTERM
    assert "before the command started" in result.stderr
    assert not marker.exists()


def test_other_signals_pending_before_the_start_are_delivered_not_lost():
    def pending_sigusr1():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        os.kill(os.getpid(), signal.SIGUSR1)

    # The child inherits the original mask (USR1 blocked), so the forwarded USR1 waits for
    # it, pending, until it installs a handler and unblocks.
    child = (
        "import os, signal\n"
        "signal.signal(signal.SIGUSR1, lambda *a: (print('got USR1', flush=True), os._exit(0)))\n"
        "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})\n"
        "signal.pause()\n"
    )
    result = subprocess.run(
        [*SMINIT, "--", sys.executable, "-c", child],
        capture_output=True, text=True, timeout=20, preexec_fn=pending_sigusr1,
    )
    assert result.returncode == 0 and result.stdout == "got USR1\n"


def test_sminit_never_stops_itself_on_tstp_ttin_ttou(start, as_pid1):
    run = start(["--", *RECORDER], pid1=as_pid1)
    run.expect("main ready")
    for signo in (signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU):
        run.signal(signo)
        run.expect(f"main got {signal_name(signo)}")
    with open(f"/proc/{run.pid}/stat") as handle:
        assert handle.read().rsplit(")", 1)[1].split()[0] != "T"
    run.signal(signal.SIGTERM)
    assert run.wait() == 0


def test_json_log_lines(start):
    import json

    run = start(["--log-format", "json", "-v", "--", *RECORDER])
    run.expect("main ready")
    run.signal(signal.SIGUSR1)
    run.expect("main got SIGUSR1")
    run.signal(signal.SIGTERM)
    assert run.wait() == 0
    records = [json.loads(line) for line in run.stderr().splitlines()]
    # Every line says it is sminit's, so it can be told from the job's own JSON lines.
    assert all({"ts", "level", "msg"} <= record.keys() and record["logger"] == "sminit" for record in records)
    messages = " | ".join(record["msg"] for record in records)
    assert "started" in messages and "exiting with 0" in messages
    delivered = next(record for record in records if record.get("signal") == "SIGUSR1" and "rule" in record)
    main_pid = int(next(line for line in run.lines if line.startswith("main ready")).split()[2])
    assert delivered["rule"] == "handlers" and delivered["targets"] == [main_pid]
    assert delivered["msg"].startswith("SIGUSR1 to pid ") and "which handles it" in delivered["msg"]


def test_json_stop_lines_carry_their_facts_as_fields(start):
    import json

    run = start(["--log-format", "json", "-t", "0.3", "--", *RECORDER, "--ignore-term", "--spawn", "helper"])
    run.expect_all(["main ready", "helper ready"])
    run.signal(signal.SIGTERM)
    assert run.wait() == 128 + signal.SIGKILL
    records = [json.loads(line) for line in run.stderr().splitlines()]
    received = next(r for r in records if r["msg"].startswith("received SIGTERM"))
    assert received["signal"] == "SIGTERM"
    assert received["sender_pid"] == os.getpid() and received["grace"] == 0.3
    delivered = next(r for r in records if r.get("rule") and r["signal"] == "SIGTERM")
    assert delivered["rule"] == "handlers" and delivered["received"] == "SIGTERM"
    assert len(delivered["targets"]) == 1 and "recorder.py" in delivered["commands"][0]
    assert delivered["left"] == 1 and "--tag helper" in delivered["left_running"][0]
    expired = next(r for r in records if r["msg"].startswith("grace expired"))
    assert expired["signal"] == "SIGKILL" and expired["signalled"] == 2 and expired["grace"] == 0.3
    assert "(2 processes)" in expired["msg"]
    final = records[-1]
    assert final["status"] == 137 and final["stopped_by"] == "SIGTERM" and final["logger"] == "sminit"


# -- parent-death signal -------------------------------------------------------------------

# Starts the command as its child, prints the child's pid, and exits when its stdin closes.
PARENT = (
    "import subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[1:])\n"
    "print(child.pid, flush=True)\n"
    "sys.stdin.readline()\n"
)


def _reap(pid: int, timeout: float = 20) -> int:
    """Wait for a process reparented to this one (pytest is a subreaper: conftest)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"process {pid} did not end")


def test_the_parent_s_death_stops_the_job(tmp_path):
    errors = tmp_path / "stderr"
    with open(errors, "w") as stderr:
        command = [sys.executable, "-c", PARENT, *SMINIT, "--parent-death-signal", "TERM", "--", *RECORDER]
        parent = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                  text=True)
    sminit_pid = int(parent.stdout.readline())
    assert parent.stdout.readline().startswith("main ready")
    parent.stdin.close()  # the parent exits: the kernel sends sminit SIGTERM
    assert parent.wait(20) == 0
    assert parent.stdout.readline() == "main got SIGTERM\n"
    assert _reap(sminit_pid) == 0
    parent.stdout.close()
    assert "received SIGTERM" in errors.read_text()


ALREADY_GONE = (
    "import os, sys, time\n"
    "import sminit.app as app\n"
    "real = app.Run.watch_parent\n"
    "def late(self, parent):\n"
    "    print('waiting', flush=True)\n"
    "    while os.getppid() == parent:  # the parent dies before the kernel could be asked to watch it\n"
    "        time.sleep(0.01)\n"
    "    real(self, parent)\n"
    "app.Run.watch_parent = late\n"
    "from sminit.__main__ import run\n"
    "run()\n"
)


def test_a_parent_already_gone_is_acted_on_and_the_command_never_runs(tmp_path):
    marker = tmp_path / "ran"
    errors = tmp_path / "stderr"
    with open(errors, "w") as stderr:
        parent = subprocess.Popen([sys.executable, "-c", PARENT, sys.executable, "-c", ALREADY_GONE,
                                   "--parent-death-signal", "TERM", "--", "touch", str(marker)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)
    sminit_pid = int(parent.stdout.readline())
    assert parent.stdout.readline() == "waiting\n"
    parent.stdin.close()
    assert parent.wait(20) == 0
    assert _reap(sminit_pid) == 128 + signal.SIGTERM
    parent.stdout.close()
    assert not marker.exists()
    text = errors.read_text()
    assert "is already gone: acting on SIGTERM now" in text
    assert "before the command started: not starting it" in text


def test_parent_death_signal_does_not_apply_to_pid1(as_pid1):
    result = run_sminit(["-v", "--parent-death-signal", "TERM", "--", "true"], pid1=as_pid1)
    assert result.returncode == 0
    assert ("does not apply" in result.stderr) == as_pid1


def test_quiet_hides_info_lines():
    result = run_sminit(["-q", "--", "true"])
    assert result.returncode == 0 and result.stderr == ""
    result = run_sminit(["--", "true"], env={**os.environ, "SMINIT_LOG_LEVEL": "warning"})
    assert result.returncode == 0 and result.stderr == ""
