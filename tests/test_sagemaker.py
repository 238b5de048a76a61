"""SageMaker integration: modes, max runtime and its warning, the failure file, the GPU check,
--check, tolerant config files, and the example training script."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import RECORDER, run_sminit
from mltree import OLD_THREE_KEYS, P4D_TWO_HOSTS, job_config, make_ml_root

EXAMPLES = Path(__file__).parent.parent / "examples"


def env(**extra: str) -> dict[str, str]:
    """The test's environment without any SageMaker or sminit variable, plus extra."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SMINIT_", "TRAINING_JOB", "NVIDIA_"))}
    return {**base, **extra}


@pytest.fixture
def ml(tmp_path) -> Path:
    return make_ml_root(tmp_path / "ml")


def failure(ml: Path) -> str | None:
    path = ml / "output" / "failure"
    return path.read_text() if path.exists() else None


def started_line(stderr: str) -> str:
    return next(line for line in stderr.splitlines() if "started" in line)


# -- modes -------------------------------------------------------------------------------

def test_train_resolves_through_the_variable_split_like_a_shell_but_never_run_by_one(tmp_path):
    out = tmp_path / "argv.json"
    dump = 'import json,sys; json.dump(sys.argv[1:], open(sys.argv[1], \"w\"))'
    command = f"{sys.executable} -c '{dump}' {out} " \
              "'a;b' '$(touch pwned)' '`id`' '|' \"two words\""
    result = run_sminit(["--", "train"], env=env(SMINIT_TRAIN_CMD=command), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text()) == [str(out), "a;b", "$(touch pwned)", "`id`", "|", "two words"]
    assert not (tmp_path / "pwned").exists()
    assert "mode train" in started_line(result.stderr) and "grace 110 s" in started_line(result.stderr)


def test_serve_resolves_through_the_variable_with_the_serve_grace():
    result = run_sminit(["--", "serve"], env=env(SMINIT_SERVE_CMD="sh -c 'exit 0'"))
    assert result.returncode == 0
    assert "mode serve" in started_line(result.stderr) and "grace 25 s" in started_line(result.stderr)


