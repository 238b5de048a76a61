"""Shared test machinery: run sminit as PID 1 (fresh PID namespace) or as a subreaper, and
make sure no test leaves a process behind."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from sminit.subreaper import become_subreaper
from sminit.testing import PID_NAMESPACE, SminitProcess, closing_all

PROGRAMS = Path(__file__).parent / "programs"
RECORDER = [sys.executable, str(PROGRAMS / "recorder.py")]
SMINIT = [sys.executable, "-m", "sminit"]
UNSHARE = PID_NAMESPACE  # the kit's: sminit as PID 1 of a fresh PID namespace


def pid_namespaces_available() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    return subprocess.run([*UNSHARE, "true"], capture_output=True, timeout=10).returncode == 0


CAN_UNSHARE = pid_namespaces_available()


def pytest_configure(config: pytest.Config) -> None:
    # Orphans that a test leaks are reparented to pytest, where the leak check finds them.
    become_subreaper()


@pytest.fixture(autouse=True)
def no_leftover_processes():
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    deadline = time.monotonic() + 5
    while True:
        left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
        alive = [p for p in left if _alive(p)]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    for proc in left:
        try:
            proc.kill()
        except psutil.Error:
            pass
        try:
            os.waitpid(proc.pid, 0)
        except ChildProcessError:
            pass
    assert not alive, f"processes left behind: {[(p.pid, _cmdline(p)) for p in alive]}"


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return "?"


@pytest.fixture(params=["pid1", "subreaper"])
def as_pid1(request) -> bool:
    """Run the test twice: sminit as PID 1 of a fresh PID namespace, and as a subreaper."""
    if request.param == "pid1" and not CAN_UNSHARE:
        pytest.skip("needs root and unshare for a PID namespace")
    return request.param == "pid1"


class Sminit(SminitProcess):
    """One sminit process under test (the kit's SminitProcess), its child's stdout read line by line."""

    def __init__(self, args: list[str], pid1: bool = False, env: dict[str, str] | None = None,
                 stdin=subprocess.DEVNULL, cwd: str | None = None, preexec_fn=None,
                 command: list[str] | None = None) -> None:
        super().__init__([*(command or SMINIT), *args], prefix=UNSHARE if pid1 else (), env=env, stdin=stdin,
                         cwd=cwd, preexec_fn=preexec_fn)
        self.buffer = b""
        self.lines: list[str] = []
        self.returncode: int | None = None

    def read_line(self, timeout: float = 10) -> str | None:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    return None
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        text = line.decode(errors="replace")
        self.lines.append(text)
        return text

    def expect(self, fragment: str, timeout: float = 10) -> str:
        """Read lines until one contains fragment; fail the test after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.read_line(max(0.0, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"no line with {fragment!r}; saw {self.lines[-10:]}; "
                                     f"stderr: {self.stderr()}")
            if fragment in line:
                return line

    def expect_all(self, fragments: list[str], timeout: float = 10) -> None:
        """Read lines until each fragment has appeared in some line, in any order."""
        deadline = time.monotonic() + timeout
        while not all(any(f in line for line in self.lines) for f in fragments):
            if self.read_line(max(0.0, deadline - time.monotonic())) is None:
                raise AssertionError(f"not all of {fragments} seen; saw {self.lines[-20:]}")

    def wait(self, timeout: float = 20) -> int:
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"sminit did not exit within {timeout} s; stderr: {self.stderr()}") from None
        while self.read_line(0.5) is not None:
            pass
        return self.returncode

    def close(self) -> None:
        self.kill()
        self.proc.stdout.close()
        self.stderr_file.close()


@pytest.fixture
def start():
    """start(args, pid1=...) -> Sminit; everything started is killed at the end of the test."""
    yield from closing_all(Sminit)


def run_sminit(args: list[str], pid1: bool = False, timeout: float = 20,
               **kwargs) -> subprocess.CompletedProcess:
    """Run sminit to completion and capture everything."""
    prefix = UNSHARE if pid1 else []
    return subprocess.run([*prefix, *SMINIT, *args], capture_output=True, text=True, timeout=timeout,
                          **kwargs)


def wait_until(predicate, timeout: float = 10, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def sigmask_hex(signals) -> str:
    return format(sum(1 << (s - 1) for s in signals), "016x")


SIGNALS_TO_FORWARD = sorted(
    signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}
)


def json_records(stderr: str) -> list[dict]:
    """sminit's records from a --log-format json run's stderr."""
    import json

    return [json.loads(line) for line in stderr.splitlines() if line.startswith('{"ts"')]


def exit_record(stderr: str) -> dict:
    """sminit's exit line from a --log-format json run."""
    return next(r for r in reversed(json_records(stderr)) if r["msg"].startswith("exiting with"))


def deliveries(stderr: str, signo: str | None = None) -> list[dict]:
    """sminit's delivery records (those with a `rule`), of one signal if given."""
    return [r for r in json_records(stderr) if "rule" in r and (signo is None or r["signal"] == signo)]


class CgroupMaker:
    """Real cgroups below this process's own, for one controller (v1 or v2); removed at teardown
    after every process still in them is killed by pid."""

    def __init__(self, controller: str) -> None:
        from sminit.cgroup import find

        self.controller = controller
        self.parent = find(controller)
        self.made: list[str] = []

    def make(self, settings: dict[str, str]) -> str:
        """A fresh cgroup with these files written; pytest.skip when the machine does not allow it."""
        if self.parent is None:
            pytest.skip(f"no {self.controller} cgroup found for this process")
        path = os.path.join(self.parent.path, f"sminit-test-{os.getpid()}-{len(self.made)}")
        try:
            os.mkdir(path)
        except OSError as exc:
            pytest.skip(f"cannot create a {self.controller} cgroup under {self.parent.path}: {exc}")
        self.made.append(path)
        for name, value in settings.items():
            try:
                with open(os.path.join(path, name), "w") as handle:
                    handle.write(value)
            except OSError as exc:
                pytest.skip(f"cannot write {name} in {path}: {exc}")
        return path

    @staticmethod
    def enter(path: str):
        """A preexec_fn that moves the child into the cgroup before it execs."""
        def move() -> None:
            with open(os.path.join(path, "cgroup.procs"), "w") as handle:
                handle.write(str(os.getpid()))
        return move

    def remove(self) -> None:
        for path in reversed(self.made):
            deadline = time.monotonic() + 10
            while os.path.isdir(path):
                try:
                    with open(os.path.join(path, "cgroup.procs")) as handle:
                        for pid in handle.read().split():
                            try:
                                os.kill(int(pid), signal.SIGKILL)
                            except OSError:
                                pass
                    os.rmdir(path)
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)


