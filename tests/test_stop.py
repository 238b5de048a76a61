"""Exit status, the stop sequence (grace, escalation, clean-up) and reaping."""

from __future__ import annotations

import os
import signal
import sys
import time

import psutil
import pytest

from conftest import RECORDER, run_sminit, wait_until
from sminit.testing import zombie_children


@pytest.mark.parametrize("script, expected", [
    ("exit 0", 0), ("exit 3", 3), ("exit 255", 255), ("kill -USR2 $$", 128 + signal.SIGUSR2),
])
def test_exit_status(as_pid1, script, expected):
    assert run_sminit(["--", "sh", "-c", script], pid1=as_pid1).returncode == expected


def test_exec_failures(tmp_path):
    result = run_sminit(["--", str(tmp_path / "missing")])
    assert result.returncode == 127
    assert "No such file or directory" in result.stderr and "missing" in result.stderr
    result = run_sminit(["--", "no-such-command-anywhere"])
    assert result.returncode == 127
    assert run_sminit(["--", ""]).returncode == 127
    plain = tmp_path / "plain"
    plain.write_text("not a program\n")
    result = run_sminit(["--", str(plain)])
    assert result.returncode == 126 and "Permission denied" in result.stderr
    result = run_sminit(["--", str(tmp_path)])
    assert result.returncode == 126


@pytest.mark.parametrize("codes, env, child, expected", [
    (["-e", "3"], {}, 3, 0),
    (["--success-exit", "3", "-e", "4"], {}, 4, 0),
    ([], {"SMINIT_SUCCESS_EXIT": "2,3"}, 3, 0),
    (["-e", "5"], {"SMINIT_SUCCESS_EXIT": "3"}, 3, 3),  # the command line replaces the list
    (["-e", "3"], {}, 1, 1),
])
def test_success_exit(codes, env, child, expected):
    result = run_sminit([*codes, "--", "sh", "-c", f"exit {child}"], env={**os.environ, **env})
    assert result.returncode == expected


@pytest.mark.parametrize("codes, expected", [
    (["-e", "143"], 0), ([], 128 + signal.SIGTERM), (["-e", "15"], 128 + signal.SIGTERM),
])
def test_success_exit_maps_a_death_by_signal_as_tini_does(start, codes, expected):
    # A shell entrypoint dies of the SIGTERM itself: its status is 128 + 15, which -e 143 names.
    run = start([*codes, "--", "sh", "-c", "echo up; sleep 30 & wait"])
    run.expect("up")
    run.signal(signal.SIGTERM)
    assert run.wait() == expected


def test_success_exit_from_the_environment_covers_signals_too(start):
    run = start(["--", "sh", "-c", "echo up; sleep 30 & wait"], env={"SMINIT_SUCCESS_EXIT": "143"})
    run.expect("up")
    run.signal(signal.SIGTERM)
    assert run.wait() == 0


def test_grace_escalation_reaches_a_grandchild_in_its_own_session(start, as_pid1):
    run = start(["-t", "0.5", "--", *RECORDER, "--ignore-term", "--spawn", "escapee", "--spawn-setsid"],
                pid1=as_pid1)
    run.expect("main ready")
    ready = run.expect("escapee ready")
    escapee_pid, escapee_sid = int(ready.split()[2]), int(ready.split()[-1])
    assert escapee_sid == escapee_pid  # it really left the group and the session
    host_pid = _host_pid(run, escapee_pid)
    run.signal(signal.SIGTERM)
    run.expect("main got SIGTERM")
    assert run.wait() == 128 + signal.SIGKILL
    assert "escapee got SIGTERM" not in run.lines  # not in the group: only the SIGKILL reached it
    assert not psutil.pid_exists(host_pid) or psutil.Process(host_pid).status() == psutil.STATUS_ZOMBIE
    assert "grace expired: SIGKILL" in run.stderr()


def _host_pid(run, pid_in_namespace: int) -> int:
    """The escapee's pid as the test sees it (they differ inside a PID namespace)."""
    for proc in psutil.Process(run.pid).children(recursive=True):
        try:
            with open(f"/proc/{proc.pid}/status") as handle:
                nspid = [line for line in handle if line.startswith("NSpid:")][0].split()[-1]
        except OSError:
            continue
        if int(nspid) == pid_in_namespace:
            return proc.pid
    try:
        return next(p.pid for p in psutil.process_iter() if p.pid == pid_in_namespace)
    except StopIteration:
        raise AssertionError("escapee not found") from None


def test_exits_as_soon_as_the_tree_is_empty(start, as_pid1, tmp_path):
    checkpoint = tmp_path / "model.ckpt"
    run = start(["-t", "600", "--", *RECORDER, "--checkpoint", str(checkpoint), "--exit-code", "0"],
                pid1=as_pid1)
    run.expect("main ready")
    run.signal(signal.SIGTERM)
    assert run.wait(timeout=20) == 0  # long before the 600 s grace
    assert checkpoint.read_text() == "step=42\n"


