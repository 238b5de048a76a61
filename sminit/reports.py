"""Where an explained ending is written for the platform to show: a SageMaker training job's
failure file (FailureReason), a SageMaker Processing job's message file (ExitMessage), and
Kubernetes' termination log (the pod's status). Nothing the job wrote is ever overwritten."""

from __future__ import annotations

import errno
import os
import stat

from sminit.log import Log

SAGEMAKER_BYTES = 1024  # FailureReason and ExitMessage show the first 1 KB
TERMINATION_LOG_BYTES = 4096  # the kubelet reads no more of the termination log


def utf8(text: str, limit: int) -> bytes:
    """text as valid UTF-8 of at most limit bytes, never cutting a character in half. Bytes that
    were not UTF-8 (a command name's, which Python keeps as surrogates) are written as \\xNN, never
    raw: SageMaker fails a job whose message file is not UTF-8."""
    try:
        data = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace").encode()
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        data = text.encode("utf-8", "backslashreplace")
    return data[:limit].decode("utf-8", "ignore").encode()


def write_new(path: str, data: bytes, log: Log, started_at: float) -> bool:
    """Write path unless anything is already there: the first writer wins.

    O_EXCL refuses any existing entry, a symlink (even dangling) included, so nothing the job
    wrote is overwritten, appended to or written through; started_at (wall clock) tells a file
    the job wrote from one an earlier run left.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            log.info(f"{path} already exists: {_who_wrote(path, started_at)}; not overwritten")
        else:
            log.warning(f"cannot write {path}: {exc.strerror}")
        return False
    try:
        os.write(fd, data)
    except OSError as exc:
        log.warning(f"cannot write {path}: {exc.strerror}")
    finally:
        os.close(fd)
    return True


def _who_wrote(path: str, started_at: float) -> str:
    try:
        modified = os.lstat(path).st_mtime
    except OSError:
        return "left as it is"
    if modified >= started_at - 0.05:  # file times come from a coarse clock, a tick behind
        return "the job wrote it"
    import time

    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(modified))
    return f"left by an earlier run (last written {stamp}; remove it before reusing the tree)"


def write_failure(ml_root: str, reason: str, log: Log, started_at: float) -> bool:
    """A training job's <ml-root>/output/failure, only where output/ exists (SageMaker makes it)."""
    output = os.path.join(ml_root, "output")
    if not os.path.isdir(output):
        log.info(f"no failure file: {output} does not exist (SageMaker creates it; "
                 "a hand-made tree may lack it)")
        return False
    return write_new(os.path.join(output, "failure"), utf8(reason, SAGEMAKER_BYTES), log, started_at)


def write_exit_message(ml_root: str, reason: str, log: Log, started_at: float) -> bool:
    """A processing job's <ml-root>/output/message; output/ is made if missing (the documentation
    names the file, not who makes its folder)."""
    output = os.path.join(ml_root, "output")
    try:
        os.makedirs(output, exist_ok=True)
    except OSError as exc:
        log.warning(f"cannot write {os.path.join(output, 'message')}: {exc.strerror}")
        return False
    return write_new(os.path.join(output, "message"), utf8(reason, SAGEMAKER_BYTES), log, started_at)


def write_termination_log(path: str, reason: str, log: Log) -> bool:
    """Kubernetes' termination-message file: written only when it exists (the kubelet mounts it
    empty), is a regular file and is still empty; an absent one is no Kubernetes: nothing said."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno != errno.ENOENT:  # no file: no Kubernetes, nothing to say
            log.info(f"cannot write the termination log {path}: {exc.strerror}")
        return False
    try:
        info = os.fstat(fd)
        kept = ("is not a regular file" if not stat.S_ISREG(info.st_mode) else
                "already holds a termination message (the job's own)" if info.st_size else None)
        if kept:
            log.info(f"{path} {kept}; not overwritten")
            return False
        os.write(fd, utf8(reason, TERMINATION_LOG_BYTES))
        return True
    except OSError as exc:
        log.warning(f"cannot write the termination log {path}: {exc.strerror}")
        return False
    finally:
        os.close(fd)
