"""Real PyTorch job: a model trained from a DataLoader with 2 worker processes (fork start, as on
Linux by default). SIGTERM or SIGINT: finish the step, save a checkpoint with torch.save (tmp and
rename), exit 0. SIGUSR1 (the warning): save CHECKPOINT.warn and go on.

usage: torch_train.py CHECKPOINT
"""

import os
import signal
import sys

import torch
from torch.utils.data import DataLoader, Dataset

checkpoint = sys.argv[1]
requests: list[int] = []
for signo in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
    signal.signal(signo, lambda signo, _frame: requests.append(signo))


class Numbers(Dataset):
    def __len__(self) -> int:
        return 1_000_000

    def __getitem__(self, index: int):
        x = torch.full((8,), float(index % 7))
        return x, x.sum()


def save(path: str, model: torch.nn.Module, step: int) -> None:
    print(f"saving {os.path.basename(path)} at step {step}", flush=True)
    torch.save({"step": step, "model": model.state_dict(), "padding": torch.zeros(1 << 20)}, path + ".tmp")
    os.replace(path + ".tmp", path)
    print(f"saved {os.path.basename(path)}", flush=True)


model = torch.nn.Linear(8, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
loader = DataLoader(Numbers(), batch_size=16, num_workers=2)
batches = iter(loader)  # the workers start here
print(f"training with workers {sorted(worker.pid for worker in batches._workers)}", flush=True)
for step, (x, y) in enumerate(batches):
    loss = ((model(x).squeeze(1) - y) ** 2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    while requests:
        if requests.pop(0) == signal.SIGUSR1:
            save(checkpoint + ".warn", model, step)
            continue
        save(checkpoint, model, step)
        print("done", flush=True)
        sys.exit(0)
