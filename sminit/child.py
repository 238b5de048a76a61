"""Starting the main child: own process group, terminal foreground, original signal state and
environment, the PATH search and exec, and exec's error reported back."""

from __future__ import annotations

import errno
import os
import _signal

from sminit.fds import above_stdio

TYPE_CHECKING = False  # typing's own would cost an import at every start; mypy knows this name
if TYPE_CHECKING:
    from collections.abc import Callable


class SpawnError(Exception):
    """The command could not be started: no process could be made, or exec failed, with `errno`.
    What that means, and the exit status, are executable.explain_failure's to say."""

    def __init__(self, error: int) -> None:
        super().__init__(os.strerror(error))
        self.errno = error


def candidates(name: str, path: str | None) -> list[str]:
    """The files exec tries for name, in order: name itself if it has a slash, else each PATH entry."""
    if "/" in name:
        return [name]
    folders = ("/bin:/usr/bin" if path is None else path).split(":")  # os.defpath, as execvp has it
    return [os.path.join(folder, name) for folder in folders]  # an empty entry is the working directory


def _search(argv: list[str], env: dict[bytes, bytes], run: Callable[[str], int]) -> int:
    """Try run(file) on each file execvp would try for argv[0] (PATH from env itself) until one
    execs; returns its result, or raises the error that tells most (EACCES over ENOENT).

    A file that is not there is passed over after a stat, as exec would fail on it: each try
    of posix_spawn costs a process, and the program is often in the last PATH folders.
    """
    path = env.get(b"PATH")
    first: OSError | None = None
    last: OSError | None = None
    for candidate in candidates(argv[0], None if path is None else os.fsdecode(path)):
        try:
            os.stat(candidate)
            return run(candidate)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.ENOMEM):
                raise  # no process could be made at all: no other folder would do better
            last = exc
            if first is None and exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                first = exc  # EACCES in one folder must not hide a later folder's program
    raise first or last or FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))


def original_environment() -> dict[bytes, bytes]:
    """The environment sminit was started with, byte for byte.

    os.environ is not it: before sminit's first line the interpreter may have added LC_CTYPE
    (PEP 538 locale coercion, under the C locale). /proc/self/environ still holds the block
    that exec gave us. Where /proc is missing, os.environb is the best there is.
    """
    try:
        with open("/proc/self/environ", "rb") as handle:
            block = handle.read()
    except OSError:
        return dict(os.environb)
    environment: dict[bytes, bytes] = {}
    for entry in block.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if sep and name:  # exec cannot pass an entry without a name; the first of a pair wins, as getenv
            environment.setdefault(name, value)
    return environment


def controlling_terminal() -> int | None:
    """An fd on our controlling terminal if our group owns its foreground, else None."""
    try:
        fd = above_stdio(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC))
    except OSError:
        return None  # ENXIO: no controlling terminal (the SageMaker case)
    try:
        if os.tcgetpgrp(fd) == os.getpgrp():
            return fd
    except OSError:
        pass
    os.close(fd)  # started in the background: never steal the terminal from the shell
    return None


# Ignored by the interpreter before sminit's first line; the child gets them at their default.
# (Signals that sminit catches are reset by exec itself; those it was given ignored stay so.)
RESET = frozenset({_signal.SIGPIPE, _signal.SIGXFSZ})


def spawn(argv: list[str], env: dict[bytes, bytes], mask: set[int], tty: int | None) -> int:
    """Start argv in a new process group with the given signal mask; returns its pid once exec has
    succeeded. SpawnError with the errno if no process could be made or exec failed.

    posix_spawn (vfork and exec, no Python in the child) starts the job in a tenth of the time
    of fork and exec from Python. Only the terminal hand-over needs code in the child between
    fork and exec (the job must own the foreground before it runs), so that case forks.
    (glibc's posix_spawn leaves signals 32 and 33, which glibc keeps for itself and no one else
    may use, ignored in the child; every glibc or musl program takes them over at its start.)
    """
    if not argv[0]:
        raise SpawnError(errno.ENOENT)  # as execvp: no file has the empty name
    try:
        if tty is None:
            return _search(argv, env, lambda file: os.posix_spawn(file, argv, env, setpgroup=0,
                                                                  setsigmask=mask, setsigdef=RESET))
        return _fork_and_exec(argv, env, mask, tty)
    except OSError as exc:
        raise SpawnError(exc.errno or errno.EINVAL) from None


def _exec_in_child(argv: list[str], env: dict[bytes, bytes], mask: set[int], tty: int,
                   report_fd: int) -> None:
    """Runs in the forked child; exec's errno goes back through report_fd. Never returns."""
    try:
        os.setpgid(0, 0)
        try:
            os.tcsetpgrp(tty, os.getpgrp())  # SIGTTOU is still blocked, as it must be here
        except OSError:
            pass
        for signo in RESET:
            _signal.signal(signo, _signal.SIG_DFL)
        _signal.pthread_sigmask(_signal.SIG_SETMASK, mask)
        _search(argv, env, lambda file: os.execve(file, argv, env))
    except OSError as exc:
        os.write(report_fd, str(exc.errno or errno.EINVAL).encode())
    except BaseException:
        os.write(report_fd, str(errno.EINVAL).encode())
    finally:
        os._exit(127)


def _fork_and_exec(argv: list[str], env: dict[bytes, bytes], mask: set[int], tty: int) -> int:
    """fork, hand the terminal's foreground to the child's new group, exec; exec's errno comes
    back through a close-on-exec pipe."""
    read_fd, write_fd = (above_stdio(fd) for fd in os.pipe2(os.O_CLOEXEC))
    try:
        pid = os.fork()
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        raise
    if pid == 0:
        _exec_in_child(argv, env, mask, tty, write_fd)
    os.close(write_fd)
    try:
        os.setpgid(pid, pid)  # also here, so the group exists before we might signal it
    except OSError:
        pass  # EACCES: the child has exec'd and already did it
    with os.fdopen(read_fd, "rb") as pipe:
        report = pipe.read()  # EOF as soon as exec closes the close-on-exec end
    if not report:
        return pid
    os.waitpid(pid, 0)
    code = int(report)
    raise OSError(code, os.strerror(code))
