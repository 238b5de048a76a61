"""Test child: reports each signal it gets as `TAG got SIGNAME` on stdout and acts per options.

--ignore-term     keep running on SIGTERM (only report it)
--exit-code N     exit status after SIGTERM (default 0)
--checkpoint F    on SIGTERM, write F (tmp + rename, so it is complete or absent) before exiting
--spawn TAG       start another recorder in the same process group, tagged TAG
--spawn-setsid    the spawned one moves to a new session first
--setsid          move to a new session first
--tag TAG         prefix of every line (default: main)
"""

import argparse
import os
import signal
import subprocess
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--ignore-term", action="store_true")
parser.add_argument("--exit-code", type=int, default=0)
parser.add_argument("--checkpoint")
parser.add_argument("--spawn")
parser.add_argument("--spawn-setsid", action="store_true")
parser.add_argument("--setsid", action="store_true")
parser.add_argument("--tag", default="main")
args = parser.parse_args()
if args.setsid:
    os.setsid()


def say(text: str) -> None:
    os.write(1, f"{args.tag} {text}\n".encode())  # unbuffered: safe inside signal handlers


def name(signo: int) -> str:
    if signal.SIGRTMIN < signo < signal.SIGRTMAX:
        return f"SIGRTMIN+{signo - signal.SIGRTMIN}"
    try:
        return signal.Signals(signo).name
    except ValueError:
        return str(signo)  # unnamed in this Python (SIGSTKFLT before 3.11), as sminit writes it


def on_signal(signo: int, _frame: object) -> None:
    say(f"got {name(signo)}")
    if signo == signal.SIGTERM and not args.ignore_term:
        if args.checkpoint:
            with open(args.checkpoint + ".tmp", "w") as handle:
                handle.write("step=42\n")
            os.rename(args.checkpoint + ".tmp", args.checkpoint)
            say("saved checkpoint")
        os._exit(args.exit_code)


for signo in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}:
    signal.signal(signo, on_signal)
if args.spawn:
    extra = ["--setsid"] if args.spawn_setsid else []
    subprocess.Popen([sys.executable, __file__, "--tag", args.spawn, "--ignore-term", *extra])
say(f"ready {os.getpid()} pgid {os.getpgrp()} sid {os.getsid(0)}")
while True:
    signal.pause()