@pytest.fixture
def memory_cgroup():
    """memory_cgroup(limit_bytes) -> path of a fresh memory cgroup with that limit (swap included)."""
    maker = CgroupMaker("memory")

    def make(limit: int) -> str:
        if maker.parent is not None and maker.parent.version == 2:
            return maker.make({"memory.max": str(limit), "memory.swap.max": "0"})
        path = maker.make({"memory.limit_in_bytes": str(limit)})
        if os.path.exists(os.path.join(path, "memory.memsw.limit_in_bytes")):
            with open(os.path.join(path, "memory.memsw.limit_in_bytes"), "w") as handle:
                handle.write(str(limit))  # no swapping instead of the OOM kill
        return path

    yield make
    maker.remove()


@pytest.fixture
def cpu_cgroup():
    """cpu_cgroup(cpus) -> path of a fresh cpu cgroup whose quota allows that many CPUs."""
    maker = CgroupMaker("cpu")

    def make(cpus: float) -> str:
        if maker.parent is not None and maker.parent.version == 2:
            return maker.make({"cpu.max": f"{int(cpus * 100000)} 100000"})
        return maker.make({"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": str(int(cpus * 100000))})

    yield make
    maker.remove()


def with_tmpfs(mounts: list[tuple[str, str]], command: list[str]) -> list[str]:
    """command run in a private mount namespace where each (size, folder) is a fresh tmpfs; a
    ("bind", "SOURCE:TARGET") entry bind-mounts SOURCE on TARGET first. Everything vanishes with it."""
    steps = []
    for size, folder in mounts:
        if size == "bind":
            source, target = folder.split(":")
            steps.append(f"mkdir -p '{target}' && mount --bind '{source}' '{target}'")
        else:
            steps.append(f"mount -t tmpfs -o size={size} sminit-test '{folder}'")
    script = " && ".join(steps) + ' && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *command]
