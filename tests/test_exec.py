"""Commands that exec refuses: 126 and 127 with the cause and the fix in words (README: Exit
status), and --check finding the same before anything runs (README: `--check`)."""

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


def check(*args: str, cwd: Path | None = None, **extra: str) -> tuple[int, dict]:
    result = run_sminit(["--check", "--json", *args], env=env(**extra), cwd=cwd)
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
                                  "(CRLF line endings?): the interpreter will be given 'python3\\r': "
                                  f"convert it with dos2unix {path}"]


def exit_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("[sminit] exiting with ")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_env_shebang_with_crlf_gets_its_hint_in_the_exit_line(tmp_path):
    # exec accepts it; env exits 127 saying "python3\r" is not found: the run says why too.
    path = script(tmp_path, "crlf.py", b"#!/usr/bin/env python3\r\nprint('hi')\r\n")
    result = run_sminit(["--", str(path)], env=env())
    assert result.returncode == 127
    assert (f"exited with 127; hint: {path}: its #! line '/usr/bin/env python3\\r' ends in a carriage return"
            in exit_line(result.stderr))


# A shell script written on Windows: `python3 train.py\r` asks for 'train.py\r', Python exits 2.
CRLF_SHELL_SCRIPT = b"#!/bin/sh\r\necho starting\r\npython3 mytrain.py\r\n"
CRLF_WORDS = ("has CRLF (Windows) line endings: the shell takes each line's carriage return as part of its "
              "last word")


@pytest.mark.parametrize("interpreter", [["/bin/sh"], ["bash", "-e"], ["sh", "-x", "--"]])
def test_a_crlf_script_run_by_a_shell_is_a_check_problem_and_a_hint_in_the_exit_line(tmp_path, interpreter):
    script(tmp_path, "train.sh", CRLF_SHELL_SCRIPT, mode=0o644)
    script(tmp_path, "mytrain.py", b"print('trained')\n")
    command = [*interpreter, "train.sh"]
    code, report = check("--", *command, cwd=tmp_path)
    assert code == 125 and len(report["problems"]) == 1
    problem = report["problems"][0]
    assert problem.startswith(f"train.sh {CRLF_WORDS}") and "dos2unix train.sh" in problem
    result = run_sminit(["--", *command], env=env(PATH=os.environ["PATH"]), cwd=tmp_path)
    assert result.returncode == 2, result.stderr  # python3's "can't open file '.../mytrain.py\r'"
    assert "can't open file" in result.stderr and "mytrain.py" in result.stderr
    assert f"exited with 2; hint: train.sh {CRLF_WORDS}" in exit_line(result.stderr)


def test_a_crlf_script_executed_through_its_own_shell_shebang_is_a_check_problem(tmp_path):
    path = script(tmp_path, "train.sh", b"#!/bin/bash\n" + CRLF_SHELL_SCRIPT.split(b"\n", 1)[1])
    code, report = check("--", str(path))
    assert code == 125 and report["problems"][0].startswith(f"{path} {CRLF_WORDS}")


@pytest.mark.parametrize("command, code", [(["python3", "-u", "missing.py"], 2),
                                           (["sh", "missing.sh"], 2),  # dash says 2, bash 127
                                           (["bash", "missing.sh"], 127)])
def test_an_interpreter_s_missing_script_is_a_check_problem_and_a_hint(tmp_path, command, code):
    expected = (f"{command[0]} will be given the script {command[-1]}, which does not exist "
                f"(relative to {tmp_path})")
    status, report = check("--", *command, cwd=tmp_path)
    assert status == 125 and report["problems"] == [expected]
    result = run_sminit(["--", *command], env=env(), cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert f"exited with {code}; hint: {expected}" in exit_line(result.stderr)


def test_a_directory_as_the_script_is_a_check_problem(tmp_path):
    (tmp_path / "job").mkdir()
    status, report = check("--", "python3", "job", cwd=tmp_path)
    assert status == 125
    assert report["problems"] == ["python3 will be given the script job, which is a directory"]


@pytest.mark.parametrize("command", [["sh", "-c", "exit 0"], ["python3", "-m", "json.tool", "--help"],
                                     ["python3", "-c", "pass"], ["bash", "-ec", "true"], ["python3", "-"]])
def test_interpreters_that_run_no_file_are_not_checked_for_one(tmp_path, command):
    status, report = check("--", *command, cwd=tmp_path)
    assert status == 0 and report["problems"] == [], report


def test_a_late_exit_2_gets_no_script_hint(tmp_path):
    # Past the first second a 2 is the job's own (argparse's usage error, say), not its script's.
    path = script(tmp_path, "train.sh", b"sleep 1.2\nexit 2\r\n", mode=0o644)
    result = run_sminit(["--", "sh", str(path)], env=env())
    assert result.returncode == 2 and "hint:" not in exit_line(result.stderr)


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
