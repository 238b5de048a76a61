# Type stub for _signal, the C module behind signal that sminit imports directly (without the
# enum wrappers, whose import costs every start about 3 ms). Same functions and constants.
from signal import *  # noqa: F403
from signal import default_int_handler as default_int_handler, struct_siginfo as struct_siginfo