def test_train_found_on_path_runs_with_no_argument(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "train"
    program.write_text('#!/bin/sh\necho "args:$#"\n')
    program.chmod(0o755)
    result = run_sminit(["--", "train"], env=env(PATH=f"{bin_dir}:{os.environ['PATH']}"))
    assert result.returncode == 0 and result.stdout == "args:0\n"


@pytest.mark.parametrize("role", ["train", "serve"])
def test_missing_train_or_serve_is_127_naming_both_places(ml, role):
    result = run_sminit(["--ml-root", str(ml), "--", role], env=env(PATH="/nonexistent"))
    assert result.returncode == 127
    assert f"SMINIT_{role.upper()}_CMD" in result.stderr and "PATH" in result.stderr
    if role == "train":
        assert "command not found" in failure(ml)
    else:
        assert failure(ml) is None  # the failure file is for training jobs


def test_trailing_role_argument_is_kept_in_argv(tmp_path):
    result = run_sminit(["--", "sh", "-c", 'echo "$@"', "sh", "serve"], env=env())
    assert result.returncode == 0 and result.stdout == "serve\n"
    assert "mode serve" in started_line(result.stderr)


@pytest.mark.parametrize("how, expected", [
    ("nothing", "none"), ("job-name", "train"), ("resourceconfig", "train"), ("override", "serve"),
])
def test_auto_mode(tmp_path, how, expected):
    ml = tmp_path / "ml"
    extra = {}
    options = ["--ml-root", str(ml)]
    if how == "job-name":
        extra["TRAINING_JOB_NAME"] = "job"
    if how in ("resourceconfig", "override"):
        make_ml_root(ml, resource=OLD_THREE_KEYS)
    if how == "override":
        extra["SMINIT_MODE"] = "serve"
    result = run_sminit([*options, "--", "true"], env=env(**extra))
    assert result.returncode == 0, result.stderr
    assert f"mode {expected}" in started_line(result.stderr)


def test_mode_option_does_not_change_how_a_lone_train_is_resolved():
    result = run_sminit(["--mode", "none", "--", "train"], env=env(SMINIT_TRAIN_CMD="true"))
    assert result.returncode == 0 and "mode none" in started_line(result.stderr)


# -- max runtime -------------------------------------------------------------------------

@pytest.mark.parametrize("source", ["option", "variable", "trainingjobconfig"])
def test_max_runtime_warns_first_then_stops_with_124_and_a_failure_file(start, tmp_path, source):
    ml = make_ml_root(tmp_path / "ml", job=job_config(2) if source == "trainingjobconfig" else None)
    options = ["--ml-root", str(ml), "--mode", "train", "--warn-before", "1", "--require-gpus", "none"]
    extra = {}
    if source == "option":
        options += ["--max-runtime", "2"]
    elif source == "variable":
        extra["SMINIT_MAX_RUNTIME"] = "2"
    run = start([*options, "--", *RECORDER], env=env(**extra))
    run.expect("main ready")
    run.expect("main got SIGUSR1")
    run.expect("main got SIGTERM")
    assert run.wait() == 124
    assert "main got SIGUSR1" in run.lines
    assert run.lines.index("main got SIGUSR1") < run.lines.index("main got SIGTERM")
    assert failure(ml).startswith("sminit: exiting with 124") and "max runtime of 2 s passed" in failure(ml)


@pytest.mark.parametrize("warn", ["1.5", "300"])
def test_a_warning_at_or_before_the_start_is_never_sent(start, tmp_path, warn):
    # The image's own SMINIT_WARN_BEFORE=300 against a short MaxRuntimeInSeconds: the job must
    # not get SIGUSR1 before its handler exists; it runs until the deadline instead.
    ml = make_ml_root(tmp_path / "ml", job=job_config(1.5))
    run = start(["--ml-root", str(ml), "--mode", "train", "--require-gpus", "none", "--", *RECORDER],
                env=env(SMINIT_WARN_BEFORE=warn))
    run.expect("main got SIGTERM")
    assert run.wait() == 124
    assert "main got SIGUSR1" not in run.lines
    lines = run.stderr().splitlines()
    warnings = [line for line in lines if "warning:" in line and "exiting with" not in line]
    assert len(warnings) == 1
    assert f"warn-before of {warn} s is not shorter than the max runtime of 1.5 s" in warnings[0]
    assert "no warning will be sent" in warnings[0]
    code, report, _ = check(ml, "--require-gpus", "none", "--", "true", SMINIT_WARN_BEFORE=warn)
    assert code == 0 and report["warn_before"] is None
    assert any("no warning will be sent" in w for w in report["warnings"])


SLOW_GPU_CHECK = (
    "import sys, time\n"
    "import sminit.app as app\n"
    "real = app.Run.check_gpus\n"
    "def slow(self):\n"
    "    time.sleep(0.5)  # a slow start: the max runtime passes before the command could start\n"
    "    return real(self)\n"
    "app.Run.check_gpus = slow\n"
    "from sminit.__main__ import run\n"
    "run()\n"
)


def test_a_max_runtime_that_passes_before_the_start_means_the_command_never_runs(tmp_path):
    marker = tmp_path / "ran"
    result = subprocess.run([sys.executable, "-c", SLOW_GPU_CHECK, "--max-runtime", "0.2", "--", "touch",
                             str(marker)],
                            capture_output=True, text=True, timeout=20, env=env())
    assert result.returncode == 124 and not marker.exists()
    assert "max runtime of 0.2 s passed before the command started: not starting it" in result.stderr


def test_custom_warn_signal(start):
    run = start(["--max-runtime", "1.5", "--warn-before", "1", "--warn-signal", "HUP", "--", *RECORDER],
                env=env())
    run.expect("main got SIGHUP")
    run.expect("main got SIGTERM")
    assert run.wait() == 124


def test_max_runtime_zero_overrides_the_job_config(ml):
    (ml / "input" / "config" / "trainingjobconfig.json").write_text(json.dumps(job_config(1)))
    result = run_sminit(["--ml-root", str(ml), "--max-runtime", "0", "--require-gpus", "none", "--", "true"],
                        env=env(TRAINING_JOB_NAME="job"))
    assert result.returncode == 0 and "max runtime none" in started_line(result.stderr)


def test_job_config_runtime_only_in_train_mode(ml):
    (ml / "input" / "config" / "trainingjobconfig.json").write_text(json.dumps(job_config(1)))
    result = run_sminit(["--ml-root", str(ml), "--mode", "none", "--", "true"], env=env())
    assert "max runtime none" in started_line(result.stderr)


def test_max_runtime_escalates_when_the_job_ignores_sigterm(start, ml):
    run = start(["--ml-root", str(ml), "--mode", "train", "--require-gpus", "none", "--max-runtime", "1",
                 "-t", "0.5", "--", *RECORDER, "--ignore-term"], env=env())
    run.expect("main got SIGTERM")
    assert run.wait() == 124
    assert "max runtime of 1 s passed" in failure(ml) and "grace expired" in failure(ml)


# -- failure file ------------------------------------------------------------------------

def train_failing(ml: Path, code: int = 3, **extra: str):
    return run_sminit(["--ml-root", str(ml), "--mode", "train", "--require-gpus", "none", "--",
                       "sh", "-c", f"exit {code}"], env=env(**extra))


def test_failure_file_reports_the_child_status_first(ml):
    assert train_failing(ml).returncode == 3
    text = failure(ml)
    assert text.startswith("sminit: exiting with 3: sh -c 'exit 3' exited with 3")


def test_no_failure_file_on_success_or_outside_train_mode(ml):
    assert train_failing(ml, 0).returncode == 0 and failure(ml) is None
    result = run_sminit(["--ml-root", str(ml), "--mode", "none", "--", "false"], env=env())
    assert result.returncode == 1 and failure(ml) is None


def test_no_failure_file_without_output_dir_is_said(tmp_path):
    ml = make_ml_root(tmp_path / "ml", output=False)
    result = train_failing(ml)
    assert result.returncode == 3
    assert not (ml / "output").exists()
    assert f"[sminit] no failure file: {ml / 'output'} does not exist" in result.stderr


def test_the_job_s_own_failure_file_wins(ml):
    path = ml / "output" / "failure"
    result = run_sminit(["--ml-root", str(ml), "--mode", "train", "--require-gpus", "none", "--",
                         "sh", "-c", f"echo 'CUDA out of memory' > {path}; exit 3"], env=env())
    assert result.returncode == 3
    assert failure(ml) == "CUDA out of memory\n"
    assert f"{path} already exists: the job wrote it; not overwritten" in result.stderr


def test_a_failure_file_from_an_earlier_run_is_called_so(ml):
    path = ml / "output" / "failure"
    path.write_text("sminit: exiting with 137: an earlier run\n")
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))
    result = train_failing(ml)
    assert result.returncode == 3 and failure(ml) == "sminit: exiting with 137: an earlier run\n"
    assert f"{path} already exists: left by an earlier run (last written " in result.stderr
    assert "the job wrote it" not in result.stderr


