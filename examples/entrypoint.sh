#!/bin/sh
# A typical shell entrypoint that starts the training script and forwards no signal itself.
# Under sminit the script still gets SIGTERM and the warn signal: sminit signals the whole
# process group. The shell must survive the warn signal (SIGUSR1 would kill it by default),
# hence the no-op trap; `exec python3 ...` (no shell left at all) is even simpler.
trap : USR1
echo "entrypoint: starting training"
python3 "$(dirname "$0")/train.py" "$@"
echo "entrypoint: training exited with $?"
