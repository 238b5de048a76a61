"""Every place the image runs besides a SageMaker training job (README "Where the image runs"):
SageMaker Processing (its config, the message file as ExitMessage), SageMaker local mode (the
`local` and `local_gpu` instance types, a grace inside Compose's 10 s), Kubernetes (the
termination log) and plain engines (mode none's grace inside `docker stop`'s 10 s)."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

from conftest import run_sminit
from mltree import processing_tree
from sminit.testing import MlTree

IGNORES_SIGTERM = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)\n"
SEGFAULT = "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n"


def env(**extra: str) -> dict[str, str]:
    """The test's environment without any SageMaker, sminit or NVIDIA variable, plus extra; no
    Kubernetes termination log unless a test names one."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SMINIT_", "TRAINING_JOB", "NVIDIA_"))}
    return {**base, "SMINIT_TERMINATION_LOG": "", **extra}


def no_core() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def dev_dir(folder: Path, gpus: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(gpus):
        (folder / f"nvidia{index}").touch()
    return folder


def check(*args: str, **extra: str) -> tuple[int, dict]:
    result = run_sminit(["--check", "--json", *args], env=env(**extra))
    return result.returncode, json.loads(result.stdout)


# -- SageMaker Processing ------------------------------------------------------------------------

def message(ml: Path) -> bytes | None:
    path = ml / "output" / "message"
    return path.read_bytes() if path.exists() else None


def test_a_processing_tree_selects_processing_mode_with_its_max_runtime_and_instance_type(tmp_path):
    ml = processing_tree(tmp_path / "ml", max_runtime=900, instance_type="ml.g5.xlarge")
    code, report = check("--ml-root", str(ml), "--", "true", SMINIT_DEV_DIR=str(dev_dir(tmp_path / "dev", 1)))
    assert code == 0, report
    assert report["mode"] == "processing" and report["grace"] == 110 and report["max_runtime"] == 900
    assert report["max_runtime_source"] == str(ml / "config" / "processingjobconfig.json")
    assert report["gpus"]["expected"] == 1 and report["warnings"] == []
    assert report["ml_files"] == {"processingjobconfig.json": "ok", "resourceconfig.json": "ok"}
    assert message(ml) is None  # --check writes nothing


def test_a_crash_in_processing_is_explained_in_the_message_file_and_no_failure_file(tmp_path):
    ml = processing_tree(tmp_path / "ml")
    result = run_sminit(["--ml-root", str(ml), "--", sys.executable, "-c", SEGFAULT], env=env(),
                        preexec_fn=no_core)
    assert result.returncode == 128 + signal.SIGSEGV, result.stderr
    text = message(ml).decode("utf-8")
    assert text.startswith(f"sminit: exiting with 139: {sys.executable} -c ")
    assert "SIGSEGV (segmentation fault)" in text
    assert text.endswith("\n") and text.count("\n") == 1
    assert not (ml / "output" / "failure").exists()
    assert "(mode processing, grace 110 s, max runtime 3600 s)" in result.stderr


def test_a_stop_that_fails_and_the_max_runtime_are_explained_too(tmp_path):
    ml = processing_tree(tmp_path / "ml", max_runtime=1)
    result = run_sminit(["--ml-root", str(ml), "--grace", "1", "--", sys.executable, "-c", IGNORES_SIGTERM],
                        env=env(), timeout=30)
    assert result.returncode == 124, result.stderr
    text = message(ml).decode("utf-8")
    assert text.startswith("sminit: exiting with 124: ") and "max runtime of 1 s passed" in text
    assert "grace expired" in text


def test_the_message_is_valid_utf8_for_a_command_with_invalid_bytes_and_at_most_1_kb(tmp_path):
    ml = processing_tree(tmp_path / "ml")
    odd = os.fsencode(tmp_path) + b"/job-\xff\xfe"
    os.symlink("/bin/sh", odd)
    result = run_sminit(["--ml-root", str(ml), "--", os.fsdecode(odd), "-c", "exit 3", "x" * 3000], env=env())
    assert result.returncode == 3
    data = message(ml)
    text = data.decode("utf-8")  # raises if any byte were copied raw
    assert len(data) <= 1024 and "job-\\xff\\xfe" in text and "exited with 3" in text


def test_the_job_s_own_message_is_never_overwritten(tmp_path):
    ml = processing_tree(tmp_path / "ml")
    own = "import pathlib, sys\npathlib.Path(sys.argv[1]).write_text('job: bad input row 7')\nsys.exit(1)\n"
    written = ml / "output" / "message"
    result = run_sminit(["--ml-root", str(ml), "--", sys.executable, "-c", own, str(written)], env=env())
    assert result.returncode == 1
    assert message(ml) == b"job: bad input row 7"
    assert "message already exists: the job wrote it; not overwritten" in result.stderr


def test_a_processing_success_writes_no_message_and_a_missing_output_folder_is_made(tmp_path):
    ml = processing_tree(tmp_path / "ml", output=False)
    assert run_sminit(["--ml-root", str(ml), "--", "true"], env=env()).returncode == 0
    assert message(ml) is None
    assert run_sminit(["--ml-root", str(ml), "--", "false"], env=env()).returncode == 1
    assert message(ml).startswith(b"sminit: exiting with 1: false exited with 1")


def test_the_processing_gpu_check_reads_its_instance_type(tmp_path):
    ml = processing_tree(tmp_path / "ml", instance_type="ml.g5.12xlarge")
    marker = tmp_path / "ran"
    result = run_sminit(["--ml-root", str(ml), "--", "touch", str(marker)],
                        env=env(SMINIT_DEV_DIR=str(dev_dir(tmp_path / "dev", 1))))
    assert result.returncode == 125 and not marker.exists()
    assert message(ml).startswith(b"sminit: exiting with 125: GPU check failed: 1 NVIDIA GPUs visible in ")
    assert b"4 required by ml.g5.12xlarge" in message(ml)


def test_a_processing_config_that_is_wrong_is_said_by_check_and_by_the_run_in_the_same_words(tmp_path):
    ml = processing_tree(tmp_path / "ml", max_runtime="3600")
    _, report = check("--ml-root", str(ml), "--", "true")
    [warning] = report["warnings"]
    assert warning.endswith("processingjobconfig.json: StoppingCondition.MaxRuntimeInSeconds is '3600', a "
                            "string: it must be a JSON number of seconds (3600, without quotes)")
    assert report["max_runtime"] is None
    result = run_sminit(["--ml-root", str(ml), "--", "true"], env=env())
    assert f"[sminit] warning: {warning}\n" in result.stderr


def test_a_role_argument_wins_over_the_processing_config(tmp_path):
    ml = processing_tree(tmp_path / "ml")
    _, report = check("--ml-root", str(ml), "--", "true", "train")
    assert report["mode"] == "train"
    _, report = check("--ml-root", str(ml), "--mode", "none", "--", "true")
    assert report["mode"] == "none"


# -- SageMaker local mode ---------------------------------------------------------------------------

@pytest.mark.parametrize("instance_type, gpus, problem", [
    ("local", 0, None),
    ("local_gpu", 1, None),
    ("local_gpu", 0, "GPU check failed: 0 NVIDIA GPUs visible in {dev}, 1 required by local_gpu: "),
])
def test_local_mode_instance_types_are_known_and_local_gpu_needs_a_gpu(tmp_path, instance_type, gpus,
                                                                       problem):
    tree = MlTree(tmp_path / "ml", instance_type=instance_type)
    dev = dev_dir(tmp_path / "dev", gpus)
    code, report = check("--ml-root", str(tree.root), "--", "train", SMINIT_TRAIN_CMD="true",
                         SMINIT_DEV_DIR=str(dev))
    assert report["mode"] == "train" and report["local"] is True and report["warnings"] == []
    assert report["grace"] == 8  # inside Compose's 10 s stop_grace_period
    if problem is None:
        assert code == 0 and report["problems"] == []
        assert run_sminit(["--ml-root", str(tree.root), "--", "train"],
                          env=env(SMINIT_TRAIN_CMD="true", SMINIT_DEV_DIR=str(dev))).returncode == 0
        return
    assert code == 125 and report["problems"][0].startswith(problem.format(dev=dev))
    result = run_sminit(["--ml-root", str(tree.root), "--", "train"],
                        env=env(SMINIT_TRAIN_CMD="true", SMINIT_DEV_DIR=str(dev)))
    assert result.returncode == 125
    assert tree.failure().startswith(f"sminit: exiting with 125: {problem.format(dev=dev)}")
    assert "--gpus all" in tree.failure()


def test_local_mode_is_said_in_the_started_line_and_an_explicit_grace_wins(tmp_path):
    tree = MlTree(tmp_path / "ml", instance_type="local")
    result = run_sminit(["--ml-root", str(tree.root), "--", "true", "train"], env=env())
    assert "(mode train, SageMaker local mode, grace 8 s, max runtime 86400 s)" in result.stderr
    _, report = check("--ml-root", str(tree.root), "--grace", "30", "--", "true", "train")
    assert report["grace"] == 30
    _, report = check("--ml-root", str(tree.root), "--", "true", "serve")
    assert report["mode"] == "serve" and report["local"] is True and report["grace"] == 8
    real = MlTree(tmp_path / "real", instance_type="ml.g5.xlarge")
    _, report = check("--ml-root", str(real.root), "--", "true", "train")
    assert report["local"] is False and report["grace"] == 110


# -- Kubernetes ---------------------------------------------------------------------------------

def test_the_termination_log_gets_the_ending_of_a_failed_job_in_any_mode(tmp_path):
    log = tmp_path / "termination-log"
    log.touch()  # the kubelet mounts it empty
    result = run_sminit(["--", sys.executable, "-c", SEGFAULT], env=env(SMINIT_TERMINATION_LOG=str(log)),
                        preexec_fn=no_core)
    assert result.returncode == 139
    text = log.read_text()
    assert text.startswith(f"sminit: exiting with 139: {sys.executable} -c ") and "SIGSEGV" in text


IGNORES_SIGTERM_SAYING_SO = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n" \
                            "print('ignoring SIGTERM', flush=True)\ntime.sleep(60)\n"


def test_the_termination_log_after_a_stop_that_failed_and_at_most_4096_bytes(start, tmp_path):
    log = tmp_path / "termination-log"
    log.touch()
    run = start(["--grace", "0.5", "--", sys.executable, "-c", IGNORES_SIGTERM_SAYING_SO, "y" * 6000],
                env=env(SMINIT_TERMINATION_LOG=str(log)))
    run.expect("ignoring SIGTERM")
    run.signal(signal.SIGTERM)
    assert run.wait() == 137
    data = log.read_bytes()
    assert data.startswith(b"sminit: exiting with 137: ") and len(data) <= 4096
    assert b"was killed by SIGKILL" in data  # the command's 6000 characters are shortened to fit


def test_no_termination_log_file_means_nothing_written_and_nothing_said(tmp_path):
    absent = tmp_path / "termination-log"
    result = run_sminit(["--", "false"], env=env(SMINIT_TERMINATION_LOG=str(absent)))
    assert result.returncode == 1 and not absent.exists()
    assert "termination" not in result.stderr


def test_an_empty_variable_turns_the_termination_log_off(tmp_path):
    _, report = check("--", "true", SMINIT_TERMINATION_LOG="")
    assert report["termination_log"] is None
    log = tmp_path / "termination-log"
    log.touch()
    _, report = check("--", "true", SMINIT_TERMINATION_LOG=str(log))
    assert report["termination_log"] == str(log)


def test_the_job_s_own_termination_message_and_a_success_are_left_alone(tmp_path):
    log = tmp_path / "termination-log"
    own = "import pathlib, sys\npathlib.Path(sys.argv[1]).write_text('job: checksum mismatch')\nsys.exit(2)\n"
    log.touch()
    result = run_sminit(["--", sys.executable, "-c", own, str(log)], env=env(SMINIT_TERMINATION_LOG=str(log)))
    assert result.returncode == 2 and log.read_text() == "job: checksum mismatch"
    assert "already holds a termination message (the job's own); not overwritten" in result.stderr
    log.write_text("")
    assert run_sminit(["--", "true"], env=env(SMINIT_TERMINATION_LOG=str(log))).returncode == 0
    assert log.read_text() == ""


# -- plain engines: mode none ------------------------------------------------------------------------

def test_mode_none_s_grace_ends_before_docker_stop_s_default_10_s(tmp_path):
    _, report = check("--ml-root", str(tmp_path / "none"), "--", "true")
    assert report["mode"] == "none" and report["grace"] == 8


def test_an_unknown_processing_instance_type_is_named_with_its_file(tmp_path):
    ml = processing_tree(tmp_path / "ml", instance_type="ml.g5.2xlarg")
    _, report = check("--ml-root", str(ml), "--", "true")
    assert report["warnings"] == ["unknown instance type ml.g5.2xlarg in processingjobconfig.json: no GPU "
                                  "count is expected for it (did you mean ml.g5.2xlarge?)"]
