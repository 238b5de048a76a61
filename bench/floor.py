"""The floor: the smallest correct Python init, run as `python -I -S bench/floor.py -- COMMAND`.

It blocks every signal first, starts the command in its own group with the original signal
state, forwards every signal to that group, reaps every child and exits with the command's
status. No options, no logs, no grace: what any Python init must pay, to measure sminit against.
"""

import _signal
import os
import sys

MASK = _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())
WAITED = _signal.valid_signals() - {_signal.SIGKILL, _signal.SIGSTOP}

argv = sys.argv[2:] if sys.argv[1:2] == ["--"] else sys.argv[1:]
pid = os.fork()
if pid == 0:
    try:
        os.setpgid(0, 0)
        _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
        _signal.signal(_signal.SIGXFSZ, _signal.SIG_DFL)
        _signal.pthread_sigmask(_signal.SIG_SETMASK, MASK)
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
try:
    os.setpgid(pid, pid)
except OSError:
    pass
status = 0
while True:
    info = _signal.sigwaitinfo(WAITED)
    if info.si_signo != _signal.SIGCHLD:
        try:
            os.kill(-pid, info.si_signo)
        except OSError:
            pass
        continue
    try:
        while True:
            done, wait_status = os.waitpid(-1, os.WNOHANG)
            if done == 0:
                break
            if done == pid:
                status = os.waitstatus_to_exitcode(wait_status)
                status = 128 - status if status < 0 else status
    except ChildProcessError:
        os._exit(status)
