"""The command line and SMINIT_* environment: parsed into a Config, or one UsageError."""

from __future__ import annotations

from sminit import __version__
from sminit.signals import CATCHABLE, parse_signal

USAGE = """\
usage: sminit [OPTIONS] [--] COMMAND [ARG...]
       sminit [OPTIONS] [--] train|serve
       sminit --check [--json] [OPTIONS] [-- COMMAND [ARG...]]
       sminit --version | --help

Runs COMMAND as a child in its own process group, delivers each signal to the
processes of the job that handle it, reaps zombies, and stops the tree with a
grace period before SIGKILL.

options (each also read from the environment variable shown; default in brackets):
  -t, --grace SECONDS            stop signal to SIGKILL          SMINIT_GRACE
                                 [110 train and processing,
                                 25 serve, 8 none and local mode]
      --cleanup-grace SECONDS    leftovers after the child       SMINIT_CLEANUP_GRACE
                                 exits: SIGTERM to SIGKILL [5]
      --max-runtime SECONDS      local deadline, 0 = none        SMINIT_MAX_RUNTIME
                                 [train, processing: the job's
                                 MaxRuntimeInSeconds; else none]
      --warn-before SECONDS      warn signal this long before    SMINIT_WARN_BEFORE
                                 the deadline [off]
      --warn-signal SIG          the warn signal [USR1]          SMINIT_WARN_SIGNAL
      --mode MODE                train, serve, processing, none, SMINIT_MODE
                                 auto [auto]
      --ml-root PATH             the SageMaker tree [/opt/ml]    SMINIT_ML_ROOT
      --forward WHERE            handlers: the first process in  SMINIT_FORWARD
                                 each line of descent that
                                 handles the signal; group: the
                                 child's process group (tini -g);
                                 child: the child alone [handlers]
      --single-child             the same as --forward child     SMINIT_SINGLE_CHILD
  -r, --rewrite FROM:TO          deliver FROM as TO; TO 0 drops  SMINIT_REWRITE
  -e, --success-exit CODE        report status CODE as 0; 128+S: SMINIT_SUCCESS_EXIT
                                 the child killed by signal S
      --parent-death-signal SIG  act on SIG when the parent dies SMINIT_PARENT_DEATH_SIGNAL
      --require-gpus N|auto|none NVIDIA check before start [auto] SMINIT_REQUIRE_GPUS
  -v, --verbose / -q, --quiet    log level debug / warning       SMINIT_LOG_LEVEL
      --log-format text|json     log line format [text]          SMINIT_LOG_FORMAT
      --check [--json]           print the plan and checks, run nothing
      --version / -h, --help

exit status: the child's (128+S if killed by signal S), 0 for a --success-exit code,
124 max runtime passed, 125 sminit's own error (usage, configuration, GPU check,
failed --check), 126 command cannot be executed, 127 command not found.
"""

LOG_LEVELS = ("debug", "info", "warning", "error")
MODES = ("auto", "train", "serve", "processing", "none")
FORWARDS = ("handlers", "group", "child")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


class UsageError(Exception):
    """Bad input: reported as one line, exit 125, nothing started."""


class Config:
    """Everything the command line and the environment decide, before any file is read."""

    command: list[str]
    grace: float | None = None  # None: the mode's default
    cleanup_grace: float = 5.0
    max_runtime: float | None = None  # None: the mode's source; 0: no limit
    warn_before: float | None = None
    warn_signal: int = 10  # SIGUSR1
    mode: str = "auto"
    ml_root: str = "/opt/ml"
    forward: str = "handlers"  # where forwarded signals go: "handlers", "group" or "child"
    rewrite: dict[int, int]
    success_exit: set[int]
    parent_death_signal: int | None = None
    require_gpus: str = "auto"  # "auto", "none" or a count as digits
    log_level: str = "info"
    log_format: str = "text"
    check: bool = False
    json: bool = False
    action: str | None = None  # "help" or "version": print and exit 0

    def __init__(self) -> None:
        self.command = []
        self.rewrite = {}
        self.success_exit = set()


