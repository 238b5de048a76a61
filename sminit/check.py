"""`sminit --check`: the resolved plan and every check, printed; nothing is run or written."""

from __future__ import annotations

import os
from typing import Any

from sminit.cgroup import find
from sminit.endings import size
from sminit.executable import command_hints, refusal
from sminit.gpu import closest_instance_type, gpu_report, known_instance_type
from sminit.log import plural, quote_command, write_line
from sminit.plan import Plan
from sminit.sagemaker import config_files
from sminit.signals import signal_name


def can_reap_orphans() -> bool:
    if os.getpid() == 1:
        return True
    from sminit.subreaper import become_subreaper

    try:
        become_subreaper()  # harmless here: --check exits right after and starts nothing
        return True
    except OSError:
        return False


def command_problems(plan: Plan) -> list[str]:
    """The command as exec would see it (found, executable, its #! interpreter there), then what
    would fail it at once: a CRLF #! argument, an interpreter's script missing or CRLF."""
    if plan.problem:
        return [plan.problem[1]]
    if not plan.command:
        return []
    refused = refusal(plan.command[0], plan.path)
    if refused:
        return [refused[1]]
    return command_hints(plan.command, plan.path)


TORCHRUN_SHUTDOWN_TIMEOUT = 30.0  # torchrun's --shutdown-timeout default (torch.distributed.run)
TORCHRUN_MODULES = ("torch.distributed.run", "torch.distributed.launch")


def torchrun_warning(command: list[str], grace: float) -> str | None:
    """torchrun relays a stop to its ranks and kills them its shutdown timeout later, whatever
    sminit's grace: a grace longer than that is never used by the ranks."""
    if not command:
        return None
    name = os.path.basename(command[0])
    arguments = command[1:]
    if name != "torchrun":
        module = next((arguments[i + 1] for i, word in enumerate(arguments[:-1]) if word == "-m"), None)
        if not name.startswith("python") or module not in TORCHRUN_MODULES:
            return None
    timeout = TORCHRUN_SHUTDOWN_TIMEOUT
    for index, word in enumerate(arguments):
        option, _, inline = word.partition("=")
        if option in ("--shutdown-timeout", "--shutdown_timeout"):
            value = inline or (arguments[index + 1] if index + 1 < len(arguments) else "")
            try:
                timeout = float(value)
            except ValueError:
                pass
    if grace <= timeout:
        return None
    return (f"torchrun kills its ranks {timeout:g} s after relaying a stop (--shutdown-timeout), before "
            f"sminit's grace of {grace:g} s ends: pass --shutdown-timeout {grace:g} to torchrun so a "
            "checkpoint can use the whole grace")


def resources(plan: Plan) -> dict[str, Any]:
    """What the job will have (README: Explained endings): memory and CPU limits, /dev/shm, free space."""
    memory, cpu = find("memory", plan.cgroup_dir), find("cpu")
    limit = memory.memory_limit() if memory else None
    cpus = cpu.cpu_limit() if cpu else None
    shm_dir, ml_root = plan.shm_dir, plan.ml_root
    exists = os.path.isdir(ml_root)
    return {
        "memory_limit": limit or None, "memory_limited": None if limit is None else bool(limit),
        "cpu_limit": cpus or None, "shm_dir": shm_dir, "shm_size": _space(shm_dir, total=True),
        "ml_root_exists": exists, "ml_root_free": _space(ml_root, total=False) if exists else None,
    }


def _space(path: str, total: bool) -> int | None:
    """Bytes of the filesystem holding path (its size, or what is free), from the nearest existing folder."""
    while True:
        try:
            info = os.statvfs(path)
            return info.f_frsize * (info.f_blocks if total else info.f_bavail)
        except OSError:
            parent = os.path.dirname(path.rstrip("/")) or "/"
            if parent == path:
                return None
            path = parent


