"""Why exec would refuse a command, in the words of the 126/127 exit lines and `--check`
(README: Exit status, `--check`): not found, not executable, no #! interpreter, CRLF line endings; and
what is wrong with the script an interpreter command (`sh train.sh`, `python train.py`) runs."""

from __future__ import annotations

import errno
import os

from sminit.child import candidates

SHEBANG_BYTES = 256  # the kernel reads no more of a #! line than this (BINPRM_BUF_SIZE)
_BLANKS = b" \t"


def locate(name: str, path: str | None) -> str | None:
    """The file exec would run: the first executable candidate, else the first existing one."""
    existing = [c for c in candidates(name, path) if os.path.exists(c)]
    for candidate in existing:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return existing[0] if existing else None


def _quoted(word: str) -> str:
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _shown(raw: bytes) -> str:
    """An interpreter path as read from the #! line, a carriage return shown as \\r."""
    return os.fsdecode(raw).replace("\r", "\\r")


def read_shebang(file: str) -> tuple[bytes, bytes] | None:
    """(interpreter, argument) from the file's #! line, split as the kernel splits it; None if none."""
    try:
        with open(file, "rb") as handle:
            head = handle.read(SHEBANG_BYTES)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].strip(_BLANKS)  # a \r is no blank to the kernel: it stays
    cut = min((i for i in (line.find(b" "), line.find(b"\t")) if i >= 0), default=len(line))
    return line[:cut], line[cut:].strip(_BLANKS)


def _interpreter_hint(file: str) -> str:
    """What to put before file in the entrypoint to run it without its execute bit."""
    shebang = read_shebang(file)
    if shebang is None or not shebang[0]:
        return "/bin/sh"
    interpreter, argument = (os.fsdecode(part).rstrip("\r") for part in shebang)  # CRLF: the word meant
    if os.path.basename(interpreter) == "env" and argument and " " not in argument:
        return argument
    return interpreter


def refusal(name: str, path: str | None) -> tuple[int, str] | None:
    """Why exec would refuse name (status 126 or 127 and the line); None if it would run it."""
    if not name:
        return 127, "command not found: '' (an empty command name)"
    found = locate(name, path)
    if found is None:
        if "/" in name:
            return 127, f"command not found: {name}: No such file or directory"
        return 127, f"command not found: {name}: not in any PATH folder"
    if os.path.isdir(found):
        return 126, f"cannot execute {found}: it is a directory"
    if not os.access(found, os.X_OK):
        shebang = read_shebang(found)
        crlf_too = shebang is not None and (shebang[0] + shebang[1]).endswith(b"\r")
        also = "; its #! line also ends in a carriage return (CRLF line endings?)" if crlf_too else ""
        return 126, (f"cannot execute {found}: Permission denied: it has no execute permission (files "
                     f"downloaded from S3 have none): chmod +x {found}, or run it through its interpreter: "
                     f'["sminit", "--", {_quoted(_interpreter_hint(found))}, {_quoted(found)}]{also}')
    shebang = read_shebang(found)
    if shebang is not None:
        interpreter = shebang[0]
        if not interpreter:
            return 126, f"cannot execute {found}: its #! line names no interpreter"
        crlf = " (CRLF line endings?)" if interpreter.endswith(b"\r") else ""
        if not os.path.exists(interpreter):
            return 126, (f"cannot execute {found}: its interpreter '{_shown(interpreter)}' "
                         f"(from the #! line) does not exist{crlf}")
        if os.path.isdir(interpreter) or not os.access(interpreter, os.X_OK):
            return 126, f"cannot execute {found}: its interpreter '{_shown(interpreter)}' is not executable"
        return None
    if not _is_binary(found):
        return 126, (f"cannot execute {found}: Exec format error: not a program and no #! line "
                     "(a script needs one, such as #!/bin/sh)")
    return None


def _is_binary(file: str) -> bool:
    try:
        with open(file, "rb") as handle:
            return handle.read(4) == b"\x7fELF"
    except OSError:
        return True  # unreadable but executable: exec is the judge


def crlf_shebang(name: str, path: str | None) -> str | None:
    """A #! line that exec accepts but whose argument ends in a carriage return (env python3\\r)."""
    found = locate(name, path)
    shebang = read_shebang(found) if found else None
    if shebang is None or not shebang[1].endswith(b"\r"):
        return None
    line = _shown(shebang[0] + b" " + shebang[1])
    return (f"{found}: its #! line '{line}' ends in a carriage return (CRLF line endings?): "
            f"the interpreter will be given '{_shown(shebang[1])}': convert it with dos2unix {found}")