@pytest.mark.parametrize("kind", ["dangling-symlink", "symlink", "directory"])
def test_failure_path_is_never_written_through(ml, tmp_path, kind):
    path = ml / "output" / "failure"
    target = tmp_path / "elsewhere"
    if kind == "symlink":
        target.write_text("precious\n")
    if kind == "directory":
        path.mkdir()
    else:
        path.symlink_to(target)
    result = train_failing(ml)
    assert result.returncode == 3 and "Traceback" not in result.stderr
    if kind == "symlink":
        assert target.read_text() == "precious\n"
    elif kind == "dangling-symlink":
        assert not target.exists() and path.is_symlink()
    else:
        assert path.is_dir() and list(path.iterdir()) == []


def test_failure_file_is_at_most_1024_bytes(ml):
    result = run_sminit(["--ml-root", str(ml), "--mode", "train", "--require-gpus", "none", "--",
                         "sh", "-c", "exit 9", "é" * 2000], env=env())
    assert result.returncode == 9
    data = (ml / "output" / "failure").read_bytes()
    assert len(data) <= 1024 and data.startswith(b"sminit: exiting with 9")
    data.decode("utf-8")  # cut on a character boundary
    assert b"... exited with 9; ran " in data  # the command is shortened: the facts still fit


# -- GPU check ---------------------------------------------------------------------------

