#!/usr/bin/env python3
"""The full form of the reliability checks; prints the figures quoted in the README.

    python bench/reliability.py [--quick]

Needs sminit installed next to this interpreter (README) and, for the PID-1 rows, root and
unshare. The tests run the same storms in a short form (tests/test_reliability.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import storms  # noqa: E402
from sminit import config  # noqa: E402
from sminit.log import Collector  # noqa: E402
from sminit.gpu import expected_gpus  # noqa: E402
from sminit.plan import resolve  # noqa: E402
from sminit.sagemaker import max_runtime_seconds, read_json  # noqa: E402
from sminit.testing import descendant_pids  # noqa: E402

OPTIONS = ["--grace", "--cleanup-grace", "--max-runtime", "--warn-before", "--warn-signal", "--mode",
           "--ml-root", "--rewrite", "--success-exit", "--require-gpus", "--log-format",
           "--parent-death-signal"]
NASTY = ["", "nan", "NaN", "inf", "-inf", "1e309", "-1", "-0", " 5", "5 ", "1_000", "0x10", "٣", "TERM:",
         ":0", "RTMIN+99", "9" * 5000, "\u202e", "TERM:USR1:HUP", "\udcff", "0" * 4400, "1e-400", "USR1,",
         "ü" * 3000]


def random_text(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return rng.choice(NASTY)
    alphabet = "0123456789.eE+-_:, abcXYZ\tinfnaTERMUSR" + "".join(map(chr, range(0x80, 0x2000, 97)))
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))


def hostile_options(count: int, rng: random.Random) -> dict[str, int]:
    tracebacks = rejected = 0
    for _ in range(count):
        option = rng.choice(OPTIONS)
        value = random_text(rng)
        variable = "SMINIT_" + option[2:].upper().replace("-", "_")
        for argv, env in (([option, value, "true"], {}), (["true"], {variable: value.replace("\0", "")})):
            try:
                config.parse(argv, env)
            except config.UsageError as exc:
                rejected += 1
                tracebacks += "\n" in str(exc)
            except Exception:  # noqa: BLE001 - this is what the check counts
                tracebacks += 1
    return {"inputs": count * 2, "rejected": rejected, "tracebacks": tracebacks}


def hostile_end_to_end(count: int, rng: random.Random) -> dict[str, int]:
    tracebacks = started_anyway = 0
    with tempfile.TemporaryDirectory() as folder:
        for index in range(count):
            marker = Path(folder) / f"ran-{index}"
            value = random_text(rng).replace("\0", "")
            result = subprocess.run([*storms.SMINIT, rng.choice(OPTIONS), value, "--", "touch", str(marker)],
                                    capture_output=True, text=True, timeout=30)
            tracebacks += "Traceback" in result.stderr
            started_anyway += result.returncode == 125 and marker.exists()
    return {"inputs": count, "tracebacks": tracebacks, "started_on_rejection": started_anyway}


def hostile_files(count: int, rng: random.Random) -> dict[str, int]:
    tracebacks = 0
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root) / "input" / "config"
        folder.mkdir(parents=True)
        for _ in range(count):
            kind = rng.randrange(4)
            if kind == 0:
                data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 400)))
            elif kind == 1:
                depth = rng.randint(1, 100000)
                data = b"[" * depth + b"]" * depth
            elif kind == 2:
                value = rng.choice([None, True, 1, -5, 1e308, "x", [], {}, [1, "a"], {"a": {"b": []}}])
                data = json.dumps({"StoppingCondition": {"MaxRuntimeInSeconds": value},
                                   "current_instance_type": value}).encode()
            else:
                data = json.dumps(rng.choice([[], "s", 3, None, {"StoppingCondition": []}])).encode()
            for name in ("trainingjobconfig.json", "resourceconfig.json"):
                (folder / name).write_bytes(data)
            try:
                log = Collector()
                path = str(folder / "trainingjobconfig.json")
                max_runtime_seconds(read_json(path, log), path, log)
                variables = {"SMINIT_ML_ROOT": root}
                plan = resolve(config.parse(["--mode", "train", "--", "true"], variables), variables)
                expected_gpus("auto", "train", plan.instance_type)
            except Exception:  # noqa: BLE001
                tracebacks += 1
    return {"inputs": count, "tracebacks": tracebacks}


def leftover_processes() -> int:
    """Processes that anything here started and that still run: reparented to us as subreaper."""
    return len(descendant_pids(os.getpid()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    from sminit.subreaper import become_subreaper

    become_subreaper()  # so that anything leaked would show up below as ours
    rng = random.Random(20261128)
    pid1_modes = [False, True] if os.geteuid() == 0 else [False]
    seconds, orphans = (2, 3000) if args.quick else (10, 20000)
    rows = []
    for pid1 in pid1_modes:
        where = "PID 1" if pid1 else "subreaper"
        started = time.monotonic()
        result = storms.signal_storm(seconds=seconds, senders=3, pid1=pid1)
        took = time.monotonic() - started
        missing = len(result["standard_kinds_missing"])
        rows.append(f"| signal storm, {seconds} s, 3 senders, {where} | {result['signals_sent']:,} signals "
                    f"sent; real-time: {result['real_time_sent']:,} sent, {result['real_time_delivered']:,} "
                    f"delivered; standard kinds missing: {missing}; final SIGTERM delivered: "
                    f"{result['term_delivered']}; RSS {result['rss_kib_before']} → {result['rss_kib_after']} "
                    f"KiB; exit {result['exit']}; tracebacks: {result['tracebacks']} | {took:.0f} s |")
        started = time.monotonic()
        result = storms.orphan_storm(total=orphans, burst=500, pid1=pid1)
        rows.append(f"| orphan storm, {where} | {result['orphans']:,} orphans in bursts of 500; "
                    "zombies left: "
                    f"{result['zombies_left']}; peak zombies seen: {result['peak_zombies_seen']}; RSS "
                    f"{result['rss_kib_before']} → {result['rss_kib_after']} KiB; exit {result['exit']}; "
                    f"tracebacks: {result['tracebacks']} | {time.monotonic() - started:.0f} s |")
    started = time.monotonic()
    result = hostile_options(2000 if args.quick else 20000, rng)
    took = time.monotonic() - started
    rows.append(f"| options and variables, in process | {result['inputs']:,} inputs, {result['rejected']:,} "
                f"rejected with one line; tracebacks: {result['tracebacks']} | {took:.0f} s |")
    started = time.monotonic()
    result = hostile_end_to_end(50 if args.quick else 300, rng)
    took = time.monotonic() - started
    rows.append(f"| options, end to end | {result['inputs']:,} runs; command started on a rejection: "
                f"{result['started_on_rejection']}; tracebacks: {result['tracebacks']} | {took:.0f} s |")
    started = time.monotonic()
    result = hostile_files(500 if args.quick else 5000, rng)
    rows.append(f"| config files (bytes, deep nesting, wrong types) | {result['inputs']:,} files; "
                "tracebacks: "
                f"{result['tracebacks']} | {time.monotonic() - started:.0f} s |")
    print(f"Run on {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs{' (quick)' if args.quick else ''}; "
          f"processes left behind afterwards: {leftover_processes()}\n")
    print("| check | result | time |\n|---|---|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
