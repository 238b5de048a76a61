"""A kit for testing a training job's shutdown: /opt/ml trees, and a runner that stops the job
the way SageMaker does and reports what SageMaker would show. Used by the pytest plugin
(`sminit.pytest_plugin`) and usable alone. Processes are inspected with psutil."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TypeVar

try:
    import psutil
except ModuleNotFoundError as missing:  # installed without the extra: say which one
    raise ModuleNotFoundError("sminit's testing kit needs psutil and pytest: pip install 'sminit[test]'",
                              name=missing.name) from None

from sminit.signals import parse_signal

T = TypeVar("T")
SAGEMAKER_STOP_GRACE = 120.0  # StopTrainingJob: SIGTERM, then SIGKILL 120 s later
FAILURE_REASON_BYTES = 1024  # FailureReason is the failure file's head
# Hyperparameters the training toolkit keeps for itself (its params.SAGEMAKER_HYPERPARAMETERS):
# they, and every other sagemaker_* one, are framework parameters, not the script's.
TOOLKIT_HYPERPARAMETERS = (
    "sagemaker_program", "sagemaker_submit_directory", "sagemaker_enable_cloudwatch_metrics",
    "sagemaker_region", "sagemaker_container_log_level", "sagemaker_job_name", "default_user_module_name",
    "_tuning_objective_metric", "sagemaker_s3_output",
)


def _toolkit_value(value: object) -> str:
    """How the training toolkit writes a value into an SM_* variable: strings as they are, None as
    nothing, anything else as compact, sorted JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _user_args(hyperparameters: Mapping[str, object]) -> list[str]:
    """SM_USER_ARGS: the toolkit's --name value pairs, sorted by name (-n for a one-letter name)."""
    args = []
    for name in sorted(hyperparameters):
        value = hyperparameters[name]
        args.append(f"--{name}" if len(name) > 1 else f"-{name}")
        args.append(",".join(f"{k}={v}" for k, v in sorted(value.items())) if isinstance(value, dict)
                    else "" if value is None else str(value))
    return args


