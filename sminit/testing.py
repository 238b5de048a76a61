"""A kit for testing a training job's shutdown: /opt/ml trees and a runner that stops the job
the way SageMaker does. Used by the pytest plugin (`sminit.pytest_plugin`) and usable alone."""

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
from typing import Mapping, Sequence

from sminit.proctree import descendants
from sminit.signals import parse_signal

SAGEMAKER_STOP_GRACE = 120.0  # StopTrainingJob: SIGTERM, then SIGKILL 120 s later


class MlTree:
    """An /opt/ml tree in a folder, written in the shapes SageMaker writes."""

    def __init__(
        self, root: str | os.PathLike, *, instance_type: str = "ml.m5.xlarge", host_count: int = 1,
        hyperparameters: Mapping[str, object] | None = None,
        channels: Mapping[str, Mapping[str, str | bytes]] | None = None, max_runtime: int | None = None,
        checkpoints: bool = True, job_name: str = "sminit-local-job",
    ) -> None:
        self.root = Path(root)
        self.job_name = job_name
        self.instance_type = instance_type
        self.hosts = [f"algo-{i + 1}" for i in range(host_count)]
        self.hyperparameters = dict(hyperparameters or {})
        self.channels = {name: dict(files) for name, files in (channels or {"train": {}}).items()}
        self.max_runtime = max_runtime
        self.checkpoints_enabled = checkpoints
        self._write()

    config = property(lambda self: self.root / "input" / "config")
    model = property(lambda self: self.root / "model")
    output = property(lambda self: self.root / "output")
    checkpoints = property(lambda self: self.root / "checkpoints")
    failure_path = property(lambda self: self.root / "output" / "failure")

    def channel(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    def _write(self) -> None:
        for folder in (self.config, self.model, self.output / "data", self.checkpoints):
            folder.mkdir(parents=True, exist_ok=True)
        group = {"instance_group_name": "homogeneousCluster", "instance_type": self.instance_type,
                 "hosts": list(reversed(self.hosts))}  # SageMaker does not sort this list
        files: dict[str, object] = {
            "resourceconfig.json": {
                "current_host": self.hosts[0], "current_instance_type": self.instance_type,
                "current_group_name": "homogeneousCluster", "hosts": self.hosts, "instance_groups": [group],
                "network_interface_name": "eth0",
            },
            # The Python SDK JSON-encodes every value: "3" arrives as "\"3\"".
            "hyperparameters.json": {key: json.dumps(value) for key, value in self.hyperparameters.items()},
            "inputdataconfig.json": {name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                                            "RecordWrapperType": "None"} for name in self.channels},
            "trainingjobconfig.json": {
                "TrainingJobName": self.job_name,
                "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:000000000000:training-job/{self.job_name}",
                "ResourceConfig": {"InstanceType": self.instance_type, "InstanceCount": len(self.hosts),
                                   "VolumeSizeInGB": 30},
                "StoppingCondition": {"MaxRuntimeInSeconds": self.max_runtime or 86400},
            },
        }
        if self.checkpoints_enabled:
            files["checkpointconfig.json"] = {"LocalPath": str(self.checkpoints)}
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

    def environment(self) -> dict[str, str]:
        """The variables a job sees: SageMaker's at PID 1, and the training toolkit's SM_* ones."""
        variables = {
            "TRAINING_JOB_NAME": self.job_name, "SMINIT_ML_ROOT": str(self.root),
            "SM_MODEL_DIR": str(self.model), "SM_OUTPUT_DIR": str(self.output),
            "SM_OUTPUT_DATA_DIR": str(self.output / "data"), "SM_INPUT_DIR": str(self.root / "input"),
            "SM_INPUT_CONFIG_DIR": str(self.config), "SM_HPS": json.dumps(self.hyperparameters),
            "SM_CURRENT_HOST": self.hosts[0], "SM_HOSTS": json.dumps(self.hosts),
            "SM_CHANNELS": json.dumps(sorted(self.channels)),
        }
        variables.update({f"SM_CHANNEL_{name.upper()}": str(self.channel(name)) for name in self.channels})
        return variables

    def files(self) -> dict[str, list[str]]:
        """Files under model/, checkpoints/ and output/, relative to each."""
        return {name: sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
                for name, folder in (("model", self.model), ("checkpoints", self.checkpoints), ("output", self.output))}

    def failure(self) -> str | None:
        try:
            return self.failure_path.read_text(errors="replace")
        except OSError:
            return None


@dataclass
class JobResult:
    """How a job ended, as SageMaker would see it, and what it left."""

    exit_status: int  # sminit's: what SageMaker sees (0 Completed, anything else Failed)
    failure: str | None  # output/failure, whose first 1024 bytes become FailureReason
    files: dict[str, list[str]]  # files under model/, checkpoints/, output/
    duration: float  # seconds from start to exit
    signals: list[tuple[float, str]]  # (seconds since start, signal) as sminit forwarded them to the job
    leftovers: list[str]  # sminit's lines about processes the job left when its main process exited
    still_running: list[str]  # processes of the job alive after sminit exited (killed now): must be none
    killed_by_platform: bool  # stop() had to send SIGKILL after the platform's grace
    output: str  # the job's stdout
    log: list[dict] = field(repr=False)  # sminit's JSON log records
    stderr: str = field(repr=False)  # the job's stderr

    @property
    def sagemaker_status(self) -> str:
        return "Completed" if self.exit_status == 0 else "Failed"


_NAMESPACE_PREFIX: list[str] | None = None


