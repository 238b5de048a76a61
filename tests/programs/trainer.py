"""Test job: a training process as real PyTorch jobs make it, for where signals go.

--workers N        fork N DataLoader-like workers in its group: each blocks SIGTERM and exits
                   quietly when its parent sends it, but dies of one from anyone else, and the
                   training process then fails ("worker exited unexpectedly", exit 1, no checkpoint),
                   as PyTorch's DataLoader does; SIGUSR1 kills a worker (it has no handler)
--checkpoint F     on SIGTERM or SIGINT: save F (printing a line per step while saving, tmp and
                   rename, so it is complete or absent), stop the workers, exit --exit-code
--warn             handle SIGUSR1: save F.warn and go on
--handler-delay S  install the handlers S seconds after the start (an interpreter's imports)
--tag TAG          prefix of every line (default: trainer)
"""

import argparse
import os
import signal
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--workers", type=int, default=0)
parser.add_argument("--checkpoint", required=True)
parser.add_argument("--warn", action="store_true")
parser.add_argument("--handler-delay", type=float, default=0.0)
parser.add_argument("--exit-code", type=int, default=0)
parser.add_argument("--tag", default="trainer")
args = parser.parse_args()


def say(text: str) -> None:
    print(f"{args.tag} {text}", flush=True)  # a print, as a job logs: breaks if the relay is gone


def worker(parent: int) -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    while True:
        info = signal.sigwaitinfo({signal.SIGTERM})
        if info.si_pid == parent:
            os._exit(0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        os.kill(os.getpid(), signal.SIGTERM)


workers = []
for _ in range(args.workers):
    pid = os.fork()
    if pid == 0:
        worker(os.getppid())
    workers.append(pid)
shutting_down = False


def on_child(_signo, _frame) -> None:
    for pid in list(workers):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped by this handler re-entered for a second SIGCHLD
            done, status = pid, 0
        if done and pid in workers:
            workers.remove(pid)
            if not shutting_down:
                raise RuntimeError(f"worker (pid {pid}) exited unexpectedly: status {status}")


signal.signal(signal.SIGCHLD, on_child)
requests: list[int] = []


def save(path: str) -> None:
    with open(path + ".tmp", "w") as handle:
        for step in range(5):
            say(f"saving {os.path.basename(path)} part {step}")
            handle.write(f"part {step}\n")
            time.sleep(0.05)
    os.rename(path + ".tmp", path)
    say(f"saved {os.path.basename(path)}")


time.sleep(args.handler_delay)
for signo in (signal.SIGTERM, signal.SIGINT, *([signal.SIGUSR1] if args.warn else [])):
    signal.signal(signo, lambda signo, _frame: requests.append(signo))
say(f"ready {os.getpid()}")
while True:
    time.sleep(0.02)  # a training step
    while requests:
        signo = requests.pop(0)
        if signo == signal.SIGUSR1:
            save(args.checkpoint + ".warn")
            continue
        save(args.checkpoint)
        shutting_down = True
        for pid in list(workers):
            os.kill(pid, signal.SIGTERM)
        while workers:
            time.sleep(0.01)
        say("done")
        sys.exit(args.exit_code)