class MlTree:
    """An /opt/ml tree in a folder, written in the shapes SageMaker writes."""

    def __init__(
        self, root: str | os.PathLike, *, instance_type: str = "ml.m5.xlarge", host_count: int = 1,
        hyperparameters: Mapping[str, object] | None = None,
        channels: Mapping[str, Mapping[str, str | bytes]] | None = None, max_runtime: int | None = None,
        checkpoints: bool = True, job_name: str = "sminit-local-job", seen_as: str | None = None,
    ) -> None:
        self.root = Path(root)
        self.seen_as = seen_as  # where the job sees the tree, if not at root: a container's /opt/ml
        self.job_name = job_name
        self.instance_type = instance_type
        self.hosts = [f"algo-{i + 1}" for i in range(host_count)]
        self.hyperparameters = dict(hyperparameters or {})
        self.channels = {name: dict(files) for name, files in (channels or {"train": {}}).items()}
        self.max_runtime = max_runtime
        self.checkpoints_enabled = checkpoints
        self.restarts = 0  # how many managed-spot restarts led to this tree (resume())
        self._first_root = self.root
        self._write()

    config = property(lambda self: self.root / "input" / "config")
    model = property(lambda self: self.root / "model")
    output = property(lambda self: self.root / "output")
    checkpoints = property(lambda self: self.root / "checkpoints")
    failure_path = property(lambda self: self.root / "output" / "failure")

    def channel(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    def _resource_config(self) -> dict[str, object]:
        group = {"instance_group_name": "homogeneousCluster", "instance_type": self.instance_type,
                 "hosts": list(reversed(self.hosts))}  # SageMaker does not sort this list
        return {"current_host": self.hosts[0], "current_instance_type": self.instance_type,
                "current_group_name": "homogeneousCluster", "hosts": self.hosts, "instance_groups": [group],
                "network_interface_name": "eth0"}

    def _input_data_config(self) -> dict[str, object]:
        return {name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                       "RecordWrapperType": "None"} for name in self.channels}

    def _write(self) -> None:
        for folder in (self.config, self.model, self.output / "data", self.checkpoints):
            folder.mkdir(parents=True, exist_ok=True)
        files: dict[str, object] = {
            "resourceconfig.json": self._resource_config(),
            # The Python SDK JSON-encodes every value: "3" arrives as "\"3\"".
            "hyperparameters.json": {key: json.dumps(value) for key, value in self.hyperparameters.items()},
            "inputdataconfig.json": self._input_data_config(),
            "trainingjobconfig.json": {
                "TrainingJobName": self.job_name,
                "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:000000000000:training-job/{self.job_name}",
                "ResourceConfig": {"InstanceType": self.instance_type, "InstanceCount": len(self.hosts),
                                   "VolumeSizeInGB": 30},
                "StoppingCondition": {"MaxRuntimeInSeconds": self.max_runtime or 86400},
            },
        }
        if self.checkpoints_enabled:
            seen = Path(self.seen_as) if self.seen_as else self.root
            files["checkpointconfig.json"] = {"LocalPath": str(seen / "checkpoints")}
        for name, value in files.items():
            (self.config / name).write_text(json.dumps(value))
        for name, channel_files in self.channels.items():
            folder = self.channel(name)
            folder.mkdir(parents=True, exist_ok=True)
            for filename, content in channel_files.items():
                path = folder / filename
                path.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, bytes):
                    path.write_bytes(content)
                else:
                    path.write_text(content)

    def resume(self) -> MlTree:
        """The tree of the same job restarted after a managed-spot interruption: a new folder beside
        this one, the same settings, hyperparameters and channels, checkpoints/ restored from this
        tree (as SageMaker restores them from S3), model/ and output/ empty."""
        first = self._first_root
        restarted = MlTree(
            first.with_name(f"{first.name}-restart-{self.restarts + 1}"), instance_type=self.instance_type,
            host_count=len(self.hosts), hyperparameters=self.hyperparameters, channels=self.channels,
            max_runtime=self.max_runtime, checkpoints=self.checkpoints_enabled, job_name=self.job_name,
            seen_as=self.seen_as,
        )
        restarted.restarts, restarted._first_root = self.restarts + 1, first
        if self.checkpoints.is_dir():
            shutil.copytree(self.checkpoints, restarted.checkpoints, dirs_exist_ok=True)
        return restarted

    def environment(self) -> dict[str, str]:
        """The variables a job sees: SageMaker's at PID 1 (TRAINING_JOB_NAME), sminit's ml-root, and
        every one the training toolkit sets for the script it runs (SM_*, SM_HP_<NAME>, ...).
        SM_NUM_GPUS counts the NVIDIA devices in /dev, SM_NUM_CPUS the CPUs this process may use.
        Paths are where the job sees the tree (`seen_as`, if set)."""
        base = Path(self.seen_as) if self.seen_as else self.root
        hyperparameters = dict(self.hyperparameters)  # the toolkit JSON-decodes what the SDK encoded
        framework = {key: value for key, value in hyperparameters.items()
                     if key in TOOLKIT_HYPERPARAMETERS or key.startswith("sagemaker_")}
        user = {key: value for key, value in hyperparameters.items() if key not in framework}
        program = framework.get("sagemaker_program")
        channels = {name: str(base / "input" / "data" / name) for name in self.channels}
        resource_config = self._resource_config()
        group_hosts = list(reversed(self.hosts))
        groups = {"homogeneousCluster": {"instance_group_name": "homogeneousCluster",
                                         "instance_type": self.instance_type, "hosts": group_hosts}}
        module_name = str(program)[:-3] if str(program).endswith(".py") else str(program)
        # The toolkit's Environment, as SM_TRAINING_ENV holds it (one key per property).
        settings: dict[str, object] = {
            "additional_framework_parameters": framework, "channel_input_dirs": channels,
            "current_host": self.hosts[0], "current_instance_group": "homogeneousCluster",
            "current_instance_group_hosts": group_hosts, "current_instance_type": self.instance_type,
            "distribution_hosts": [], "distribution_instance_groups": [], "framework_module": None,
            "hosts": self.hosts, "hyperparameters": user,
            "input_config_dir": str(base / "input" / "config"),
            "input_data_config": self._input_data_config(), "input_dir": str(base / "input"),
            "instance_groups": list(groups), "instance_groups_dict": groups, "is_hetero": False,
            "is_master": True, "is_modelparallel_enabled": None, "is_smddpmprun_installed": False,
            "is_smddprun_installed": False, "job_name": self.job_name, "log_level": 20,
            "master_hostname": self.hosts[0], "model_dir": str(base / "model"),
            "module_dir": str(framework.get("sagemaker_submit_directory", base / "code")),
            "module_name": module_name, "network_interface_name": "eth0",
            "num_cpus": len(os.sched_getaffinity(0)),
            "num_gpus": sum(1 for dev in os.listdir("/dev") if dev[:6] == "nvidia" and dev[6:].isdigit()),
            "num_neurons": 0, "output_data_dir": str(base / "output" / "data"),
            "output_dir": str(base / "output"),
            "output_intermediate_dir": str(base / "output" / "intermediate"),
            "resource_config": resource_config,
            "topology": [], "user_entry_point": program,
        }
        # What the toolkit's Environment.to_env_vars() turns into SM_<KEY> variables.
        exported = ("hosts", "network_interface_name", "user_entry_point", "resource_config",
                    "input_data_config", "output_data_dir", "current_host", "current_instance_type",
                    "current_instance_group", "current_instance_group_hosts", "instance_groups",
                    "instance_groups_dict", "distribution_instance_groups", "is_hetero", "module_name",
                    "log_level", "framework_module", "input_dir", "input_config_dir", "output_dir",
                    "num_cpus", "num_gpus", "num_neurons", "model_dir", "module_dir",
                    "output_intermediate_dir")
        variables = {key: settings[key] for key in exported}
        variables.update(hps=user, framework_params=framework, channels=sorted(channels),
                         training_env=settings, user_args=_user_args(user))
        variables.update({f"channel_{name}": path for name, path in channels.items()})
        variables.update({f"hp_{name}": value for name, value in user.items()})
        environment = {f"SM_{key.upper()}": _toolkit_value(value) for key, value in variables.items()}
        environment.update({
            "TRAINING_JOB_NAME": self.job_name, "SMINIT_ML_ROOT": str(base),
            "CURRENT_HOST": self.hosts[0],
            "SAGEMAKER_JOB_NAME": _toolkit_value(framework.get("sagemaker_job_name", "")),
            "SAGEMAKER_REGION": _toolkit_value(framework.get("sagemaker_region", "us-east-1")),
        })
        return environment

    def files(self) -> dict[str, list[str]]:
        """Files under model/, checkpoints/ and output/, relative to each."""
        folders = {"model": self.model, "checkpoints": self.checkpoints, "output": self.output}
        return {name: sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
                for name, folder in folders.items()}

    def failure(self) -> str | None:
        """output/failure as text, or None if there is none."""
        try:
            return self.failure_path.read_text(errors="replace")
        except OSError:
            return None