def dev_dir(tmp_path: Path, gpus: int) -> Path:
    folder = tmp_path / "dev"
    folder.mkdir(parents=True)
    for name in ["nvidiactl", "nvidia-uvm", "nvidia-caps", *(f"nvidia{i}" for i in range(gpus))]:
        (folder / name).write_text("")
    return folder


@pytest.mark.parametrize("gpus, resource, requirement, extra, code", [
    (8, P4D_TWO_HOSTS, "auto", {}, 0),
    (4, P4D_TWO_HOSTS, "auto", {}, 125),
    (0, {**P4D_TWO_HOSTS, "current_instance_type": "ml.m5.xlarge"}, "auto", {}, 0),  # no GPUs expected
    (0, {**P4D_TWO_HOSTS, "current_instance_type": "ml.unknown.2xlarge"}, "auto", {}, 0),
    (0, OLD_THREE_KEYS, "auto", {}, 0),
    (1, OLD_THREE_KEYS, "2", {}, 125),
    (2, OLD_THREE_KEYS, "2", {}, 0),
    (0, P4D_TWO_HOSTS, "none", {}, 0),
    (8, P4D_TWO_HOSTS, "auto", {"NVIDIA_VISIBLE_DEVICES": "void"}, 125),
    (8, P4D_TWO_HOSTS, "8", {"NVIDIA_VISIBLE_DEVICES": "none"}, 125),
])
def test_gpu_check(tmp_path, gpus, resource, requirement, extra, code):
    ml = make_ml_root(tmp_path / "ml", resource=resource)
    marker = tmp_path / "ran"
    result = run_sminit(["--ml-root", str(ml), "--require-gpus", requirement, "--", "touch", str(marker)],
                        env=env(TRAINING_JOB_NAME="job", SMINIT_DEV_DIR=str(dev_dir(tmp_path, gpus)),
                                **extra))
    assert result.returncode == code, result.stderr
    assert marker.exists() == (code == 0)
    if code:
        assert "GPU check failed" in result.stderr and "GPU check failed" in failure(ml)
        # What to do about it, in the failure file too (FailureReason shows its first 1 KB).
        assert "docker run --gpus all" in failure(ml) and "--require-gpus none" in failure(ml)


def test_explicit_gpu_count_applies_in_every_mode(tmp_path):
    result = run_sminit(["--require-gpus", "1", "--", "true"], env=env(SMINIT_DEV_DIR=str(dev_dir(tmp_path,
                                                                                                  0))))
    assert result.returncode == 125 and "0 NVIDIA GPUs visible" in result.stderr


def test_auto_requires_nothing_in_serve_mode(tmp_path):
    ml = make_ml_root(tmp_path / "ml")
    result = run_sminit(["--ml-root", str(ml), "--mode", "serve", "--", "true"],
                        env=env(SMINIT_DEV_DIR=str(dev_dir(tmp_path, 0))))
    assert result.returncode == 0


def driver_files(tmp_path: Path, libs: dict[str, list[str]]) -> dict[str, str]:
    version = tmp_path / "version"
    version.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  "
                       "Sat Aug 19 01:15:15 UTC 2023\n"
                       "GCC version:  gcc version 10.2.1 20210110 (Debian 10.2.1-6)\n")
    folders = []
    for folder, names in libs.items():
        path = tmp_path / folder
        path.mkdir(parents=True)
        for name in names:
            (path / name).write_text("")
        folders.append(str(path))
    return {"SMINIT_DRIVER_VERSION_FILE": str(version), "SMINIT_LIB_DIRS": ":".join(folders)}


def test_bundled_driver_library_is_a_warning(tmp_path):
    variables = driver_files(tmp_path, {
        "lib": ["libcuda.so.1", "libcuda.so.470.57.02", "libnvidia-ml.so.535.104.05"],
        "usr/local/cuda-12.2/compat": ["libcuda.so.1", "libcuda.so.545.23.08"],
    })
    result = run_sminit(["--require-gpus", "0", "--", "true"],
                        env=env(SMINIT_DEV_DIR=str(dev_dir(tmp_path, 1)), **variables))
    assert result.returncode == 0
    warnings = [line for line in result.stderr.splitlines() if "warning:" in line]
    assert len(warnings) == 1 and "libcuda.so.470.57.02" in warnings[0] and "535.104.05" in warnings[0]


# -- --check -----------------------------------------------------------------------------

