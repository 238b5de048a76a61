"""`sminit --check`: the resolved plan and every check, printed; nothing is run or written."""

from __future__ import annotations

import os
from typing import Any

from sminit.config import Config
from sminit.gpu import gpu_report
from sminit.log import Log, write_line
from sminit.plan import Plan, find_executable
from sminit.sagemaker import config_path, read_json

ML_FILES = ("resourceconfig.json", "trainingjobconfig.json", "hyperparameters.json",
            "inputdataconfig.json", "checkpointconfig.json")


class Collector(Log):
    """A Log that keeps warnings as problems instead of printing them."""

    def __init__(self) -> None:
        super().__init__("warning")
        self.lines: list[str] = []

    def emit(self, level: str, msg: str, **fields: object) -> None:
        if level in ("warning", "error"):
            self.lines.append(msg)


def can_reap_orphans() -> bool:
    if os.getpid() == 1:
        return True
    from sminit.subreaper import become_subreaper

    try:
        become_subreaper()  # harmless here: --check exits right after and starts nothing
        return True
    except OSError:
        return False


def gather(config: Config, plan: Plan, environ: dict[str, str]) -> dict[str, Any]:
    problems: list[str] = []
    if plan.problem:
        problems.append(plan.problem[1])
    elif plan.command and not find_executable(plan.command[0], environ):
        problems.append(f"command not found: {plan.command[0]}")
    collector = Collector()
    files = {}
    for name in ML_FILES:
        path = config_path(config.ml_root, name)
        before = len(collector.lines)
        value = read_json(path, collector)
        files[name] = "ok" if value is not None else ("missing" if len(collector.lines) == before else "invalid")
    requirement = config.require_gpus
    gpus = gpu_report(requirement, plan.mode, config.ml_root, environ, collector)
    if gpus.problem:
        problems.append(gpus.problem)
    problems.extend(dict.fromkeys(collector.lines))  # each file's warning once
    problems.extend(gpus.warnings)
    pid1 = os.getpid() == 1
    return {
        "ok": not problems,
        "mode": plan.mode,
        "command": plan.command or None,
        "grace": plan.grace,
        "cleanup_grace": config.cleanup_grace,
        "max_runtime": plan.max_runtime,
        "max_runtime_source": plan.max_runtime_source,
        "warn_before": config.warn_before if plan.max_runtime else None,
        "pid1": pid1,
        "subreaper": can_reap_orphans(),
        "single_child": config.single_child,
        "gpus": gpus.as_dict(),
        "ml_root": config.ml_root,
        "ml_files": files,
        "problems": problems,
    }


def run_check(config: Config, plan: Plan, environ: dict[str, str], log: Log) -> int:
    report = gather(config, plan, environ)
    if config.json:
        import json

        write_line(1, json.dumps(report) + "\n")
    else:
        write_line(1, render(report))
    return 0 if report["ok"] else 125


def render(report: dict[str, Any]) -> str:
    from sminit.app import shell_quote

    gpus = report["gpus"]
    command = " ".join(map(shell_quote, report["command"] or [])) or "(none)"
    runtime = report["max_runtime"]
    lines = [
        f"mode:          {report['mode']}",
        f"command:       {command}",
        f"grace:         {report['grace']:g} s (cleanup {report['cleanup_grace']:g} s)",
        f"max runtime:   {f'{runtime:g} s from ' + str(report['max_runtime_source']) if runtime else 'none'}",
        f"pid 1:         {'yes' if report['pid1'] else 'no'}",
        f"reaps orphans: {'yes' if report['subreaper'] else 'NO'}",
        f"gpus:          {gpus['visible']} visible, {gpus['expected'] if gpus['expected'] is not None else 'none'} "
        f"required, host driver {gpus['driver_version'] or 'none'}",
        f"{report['ml_root']}: " + ", ".join(f"{name} {state}" for name, state in report["ml_files"].items()),
    ]
    problems = report["problems"]
    lines += [f"problem:       {p}" for p in problems] or ["all checks passed"]
    return "\n".join(lines) + "\n"
