"""Where signals go (README "Where signals go"), with real process trees: the training process
with DataLoader-like workers, the toolkit's relay, torchrun-like ranks, shells, tee, a daemonized
server, a job that installs its handler late. Each in PID-1 mode and as a subreaper.
(test_real_jobs.py runs real PyTorch and the real toolkit; test_stop_sequence.py the rule alone.)"""

from __future__ import annotations

import signal
import sys
import time

import pytest

from conftest import PROGRAMS, deliveries, json_records
from sminit.signals import signal_name

PYTHON = sys.executable
TRAINER = [PYTHON, str(PROGRAMS / "trainer.py")]
RELAY = [PYTHON, str(PROGRAMS / "relay.py")]
LAUNCHER = [PYTHON, str(PROGRAMS / "launcher.py")]
RECORDER_MAIN = [PYTHON, str(PROGRAMS / "recorder.py")]


def trainer(checkpoint, *options: str) -> list[str]:
    return [*TRAINER, "--checkpoint", str(checkpoint), *options]


def shell_words(words: list[str]) -> str:
    return " ".join(words)


JSON = ["--log-format", "json"]


def test_the_training_process_alone_gets_the_stop_and_its_workers_survive_the_save(start, as_pid1, tmp_path):
    checkpoint = tmp_path / "model.ckpt"
    run = start([*JSON, "--", *trainer(checkpoint, "--workers", "2")], pid1=as_pid1)
    run.expect("trainer ready")
    run.signal(signal.SIGTERM)
    assert run.wait() == 0
    assert checkpoint.read_text().count("part") == 5 and "trainer done" in run.lines
    [delivery] = deliveries(run.stderr(), "SIGTERM")
    assert delivery["rule"] == "handlers" and len(delivery["targets"]) == 1 and delivery["left"] == 2


def test_with_forward_group_the_workers_die_and_the_checkpoint_is_lost(start, tmp_path):
    # The control: the old delivery (tini -g, dumb-init) destroys this checkpoint.
    checkpoint = tmp_path / "model.ckpt"
    run = start(["--forward", "group", "--", *trainer(checkpoint, "--workers", "2")])
    run.expect("trainer ready")
    run.signal(signal.SIGTERM)
    assert run.wait() == 1
    assert not checkpoint.exists() and "exited unexpectedly" in run.stderr()


def test_the_warning_and_the_deadline_reach_the_training_process_only(start, as_pid1, tmp_path):
    checkpoint = tmp_path / "model.ckpt"
    run = start([*JSON, "--max-runtime", "2.5", "--warn-before", "1.5", "--",
                 *trainer(checkpoint, "--workers", "2", "--warn")], pid1=as_pid1)
    assert run.wait() == 124
    assert (tmp_path / "model.ckpt.warn").read_text().count("part") == 5
    assert checkpoint.read_text().count("part") == 5
    assert "trainer done" in run.lines, (run.lines, run.stderr())
    assert [d["rule"] for d in deliveries(run.stderr())] == ["handlers", "handlers"]


def test_the_warning_goes_past_a_launcher_to_its_ranks_and_the_stop_to_the_launcher(start, as_pid1, tmp_path):
    run = start([*JSON, "--max-runtime", "4", "--warn-before", "2.5", "--", *LAUNCHER, str(tmp_path), "2"],
                pid1=as_pid1)
    run.expect_all(["launcher ready", "rank0 ready", "rank1 ready"])
    assert run.wait(timeout=30) == 124  # the max runtime's stop; torchrun itself exits 1 after a stop
    for rank in (0, 1):
        assert (tmp_path / f"rank-{rank}.warn").read_text().count("part") == 5
        assert (tmp_path / f"rank-{rank}").read_text().count("part") == 5
    warning, stop = deliveries(run.stderr())
    assert warning["signal"] == "SIGUSR1" and len(warning["targets"]) == 2
    assert all("--tag rank" in command for command in warning["commands"])
    assert stop["signal"] == "SIGTERM" and len(stop["targets"]) == 1 and "launcher.py" in stop["commands"][0]
    assert "launcher done [0, 0]" in run.lines  # it survived the warning and relayed the stop


