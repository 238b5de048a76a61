#!/usr/bin/env python3
"""Benchmark sminit side by side with tini, dumb-init and catatonit, in one interleaved run.

Needs (installs nothing itself): sminit installed next to this interpreter (README), and
    apt-get install -y tini dumb-init catatonit
A missing init is skipped with a note. Run as root for the PID-1 reaping metric (unshare).

    python bench/run.py [--quick] [--json FILE] [--plot FILE.png]

Prints a markdown table of medians and p95 with ratios to tini. Absolute times on shared
machines are noise; the ratios within one run are the result.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from sminit.testing import children, zombie_children


# The child for the forward-latency metric: waits for SIGUSR1 with sigwaitinfo and reports the
# CLOCK_MONOTONIC time at which it got it.
RECEIVER = (
    "import os, signal, time\n"
    "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})\n"
    "os.write(1, b'ready\\n')\n"
    "while True:\n"
    "    signal.sigwaitinfo({signal.SIGUSR1})\n"
    "    os.write(1, b'%d\\n' % time.clock_gettime_ns(time.CLOCK_MONOTONIC))\n"
)
# The child for the reaping metric: bursts of orphans (double fork), then waits for stdin.
ORPHANS = (
    "import os, sys\n"
    "bursts, size = int(sys.argv[1]), int(sys.argv[2])\n"
    "for _ in range(bursts):\n"
    "    middles = []\n"
    "    for _ in range(size):\n"
    "        pid = os.fork()\n"
    "        if pid == 0:\n"
    "            if os.fork() == 0:\n"
    "                os._exit(0)\n"
    "            os._exit(0)\n"
    "        middles.append(pid)\n"
    "    for pid in middles:\n"
    "        os.waitpid(pid, 0)\n"
    "print('done', flush=True)\n"
    "sys.stdin.readline()\n"
)


def find_inits() -> dict[str, list[str]]:
    sminit = shutil.which("sminit", path=os.path.dirname(sys.executable)) or shutil.which("sminit")
    candidates = {
        "sminit": [sminit, "--"] if sminit else None,
        "tini": ["tini", "-s", "--"],
        "dumb-init": ["dumb-init"],
        "catatonit": ["catatonit", "--"],
    }
    inits = {}
    for name, command in candidates.items():
        if command and shutil.which(command[0]):
            inits[name] = command
        else:
            print(f"note: {name} not found, skipped "
                  f"({'pip install . (README)' if name == 'sminit' else 'apt-get install -y ' + name})")
    return inits


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def first_child(pid: int) -> int:
    """Wait until pid has a child; return the child's pid."""
    deadline = time.monotonic() + 10
    while not children(pid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"process {pid} started no child")
        time.sleep(0.001)
    return children(pid)[0]


class Running:
    """One init with a child, started for a metric, stopped by pid."""

    def __init__(self, command: list[str], child: list[str], pin: int | None = None) -> None:
        def setup() -> None:
            if pin is not None:
                os.sched_setaffinity(0, {pin})

        self.proc = subprocess.Popen([*command, *child], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, preexec_fn=setup)
        self.pid = self.proc.pid

    def wait_for_child(self) -> int:
        return first_child(self.pid)

    def status(self) -> dict[str, int]:
        with open(f"/proc/{self.pid}/status") as handle:
            fields = dict(line.split(":", 1) for line in handle)
        return {key: int(fields[key].split()[0]) for key in
                ("VmRSS", "RssAnon", "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")}

    def stop(self) -> None:
        if self.proc.poll() is None:
            for child in children(self.pid):
                try:
                    os.kill(child, signal.SIGKILL)
                except OSError:
                    pass
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            stream.close()


