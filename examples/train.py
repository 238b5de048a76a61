#!/usr/bin/env python3
"""Example SageMaker training entry point that never loses its work when the job is stopped.

- The warn signal (SIGUSR1, sent by `sminit --warn-before` ahead of MaxRuntimeInSeconds):
  save a checkpoint and keep training.
- SIGTERM (StopTrainingJob, a spot interruption, the max runtime): save a checkpoint, exit.
- Every `checkpoint_every` steps (a hyperparameter): a regular checkpoint.
- On start: resume from the checkpoint, if there is one.

The handlers only set flags; the loop saves at a step boundary, so a checkpoint always holds
a consistent state. It is written to a temporary file and renamed into place, so it is
either complete or absent, never half-written. Copy this pattern.
"""

import json
import os
import signal
import sys
import time

ML_ROOT = os.environ.get("SMINIT_ML_ROOT", "/opt/ml")
requests = {"save": False, "stop": False}


def read_config(name: str) -> dict:
    try:
        with open(os.path.join(ML_ROOT, "input", "config", name)) as handle:
            value = json.load(handle)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def hyperparameter(name: str, default: str) -> str:
    """SageMaker's Python SDK JSON-encodes each value: "\\"100\\"" arrives for "100"."""
    value = read_config("hyperparameters.json").get(name, default)
    try:
        return str(json.loads(value))
    except (TypeError, ValueError):
        return str(value)


def save(path: str, state: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as handle:
        json.dump(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(path + ".tmp", path)


def main() -> int:
    signal.signal(signal.SIGUSR1, lambda *_: requests.update(save=True))
    signal.signal(signal.SIGTERM, lambda *_: requests.update(save=True, stop=True))
    checkpoints = read_config("checkpointconfig.json").get("LocalPath") or os.path.join(ML_ROOT,
                                                                                        "checkpoints")
    checkpoint = os.path.join(checkpoints, "checkpoint.json")
    steps = int(hyperparameter("steps", "100"))
    step_seconds = float(hyperparameter("step_seconds", "0.05"))
    every = int(hyperparameter("checkpoint_every", "50"))
    try:
        with open(checkpoint) as handle:
            state = json.load(handle)
        print(f"resumed from step {state['step']}", flush=True)
    except (OSError, ValueError, KeyError):
        state = {"step": 0}
        print("starting from step 0", flush=True)
    while state["step"] < steps:
        time.sleep(step_seconds)  # one training step
        state["step"] += 1
        if requests["save"] or (every and state["step"] % every == 0):
            requests["save"] = False
            save(checkpoint, state)
            print(f"checkpoint saved at step {state['step']}", flush=True)
        if requests["stop"]:
            print(f"stopped at step {state['step']}", flush=True)
            return 0
    model = os.path.join(ML_ROOT, "model", "model.json")
    save(model, state)
    print(f"finished {steps} steps, model saved to {model}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
