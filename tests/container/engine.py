"""Driving a real container engine from the tests: podman with runc (default) or Docker
(SMINIT_TEST_ENGINE=docker), its command line, the containers of a test, and what it takes to
build the base image from Debian's packages and the Dockerfile.example image on it."""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent.parent
ENGINE = os.environ.get("SMINIT_TEST_ENGINE", "podman")
# .ci/run sets this: there the engine must work, and a skipped container test fails the run.
REQUIRED = os.environ.get("SMINIT_CONTAINER_TESTS") == "required"
CACHE = Path(os.environ.get("SMINIT_TEST_CACHE") or Path.home() / ".cache" / "sminit-tests")
# What python:3.12-slim has that matters here (python, pip), plus the wheels pip needs to build
# sminit offline, and tini for the side-by-side measure. No compiler: the prctl extra is left out.
PACKAGES = ("python3", "python3-pip", "python3-setuptools-whl", "python3-wheel-whl", "tini")
# The stand-in for python:3.12-slim: pip may install into the system, `python` exists, and pip
# finds build requirements among Debian's wheels instead of the network.
STAND_IN = """\
FROM {raw}
RUN rm -f /usr/lib/python3*/EXTERNALLY-MANAGED && ln -sf /usr/bin/python3 /usr/local/bin/python
ENV PIP_NO_INDEX=1 PIP_FIND_LINKS=/usr/share/python-wheels PIP_DISABLE_PIP_VERSION_CHECK=1
"""
SESSION = uuid.uuid4().hex[:12]
LABEL = f"sminit-test={SESSION}"
# Case 9: init -> where each stop sent right after the start landed, and how often.
STOP_RACE: dict[str, dict[str, int]] = {}


def _limit(kind: int, ceiling: int) -> int:
    """The engine sets each container's limits; ask for no more than the hard limit here, or runc
    fails (\"error setting rlimit\"). Processes are also capped by pid_max (seen: 32768)."""
    hard = resource.getrlimit(kind)[1]
    return ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)