@dataclass
class Delivery:
    """One signal sminit delivered (or held, or did not send), from its JSON log fields."""

    time: float  # seconds since the job's start
    signal: str | None  # what was sent (after --rewrite); None when it was dropped
    received: str | None  # what sminit received, or the warn signal it sent itself
    rule: str  # handlers, group, child, no_handler, held (waiting for a handler), dropped
    targets: list[tuple[int, str]]  # (pid, command line) of each process that got it
    left: int  # how many other processes of the job were left running
    left_running: list[str]  # the first few of them, "PID (command line)"


@dataclass
class JobResult:
    """How a job ended, as SageMaker would show it, and what it left."""

    sagemaker_status: str  # TrainingJobStatus: Completed, Failed or Stopped
    secondary_status: str  # SecondaryStatus: Completed, Failed, Stopped or MaxRuntimeExceeded
    exit_status: int  # sminit's: what SageMaker sees (0 Completed, anything else Failed, unless stopped)
    failure_reason: str | None  # FailureReason: the failure file's first 1024 bytes, for a Failed job
    failure: str | None  # output/failure as written
    files: dict[str, list[str]]  # files under model/, checkpoints/, output/
    duration: float  # seconds from start to exit
    signals: list[tuple[float, str]]  # (seconds since start, signal) of each signal sminit sent the job
    deliveries: list[Delivery]  # each delivery in full: rule, targets, what was left running
    leftovers: list[str]  # sminit's lines about processes the job left when its main process exited
    still_running: list[str]  # processes of the job alive after sminit exited (killed now): must be none
    killed_by_platform: bool  # stop() had to send SIGKILL after the platform's grace
    exit_line: str  # sminit's last line: how the job ended, in words (OOM kill, crash, ...)
    output: str  # the job's stdout
    log: list[dict] = field(repr=False)  # sminit's JSON log records
    stderr: str = field(repr=False)  # the job's stderr


