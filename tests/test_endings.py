"""Explained endings (README: Explained endings), each produced by its real cause: OOM kills in a real memory
cgroup, real crashes, a real SIGKILL from outside, /dev/shm and full disks on real tmpfs mounts in
a private mount namespace; and the resources reported at every exit."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from conftest import CAN_UNSHARE, RECORDER, SMINIT, UNSHARE, CgroupMaker, exit_record, run_sminit, with_tmpfs
from mltree import make_ml_root
from sminit import cgroup
from sminit.endings import size

# Allocates and touches 8 MiB at a time (bytearray zero-fills) until the kernel stops it.
ALLOCATE = "b = []\nwhile True:\n    b.append(bytearray(8 << 20))\n"
# The main process survives; a helper it starts is the one the OOM killer takes. Then it fails its own way.
HELPER_IS_KILLED = (
    "import subprocess, sys\n"
    f"helper = subprocess.run([sys.executable, '-c', {ALLOCATE!r}])\n"
    "print('helper ended with', helper.returncode, flush=True)\n"
    "sys.exit(1)\n"
)
NEEDS_ROOT_MOUNTS = pytest.mark.skipif(not CAN_UNSHARE, reason="needs root for mount namespaces and tmpfs")


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SMINIT_", "TRAINING_JOB", "NVIDIA_"))}
    return {**base, **extra}


def train_options(ml: Path) -> list[str]:
    return ["--log-format", "json", "--mode", "train", "--ml-root", str(ml), "--require-gpus", "none"]


def failure(ml: Path) -> str:
    return (ml / "output" / "failure").read_text()


# -- out of memory ---------------------------------------------------------------------------

def test_oom_kill_of_the_main_child_names_the_limit_and_the_peak(as_pid1, memory_cgroup, tmp_path):
    group = memory_cgroup(128 << 20)
    ml = make_ml_root(tmp_path / "ml")
    result = run_sminit([*train_options(ml), "--", sys.executable, "-c", ALLOCATE], pid1=as_pid1, timeout=60,
                        env=env(), preexec_fn=CgroupMaker.enter(group))
    assert result.returncode == 137, result.stderr
    record = exit_record(result.stderr)
    assert "was killed by the kernel's out-of-memory killer: memory limit 128.0 MiB, peak " in record["msg"]
    assert record["cause"] == "oom" and record["oom_kills"] >= 1 and record["memory_limit"] == 128 << 20
    assert record["memory_peak"] > 100 << 20 and record["peak_memory_source"] == "memory cgroup"
    text = failure(ml)
    assert text.startswith("sminit: exiting with 137: ")
    assert "out-of-memory killer: memory limit 128.0 MiB" in text
    assert len(text.encode()) <= 1024


def test_a_helper_killed_by_the_oom_killer_is_counted_when_the_job_fails_its_own_way(memory_cgroup, tmp_path):
    group = memory_cgroup(128 << 20)
    ml = make_ml_root(tmp_path / "ml")
    result = run_sminit([*train_options(ml), "--", sys.executable, "-c", HELPER_IS_KILLED], timeout=60,
                        env=env(),
                        preexec_fn=CgroupMaker.enter(group))
    assert result.returncode == 1 and f"helper ended with -{signal.SIGKILL}" in result.stdout
    record = exit_record(result.stderr)
    assert "exited with 1; 1 process was killed by the out-of-memory killer during the job" in record["msg"]
    assert record["oom_kills"] == 1 and "cause" not in record
    assert "1 process was killed by the out-of-memory killer" in failure(ml)


def test_a_shell_reporting_137_for_its_oom_killed_child_is_explained_too(memory_cgroup, tmp_path):
    group = memory_cgroup(128 << 20)
    script = f"{sys.executable} -c '{ALLOCATE}'"
    result = run_sminit(["--log-format", "json", "--", "sh", "-c", script], timeout=60, env=env(),
                        preexec_fn=CgroupMaker.enter(group))
    assert result.returncode == 137  # the shell's own exit status, 128 + 9: no signal killed it
    message = exit_record(result.stderr)["msg"]
    assert "exited with 137; 1 process was killed by the out-of-memory killer" in message


def test_the_count_of_other_oom_kills_beside_the_main_child_s(tmp_path):
    # The counting alone, on cgroup files the test writes (the real kills are above).
    from sminit import config
    from sminit.endings import Witness
    from sminit.plan import resolve

    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    (tmp_path / "memory.limit_in_bytes").write_text(str(1 << 30))
    (tmp_path / "memory.max_usage_in_bytes").write_text(str(1 << 30))
    variables = {"SMINIT_CGROUP_DIR": str(tmp_path), "SMINIT_ML_ROOT": str(tmp_path / "ml")}
    witness = Witness(resolve(config.parse(["true"], variables), variables))
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 5\n")
    killed = signal.SIGKILL  # the wait status of a process killed by SIGKILL
    ending = witness.explain(killed, sent_sigkill=False, failed=True)
    assert ending.what == ("was killed by the kernel's out-of-memory killer: memory limit 1.0 GiB, "
                           "peak 1.0 GiB")
    assert ending.facts == ["1 other process was killed by the out-of-memory killer during the job"]
    ending = witness.explain(killed, sent_sigkill=True, failed=True)
    assert ending.what == "was killed by SIGKILL"
    assert ending.facts == ["2 processes were killed by the out-of-memory killer during the job"]


# -- SIGKILL from outside, and sminit's own ----------------------------------------------------

def test_sigkill_from_outside_is_told_apart_from_sminit_s_own(start, as_pid1):
    run = start(["--log-format", "json", "--", *RECORDER], pid1=as_pid1)
    run.expect("main ready")
    main_child = psutil.Process(run.pid).children()[0].pid
    os.kill(main_child, signal.SIGKILL)  # what `kill -9`, or a platform's SIGKILL, does
    assert run.wait() == 137
    record = exit_record(run.stderr())
    assert record["cause"] == "outside_sigkill"
    assert "was killed by SIGKILL from outside sminit" in record["msg"]


def test_sminit_s_own_sigkill_after_the_grace_is_not_called_outside(start):
    run = start(["--log-format", "json", "-t", "0.3", "--", *RECORDER, "--ignore-term"])
    run.expect("main ready")
    run.signal(signal.SIGTERM)
    assert run.wait() == 137
    record = exit_record(run.stderr())
    assert "was killed by SIGKILL; stopped on SIGTERM; grace expired" in record["msg"]
    assert "outside" not in record["msg"] and "cause" not in record


# -- crashes --------------------------------------------------------------------------------------

CRASHES = {
    "segmentation fault": (signal.SIGSEGV, "import ctypes; ctypes.string_at(0)"),
    "aborted": (signal.SIGABRT, "import os; os.abort()"),
}


def no_core() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@pytest.mark.parametrize("words", sorted(CRASHES))
def test_a_crash_is_named_in_words(as_pid1, tmp_path, words):
    signo, code = CRASHES[words]
    ml = make_ml_root(tmp_path / "ml")
    result = run_sminit([*train_options(ml), "--", sys.executable, "-c", code], pid1=as_pid1, env=env(),
                        preexec_fn=no_core, cwd=tmp_path)
    assert result.returncode == 128 + signo
    record = exit_record(result.stderr)
    name = signal.Signals(signo).name
    assert f"was killed by {name} ({words})" in record["msg"]  # no core: RLIMIT_CORE is 0
    assert record["cause"] == "crash" and record["signal"] == name and record["core_dumped"] is False
    assert failure(ml).startswith(f"sminit: exiting with {128 + signo}: ") and f"({words})" in failure(ml)


def test_core_dumped_is_said_exactly_when_the_kernel_says_so(tmp_path):
    def cores() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    code = CRASHES["aborted"][1]
    direct = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, preexec_fn=cores)
    _, status = os.waitpid(direct.pid, 0)  # the raw status: did the kernel dump a core?
    direct.returncode = -signal.SIGABRT
    result = run_sminit(["--log-format", "json", "--", sys.executable, "-c", code], cwd=tmp_path,
                        preexec_fn=cores, env=env())
    record = exit_record(result.stderr)
    assert record["core_dumped"] is os.WCOREDUMP(status)
    assert ("(aborted, core dumped)" in record["msg"]) is os.WCOREDUMP(status)


@pytest.mark.parametrize("signo, words", [(signal.SIGILL, "illegal instruction"), (signal.SIGFPE,
                                                                                   "arithmetic error")])
def test_the_other_crash_signals_have_words_too(signo, words):
    result = run_sminit(["--", sys.executable, "-c", f"import os; os.kill(os.getpid(), {int(signo)})"],
                        preexec_fn=no_core, env=env())
    assert result.returncode == 128 + signo and f"({words})" in result.stderr


# A DataLoader worker's batch in shared memory, larger than the tmpfs behind it: touching the
# pages past its size is a bus error.
SHARED_BATCH = (
    "import mmap, os, sys\n"
    "fd = os.open(os.path.join(sys.argv[1], 'batch'), os.O_RDWR | os.O_CREAT)\n"
    "os.ftruncate(fd, 8 << 20)\n"
    "shared = mmap.mmap(fd, 8 << 20)\n"
    "shared[:] = b'x' * (8 << 20)\n"
)


# PyTorch unlinks each segment once mapped: it is freed when the process dies, so /dev/shm is
# empty again by the time sminit looks.
UNLINKED_BATCH = SHARED_BATCH.replace("shared = mmap",
                                      "os.unlink(os.path.join(sys.argv[1], 'batch'))\nshared = mmap")
RAISED_BUS_ERROR = "import os, signal, sys\nos.kill(os.getpid(), signal.SIGBUS)\n"


@NEEDS_ROOT_MOUNTS
@pytest.mark.parametrize("tmpfs, program, size_shown, hint", [
    ("1m", SHARED_BATCH, "1.0 MiB", "(full: PyTorch DataLoader workers pass batches through it"),
    ("1m", UNLINKED_BATCH, "1.0 MiB", "(small enough that it may have been full when the process died: "
                                      "PyTorch DataLoader workers pass batches through it"),
    ("1g", RAISED_BUS_ERROR, "1.0 GiB", None),  # a large, empty /dev/shm: the bus error is not its doing
])
def test_a_bus_error_states_the_size_and_use_of_dev_shm(tmp_path, tmpfs, program, size_shown, hint):
    shm = tmp_path / "shm"
    shm.mkdir()
    ml = make_ml_root(tmp_path / "ml")
    command = [*SMINIT, *train_options(ml), "--", sys.executable, "-c", program, str(shm)]
    result = subprocess.run(with_tmpfs([(tmpfs, str(shm))], command), capture_output=True, text=True,
                            timeout=30, preexec_fn=no_core, env=env(SMINIT_SHM_DIR=str(shm)))
    assert result.returncode == 128 + signal.SIGBUS, result.stderr
    record = exit_record(result.stderr)
    assert "was killed by SIGBUS (bus error): " in record["msg"]
    assert re.search(rf"{re.escape(str(shm))} is {re.escape(size_shown)}, [\d.]+ [KM]?i?B used",
                     record["msg"]), record["msg"]
    if hint:
        assert hint in record["msg"] and "docker run --shm-size" in failure(ml)
    else:
        assert "--shm-size" not in record["msg"] and "full" not in record["msg"]
    assert "bus error" in failure(ml) and f"{shm} is {size_shown}" in failure(ml)


# -- full disks ------------------------------------------------------------------------------------

FILL = (
    "import sys\n"
    "with open(sys.argv[1], 'wb') as out:\n"
    "    try:\n"
    "        while True:\n"
    "            out.write(b'x' * 65536)\n"
    "            out.flush()\n"
    "    except OSError as exc:\n"
    "        print('write failed', exc.errno, flush=True)\n"
    "sys.exit(1)\n"
)


@NEEDS_ROOT_MOUNTS
def test_a_full_model_dir_is_named_on_a_failed_exit(tmp_path):
    ml = make_ml_root(tmp_path / "ml")
    command = [*SMINIT, *train_options(ml), "--", sys.executable, "-c", FILL,
               str(ml / "model" / "weights.bin")]
    result = subprocess.run(with_tmpfs([("1m", str(ml / "model"))], command), capture_output=True, text=True,
                            timeout=30, env=env())
    assert result.returncode == 1 and "write failed 28" in result.stdout  # ENOSPC, for real
    record = exit_record(result.stderr)
    assert f"exited with 1; no space left on {ml / 'model'} (0 B free of 1.0 MiB)" in record["msg"]
    assert record["full_filesystems"] == [[str(ml / "model")]]
    assert f"no space left on {ml / 'model'}" in failure(ml)


def _under_tmp(paths: list[str]) -> list[str]:
    """The folders right below /tmp that hold any of paths (this checkout, its venv)."""
    found = []
    for path in paths:
        parts = Path(os.path.realpath(path)).parts
        if len(parts) > 2 and parts[1] == "tmp" and f"/tmp/{parts[2]}" not in found:
            found.append(f"/tmp/{parts[2]}")
    return found


@NEEDS_ROOT_MOUNTS
@pytest.mark.skipif(not os.path.isdir("/mnt"), reason="needs /mnt to keep the old /tmp reachable")
def test_a_full_tmp_is_named_on_a_failed_exit(tmp_path):
    ml = make_ml_root(tmp_path / "ml")
    # The old /tmp stays reachable at /mnt; a 1 MiB tmpfs takes /tmp's place; what sminit itself
    # needs from the old /tmp (a checkout or venv there) is bound back into it.
    needed = _under_tmp([str(Path(__file__).parent.parent), sys.prefix, os.path.dirname(sys.executable)])
    mounts = [("bind", "/tmp:/mnt"), ("1m", "/tmp"), *(("bind", f"/mnt/{p[5:]}:{p}") for p in needed)]
    seen_ml = "/mnt/" + str(ml)[len("/tmp/"):] if str(ml).startswith("/tmp/") else str(ml)
    command = [*SMINIT, *train_options(Path(seen_ml)), "--", sys.executable, "-c", FILL, "/tmp/scratch"]
    result = subprocess.run(with_tmpfs(mounts, command), capture_output=True, text=True, timeout=30,
                            env=env(), cwd="/")
    assert result.returncode == 1 and "write failed 28" in result.stdout, result.stderr
    record = exit_record(result.stderr)
    assert record["full_filesystems"] == [["/tmp"]] and "no space left on /tmp (0 B free" in record["msg"]
    assert "no space left on /tmp" in failure(ml)


def test_disks_are_not_checked_on_success(tmp_path):
    result = run_sminit(["--log-format", "json", "--", "true"], env=env())
    assert "full_filesystems" not in exit_record(result.stderr)


# -- resources ----------------------------------------------------------------------------------

BURN = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end:\n    pass\n"
HOLD = "block = bytearray(64 << 20)\n"  # 64 MiB, touched


def test_resources_at_every_exit_without_a_cgroup():
    result = run_sminit(["--log-format", "json", "--", sys.executable, "-c", BURN + HOLD],
                        env=env(SMINIT_CGROUP_DIR="/nonexistent"))
    assert result.returncode == 0
    record = exit_record(result.stderr)
    assert record["run_time"] >= 0.4 and record["cpu_user"] + record["cpu_system"] >= 0.3
    assert record["peak_memory_source"] == "largest reaped process" and record["peak_memory"] >= 64 << 20
    assert re.search(r"; ran [\d.]+ s, CPU [\d.]+ s user \+ [\d.]+ s system, peak memory [\d.]+ MiB "
                     r"\(largest reaped process\)$", record["msg"]), record["msg"]


@pytest.mark.parametrize("shared", [False, True])
def test_peak_memory_comes_from_the_cgroup_only_when_it_is_the_job_s_own(memory_cgroup, shared):
    group = memory_cgroup(1 << 30)
    # Outside a container the cgroup is the session's: a process that is no descendant of sminit
    # (here a sleep put there first) makes its peak someone else's too.
    outsider = subprocess.Popen(["sleep", "60"], preexec_fn=CgroupMaker.enter(group)) if shared else None
    try:
        result = run_sminit(["--log-format", "json", "--", sys.executable, "-c", HOLD], env=env(),
                            preexec_fn=CgroupMaker.enter(group))
    finally:
        if outsider is not None:
            outsider.kill()
            outsider.wait()
    assert result.returncode == 0, result.stderr
    record = exit_record(result.stderr)
    source = "largest reaped process" if shared else "memory cgroup"
    assert record["peak_memory_source"] == source and record["peak_memory"] >= 64 << 20
    assert record["msg"].endswith(f"({source})")


def test_text_exit_line_carries_the_resources_too():
    result = run_sminit(["--", "sh", "-c", "exit 0"], env=env())
    last = result.stderr.splitlines()[-1]
    assert last.startswith("[sminit] exiting with 0: sh -c 'exit 0' exited with 0; ran ") and " CPU " in last


# -- finding the cgroup ---------------------------------------------------------------------------

def _folder(root: Path, marker: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / marker).write_text("oom_kill 0\n")
    return root


def test_cgroup_v1_inside_a_container_falls_back_to_the_mount_root(tmp_path):
    # podman + runc on cgroup v1: /proc/self/cgroup names the host's path, the mount is the
    # container's own cgroup (its root field shows that same path, or "/").
    mount = _folder(tmp_path / "memory", "memory.oom_control")
    proc = "11:memory:/libpod_parent/libpod-0123abcd\n0::/\n"
    for root in ("/libpod_parent/libpod-0123abcd", "/"):
        info = f"40 31 0:32 {root} {mount} rw,relatime - cgroup cgroup rw,memory\n"
        found = cgroup.locate("memory", proc, info)
        assert found is not None and found.path == str(mount) and found.version == 1


def test_cgroup_v1_outside_a_container_follows_the_path(tmp_path):
    mount = tmp_path / "memory"
    own = _folder(mount / "process_api" / "job", "memory.oom_control")
    info = f"35 31 0:32 / {mount} rw,relatime - cgroup cgroup rw,memory\n"
    found = cgroup.locate("memory", "4:cpu,memory:/process_api/job\n", info)
    assert found is not None and found.path == str(own)


def test_cgroup_v2_and_escaped_mount_points(tmp_path):
    mount = tmp_path / "cgroup two"
    own = _folder(mount / "user.slice" / "job", "memory.events")
    escaped = str(mount).replace(" ", "\\040")
    info = f"50 23 0:28 / {escaped} rw - cgroup2 cgroup2 rw\n"
    found = cgroup.locate("memory", "0::/user.slice/job\n", info)
    assert found is not None and found.path == str(own) and found.version == 2
    (own / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n")
    (own / "memory.max").write_text("max\n")
    assert found.oom_kills() == 2 and found.memory_limit() == 0


def test_no_cgroup_hierarchy_means_no_fact():
    assert cgroup.locate("memory", "0::/\n", "") is None


def test_sizes_in_words():
    assert [size(n) for n in (0, 1023, 1024, 64 << 20, 16 << 30)] == ["0 B", "1023 B", "1.0 KiB", "64.0 MiB",
                                                                      "16.0 GiB"]


# -- --check resources ----------------------------------------------------------------------------

def test_check_reports_the_resources_the_job_will_have(memory_cgroup, cpu_cgroup, tmp_path):
    memory, cpu = memory_cgroup(256 << 20), cpu_cgroup(1.5)

    def enter() -> None:
        CgroupMaker.enter(memory)()
        CgroupMaker.enter(cpu)()

    ml = make_ml_root(tmp_path / "ml")
    result = run_sminit(["--check", "--json", "--ml-root", str(ml), "--", "true"], env=env(),
                        preexec_fn=enter)
    found = json.loads(result.stdout)["resources"]
    shm = os.statvfs("/dev/shm")
    free = os.statvfs(ml)
    assert found["memory_limit"] == 256 << 20 and found["cpu_limit"] == 1.5
    assert found["shm_size"] == shm.f_blocks * shm.f_frsize
    assert abs(found["ml_root_free"] - free.f_bavail * free.f_frsize) < 64 << 20
    text = run_sminit(["--check", "--ml-root", str(ml), "--", "true"], env=env(), preexec_fn=enter).stdout
    assert "resources:     memory limit 256.0 MiB, CPU limit 1.5, /dev/shm " in text


@pytest.mark.skipif(not CAN_UNSHARE, reason="needs a PID namespace")
def test_pid1_finds_its_cgroup_too(memory_cgroup):
    group = memory_cgroup(200 << 20)
    result = subprocess.run([*UNSHARE, *SMINIT, "--check", "--json", "--", "true"], capture_output=True,
                            text=True,
                            timeout=20, preexec_fn=CgroupMaker.enter(group), env=env())
    assert json.loads(result.stdout)["resources"]["memory_limit"] == 200 << 20
