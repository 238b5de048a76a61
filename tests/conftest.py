"""Shared test machinery: run sminit as PID 1 (fresh PID namespace) or as a subreaper, and
make sure no test leaves a process behind."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from sminit.subreaper import become_subreaper
from sminit.testing import zombie_children

PROGRAMS = Path(__file__).parent / "programs"
RECORDER = [sys.executable, str(PROGRAMS / "recorder.py")]
SMINIT = [sys.executable, "-m", "sminit"]
UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"]


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


class Sminit:
    """One sminit process under test, with its child's stdout read line by line."""

    def __init__(self, args: list[str], pid1: bool = False, env: dict[str, str] | None = None,
                 stdin=subprocess.DEVNULL, cwd: str | None = None, preexec_fn=None,
                 command: list[str] | None = None) -> None:
        self.pid1 = pid1
        self.stderr_file = tempfile.TemporaryFile()
        full_env = {**os.environ, **(env or {})}
        prefix = UNSHARE if pid1 else []
        self.proc = subprocess.Popen(
            [*prefix, *(command or SMINIT), *args], stdin=stdin, stdout=subprocess.PIPE,
            stderr=self.stderr_file, env=full_env, cwd=cwd, start_new_session=True,
            preexec_fn=preexec_fn,
        )
        self.buffer = b""
        self.lines: list[str] = []
        self._pid: int | None = None
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        """sminit's pid as this (the host) namespace sees it."""
        if not self.pid1:
            return self.proc.pid
        if self._pid is None:
            deadline = time.monotonic() + 10
            while self._pid is None:
                children = psutil.Process(self.proc.pid).children()
                if children:
                    self._pid = children[0].pid
                elif time.monotonic() > deadline:
                    raise TimeoutError("unshare did not start sminit")
                else:
                    time.sleep(0.005)
        return self._pid

    def signal(self, signo: int) -> None:
        os.kill(self.pid, signo)

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
                raise AssertionError(f"no line with {fragment!r}; saw {self.lines[-10:]}; stderr: {self.stderr()}")
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
            raise AssertionError(f"sminit did not exit within {timeout} s; stderr: {self.stderr()}")
        while self.read_line(0.5) is not None:
            pass
        return self.returncode

    def stderr(self) -> str:
        self.stderr_file.seek(0)
        return self.stderr_file.read().decode(errors="replace")

    def kill(self) -> None:
        """Kill sminit's whole tree, by pid."""
        if self.proc.poll() is not None:
            return
        try:
            tree = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            tree = []
        for proc in [*tree, psutil.Process(self.proc.pid)]:
            try:
                proc.kill()
            except psutil.Error:
                pass
        self.proc.wait(10)

    def close(self) -> None:
        self.kill()
        self.proc.stdout.close()
        self.stderr_file.close()


@pytest.fixture
def start():
    """start(args, pid1=...) -> Sminit; everything started is killed at the end of the test."""
    started: list[Sminit] = []

    def launch(args: list[str], pid1: bool = False, **kwargs) -> Sminit:
        run = Sminit(args, pid1, **kwargs)
        started.append(run)
        return run

    yield launch
    for run in started:
        run.close()


def run_sminit(args: list[str], pid1: bool = False, timeout: float = 20, **kwargs) -> subprocess.CompletedProcess:
    """Run sminit to completion and capture everything."""
    prefix = UNSHARE if pid1 else []
    return subprocess.run([*prefix, *SMINIT, *args], capture_output=True, text=True, timeout=timeout, **kwargs)


def wait_until(predicate, timeout: float = 10, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def zombies_of(pid: int) -> int:
    return zombie_children(pid)


def sigmask_hex(signals) -> str:
    return format(sum(1 << (s - 1) for s in signals), "016x")


SIGNALS_TO_FORWARD = sorted(
    signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}
)
