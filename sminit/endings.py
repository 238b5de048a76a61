"""Why the job ended, in words an ML engineer acts on (README: Explained endings): the exit status
decoded, out-of-memory kills, crashes, SIGKILLs from outside, /dev/shm, full disks, and the
resources the job used.

Every fact comes from the kernel (wait status, cgroup counters, statvfs, rusage), never from
the job's output; a fact whose source cannot be read is left out.
"""

from __future__ import annotations

import os
import _signal

from sminit.cgroup import Cgroup, find
from sminit.log import plural
from sminit.plan import Plan
from sminit.proctree import descends_from
from sminit.signals import signal_name

CRASHES: dict[int, str] = {
    _signal.SIGSEGV: "segmentation fault", _signal.SIGBUS: "bus error", _signal.SIGABRT: "aborted",
    _signal.SIGILL: "illegal instruction", _signal.SIGFPE: "arithmetic error",
}

# A /dev/shm this small gets the bus-error hint even when it is not full when sminit looks
# (Docker's default is 64 MiB; a DataLoader batch of images can pass 100 MiB).
SMALL_SHM = 512 << 20


def size(count: int) -> str:
    """1.5 GiB, 64.0 MiB, 0 B."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"


class Ending:
    """How the main child ended, told in words: `what` follows the command in the exit line,
    `facts` follow it, `fields` go into the JSON record."""

    def __init__(self, what: str, facts: list[str], fields: dict[str, object]) -> None:
        self.what = what
        self.facts = facts
        self.fields = fields


def exit_status(status: int | None) -> int:
    """The exit status a wait status stands for, as a shell reports it (tini's reap_zombies and
    subprocess's _handle_exitstatus do the same): N for exit(N), 128 + S for death by signal S;
    a child that was never reaped (it could not die) counts as killed by SIGKILL."""
    if status is None:
        return 128 + _signal.SIGKILL
    returned = os.waitstatus_to_exitcode(status)
    return 128 - returned if returned < 0 else returned


class Witness:
    """What sminit notes when the job starts, to tell at its end what the kernel did meanwhile."""

    def __init__(self, plan: Plan) -> None:
        self.memory: Cgroup | None = find("memory", plan.cgroup_dir)
        self.oom_at_start = self.memory.oom_kills() if self.memory else None  # the one read at start
        self.shm_dir = plan.shm_dir
        self.ml_root = plan.ml_root

    def oom_kills(self) -> int | None:
        """Processes the out-of-memory killer took in sminit's cgroup since the start; None if unknown."""
        now = self.memory.oom_kills() if self.memory else None
        return None if now is None or self.oom_at_start is None else now - self.oom_at_start

    def explain(self, status: int | None, sent_sigkill: bool, failed: bool) -> Ending:
        """The main child's wait status in words; failed: sminit exits non-zero (disks are checked)."""
        oom = self.oom_kills()
        fields: dict[str, object] = {"oom_kills": oom} if oom else {}
        facts: list[str] = []
        others, noun = oom, "process"  # the OOM kills still to tell of after the main child's own
        if status is None:
            what = "was not reaped"
        elif os.WIFEXITED(status):
            what = f"exited with {os.WEXITSTATUS(status)}"
        else:
            signo = os.WTERMSIG(status)
            fields["signal"] = signal_name(signo)
            what = f"was killed by {signal_name(signo)}"
            if signo == _signal.SIGKILL and not sent_sigkill:
                what = self._outside_sigkill(oom, fields)
                if fields.get("cause") == "oom":  # the main child was one of them
                    others, noun = (oom or 1) - 1, "other process"
            elif signo in CRASHES:
                fields["cause"] = "crash"
                fields["core_dumped"] = os.WCOREDUMP(status)
                what += f" ({CRASHES[signo]}{', core dumped' if os.WCOREDUMP(status) else ''})"
                if signo == _signal.SIGBUS:
                    what += self._shm()
        if others:
            facts.append(f"{plural(others, noun)} {'was' if others == 1 else 'were'} killed by the "
                         "out-of-memory killer during the job")
        if failed:
            full = self._full_filesystems()
            if full:
                fields["full_filesystems"] = [paths for paths, _ in full]
                facts.extend(line for _, line in full)
        return Ending(what, facts, fields)

    def _outside_sigkill(self, oom: int | None, fields: dict[str, object]) -> str:
        if oom:
            fields["cause"] = "oom"
            limit = self.memory.memory_limit() if self.memory else None
            peak = self.memory.memory_peak() if self.memory else None
            details = ["" if limit is None else f"memory limit {size(limit)}" if limit else "no memory limit",
                       "" if peak is None else f"peak {size(peak)}"]
            fields.update(memory_limit=limit or None, memory_peak=peak)
            shown = ", ".join(d for d in details if d)
            return "was killed by the kernel's out-of-memory killer" + (f": {shown}" if shown else "")
        fields["cause"] = "outside_sigkill"
        if oom is None:
            return ("was killed by SIGKILL from outside sminit (or by the out-of-memory killer: "
                    "no memory cgroup to tell)")
        return "was killed by SIGKILL from outside sminit"

    def _shm(self) -> str:
        try:
            info = os.statvfs(self.shm_dir)
        except OSError:
            return ""
        total, free = info.f_blocks * info.f_frsize, info.f_bfree * info.f_frsize
        stated = f": {self.shm_dir} is {size(total)}, {size(total - free)} used"
        if free <= total // 10:
            full = "full"
        elif total <= SMALL_SHM:
            # Shared-memory segments are freed when the processes that held them die, so by the
            # time sminit looks a small /dev/shm is rarely full any more.
            full = "small enough that it may have been full when the process died"
        else:
            return stated
        # The usual cause in containers (Docker's default is 64 MiB).
        return stated + (f" ({full}: PyTorch DataLoader workers pass batches through it; "
                         "give it more, docker run --shm-size)")

    def _full_filesystems(self) -> list[tuple[list[str], str]]:
        """Filesystems under the ml-root (model, checkpoints, output) or /tmp with no space left."""
        by_device: dict[int, list[str]] = {}
        stats: dict[int, os.statvfs_result] = {}
        for folder in ("model", "checkpoints", "output", None):
            path = os.path.join(self.ml_root, folder) if folder else "/tmp"
            try:
                device = os.stat(path).st_dev
                stats.setdefault(device, os.statvfs(path))
            except OSError:
                continue
            by_device.setdefault(device, []).append(path)
        full = []
        for device, paths in by_device.items():
            info = stats[device]
            if info.f_blocks and info.f_bavail == 0:
                full.append((paths, f"no space left on {', '.join(paths)} "
                                    f"(0 B free of {size(info.f_blocks * info.f_frsize)})"))
            elif info.f_files and info.f_favail == 0:
                full.append((paths, f"no space left on {', '.join(paths)} "
                                    f"(no free inodes, {info.f_files} in all)"))
        return full

    def _cgroup_is_the_jobs(self) -> bool:
        """Its peak is the job's only when every process in it is sminit or below it: outside a
        container the cgroup is the whole login session's (the shell, the terminal, ...)."""
        pids = self.memory.processes() if self.memory else None
        me = os.getpid()
        return bool(pids) and all(descends_from(pid, me) for pid in pids or ())

    def resources(self, run_time: float) -> tuple[str, dict[str, object]]:
        """Run time, CPU time of every process sminit reaped, and the peak memory: text and fields."""
        times = os.times()  # children_*: every process sminit reaped, and what they reaped
        peak = self.memory.memory_peak() if self.memory and self._cgroup_is_the_jobs() else None
        source = "memory cgroup"
        if not peak:
            import resource  # only when the cgroup cannot tell: a shared library to load

            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
            source = "largest reaped process"
        user, system = times.children_user, times.children_system
        text = f"ran {run_time:.1f} s, CPU {user:.1f} s user + {system:.1f} s system"
        fields: dict[str, object] = {"run_time": round(run_time, 3), "cpu_user": round(user, 3),
                                     "cpu_system": round(system, 3)}
        if peak:
            text += f", peak memory {size(peak)} ({source})"
            fields.update(peak_memory=peak, peak_memory_source=source)
        return text, fields