def _pid_max() -> int:
    try:
        return int(Path("/proc/sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        return 32768


NOFILE = _limit(resource.RLIMIT_NOFILE, 1 << 20)
NPROC = _limit(resource.RLIMIT_NPROC, _pid_max())


def unavailable(reason: str) -> None:
    """The engine cannot work here: skip, or fail where the container tests are required."""
    if REQUIRED:
        pytest.fail(f"container tests are required here, but: {reason}", pytrace=False)
    pytest.skip(reason)


class Engine:
    """One engine's command line, the options every test container gets, and its clean-up."""

    def __init__(self, name: str, env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.env = env
        # The engine's commands run in the session's own folder: conmon leaves a file named
        # "oom" in its working directory when a container of its is OOM-killed.
        self.folder = folder
        self.defaults = ["--network=none"]
        if name == "docker":  # podman takes these from its containers.conf
            self.defaults += [f"--ulimit=nofile={NOFILE}:{NOFILE}", f"--ulimit=nproc={NPROC}:{NPROC}"]

    def __call__(self, *args: str, timeout: float = 120, check: bool = True,
                 **kwargs) -> subprocess.CompletedProcess:
        # timeout -k: the docker CLI ignores a plain SIGTERM (CONTAINERS.md)
        command = ["timeout", "-k", "5", str(timeout), self.name, *args]
        kwargs.setdefault("cwd", self.folder)
        result = subprocess.run(command, capture_output=True, text=True, env=self.env, **kwargs)
        if check and result.returncode != 0:
            raise AssertionError(f"{self.name} {' '.join(args)[:300]} failed ({result.returncode}): "
                                 f"{result.stderr.strip()[-2000:]}")
        return result

    def has_image(self, name: str) -> bool:
        return self("image", "inspect", name, check=False).returncode == 0


def podman(folder: Path) -> Engine:
    if not shutil.which("podman"):
        unavailable("podman is not installed (apt-get install podman runc)")
    if not shutil.which("runc"):
        unavailable("runc is not installed: podman's default runtime, crun, fails on this kind of machine")
    conf = folder / "containers.conf"
    conf.write_text(f'[containers]\ndefault_ulimits = ["nofile={NOFILE}:{NOFILE}", "nproc={NPROC}:{NPROC}"]\n'
                    '[engine]\nruntime = "runc"\n')
    engine = Engine("podman", {**os.environ, "CONTAINERS_CONF": str(conf)}, folder)
    info = engine("info", check=False)
    if info.returncode != 0:
        unavailable(f"podman cannot start: {info.stderr.strip()[-500:]}")
    return engine


def docker_daemon(folder: Path) -> tuple[Engine, subprocess.Popen]:
    if not shutil.which("dockerd") or not shutil.which("docker"):
        unavailable("Docker is not installed (apt-get install docker.io)")
    socket_path = folder / "docker.sock"
    log = open(folder / "dockerd.log", "w")
    daemon = subprocess.Popen(["dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none",
                               f"--host=unix://{socket_path}", f"--pidfile={folder / 'docker.pid'}",
                               f"--exec-root={folder / 'exec'}"], stdout=log, stderr=subprocess.STDOUT,
                              cwd=folder)
    log.close()
    engine = Engine("docker", {**os.environ, "DOCKER_HOST": f"unix://{socket_path}", "DOCKER_BUILDKIT": "0"},
                    folder)
    deadline = time.monotonic() + 60
    while engine("version", check=False, timeout=10).returncode != 0:
        if daemon.poll() is not None or time.monotonic() > deadline:
            stop_daemon(daemon)
            unavailable(f"dockerd did not start: {(folder / 'dockerd.log').read_text()[-500:]}")
        time.sleep(0.2)
    return engine, daemon


def stop_daemon(daemon: subprocess.Popen) -> None:
    if daemon.poll() is None:
        daemon.terminate()  # by pid: dockerd stops its containerd and what is left
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def mounts_below(folder: Path) -> list[str]:
    """Mount points inside folder, deepest first (dockerd leaves its exec-root's netns/default)."""
    with open("/proc/self/mountinfo") as handle:
        points = [line.split()[4].replace("\\040", " ") for line in handle]
    return sorted((p for p in points if p.startswith(f"{folder}/")), key=len, reverse=True)


def netns_mounted() -> bool:
    with open("/proc/self/mountinfo") as handle:
        return any(line.split()[4] == "/run/netns" for line in handle)


def apt_sources(codename: str) -> list[str]:
    """apt's own source files that name this release: the mirror, never written in the project."""
    candidates = ["/etc/apt/sources.list", *sorted(str(p) for p in Path("/etc/apt/sources.list.d").glob("*"))]
    chosen = []
    for path in candidates:
        if path.endswith((".list", ".sources")) and os.path.isfile(path):
            text = Path(path).read_text().splitlines()
            lines = [line for line in text if not line.lstrip().startswith("#")]
            if any(codename in line for line in lines):
                chosen.append(path)
    return chosen


def debian_release() -> str:
    try:
        text = Path("/etc/os-release").read_text().splitlines()
        fields = dict(line.split("=", 1) for line in text if "=" in line)
    except OSError:
        fields = {}
    codename = fields.get("VERSION_CODENAME", "").strip('"')
    if not codename or fields.get("ID", "").strip('"') != "debian":
        unavailable("the base image is made from Debian's packages: this machine is not Debian")
    return codename


def checkout_files() -> list[str]:
    """The files of this checkout as it is: tracked, and untracked ones git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, timeout=30)
    if listed.returncode == 0:
        return [name for name in listed.stdout.decode().split("\0") if name and (ROOT / name).is_file()]
    return [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts
            and ".venv" not in p.parts and "__pycache__" not in p.parts]


class Containers:
    """Containers of one test, started from the image with the engine's defaults and a label;
    each is removed by its id at the end of the test."""

    def __init__(self, engine: Engine, image: str) -> None:
        self.engine = engine
        self.image = image
        self.ids: list[str] = []

    def options(self, extra: list[str]) -> list[str]:
        network = [] if any(o.startswith("--network") for o in extra) else self.engine.defaults[:1]
        return [*network, *self.engine.defaults[1:], "--label", LABEL, *extra]

    def start(self, *args: str, options: tuple[str, ...] = ()) -> str:
        """`run -d IMAGE args...`; returns the container's id."""
        result = self.engine("run", "-d", *self.options(list(options)), self.image, *args)
        container = result.stdout.strip().splitlines()[-1]
        self.ids.append(container)
        return container

    def name(self) -> str:
        """A name for a container started by hand (run -it); removed like the others."""
        name = f"sminit-test-{uuid.uuid4().hex[:12]}"
        self.ids.append(name)
        return name

    def wait(self, container: str, timeout: float = 120) -> int:
        return int(self.engine("wait", container, timeout=timeout).stdout.strip().splitlines()[-1])

    def logs(self, container: str) -> str:
        result = self.engine("logs", container)
        return result.stdout + result.stderr

    def wait_for_log(self, container: str, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            logs = self.logs(container)
            if text in logs:
                return logs
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the logs within {timeout} s: {logs[-2000:]}")
            time.sleep(0.1)

    def stop(self, container: str, grace: int) -> float:
        """`stop -t grace`, as SageMaker does; returns the seconds it took."""
        started = time.monotonic()
        self.engine("stop", "-t", str(grace), container, timeout=grace + 60)
        return time.monotonic() - started

    def host_pid(self, container: str) -> int:
        """The container's PID 1 as the host sees it."""
        return int(self.engine("inspect", "-f", "{{.State.Pid}}", container).stdout.strip())

    def remove_all(self) -> None:
        if self.ids:
            self.engine("rm", "-f", *self.ids, check=False, timeout=120)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


