"""/opt/ml trees for the tests: the kit's MlTree with shapes a test sets itself (old, missing or
wrong on purpose), and a SageMaker Processing job's tree."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sminit.testing import MlTree

P4D_TWO_HOSTS = {
    "current_host": "algo-2", "current_instance_type": "ml.p4d.24xlarge",
    "current_group_name": "homogeneousCluster", "hosts": ["algo-1", "algo-2"],
    "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": "ml.p4d.24xlarge",
                         "hosts": ["algo-2", "algo-1"]}],
    "network_interface_name": "eth0",
}
OLD_THREE_KEYS = {"current_host": "algo-1", "hosts": ["algo-1", "algo-2", "algo-3"],
                  "network_interface_name": "eth0"}


def job_config(max_runtime: object = 900) -> dict:
    return {
        "TrainingJobName": "sminit-test",
        "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/sminit-test",
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime, "MaxWaitTimeInSeconds": max_runtime},
        "ResourceConfig": {"InstanceType": "ml.p4d.24xlarge", "InstanceCount": 2, "VolumeSizeInGB": 30},
    }


def make_ml_root(root: Path, resource: dict | None = P4D_TWO_HOSTS, job: dict | None = None,
                 hyperparameters: dict | None = None, output: bool = True) -> Path:
    """The kit's MlTree (the shapes SageMaker writes), with the test's own resourceconfig.json and
    trainingjobconfig.json, which may be old, missing or wrong on purpose; None leaves one out."""
    tree = MlTree(root, instance_type="ml.p4d.24xlarge", host_count=2, hyperparameters=hyperparameters,
                  channels={"train": {"part-0000.csv": "x,y\n1,2\n"}})
    for name, value in (("resourceconfig.json", resource), ("trainingjobconfig.json", job)):
        if value is None:
            (tree.config / name).unlink()
        else:
            (tree.config / name).write_text(json.dumps(value))
    if not output:
        shutil.rmtree(tree.output)
    return root


def processing_tree(root: Path, max_runtime: object = 3600, instance_type: str = "ml.m5.xlarge",
                    output: bool = True) -> Path:
    """/opt/ml as a processing job has it (AWS's documentation): config/processingjobconfig.json,
    config/resourceconfig.json, the processing/ folders, and output/ for the message file."""
    (root / "config").mkdir(parents=True)
    job = {
        "ProcessingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:processing-job/sminit-test",
        "ProcessingJobName": "sminit-test",
        "AppSpecification": {"ImageUri": "sminit-test", "ContainerEntrypoint": None,
                             "ContainerArguments": None},
        "Environment": {},
        "ProcessingInputs": [{"InputName": "input-1", "S3Input": {"LocalPath": "/opt/ml/processing/input"}}],
        "ProcessingOutputConfig": {"Outputs": []},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": instance_type,
                                                  "VolumeSizeInGB": 30}},
        "RoleArn": "arn:aws:iam::123456789012:role/sminit-test",
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
    }
    (root / "config" / "processingjobconfig.json").write_text(json.dumps(job))
    (root / "config" / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1",
                                                                      "hosts": ["algo-1"]}))
    (root / "processing" / "input").mkdir(parents=True)
    if output:
        (root / "output").mkdir()
    return root