def check(ml: Path, *args: str, **extra: str):
    result = run_sminit(["--check", "--json", "--ml-root", str(ml), *args], env=env(**extra))
    return result.returncode, json.loads(result.stdout), result


def test_check_json_ok(tmp_path):
    ml = make_ml_root(tmp_path / "ml", job=job_config(900))
    script = tmp_path / "train.py"
    script.write_text("print('training')\n")
    code, report, result = check(ml, "--", "train", SMINIT_TRAIN_CMD=f"python3 {script}",
                                 SMINIT_DEV_DIR=str(dev_dir(tmp_path, 8)))
    assert code == 0, report
    assert {"ok", "mode", "command", "grace", "max_runtime", "pid1", "subreaper", "gpus",
            "problems"} <= report.keys()
    assert report["ok"] is True and report["problems"] == []
    assert report["mode"] == "train" and report["command"] == ["python3", str(script)]
    assert report["grace"] == 110 and report["max_runtime"] == 900
    assert report["pid1"] is False and report["subreaper"] is True
    assert report["gpus"] == {"visible": 8, "expected": 8, "driver_version": None}
    assert failure(ml) is None and result.stderr == ""


def test_check_reports_problems_with_125_and_writes_nothing(tmp_path):
    ml = make_ml_root(tmp_path / "ml")
    (ml / "input" / "config" / "hyperparameters.json").write_text("{not json")
    code, report, _ = check(ml, "--", "train", PATH="/nonexistent", SMINIT_DEV_DIR=str(dev_dir(tmp_path, 2)))
    assert code == 125 and report["ok"] is False
    text = " | ".join(report["problems"])
    assert "SMINIT_TRAIN_CMD" in text and "GPU check failed" in text and "hyperparameters.json" in text
    assert report["gpus"]["expected"] == 8 and report["command"] == ["train"]
    assert failure(ml) is None


def test_check_text_and_no_command(tmp_path):
    ml = make_ml_root(tmp_path / "ml", resource=OLD_THREE_KEYS)
    result = run_sminit(["--check", "--ml-root", str(ml)], env=env())
    assert result.returncode == 0, result.stdout
    assert "mode:          train" in result.stdout and "all checks passed" in result.stdout


def test_check_says_when_the_ml_root_does_not_exist(tmp_path):
    missing = tmp_path / "opt-ml"
    result = run_sminit(["--check", "--ml-root", str(missing), "--", "true"], env=env())
    assert result.returncode == 0, result.stdout
    assert f", {missing} does not exist\n" in result.stdout and " free under " not in result.stdout
    assert f"\n{missing}: does not exist (no SageMaker tree here)\n" in result.stdout
    code, report, _ = check(missing, "--", "true")
    assert report["resources"]["ml_root_exists"] is False and report["resources"]["ml_root_free"] is None
    _, report, _ = check(tmp_path, "--", "true")
    assert report["resources"]["ml_root_exists"] is True and report["resources"]["ml_root_free"] > 0


@pytest.mark.parametrize("args, variables", [
    (["--check", "--json", "--grace", "abc"], {}),
    (["--json", "--check", "--bogus"], {}),
    (["--check", "--json"], {"SMINIT_GRACE": "x"}),
])
def test_a_usage_error_in_check_json_is_a_json_report(args, variables):
    result = run_sminit(args, env=env(**variables))
    assert result.returncode == 125 and result.stderr == ""
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["problems"] == [report["usage_error"]]
    assert "invalid value" in report["usage_error"] or "unknown option" in report["usage_error"]


@pytest.mark.parametrize("args, variables", [
    (["--grace", "x", "--", "true"], {"SMINIT_LOG_FORMAT": "json"}),
    (["--log-format", "json", "--grace", "x", "--", "true"], {}),
    (["--log-format=json", "--mode", "sometimes", "--", "true"], {}),
])
def test_a_usage_error_with_json_logs_is_one_json_record(args, variables, tmp_path):
    marker = tmp_path / "ran"
    result = run_sminit([*args[:-1], "touch", str(marker)], env=env(**variables))
    assert result.returncode == 125 and result.stdout == "" and not marker.exists()
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    record = json.loads(lines[0])
    assert record["level"] == "error" and record["status"] == 125 and "invalid value for" in record["msg"]