def timed_run(argv: list[str]) -> float:
    quiet = [(os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=quiet)
    os.waitpid(pid, 0)
    return time.perf_counter() - start


def metric_startup(inits: dict[str, list[str]], rounds: int) -> dict[str, list[float]]:
    true = shutil.which("true")
    commands = {name: [shutil.which(c[0]), *c[1:], true] for name, c in inits.items()}
    commands["bare /bin/true"] = [true]
    commands["python -c pass"] = [sys.executable, "-c", "pass"]
    for argv in commands.values():
        timed_run(argv)  # warm the page cache and the bytecode cache
    results: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, argv in commands.items():  # interleaved: drift hits all alike
            results[name].append(timed_run(argv) * 1000)
    return results


def metric_memory_and_idle(inits: dict[str, list[str]], idle_seconds: float) -> tuple[dict, dict]:
    running = {name: Running(command, ["sleep", "1000"]) for name, command in inits.items()}
    reference = Running([sys.executable, "-c", "import signal; signal.pause()"], [])
    try:
        for run in running.values():
            run.wait_for_child()
        time.sleep(0.5)  # let every init settle in its wait
        memory = {name: run.status() for name, run in running.items()}
        memory["python (bare interpreter)"] = reference.status()
        before = {name: run.status() for name, run in running.items()}
        time.sleep(idle_seconds)  # the measurement: nothing happens for this long
        after = {name: run.status() for name, run in running.items()}
    finally:
        for run in [*running.values(), reference]:
            run.stop()
    idle = {name: (after[name]["voluntary_ctxt_switches"] + after[name]["nonvoluntary_ctxt_switches"])
            - (before[name]["voluntary_ctxt_switches"] + before[name]["nonvoluntary_ctxt_switches"])
            for name in running}
    return memory, idle


def metric_forward(inits: dict[str, list[str]], rounds: int, pin: int | None) -> dict[str, list[float]]:
    if pin is not None:
        os.sched_setaffinity(0, {pin})
    running = {name: Running(command, [sys.executable, "-c", RECEIVER], pin) for name, command in inits.items()}
    results: dict[str, list[float]] = {name: [] for name in inits}
    try:
        for run in running.values():
            assert run.proc.stdout.readline() == b"ready\n"
        for _ in range(rounds):
            for name, run in running.items():
                sent = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
                os.kill(run.pid, signal.SIGUSR1)
                received = int(run.proc.stdout.readline())
                results[name].append((received - sent) / 1000)
    finally:
        for run in running.values():
            run.stop()
        if pin is not None:
            os.sched_setaffinity(0, range(os.cpu_count() or 1))
    return results


def metric_stop(inits: dict[str, list[str]], rounds: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {name: [] for name in inits}
    for _ in range(rounds):
        for name, command in inits.items():
            run = Running(command, ["sleep", "1000"])
            try:
                run.wait_for_child()
                time.sleep(0.02)  # the init is in its wait loop
                start = time.perf_counter()
                os.kill(run.pid, signal.SIGTERM)
                run.proc.wait()
                results[name].append((time.perf_counter() - start) * 1000)
            finally:
                run.stop()
    return results


def _cpu_ns(pid: int) -> int:
    """Nanoseconds on a CPU, user and kernel (/proc/PID/schedstat: far finer than utime's ticks)."""
    with open(f"/proc/{pid}/schedstat") as handle:
        return int(handle.read().split()[0])


def metric_reaping(inits: dict[str, list[str]], bursts: int, size: int) -> dict[str, dict[str, float]]:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        print("note: reaping as PID 1 needs root and unshare: skipped")
        return {}
    results = {}
    for name, command in inits.items():
        run = Running(["unshare", "--pid", "--fork", "--mount-proc", *command],
                      [sys.executable, "-c", ORPHANS, str(bursts), str(size)])
        try:
            init_pid = run.wait_for_child()  # unshare's child: the init, PID 1 inside
            first_child(init_pid)  # and the init has started the orphan maker
            base = _cpu_ns(init_pid)
            peak = [0]
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    peak[0] = max(peak[0], zombie_children(init_pid))

            sampler = threading.Thread(target=sample)
            sampler.start()
            assert run.proc.stdout.readline() == b"done\n"
            deadline = time.monotonic() + 30
            while zombie_children(init_pid) and time.monotonic() < deadline:
                time.sleep(0.01)
            done.set()
            sampler.join()
            spent = _cpu_ns(init_pid) - base
            results[name] = {"cpu_us_per_orphan": spent / 1000 / (bursts * size),
                             "peak_zombies": peak[0], "left_zombies": zombie_children(init_pid)}
            run.proc.stdin.write(b"\n")
            run.proc.stdin.flush()
            run.proc.wait(timeout=30)
        finally:
            run.stop()
    return results


def metric_escalation(inits: dict[str, list[str]], rounds: int) -> list[float]:
    if "sminit" not in inits:
        return []
    errors = []
    for _ in range(rounds):
        run = Running([*inits["sminit"][:-1], "--grace", "1", "--"], ["sh", "-c", "trap '' TERM; sleep 1000"])
        try:
            run.wait_for_child()
            time.sleep(0.05)
            start = time.perf_counter()
            os.kill(run.pid, signal.SIGTERM)
            run.proc.wait()
            errors.append((time.perf_counter() - start - 1.0) * 1000)
        finally:
            run.stop()
    return errors


def table(title: str, unit: str, data: dict[str, list[float]], p: float = 95) -> str:
    tini = statistics.median(data["tini"]) if data.get("tini") else None
    rows = [f"### {title}", "", f"| | median ({unit}) | p{p:g} ({unit}) | median / tini |", "|---|---:|---:|---:|"]
    for name, values in data.items():
        median = statistics.median(values)
        ratio = f"{median / tini:.2f}" if tini else "–"
        rows.append(f"| {name} | {median:.3f} | {percentile(values, p):.3f} | {ratio} |")
    return "\n".join(rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds: under a minute")
    parser.add_argument("--json", help="also write the raw numbers here")
    parser.add_argument("--plot", help="write a PNG of the forward-latency distributions (needs matplotlib)")
    args = parser.parse_args()
    inits = find_inits()
    if not inits:
        return 1
    quick = args.quick
    out: list[str] = [
        f"Run on {time.strftime('%Y-%m-%d')}: {platform.platform()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, inits: {', '.join(inits)}" + (" (quick)" if quick else ""), "",
    ]
    raw: dict[str, object] = {}
    print("start-up ...", file=sys.stderr)
    raw["startup_ms"] = startup = metric_startup(inits, 15 if quick else 60)
    out.append(table("Start-up: `INIT -- /bin/true`", "ms", startup))
    print("memory and idle wake-ups ...", file=sys.stderr)
    memory, idle = metric_memory_and_idle(inits, 2 if quick else 5)
    raw["memory_kib"], raw["idle_switches"] = memory, idle
    out += ["### Memory while the child sleeps, and idle wake-ups", "",
            f"| | VmRSS (KiB) | RssAnon (KiB) | context switches in {2 if quick else 5} s idle |", "|---|---:|---:|---:|"]
    out += [f"| {name} | {m['VmRSS']} | {m['RssAnon']} | {idle.get(name, '–')} |" for name, m in memory.items()]
    out.append("")
    print("forward latency ...", file=sys.stderr)
    rounds = 200 if quick else 2000
    raw["forward_us"] = forward = metric_forward(inits, rounds, None)
    raw["forward_pinned_us"] = pinned = metric_forward(inits, rounds, 0)
    out.append(table("Forward latency: `kill(init, SIGUSR1)` to the child's `sigwaitinfo`", "µs", forward, 99))
    out.append(table("Forward latency, everything on one CPU", "µs", pinned, 99))
    print("stop latency ...", file=sys.stderr)
    raw["stop_ms"] = stop = metric_stop(inits, 10 if quick else 40)
    out.append(table("Stop latency: `kill(init, SIGTERM)` to the init's exit, child exits at once", "ms", stop))
    print("reaping ...", file=sys.stderr)
    bursts, size = (4, 250) if quick else (10, 500)
    raw["reaping"] = reaping = metric_reaping(inits, bursts, size)
    if reaping:
        tini = reaping.get("tini", {}).get("cpu_us_per_orphan")
        out += [f"### Reaping as PID 1: {bursts} bursts of {size} orphans", "",
                "| | CPU per orphan (µs) | / tini | peak zombies seen | zombies left |", "|---|---:|---:|---:|---:|"]
        out += [f"| {name} | {r['cpu_us_per_orphan']:.1f} | "
                f"{r['cpu_us_per_orphan'] / tini:.2f} | {r['peak_zombies']} | {r['left_zombies']} |"
                if tini else f"| {name} | {r['cpu_us_per_orphan']:.1f} | – | {r['peak_zombies']} | {r['left_zombies']} |"
                for name, r in reaping.items()]
        out.append("")
    print("escalation ...", file=sys.stderr)
    raw["escalation_error_ms"] = errors = metric_escalation(inits, 3 if quick else 10)
    if errors:
        out += ["### Escalation accuracy (sminit, `--grace 1`, child ignores SIGTERM)", "",
                f"SIGKILL came {statistics.median(errors):.1f} ms late (median), {max(errors):.1f} ms at worst, "
                f"over {len(errors)} runs.", ""]
    print("\n".join(out))
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=1))
    if args.plot:
        plot(forward, pinned, args.plot)
    return 0


def plot(forward: dict[str, list[float]], pinned: dict[str, list[float]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for axis, data, title in ((axes[0], forward, "all CPUs"), (axes[1], pinned, "pinned to one CPU")):
        for name, values in data.items():
            ordered = sorted(values)
            axis.plot(ordered, [i / len(ordered) for i in range(len(ordered))], label=name)
        axis.set_xscale("log")
        axis.set_xlabel("kill(init, SIGUSR1) to child, µs")
        axis.set_title(f"Forward latency, {title}")
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("fraction of signals")
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
