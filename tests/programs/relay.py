"""Test job: the training toolkit as the PyTorch toolkit runs it (capture_error=True): the script's
stdout and stderr are pipes this process relays line by line; no SIGTERM handler; it exits with
the script's status."""

import subprocess
import sys

child = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
for line in child.stdout:
    sys.stdout.buffer.write(b"relayed: " + line)
    sys.stdout.flush()
sys.exit(child.wait())
