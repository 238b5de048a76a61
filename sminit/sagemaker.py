"""The SageMaker tree under the ml-root: tolerant readers of its JSON files and their shapes."""

from __future__ import annotations

import os
import stat

from sminit.log import Collector, Log

MAX_CONFIG_BYTES = 16 * 1024 * 1024


def config_path(ml_root: str, name: str) -> str:
    """A training job's (and local mode's) config file: <ml-root>/input/config/NAME."""
    return os.path.join(ml_root, "input", "config", name)


def processing_config_path(ml_root: str, name: str) -> str:
    """A processing job's config file: <ml-root>/config/NAME (AWS's documentation)."""
    return os.path.join(ml_root, "config", name)


def job_config_path(ml_root: str, mode: str) -> str:
    """The file with the job's StoppingCondition: processingjobconfig.json or trainingjobconfig.json."""
    if mode == "processing":
        return processing_config_path(ml_root, "processingjobconfig.json")
    return config_path(ml_root, "trainingjobconfig.json")


def read_json(path: str, log: Log, shape: type = dict) -> object | None:
    """A config file's JSON if it is a regular file of the expected shape, else None.

    Missing is normal (one debug line). Anything else that is wrong (empty, malformed,
    too big, a directory, a FIFO, a symlink loop, the wrong JSON type) is one warning line;
    nothing here raises or blocks (O_NONBLOCK: opening a FIFO must not wait for a writer).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        log.debug(f"{path}: not present")
        return None
    except OSError as exc:
        log.warning(f"{path}: cannot open ({exc.strerror}), ignored")
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            log.warning(f"{path}: not a regular file, ignored")
            return None
        if info.st_size > MAX_CONFIG_BYTES:
            log.warning(f"{path}: larger than {MAX_CONFIG_BYTES} bytes, ignored")
            return None
        data = os.read(fd, MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        log.warning(f"{path}: cannot read ({exc.strerror}), ignored")
        return None
    finally:
        os.close(fd)
    import json

    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        log.warning(f"{path}: {'empty' if not data.strip() else 'not valid JSON'}, ignored")
        return None
    if not isinstance(value, shape):
        log.warning(f"{path}: expected a JSON {'object' if shape is dict else shape.__name__}, ignored")
        return None
    return value


def max_runtime_seconds(job_config: object, path: str, log: Log) -> float | None:
    """StoppingCondition.MaxRuntimeInSeconds from trainingjobconfig.json or
    processingjobconfig.json (the same key in both), if sound."""
    if not isinstance(job_config, dict):
        return None
    condition = job_config.get("StoppingCondition")
    value = condition.get("MaxRuntimeInSeconds") if isinstance(condition, dict) else None
    if value is None:
        return None
    seconds = sound_runtime(value)
    if seconds is None:
        log.warning(f"{path}: StoppingCondition.MaxRuntimeInSeconds {runtime_problem(value)}; ignored")
    return seconds


def sound_runtime(value: object) -> float | None:
    """MaxRuntimeInSeconds as seconds, if it is a positive number below 10^9 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 10**9:
        return None
    return float(value)


def runtime_problem(value: object) -> str:
    """What is wrong with a MaxRuntimeInSeconds that sound_runtime refuses, in words."""
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    if isinstance(value, str):
        return (f"is {shown}, a string: it must be a JSON number of seconds "
                f"({value.strip() if value.strip().isdigit() else '3600'}, without quotes)")
    return f"is {shown}, expected seconds, a positive number below 10^9"


# For each file, the keys that sminit or the training toolkit reads, and what each must be.
_SHAPES = {
    "resourceconfig.json": {
        "current_host": "a string", "hosts": "a list of strings", "current_instance_type": "a string",
        "current_group_name": "a string", "network_interface_name": "a string", "instance_groups": "a list",
    },
    "checkpointconfig.json": {"LocalPath": "a string"},
}


def _is(value: object, expected: str) -> bool:
    if expected == "a string":
        return isinstance(value, str)
    if expected == "a list of strings":
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    return isinstance(value, list)


def shape_problems(name: str, value: dict) -> list[str]:
    """What in a config file's JSON object has the wrong shape (each one a --check warning)."""
    found = []

    def wrong(key: str, item: object, expected: str) -> None:
        shown = repr(item) if len(repr(item)) <= 60 else repr(item)[:57] + "..."
        found.append(f"{name}: {key} is {shown}, expected {expected}")

    for key, expected in _SHAPES.get(name, {}).items():
        if key in value and not _is(value[key], expected):
            wrong(key, value[key], expected)
    if name == "hyperparameters.json":
        for key, item in value.items():
            if not isinstance(item, str):
                wrong(repr(key), item, "a string (SageMaker passes every hyperparameter as one)")
    elif name == "inputdataconfig.json":
        for key, item in value.items():
            if not isinstance(item, dict):
                wrong(repr(key), item, "an object (the channel's settings)")
    if name == "processingjobconfig.json":
        instance_type = processing_instance_type(value)
        if instance_type is not None and not isinstance(instance_type, str):
            wrong("ProcessingResources.ClusterConfig.InstanceType", instance_type, "a string")
    if name in ("trainingjobconfig.json", "processingjobconfig.json"):
        condition = value.get("StoppingCondition")
        runtime = condition.get("MaxRuntimeInSeconds") if isinstance(condition, dict) else None
        if condition is not None and not isinstance(condition, dict):
            wrong("StoppingCondition", condition, "an object")
        elif runtime is not None and sound_runtime(runtime) is None:
            found.append(f"{name}: StoppingCondition.MaxRuntimeInSeconds {runtime_problem(runtime)}")
    return found


def processing_instance_type(job_config: object) -> object:
    """ProcessingResources.ClusterConfig.InstanceType of processingjobconfig.json, None if absent."""
    resources = job_config.get("ProcessingResources") if isinstance(job_config, dict) else None
    cluster = resources.get("ClusterConfig") if isinstance(resources, dict) else None
    return cluster.get("InstanceType") if isinstance(cluster, dict) else None


ML_FILES = ("resourceconfig.json", "trainingjobconfig.json", "hyperparameters.json",
            "inputdataconfig.json", "checkpointconfig.json")
PROCESSING_FILES = ("processingjobconfig.json", "resourceconfig.json")


def config_files(ml_root: str, mode: str = "train") -> tuple[dict[str, str], list[str], list[str]]:
    """Each config file's state (ok, missing, invalid), the problems (not JSON, not a regular
    file, ...) and the warnings (a wrongly shaped value) found: `--check` lists them, a run in
    train or processing mode logs each as a warning line in the same words."""
    processing = mode == "processing"
    where = processing_config_path if processing else config_path
    states, problems, warnings = {}, [], []
    for name in PROCESSING_FILES if processing else ML_FILES:
        collector = Collector()
        value = read_json(where(ml_root, name), collector)
        wrong = shape_problems(name, value) if isinstance(value, dict) else []
        if collector.lines or wrong:
            states[name] = "invalid"
        else:
            states[name] = "missing" if value is None else "ok"
        problems += collector.lines
        warnings += [f"{where(ml_root, '')}{line}" for line in wrong]
    return states, problems, warnings
