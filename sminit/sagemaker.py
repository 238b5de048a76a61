"""The SageMaker tree under the ml-root: tolerant readers of its JSON files, the failure file."""

from __future__ import annotations

import errno
import os
import stat

from sminit.log import Collector, Log

MAX_CONFIG_BYTES = 16 * 1024 * 1024
FAILURE_BYTES = 1024


def config_path(ml_root: str, name: str) -> str:
    return os.path.join(ml_root, "input", "config", name)


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
    """StoppingCondition.MaxRuntimeInSeconds from trainingjobconfig.json, if sound."""
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


def write_failure(ml_root: str, reason: str, log: Log, started_at: float) -> bool:
    """Write <ml-root>/output/failure unless anything is already there: the first writer wins.

    O_EXCL refuses any existing entry, a symlink (even dangling) included, so nothing the
    job wrote is overwritten, appended to or written through. Only where output/ exists;
    started_at (wall clock) tells a file the job wrote from one an earlier run left.
    """
    output = os.path.join(ml_root, "output")
    if not os.path.isdir(output):
        log.info(f"no failure file: {output} does not exist (SageMaker creates it; "
                 "a hand-made tree may lack it)")
        return False
    path = os.path.join(output, "failure")
    # Cut at 1024 bytes without splitting a UTF-8 character: FailureReason keeps the head.
    data = reason.encode("utf-8", "replace")[:FAILURE_BYTES].decode("utf-8", "ignore").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            log.info(f"{path} already exists: {_who_wrote(path, started_at)}; not overwritten")
        else:
            log.warning(f"cannot write {path}: {exc.strerror}")
        return False
    try:
        os.write(fd, data)
    except OSError as exc:
        log.warning(f"cannot write {path}: {exc.strerror}")
    finally:
        os.close(fd)
    return True


def _who_wrote(path: str, started_at: float) -> str:
    try:
        modified = os.lstat(path).st_mtime
    except OSError:
        return "left as it is"
    if modified >= started_at - 0.05:  # file times come from a coarse clock, a tick behind
        return "the job wrote it"
    import time

    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(modified))
    return f"left by an earlier run (last written {stamp}; remove it before reusing the tree)"


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
    elif name == "trainingjobconfig.json":
        condition = value.get("StoppingCondition")
        runtime = condition.get("MaxRuntimeInSeconds") if isinstance(condition, dict) else None
        if condition is not None and not isinstance(condition, dict):
            wrong("StoppingCondition", condition, "an object")
        elif runtime is not None and sound_runtime(runtime) is None:
            found.append(f"{name}: StoppingCondition.MaxRuntimeInSeconds {runtime_problem(runtime)}")
    return found


ML_FILES = ("resourceconfig.json", "trainingjobconfig.json", "hyperparameters.json",
            "inputdataconfig.json", "checkpointconfig.json")


def config_files(ml_root: str) -> tuple[dict[str, str], list[str], list[str]]:
    """Each config file's state (ok, missing, invalid), the problems (not JSON, not a regular
    file, ...) and the warnings (a wrongly shaped value) found: `--check` lists them, a train-mode
    run logs each as a warning line in the same words."""
    states, problems, warnings = {}, [], []
    for name in ML_FILES:
        collector = Collector()
        value = read_json(config_path(ml_root, name), collector)
        wrong = shape_problems(name, value) if isinstance(value, dict) else []
        if collector.lines or wrong:
            states[name] = "invalid"
        else:
            states[name] = "missing" if value is None else "ok"
        problems += collector.lines
        warnings += [f"{config_path(ml_root, '')}{line}" for line in wrong]
    return states, problems, warnings