def _bad(source: str, value: str, expected: str) -> UsageError:
    shown = value if len(value) <= 80 else value[:77] + "..."
    return UsageError(f"invalid value for {source}: {shown!r} (expected {expected})")


_INFINITY = float("inf")


def _duration(value: str, source: str) -> float:
    try:
        if value.strip() != value or "_" in value:
            raise ValueError(value)
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    # Not math.isfinite: math is a shared library whose loading costs every start more than this.
    if seconds != seconds or seconds == _INFINITY or seconds < 0:  # NaN is the one value unequal to itself
        raise _bad(source, value, "finite, non-negative seconds")
    return seconds


def _signal_value(value: str, source: str, allow_zero: bool = False) -> int:
    try:
        return parse_signal(value, allow_zero)
    except ValueError:
        raise _bad(source, value, "a signal name or number") from None


def _catchable_signal(value: str, source: str) -> int:
    """A signal sminit itself can receive and act on: never SIGKILL or SIGSTOP."""
    signo = _signal_value(value, source)
    if signo not in CATCHABLE:
        raise _bad(source, value, "a signal sminit can catch, not SIGKILL or SIGSTOP")
    return signo


def _rewrite(value: str, source: str) -> tuple[int, int]:
    old, sep, new = value.partition(":")
    try:
        if not sep:
            raise ValueError(value)
        return parse_signal(old), parse_signal(new, allow_zero=True)
    except ValueError:
        raise _bad(source, value, "FROM:TO, two signal names or numbers, TO may be 0") from None


def _exit_code(value: str, source: str) -> int:
    if not (value.isdigit() and value.isascii() and len(value) <= 3 and int(value) <= 255):
        raise _bad(source, value, "an exit code from 0 to 255")
    return int(value)


def _choice(choices: tuple[str, ...]):
    def parse(value: str, source: str) -> str:
        if value.lower() not in choices:
            raise _bad(source, value, " or ".join(choices))
        return value.lower()

    return parse


def _gpus(value: str, source: str) -> str:
    if value.lower() in ("auto", "none"):
        return value.lower()
    if value.isdigit() and value.isascii() and len(value) <= 4:
        return str(int(value))
    raise _bad(source, value, "a GPU count, auto or none")


def _path(value: str, source: str) -> str:
    if not value or "\0" in value:
        raise _bad(source, value, "a path")
    return value


