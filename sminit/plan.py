"""Every setting sminit runs with, resolved once before anything runs: the Config, the mode and what
it implies (command, grace, max runtime and its warning, from /opt/ml), and the environment's paths."""

from __future__ import annotations

import os

from sminit.config import Config, UsageError
from sminit.log import Collector

# SageMaker sends SIGKILL 120 s after a training or processing job's SIGTERM, 30 s after an
# endpoint's. `docker stop`, `podman stop` and Docker Compose (SageMaker local mode) send it 10 s
# after: sminit's own SIGKILL at 8 s leaves 2 s for the kill, the reaping and the exit line (4 ms
# for a 10 MiB job here, 0.8 s for 8 GiB: the kernel frees the memory first, 0.1 s a GiB).
GRACE_DEFAULTS = {"train": 110.0, "serve": 25.0, "processing": 110.0, "none": 8.0}
LOCAL_GRACE = 8.0
# current_instance_type in SageMaker local mode (the Python SDK's instance_type).
LOCAL_INSTANCE_TYPES = ("local", "local_gpu")
ROLES = ("train", "serve")
# The modes of a SageMaker job with a configuration: max runtime, GPU check, config files checked.
JOB_MODES = ("train", "processing")
TERMINATION_LOG = "/dev/termination-log"  # Kubernetes' default terminationMessagePath


class Plan:
    """The one settings object everything after `resolve` reads (as tini settles every setting in
    parse_args and parse_env before anything runs): each setting once, final; nothing after it
    reads the environment. `problem` (exit code, message) is set when the command cannot run."""

    mode: str  # "train", "serve", "processing" or "none": never "auto"
    local: bool  # SageMaker local mode: Docker Compose, SIGKILL 10 s after SIGTERM
    command: list[str]
    grace: float
    max_runtime: float | None  # None: no limit
    max_runtime_source: str | None  # "option", or the file it came from
    warn_before: float | None  # None: no warning will be sent
    instance_type: str | None  # the job's: resourceconfig.json's, or processingjobconfig.json's
    problem: tuple[int, str] | None
    warnings: list[str]  # runs, but probably not what the user meant (--check lists them)

    def __init__(self, config: Config, environ: dict[str, str]) -> None:
        # As the command line and the SMINIT_* variables gave them (config.py).
        self.ml_root = config.ml_root
        self.cleanup_grace = config.cleanup_grace
        self.warn_signal = config.warn_signal
        self.forward = config.forward
        self.rewrite = config.rewrite
        self.success_exit = config.success_exit
        self.parent_death_signal = config.parent_death_signal
        self.require_gpus = config.require_gpus
        self.check_json = config.json
        # What the environment says about the machine (tests point them at their own folders).
        self.path = environ.get("PATH")  # the job's PATH, for finding its command
        self.shm_dir = environ.get("SMINIT_SHM_DIR") or "/dev/shm"
        self.dev_dir = environ.get("SMINIT_DEV_DIR") or "/dev"
        self.driver_version_file = environ.get("SMINIT_DRIVER_VERSION_FILE") or "/proc/driver/nvidia/version"
        lib_dirs = environ.get("SMINIT_LIB_DIRS")
        self.lib_dirs = lib_dirs.split(":") if lib_dirs else None  # None: the usual folders
        self.ld_library_path = environ.get("LD_LIBRARY_PATH", "")
        # NVIDIA's container runtime hides every GPU for these values.
        visible = environ.get("NVIDIA_VISIBLE_DEVICES", "unset").strip().lower()
        self.gpus_hidden = visible in ("void", "none", "")
        self.cgroup_dir = environ.get("SMINIT_CGROUP_DIR") or None  # the memory cgroup folder to read
        self.termination_log = environ.get("SMINIT_TERMINATION_LOG", TERMINATION_LOG) or None


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
    from sminit.executable import locate

    if locate(role, environ.get("PATH")):
        return [role], None  # exec will say what is wrong with it, if anything
    return [role], (127, f"command not found: {variable} is not set and there is no executable "
                         f"'{role}' on PATH")


def _warning_time(warn_before: float | None, max_runtime: float | None, source: str | None,
                  warnings: list[str]) -> float | None:
    """The warn-before that will be used: none at all when the warning would fall at or before the
    start, where it would reach the job before its handler exists (README: Command line)."""
    if not warn_before or not max_runtime:
        return None
    if warn_before >= max_runtime:
        where = "" if source == "option" else f" (from {source})"
        warnings.append(f"warn-before of {warn_before:g} s is not shorter than the max runtime of "
                        f"{max_runtime:g} s{where}: no warning will be sent, as it would signal the job "
                        "at its start")
        return None
    return warn_before


def resolve(config: Config, environ: dict[str, str]) -> Plan:
    """Decide mode, command, grace and max runtime (README: Modes, Command line)."""
    plan = Plan(config, environ)
    operands = config.command
    problem = None
    role = operands[-1] if operands and operands[-1] in ROLES else None
    if role and len(operands) == 1:
        command, problem = _role_command(role, environ)
    else:
        command = list(operands)
    mode = config.mode
    resources = os.path.join(config.ml_root, "input", "config", "resourceconfig.json")
    if mode == "auto":
        if role:
            mode = role
        elif os.path.exists(os.path.join(config.ml_root, "config", "processingjobconfig.json")):
            mode = "processing"
        elif "TRAINING_JOB_NAME" in environ or os.path.exists(resources):
            mode = "train"
        else:
            mode = "none"
    # Each file is read once, here, and only where the mode needs it. What is wrong with one is
    # told once the job runs, with the other config files (sagemaker.config_files).
    quiet = Collector()
    job_path = job_config = None
    if mode in JOB_MODES and (config.max_runtime is None or mode == "processing"):
        from sminit.sagemaker import job_config_path, read_json

        job_path = job_config_path(config.ml_root, mode)
        job_config = read_json(job_path, quiet)
    instance_type = None
    if mode == "processing":
        from sminit.sagemaker import processing_instance_type

        instance_type = processing_instance_type(job_config)
    elif mode in ROLES and os.path.exists(resources):
        from sminit.sagemaker import read_json

        resource = read_json(resources, quiet)
        instance_type = resource.get("current_instance_type") if isinstance(resource, dict) else None
    plan.instance_type = instance_type if isinstance(instance_type, str) else None
    local = mode in ROLES and plan.instance_type in LOCAL_INSTANCE_TYPES
    if config.grace is not None:
        grace = config.grace
    else:
        grace = LOCAL_GRACE if local else GRACE_DEFAULTS[mode]
    max_runtime = config.max_runtime
    source: str | None = "option"
    if max_runtime is None and job_path is not None:
        from sminit.sagemaker import max_runtime_seconds

        max_runtime = max_runtime_seconds(job_config, job_path, quiet)
        source = job_path
    if not max_runtime:
        max_runtime, source = None, None
    warnings: list[str] = []
    plan.warn_before = _warning_time(config.warn_before, max_runtime, source, warnings)
    plan.mode, plan.local, plan.command, plan.grace, plan.problem = mode, local, command, grace, problem
    plan.max_runtime, plan.max_runtime_source, plan.warnings = max_runtime, source, warnings
    return plan

