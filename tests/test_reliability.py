"""Faults and hostile input: blocked or broken stderr, closed stdio, early exits, storms,
reused pids, process limits, and arbitrary options, variables and config files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import storms
from conftest import SMINIT, UNSHARE, run_sminit
from sminit import config, proctree
from sminit.log import Collector
from sminit.plan import resolve
from sminit.sagemaker import max_runtime_seconds, read_json


# -- stderr that blocks or breaks ----------------------------------------------------------

@pytest.mark.parametrize("broken", ["full", "closed"])
def test_a_blocked_or_broken_stderr_changes_nothing(as_pid1, broken):
    read_end, write_end = os.pipe()
    prefix = UNSHARE if as_pid1 else []
    # -v: a debug line for every forwarded signal, far more than the pipe's 64 KiB.
    proc = subprocess.Popen([*prefix, *SMINIT, "-v", "-t", "0.5", "--", sys.executable, "-c", storms.COUNTER,
                             "stay"],
                            stdout=subprocess.PIPE, stderr=write_end, stdin=subprocess.DEVNULL, text=True)
    os.close(write_end)
    if broken == "closed":
        os.close(read_end)
    try:
        assert proc.stdout.readline() == "ready\n"
        pid = storms._host_pid(proc, as_pid1)
        for _ in range(3000):
            os.kill(pid, signal.SIGRTMIN + 1)
            os.kill(pid, signal.SIGPIPE)
        assert storms._wait_drained([pid, *storms.descendant_pids(pid)], timeout=60)
        start = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        counts = {int(k): v for k, v in json.loads(proc.stdout.readline()).items()}
        assert counts[signal.SIGRTMIN + 1] == 3000 and counts[signal.SIGPIPE] >= 1
        assert proc.wait(20) == 128 + signal.SIGKILL
        assert time.monotonic() - start < 5  # the 0.5 s grace ended on time
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        if broken == "full":
            os.close(read_end)


def test_sminit_s_own_sigpipe_is_not_forwarded():
    read_end, write_end = os.pipe()
    os.close(read_end)  # every log line sminit writes raises SIGPIPE on it
    proc = subprocess.Popen([*SMINIT, "-v", "--", sys.executable, "-c", storms.COUNTER],
                            stdout=subprocess.PIPE,
                            stderr=write_end, stdin=subprocess.DEVNULL, text=True)
    os.close(write_end)
    try:
        assert proc.stdout.readline() == "ready\n"
        for _ in range(50):
            proc.send_signal(signal.SIGWINCH)  # each one logs a debug line: EPIPE
        assert storms._wait_drained([proc.pid, *storms.descendant_pids(proc.pid)], timeout=30)
        proc.send_signal(signal.SIGTERM)
        counts = {int(k): v for k, v in json.loads(proc.stdout.readline()).items()}
        assert proc.wait(20) == 0
        assert counts.get(signal.SIGWINCH) and signal.SIGPIPE not in counts
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_all_stdio_closed(tmp_path):
    report = tmp_path / "fds"
    child = f"exec 3>{report}; for fd in 0 1 2; do [ -e /proc/$$/fd/$fd ] && echo $fd >&3; done; exit 0"
    result = subprocess.run(
        [*SMINIT, "--", "sh", "-c", child], stdin=subprocess.DEVNULL, timeout=20,
        preexec_fn=lambda: [os.close(fd) for fd in (0, 1, 2)],
    )
    assert result.returncode == 0
    assert report.read_text() == ""  # the child got them closed, as sminit did
    result = subprocess.run([*SMINIT, "--", "sh", "-c", "exit 3"], timeout=20,
                            preexec_fn=lambda: [os.close(fd) for fd in (0, 1, 2)])
    assert result.returncode == 3


# -- timing races ----------------------------------------------------------------------------

SLOW_START = (
    "import os, sys, time\n"
    "import sminit.app as app\n"
    "real = app.main\n"
    "def slow(argv, mask):\n"
    "    os.write(1, b'blocked\\n')\n"
    "    time.sleep(0.5)  # as if importing took this long: a signal lands now\n"
    "    return real(argv, mask)\n"
    "app.main = slow\n"
    "from sminit.__main__ import run\n"
    "sys.argv[0] = 'sminit'\n"
    "run()\n"
)


def _slow_sminit(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SLOW_START, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_stop_signal_during_start_up_means_the_command_never_runs(tmp_path):
    marker = tmp_path / "ran"
    proc = _slow_sminit(["--", "touch", str(marker)])
    assert proc.stdout.readline() == "blocked\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 128 + signal.SIGTERM
    assert not marker.exists() and "before the command started" in proc.stderr.read()


def test_another_signal_during_start_up_reaches_the_child():
    proc = _slow_sminit(["--", "sleep", "30"])
    assert proc.stdout.readline() == "blocked\n"
    proc.send_signal(signal.SIGUSR1)
    # Delivered as soon as the child exists: sleep has SIGUSR1's default action.
    assert proc.wait(20) == 128 + signal.SIGUSR1
    proc.stdout.close()
    proc.stderr.close()


def test_child_exiting_while_being_signalled(start, as_pid1):
    for _ in range(3):
        run = start(["--", sys.executable, "-c", "import time; print('up', flush=True); time.sleep(0.2)"],
                    pid1=as_pid1)
        run.expect("up")
        pid = run.pid
        while run.proc.poll() is None:
            try:
                os.kill(pid, signal.SIGWINCH)
            except ProcessLookupError:
                break
        assert run.wait() == 0 and "Traceback" not in run.stderr()


# -- storms (short form; bench/reliability.py runs the full form) ---------------------------

def test_signal_storm_loses_nothing(as_pid1):
    result = storms.signal_storm(seconds=2, senders=3, pid1=as_pid1)
    assert result["drained"] and result["exit"] == 0 and result["term_delivered"] == 1
    assert result["real_time_delivered"] == result["real_time_sent"] > 0
    assert result["standard_kinds_missing"] == [] and result["tracebacks"] == 0
    assert result["rss_kib_after"] - result["rss_kib_before"] <= 256


def test_orphan_storm_leaves_no_zombie(as_pid1):
    result = storms.orphan_storm(total=3000, burst=500, pid1=as_pid1)
    assert result["zombies_left"] == 0 and result["exit"] == 0 and result["tracebacks"] == 0
    assert result["rss_kib_after"] - result["rss_kib_before"] <= 1024


# -- reused pids, process limits ------------------------------------------------------------

def test_a_reused_pid_is_never_signalled(monkeypatch):
    victim = subprocess.Popen(["sleep", "30"])
    try:
        listed = [p for p in proctree.descendants() if p.pid == victim.pid][0]
        impostor = proctree.Proc(listed.pid, listed.pgid, listed.start + 1)  # same pid, another start
        assert not proctree.signal_process(impostor, signal.SIGKILL)
        monkeypatch.delattr(os, "pidfd_open")  # the fallback path makes the same check
        assert not proctree.signal_process(impostor, signal.SIGKILL)
        assert victim.poll() is None
        assert proctree.signal_process(listed, signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
    finally:
        victim.kill()
        victim.wait()


@pytest.fixture
def one_process_cgroup(tmp_path):
    """A cgroup (v1 pids controller) that holds one process: any fork in it fails with EAGAIN.
    RLIMIT_NPROC would not do: root ignores it, and this machine's Python is root's alone."""
    group = f"/sys/fs/cgroup/pids/sminit-test-{os.getpid()}"
    try:
        os.mkdir(group)
        with open(f"{group}/pids.max", "w") as handle:
            handle.write("1")
    except OSError as exc:
        pytest.skip(f"no writable pids cgroup: {exc}")
    yield group
    os.rmdir(group)


def test_process_limit_reached_is_126_with_a_clear_line(one_process_cgroup):
    def enter() -> None:
        with open(f"{one_process_cgroup}/cgroup.procs", "w") as handle:
            handle.write(str(os.getpid()))

    result = subprocess.run([*SMINIT, "--", "true"], capture_output=True, text=True, timeout=20,
                            preexec_fn=enter)
    assert result.returncode == 126, result.stderr
    assert result.stderr.splitlines() == ["[sminit] error: exiting with 126: cannot start true: "
                                          "Resource temporarily unavailable"]


# -- hostile input --------------------------------------------------------------------------

HOSTILE = st.one_of(
    st.text(max_size=40), st.sampled_from(["", "nan", "NaN", "inf", "-inf", "1e309", "-1", "-0", " 5", "5 ",
                                           "1_000", "0x10", "٣", "TERM:", ":0", "RTMIN+99", "9" * 400]),
    st.text(min_size=5000, max_size=6000),
)
OPTIONS = ["--grace", "--cleanup-grace", "--max-runtime", "--warn-before", "--warn-signal", "--mode",
           "--ml-root",
           "--rewrite", "--success-exit", "--require-gpus", "--log-format"]
VARIABLES = ["SMINIT_GRACE", "SMINIT_CLEANUP_GRACE", "SMINIT_MAX_RUNTIME", "SMINIT_WARN_BEFORE",
             "SMINIT_WARN_SIGNAL", "SMINIT_MODE", "SMINIT_ML_ROOT", "SMINIT_SINGLE_CHILD", "SMINIT_REWRITE",
             "SMINIT_SUCCESS_EXIT", "SMINIT_REQUIRE_GPUS", "SMINIT_LOG_LEVEL", "SMINIT_LOG_FORMAT"]


@settings(max_examples=400, deadline=None)
@given(option=st.sampled_from(OPTIONS), value=HOSTILE)
def test_any_option_value_is_accepted_or_one_usage_error(option, value):
    try:
        config.parse([option, value, "true"], {})
    except config.UsageError as exc:
        assert "\n" not in str(exc) and option in str(exc) and len(str(exc)) < 300


@settings(max_examples=400, deadline=None)
@given(variable=st.sampled_from(VARIABLES), value=HOSTILE.filter(lambda v: "\0" not in v))
def test_any_variable_value_is_accepted_or_one_usage_error(variable, value):
    try:
        config.parse(["true"], {variable: value})
    except config.UsageError as exc:
        assert "\n" not in str(exc) and variable in str(exc) and len(str(exc)) < 300


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(option=st.sampled_from(OPTIONS),
       value=HOSTILE.filter(lambda v: "\0" not in v and not v.startswith("-")))
def test_end_to_end_rejections_never_start_the_command(tmp_path_factory, option, value):
    marker = tmp_path_factory.mktemp("run") / "ran"
    result = run_sminit([option, value, "--", "touch", str(marker)])
    assert "Traceback" not in result.stderr
    if result.returncode == 125:
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("[sminit] ")
        assert not marker.exists()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=2000), JSON_VALUES.map(lambda v: json.dumps(v).encode()),
                      st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n)))
def test_config_files_with_any_bytes_never_crash(tmp_path, data):
    path = tmp_path / "trainingjobconfig.json"
    path.write_bytes(data)
    log = Collector()
    value = read_json(str(path), log)
    assert len(log.lines) <= 1
    max_runtime_seconds(value, str(path), log)
    assert len(log.lines) <= 2


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES)
def test_wrong_types_in_every_field_never_crash(value):
    import tempfile

    from sminit.gpu import expected_gpus

    for shape in ({"StoppingCondition": value}, {"StoppingCondition": {"MaxRuntimeInSeconds": value}}, value):
        result = max_runtime_seconds(shape, "trainingjobconfig.json", Collector())
        assert result is None or 0 < result < 10**9
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(f"{root}/input/config")
        for shape in ({"current_instance_type": value, "hosts": value, "current_host": value}, value):
            with open(f"{root}/input/config/resourceconfig.json", "w") as handle:
                json.dump(shape, handle)
            log = Collector()
            variables = {"SMINIT_ML_ROOT": root}
            plan = resolve(config.parse(["--mode", "train", "--", "true"], variables), variables)
            read_json(f"{root}/input/config/resourceconfig.json", log)  # as the plan reads it
            expected, _ = expected_gpus("auto", "train", plan.instance_type)
            assert expected is None or expected > 0
            assert len(log.lines) <= 1
