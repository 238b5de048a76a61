#!/usr/bin/env python3
"""Benchmark sminit side by side with tini, dumb-init, catatonit and the floor (the smallest
correct Python init, bench/floor.py under `python -I -S`), in one interleaved run.

Needs (installs nothing itself): sminit installed next to this interpreter (README), psutil, and
    apt-get install -y tini dumb-init catatonit
A missing init is skipped with a note. Run as root for the PID-1 rows (unshare).

    python bench/run.py [--quick] [--json FILE] [--plot FILE.png] [--compare NAME=COMMAND]
    python bench/run.py --from-json FILE --plot FILE.png      (redraw the figure, measure nothing)

Prints markdown tables of medians with ratios to tini (and, for start-up, to the floor).
Absolute times on shared machines are noise; the ratios within one run are the result.
"""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sminit.testing import PID_NAMESPACE, first_child, kill_tree, zombie_children

FLOOR = Path(__file__).with_name("floor.py")
UNSHARE = PID_NAMESPACE
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
# The same with a Python handler (SigCgt: what most training scripts do), for the same metric.
CATCHER = (
    "import os, signal, time\n"
    "now = time.clock_gettime_ns\n"
    "signal.signal(signal.SIGUSR1, lambda *a: os.write(1, b'%d\\n' % now(time.CLOCK_MONOTONIC)))\n"
    "os.write(1, b'ready\\n')\n"
    "while True:\n"
    "    signal.pause()\n"
)
# The job for the delivery metric: a tree of N processes with one SIGTERM handler (it blocks the
# signal and waits for it with sigwaitinfo), either the main child itself ("top") or below a main
# child that handles nothing ("below", as behind the training toolkit); the rest are `sleep`s.
TREE = (
    "import os, signal, subprocess, sys, time\n"
    "size, shape = int(sys.argv[1]), sys.argv[2]\n"
    "def receive():\n"
    "    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})\n"
    "    os.write(1, b'ready\\n')\n"
    "    signal.sigwaitinfo({signal.SIGTERM})\n"
    "    os.write(1, b'%d\\n' % time.clock_gettime_ns(time.CLOCK_MONOTONIC))\n"
    "    signal.pause()\n"
    "others = size - (1 if shape == 'top' else 2)\n"
    "for _ in range(others):\n"
    "    subprocess.Popen(['sleep', '1000'])\n"
    "if shape == 'top':\n"
    "    receive()\n"
    "if os.fork() == 0:\n"
    "    receive()\n"
    "signal.pause()\n"
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


def find_inits(compare: list[str]) -> dict[str, list[str]]:
    sminit = shutil.which("sminit", path=os.path.dirname(sys.executable)) or shutil.which("sminit")
    candidates = {
        "sminit": [sminit, "--"] if sminit else None,
        "floor": [sys.executable, "-I", "-S", str(FLOOR), "--"],
        "tini": ["tini", "-s", "--"],
        "dumb-init": ["dumb-init"],
        "catatonit": ["catatonit", "--"],
    }
    if sminit and importlib.util.find_spec("prctl") is not None:
        candidates["sminit without python-prctl"] = [_without_prctl(sminit), "--"]
    elif sminit:
        print("note: python-prctl is not installed here: pip install '.[prctl]' to measure both installs")
    for item in compare:  # another sminit, say the last release, measured in the same run
        name, _, path = item.partition("=")
        candidates[name] = [path, "--"]
    inits = {}
    for name, command in candidates.items():
        if command and shutil.which(command[0]):
            inits[name] = [shutil.which(command[0]) or command[0], *command[1:]]
        else:
            print(f"note: {name} not found, skipped "
                  f"({'pip install . (README)' if name == 'sminit' else 'apt-get install -y ' + name})")
    return inits


def _without_prctl(script: str) -> str:
    """The installed sminit script as it runs where the prctl extra is not installed: the same
    interpreter and code, with `import prctl` failing (a None entry in sys.modules: an
    ImportError at once, a little cheaper than the path search of a module that is not there)."""
    lines = Path(script).read_text().splitlines(keepends=True)
    folder = Path(tempfile.mkdtemp(prefix="sminit-bench-"))
    atexit.register(shutil.rmtree, folder, True)
    copy = folder / "sminit"
    copy.write_text(lines[0] + "import sys; sys.modules['prctl'] = None  # noqa\n" + "".join(lines[1:]))
    copy.chmod(0o755)
    return str(copy)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


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
            kill_tree(self.pid)
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            stream.close()


def timed_run(argv: list[str]) -> float:
    quiet = [(os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=quiet)
    os.waitpid(pid, 0)
    return time.perf_counter() - start


def metric_startup(inits: dict[str, list[str]], rounds: int, pid1: bool) -> dict[str, list[float]]:
    """Wall time of `INIT -- /bin/true`, posix_spawn to waitpid; as PID 1 behind unshare."""
    true = shutil.which("true") or "/bin/true"
    prefix = [shutil.which("unshare") or "unshare", *UNSHARE[1:]] if pid1 else []
    commands = {name: [*prefix, *command, true] for name, command in inits.items()}
    commands["bare /bin/true"] = [*prefix, true]
    if not pid1:
        commands["python -c pass"] = [sys.executable, "-c", "pass"]
    for argv in commands.values():
        timed_run(argv)  # warm the page cache and the bytecode cache
    results: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, argv in commands.items():  # interleaved: drift hits all alike
            results[name].append(timed_run(argv) * 1000)
    return results


def _clock_of_child(argv: list[str]) -> float:
    """Milliseconds from posix_spawn of argv to the moment its `date` child read the clock."""
    read_end, write_end = os.pipe()
    actions = [(os.POSIX_SPAWN_DUP2, write_end, 1), (os.POSIX_SPAWN_CLOSE, read_end),
               (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
    sent = time.time_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        stamp = int(pipe.read().split()[0])
    os.waitpid(pid, 0)
    return (stamp - sent) / 1e6


def metric_exec_to_exec(inits: dict[str, list[str]], rounds: int) -> dict[str, list[float]]:
    """From the init's exec to its child's exec: `INIT -- date +%s%N` against `date +%s%N` alone,
    both from posix_spawn to date's clock reading, interleaved; the difference per round."""
    date = [shutil.which("date") or "/bin/date", "+%s%N"]
    commands = {name: [*command, *date] for name, command in inits.items()}
    for argv in [*commands.values(), date]:
        _clock_of_child(argv)
    results: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        alone = _clock_of_child(date)
        for name, argv in commands.items():
            results[name].append(_clock_of_child(argv) - alone)
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


def metric_forward(inits: dict[str, list[str]], rounds: int, pin: int | None,
                   receiver: str = RECEIVER) -> dict[str, list[float]]:
    if pin is not None:
        os.sched_setaffinity(0, {pin})
    running = {name: Running(command, [sys.executable, "-c", receiver], pin)
               for name, command in inits.items()}
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
    """The child handles nothing, so each init sends it the stop at once; sminit holds a stop in the
    job's first second while no process handles it, so each round starts every init, waits past
    that second, then stops them one by one."""
    results: dict[str, list[float]] = {name: [] for name in inits}
    for _ in range(rounds):
        running = {name: Running(command, ["sleep", "1000"]) for name, command in inits.items()}
        try:
            for run in running.values():
                run.wait_for_child()
            time.sleep(1.1)  # past sminit's start window; every init is in its wait loop
            for name, run in running.items():
                start = time.perf_counter()
                os.kill(run.pid, signal.SIGTERM)
                run.proc.wait()
                results[name].append((time.perf_counter() - start) * 1000)
        finally:
            for run in running.values():
                run.stop()
    return results


def metric_delivery(inits: dict[str, list[str]], rounds: int,
                    sizes: tuple[int, ...]) -> dict[str, list[float]]:
    """A stop to a job of N processes: kill(init, SIGTERM) to the handler's sigwaitinfo, in ms.
    sminit by its rule (`handlers`), tini with -g (the group: it reaches the handler too)."""

    commands = {name: command for name, command in inits.items() if name in ("sminit", "tini")}
    if "tini" in commands:
        commands["tini -g"] = ["tini", "-s", "-g", "--"]
        del commands["tini"]
    results: dict[str, list[float]] = {}
    for shape in ("top", "below"):
        for size in sizes:
            for name in commands:
                results.setdefault(f"{name}, {size} processes, handler {shape}", [])
            for _ in range(rounds):
                for name, command in commands.items():
                    run = Running(command, [sys.executable, "-c", TREE, str(size), shape])
                    try:
                        assert run.proc.stdout.readline() == b"ready\n"
                        time.sleep(0.05)  # the init is in its wait loop
                        sent = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
                        os.kill(run.pid, signal.SIGTERM)
                        received = int(run.proc.stdout.readline())
                        results[f"{name}, {size} processes, handler {shape}"].append((received - sent) / 1e6)
                    finally:
                        run.stop()
    return results


def delivery_table(data: dict[str, list[float]]) -> str:
    rows = ["### Delivery of a stop: `kill(init, SIGTERM)` to the handler's `sigwaitinfo`", "",
            "sminit by its rule (handler at the top: the main child handles it, two reads decide; "
            "below: behind a main child that handles nothing, a walk of `/proc`), tini `-g` to the group.",
            "", "| job | sminit median (ms) | p95 | tini -g median (ms) | sminit / tini -g |",
            "|---|---:|---:|---:|---:|"]
    for key in data:
        if not key.startswith("sminit, "):
            continue
        job = key.removeprefix("sminit, ")
        ours, theirs = data[key], data.get(f"tini -g, {job}")
        mine = statistics.median(ours)
        if theirs:
            other = statistics.median(theirs)
            rows.append(f"| {job} | {mine:.3f} | {percentile(ours, 95):.3f} | {other:.3f} | "
                        f"{mine / other:.2f} |")
        else:
            rows.append(f"| {job} | {mine:.3f} | {percentile(ours, 95):.3f} | – | – |")
    return "\n".join(rows) + "\n"


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
        run = Running([*UNSHARE, *command], [sys.executable, "-c", ORPHANS, str(bursts), str(size)])
        try:
            init_pid = run.wait_for_child()  # unshare's child: the init, PID 1 inside
            first_child(init_pid)  # and the init has started the orphan maker
            base = _cpu_ns(init_pid)
            peak = [0]
            done = threading.Event()

            def sample(pid: int = init_pid, peak: list[int] = peak, done: threading.Event = done) -> None:
                while not done.is_set():
                    peak[0] = max(peak[0], zombie_children(pid))

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


def table(title: str, unit: str, data: dict[str, list[float]], p: float = 95, against: str = "tini") -> str:
    base = statistics.median(data[against]) if data.get(against) else None
    rows = [f"### {title}", "", f"| | median ({unit}) | p{p:g} ({unit}) | median / {against} |",
            "|---|---:|---:|---:|"]
    for name, values in data.items():
        median = statistics.median(values)
        ratio = f"{median / base:.2f}" if base else "–"
        rows.append(f"| {name} | {median:.3f} | {percentile(values, p):.3f} | {ratio} |")
    return "\n".join(rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds: about a minute")
    parser.add_argument("--json", help="also write the raw numbers here")
    parser.add_argument("--plot", help="write a PNG of the start-up and forward-latency distributions "
                                       "(needs matplotlib)")
    parser.add_argument("--compare", action="append", default=[], metavar="NAME=COMMAND",
                        help="also measure this sminit command (another version), as a column NAME")
    parser.add_argument("--from-json", metavar="FILE",
                        help="measure nothing: redraw --plot from a --json file")
    args = parser.parse_args()
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        plot(saved["startup_ms"], saved.get("startup_pid1_ms"), saved["forward_us"], args.plot or "bench.png")
        return 0
    inits = find_inits(args.compare)
    if "sminit" not in inits:
        return 1
    quick = args.quick
    pid1 = os.geteuid() == 0 and shutil.which("unshare") is not None
    out: list[str] = [
        f"Run on {time.strftime('%Y-%m-%d')}: {platform.platform()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, inits: {', '.join(inits)}" + (" (quick)" if quick else ""), "",
    ]
    raw: dict[str, object] = {}
    rounds = 15 if quick else 60
    print("start-up ...", file=sys.stderr)
    raw["startup_ms"] = startup = metric_startup(inits, rounds, pid1=False)
    out.append(table("Start-up: `INIT -- /bin/true`", "ms", startup, against="floor"))
    if pid1:
        raw["startup_pid1_ms"] = startup_pid1 = metric_startup(inits, rounds, pid1=True)
        out.append(table("Start-up as PID 1: `unshare --pid --fork --mount-proc INIT -- /bin/true`", "ms",
                         startup_pid1, against="floor"))
    print("exec to exec ...", file=sys.stderr)
    raw["exec_to_exec_ms"] = exec_to_exec = metric_exec_to_exec(inits, rounds)
    out.append(table("From the init's exec to its child's exec", "ms", exec_to_exec))
    print("memory and idle wake-ups ...", file=sys.stderr)
    idle_seconds = 2 if quick else 5
    memory, idle = metric_memory_and_idle(inits, idle_seconds)
    raw["memory_kib"], raw["idle_switches"] = memory, idle
    out += ["### Memory while the child sleeps, and idle wake-ups", "",
            f"| | VmRSS (KiB) | RssAnon (KiB) | context switches in {idle_seconds} s idle |",
            "|---|---:|---:|---:|"]
    out += [f"| {name} | {m['VmRSS']} | {m['RssAnon']} | {idle.get(name, '–')} |"
            for name, m in memory.items()]
    out.append("")
    print("forward latency ...", file=sys.stderr)
    signals = 200 if quick else 2000
    raw["forward_us"] = forward = metric_forward(inits, signals, None)
    raw["forward_pinned_us"] = pinned = metric_forward(inits, signals, 0)
    out.append(table("Forward latency: `kill(init, SIGUSR1)` to the child's `sigwaitinfo`", "µs", forward,
                     99))
    out.append(table("Forward latency, everything on one CPU", "µs", pinned, 99))
    raw["forward_catcher_pinned_us"] = caught = metric_forward(inits, signals, 0, CATCHER)
    out.append(table("Forward latency, everything on one CPU, the child catches SIGUSR1 with a Python "
                     "handler", "µs", caught, 99))
    print("stop latency ...", file=sys.stderr)
    raw["stop_ms"] = stop = metric_stop(inits, 10 if quick else 30)
    out.append(table("Stop latency: `kill(init, SIGTERM)` to the init's exit, child (`sleep`) dies of it at "
                     "once, after its first second", "ms", stop))
    print("delivery ...", file=sys.stderr)
    raw["delivery_ms"] = delivery = metric_delivery(inits, 3 if quick else 15, (1, 10, 100))
    out.append(delivery_table(delivery))
    print("reaping ...", file=sys.stderr)
    bursts, size = (4, 250) if quick else (10, 500)
    raw["reaping"] = reaping = metric_reaping(inits, bursts, size)
    if reaping:
        tini = reaping.get("tini", {}).get("cpu_us_per_orphan")
        out += [f"### Reaping as PID 1: {bursts} bursts of {size} orphans", "",
                "| | CPU per orphan (µs) | / tini | peak zombies seen | zombies left |",
                "|---|---:|---:|---:|---:|"]
        for name, r in reaping.items():
            ratio = f"{r['cpu_us_per_orphan'] / tini:.2f}" if tini else "–"
            out.append(f"| {name} | {r['cpu_us_per_orphan']:.1f} | {ratio} | {r['peak_zombies']} | "
                       f"{r['left_zombies']} |")
        out.append("")
    print("escalation ...", file=sys.stderr)
    raw["escalation_error_ms"] = errors = metric_escalation(inits, 3 if quick else 10)
    if errors:
        out += ["### Escalation accuracy (sminit, `--grace 1`, child ignores SIGTERM)", "",
                f"SIGKILL came {statistics.median(errors):.1f} ms late (median), "
                f"{max(errors):.1f} ms at worst, "
                f"over {len(errors)} runs.", ""]
    print("\n".join(out))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(raw, indent=1))
    if args.plot:
        plot(startup, raw.get("startup_pid1_ms"), forward, args.plot)  # type: ignore[arg-type]
    return 0


def plot(startup: dict[str, list[float]], startup_pid1: dict[str, list[float]] | None,
         forward: dict[str, list[float]], path: str) -> None:
    """Cumulative distributions per init, on log scales: start-up (not PID 1, and as PID 1) and
    forward latency. Kept small: it is committed beside BENCHMARKS.md."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    panels = [(startup, "start-up, INIT -- /bin/true (ms)")]
    if startup_pid1:
        panels.append((startup_pid1, "start-up as PID 1 (ms)"))
    panels.append((forward, "forward latency, kill to child (µs)"))
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), sharey=True)
    colours = {"sminit": "C3", "floor": "C7", "tini": "C0", "dumb-init": "C1", "catatonit": "C2"}
    for axis, (data, title) in zip(axes, panels):
        for name, values in data.items():
            if name not in colours:
                continue  # the references (bare /bin/true, python -c pass) stay in the tables
            ordered = sorted(values)
            axis.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=name,
                      color=colours[name], linewidth=2 if name == "sminit" else 1.2,
                      linestyle="--" if name == "floor" else "-")
        axis.set_xscale("log")
        axis.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axis.xaxis.set_minor_formatter(ticker.NullFormatter())
        axis.set_title(title, fontsize=10)
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("fraction of runs")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)


if __name__ == "__main__":
    sys.exit(main())
