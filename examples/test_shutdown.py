"""Does the training job survive StopTrainingJob and a spot interruption with its checkpoint intact?

Copy this file next to your training script, set TRAIN to your command, and run `pytest`
(after `pip install 'sminit[test]'`). The fixtures come from sminit's pytest plugin.
"""

import json
import sys
from pathlib import Path

TRAIN = [sys.executable, str(Path(__file__).parent / "train.py")]  # your training command


def test_stop_keeps_a_complete_checkpoint(ml_tree, sminit_job):
    tree = ml_tree(instance_type="ml.g5.2xlarge", hyperparameters={"steps": 100000, "checkpoint_every": 20})
    job = sminit_job(TRAIN, tree, grace=30)  # under sminit a training job gets 110 s by default
    checkpoint = job.wait_for_file(tree.checkpoints / "checkpoint.json")  # the first regular one
    first = json.loads(checkpoint.read_text())["step"]

    result = job.stop()  # what StopTrainingJob does: SIGTERM, SIGKILL 120 s later

    assert result.signals[0][1] == "SIGTERM"  # the job got it, even behind a shell
    assert json.loads(checkpoint.read_text())["step"] > first  # saved again on SIGTERM, complete
    assert result.sagemaker_status == "Stopped" and result.secondary_status == "Stopped"
    assert result.exit_status == 0 and result.failure_reason is None  # it stopped cleanly
    assert not result.killed_by_platform  # done well within the grace
    assert result.still_running == []  # nothing left behind


def test_spot_interruption_resumes_from_the_checkpoint(ml_tree, sminit_job):
    tree = ml_tree(hyperparameters={"steps": 60, "checkpoint_every": 10})
    job = sminit_job(TRAIN, tree, grace=30)
    job.wait_for_file(tree.checkpoints / "checkpoint.json")
    interrupted = job.stop()  # a spot interruption stops the job as StopTrainingJob does
    saved = json.loads((tree.checkpoints / "checkpoint.json").read_text())["step"]

    restarted = tree.resume()  # the new instance: checkpoints/ restored, model/ and output/ empty
    result = sminit_job(TRAIN, restarted).wait(timeout=120)

    assert interrupted.sagemaker_status == "Stopped" and saved > 0
    assert f"resumed from step {saved}" in result.output  # not from step 0
    assert result.sagemaker_status == "Completed" and result.files["model"] == ["model.json"]
