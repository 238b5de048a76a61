"""The cgroup sminit runs in, as the kernel keeps it: OOM kills, memory limit and peak, CPU limit.

cgroup v2 and v1 both. Every reader returns None when its file is missing or unreadable: the
fact is then left out, never guessed.
"""

from __future__ import annotations

import os

NO_LIMIT = 1 << 60  # cgroup v1 writes "no limit" as a page-rounded 2^63 - 1


def _read(path: str, limit: int = 65536) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


def _number(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isdigit() and len(text) < 30 else None


def _key_value(text: str | None, key: str) -> int | None:
    """The number after key in a `key value` per line file (memory.events, memory.oom_control)."""
    for line in (text or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return _number(value)
    return None


class Cgroup:
    """One cgroup folder of a controller; `version` is 1 or 2."""

    def __init__(self, path: str, version: int) -> None:
        self.path = path
        self.version = version

    def file(self, name: str) -> str | None:
        return _read(os.path.join(self.path, name))

    def processes(self) -> list[int] | None:
        """The pids in this cgroup (as this PID namespace numbers them: 0 for one outside it)."""
        text = self.file("cgroup.procs")
        return None if text is None else [int(word) for word in text.split() if word.isdigit()]

    def oom_kills(self) -> int | None:
        """Processes of this cgroup killed by the out-of-memory killer so far."""
        if self.version == 2:
            return _key_value(self.file("memory.events"), "oom_kill")
        return _key_value(self.file("memory.oom_control"), "oom_kill")

    def memory_limit(self) -> int | None:
        """The limit in bytes; 0 stands for no limit, None for unknown."""
        text = self.file("memory.max" if self.version == 2 else "memory.limit_in_bytes")
        if text is not None and text.strip() == "max":
            return 0
        value = _number(text)
        return 0 if value is not None and value >= NO_LIMIT else value

    def memory_peak(self) -> int | None:
        return _number(self.file("memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"))

    def cpu_limit(self) -> float | None:
        """CPUs the quota allows (1.5 = one and a half); 0.0 stands for no limit, None for unknown."""
        if self.version == 2:
            words = (self.file("cpu.max") or "").split()
            if len(words) != 2:
                return None
            quota, period = words[0], _number(words[1])
            if quota == "max":
                return 0.0
            return int(quota) / period if quota.isdigit() and period else None
        period = _number(self.file("cpu.cfs_period_us"))
        quota = (self.file("cpu.cfs_quota_us") or "").strip()
        if quota == "-1":
            return 0.0
        return int(quota) / period if quota.isdigit() and period else None


def locate(controller: str, proc_cgroup: str, mountinfo: str) -> Cgroup | None:
    """The cgroup of controller ("memory" or "cpu") named in /proc/self/cgroup, under its mount.

    Inside a container on cgroup v1 /proc/self/cgroup names the host's path while the mount's
    root is the container's own cgroup: the mount's root is used when the path is not there.
    """
    paths: dict[int, str] = {}  # version -> the cgroup path
    for line in proc_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            paths.setdefault(2, path)
        elif controller in controllers.split(","):
            paths.setdefault(1, path)
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        after = line.split(" - ", 1)[1].split()
        if len(after) < 3:
            continue
        fstype, options = after[0], after[2].split(",")
        version = 2 if fstype == "cgroup2" else 1 if fstype == "cgroup" and controller in options else 0
        if version == 0 or version not in paths:
            continue
        root, mountpoint = _unescape(fields[3]), _unescape(fields[4])
        found = _below(mountpoint, root, paths[version], version, controller)
        if found is not None:
            return found
    return None


def _unescape(field: str) -> str:
    """mountinfo writes a space as \\040 (and tab, newline, backslash likewise)."""
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def _below(mountpoint: str, root: str, path: str, version: int, controller: str) -> Cgroup | None:
    marker = {(2, "memory"): "memory.events", (1, "memory"): "memory.oom_control",
              (2, "cpu"): "cpu.max", (1, "cpu"): "cpu.cfs_quota_us"}[(version, controller)]
    tried = []
    if path.startswith(root.rstrip("/") + "/") or path == root:
        tried.append(mountpoint + path[len(root.rstrip("/")):])
    tried += [mountpoint + path, mountpoint]
    for folder in tried:
        if os.path.exists(os.path.join(folder, marker)):
            return Cgroup(os.path.normpath(folder), version)
    return None


def find(controller: str, folder: str | None = None) -> Cgroup | None:
    """sminit's own cgroup for controller: folder if given (the memory cgroup SMINIT_CGROUP_DIR
    names, for tests), else the one /proc/self/cgroup names."""
    if folder:
        version = 2 if os.path.exists(os.path.join(folder, "memory.events")) else 1
        return Cgroup(folder, version)
    proc_cgroup, mountinfo = _read("/proc/self/cgroup"), _read("/proc/self/mountinfo", 1 << 22)
    if not proc_cgroup or not mountinfo:
        return None
    return locate(controller, proc_cgroup, mountinfo)