def test_the_toolkit_relay_is_not_signalled_and_relays_every_line_of_the_save(start, as_pid1, tmp_path):
    checkpoint = tmp_path / "model.ckpt"
    run = start([*JSON, "--", *RELAY, *trainer(checkpoint)], pid1=as_pid1)
    run.expect("relayed: trainer ready")
    run.signal(signal.SIGTERM)
    assert run.wait() == 0
    assert checkpoint.read_text().count("part") == 5
    assert "relayed: trainer saved model.ckpt" in run.lines and "relayed: trainer done" in run.lines
    [delivery] = deliveries(run.stderr(), "SIGTERM")
    assert "trainer.py" in delivery["commands"][0] and "relay.py" in delivery["left_running"][0]


def test_behind_sh_c_python_alone_gets_it(start, as_pid1, tmp_path):
    checkpoint = tmp_path / "model.ckpt"
    script = shell_words(trainer(checkpoint, "--workers", "2")) + "; echo shell-after $?"
    run = start([*JSON, "--", "sh", "-c", script], pid1=as_pid1)
    run.expect("trainer ready")
    run.signal(signal.SIGTERM)
    assert run.wait() == 0
    assert checkpoint.read_text().count("part") == 5 and "shell-after 0" in run.lines


def test_tee_outlives_the_job_s_last_line(start, as_pid1, tmp_path):
    checkpoint, log = tmp_path / "model.ckpt", tmp_path / "log"
    run = start(["--", "sh", "-c", shell_words(trainer(checkpoint)) + f" 2>&1 | tee {log}"], pid1=as_pid1)
    run.expect("trainer ready")
    run.signal(signal.SIGTERM)
    assert run.wait() == 0
    assert checkpoint.exists() and log.read_text().splitlines()[-1] == "trainer done"


def test_a_shell_script_that_exits_with_its_command_s_status_is_a_clean_stop(start, as_pid1, tmp_path):
    checkpoint = tmp_path / "model.ckpt"
    script = tmp_path / "train.sh"
    script.write_text(shell_words(trainer(checkpoint)) + "\n")  # no trap, no exec
    ml = tmp_path / "ml"
    (ml / "output").mkdir(parents=True)
    run = start(["--mode", "train", "--ml-root", str(ml), "--", "/bin/sh", str(script)], pid1=as_pid1)
    run.expect("trainer ready")
    run.signal(signal.SIGTERM)
    assert run.wait() == 0  # sh exits with python's 0: no --success-exit 143 needed
    assert checkpoint.exists() and not (ml / "output" / "failure").exists()


def test_the_warning_reaches_python_behind_a_shell_that_does_not_trap_it(start, as_pid1, tmp_path):
    checkpoint = tmp_path / "model.ckpt"
    script = tmp_path / "train.sh"
    script.write_text(shell_words(trainer(checkpoint, "--warn")) + "\necho shell-after $?\n")
    run = start([*JSON, "--max-runtime", "2", "--warn-before", "1", "--", "/bin/sh", str(script)],
                pid1=as_pid1)
    assert run.wait() == 124
    assert (tmp_path / "model.ckpt.warn").exists() and checkpoint.exists()
    assert "shell-after 0" in run.lines  # the shell lived through the warning and the stop


def test_a_trapping_bash_and_the_python_below_both_get_it(start, as_pid1, tmp_path):
    checkpoint = tmp_path / "model.ckpt"
    script = f"trap 'echo bash-trapped' TERM; {shell_words(trainer(checkpoint))} & wait; wait; echo bash-end"
    run = start([*JSON, "--", "bash", "-c", script], pid1=as_pid1)
    run.expect("trainer ready")
    run.signal(signal.SIGTERM)
    assert run.wait() == 0
    run_lines = run.lines
    assert "bash-trapped" in run_lines and "trainer done" in run_lines and "bash-end" in run_lines
    [delivery] = deliveries(run.stderr(), "SIGTERM")
    assert len(delivery["targets"]) == 2


