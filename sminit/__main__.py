"""The entry points (`python -m sminit`, the `sminit` script): signals blocked before anything else."""

import os
import _signal
import sys


def start(original_mask: set[int]) -> None:
    """Run sminit with every signal already blocked; original_mask is the mask sminit was given."""
    from sminit.app import main

    code = main(sys.argv[1:], original_mask)
    # Nothing is buffered (logs go straight to the fd): skip the interpreter's teardown.
    os._exit(code)


def run() -> None:
    """Block every signal, then run sminit: nothing of sminit may run before the signals are blocked."""
    # Blocked signals stay pending instead of killing or bypassing us, so a SIGTERM that
    # lands while the rest of sminit is being imported is still seen by the wait loop.
    start(_signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals()))


if __name__ == "__main__":
    run()
