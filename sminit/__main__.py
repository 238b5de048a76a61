"""The entry point: block every signal first, then hand over to the application."""

import os
import _signal
import sys


def run() -> None:
    """Console-script entry: nothing may run before the signals are blocked."""
    # Blocked signals stay pending instead of killing or bypassing us, so a SIGTERM that
    # lands while the rest of sminit is being imported is still seen by the wait loop.
    original_mask = _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())
    from sminit.app import main

    code = main(sys.argv[1:], original_mask)
    # Nothing is buffered (logs go straight to the fd): skip the interpreter's teardown.
    os._exit(code)


if __name__ == "__main__":
    run()
