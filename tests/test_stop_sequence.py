"""The stop sequence's state table and the delivery rule, driven with a fake clock and a fake
process table: no process is started here (test_delivery.py runs the same trees for real)."""

from __future__ import annotations

import signal

import pytest

from sminit.log import LEVELS, Log
from sminit.proctree import Proc
from sminit.stop import HOLD_POLL, SETTLE, START_WINDOW, WATCH_POLL, StopSequence

OWN = 1  # sminit's pid in the fake table
TERM, USR1, INT, TSTP = signal.SIGTERM, signal.SIGUSR1, signal.SIGINT, signal.SIGTSTP


class FakeProcess:
    def __init__(self, pid: int, ppid: int, pgid: int, name: str, handles: set[int], shell: bool) -> None:
        self.pid, self.ppid, self.pgid, self.name = pid, ppid, pgid, name
        self.handles, self.shell, self.running = set(handles), shell, True


class FakeTable:
    """The methods of sminit.handlers.Table over a dict of fake processes; signals are recorded,
    and a process dies of one it does not handle (KILL always)."""

    own_pid = OWN

    def __init__(self) -> None:
        self.procs: dict[int, FakeProcess] = {}
        self.sent: list[tuple[int, int]] = []  # (pid, signal) as each process received it
        self.walks = 0

    def add(self, pid: int, ppid: int, name: str, handles=(), shell=False, pgid: int | None = None) -> None:
        parent = self.procs.get(ppid)
        group = pgid if pgid is not None else (parent.pgid if parent else pid)
        self.procs[pid] = FakeProcess(pid, ppid, group, name, set(handles), shell)

    def live(self) -> list[FakeProcess]:
        return [p for p in self.procs.values() if p.running]

    def keep_open(self, pid: int) -> None:
        pass

    def forget(self, pid: int) -> None:
        pass

    def only_child(self, pid: int) -> bool:
        return [p.pid for p in self.live() if p.ppid == OWN] == [pid]

    def tree(self) -> dict[int, list[Proc]]:
        self.walks += 1
        children: dict[int, list[Proc]] = {}
        for p in self.live():
            children.setdefault(p.ppid, []).append(Proc(p.pid, p.pgid, p.pid * 10, p.ppid))
        return children

    def signal_state(self, pid: int, signo: int):
        p = self.procs.get(pid)
        if p is None or not p.running:
            return None
        return signo in p.handles or bool(self.waited(pid) & (1 << (signo - 1))), p.shell

    def deliver(self, p: FakeProcess, signo: int) -> None:
        self.sent.append((p.pid, signo))
        if signo == signal.SIGKILL or signo not in p.handles:
            self.exit(p.pid)

    def send(self, proc: Proc, signo: int) -> bool:
        p = self.procs.get(proc.pid)
        if p is None or not p.running or proc.start != p.pid * 10:
            return False
        self.deliver(p, signo)
        return True

    def kill(self, pid: int, signo: int) -> bool:
        if pid == -1:
            targets = self.live()
        elif pid < 0:
            targets = [p for p in self.live() if p.pgid == -pid]
        else:
            targets = [p for p in self.live() if p.pid == pid]
        for p in targets:
            self.deliver(p, signo)
        return bool(targets)

    def waited(self, pid: int) -> int:
        return 0

    def alive(self, proc: Proc) -> bool:
        p = self.procs.get(proc.pid)
        return p is not None and p.running

    def command(self, pid: int) -> str:
        return self.procs[pid].name if pid in self.procs else "?"

    def exit(self, pid: int) -> None:
        """The process ends; its children are adopted by sminit, as by a subreaper."""
        self.procs[pid].running = False
        for child in self.procs.values():
            if child.ppid == pid and child.running:
                child.ppid = OWN

    def got(self, signo: int) -> list[str]:
        return [self.procs[pid].name for pid, s in self.sent if s == signo]


class Recording(Log):
    def __init__(self) -> None:
        self.threshold = LEVELS["debug"]
        self.json = False
        self.fd = -1
        self.records: list[tuple[str, str, dict]] = []

    def emit(self, level: str, msg: str, **fields: object) -> None:
        self.records.append((level, msg, fields))

    def deliveries(self) -> list[dict]:
        return [fields for _, _, fields in self.records if "rule" in fields]


