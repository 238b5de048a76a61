"""Fixtures for tests/container: the engine for the session, the base image made from Debian's
packages and cached per machine, the Dockerfile.example image built on it offline, and the
containers of each test, removed by their ids. What a session started or mounted is undone at
its end; the base image (tarball and engine image) is the only thing kept."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from container.engine import (
    CACHE, ENGINE, LABEL, PACKAGES, REQUIRED, ROOT, SESSION, STAND_IN, STOP_RACE, Containers, apt_sources,
    checkout_files, debian_release, docker_daemon, mounts_below, netns_mounted, podman, stop_daemon,
    unavailable,
)


@pytest.fixture(scope="session")
def engine():
    """The engine, for the whole session; what it started and mounted is undone at the end."""
    if os.geteuid() != 0:
        unavailable("the container tests run the engine as root")
    netns_before = netns_mounted()
    folder = Path(tempfile.mkdtemp(prefix="sminit-engine-"))
    daemon = None
    if ENGINE == "docker":
        chosen, daemon = docker_daemon(folder)
    elif ENGINE == "podman":
        chosen = podman(folder)
    else:
        raise pytest.UsageError(f"SMINIT_TEST_ENGINE={ENGINE!r}: podman or docker")
    yield chosen
    leftovers = chosen("ps", "-aq", "--filter", f"label={LABEL}", check=False).stdout.split()
    if leftovers:
        chosen("rm", "-f", *leftovers, check=False)
    if daemon is not None:
        stop_daemon(daemon)
    for point in mounts_below(folder):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", point], capture_output=True)
    if not netns_before and netns_mounted():
        # podman mounts /run/netns when it first makes a network namespace (the serve case).
        subprocess.run(["umount", "/run/netns"], check=False)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def base_image(engine) -> str:
    """localhost/sminit-test-python:<key>, standing in for python:3.12-slim; the rootfs tarball is
    cached per machine (SMINIT_TEST_CACHE, default ~/.cache/sminit-tests) and the images are kept."""
    codename = debian_release()
    sources = apt_sources(codename)
    if not sources:
        unavailable(f"no apt source for {codename} in /etc/apt to build the base image from")
    if not shutil.which("mmdebstrap"):
        unavailable("mmdebstrap is not installed (apt-get install mmdebstrap)")
    digest = hashlib.sha256(json.dumps([codename, PACKAGES, STAND_IN,
                                        [Path(s).read_text() for s in sources]]).encode()).hexdigest()[:12]
    tarball = CACHE / f"base-{codename}-{digest}.tar"
    if not tarball.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_name(f"{tarball.stem}.partial.tar")  # mmdebstrap goes by the name's ending
        made = subprocess.run(["mmdebstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", codename,
                               str(partial), *sources], capture_output=True, text=True, timeout=900)
        if made.returncode != 0:
            partial.unlink(missing_ok=True)
            unavailable(f"mmdebstrap failed: {made.stderr.strip()[-1000:]}")
        partial.rename(tarball)
    raw, base = f"localhost/sminit-test-raw:{digest}", f"localhost/sminit-test-python:{digest}"
    if not engine.has_image(raw):
        engine("import", str(tarball), raw, timeout=300)
    if not engine.has_image(base):
        with tempfile.TemporaryDirectory() as context:
            (Path(context) / "Dockerfile").write_text(STAND_IN.format(raw=raw))
            engine("build", "--network=none", "-t", base, context, timeout=300)
    return base


# What a developer's checkout holds beside the source, planted in the build context: the image
# must hold none of it (.dockerignore, and the wheel built in a stage of its own).
NOT_FOR_THE_IMAGE = (".venv/sminit-planted-venv", ".venv-dev/sminit-planted-venv-dev",
                     "build/sminit-planted-build", ".git/sminit-planted-git", "dist/sminit-planted-dist")


@pytest.fixture(scope="session")
def image(engine, base_image):
    """Dockerfile.example itself, built from this checkout on the stand-in base (only its FROM
    swapped, by the BASE_IMAGE build argument), offline; removed at the end of the session. The
    context is the checkout as a developer has it: a venv, build/ and .git beside the source."""
    tag = f"localhost/sminit-test-image:{SESSION}"
    dangling_before = _dangling(engine)
    with tempfile.TemporaryDirectory() as context:
        for name in [*checkout_files(), *NOT_FOR_THE_IMAGE]:
            target = Path(context) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if name in NOT_FOR_THE_IMAGE:
                target.write_text("planted by the container tests\n")
            else:
                shutil.copy2(ROOT / name, target)
        engine("build", "--network=none", "--build-arg", f"BASE_IMAGE={base_image}", "-f",
               str(Path(context) / "Dockerfile.example"), "-t", tag, context, timeout=600)
    yield tag
    engine("rmi", "-f", tag, check=False)
    # The wheel stage's image is left untagged by the build: removed by its id, with any other
    # image this session's builds left (the .dockerignore probe's).
    left = sorted(_dangling(engine) - dangling_before)
    if left:
        engine("rmi", "-f", *left, check=False)


def _dangling(engine) -> set[str]:
    """Ids of the untagged images the engine holds."""
    listed = engine("images", "-q", "--no-trunc", "--filter", "dangling=true", check=False)
    return set(listed.stdout.split())


@pytest.fixture
def containers(engine, image):
    made = Containers(engine, image)
    yield made
    made.remove_all()


# -- the report of case 9, and the check that nothing was skipped where they must run -----------

_SEEN = {"ran": 0, "skipped": 0}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "tests/container/" in report.nodeid.replace(os.sep, "/"):
        if report.skipped:
            _SEEN["skipped"] += 1
        elif report.when == "call":
            _SEEN["ran"] += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if REQUIRED and _SEEN["skipped"]:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    report = os.environ.get("SMINIT_CONTAINER_REPORT")
    if report:  # for .ci/run: proof that the container tests ran, and what case 9 measured
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        Path(report).write_text(json.dumps({
            "engine": ENGINE, **_SEEN,
            "stop_race": STOP_RACE,
        }))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if STOP_RACE:
        terminalreporter.section("stop right after start (case 9)")
        for init, outcomes in STOP_RACE.items():
            landed = ", ".join(f"{where} {count}" for where, count in outcomes.items())
            terminalreporter.write_line(f"{ENGINE}, {init}, of {sum(outcomes.values())} runs: {landed}")
    if REQUIRED and _SEEN["skipped"]:
        terminalreporter.write_line(f"FAILED: {_SEEN['skipped']} container tests were skipped where they are "
                                    "required (SMINIT_CONTAINER_TESTS=required)")