def test_a_usage_error_in_text_mode_stays_one_text_line():
    result = run_sminit(["--grace", "x", "--", "true"], env=env())
    assert result.returncode == 125 and result.stderr.startswith("[sminit] invalid value for --grace")


def test_check_text_shows_every_setting_that_changes_behaviour(tmp_path):
    ml = make_ml_root(tmp_path / "ml", resource=OLD_THREE_KEYS)
    result = run_sminit(["--check", "--ml-root", str(ml), "--max-runtime", "600", "--warn-before", "60",
                         "--warn-signal", "HUP", "-r", "USR1:USR2", "-r", "WINCH:0", "-e", "143",
                         "--parent-death-signal", "TERM", "--", "true"], env=env())
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert "warn signal:   SIGHUP 60 s before the max runtime" in lines
    assert "rewrites:      SIGUSR1 -> SIGUSR2, SIGWINCH -> 0" in lines
    assert "success exits: 143" in lines and "parent death:  SIGTERM" in lines
    assert any(line.startswith("resources:     memory limit ") for line in lines)


def test_check_json_shows_the_same_settings(tmp_path):
    ml = make_ml_root(tmp_path / "ml", resource=OLD_THREE_KEYS)
    code, report, _ = check(ml, "--max-runtime", "600", "--warn-before", "60", "-r", "USR1:USR2", "-e", "143",
                            "--parent-death-signal", "TERM", "--", "true")
    assert code == 0
    assert report["warn_before"] == 60 and report["warn_signal"] == "SIGUSR1"
    assert report["rewrite"] == {"SIGUSR1": "SIGUSR2"} and report["success_exit"] == [143]
    assert report["parent_death_signal"] == "SIGTERM" and report["warnings"] == []
    assert {"memory_limit", "shm_size", "cpu_limit", "ml_root_free"} <= report["resources"].keys()


@pytest.mark.parametrize("name, value, expected", [
    ("trainingjobconfig.json", {"StoppingCondition": {"MaxRuntimeInSeconds": "soon"}},
     "trainingjobconfig.json: StoppingCondition.MaxRuntimeInSeconds is 'soon', a string: it must be a JSON "
     "number of seconds (3600, without quotes)"),
    ("trainingjobconfig.json", {"StoppingCondition": {"MaxRuntimeInSeconds": "86400"}},
     "StoppingCondition.MaxRuntimeInSeconds is '86400', a string: it must be a JSON number of seconds "
     "(86400, without quotes)"),
    ("trainingjobconfig.json", {"StoppingCondition": {"MaxRuntimeInSeconds": -5}},
     "StoppingCondition.MaxRuntimeInSeconds is -5, expected seconds, a positive number"),
    ("hyperparameters.json", {"epochs": 3}, "hyperparameters.json: 'epochs' is 3, expected a string"),
    ("resourceconfig.json", {**OLD_THREE_KEYS, "hosts": "algo-1"}, "resourceconfig.json: hosts is 'algo-1'"),
    ("checkpointconfig.json", {"LocalPath": 5}, "checkpointconfig.json: LocalPath is 5, expected a string"),
    ("inputdataconfig.json", {"train": "File"},
     "inputdataconfig.json: 'train' is 'File', expected an object"),
])
def test_check_reports_a_wrongly_shaped_value_as_invalid_with_a_warning(tmp_path, name, value, expected):
    ml = make_ml_root(tmp_path / "ml", resource=OLD_THREE_KEYS)
    (ml / "input" / "config" / name).write_text(json.dumps(value))
    code, report, result = check(ml, "--", "true")
    assert report["ml_files"][name] == "invalid"
    assert [w for w in report["warnings"] if expected in w], report["warnings"]
    assert code == 0 and report["problems"] == []  # it runs: the value is ignored, as the run would
    assert result.stderr == ""