def gather(plan: Plan) -> dict[str, Any]:
    problems = command_problems(plan)
    death = plan.parent_death_signal
    files, file_problems, warnings = config_files(plan.ml_root, plan.mode)
    gpus = gpu_report(plan)
    if gpus.problem:
        problems.append(gpus.problem)
    problems += file_problems + gpus.warnings
    warnings = [*plan.warnings, *warnings]
    torchrun = torchrun_warning(plan.command, plan.grace)
    if torchrun:
        warnings.append(torchrun)
    if gpus.instance_type and not known_instance_type(gpus.instance_type):
        closest = closest_instance_type(gpus.instance_type)
        typo = f"did you mean {closest}?" if closest else "a typo?"
        where = "processingjobconfig.json" if plan.mode == "processing" else "resourceconfig.json"
        warnings.append(f"unknown instance type {gpus.instance_type} in {where}: "
                        f"no GPU count is expected for it ({typo})")
    return {
        "ok": not problems,
        "mode": plan.mode,
        "local": plan.local,
        "termination_log": plan.termination_log if plan.termination_log and os.path.isfile(
            plan.termination_log) else None,
        "command": plan.command or None,
        "grace": plan.grace,
        "cleanup_grace": plan.cleanup_grace,
        "max_runtime": plan.max_runtime,
        "max_runtime_source": plan.max_runtime_source,
        "warn_before": plan.warn_before,
        "warn_signal": signal_name(plan.warn_signal),
        "rewrite": {signal_name(old): signal_name(new) if new else "0"
                    for old, new in plan.rewrite.items()},
        "success_exit": sorted(plan.success_exit),
        "parent_death_signal": signal_name(death) if death else None,
        "pid1": os.getpid() == 1,
        "subreaper": can_reap_orphans(),
        "forward": plan.forward,
        "gpus": gpus.as_dict(),
        "resources": resources(plan),
        "ml_root": plan.ml_root,
        "ml_files": files,
        "problems": problems,
        "warnings": warnings,
    }


def run_check(plan: Plan) -> int:
    report = gather(plan)
    if plan.check_json:
        import json

        write_line(1, json.dumps(report) + "\n")
    else:
        write_line(1, render(report))
    return 0 if report["ok"] else 125


FORWARD_WORDS = {
    "handlers": "the processes that handle them (--forward handlers)",
    "group": "the child's process group (--forward group)",
    "child": "the child alone (--forward child)",
}


def _shown(value: int | float | None, unit: str = "") -> str:
    if value is None:
        return "unknown"
    return size(int(value)) if unit == "bytes" else f"{value:g}{unit}"


def _ending_files(report: dict[str, Any]) -> str:
    """Where a non-zero exit will be explained besides the log."""
    files = {"train": ["output/failure"], "processing": ["output/message"]}.get(report["mode"], [])
    shown = [f"{report['ml_root'].rstrip('/')}/{name}" for name in files]
    if report["termination_log"]:
        shown.append(f"{report['termination_log']} (Kubernetes)")
    return ", ".join(shown) or "the log only"


def render(report: dict[str, Any]) -> str:
    gpus, found = report["gpus"], report["resources"]
    runtime = report["max_runtime"]
    warn, signal = report["warn_before"], report["warn_signal"]
    memory = "none" if found["memory_limited"] is False else _shown(found["memory_limit"], "bytes")
    cpus = _shown(found["cpu_limit"]) if found["cpu_limit"] else "none"
    expected = gpus["expected"]
    lines = [
        f"mode:          {report['mode']}{' (SageMaker local mode)' if report['local'] else ''}",
        f"command:       {quote_command(report['command'] or []) or '(none)'}",
        f"grace:         {report['grace']:g} s (cleanup {report['cleanup_grace']:g} s)",
        f"max runtime:   {f'{runtime:g} s from ' + str(report['max_runtime_source']) if runtime else 'none'}",
        f"warn signal:   {f'{signal} {warn:g} s before the max runtime' if warn else 'none'}",
        f"rewrites:      {', '.join(f'{a} -> {b}' for a, b in report['rewrite'].items()) or 'none'}",
        f"success exits: {', '.join(map(str, report['success_exit'])) or 'none (only 0)'}",
        f"parent death:  {report['parent_death_signal'] or 'not watched'}",
        f"signals to:    {FORWARD_WORDS[report['forward']]}",
        f"pid 1:         {'yes' if report['pid1'] else 'no'}",
        f"endings to:    {_ending_files(report)}",
        f"reaps orphans: {'yes' if report['subreaper'] else 'NO'}",
        f"gpus:          {gpus['visible']} visible, {'none' if expected is None else expected} required, "
        f"host driver {gpus['driver_version'] or 'none'}",
        f"resources:     memory limit {memory}, CPU limit {cpus}, {found['shm_dir']} "
        f"{_shown(found['shm_size'], 'bytes')}, " + (
            f"{_shown(found['ml_root_free'], 'bytes')} free under {report['ml_root']}"
            if found["ml_root_exists"] else f"{report['ml_root']} does not exist"),
        f"{report['ml_root']}: " + (
            ", ".join(f"{name} {state}" for name, state in report["ml_files"].items())
            if found["ml_root_exists"] else "does not exist (no SageMaker tree here)"),
    ]
    lines += [f"warning:       {w}" for w in report["warnings"]]
    lines += [f"problem:       {p}" for p in report["problems"]]
    if not report["problems"]:
        warned = len(report["warnings"])
        lines.append(f"no problems, {plural(warned, 'warning')}" if warned else "all checks passed")
    return "\n".join(lines) + "\n"
