"""Signal and orphan storms against sminit, sized by the caller: short in CI (the tests),
full in `bench/reliability.py`. Every process started here is killed by pid at the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from sminit.testing import PID_NAMESPACE as UNSHARE
from sminit.testing import descendant_pids, first_child, kill_tree, zombie_children

SMINIT = [sys.executable, "-m", "sminit"]
REAL_TIME = [signal.SIGRTMIN + i for i in range(4)]
STANDARD = [signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP, signal.SIGWINCH, signal.SIGCONT, signal.SIGURG]

# Counts every signal it gets (sigwaitinfo, all blocked: queued real-time signals are counted
# one by one); on SIGTERM prints the counts and exits 0, or goes on with the argument "stay".
COUNTER = """
import json, os, signal, sys
stay = sys.argv[1:] == ["stay"]
signals = signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}
signal.pthread_sigmask(signal.SIG_BLOCK, signals)
counts = {}
print("ready", flush=True)
while True:
    info = signal.sigwaitinfo(signals)
    counts[info.si_signo] = counts.get(info.si_signo, 0) + 1
    if info.si_signo == signal.SIGTERM:
        print(json.dumps(counts), flush=True)
        if not stay:
            os._exit(0)
"""
# Sends the given signals round-robin to a pid for some seconds; prints what it sent.
# Real-time signals are only sent while the kernel's queue (SigQ, per user) has room: past
# its limit the kernel silently merges them before sminit could see them.
SENDER = """
import json, os, signal, sys, time
pid, seconds, signals = int(sys.argv[1]), float(sys.argv[2]), [int(s) for s in sys.argv[3:]]
sent = {}
room = True
end = time.monotonic() + seconds
rounds = 0
while time.monotonic() < end:
    rounds += 1
    if rounds % 256 == 0:
        with open(f"/proc/{pid}/status") as handle:
            queued, limit = [l for l in handle if l.startswith("SigQ:")][0].split()[1].split("/")
        room = int(queued) < int(limit) // 4
    for signo in signals:
        if signo >= signal.SIGRTMIN and not room:
            continue
        os.kill(pid, signo)
        sent[signo] = sent.get(signo, 0) + 1
print(json.dumps({"sent": sent}), flush=True)
"""
# Creates orphans in bursts (double fork), then waits for a line on stdin.
ORPHANS = """
import os, sys
total, burst = int(sys.argv[1]), int(sys.argv[2])
made = 0
while made < total:
    middles = []
    for _ in range(min(burst, total - made)):
        pid = os.fork()
        if pid == 0:
            if os.fork() == 0:
                os._exit(0)
            os._exit(0)
        middles.append(pid)
    for pid in middles:
        os.waitpid(pid, 0)
    made += len(middles)
    print("burst", made, flush=True)
print("done", flush=True)
sys.stdin.readline()
"""


def _host_pid(proc: subprocess.Popen, pid1: bool) -> int:
    return first_child(proc) if pid1 else proc.pid


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        return int([line for line in handle if line.startswith("VmRSS:")][0].split()[1])


def _pending(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as handle:
            fields = dict(line.split(":", 1) for line in handle)
    except OSError:
        return False
    return int(fields["ShdPnd"], 16) != 0 or int(fields["SigPnd"], 16) != 0


def _wait_drained(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(_pending(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _killdescendant_pids(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        kill_tree(proc.pid)
    proc.wait(10)


def signal_storm(seconds: float, senders: int = 3, pid1: bool = False) -> dict:
    """Senders at full speed, then SIGTERM. Real-time signals queue, so every one sent must be
    delivered exactly once; standard ones merge, so each kind must arrive at least once."""
    prefix = UNSHARE if pid1 else []
    sminit = subprocess.Popen([*prefix, *SMINIT, "--", sys.executable, "-c", COUNTER], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    workers: list[subprocess.Popen] = []
    try:
        assert sminit.stdout.readline() == "ready\n"
        pid = _host_pid(sminit, pid1)
        rss_before = rss_kib(pid)
        mixes = [[*STANDARD, REAL_TIME[i % len(REAL_TIME)]] for i in range(senders)]
        # int(): on Python 3.9 str() of a Signals member is "Signals.SIGUSR1", not its number.
        workers = [subprocess.Popen([sys.executable, "-c", SENDER, str(pid), str(seconds),
                                     *(str(int(signo)) for signo in mix)],
                                    stdout=subprocess.PIPE, text=True) for mix in mixes]
        reports = [json.loads(worker.communicate(timeout=seconds + 60)[0]) for worker in workers]
        # SIGTERM would overtake the signals still queued (lower numbers go first): let the
        # queues at sminit and at the child drain before stopping.
        drained = _wait_drained([pid, *descendant_pids(pid)], timeout=seconds * 20 + 30)
        rss_after = rss_kib(pid)
        os.kill(pid, signal.SIGTERM)
        counts_line = sminit.stdout.readline()
        code = sminit.wait(60)
        received = {int(k): v for k, v in json.loads(counts_line).items()}
    finally:
        for worker in workers:
            _killdescendant_pids(worker)
        _killdescendant_pids(sminit)
    sent: dict[int, int] = {}
    for report in reports:
        for signo, count in report["sent"].items():
            sent[int(signo)] = sent.get(int(signo), 0) + count
    stderr = sminit.stderr.read()
    return {
        "signals_sent": sum(sent.values()),
        "real_time_sent": sum(sent.get(s, 0) for s in REAL_TIME),
        "real_time_delivered": sum(received.get(s, 0) for s in REAL_TIME),
        "standard_kinds_missing": [s for s in STANDARD if s in sent and not received.get(s)],
        "term_delivered": received.get(signal.SIGTERM, 0),
        "exit": code,
        "rss_kib_before": rss_before,
        "rss_kib_after": rss_after,
        "tracebacks": stderr.count("Traceback"),
        "drained": drained,

    }


def orphan_storm(total: int, burst: int = 500, pid1: bool = False) -> dict:
    """total orphans in bursts; afterwards no zombie may remain and RSS must not grow."""
    prefix = UNSHARE if pid1 else []
    sminit = subprocess.Popen([*prefix, *SMINIT, "--", sys.executable, "-c", ORPHANS, str(total), str(burst)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.PIPE,
                              text=True)
    try:
        pid = _host_pid(sminit, pid1)
        rss_before = None
        peak = 0
        while True:
            line = sminit.stdout.readline()
            if rss_before is None:
                rss_before = rss_kib(pid)  # after the first burst: the loop is warm
            peak = max(peak, zombie_children(pid))
            if line in ("done\n", ""):
                break
        deadline = time.monotonic() + 30
        while zombie_children(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        left = zombie_children(pid)
        rss_after = rss_kib(pid)
        sminit.stdin.close()
        code = sminit.wait(60)
    finally:
        _killdescendant_pids(sminit)
    return {"orphans": total, "zombies_left": left, "peak_zombies_seen": peak, "exit": code,
            "rss_kib_before": rss_before, "rss_kib_after": rss_after,
            "tracebacks": sminit.stderr.read().count("Traceback")}


if __name__ == "__main__":
    print(signal_storm(float(sys.argv[1]) if len(sys.argv) > 1 else 2))
