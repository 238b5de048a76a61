"""What a user installs: `python -m build` makes an sdist and a wheel that carry the license, the
wheel installs into a fresh venv of every supported Python found here and runs the quick start,
`--version` says the release, and the kit without its extra says which extra to install."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from sminit import __version__

ROOT = Path(__file__).parent.parent
SUPPORTED = ("3.9", "3.10", "3.11", "3.12", "3.13")
# Where CI has to test every supported Python (.ci/run): there a missing one fails, not skips.
REQUIRED = os.environ.get("SMINIT_ALL_PYTHONS") == "required"


def find_python(version: str) -> str | None:
    """This Python, else one in pyenv's versions (how these machines keep the others), else
    python<version> on PATH (not a pyenv shim: it answers only for the versions pyenv has on)."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        return sys.executable
    pyenv = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates = sorted(glob.glob(f"{pyenv}/versions/{version}.*/bin/python{version}"))
    if candidates:
        return candidates[-1]
    found = shutil.which(f"python{version}")
    return found if found and "/shims/" not in found else None


def checkout_copy(target: Path) -> Path:
    """The checkout's files as a clean clone has them (tracked, and untracked that git does not
    ignore): a build from it proves that a fresh clone builds, and leaves the checkout as it is."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, timeout=30, check=True)
    for name in filter(None, listed.stdout.decode().split("\0")):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """`python -m build` (sdist and wheel), run as the README says, without build isolation so it
    needs no network: setuptools and wheel come with the dev extra."""
    source = checkout_copy(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)]
    built = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return out


def test_build_makes_an_sdist_and_a_wheel_that_carry_the_license(dist):
    wheel = dist / f"sminit-{__version__}-py3-none-any.whl"
    sdist = dist / f"sminit-{__version__}.tar.gz"
    assert wheel.is_file() and sdist.is_file(), sorted(p.name for p in dist.iterdir())
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0" in license_text
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert f"sminit-{__version__}.data/scripts/sminit" in names  # the command, not an entry point
        assert archive.read(f"sminit-{__version__}.dist-info/LICENSE").decode() == license_text
        metadata = archive.read(f"sminit-{__version__}.dist-info/METADATA").decode()
    assert f"Version: {__version__}" in metadata and "License: Apache-2.0" in metadata
    assert not any(name.startswith(("tests/", "bench/")) for name in names)
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
        assert archive.extractfile(f"sminit-{__version__}/LICENSE").read().decode() == license_text
    shipped = {"LICENSE", "CHANGELOG.md", "README.md", "bin/sminit", "sminit/app.py", "examples/train.py"}
    assert shipped <= members


def test_the_changelog_names_this_release():
    assert f"## {__version__} " in (ROOT / "CHANGELOG.md").read_text()


@pytest.mark.parametrize("version", SUPPORTED)
def test_the_wheel_installs_into_a_fresh_venv_and_runs_the_quick_start(dist, tmp_path, version):
    python = find_python(version)
    if python is None:
        message = f"Python {version} is not on this machine (neither python{version} on PATH nor in pyenv)"
        if REQUIRED:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    wheel = dist / f"sminit-{__version__}-py3-none-any.whl"
    install = [venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-index", str(wheel)]
    installed = subprocess.run(install, capture_output=True, text=True, timeout=120)
    assert installed.returncode == 0, installed.stderr[-2000:]
    sminit = str(venv / "bin" / "sminit")
    shown = subprocess.run([sminit, "--version"], capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0 and shown.stdout == f"sminit {__version__}\n"
    # The README's quick start: warned and stopped at the max runtime, then resumed and finished.
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "SMINIT_ML_ROOT": str(tmp_path / "demo")}
    codes = []
    for _ in range(2):
        run = subprocess.run([sminit, "--max-runtime", "3", "--warn-before", "1.5", "--",
                              str(ROOT / "examples" / "entrypoint.sh")],
                             capture_output=True, text=True, timeout=60, env=env)
        codes.append((run.returncode, run.stdout + run.stderr))
    (first, first_output), (second, second_output) = codes
    assert first == 124, first_output
    assert second == 0, second_output
    # The job's own lines, not sminit's: the checkpoint it saved at the warning and resumed from.
    assert "checkpoint saved at step" in first_output and "starting from step 0" in first_output
    assert "resumed from step" in second_output and "finished" in second_output
    # The kit without its extra says what to install instead of a bare ModuleNotFoundError.
    kit = subprocess.run([venv / "bin" / "python", "-c", "import sminit.testing"], capture_output=True,
                         text=True, timeout=30)
    assert kit.returncode != 0 and "pip install 'sminit[test]'" in kit.stderr
