"""What to run and how: mode, command, grace and max runtime, from the Config and /opt/ml."""

from __future__ import annotations

import os

from sminit.config import Config, UsageError
from sminit.log import Log
from sminit.sagemaker import config_path, max_runtime_seconds, read_json

GRACE_DEFAULTS = {"train": 110.0, "serve": 25.0, "none": 10.0}
ROLES = ("train", "serve")


class Plan:
    """The resolved plan; `problem` (exit code, message) is set when the command cannot run."""

    def __init__(self, mode: str, command: list[str], grace: float, max_runtime: float | None,
                 max_runtime_source: str | None, problem: tuple[int, str] | None) -> None:
        self.mode = mode
        self.command = command
        self.grace = grace
        self.max_runtime = max_runtime  # None: no limit
        self.max_runtime_source = max_runtime_source
        self.problem = problem


def find_executable(name: str, environ: dict[str, str]) -> str | None:
    """Where execvp would find name: the path itself if it has a slash, else a PATH entry."""
    if "/" in name:
        return name if os.path.exists(name) else None
    for folder in environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(folder or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _role_command(role: str, environ: dict[str, str]) -> tuple[list[str], tuple[int, str] | None]:
    """`sminit -- train`: SMINIT_TRAIN_CMD split by shlex, else `train` on PATH."""
    variable = f"SMINIT_{role.upper()}_CMD"
    value = environ.get(variable)
    if value is not None and value.strip():
        import shlex

        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise UsageError(f"invalid value for {variable}: {value[:80]!r} ({exc})") from None
        return words, None
    if find_executable(role, environ):
        return [role], None
    return [role], (127, f"command not found: {variable} is not set and there is no executable "
                         f"'{role}' on PATH")


def resolve(config: Config, environ: dict[str, str], log: Log) -> Plan:
    """Decide mode, command, grace and max runtime per SPEC sections 1 and 3."""
    operands = config.command
    problem = None
    role = operands[-1] if operands and operands[-1] in ROLES else None
    if role and len(operands) == 1:
        command, problem = _role_command(role, environ)
    else:
        command = list(operands)
    mode = config.mode
    if mode == "auto":
        if role:
            mode = role
        elif "TRAINING_JOB_NAME" in environ or os.path.exists(config_path(config.ml_root, "resourceconfig.json")):
            mode = "train"
        else:
            mode = "none"
    grace = config.grace if config.grace is not None else GRACE_DEFAULTS[mode]
    max_runtime = config.max_runtime
    source: str | None = "option"
    if max_runtime is None and mode == "train":
        path = config_path(config.ml_root, "trainingjobconfig.json")
        max_runtime = max_runtime_seconds(read_json(path, log), path, log)
        source = path
    if not max_runtime:
        max_runtime, source = None, None
    return Plan(mode, command, grace, max_runtime, source, problem)
