#!/bin/sh
# A typical shell entrypoint that starts the training script and forwards no signal itself.
# Under sminit the script still gets SIGTERM and the warn signal: sminit delivers each to the
# process that handles it (python), and the shell, which handles neither, waits for python and
# exits with its status. The no-op trap is only needed with `--forward group`, where the whole
# group gets the warn signal (SIGUSR1 would kill the shell by default).
trap : USR1
echo "entrypoint: starting training"
python3 "$(dirname "$0")/train.py" "$@"
echo "entrypoint: training exited with $?"