def status_as_sagemaker_shows(exit_status: int, stopped: bool, stopped_by: str | None) -> tuple[str, str]:
    """(TrainingJobStatus, SecondaryStatus): a stopped job is Stopped whatever its exit status;
    stopped by the max runtime, its secondary status is MaxRuntimeExceeded."""
    if stopped_by == "max_runtime":
        return "Stopped", "MaxRuntimeExceeded"
    if stopped:
        return "Stopped", "Stopped"
    return ("Completed", "Completed") if exit_status == 0 else ("Failed", "Failed")


_NAMESPACE_PREFIX: list[str] | None = None


# sminit as PID 1 of a fresh PID namespace, its own /proc mounted (root; see pid_namespace_prefix).
PID_NAMESPACE = ["unshare", "--pid", "--fork", "--mount-proc"]


def pid_namespace_prefix() -> list[str] | None:
    """How to start sminit as PID 1 of a fresh PID namespace here, or None if this machine can't."""
    global _NAMESPACE_PREFIX
    if _NAMESPACE_PREFIX is None:
        _NAMESPACE_PREFIX = []
        if shutil.which("unshare"):
            rootless = ["unshare", "--user", "--map-root-user", *PID_NAMESPACE[1:]]
            for prefix in ([PID_NAMESPACE] if os.geteuid() == 0 else []) + [rootless]:
                try:
                    if subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0:
                        _NAMESPACE_PREFIX = prefix
                        break
                except (OSError, subprocess.TimeoutExpired):
                    pass
    return _NAMESPACE_PREFIX or None


def closing_all(factory: Callable[..., T]) -> Iterator[Callable[..., T]]:
    """A fixture's body: yields a function that makes things with factory, and closes each of them
    when the fixture is torn down (`yield from closing_all(Job)`)."""
    made: list = []

    def make(*args: object, **options: object) -> T:
        thing = factory(*args, **options)
        made.append(thing)
        return thing

    yield make
    for thing in made:
        thing.close()


class SminitProcess:
    """sminit started with argv (the interpreter, `-m sminit`, its options and the command) behind
    prefix (PID_NAMESPACE or pid_namespace_prefix(): PID 1 of a fresh namespace; none: a child
    subreaper), in a session of its own, stdout a pipe, stderr a file. Job runs on it, and so do
    this repository's own tests."""

    def __init__(self, argv: Sequence[str], *, prefix: Sequence[str] = (),
                 env: Mapping[str, str] | None = None, stdin: int | None = subprocess.DEVNULL,
                 cwd: str | os.PathLike | None = None, preexec_fn=None) -> None:
        self.pid1 = bool(prefix)
        self.stderr_file = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [*prefix, *argv], stdin=stdin, stdout=subprocess.PIPE, stderr=self.stderr_file,
            env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True, preexec_fn=preexec_fn,
        )
        self._pid: int | None = None

    @property
    def pid(self) -> int:
        """sminit's pid as this process sees it (under unshare: the process unshare started)."""
        if self._pid is None:
            self._pid = first_child(self.proc) if self.pid1 else self.proc.pid
        return self._pid

    def signal(self, signo: int) -> None:
        os.kill(self.pid, signo)

    def running(self) -> bool:
        return self.proc.poll() is None

    def stderr(self) -> str:
        """What sminit wrote to stderr so far. pread, never seek: sminit writes through the same
        open file (the same offset), and a seek while it writes would put its next line over the
        start of the file."""
        fd = self.stderr_file.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL to sminit's whole tree, by pid, and wait for it."""
        if self.running():
            kill_tree(self.proc.pid)
        self.proc.wait(10)


