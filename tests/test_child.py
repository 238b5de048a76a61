"""What the child inherits (signal state, stdio, cwd, environment, terminal) and the subreaper paths."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys

import pytest

from conftest import SMINIT, UNSHARE, run_sminit, sigmask_hex, wait_until
from sminit.testing import zombie_children
from ptys import drain, finish, pty_session, read_until


def _status_fields(text: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def test_child_gets_the_original_mask_and_ignores_with_python_s_reset(as_pid1):
    def original_state():
        _default_signal_state()  # whatever the runner ignores (a background job ignores SIGINT) is reset
        signal.pthread_sigmask(signal.SIG_SETMASK, {signal.SIGUSR1, signal.SIGWINCH})
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGQUIT, signal.SIG_IGN)

    prefix = UNSHARE if as_pid1 else []
    result = subprocess.run([*prefix, *SMINIT, "--", "cat", "/proc/self/status"], capture_output=True,
                            text=True, timeout=20, preexec_fn=original_state)
    assert result.returncode == 0, result.stderr
    fields = _status_fields(result.stdout)
    assert fields["SigBlk"] == sigmask_hex({signal.SIGUSR1, signal.SIGWINCH})
    # SIGPIPE and SIGXFSZ, which the interpreter ignores, are back to default. (Signals 32 and
    # 33 are glibc's own, which posix_spawn leaves ignored and every glibc program takes over.)
    assert _without_glibc_signals(fields["SigIgn"]) == sigmask_hex({signal.SIGHUP, signal.SIGQUIT})


def _without_glibc_signals(mask: str) -> str:
    return format(int(mask, 16) & ~((1 << 31) | (1 << 32)), "016x")


def _default_signal_state() -> None:
    """What an engine gives PID 1: nothing blocked or ignored (a runner may have, as nohup ignores SIGHUP)."""
    for signo in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}:
        signal.signal(signo, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def test_default_state_is_clean():
    result = run_sminit(["--", "cat", "/proc/self/status"], preexec_fn=_default_signal_state)
    fields = _status_fields(result.stdout)
    assert fields["SigBlk"] == sigmask_hex(set())
    assert _without_glibc_signals(fields["SigIgn"]) == sigmask_hex(set())


def test_child_runs_in_its_own_process_group():
    result = run_sminit(["--", sys.executable, "-c", "import os; print(os.getpid() == os.getpgrp())"])
    assert result.stdout == "True\n"


def test_stdin_cwd_and_environment_pass_through(tmp_path):
    result = subprocess.run([*SMINIT, "--", "sh", "-c", 'cat; pwd; echo "$SMINIT_TEST_VALUE"'],
                            input="from stdin\n", capture_output=True, text=True, timeout=20, cwd=tmp_path,
                            env={**os.environ, "SMINIT_TEST_VALUE": "x y\tz"})
    assert result.returncode == 0
    assert result.stdout == f"from stdin\n{os.path.realpath(tmp_path)}\nx y\tz\n"


def test_environment_reaches_the_child_byte_for_byte(as_pid1):
    environment = {b"PATH": os.environb[b"PATH"], b"LANG": b"C", b"NOT_UTF8": b"\xff\xfe caf\xe9",
                   b"EMPTY": b"", b"SPACES": b" a = b ", b"HOME": b"/root"}
    # Under the C locale the interpreter puts LC_CTYPE into its own environment (PEP 538) before
    # sminit's first line. Make sure it does here, or this test could pass for the wrong reason.
    probe = subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('LC_CTYPE'))"],
                           env=environment, capture_output=True, text=True, timeout=20)
    if probe.stdout.strip() == "None":
        pytest.skip("this interpreter does not coerce the C locale")
    prefix = UNSHARE if as_pid1 else []
    result = subprocess.run([*prefix, *SMINIT, "-q", "--", "cat", "/proc/self/environ"], env=environment,
                            capture_output=True, timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"".join(name + b"=" + value + b"\0" for name, value in environment.items())


def test_output_is_not_touched():
    payload = "".join(f"line {i}\n" for i in range(20000))
    result = subprocess.run([*SMINIT, "-q", "--", "cat"], input=payload, capture_output=True, text=True,
                            timeout=20)
    assert result.stdout == payload and result.stderr == ""


# The handler exists before the child says it is ready, and what the test waits for
# ("sigint-42") is computed, so it cannot appear in sminit's own lines, which show the source.
CTRL_C_CHILD = (
    "import os, signal\n"
    "signal.signal(signal.SIGINT, lambda *a: (os.write(1, b'sigint-%d\\n' % (6 * 7)), os._exit(42)))\n"
    "print('foreground', os.tcgetpgrp(0) == os.getpgrp(), flush=True)\n"
    "signal.pause()\n"
)


def test_terminal_foreground_and_ctrl_c():
    pid, master = pty_session([*SMINIT, "--", sys.executable, "-c", CTRL_C_CHILD])
    try:
        read_until(master, b"foreground True")
        os.write(master, b"\x03")
        output = read_until(master, b"sigint-42")
        assert finish(pid) == 42
        # The terminal sent SIGINT to the child's group only: sminit never started a stop.
        output += b"".join(iter(lambda: drain(master), b""))
        assert b"received SIGINT" not in output
    finally:
        os.close(master)


@pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")
def test_interactive_shell_has_job_control():
    pid, master = pty_session([*SMINIT, "--", "bash", "--norc", "--noprofile", "-i"])
    try:
        os.write(master, b"sleep 60 &\n")
        os.write(master, b"jobs; kill %1; wait; echo jobs-$((40+2))\n")
        output = read_until(master, b"jobs-42")
        os.write(master, b"exit 5\n")
        assert finish(pid) == 5
        assert b"no job control" not in output and b"cannot set terminal process group" not in output
        assert b"Running" in output
    finally:
        os.close(master)


def test_background_sminit_does_not_steal_the_terminal():
    probe = "import os; print('fg', os.tcgetpgrp(0) == os.getpgrp())"
    script = f"{' '.join(SMINIT)} -- {sys.executable} -c \"{probe}\" & wait"
    pid, master = pty_session(["bash", "--norc", "--noprofile", "-i", "-c", script])
    try:
        output = read_until(master, b"fg ")
        output += read_until(master, b"\n")
        assert b"fg False" in output
        finish(pid)
    finally:
        os.close(master)


BLOCK_PRCTL = "import sys; sys.modules['prctl'] = None; from sminit.__main__ import run; run()"
ORPHANS = (
    "import os, sys\n"
    "for _ in range(50):\n"
    "    if os.fork() == 0:\n"
    "        if os.fork() == 0: os._exit(0)\n"
    "        os._exit(0)\n"
    "print('made', flush=True); sys.stdin.readline()"
)


def needs_python_prctl() -> None:
    if importlib.util.find_spec("prctl") is None:
        assert not os.environ.get("CI"), "CI installs the prctl extra: both installs must run there"
        pytest.skip("python-prctl is not installed")


@pytest.mark.parametrize("install", ["with python-prctl", "without"])
def test_orphans_are_reaped_and_the_name_set_with_or_without_python_prctl(start, install):
    if install == "with python-prctl":
        needs_python_prctl()
        command = SMINIT
    else:
        command = [sys.executable, "-c", BLOCK_PRCTL]
    run = start(["-v", "--", sys.executable, "-c", ORPHANS], command=command, stdin=subprocess.PIPE)
    run.expect("made")
    assert wait_until(lambda: "registered as child subreaper (libc)" in run.stderr())
    with open(f"/proc/{run.pid}/status") as handle:
        assert "python" not in handle.readline()  # Name: sminit
    assert wait_until(lambda: zombie_children(run.pid) == 0)
    run.proc.stdin.close()
    assert run.wait() == 0


def test_the_calls_before_the_job_starts_never_import_python_prctl():
    # Its import costs 2.5 ms; the subreaper and the parent-death signal go through libc.
    needs_python_prctl()
    code = ("import signal, sys\nfrom sminit import subreaper\n"
            "print(subreaper.become_subreaper(), subreaper.set_parent_death_signal(signal.SIGTERM), "
            "'prctl' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert result.stdout == "libc None False\n", result.stderr


def test_subreaper_helpers_both_paths():
    code = (
        "import sys\n"
        "{block}"
        "from sminit import subreaper\n"
        "print(subreaper.is_subreaper(), subreaper.become_subreaper(), subreaper.is_subreaper())\n"
    )
    result = subprocess.run([sys.executable, "-c", code.format(block="sys.modules['prctl'] = None\n")],
                            capture_output=True, text=True, timeout=20)
    assert result.stdout == "False libc True\n"


def test_console_script_is_installed_and_works():
    script = shutil.which("sminit", path=os.path.dirname(sys.executable)) or shutil.which("sminit")
    if script is None:
        pytest.skip("sminit is not installed as a console script")
    result = subprocess.run([script, "--", "sh", "-c", "exit 4"], capture_output=True, text=True, timeout=20)
    assert result.returncode == 4
    # The fast path: the script blocks every signal on its first line and imports nothing before.
    with open(script) as handle:
        code = [line for line in handle.read().splitlines()[1:] if line.strip() and not line.startswith("#")]
    assert code[:2] == ["import _signal",
                        "MASK = _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())"]
    assert subprocess.run([script, "--version"], capture_output=True, text=True,
                          timeout=20).stdout.startswith("sminit ")
