"""The user's training script under the toolkit: logs a line per step while it saves, so a dead
relay would break it (BrokenPipeError). SIGTERM: save SM_MODEL_DIR/../../checkpoints/model.ckpt."""

import logging
import os
import signal
import sys
import time

logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="script: %(message)s")
requests: list[int] = []
signal.signal(signal.SIGTERM, lambda signo, _frame: requests.append(signo))
checkpoint = os.path.join(os.environ["SM_MODEL_DIR"], "..", "checkpoints", "model.ckpt")
logging.info("ready %d", os.getpid())
sys.stdout.flush()
while not requests:
    time.sleep(0.02)
with open(checkpoint + ".tmp", "w") as handle:
    for part in range(10):
        logging.info("saving part %d", part)
        sys.stdout.flush()
        handle.write(f"part {part}\n")
        time.sleep(0.05)
os.replace(checkpoint + ".tmp", checkpoint)
logging.info("saved")