def test_second_sigterm_is_forwarded_but_does_not_restart_the_clock(start, as_pid1):
    run = start(["-t", "3", "--", *RECORDER, "--ignore-term"], pid1=as_pid1)
    run.expect("main ready")
    first = time.monotonic()
    run.signal(signal.SIGTERM)
    run.expect("main got SIGTERM")
    time.sleep(2)  # the point of the test: a second SIGTERM late in the grace period
    run.signal(signal.SIGTERM)
    run.expect("main got SIGTERM")
    assert run.wait() == 128 + signal.SIGKILL
    assert time.monotonic() - first < 4.5  # SIGKILL at 3 s, not at 2 + 3 s
    assert run.stderr().count("stopping, SIGKILL in") == 1


def test_leftovers_get_sigterm_then_sigkill_after_the_cleanup_grace(start, as_pid1, tmp_path):
    script = (
        f"{' '.join(RECORDER)} --tag polite & "
        f"{' '.join(RECORDER)} --tag stubborn --ignore-term --setsid & "
        "sleep 0.5; exit 7"
    )
    run = start(["--cleanup-grace", "0.5", "--", "sh", "-c", script], pid1=as_pid1)
    run.expect_all(["polite ready", "stubborn ready"])
    assert run.wait() == 7
    assert "polite got SIGTERM" in run.lines and "stubborn got SIGTERM" in run.lines
    assert "cleanup grace expired" in run.stderr()


def test_leftovers_that_exit_on_sigterm_end_the_run_at_once(start, as_pid1):
    run = start(["--cleanup-grace", "600", "--", "sh", "-c",
                 f"{' '.join(RECORDER)} --tag polite & sleep 0.5"],
                pid1=as_pid1)
    run.expect("polite ready")
    assert run.wait() == 0
    assert "polite got SIGTERM" in run.lines


def test_main_child_exit_during_a_group_stop_terms_only_those_outside_the_group(start, as_pid1):
    run = start(["--forward", "group", "-t", "0.5", "--", *RECORDER, "--spawn", "sibling", "--spawn-setsid"],
                pid1=as_pid1)
    run.expect_all(["main ready", "sibling ready"])
    run.signal(signal.SIGTERM)
    assert run.wait() == 0  # main exits 0 on SIGTERM
    assert run.lines.count("sibling got SIGTERM") == 1  # from the leftover clean-up, once
    assert "grace expired" in run.stderr()  # the sibling ignores SIGTERM: SIGKILL at the grace's end


def test_after_the_handlers_exit_what_is_left_gets_a_second_then_the_stop_by_the_rule(start, as_pid1):
    run = start(["-t", "4", "--", *RECORDER, "--spawn", "sibling", "--spawn-setsid"], pid1=as_pid1)
    run.expect_all(["main ready", "sibling ready"])
    stopped = time.monotonic()
    run.signal(signal.SIGTERM)
    run.expect("main got SIGTERM")
    run.expect("sibling got SIGTERM")  # it handles SIGTERM (and ignores it): the rule sends it there
    assert time.monotonic() - stopped >= 1.0  # the second that what is left gets to end on its own
    assert run.wait() == 0  # the main child's status; the sibling dies of the grace's SIGKILL
    assert run.lines.count("sibling got SIGTERM") == 1
    assert "grace expired" in run.stderr() and "delivering it again" in run.stderr()


ORPHAN_MAKER = """
import os, sys
for _ in range(int(sys.argv[1])):
    pid = os.fork()
    if pid == 0:
        if os.fork() == 0:
            os._exit(0)          # the grandchild: an orphan once its parent is gone
        os._exit(0)
    os.waitpid(pid, 0)
print("made", flush=True)
sys.stdin.readline()
"""


def test_a_thousand_orphans_are_reaped(start, as_pid1):
    import subprocess

    run = start(["--", sys.executable, "-c", ORPHAN_MAKER, "1000"], pid1=as_pid1, stdin=subprocess.PIPE)
    run.expect("made", timeout=60)
    left = wait_until(lambda: zombie_children(run.pid) == 0, timeout=10)
    assert left, f"{zombie_children(run.pid)} zombies"
    run.proc.stdin.close()
    assert run.wait() == 0


def test_no_wake_ups_while_the_child_sleeps(start, as_pid1):
    run = start(["--", *RECORDER], pid1=as_pid1)
    run.expect("main ready")

    def switches() -> int:
        with open(f"/proc/{run.pid}/status") as handle:
            return int([line for line in handle if line.startswith("voluntary_ctxt_switches")][0].split()[1])

    before = switches()
    time.sleep(1.5)  # the measurement window: tini would wake once a second here
    assert switches() == before
    run.signal(signal.SIGTERM)
    assert run.wait() == 0
