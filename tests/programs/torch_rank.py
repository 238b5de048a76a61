"""Real torchrun rank (gloo): all-reduces in a loop; SIGTERM (relayed by torchrun): save
FOLDER/rank-N with torch.save (tmp and rename), exit 0. SIGUSR1 (the warning): save FOLDER/rank-N.warn.

usage: torchrun --nproc_per_node=2 torch_rank.py FOLDER
"""

import os
import signal
import sys
import time

import torch
import torch.distributed as dist

folder = sys.argv[1]
requests: list[int] = []
for signo in (signal.SIGTERM, signal.SIGUSR1):
    signal.signal(signo, lambda signo, _frame: requests.append(signo))
dist.init_process_group("gloo")
rank = dist.get_rank()


def save(name: str, step: int) -> None:
    path = os.path.join(folder, name)
    torch.save({"rank": rank, "step": step}, path + ".tmp")
    os.replace(path + ".tmp", path)
    print(f"rank {rank} saved {name}", flush=True)


def all_reduce() -> bool:
    """One step in lockstep with the other rank; False when it failed because the other rank was
    stopped first and has exited (gloo then raises in the collective that this rank waits in,
    before this rank's own Python handler for the same relayed SIGTERM has run)."""
    try:
        dist.all_reduce(torch.ones(4))
        return True
    except RuntimeError:
        deadline = time.monotonic() + 5
        while not requests and time.monotonic() < deadline:
            time.sleep(0.01)  # the handler runs between bytecodes: it comes right after
        if not requests:
            raise
        return False


step = 0
while True:
    if not requests:
        if not all_reduce():
            continue
        step += 1
        if step == 1:
            print(f"rank {rank} ready", flush=True)  # after a step: a checkpoint then has step > 0
        time.sleep(0.01)
        continue
    if requests.pop(0) == signal.SIGUSR1:
        save(f"rank-{rank}.warn", step)
        continue
    save(f"rank-{rank}", step)
    sys.exit(0)