def test_the_next_command_of_a_script_never_runs_on_unstopped(start, as_pid1, tmp_path):
    first, second = tmp_path / "a.ckpt", tmp_path / "b.ckpt"
    script = (f"{shell_words(trainer(first, '--tag', 'a'))}; "
              f"{shell_words(trainer(second, '--tag', 'b', '--handler-delay', '0'))}; echo script-end")
    run = start([*JSON, "-t", "20", "--", "sh", "-c", script], pid1=as_pid1)
    run.expect("a ready")
    run.signal(signal.SIGTERM)
    run.expect("b ready")
    assert run.wait() == 0  # b.py handles it: it saves and exits 0, then the script ends
    assert first.exists() and second.exists()
    assert [len(d["targets"]) for d in deliveries(run.stderr(), "SIGTERM")] == [1, 1]
    assert "delivering it again" in run.stderr()


def test_a_job_with_no_handler_gets_it_in_its_group_at_once(start, as_pid1):
    run = start([*JSON, "--", "sh", "-c", "echo up; sleep 60; echo never"], pid1=as_pid1)
    run.expect("up")
    time.sleep(1.0)  # past the job's first second: nothing is held any more
    run.signal(signal.SIGTERM)
    assert run.wait() == 128 + signal.SIGTERM
    assert [d["rule"] for d in deliveries(run.stderr())] == ["no_handler"]
    assert "never" not in run.lines


def test_a_daemonized_server_s_orphan_gets_it_and_the_tail_is_left_until_it_exits(start, as_pid1, tmp_path):
    checkpoint = tmp_path / "server.state"
    script = f"({shell_words(trainer(checkpoint, '--tag', 'server'))} &); exec tail -f /dev/null"
    run = start([*JSON, "-t", "20", "--", "sh", "-c", script], pid1=as_pid1)
    run.expect("server ready")
    run.signal(signal.SIGTERM)
    assert run.wait() == 128 + signal.SIGTERM  # tail handles nothing: it gets SIGTERM after the server
    assert checkpoint.read_text().count("part") == 5
    first, second = deliveries(run.stderr(), "SIGTERM")
    assert first["rule"] == "handlers" and "trainer.py" in first["commands"][0]
    assert second["rule"] == "no_handler"


def test_a_stop_at_50_ms_waits_for_a_handler_installed_at_400_ms(start, as_pid1, tmp_path):
    checkpoint = tmp_path / "model.ckpt"
    run = start([*JSON, "--", *trainer(checkpoint, "--handler-delay", "0.4")], pid1=as_pid1)
    started = next(r for r in _poll_records(run) if r["msg"].startswith("started "))
    assert started
    time.sleep(0.05)
    run.signal(signal.SIGTERM)
    assert run.wait() == 0
    assert checkpoint.read_text().count("part") == 5
    rules = [d["rule"] for d in deliveries(run.stderr())]
    assert rules in (["held", "handlers"], ["handlers"])  # a slow start may find the handler at once


def test_a_stop_to_sleep_at_its_start_is_held_at_most_a_second(start, as_pid1):
    run = start([*JSON, "--", "sleep", "60"], pid1=as_pid1)
    next(r for r in _poll_records(run) if r["msg"].startswith("started "))
    stopped = time.monotonic()
    run.signal(signal.SIGTERM)
    assert run.wait() == 128 + signal.SIGTERM
    assert time.monotonic() - stopped < 1.0 + 2.0  # held for at most the first second, plus slack
    assert [d["rule"] for d in deliveries(run.stderr())] == ["held", "no_handler"]


def _poll_records(run, timeout: float = 10):
    """sminit's JSON records as they arrive."""
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        found = json_records(run.stderr())
        yield from found[seen:]
        seen = len(found)
        time.sleep(0.005)
    raise AssertionError(f"not seen in {timeout} s: {run.stderr()}")


