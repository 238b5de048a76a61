"""The users' testing kit: trees, both runner paths, and the reports it gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CAN_UNSHARE, RECORDER
from sminit.testing import Job, MlTree, pid_namespace_prefix

ROOT = Path(__file__).parent.parent
TRAIN = [sys.executable, str(ROOT / "examples" / "train.py")]


@pytest.fixture(params=["pid1", "subreaper"])
def namespace(request) -> bool:
    if request.param == "pid1" and not CAN_UNSHARE:
        pytest.skip("needs a PID namespace")
    return request.param == "pid1"


@pytest.fixture
def jobs():
    started: list[Job] = []
    yield started
    for job in started:
        job.close()


def run(jobs, *args, **kwargs) -> Job:
    job = Job(*args, **kwargs)
    jobs.append(job)
    return job


def test_tree_has_sagemaker_shapes(tmp_path):
    tree = MlTree(tmp_path / "ml", instance_type="ml.p4d.24xlarge", host_count=2,
                  hyperparameters={"epochs": 3, "lr": "0.1"},
                  channels={"train": {"a.csv": "x\n", "sub/b.bin": b"\0"}, "test": {}}, max_runtime=900)
    config = tree.config
    resource = json.loads((config / "resourceconfig.json").read_text())
    assert resource["current_instance_type"] == "ml.p4d.24xlarge" and resource["hosts"] == ["algo-1",
                                                                                            "algo-2"]
    assert resource["instance_groups"][0]["hosts"] == ["algo-2", "algo-1"]
    assert json.loads((config / "hyperparameters.json").read_text()) == {"epochs": "3", "lr": '"0.1"'}
    job = json.loads((config / "trainingjobconfig.json").read_text())
    assert job["StoppingCondition"]["MaxRuntimeInSeconds"] == 900
    assert json.loads((config / "checkpointconfig.json").read_text()) == {"LocalPath": str(tree.checkpoints)}
    assert set(json.loads((config / "inputdataconfig.json").read_text())) == {"train", "test"}
    assert (tree.channel("train") / "sub" / "b.bin").read_bytes() == b"\0"
    assert tree.environment()["SM_CHANNEL_TRAIN"] == str(tree.channel("train"))


def test_runner_paths(tmp_path, jobs, namespace):
    tree = MlTree(tmp_path / "ml")
    job = run(jobs, ["sh", "-c", 'echo "pid $$"; exit 3'], tree, pid_namespace=namespace)
    assert job.mode == ("pid1" if namespace else "subreaper")
    result = job.wait(30)
    assert result.exit_status == 3 and result.sagemaker_status == "Failed"
    assert result.secondary_status == "Failed"
    assert result.failure.startswith("sminit: exiting with 3")
    assert result.failure_reason == result.failure  # short enough to be FailureReason whole
    assert result.exit_line.startswith("exiting with 3: sh -c")
    in_namespace = result.output.strip() == "pid 2"  # PID 1 is sminit, its first child is 2
    assert in_namespace == namespace


def test_automatic_choice_says_which(tmp_path, jobs):
    job = run(jobs, ["true"], MlTree(tmp_path / "ml"))
    assert job.mode == ("pid1" if pid_namespace_prefix() else "subreaper")
    assert job.wait(30).exit_status == 0


def test_job_that_ignores_sigterm_is_killed_at_the_grace(tmp_path, jobs, namespace):
    tree = MlTree(tmp_path / "ml")
    job = run(jobs, [*RECORDER, "--ignore-term"], tree, grace=0.5, pid_namespace=namespace)
    job.wait_for_output("main ready")
    result = job.stop()
    assert result.exit_status == 137 and not result.killed_by_platform
    assert (result.sagemaker_status, result.secondary_status) == ("Stopped", "Stopped")  # whatever the status
    assert result.failure_reason is None  # a stopped job shows none, though the failure file exists
    assert [name for _, name in result.signals] == ["SIGTERM"]
    [delivery] = result.deliveries
    assert delivery.rule == "handlers" and delivery.received == "SIGTERM" and delivery.left == 0
    [(pid, command)] = delivery.targets
    assert pid > 0 and "recorder.py --ignore-term" in command
    assert "grace expired" in result.failure and "killed by SIGKILL" in result.failure
    assert "main got SIGTERM" in result.output


def test_job_that_checkpoints_correctly(tmp_path, jobs, namespace):
    tree = MlTree(tmp_path / "ml", hyperparameters={"steps": 100000, "checkpoint_every": 10})
    job = run(jobs, TRAIN, tree, grace=30, pid_namespace=namespace)
    checkpoint = job.wait_for_file(tree.checkpoints / "checkpoint.json")
    result = job.stop()
    assert result.exit_status == 0 and result.failure is None and result.sagemaker_status == "Stopped"
    assert result.files["checkpoints"] == ["checkpoint.json"]
    assert json.loads(checkpoint.read_text())["step"] >= 10
    assert result.still_running == [] and result.leftovers == []


def test_job_that_leaves_a_process_behind_is_reported(tmp_path, jobs, namespace):
    tree = MlTree(tmp_path / "ml")
    script = f"{' '.join(RECORDER)} --tag stray --ignore-term & sleep 0.5; exit 0"
    job = run(jobs, ["sh", "-c", script], tree, sminit_args=["--cleanup-grace", "0.3"],
              pid_namespace=namespace)
    result = job.wait(30)
    assert result.exit_status == 0
    assert len(result.leftovers) == 1 and "leaving 1 process:" in result.leftovers[0]
    assert result.still_running == []  # sminit finished it off after the clean-up grace


def test_max_runtime_shows_as_stopped_max_runtime_exceeded(tmp_path, jobs):
    tree = MlTree(tmp_path / "ml", max_runtime=1)
    result = run(jobs, [*RECORDER], tree, pid_namespace=False).wait(30)
    assert result.exit_status == 124 and "max runtime of 1 s passed" in result.failure
    assert (result.sagemaker_status, result.secondary_status) == ("Stopped", "MaxRuntimeExceeded")
    assert result.failure_reason is None
    text = repr(result)
    assert "sagemaker_status='Stopped'" in text and "secondary_status='MaxRuntimeExceeded'" in text


def test_completed_and_a_long_failure_reason(tmp_path, jobs):
    tree = MlTree(tmp_path / "ml")
    done = run(jobs, ["true"], tree, pid_namespace=False).wait(30)
    assert (done.sagemaker_status, done.secondary_status, done.failure_reason) == ("Completed", "Completed",
                                                                                   None)
    long_reason = "CUDA error: " + "x" * 3000
    other = MlTree(tmp_path / "other")
    script = f"printf '%s' '{long_reason}' > {other.failure_path}; exit 1"
    failed = run(jobs, ["sh", "-c", script], other, pid_namespace=False).wait(30)
    assert failed.sagemaker_status == "Failed" and failed.failure == long_reason
    assert failed.failure_reason == long_reason[:1024]


def test_resume_is_the_restarted_job_s_tree(tmp_path):
    tree = MlTree(tmp_path / "ml", instance_type="ml.g5.2xlarge", hyperparameters={"epochs": 3},
                  channels={"train": {"a.csv": "x\n"}}, max_runtime=900)
    (tree.checkpoints / "step-10").mkdir()
    (tree.checkpoints / "step-10" / "state.json").write_text('{"step": 10}')
    (tree.model / "model.bin").write_text("weights")
    (tree.output / "failure").write_text("interrupted")
    restarted = tree.resume()
    assert restarted.root == tmp_path / "ml-restart-1" and restarted.root.is_dir()
    assert (restarted.checkpoints / "step-10" / "state.json").read_text() == '{"step": 10}'
    assert restarted.files() == {"model": [], "checkpoints": ["step-10/state.json"], "output": []}
    assert (restarted.channel("train") / "a.csv").read_text() == "x\n"
    assert restarted.hyperparameters == tree.hyperparameters and restarted.instance_type == "ml.g5.2xlarge"
    checkpoint_config = json.loads((restarted.config / "checkpointconfig.json").read_text())
    assert checkpoint_config["LocalPath"] == str(restarted.checkpoints)
    assert tree.resume().root.name == "ml-restart-1" and restarted.resume().root.name == "ml-restart-2"


def test_the_training_toolkit_s_variables(tmp_path, jobs):
    tree = MlTree(tmp_path / "ml", instance_type="ml.p3.2xlarge", host_count=2,
                  hyperparameters={"epochs": 3, "lr": "0.1", "layers": [64, 32],
                                   "sagemaker_program": "train.py"},
                  channels={"train": {}, "validation": {}})
    env = tree.environment()
    assert env["SM_HP_EPOCHS"] == "3" and env["SM_HP_LR"] == "0.1" and env["SM_HP_LAYERS"] == "[64,32]"
    assert "SM_HP_SAGEMAKER_PROGRAM" not in env  # sagemaker_* are framework parameters
    assert json.loads(env["SM_HPS"]) == {"epochs": 3, "layers": [64, 32], "lr": "0.1"}
    assert json.loads(env["SM_FRAMEWORK_PARAMS"]) == {"sagemaker_program": "train.py"}
    assert env["SM_USER_ENTRY_POINT"] == "train.py" and env["SM_MODULE_NAME"] == "train"
    assert json.loads(env["SM_USER_ARGS"]) == ["--epochs", "3", "--layers", "[64, 32]", "--lr", "0.1"]
    assert env["SM_NUM_CPUS"] == str(len(os.sched_getaffinity(0))) and env["SM_NUM_GPUS"].isdigit()
    assert env["SM_NUM_NEURONS"] == "0" and env["SM_CURRENT_INSTANCE_TYPE"] == "ml.p3.2xlarge"
    assert json.loads(env["SM_HOSTS"]) == ["algo-1", "algo-2"] and env["SM_CURRENT_HOST"] == "algo-1"
    assert json.loads(env["SM_CHANNELS"]) == ["train", "validation"]
    assert env["SM_CHANNEL_VALIDATION"] == str(tree.channel("validation"))
    assert env["SM_MODEL_DIR"] == str(tree.model) and env["SM_OUTPUT_DATA_DIR"] == str(tree.output / "data")
    assert env["SM_OUTPUT_INTERMEDIATE_DIR"] == str(tree.output / "intermediate")
    training = json.loads(env["SM_TRAINING_ENV"])
    assert training["hyperparameters"] == {"epochs": 3, "layers": [64, 32], "lr": "0.1"}
    assert training["channel_input_dirs"]["train"] == str(tree.channel("train"))
    assert training["is_master"] is True
    assert json.loads(env["SM_RESOURCE_CONFIG"])["current_instance_type"] == "ml.p3.2xlarge"
    # A user's script reads them as it would under the toolkit:
    job = run(jobs, [sys.executable, "-c", "import json, os; print(int(os.environ['SM_HP_EPOCHS']) * 2, "
                     "json.loads(os.environ['SM_TRAINING_ENV'])['current_host'])"], tree, pid_namespace=False)
    assert job.wait(30).output == "6 algo-1\n"


def test_platform_sigkill_when_sminit_s_grace_is_longer(tmp_path, jobs):
    tree = MlTree(tmp_path / "ml")
    job = run(jobs, [*RECORDER, "--ignore-term"], tree, grace=60, pid_namespace=False)
    job.wait_for_output("main ready")
    result = job.stop(platform_grace=0.5)
    assert result.killed_by_platform and result.exit_status == 137 and result.sagemaker_status == "Stopped"
    assert result.still_running == []


def test_readme_example_runs_as_a_user_would(tmp_path):
    example = (ROOT / "examples" / "test_shutdown.py").read_text()
    readme = (ROOT / "README.md").read_text()
    assert example.split('"""', 2)[2].strip() in readme  # the README shows this very test
    # Through the installed plugin (entry point pytest11), from an unrelated folder.
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(ROOT / "examples" / "test_shutdown.py")],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env={**os.environ, "PYTEST_ADDOPTS": ""})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_deliveries_say_where_each_signal_went_behind_a_shell(tmp_path, jobs, namespace):
    tree = MlTree(tmp_path / "ml")
    job = run(jobs, ["sh", "-c", f"{' '.join(RECORDER)} --tag worker; echo shell-done"], tree,
              pid_namespace=namespace)
    job.wait_for_output("worker ready")
    result = job.stop()
    assert result.exit_status == 0 and "shell-done" in result.output
    [delivery] = result.deliveries
    assert delivery.signal == "SIGTERM" and delivery.rule == "handlers"
    assert "--tag worker" in delivery.targets[0][1] and delivery.left == 1
    assert delivery.left_running[0].split(" (", 1)[1].startswith("sh -c")
    assert result.signals == [(delivery.time, "SIGTERM")] and 0 < delivery.time < result.duration