def test_check_warns_of_an_unknown_instance_type(tmp_path):
    ml = make_ml_root(tmp_path / "ml", resource={**P4D_TWO_HOSTS, "current_instance_type": "ml.p4d.24xlarg"})
    code, report, _ = check(ml, "--", "true")
    assert code == 0
    assert report["warnings"] == ["unknown instance type ml.p4d.24xlarg in resourceconfig.json: "
                                  "no GPU count is expected for it (did you mean ml.p4d.24xlarge?)"]
    result = run_sminit(["--check", "--ml-root", str(ml), "--", "true"], env=env())
    assert result.stdout.endswith("\nno problems, 1 warning\n"), result.stdout
    (ml / "input" / "config" / "resourceconfig.json").write_text(
        json.dumps({**P4D_TWO_HOSTS, "current_instance_type": "ml.nonsense"}))
    assert check(ml, "--", "true")[1]["warnings"] == [
        "unknown instance type ml.nonsense in resourceconfig.json: no GPU count is expected for it (a typo?)"]
    for known in ("ml.m5.xlarge", "ml.trn1.32xlarge", "ml.g5.48xlarge"):
        (ml / "input" / "config" / "resourceconfig.json").write_text(
            json.dumps({**P4D_TWO_HOSTS, "current_instance_type": known}))
        assert check(ml, "--", "true", SMINIT_DEV_DIR=str(dev_dir(tmp_path / known, 8)))[1]["warnings"] == []


# -- tolerant config files ---------------------------------------------------------------

@pytest.mark.parametrize("kind", ["empty", "malformed", "list", "directory", "fifo", "loop", "huge",
                                  "wrong-types"])
def test_bad_config_files_give_one_warning_and_never_stop_the_job(tmp_path, kind):
    ml = make_ml_root(tmp_path / "ml")
    path = ml / "input" / "config" / "resourceconfig.json"
    path.unlink()
    if kind == "empty":
        path.write_text("")
    elif kind == "malformed":
        path.write_text('{"current_host": ')
    elif kind == "list":
        path.write_text("[1, 2]")
    elif kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "loop":
        path.symlink_to(path)
    elif kind == "huge":
        with open(path, "wb") as handle:
            handle.truncate(17 * 1024 * 1024)
    elif kind == "wrong-types":
        path.write_text(json.dumps({"current_host": 5, "hosts": "algo-1",
                                    "current_instance_type": ["ml.p4d.24xlarge"]}))
    job = ml / "input" / "config" / "trainingjobconfig.json"
    job.write_text(json.dumps({"StoppingCondition": {"MaxRuntimeInSeconds": "soon"}}))
    result = run_sminit(["--ml-root", str(ml), "--mode", "train", "--", "true"], env=env(), timeout=20)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning:" in line]
    about_resource = [line.split("warning: ", 1)[1] for line in warnings if "resourceconfig.json" in line]
    # The run says what --check says about the file, in the same words, once each.
    _, report, _ = check(ml, "--mode", "train", "--", "true")
    checked = [line for line in report["problems"] + report["warnings"] if "resourceconfig.json" in line]
    assert about_resource == checked and len(checked) == (3 if kind == "wrong-types" else 1)
    assert len([line for line in warnings if "trainingjobconfig.json" in line]) == 1


def test_invalid_hyperparameters_are_reported_the_same_by_check_and_by_a_run(tmp_path):
    ml = make_ml_root(tmp_path / "ml", resource=OLD_THREE_KEYS)
    (ml / "input" / "config" / "hyperparameters.json").write_text('{"epochs": 3,}')
    code, report, _ = check(ml, "--", "true")
    line = f"{ml}/input/config/hyperparameters.json: not valid JSON, ignored"
    assert code == 125 and report["problems"] == [line]
    assert report["ml_files"]["hyperparameters.json"] == "invalid"
    result = run_sminit(["--ml-root", str(ml), "--require-gpus", "none", "--", "true"], env=env())
    assert result.returncode == 0 and f"[sminit] warning: {line}\n" in result.stderr


def test_missing_config_files_are_silent(tmp_path):
    result = run_sminit(["--ml-root", str(tmp_path / "nothing"), "--mode", "train", "--", "true"], env=env())
    assert result.returncode == 0 and "warning" not in result.stderr


# -- the example -------------------------------------------------------------------------

