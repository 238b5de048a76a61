"""Command line and environment: accepted forms, and every usage error giving 125 with nothing run."""

from __future__ import annotations

import os
import signal

import pytest

from conftest import run_sminit
from sminit import config
from sminit.signals import parse_signal


@pytest.mark.parametrize("text, expected", [
    ("TERM", signal.SIGTERM), ("SIGTERM", signal.SIGTERM), ("sigterm", signal.SIGTERM), ("15", 15),
    ("usr1", signal.SIGUSR1), ("RTMIN", signal.SIGRTMIN), ("RTMIN+2", signal.SIGRTMIN + 2),
    ("SIGRTMAX-1", signal.SIGRTMAX - 1), ("iot", signal.SIGABRT),
])
def test_signal_names(text, expected):
    assert parse_signal(text) == expected


@pytest.mark.parametrize("text", ["", "TERMX", "99", "-1", "RTMIN+99", "1.5", "٣"])
def test_bad_signal_names(text):
    with pytest.raises(ValueError):
        parse_signal(text)


def test_environment_then_command_line():
    env = {"SMINIT_GRACE": "30", "SMINIT_CLEANUP_GRACE": "1.5", "SMINIT_SINGLE_CHILD": "On",
           "SMINIT_LOG_LEVEL": "debug", "SMINIT_LOG_FORMAT": "JSON", "SMINIT_MODE": "serve",
           "SMINIT_WARN_SIGNAL": "sigusr2", "SMINIT_MAX_RUNTIME": "1e3", "SMINIT_REQUIRE_GPUS": "none"}
    parsed = config.parse(["--grace=0", "-q", "cmd", "--grace", "5"], env)
    assert parsed.grace == 0 and parsed.cleanup_grace == 1.5 and parsed.forward == "child"
    assert parsed.log_level == "warning" and parsed.log_format == "json" and parsed.mode == "serve"
    assert parsed.warn_signal == signal.SIGUSR2
    assert parsed.max_runtime == 1000 and parsed.require_gpus == "none"
    assert parsed.command == ["cmd", "--grace", "5"]  # options end at the command


def test_parent_death_signal_from_the_option_and_the_variable():
    assert config.parse(["--parent-death-signal", "hup", "x"], {}).parent_death_signal == signal.SIGHUP
    assert config.parse(["x"], {"SMINIT_PARENT_DEATH_SIGNAL": "SIGINT"}).parent_death_signal == signal.SIGINT
    assert config.parse(["x"], {}).parent_death_signal is None


def test_double_dash_and_defaults():
    parsed = config.parse(["--", "-v"], {})
    assert parsed.command == ["-v"] and parsed.grace is None and parsed.log_level == "info"
    assert config.parse(["-t5", "x"], {}).grace == 5
    assert config.parse(["--single-child", "x"], {"SMINIT_SINGLE_CHILD": ""}).forward == "child"
    assert config.parse(["x"], {}).forward == "handlers"


@pytest.mark.parametrize("args, env, expected", [
    (["--forward", "group"], {}, "group"),
    (["--forward=CHILD"], {}, "child"),
    ([], {"SMINIT_FORWARD": "group"}, "group"),
    (["--forward", "handlers"], {"SMINIT_FORWARD": "group"}, "handlers"),  # the command line wins
    ([], {"SMINIT_SINGLE_CHILD": "1"}, "child"),
    ([], {"SMINIT_SINGLE_CHILD": "0"}, "handlers"),
    (["--forward", "group", "--single-child"], {}, "child"),  # the later option wins
    (["--single-child", "--forward", "group"], {}, "group"),
])
def test_forward_option_and_variables(args, env, expected):
    assert config.parse([*args, "x"], env).forward == expected


