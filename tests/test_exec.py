"""Commands that exec refuses: 126 and 127 with the cause and the fix in words (SPEC section 2),
and --check finding the same before anything runs (SPEC section 8)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import run_sminit
from mltree import make_ml_root


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SMINIT_", "TRAINING_JOB", "NVIDIA_"))}
    return {**base, **extra}


def script(folder: Path, name: str, content: bytes, mode: int = 0o755) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content)
    path.chmod(mode)
    return path


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("[sminit] error: ")]
    assert len(lines) == 1, stderr
    return lines[0]


def check(*args: str, **extra: str) -> tuple[int, dict]:
    result = run_sminit(["--check", "--json", *args], env=env(**extra))
    return result.returncode, json.loads(result.stdout)


def test_crlf_shebang_is_126_with_the_interpreter_as_read(tmp_path):
    path = script(tmp_path, "train.sh", b"#!/bin/sh\r\necho trained\r\n")
    result = run_sminit(["--", str(path)], env=env())
    assert result.returncode == 126 and result.stdout == ""
    line = error_line(result.stderr)
    assert f"cannot execute {path}: its interpreter '/bin/sh\\r' (from the #! line) does not exist" in line
    assert "(CRLF line endings?)" in line
    code, report = check("--", str(path))
    assert code == 125 and report["problems"] == [line.split("exiting with 126: ", 1)[1]]


def test_missing_interpreter_is_126_not_127(tmp_path):
    path = script(tmp_path, "train.py", b"#!/opt/conda/bin/python3 -u\nprint('hi')\n")
    result = run_sminit(["--", str(path)], env=env())
    assert result.returncode == 126
    line = error_line(result.stderr)
    assert "its interpreter '/opt/conda/bin/python3' (from the #! line) does not exist" in line
    assert "CRLF" not in line


def test_found_on_path_with_a_missing_interpreter_names_the_file_found(tmp_path):
    folder = tmp_path / "bin"
    path = script(folder, "train", b"#!/usr/bin/python2.7\n")
    result = run_sminit(["--", "train"], env=env(PATH=f"{folder}:/usr/bin:/bin"))
    assert result.returncode == 126
    assert f"cannot execute {path}: its interpreter '/usr/bin/python2.7'" in result.stderr


def test_a_script_without_execute_permission_says_how_to_fix_it(tmp_path):
    ml = make_ml_root(tmp_path / "ml")
    path = script(ml / "input" / "data" / "code", "train.sh", b"#!/bin/sh\necho trained\n", mode=0o644)
    result = run_sminit(["--ml-root", str(ml), "--mode", "train", "--require-gpus", "none", "--", str(path)],
                        env=env())
    assert result.returncode == 126
    line = error_line(result.stderr)
    assert f"cannot execute {path}: Permission denied: it has no execute permission" in line
    assert f"chmod +x {path}" in line and f'["sminit", "--", "/bin/sh", "{path}"]' in line
    written = (ml / "output" / "failure").read_text()
    assert written.startswith(f"sminit: exiting with 126: cannot execute {path}")
    code, report = check("--ml-root", str(ml), "--", str(path))
    assert code == 125 and any("chmod +x" in p for p in report["problems"])


def test_the_suggested_interpreter_is_the_script_s_own(tmp_path):
    path = script(tmp_path, "train.py", b"#!/usr/bin/env python3\nprint('hi')\n", mode=0o644)
    line = error_line(run_sminit(["--", str(path)], env=env()).stderr)
    assert f'["sminit", "--", "python3", "{path}"]' in line


def test_no_execute_bit_and_crlf_are_both_said(tmp_path):
    path = script(tmp_path, "train.sh", b"#!/bin/sh\r\necho trained\r\n", mode=0o644)
    line = error_line(run_sminit(["--", str(path)], env=env()).stderr)
    assert f'["sminit", "--", "/bin/sh", "{path}"]' in line  # the interpreter meant, without the \r
    assert line.endswith("; its #! line also ends in a carriage return (CRLF line endings?)")


def test_the_suggestion_works_as_sagemaker_s_container_entrypoint(tmp_path):
    # ContainerEntrypoint ["sminit", "--", "/bin/sh"] with the script as the argument: no exec bit needed.
    path = script(tmp_path, "train.sh", b"#!/bin/sh\necho trained \"$@\"\n", mode=0o644)
    result = run_sminit(["--", "/bin/sh", str(path), "train"], env=env())
    assert result.returncode == 0 and result.stdout == "trained train\n"


def test_not_a_program_and_no_shebang(tmp_path):
    path = script(tmp_path, "job", b"echo no shebang\n")
    result = run_sminit(["--", str(path)], env=env())
    assert result.returncode == 126 and "Exec format error: not a program and no #! line" in result.stderr
    assert check("--", str(path))[0] == 125


def test_a_directory(tmp_path):
    result = run_sminit(["--", str(tmp_path)], env=env())
    assert result.returncode == 126 and f"cannot execute {tmp_path}: it is a directory" in result.stderr


@pytest.mark.parametrize("name", ["no-such-command-anywhere", "/no/such/path"])
def test_not_found_is_127(name):
    result = run_sminit(["--", name], env=env())
    assert result.returncode == 127 and f"command not found: {name}" in result.stderr
    code, report = check("--", name)
    assert code == 125 and report["problems"][0].startswith(f"command not found: {name}")


def test_env_shebang_with_crlf_is_a_check_problem(tmp_path):
    # exec succeeds (env exists), env then looks for "python3\r": --check says so beforehand.
    path = script(tmp_path, "train.py", b"#!/usr/bin/env python3\r\nprint('hi')\r\n")
    code, report = check("--", str(path))
    assert code == 125
    assert report["problems"] == [f"{path}: its #! line '/usr/bin/env python3\\r' ends in a carriage return "
                                  "(CRLF line endings?): the interpreter will be given 'python3\\r'"]


def test_a_sound_script_passes_check(tmp_path):
    path = script(tmp_path, "train.sh", b"#!/bin/sh  \nexit 0\n")
    code, report = check("--", str(path))
    assert code == 0 and report["problems"] == []
    assert run_sminit(["--", str(path)], env=env()).returncode == 0


def test_an_executable_later_on_path_wins_over_an_unexecutable_earlier_one(tmp_path):
    first = script(tmp_path / "a", "tool", b"#!/bin/sh\necho first\n", mode=0o644)
    script(tmp_path / "b", "tool", b"#!/bin/sh\necho second\n")
    result = run_sminit(["--", "tool"], env=env(PATH=f"{first.parent}:{tmp_path / 'b'}:/usr/bin:/bin"))
    assert result.returncode == 0 and result.stdout == "second\n"  # as execvp does