@pytest.mark.parametrize("forward", ["handlers", "group", "child"])
def test_job_control_signals_go_to_the_group_in_every_mode(start, forward):
    run = start(["--forward", forward, "--", PYTHON, str(PROGRAMS / "recorder.py"), "--spawn", "helper"])
    run.expect_all(["main ready", "helper ready"])
    run.signal(signal.SIGWINCH)
    run.expect_all(["main got SIGWINCH", *(["helper got SIGWINCH"] if forward != "child" else [])])
    run.signal(signal.SIGTERM)
    assert run.wait() == 0


# Blocks SIGTERM and waits for it: while it waits the kernel shows SIGTERM as unblocked in SigBlk.
WAITS_IN_SIGWAITINFO = (
    "import signal\n"
    "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})\n"
    "print('waiting-%d' % (6 * 7), flush=True)\n"
    "signal.sigwaitinfo({signal.SIGTERM})\n"
    "print('got-%d' % (6 * 7), flush=True)\n"
)


@pytest.mark.parametrize("behind_a_shell", [False, True])
def test_a_process_waiting_in_sigwaitinfo_handles_the_signal(start, as_pid1, behind_a_shell):
    job = [PYTHON, "-c", WAITS_IN_SIGWAITINFO]
    command = ["sh", "-c", '"$@"; echo shell-after $?', "sh", *job] if behind_a_shell else job
    run = start([*JSON, "--", *command], pid1=as_pid1)
    run.expect("waiting-42")
    time.sleep(1.0)  # past the job's first second: a stop that found no handler would not be held
    run.signal(signal.SIGTERM)
    run.expect("got-42")
    assert run.wait() == 0
    [delivery] = deliveries(run.stderr(), "SIGTERM")
    assert delivery["rule"] == "handlers"
    assert delivery["commands"][0].startswith(PYTHON)


@pytest.mark.parametrize("signo", [signal.SIGUSR1, signal.SIGRTMIN + 2])
def test_standard_and_real_time_signals_are_both_read_right(start, signo):
    # Signals 1 to 31 are read from /proc/PID/stat, real-time ones from /proc/PID/status.
    run = start([*JSON, "-v", "--", "sh", "-c", '"$@"; echo shell-after $?', "sh", *RECORDER_MAIN])
    run.expect("main ready")
    run.signal(signo)
    run.expect(f"main got {signal_name(signo)}")
    run.signal(signal.SIGTERM)
    assert run.wait() == 0 and "shell-after 0" in run.lines
    [delivery] = [d for d in deliveries(run.stderr()) if d["received"] == signal_name(signo)]
    assert delivery["rule"] == "handlers" and "recorder.py" in delivery["commands"][0]


# Waits for SIGUSR2 in sigwaitinfo, then execs a program that waits for SIGTERM the same way.
WAITS_THEN_EXECS = (
    "import os, signal, sys\n"
    "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2, signal.SIGTERM})\n"
    "print('first-%d' % (6 * 7), flush=True)\n"
    "signal.sigwaitinfo({signal.SIGUSR2})\n"
    "os.execv(sys.executable, [sys.executable, '-c', sys.argv[1]])\n"
)


def test_a_waiter_that_execs_another_waiter_is_still_read_right(start, as_pid1):
    # sminit keeps the main child's /proc files open; its memory must be read afresh after an exec.
    run = start([*JSON, "-v", "--", PYTHON, "-c", WAITS_THEN_EXECS, WAITS_IN_SIGWAITINFO], pid1=as_pid1)
    run.expect("first-42")
    run.signal(signal.SIGUSR2)
    run.expect("waiting-42")
    time.sleep(1.0)  # past the first second: a stop without a handler would not be held
    run.signal(signal.SIGTERM)
    run.expect("got-42")
    assert run.wait() == 0
    assert [d["rule"] for d in deliveries(run.stderr())] == ["handlers", "handlers"]