def test_example_checkpoints_at_the_warning_stops_at_the_deadline_and_resumes(start, tmp_path):
    ml = make_ml_root(tmp_path / "ml", resource=OLD_THREE_KEYS, hyperparameters={"steps": "100000",
                                                                                 "checkpoint_every": "0"})
    variables = env(SMINIT_ML_ROOT=str(ml), TRAINING_JOB_NAME="example")
    train = [sys.executable, str(EXAMPLES / "train.py")]
    run = start(["--max-runtime", "3", "--warn-before", "1.5", "--", *train], env=variables)
    run.expect("starting from step 0")
    warned = run.expect("checkpoint saved at step")
    run.expect("stopped at step")
    assert run.wait() == 124
    stopped_at = int(run.lines[-1].split()[-1])
    assert int(warned.split()[-1]) < stopped_at
    saved = json.loads((ml / "checkpoints" / "checkpoint.json").read_text())
    assert saved == {"step": stopped_at}
    assert "max runtime of 3 s passed" in failure(ml)

    again = start(["--max-runtime", "1", "--", *train], env=variables)
    again.expect(f"resumed from step {stopped_at}")
    assert again.wait() == 124


def test_example_shell_entrypoint_gets_the_checkpoint_saved_on_sigterm(start, tmp_path):
    ml = make_ml_root(tmp_path / "ml", resource=OLD_THREE_KEYS, hyperparameters={"steps": "100000",
                                                                                 "checkpoint_every": "0"})
    run = start(["-t", "30", "--", str(EXAMPLES / "entrypoint.sh")], env=env(SMINIT_ML_ROOT=str(ml)))
    run.expect("starting from step 0")
    run.signal(signal.SIGTERM)
    run.expect("stopped at step")
    run.expect("entrypoint: training exited with 0")  # the shell was not signalled: it went on
    assert run.wait() == 0  # and exited with python's status: a clean stop, no failure file
    assert json.loads((ml / "checkpoints" / "checkpoint.json").read_text())["step"] > 0
    assert failure(ml) is None


def test_example_shell_entrypoint_with_forward_group_dies_of_the_sigterm(start, tmp_path):
    ml = make_ml_root(tmp_path / "ml", resource=OLD_THREE_KEYS, hyperparameters={"steps": "100000",
                                                                                 "checkpoint_every": "0"})
    run = start(["--forward", "group", "-t", "30", "--", str(EXAMPLES / "entrypoint.sh")],
                env=env(SMINIT_ML_ROOT=str(ml)))
    run.expect("starting from step 0")
    run.signal(signal.SIGTERM)
    run.expect("stopped at step")
    assert run.wait() == 128 + signal.SIGTERM  # the shell itself dies of the group's SIGTERM
    assert json.loads((ml / "checkpoints" / "checkpoint.json").read_text())["step"] > 0


@pytest.mark.parametrize("command, grace, warned", [
    (["{torchrun}", "--nproc_per_node=2", "train.py"], "110", True),
    (["{torchrun}", "--nproc_per_node=2", "train.py"], "30", False),  # within its 30 s shutdown timeout
    (["{torchrun}", "--shutdown-timeout", "120", "train.py"], "110", False),
    (["{torchrun}", "--shutdown_timeout=60", "train.py"], "110", True),
    (["{python}", "-m", "torch.distributed.run", "--nproc_per_node=2", "train.py"], "110", True),
    (["{python}", "{script}"], "110", False),
])
def test_check_warns_when_torchrun_would_kill_its_ranks_before_its_grace(tmp_path, command, grace, warned):
    torchrun = tmp_path / "torchrun"
    torchrun.write_text("#!/bin/sh\n")
    torchrun.chmod(0o755)
    script = tmp_path / "train.py"
    script.write_text("")
    words = [word.format(torchrun=torchrun, python=sys.executable, script=script) for word in command]
    code, report, _ = check(tmp_path / "no-ml", "--grace", grace, "--", *words)
    assert code == 0, report
    found = [w for w in report["warnings"] if w.startswith("torchrun kills its ranks")]
    assert bool(found) == warned, report["warnings"]
    if warned:
        assert f"pass --shutdown-timeout {grace} to torchrun" in found[0]


def test_check_says_where_signals_go(tmp_path):
    result = run_sminit(["--check", "--ml-root", str(tmp_path), "--", "true"], env=env())
    assert "signals to:    the processes that handle them (--forward handlers)" in result.stdout.splitlines()
    code, report, _ = check(tmp_path, "--single-child", "--", "true")
    assert report["forward"] == "child"
