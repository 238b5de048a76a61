"""Starting the main child: own process group, terminal foreground, original signal state."""

from __future__ import annotations

import errno
import fcntl
import os
import _signal


class SpawnError(Exception):
    """The command could not be started; `code` is the exit status sminit reports."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def above_stdio(fd: int) -> int:
    """Move one of our own descriptors above 2, in case sminit started with 0, 1 or 2 closed:
    the child must find those slots exactly as sminit got them."""
    if fd > 2:
        return fd
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)
    return moved


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


def _exec_in_child(argv: list[str], mask: set[int], tty: int | None, report_fd: int) -> None:
    """Runs in the forked child; exec's errno goes back through report_fd. Never returns."""
    try:
        os.setpgid(0, 0)
        if tty is not None:
            try:
                os.tcsetpgrp(tty, os.getpgrp())  # SIGTTOU is still blocked, as it must be here
            except OSError:
                pass
        # The interpreter ignored these before sminit's first line; the child gets defaults.
        _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
        _signal.signal(_signal.SIGXFSZ, _signal.SIG_DFL)
        if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
            _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
        _signal.pthread_sigmask(_signal.SIG_SETMASK, mask)
        os.execvp(argv[0], argv)
    except OSError as exc:
        os.write(report_fd, str(exc.errno or errno.EINVAL).encode())
    except BaseException:
        os.write(report_fd, str(errno.EINVAL).encode())
    finally:
        os._exit(127)


def spawn(argv: list[str], mask: set[int], tty: int | None) -> int:
    """Fork and exec argv in a new process group; returns its pid once exec has succeeded."""
    if not argv[0]:
        raise SpawnError(127, "command not found: '' (an empty command name)")
    read_fd, write_fd = (above_stdio(fd) for fd in os.pipe2(os.O_CLOEXEC))
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        raise SpawnError(126, f"cannot start {argv[0]}: {exc.strerror}") from None
    if pid == 0:
        _exec_in_child(argv, mask, tty, write_fd)
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
    reason = os.strerror(code)
    status = 127 if code == errno.ENOENT else 126
    what = "command not found" if status == 127 else "cannot execute"
    raise SpawnError(status, f"{what}: {argv[0]}: {reason}")