def sequence(table: FakeTable, **options) -> tuple[StopSequence, Recording]:
    log = Recording()
    settings = {"grace": 10.0, "cleanup_grace": 5.0, "now": 0.0, "spawned": 0.0, "pid1": False, **options}
    return StopSequence(log, 10, table=table, **settings), log


def run_until(stop: StopSequence, end: float) -> float:
    """Fire every deadline up to end, as the wait loop would; returns the time reached."""
    now = 0.0
    while True:
        deadline = stop.next_deadline()
        if deadline is None or deadline > end:
            return now
        now = deadline
        stop.on_deadline(now)


def python_job(table: FakeTable, handles=(TERM,)) -> None:
    table.add(10, OWN, "python3 train.py", handles)
    table.add(11, 10, "dataloader worker 0", (TERM,))
    table.add(12, 10, "dataloader worker 1", (TERM,))


def test_a_main_child_that_handles_it_gets_it_alone_without_a_walk():
    table = FakeTable()
    python_job(table)
    stop, log = sequence(table)
    table.walks = 0
    stop.on_signal(TERM, 5.0)
    assert table.sent == [(10, TERM)]
    assert log.deliveries()[0]["rule"] == "handlers" and log.deliveries()[0]["targets"] == [10]
    assert log.deliveries()[0]["left"] == 2  # the workers, counted after the delivery
    assert stop.kill_at == 15.0


def test_nothing_wakes_the_loop_while_nothing_stops():
    table = FakeTable()
    python_job(table)
    stop, _ = sequence(table)
    assert stop.next_deadline() is None
    stop.on_signal(signal.SIGHUP, 3.0)
    assert stop.next_deadline() is None


def test_a_shell_is_looked_through_and_the_relays_beside_are_left_alone():
    table = FakeTable()
    table.add(10, OWN, "sh -c python3 train.py | tee log", shell=True)
    table.add(11, 10, "python3 train.py", (TERM,))
    table.add(12, 10, "tee log")
    table.add(13, 11, "worker", (TERM,))
    stop, log = sequence(table)
    stop.on_signal(TERM, 5.0)
    assert table.got(TERM) == ["python3 train.py"]
    record = log.deliveries()[0]
    assert record["targets"] == [11] and record["left"] == 3 and record["rule"] == "handlers"


def test_a_trapping_shell_gets_it_and_so_do_the_handlers_below():
    table = FakeTable()
    table.add(10, OWN, "bash train.sh", (TERM,), shell=True)
    table.add(11, 10, "python3 train.py", (TERM,))
    stop, _ = sequence(table)
    stop.on_signal(TERM, 5.0)
    assert sorted(table.got(TERM)) == ["bash train.sh", "python3 train.py"]


def test_the_toolkit_relay_is_looked_through():
    table = FakeTable()
    table.add(10, OWN, "python3 -m toolkit train")  # handles nothing
    table.add(11, 10, "python3 train.py", (TERM,))
    stop, _ = sequence(table)
    stop.on_signal(TERM, 5.0)
    assert table.got(TERM) == ["python3 train.py"]


def test_the_warning_goes_past_a_launcher_that_does_not_handle_it_to_the_ranks():
    table = FakeTable()
    table.add(10, OWN, "torchrun", (TERM, INT, signal.SIGHUP, signal.SIGQUIT))
    table.add(11, 10, "rank 0", (TERM, USR1), pgid=11)
    table.add(12, 10, "rank 1", (TERM, USR1), pgid=12)
    stop, _ = sequence(table, max_runtime=100.0, warn_before=30.0)
    run_until(stop, 70.0)
    assert table.got(USR1) == ["rank 0", "rank 1"]
    assert table.procs[10].running
    stop.on_signal(TERM, 80.0)
    assert table.got(TERM) == ["torchrun"]


def test_a_warning_that_nobody_handles_is_not_sent():
    table = FakeTable()
    table.add(10, OWN, "sh train.sh", shell=True)
    table.add(11, 10, "python3 train.py", (TERM,))
    stop, log = sequence(table, max_runtime=100.0, warn_before=30.0)
    run_until(stop, 70.0)
    assert table.sent == [] and table.procs[10].running
    assert any(level == "warning" and "SIGUSR1 not sent" in msg for level, msg, _ in log.records)