class Job:
    """A command run under sminit against an MlTree, as PID 1 of a fresh PID namespace when the
    machine allows (`mode` == "pid1"), otherwise with sminit as a child subreaper ("subreaper")."""

    def __init__(
        self, command: Sequence[str], tree: MlTree, *, sminit_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None, grace: float | None = None, require_gpus: str = "none",
        pid_namespace: bool | None = None, cwd: str | os.PathLike | None = None,
    ) -> None:
        self.tree = tree
        self.marker = f"sminit-testing-{uuid.uuid4().hex}"
        prefix = pid_namespace_prefix() if pid_namespace in (None, True) else None
        if pid_namespace and prefix is None:
            raise RuntimeError("no PID namespace on this machine (needs root or user namespaces)")
        self.mode = "pid1" if prefix else "subreaper"
        options = ["--log-format", "json", "-v", "--require-gpus", require_gpus, *sminit_args]
        if grace is not None:
            options += ["--grace", str(grace)]
        variables = {**tree.environment(), **(env or {}), "SMINIT_TESTING_RUN": self.marker}
        self._started_wall = time.time()
        self._started = time.monotonic()
        self._process = SminitProcess([sys.executable, "-m", "sminit", *options, "--", *command],
                                      prefix=prefix or (), env=variables, cwd=cwd)
        assert self._process.proc.stdout is not None
        self._stdout = self._process.proc.stdout
        self._output = b""
        self._killed_by_platform = False
        self._stopped = False
        self.result: JobResult | None = None

    @property
    def pid(self) -> int:
        """sminit's pid as this process sees it."""
        return self._process.pid

    def signal(self, signo: int | str) -> None:
        """Send a signal to sminit, as the platform would (it forwards it to the job)."""
        self._process.signal(parse_signal(signo) if isinstance(signo, str) else signo)

    def running(self) -> bool:
        """Whether sminit (and so the job) is still running."""
        return self._process.running()

    def _read_output(self, timeout: float) -> bool:
        ready, _, _ = select.select([self._stdout], [], [], max(0.0, timeout))
        if not ready:
            return False
        chunk = os.read(self._stdout.fileno(), 65536)
        self._output += chunk
        return bool(chunk)

    def wait_for_output(self, text: str, timeout: float = 60) -> None:
        """Wait until the job's stdout contains text; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self._output:
            if not self._read_output(deadline - time.monotonic()) and (
                    time.monotonic() >= deadline or not self.running()):
                raise TimeoutError(f"{text!r} not in the job's output within {timeout} s: "
                                   f"{self._output[-2000:]!r}")

    def wait_for_file(self, path: str | os.PathLike, timeout: float = 60) -> Path:
        """Wait until path exists (a checkpoint, say); TimeoutError otherwise."""
        target = Path(path)
        deadline = time.monotonic() + timeout
        while not target.exists():
            if time.monotonic() >= deadline or not self.running():
                raise TimeoutError(f"{target} did not appear within {timeout} s")
            self._read_output(0.02)  # keep the pipe drained while waiting
        return target

    def stop(self, platform_grace: float = SAGEMAKER_STOP_GRACE) -> JobResult:
        """Do what StopTrainingJob (or a spot interruption) does: SIGTERM, then SIGKILL if the job is
        still there after platform_grace seconds (120 for training). sminit's own, shorter grace
        acts first. The job then shows as Stopped, whatever its exit status."""
        if self.running():
            self.signal(signal.SIGTERM)
            self._stopped = True
        return self.wait(platform_grace, kill_after=True)

    def wait(self, timeout: float = 600, kill_after: bool = False) -> JobResult:
        """Wait for the job to end; after timeout, SIGKILL it if kill_after, else TimeoutError."""
        deadline = time.monotonic() + timeout
        while self.running():
            self._read_output(min(0.05, max(0.0, deadline - time.monotonic())))
            if time.monotonic() >= deadline and self.running():
                if not kill_after:
                    raise TimeoutError(f"the job did not end within {timeout} s")
                self._killed_by_platform = True
                self._kill_everything()
        while self._read_output(0):
            pass
        return self._finish()

    def __enter__(self) -> Job:
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill whatever is left (for fixtures' teardown, and the end of a `with` block)."""
        if self.running():
            self._kill_everything()
        if self.result is None:
            self._finish()

    def _kill_everything(self) -> None:
        self._process.kill()

    def _finish(self) -> JobResult:
        if self.result is not None:
            return self.result
        code = self._process.proc.wait()
        duration = time.monotonic() - self._started
        still_running = _processes_with(self.marker)
        for proc in still_running:
            try:
                proc.kill()
            except psutil.Error:
                pass
        stderr = self._process.stderr()
        self._process.stderr_file.close()
        self._stdout.close()
        log: list[dict] = []
        other: list[str] = []
        for line in stderr.splitlines():
            record = _record(line)
            if record is None:
                other.append(line)
            else:
                log.append(record)
        deliveries, leftovers = [], []
        for record in log:
            if "rule" in record:
                deliveries.append(Delivery(
                    time=round(_seconds(record["ts"]) - self._started_wall, 3), signal=record.get("signal"),
                    received=record.get("received", record.get("signal")), rule=record["rule"],
                    targets=list(zip(record.get("targets", []), record.get("commands", []))),
                    left=record.get("left", 0), left_running=record.get("left_running", []),
                ))
            if record["msg"].startswith("main child exited") and record.get("left", 1):
                leftovers.append(record["msg"])
        signals = [(d.time, d.signal) for d in deliveries if d.targets and d.signal]
        exit_record: dict = next((r for r in reversed(log) if r["msg"].startswith("exiting with")), {})
        exit_status = code if code >= 0 else 128 - code
        stopped_by = exit_record.get("stopped_by")
        status, secondary = status_as_sagemaker_shows(exit_status, self._stopped, stopped_by)
        failure = self.tree.failure()
        reason = None
        if status == "Failed" and failure is not None:
            reason = failure.encode()[:FAILURE_REASON_BYTES].decode(errors="ignore")
        self.result = JobResult(
            sagemaker_status=status, secondary_status=secondary, exit_status=exit_status,
            failure_reason=reason, failure=failure, files=self.tree.files(), duration=duration,
            signals=signals, deliveries=deliveries, leftovers=leftovers,
            still_running=[_describe(p) for p in still_running], killed_by_platform=self._killed_by_platform,
            exit_line=exit_record.get("msg", ""), output=self._output.decode(errors="replace"), log=log,
            stderr="\n".join(other),
        )
        return self.result


