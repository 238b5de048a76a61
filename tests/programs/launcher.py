"""Test job: a torchrun-like launcher. It handles SIGTERM, SIGINT, SIGHUP and SIGQUIT only (not
SIGUSR1), starts each rank in its own session, relays a stop to the ranks, waits for them and
exits 1 (torchrun's SignalException). Ranks: trainer.py --warn, checkpoint RANK_DIR/rank-N.

usage: launcher.py RANK_DIR NRANKS
"""

import os
import signal
import subprocess
import sys

folder, count = sys.argv[1], int(sys.argv[2])
trainer = os.path.join(os.path.dirname(os.path.abspath(__file__)), "trainer.py")
stopped: list[int] = []


def relay(signo: int, _frame) -> None:
    stopped.append(signo)
    for rank in ranks:
        rank.send_signal(signo)


for signo in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
    signal.signal(signo, relay)
ranks = [subprocess.Popen([sys.executable, trainer, "--warn", "--tag", f"rank{n}",
                           "--checkpoint", os.path.join(folder, f"rank-{n}")], start_new_session=True)
         for n in range(count)]
print("launcher ready", flush=True)
codes = [rank.wait() for rank in ranks]
print(f"launcher done {codes}", flush=True)
sys.exit(1 if stopped else max(codes))