def test_with_no_handler_the_group_gets_it_at_once():
    table = FakeTable()
    table.add(10, OWN, "sh -c sleep 100", shell=True)
    table.add(11, 10, "sleep 100")
    stop, log = sequence(table)
    stop.on_signal(TERM, 5.0)
    assert sorted(table.got(TERM)) == ["sh -c sleep 100", "sleep 100"]
    assert log.deliveries()[0]["rule"] == "no_handler"


def test_a_stop_in_the_first_second_waits_for_a_handler_and_the_clock_runs_from_its_arrival():
    table = FakeTable()
    table.add(10, OWN, "python3 train.py")  # its handler is not installed yet
    stop, log = sequence(table)
    stop.on_signal(TERM, 0.05)
    assert table.sent == [] and stop.held == TERM
    assert stop.kill_at == pytest.approx(10.05) and stop.next_deadline() == pytest.approx(0.05 + HOLD_POLL)
    run_until(stop, 0.39)
    assert table.sent == []
    table.procs[10].handles.add(TERM)  # the interpreter installs it at 400 ms
    run_until(stop, 0.4 + HOLD_POLL + 1e-9)  # found at the next look, at most 10 ms later
    assert table.sent == [(10, TERM)]
    assert [r["rule"] for r in log.deliveries()] == ["held", "handlers"]


def test_a_held_stop_goes_by_the_rule_when_the_first_second_ends():
    table = FakeTable()
    table.add(10, OWN, "sleep 100")
    stop, log = sequence(table)
    stop.on_signal(TERM, 0.01)
    run_until(stop, START_WINDOW - 0.02)
    assert table.sent == []
    run_until(stop, START_WINDOW + HOLD_POLL)
    assert table.sent == [(10, TERM)] and log.deliveries()[-1]["rule"] == "no_handler"


def test_the_main_child_exiting_ends_a_hold_at_once():
    table = FakeTable()
    table.add(10, OWN, "sh -c 'sleep 100 & exit 0'", shell=True)
    table.add(11, 10, "sleep 100")
    stop, _ = sequence(table)
    stop.on_signal(TERM, 0.01)
    table.exit(10)
    stop.on_main_exit(0.02, children_left=True)
    assert table.sent == [(11, TERM)]


def test_a_stop_after_the_first_second_is_never_held():
    table = FakeTable()
    table.add(10, OWN, "sleep 100")
    stop, _ = sequence(table)
    stop.on_signal(TERM, START_WINDOW + 0.001)
    assert table.sent == [(10, TERM)] and stop.held is None


def test_a_stop_that_finishes_gives_what_is_left_a_second_then_the_rule_again():
    table = FakeTable()
    table.add(10, OWN, "sh -c 'python3 a.py; python3 b.py'", shell=True)
    table.add(11, 10, "python3 a.py", (TERM,))
    stop, log = sequence(table)
    stop.on_signal(TERM, 5.0)
    assert table.got(TERM) == ["python3 a.py"]
    assert stop.next_deadline() == pytest.approx(5.0 + WATCH_POLL)
    table.exit(11)  # a.py saves and exits 0; the shell goes on to b.py
    table.add(12, 10, "python3 b.py")
    run_until(stop, 5.0 + WATCH_POLL)  # the next look sees it gone
    assert stop.settle_at == pytest.approx(5.0 + WATCH_POLL + SETTLE) and stop.poll_at is None
    run_until(stop, 5.0 + WATCH_POLL + SETTLE - 0.01)
    assert table.got(TERM) == ["python3 a.py"]  # b.py runs undisturbed for its second
    run_until(stop, 7.0)
    # b.py does not handle TERM: the group, the shell with it.
    assert sorted(table.got(TERM)) == ["python3 a.py", "python3 b.py", "sh -c 'python3 a.py; python3 b.py'"]
    assert stop.kill_at == 15.0  # the grace clock never restarted


def test_a_relay_that_ends_on_its_own_is_never_signalled():
    table = FakeTable()
    table.add(10, OWN, "python3 -m toolkit train")
    table.add(11, 10, "python3 train.py", (TERM,))
    stop, _ = sequence(table)
    stop.on_signal(TERM, 5.0)
    table.exit(11)
    run_until(stop, 5.0 + WATCH_POLL)
    table.exit(10)  # the relay exits with its child's status
    stop.on_main_exit(5.2, children_left=False)
    run_until(stop, 7.0)
    assert table.got(TERM) == ["python3 train.py"]


