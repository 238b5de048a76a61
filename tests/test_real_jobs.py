"""Real clients: PyTorch (torch==2.13.0, CPU) with DataLoader workers, torchrun with gloo ranks, and
AWS's sagemaker-training toolkit relaying the script's output, each stopped under sminit, as PID 1
and as a subreaper. They run from their own cached venv, never sminit's: `.ci/run` makes it
(SMINIT_JOBS_VENV, default ~/.cache/sminit-tests/jobs-venv) and requires these tests there
(SMINIT_REAL_JOBS=required); elsewhere they skip when the venv is missing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import PROGRAMS, deliveries
from sminit.testing import MlTree

VENV = Path(os.environ.get("SMINIT_JOBS_VENV") or Path.home() / ".cache" / "sminit-tests" / "jobs-venv")
PYTHON = VENV / "bin" / "python"


def _venv_ready() -> str | None:
    """Why the real clients cannot run here, or None."""
    if not PYTHON.exists():
        return f"no venv of real clients at {VENV} (.ci/run makes it)"
    probe = subprocess.run([str(PYTHON), "-c", "import torch, sagemaker_training"], capture_output=True,
                           text=True, timeout=120)
    return None if probe.returncode == 0 else f"{VENV}: {probe.stderr.strip()[-300:]}"


MISSING = _venv_ready()
if MISSING and os.environ.get("SMINIT_REAL_JOBS") == "required":
    raise RuntimeError(f"SMINIT_REAL_JOBS=required, but {MISSING}")
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
JSON = ["--log-format", "json"]


def checkpoint(path: Path) -> dict:
    """Load a torch checkpoint with the real torch: it fails on a partial file."""
    code = f"import torch, json; d = torch.load({str(path)!r}); print(json.dumps({{'step': int(d['step'])}}))"
    result = subprocess.run([str(PYTHON), "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_pytorch_dataloader_job_saves_its_checkpoint_when_stopped(start, as_pid1, tmp_path):
    path = tmp_path / "model.pt"
    run = start([*JSON, "-t", "60", "--", str(PYTHON), str(PROGRAMS / "torch_train.py"), str(path)],
                pid1=as_pid1)
    run.expect("training with workers", timeout=120)
    run.signal(signal.SIGTERM)
    assert run.wait(timeout=90) == 0
    assert "done" in run.lines and checkpoint(path)["step"] >= 0
    assert "exited unexpectedly" not in run.stderr() and "Traceback" not in run.stderr()
    [delivery] = deliveries(run.stderr())
    assert delivery["rule"] == "handlers" and delivery["targets"] and delivery["left"] >= 2  # the workers


def test_control_with_forward_group_the_workers_die_and_the_checkpoint_is_lost(start, tmp_path):
    # What tini -g and dumb-init do, and sminit 0.1 did: the test above can fail.
    path = tmp_path / "model.pt"
    run = start(["--forward", "group", "-t", "60", "--", str(PYTHON), str(PROGRAMS / "torch_train.py"),
                 str(path)])
    run.expect("training with workers", timeout=120)
    run.signal(signal.SIGTERM)
    assert run.wait(timeout=90) == 1
    assert not path.exists() and "exited unexpectedly" in run.stderr()


def test_pytorch_dataloader_job_is_warned_then_stopped_at_the_max_runtime(start, as_pid1, tmp_path):
    path = tmp_path / "model.pt"
    # The import and the workers' start take seconds here: the warning falls well after them.
    run = start([*JSON, "-t", "60", "--max-runtime", "20", "--warn-before", "8", "--", str(PYTHON),
                 str(PROGRAMS / "torch_train.py"), str(path)], pid1=as_pid1)
    run.expect("training with workers", timeout=11)
    assert run.wait(timeout=90) == 124
    warned, final = checkpoint(Path(f"{path}.warn")), checkpoint(path)
    assert final["step"] > warned["step"] and "done" in run.lines
    assert [(d["signal"], d["rule"], len(d["targets"])) for d in deliveries(run.stderr())] == [
        ("SIGUSR1", "handlers", 1), ("SIGTERM", "handlers", 1)]
    assert "exited unexpectedly" not in run.stderr()


def test_torchrun_gets_the_stop_and_its_ranks_save(start, as_pid1, tmp_path):
    torchrun = VENV / "bin" / "torchrun"
    run = start([*JSON, "-t", "60", "--", str(torchrun), "--standalone", "--nproc_per_node=2",
                 str(PROGRAMS / "torch_rank.py"), str(tmp_path)], pid1=as_pid1)
    run.expect_all(["rank 0 ready", "rank 1 ready"], timeout=120)
    run.signal(signal.SIGTERM)
    code = run.wait(timeout=90)
    assert code in (0, 1)  # torchrun exits 1 after relaying a stop (SignalException)
    for rank in (0, 1):
        assert checkpoint(tmp_path / f"rank-{rank}")["step"] > 0
    [delivery] = deliveries(run.stderr())
    assert delivery["rule"] == "handlers" and len(delivery["targets"]) == 1
    assert "torchrun" in delivery["commands"][0]


def test_torchrun_warning_goes_past_torchrun_to_the_ranks(start, as_pid1, tmp_path):
    torchrun = VENV / "bin" / "torchrun"
    run = start([*JSON, "-t", "60", "--max-runtime", "25", "--warn-before", "12", "--", str(torchrun),
                 "--standalone", "--nproc_per_node=2", str(PROGRAMS / "torch_rank.py"), str(tmp_path)],
                pid1=as_pid1)
    run.expect_all(["rank 0 saved rank-0.warn", "rank 1 saved rank-1.warn"], timeout=60)
    assert run.wait(timeout=90) == 124  # torchrun survived the warning; the deadline stopped it
    for rank in (0, 1):
        warned = checkpoint(tmp_path / f"rank-{rank}.warn")
        assert checkpoint(tmp_path / f"rank-{rank}")["step"] > warned["step"]
    warning, stop = deliveries(run.stderr())
    assert warning["signal"] == "SIGUSR1" and len(warning["targets"]) == 2
    assert all("torch_rank.py" in command for command in warning["commands"])
    assert stop["signal"] == "SIGTERM" and "torchrun" in stop["commands"][0]


def test_the_training_toolkit_relays_the_script_s_save_and_exits_0(start, as_pid1, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    shutil.copy(PROGRAMS / "toolkit_script.py", code)
    tree = MlTree(tmp_path / "ml", hyperparameters={"sagemaker_program": "toolkit_script.py",
                                                    "sagemaker_submit_directory": str(code)})
    env = {
        "SAGEMAKER_BASE_DIR": str(tree.root), "TRAINING_JOB_NAME": tree.job_name,
        "SAGEMAKER_TRAINING_MODULE": "framework.training:main",  # as the PyTorch toolkit's image sets it
        "PYTHONPATH": str(PROGRAMS),
        "SM_STUDIO_LOCAL_MODE": "true",  # no DNS here for the tree's algo-1: skip the toolkit's wait for it
    }
    train = VENV / "bin" / "train"  # the toolkit's command, as the PyTorch image runs it
    run = start([*JSON, "--ml-root", str(tree.root), "--require-gpus", "none", "--", str(train)],
                pid1=as_pid1, env=env)
    run.expect("script: ready", timeout=120)
    run.signal(signal.SIGTERM)
    assert run.wait(timeout=90) == 0
    assert (tree.checkpoints / "model.ckpt").read_text().count("part") == 10
    assert "script: saved" in run.lines and "BrokenPipeError" not in run.stderr()
    assert tree.failure() is None
    [delivery] = deliveries(run.stderr())
    assert "toolkit_script.py" in delivery["commands"][0] and delivery["left"] >= 1
    assert any("bin/train" in left for left in delivery["left_running"])  # the toolkit, not signalled