USAGE_ERRORS = [
    (["--grace", "abc"], {}, "--grace", "abc"),
    (["--grace", "nan"], {}, "--grace", "nan"),
    (["-t", "-1"], {}, "--grace", "-1"),
    (["--grace", "inf"], {}, "--grace", "inf"),
    (["--grace", "1e309"], {}, "--grace", "1e309"),
    (["--cleanup-grace", "x"], {}, "--cleanup-grace", "x"),
    (["--max-runtime", "soon"], {}, "--max-runtime", "soon"),
    (["--warn-before", "-5"], {}, "--warn-before", "-5"),
    (["--warn-signal", "NOPE"], {}, "--warn-signal", "NOPE"),
    (["--mode", "fast"], {}, "--mode", "fast"),
    (["--rewrite", "TERM"], {}, "--rewrite", "TERM"),
    (["-r", "TERM:BOGUS"], {}, "--rewrite", "TERM:BOGUS"),
    (["-e", "256"], {}, "--success-exit", "256"),
    (["-e", "x"], {}, "--success-exit", "x"),
    (["--require-gpus", "lots"], {}, "--require-gpus", "lots"),
    (["--parent-death-signal", "DEATH"], {}, "--parent-death-signal", "DEATH"),
    ([], {"SMINIT_PARENT_DEATH_SIGNAL": "0"}, "SMINIT_PARENT_DEATH_SIGNAL", "0"),
    (["--parent-death-signal", "KILL"], {}, "--parent-death-signal", "KILL"),
    (["--log-format", "xml"], {}, "--log-format", "xml"),
    (["--ml-root", ""], {}, "--ml-root", ""),
    (["--bogus"], {}, "--bogus", ""),
    (["--single-child=yes"], {}, "--single-child", "yes"),
    (["--forward", "tree"], {}, "--forward", "tree"),
    ([], {"SMINIT_FORWARD": "all"}, "SMINIT_FORWARD", "all"),
    ([], {"SMINIT_GRACE": "ten"}, "SMINIT_GRACE", "ten"),
    ([], {"SMINIT_CLEANUP_GRACE": "-0.5"}, "SMINIT_CLEANUP_GRACE", "-0.5"),
    ([], {"SMINIT_MAX_RUNTIME": "NaN"}, "SMINIT_MAX_RUNTIME", "NaN"),
    ([], {"SMINIT_WARN_BEFORE": " 5"}, "SMINIT_WARN_BEFORE", " 5"),
    ([], {"SMINIT_WARN_SIGNAL": "0"}, "SMINIT_WARN_SIGNAL", "0"),
    ([], {"SMINIT_MODE": "auto2"}, "SMINIT_MODE", "auto2"),
    ([], {"SMINIT_SINGLE_CHILD": "maybe"}, "SMINIT_SINGLE_CHILD", "maybe"),
    ([], {"SMINIT_REWRITE": "HUP:0,USR1"}, "SMINIT_REWRITE", "USR1"),
    ([], {"SMINIT_SUCCESS_EXIT": "1,-2"}, "SMINIT_SUCCESS_EXIT", "-2"),
    ([], {"SMINIT_REQUIRE_GPUS": "-1"}, "SMINIT_REQUIRE_GPUS", "-1"),
    ([], {"SMINIT_LOG_LEVEL": "loud"}, "SMINIT_LOG_LEVEL", "loud"),
    ([], {"SMINIT_LOG_FORMAT": ""}, "SMINIT_LOG_FORMAT", ""),
    ([], {"SMINIT_ML_ROOT": ""}, "SMINIT_ML_ROOT", ""),
    ([], {"SMINIT_TRAIN_CMD": "python 'unclosed"}, "SMINIT_TRAIN_CMD", "unclosed"),
]


@pytest.mark.parametrize("args, env, name, value", USAGE_ERRORS)
def test_usage_errors_exit_125_with_one_line_and_run_nothing(tmp_path, args, env, name, value):
    marker = tmp_path / "ran"
    command = ["train"] if "SMINIT_TRAIN_CMD" in env else ["touch", str(marker)]
    result = run_sminit([*args, "--", *command], env={**os.environ, **env})
    assert result.returncode == 125
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("[sminit] ") and name in lines[0] and value in lines[0]
    assert "Traceback" not in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize("args", [[], ["-v"], ["--grace", "5"], ["--json", "--", "true"]])
def test_missing_command_or_misplaced_option(args):
    result = run_sminit(args)
    assert result.returncode == 125
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("[sminit] ")


def test_option_missing_its_value():
    result = run_sminit(["--grace"])
    assert result.returncode == 125 and "--grace" in result.stderr


def test_help_and_version():
    result = run_sminit(["--help"])
    assert result.returncode == 0 and "usage: sminit" in result.stdout
    for option in ("--grace", "--cleanup-grace", "--max-runtime", "--rewrite", "--success-exit", "--check",
                   "--parent-death-signal", "--forward", "SMINIT_FORWARD"):
        assert option in result.stdout
    assert "child: the child alone [handlers]" in result.stdout
    assert "[110 train and processing,\n" in result.stdout
    assert "25 serve, 8 none and local mode]" in result.stdout
    assert "exiting" not in result.stdout
    for code in ("124 max runtime passed", "125 sminit's own error", "126 command cannot be executed",
                 "127 command not found"):
        assert code in " ".join(result.stdout.split())
    assert max(len(line) for line in result.stdout.splitlines()) <= 100
    result = run_sminit(["--version"])
    assert result.returncode == 0 and result.stdout.startswith("sminit ")