def explain_failure(name: str, code: int, path: str | None) -> tuple[int, str]:
    """The exit status and line for a start of name that failed with errno code: no process
    could be made (126), or why exec refused it (126 or 127, refusal's words)."""
    if code in (errno.EAGAIN, errno.ENOMEM):
        return 126, f"cannot start {name}: {os.strerror(code)}"
    reason = refusal(name, path)
    if reason is not None:
        return reason
    if code == errno.ENOENT:
        return 126, (f"cannot execute {locate(name, path)}: No such file or directory, though the file "
                     "exists: its ELF interpreter (the dynamic loader) is missing; built for another system?")
    return 126, f"cannot execute {name}: {os.strerror(code)}"


SHELL_NAMES = frozenset(("sh", "bash", "dash", "ash", "zsh", "ksh", "mksh"))
# Interpreter options that take the next word as their value, so it is not the script.
_VALUE_OPTIONS = {"shell": ("-o", "+o", "-O", "+O"), "python": ("-W", "-X", "-Q")}
SCRIPT_HEAD_BYTES = 65536  # CRLF shows in the first lines of any script that has it


def _interpreter_kind(name: str) -> str | None:
    """'shell' for sh, bash and the like, 'python' for python, python3, python3.11; else None."""
    if name in SHELL_NAMES:
        return "shell"
    version = name[len("python"):]
    if name.startswith("python") and (not version or version.replace(".", "").isdigit()):
        return "python"
    return None


def script_operand(command: list[str]) -> str | None:
    """The script file an interpreter command runs (`bash -e train.sh` -> train.sh); None when the
    command is no interpreter or runs no file (`sh -c ...`, `python -m ...`, `python -`)."""
    kind = _interpreter_kind(os.path.basename(command[0])) if command else None
    if kind is None:
        return None
    words = iter(command[1:])
    for word in words:
        if word == "--":
            return next(words, None)
        if word == "-":
            return None
        if word in _VALUE_OPTIONS[kind]:
            next(words, None)
            continue
        if word.startswith("-") or (kind == "shell" and word.startswith("+")):
            flags = "" if word.startswith("--") else word[1:]
            if (kind == "shell" and "c" in flags) or (kind == "python" and flags[:1] in ("c", "m")):
                return None  # the program is an argument, not a file
            continue
        return word
    return None


def _crlf(file: str) -> bool:
    try:
        with open(file, "rb") as handle:
            return b"\r\n" in handle.read(SCRIPT_HEAD_BYTES)
    except OSError:
        return False


def _shell_script(command: list[str], path: str | None) -> str | None:
    """The file a shell will read: `sh train.sh`'s operand, or the command itself when its #! line
    names a shell (`./train.sh` with #!/bin/bash, or #!/usr/bin/env bash)."""
    if _interpreter_kind(os.path.basename(command[0])) == "shell":
        return script_operand(command)
    found = locate(command[0], path)
    shebang = read_shebang(found) if found else None
    if shebang is None:
        return None
    interpreter, argument = (os.path.basename(os.fsdecode(part).rstrip("\r")) for part in shebang)
    return found if interpreter in SHELL_NAMES or (interpreter == "env" and argument in SHELL_NAMES) else None


def script_problems(command: list[str], path: str | None) -> list[str]:
    """What will make an interpreter command fail on its script: the file missing, a directory or
    unreadable, or a shell script with CRLF line endings (each line's end is then part of its last
    word: `python3 train.py` asks for 'train.py\\r')."""
    if not command:
        return []
    interpreter = os.path.basename(command[0])
    script = script_operand(command)
    if script is not None:
        where = "" if os.path.isabs(script) else f" (relative to {os.getcwd()})"
        if not os.path.exists(script):
            return [f"{interpreter} will be given the script {script}, which does not exist{where}"]
        if os.path.isdir(script):
            return [f"{interpreter} will be given the script {script}, which is a directory"]
        if not os.access(script, os.R_OK):
            return [f"{interpreter} will be given the script {script}, which it cannot read "
                    "(no read permission)"]
    shell_script = _shell_script(command, path)
    if shell_script is None or not _crlf(shell_script):
        return []
    return [f"{shell_script} has CRLF (Windows) line endings: the shell takes each line's carriage return "
            f"as part of its last word (python3 train.py asks for 'train.py\\r'): convert it with "
            f"dos2unix {shell_script}, or sed -i 's/\\r$//' {shell_script}"]


def command_hints(command: list[str], path: str | None) -> list[str]:
    """What exec accepts but will fail the job at once: a #! argument ending in a carriage return
    (env then looks for 'python3\\r'), and the script problems above."""
    if not command or not command[0]:
        return []
    crlf = crlf_shebang(command[0], path)
    return ([crlf] if crlf else []) + script_problems(command, path)