def _boolean(value: str, source: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise _bad(source, value, "1/true/yes/on or 0/false/no/off")


# long name -> (short name, attribute, value parser or None for a flag, repeatable, variable)
_OPTIONS = {
    "--grace": ("-t", "grace", _duration, False, "SMINIT_GRACE"),
    "--cleanup-grace": (None, "cleanup_grace", _duration, False, "SMINIT_CLEANUP_GRACE"),
    "--max-runtime": (None, "max_runtime", _duration, False, "SMINIT_MAX_RUNTIME"),
    "--warn-before": (None, "warn_before", _duration, False, "SMINIT_WARN_BEFORE"),
    "--warn-signal": (None, "warn_signal", _signal_value, False, "SMINIT_WARN_SIGNAL"),
    "--mode": (None, "mode", _choice(MODES), False, "SMINIT_MODE"),
    "--ml-root": (None, "ml_root", _path, False, "SMINIT_ML_ROOT"),
    "--single-child": (None, "forward", None, False, "SMINIT_SINGLE_CHILD"),
    "--forward": (None, "forward", _choice(FORWARDS), False, "SMINIT_FORWARD"),
    "--rewrite": ("-r", "rewrite", _rewrite, True, "SMINIT_REWRITE"),
    "--success-exit": ("-e", "success_exit", _exit_code, True, "SMINIT_SUCCESS_EXIT"),
    "--parent-death-signal": (None, "parent_death_signal", _catchable_signal, False,
                              "SMINIT_PARENT_DEATH_SIGNAL"),
    "--require-gpus": (None, "require_gpus", _gpus, False, "SMINIT_REQUIRE_GPUS"),
    "--log-format": (None, "log_format", _choice(("text", "json")), False, "SMINIT_LOG_FORMAT"),
    "--check": (None, "check", None, False, None),
    "--json": (None, "json", None, False, None),
}
_SHORT = {spec[0]: name for name, spec in _OPTIONS.items() if spec[0]}
_ACTIONS = {"--help": "help", "-h": "help", "--version": "version"}
# What a flag sets its attribute to (others set True); --single-child is --forward child.
_FLAG_VALUES: dict[str, object] = {"--single-child": "child"}
_LEVEL_FLAGS = {"-v": "debug", "--verbose": "debug", "-q": "warning", "--quiet": "warning"}


def _store(config: Config, attr: str, value: object, fresh: set[str]) -> None:
    """Set one attribute; a repeatable one starts afresh at its first use in each source."""
    if attr == "rewrite" or attr == "success_exit":
        collection = getattr(config, attr)
        if attr not in fresh:
            fresh.add(attr)
            collection.clear()
        if attr == "rewrite":
            collection.update([value])
        else:
            collection.add(value)
    else:
        setattr(config, attr, value)


def _from_environment(config: Config, environ: dict[str, str]) -> None:
    level = environ.get("SMINIT_LOG_LEVEL")
    if level is not None:
        config.log_level = _choice(LOG_LEVELS)(level, "SMINIT_LOG_LEVEL")
    fresh: set[str] = set()
    for name, (_short, attr, parse, repeatable, variable) in _OPTIONS.items():
        raw = environ.get(variable) if variable else None
        if raw is None or variable is None:
            continue
        if parse is None:  # a flag (--single-child): false leaves the attribute as it is
            if _boolean(raw, variable):
                setattr(config, attr, _FLAG_VALUES.get(name, True))
        elif repeatable:
            for item in raw.split(","):
                if item.strip():
                    _store(config, attr, parse(item.strip(), variable), fresh)
        else:
            setattr(config, attr, parse(raw, variable))


def _split(arg: str) -> tuple[str, str, str]:
    """An option word as (long name, "=" if a value was joined, the joined value): --grace=3, -t3."""
    name, sep, inline = arg.partition("=") if arg.startswith("--") else (arg[:2], "", arg[2:])
    return _SHORT.get(name, name), sep, inline


def parse(argv: list[str], environ: dict[str, str]) -> Config:
    """Build the Config: environment first, then the command line on top of it."""
    config = Config()
    _from_environment(config, environ)
    fresh: set[str] = set()
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            index -= 1
            break
        if arg in _ACTIONS:
            config.action = _ACTIONS[arg]
            return config
        if arg in _LEVEL_FLAGS:
            config.log_level = _LEVEL_FLAGS[arg]
            continue
        name, sep, inline = _split(arg)
        if name not in _OPTIONS:
            raise UsageError(f"unknown option: {arg!r} (see sminit --help)")
        _short, attr, parse_value, _repeatable, _variable = _OPTIONS[name]
        if parse_value is None:
            if sep or inline:
                raise UsageError(f"option {name} takes no value: {arg!r}")
            setattr(config, attr, _FLAG_VALUES.get(name, True))
            continue
        if sep or inline:
            value = inline
        elif index < len(argv):
            value = argv[index]
            index += 1
        else:
            raise UsageError(f"option {name} needs a value")
        _store(config, attr, parse_value(value, name), fresh)
    config.command = argv[index:]
    if config.json and not config.check:
        raise UsageError("option --json needs --check")
    if not config.command and not config.check:
        raise UsageError("no command given (usage: sminit [OPTIONS] [--] COMMAND [ARG...])")
    return config


def json_wanted(argv: list[str], environ: dict[str, str]) -> tuple[bool, bool]:
    """(--check --json, JSON logs) as asked for, read tolerantly: for a usage error, which form
    its one line must take even when the rest of the command line did not parse."""
    check = report = False
    log_format = environ.get("SMINIT_LOG_FORMAT", "")
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break
        name, sep, inline = _split(arg)
        check, report = check or name == "--check", report or name == "--json"
        if name in _OPTIONS and _OPTIONS[name][2] is not None and not (sep or inline):
            value = argv[index] if index < len(argv) else ""
            index += 1
        else:
            value = inline
        if name == "--log-format":
            log_format = value
    return check and report, log_format.strip() == "json"


def version_text() -> str:
    return f"sminit {__version__}\n"