def pid_namespace_prefix() -> list[str] | None:
    """How to start sminit as PID 1 of a fresh PID namespace here, or None if this machine can't."""
    global _NAMESPACE_PREFIX
    if _NAMESPACE_PREFIX is None:
        _NAMESPACE_PREFIX = []
        if shutil.which("unshare"):
            plain = ["unshare", "--pid", "--fork", "--mount-proc"]
            for prefix in ([plain] if os.geteuid() == 0 else []) + [["unshare", "--user", "--map-root-user", *plain[1:]]]:
                try:
                    if subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0:
                        _NAMESPACE_PREFIX = prefix
                        break
                except (OSError, subprocess.TimeoutExpired):
                    pass
    return _NAMESPACE_PREFIX or None


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
            raise RuntimeError("no PID namespace on this machine (needs root or unprivileged user namespaces)")
        self.mode = "pid1" if prefix else "subreaper"
        options = ["--log-format", "json", "-v", "--require-gpus", require_gpus, *sminit_args]
        if grace is not None:
            options += ["--grace", str(grace)]
        variables = {**os.environ, **tree.environment(), **(env or {}), "SMINIT_TESTING_RUN": self.marker}
        self._stderr = tempfile.TemporaryFile()
        self._started_wall = time.time()
        self._started = time.monotonic()
        self._proc = subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", "sminit", *options, "--", *command], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=self._stderr, env=variables, cwd=cwd, start_new_session=True,
        )
        assert self._proc.stdout is not None
        self._stdout = self._proc.stdout
        self._output = b""
        self._sminit_pid: int | None = None
        self._killed_by_platform = False
        self.result: JobResult | None = None

    @property
    def pid(self) -> int:
        """sminit's pid as this process sees it."""
        if self._sminit_pid is None:
            self._sminit_pid = self._proc.pid
            if self.mode == "pid1":
                deadline = time.monotonic() + 10
                while True:
                    below = children(self._proc.pid)
                    if below:
                        self._sminit_pid = below[0]
                        break
                    if time.monotonic() > deadline or self._proc.poll() is not None:
                        raise RuntimeError("sminit did not start under unshare")
                    time.sleep(0.005)
        return self._sminit_pid

    def signal(self, signo: int | str) -> None:
        """Send a signal to sminit, as the platform would (it forwards it to the job)."""
        os.kill(self.pid, parse_signal(signo) if isinstance(signo, str) else signo)

    def running(self) -> bool:
        return self._proc.poll() is None

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
                raise TimeoutError(f"{text!r} not in the job's output within {timeout} s: {self._output[-2000:]!r}")

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
        """Do what StopTrainingJob does: SIGTERM, then SIGKILL if the job is still there after
        platform_grace seconds (120 for training). sminit's own, shorter grace acts first."""
        if self.running():
            self.signal(signal.SIGTERM)
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

    def close(self) -> None:
        """Kill whatever is left (for fixtures' teardown)."""
        if self.running():
            self._kill_everything()
        if self.result is None:
            self._finish()

    def _kill_everything(self) -> None:
        for pid in [*descendant_pids(self._proc.pid), self._proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self._proc.wait()

    def _finish(self) -> JobResult:
        if self.result is not None:
            return self.result
        code = self._proc.wait()
        duration = time.monotonic() - self._started
        still_running = _processes_with(self.marker)
        for pid, _ in still_running:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self._stderr.seek(0)
        stderr = self._stderr.read().decode(errors="replace")
        self._stderr.close()
        self._stdout.close()
        log: list[dict] = []
        other: list[str] = []
        for line in stderr.splitlines():
            record = _record(line)
            if record is None:
                other.append(line)
            else:
                log.append(record)
        signals, leftovers = [], []
        for record in log:
            msg = record["msg"]
            if msg.startswith("forwarded "):
                signals.append((round(_seconds(record["ts"]) - self._started_wall, 3), msg.split()[1]))
            if msg.startswith("main child exited") and record.get("left", 1):
                leftovers.append(msg)
        self.result = JobResult(
            exit_status=code if code >= 0 else 128 - code, failure=self.tree.failure(), files=self.tree.files(),
            duration=duration, signals=signals, leftovers=leftovers,
            still_running=[f"{pid} {cmd}" for pid, cmd in still_running], killed_by_platform=self._killed_by_platform,
            output=self._output.decode(errors="replace"), log=log, stderr="\n".join(other),
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
    """pid's children, from /proc (empty if it is gone)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(child) for child in handle.read().split()]
    except OSError:
        return []


def descendant_pids(pid: int) -> list[int]:
    return [proc.pid for proc in descendants(pid)]


def zombie_children(pid: int) -> int:
    """How many of pid's children are zombies (exited, not yet reaped)."""
    count = 0
    for child in children(pid):
        try:
            with open(f"/proc/{child}/stat", "rb") as handle:
                count += handle.read().rsplit(b")", 1)[1].split()[0] == b"Z"
        except OSError:
            pass
    return count


def _processes_with(marker: str) -> list[tuple[int, str]]:
    """Live processes whose environment carries this run's marker: anything the job left running."""
    needle = f"SMINIT_TESTING_RUN={marker}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                if needle not in handle.read().split(b"\0"):
                    continue
            with open(f"/proc/{name}/stat", "rb") as handle:
                if handle.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                found.append((int(name), handle.read().replace(b"\0", b" ").decode(errors="replace").strip()))
        except OSError:
            continue
    return found