def _record(line: str) -> dict | None:
    if not line.startswith('{"ts"'):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "msg" in record else None


def _seconds(stamp: str) -> float:
    import calendar

    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float(f"0.{fraction or 0}")


def children(pid: int) -> list[int]:
    """pid's children (empty if it is gone)."""
    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except psutil.Error:
        return []


def descendant_pids(pid: int) -> list[int]:
    """Every process below pid, orphans reparented to it included."""
    try:
        return [proc.pid for proc in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def zombie_children(pid: int) -> int:
    """How many of pid's children are zombies (exited, not yet reaped). Read straight from /proc,
    not through psutil: storms and the benchmark sample it in a loop, and a dear sampler would take
    the CPU it measures."""
    count = 0
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            kids = handle.read().split()
    except OSError:
        return 0
    for child in kids:
        try:
            with open(f"/proc/{child}/stat", "rb") as handle:
                count += handle.read().rsplit(b")", 1)[1].split()[0] == b"Z"
        except (OSError, IndexError):
            pass
    return count


def first_child(parent: subprocess.Popen | int, timeout: float = 10) -> int:
    """The first child of parent, waited for: what `unshare --fork` started (sminit as PID 1
    inside, as this namespace sees it), or what an init started. RuntimeError if none comes."""
    pid = parent if isinstance(parent, int) else parent.pid
    deadline = time.monotonic() + timeout
    while True:
        found = children(pid)
        if found:
            return found[0]
        ended = not isinstance(parent, int) and parent.poll() is not None
        if ended or time.monotonic() > deadline:
            raise RuntimeError(f"process {pid} started no child")
        time.sleep(0.002)


def kill_tree(pid: int) -> None:
    """SIGKILL to every process below pid, then to pid: by pid, never by name; a process that is
    already gone is passed over."""
    for target in [*descendant_pids(pid), pid]:
        try:
            os.kill(target, signal.SIGKILL)
        except OSError:
            pass


def _processes_with(marker: str) -> list[psutil.Process]:
    """Live processes whose environment carries this run's marker: anything the job left running."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("SMINIT_TESTING_RUN") == marker and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _describe(proc: psutil.Process) -> str:
    try:
        return f"{proc.pid} {' '.join(proc.cmdline())}"
    except psutil.Error:
        return str(proc.pid)