@pytest.mark.parametrize("signo", [TSTP, signal.SIGCONT, signal.SIGWINCH])
def test_job_control_and_window_size_go_to_the_group(signo):
    table = FakeTable()
    python_job(table, handles=(TERM, signo))
    stop, log = sequence(table)
    stop.on_signal(signo, 1.0)
    assert sorted(pid for pid, _ in table.sent) == [10, 11, 12]
    assert log.deliveries()[0]["rule"] == "group"


@pytest.mark.parametrize("forward, expected", [("group", [10, 11, 12]), ("child", [10])])
def test_forward_group_and_child(forward, expected):
    table = FakeTable()
    python_job(table)
    stop, log = sequence(table, forward=forward)
    stop.on_signal(TERM, 0.01)  # never held in these modes
    assert sorted(pid for pid, _ in table.sent) == expected
    assert log.deliveries()[0]["rule"] == forward


def test_a_rewrite_is_applied_before_the_rule():
    table = FakeTable()
    table.add(10, OWN, "python3 train.py", (USR1,))
    stop, log = sequence(table, rewrite={TERM: USR1})
    stop.on_signal(TERM, 5.0)
    assert table.sent == [(10, USR1)] and log.deliveries()[0]["received"] == "SIGTERM"


def test_the_grace_ends_in_sigkill_to_everything():
    table = FakeTable()
    table.add(10, OWN, "python3 train.py", (TERM,))
    table.add(11, 10, "worker")
    stop, _ = sequence(table)
    stop.on_signal(TERM, 5.0)
    run_until(stop, 15.0)
    assert stop.killing and stop.sent_sigkill and not table.live()
    assert stop.poll_at is None and stop.settle_at is None


def test_an_adopted_orphan_that_handles_it_gets_it_beside_the_main_child():
    table = FakeTable()
    table.add(10, OWN, "tail -f /dev/null")
    table.add(20, OWN, "server", (TERM,), pgid=20)  # daemonized: reparented to sminit
    stop, _ = sequence(table)
    stop.on_signal(TERM, 5.0)
    assert table.got(TERM) == ["server"]
    table.exit(20)
    run_until(stop, 7.0)
    assert table.got(TERM) == ["server", "tail -f /dev/null"]


def test_a_target_that_exits_before_its_signal_leaves_the_rest_its_second_then_the_rule():
    table = FakeTable()
    table.add(10, OWN, "sh -c 'python3 a.py; python3 b.py'", shell=True)
    table.add(11, 10, "python3 a.py", (TERM,))
    send = table.send

    def exits_first(proc: Proc, signo: int) -> bool:
        if proc.pid == 11:  # a.py ends between the look and the signal; the shell starts b.py
            table.exit(11)
            table.add(12, 10, "python3 b.py")
        return send(proc, signo)

    table.send = exits_first  # type: ignore[method-assign]
    stop, _ = sequence(table)
    stop.on_signal(TERM, 5.0)
    assert table.sent == [] and stop.settle_at == pytest.approx(5.0 + SETTLE)
    run_until(stop, 5.0 + SETTLE)
    assert sorted(table.got(TERM)) == ["python3 b.py", "sh -c 'python3 a.py; python3 b.py'"]


def test_zombies_are_not_part_of_the_job(tmp_path):
    import os
    import time

    from sminit import proctree

    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline = time.monotonic() + 10
        while proctree._stat(pid)[3] != b"Z":  # exited, not yet reaped
            assert time.monotonic() < deadline
            time.sleep(0.005)
        assert pid not in [proc.pid for proc in proctree.descendants()]
    finally:
        os.waitpid(pid, 0)


def test_a_process_waiting_in_sigwaitinfo_handles_what_it_waits_for():
    table = FakeTable()
    table.add(10, OWN, "dumb-init python3 train.py")  # blocks everything, waits in sigwait
    table.add(11, 10, "python3 train.py", (TERM,))
    table.waited = lambda pid: (1 << (TERM - 1)) if pid == 10 else 0  # type: ignore[method-assign]
    stop, _ = sequence(table)
    stop.on_signal(TERM, 5.0)
    assert table.got(TERM) == ["dumb-init python3 train.py"]
