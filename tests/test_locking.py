"""The lock API of Node 5 and the lock protocol of docs/architecture.md ("Locks").

Covers: ReadLock/WriteLock as context managers and through ``_lock()``/``_unlock()``,
``need_lock``/``has_lock``, FileLocksSnapshot, module constants read at call time, misuse
that fails fast, reads and sessions inside held locks, request order (readers cannot starve
a writer), orphan removal (dead pid, reused pid, expired lease), lease keep-alive, fencing,
and the CPU cost of waiting.

Lock file names are read from the outside, following docs/architecture.md:
``<order>.<pid>.<token>.<tid>.<nonce>.<need|has>.<read|write>.lock`` in the database's
private folder.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import dictdatabase as DDB
from dictdatabase import errors, locking, utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ddb_workers as W

FAST = 0.1  # "at once": misuse must be refused within this many seconds
JOIN = 20.0  # no thread of a test may run longer than this


@pytest.fixture
def fork():
    return multiprocessing.get_context("fork")


# ---------------------------------------------------------------------------------------
# helpers


class Runner:
    """Run a function in a thread; keep its result or exception; join with a timeout."""

    def __init__(self, target, *args, name: str = "runner") -> None:
        self.result = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._target, self._args = target, args
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self._target(*self._args)
        except BaseException as error:
            self.error = error
        finally:
            self.done.set()

    def join(self, timeout: float = JOIN):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"thread {self.thread.name} still runs after {timeout} s"
        return self.result


def folder_of(name: str) -> str:
    """The private folder of a database, as the Node 5 API reports it."""
    return locking.WriteLock(name).need_lock.folder


def lock_names(name: str) -> list:
    try:
        return sorted(entry for entry in os.listdir(folder_of(name)) if entry.endswith(".lock"))
    except FileNotFoundError:
        return []


def parsed(name: str) -> list:
    """``(pid, tid, stage, mode)`` of every lock file of ``name``."""
    out = []
    for entry in lock_names(name):
        parts = entry.split(".")
        out.append((int(parts[1]), int(parts[3]), parts[5], parts[6]))
    return out


def wait_for(predicate, timeout: float = 10.0) -> None:
    assert W.wait_until(predicate, timeout), f"condition not reached within {timeout} s"


def fake_lock_file(name: str, pid: int, token: str, stage: str, mode: str, *, age_ns: int = 10**9) -> str:
    """Put a lock file of someone else into the private folder; return its path."""
    folder = folder_of(name)
    os.makedirs(folder, exist_ok=True)
    order = time.monotonic_ns() - age_ns
    path = os.path.join(folder, f"{order:020d}.{pid}.{token}.4242.abcdef01.{stage}.{mode}.lock")
    with open(path, "wb"):
        pass
    return path


@pytest.fixture
def dead_process():
    """``(pid, token)`` of a process that ran and has exited (and was reaped)."""
    child = subprocess.Popen(["sleep", "30"])
    token = W.start_token(child.pid)
    child.kill()
    child.wait(10)
    assert W.process_state(child.pid) is None
    return child.pid, token


@pytest.fixture
def live_process():
    """``(pid, token)`` of a process that runs for the whole test."""
    child = subprocess.Popen(["sleep", "60"])
    try:
        yield child.pid, W.start_token(child.pid)
    finally:
        child.kill()
        child.wait(10)


def acquire_timed(lock: locking.AbstractLock) -> float:
    start = time.monotonic()
    lock._lock()
    return time.monotonic() - start


# ---------------------------------------------------------------------------------------
# The basic API


def test_read_lock_is_a_context_manager(storage):
    lock = locking.ReadLock("users")
    assert lock_names("users") == []
    with lock as entered:
        assert entered is lock
        assert parsed("users") == [(os.getpid(), threading.get_ident(), "has", "read")]
    assert lock_names("users") == []


def test_write_lock_lock_and_unlock(storage):
    lock = locking.WriteLock("users")
    lock._lock()
    try:
        assert parsed("users") == [(os.getpid(), threading.get_ident(), "has", "write")]
    finally:
        lock._unlock()
    assert lock_names("users") == []
    lock._unlock()
    assert lock_names("users") == []
    with lock:  # and the object can be used again
        assert len(lock_names("users")) == 1
    assert lock_names("users") == []


@pytest.mark.parametrize(("cls", "mode"), [(locking.ReadLock, "read"), (locking.WriteLock, "write")])
def test_need_lock_and_has_lock_describe_the_request(storage, cls, mode):
    lock = cls("a/b")
    for meta, stage in ((lock.need_lock, "need"), (lock.has_lock, "has")):
        assert isinstance(meta, locking.LockFileMeta)
        assert meta.stage == stage
        assert meta.mode == mode
        assert meta.pid == os.getpid()
        assert meta.db_name == "a/b"
    with lock:
        assert os.path.exists(lock.has_lock.path)
        assert not os.path.exists(lock.need_lock.path)
        assert os.path.basename(lock.has_lock.path) in lock_names("a/b")
    assert not os.path.exists(lock.has_lock.path)


def test_snapshot_without_locks(storage):
    snapshot = locking.FileLocksSnapshot(locking.WriteLock("users").need_lock)
    assert snapshot.locks == []
    assert not snapshot.any_has_locks
    assert not snapshot.any_write_locks
    assert not snapshot.any_has_write_locks


def test_snapshot_shows_a_held_read_lock_and_a_waiting_writer(storage):
    locking.AQUIRE_LOCK_TIMEOUT = 10.0
    reader = locking.ReadLock("users")
    writer = locking.WriteLock("users")
    with reader:
        snapshot = locking.FileLocksSnapshot(reader.has_lock)
        assert [(m.stage, m.mode) for m in snapshot.locks] == [("has", "read")]
        assert snapshot.any_has_locks
        assert not snapshot.any_write_locks
        assert not snapshot.any_has_write_locks

        runner = Runner(writer.__enter__, name="writer")
        wait_for(
            lambda: (
                ("need", "write")
                in [(m.stage, m.mode) for m in locking.FileLocksSnapshot(writer.need_lock).locks]
            )
        )
        snapshot = locking.FileLocksSnapshot(writer.need_lock)
        assert sorted((m.stage, m.mode) for m in snapshot.locks) == [("has", "read"), ("need", "write")]
        assert snapshot.any_has_locks
        assert snapshot.any_write_locks
        assert not snapshot.any_has_write_locks
        assert not runner.done.is_set()
    runner.join()
    assert runner.error is None
    snapshot = locking.FileLocksSnapshot(writer.need_lock)
    assert [(m.stage, m.mode) for m in snapshot.locks] == [("has", "write")]
    assert snapshot.any_has_write_locks
    writer._unlock()
    assert not locking.FileLocksSnapshot(writer.need_lock).any_has_locks


def test_readers_share_the_lock(storage):
    locking.AQUIRE_LOCK_TIMEOUT = 10.0
    both = threading.Barrier(2, timeout=10)

    def read_and_meet():
        with locking.ReadLock("users"):
            both.wait()  # only returns when the other thread holds its read lock as well
            count = len(parsed("users"))
            both.wait()  # neither releases before both have looked
            return count

    runners = [Runner(read_and_meet, name=f"reader{i}") for i in range(2)]
    for runner in runners:
        runner.join()
        assert runner.error is None
        assert runner.result == 2


@pytest.mark.parametrize("second", ["read", "write"])
def test_a_write_lock_excludes_everybody(storage, second):
    locking.AQUIRE_LOCK_TIMEOUT = 10.0
    entered = threading.Event()

    def take():
        lock = locking.ReadLock("users") if second == "read" else locking.WriteLock("users")
        with lock:
            entered.set()

    with locking.WriteLock("users"):
        runner = Runner(take)
        wait_for(lambda: any(stage == "need" for _, _, stage, _ in parsed("users")))
        assert not entered.wait(0.3)
    assert entered.wait(10)
    runner.join()
    assert runner.error is None
    assert lock_names("users") == []


def test_node5_example(storage):
    DDB.at("users").create({"u1": {"name": "Ann", "age": 25}})
    read_lock = locking.ReadLock("users")
    write_lock = locking.WriteLock("users")

    with read_lock:
        user_data = DDB.at("users", key="u1").read()
    assert user_data == {"name": "Ann", "age": 25}

    with write_lock, DDB.at("users").session() as (session, users):
        users["u1"]["age"] = 26
        session.write()
    assert DDB.at("users", key="u1").read()["age"] == 26

    locking.AQUIRE_LOCK_TIMEOUT = 30.0
    locking.REMOVE_ORPHAN_LOCK_TIMEOUT = 60.0

    lock_snapshot = locking.FileLocksSnapshot(write_lock.need_lock)
    assert len(lock_snapshot.locks) == 0
    assert lock_snapshot.any_write_locks is False

    blocked = False
    try:
        with read_lock, read_lock:
            pass
    except RuntimeError:
        blocked = True
    assert blocked
    assert lock_names("users") == []


# ---------------------------------------------------------------------------------------
# Constants are read at call time


def test_lowered_acquire_timeout_makes_a_blocked_acquire_fail_fast(storage):
    locking.AQUIRE_LOCK_TIMEOUT = 0.3
    with locking.WriteLock("orders/2024"):
        start = time.monotonic()
        runner = Runner(locking.WriteLock("orders/2024")._lock)
        runner.join()
        elapsed = time.monotonic() - start
    assert isinstance(runner.error, errors.LockError)
    assert isinstance(runner.error, RuntimeError)
    assert 0.25 <= elapsed < 3.0
    assert "orders/2024" in str(runner.error)
    assert lock_names("orders/2024") == []  # the waiter's request file is gone too


def test_acquire_timeout_change_applies_to_the_next_lock(storage):
    with locking.WriteLock("users"):
        durations = []
        for timeout in (0.1, 0.6):
            locking.AQUIRE_LOCK_TIMEOUT = timeout
            start = time.monotonic()
            runner = Runner(locking.ReadLock("users")._lock)
            runner.join()
            durations.append(time.monotonic() - start)
            assert isinstance(runner.error, errors.LockError)
    assert durations[0] < 0.5 <= durations[1]


# ---------------------------------------------------------------------------------------
# Misuse fails fast and leaves nothing behind


NESTINGS = [
    ("read", "read"),
    ("write", "write"),
    ("write", "read"),  # read in write
    ("read", "write"),  # write in read
]


def make_lock(mode: str, name: str = "users") -> locking.AbstractLock:
    return locking.ReadLock(name) if mode == "read" else locking.WriteLock(name)


@pytest.mark.parametrize(("outer_mode", "inner_mode"), NESTINGS)
def test_nested_lock_is_refused_at_once(storage, outer_mode, inner_mode):
    locking.AQUIRE_LOCK_TIMEOUT = 5.0  # a wait would show up as 5 s, not hang the run
    outer = make_lock(outer_mode)
    with outer:
        before = lock_names("users")
        start = time.monotonic()
        with pytest.raises(errors.LockError) as caught, make_lock(inner_mode):
            pass
        assert time.monotonic() - start < FAST
        assert isinstance(caught.value, RuntimeError)
        assert "users" in str(caught.value)
        assert lock_names("users") == before  # no need file, no second has file
        assert outer.held
    assert lock_names("users") == []
    with make_lock(inner_mode):  # nothing stuck: the inner kind works afterwards
        pass
    assert lock_names("users") == []


@pytest.mark.parametrize("mode", ["read", "write"])
def test_same_lock_object_nested_is_refused(storage, mode):
    """The Node 5 example: ``with read_lock: with read_lock:`` raises RuntimeError."""
    locking.AQUIRE_LOCK_TIMEOUT = 5.0
    lock = make_lock(mode)
    start = time.monotonic()
    with pytest.raises(RuntimeError), lock, lock:
        pass
    assert time.monotonic() - start < FAST
    assert not lock.held
    assert lock_names("users") == []


def test_nesting_on_different_databases_is_fine(storage):
    with locking.WriteLock("a"), locking.WriteLock("b"), locking.ReadLock("c"):
        assert len(lock_names("a")) == len(lock_names("b")) == len(lock_names("c")) == 1
    assert lock_names("a") == lock_names("b") == lock_names("c") == []


@pytest.fixture
def users(storage):
    DDB.at("users").create({"u1": {"name": "Ann", "age": 25}, "u2": {"name": "Bob", "age": 30}})
    return "users"


@pytest.fixture(params=["small", "large"])
def sized_users(request, storage):
    data = {"u1": {"name": "Ann", "age": 25}, "u2": {"name": "Bob", "age": 30}}
    if request.param == "large":
        data.update({f"pad{i:05d}": "x" * 90 for i in range(1000)})  # ~100 KiB: index path
    DDB.at("users").create(data)
    return data


SESSION_KINDS = [
    ("full", lambda: DDB.at("users").session()),
    ("key", lambda: DDB.at("users", key="u1").session()),
    ("where", lambda: DDB.at("users", where=lambda k, v: True).session()),
]


@pytest.mark.parametrize("outer", SESSION_KINDS, ids=lambda kind: kind[0])
@pytest.mark.parametrize("inner", SESSION_KINDS, ids=lambda kind: kind[0])
def test_second_session_in_the_same_thread_is_refused_at_once(users, outer, inner):
    locking.AQUIRE_LOCK_TIMEOUT = 5.0
    with outer[1]() as (session, _):
        before = lock_names("users")
        start = time.monotonic()
        with pytest.raises(errors.LockError), inner[1]():
            pass
        assert time.monotonic() - start < FAST
        assert lock_names("users") == before
        session.write()  # the outer session still works
    assert lock_names("users") == []


def test_writes_inside_a_read_lock_are_refused_at_once(users):
    """A session or a write inside this thread's read lock would wait for itself."""
    locking.AQUIRE_LOCK_TIMEOUT = 5.0
    with locking.ReadLock("users"):
        for attempt in (
            lambda: DDB.at("users").session().__enter__(),
            lambda: DDB.at("users", key="u1").session().__enter__(),
            lambda: DDB.at("users").update({"u3": {}}),
            lambda: DDB.at("users").create({}, force_overwrite=True),
        ):
            start = time.monotonic()
            with pytest.raises(errors.LockError):
                attempt()
            assert time.monotonic() - start < FAST
        assert len(lock_names("users")) == 1
    assert DDB.at("users").read()["u1"]["name"] == "Ann"
    assert lock_names("users") == []


# ---------------------------------------------------------------------------------------
# Reads inside sessions and locks


def _read_everything(expected: dict) -> None:
    start = time.monotonic()
    assert DDB.at("users").read() == expected
    assert DDB.at("users", key="u1").read() == expected["u1"]
    assert DDB.at("users", key="nope").read() is None
    assert DDB.at("users", key="u2").exists()
    assert DDB.at("users", where=lambda k, v: k == "u2").read() == {"u2": expected["u2"]}
    assert time.monotonic() - start < 1.0


def test_reads_inside_own_full_session(sized_users):
    locking.AQUIRE_LOCK_TIMEOUT = 3.0
    with DDB.at("users").session() as (session, data):
        _read_everything(sized_users)
        data["u1"]["age"] = 26
        session.write()
        sized_users["u1"]["age"] = 26
        _read_everything(sized_users)


def test_reads_inside_own_key_session(sized_users):
    locking.AQUIRE_LOCK_TIMEOUT = 3.0
    with DDB.at("users", key="u1").session() as (session, u1):
        _read_everything(sized_users)
        u1["age"] = 27
        session.write()
        sized_users["u1"]["age"] = 27
        _read_everything(sized_users)


@pytest.mark.parametrize("mode", ["read", "write"])
def test_reads_inside_a_held_lock(sized_users, mode):
    locking.AQUIRE_LOCK_TIMEOUT = 3.0
    with make_lock(mode):
        _read_everything(sized_users)


def test_reads_do_not_wait_for_a_writer_in_another_thread(users):
    locking.AQUIRE_LOCK_TIMEOUT = 5.0
    holding, release = threading.Event(), threading.Event()

    def hold_session():
        with DDB.at("users").session() as (_session, data):
            data["u1"]["age"] = 99
            holding.set()
            release.wait(JOIN)

    runner = Runner(hold_session)
    assert holding.wait(10)
    try:
        start = time.monotonic()
        assert DDB.at("users", key="u1").read()["age"] == 25
        assert DDB.at("users").read()["u2"]["name"] == "Bob"
        assert time.monotonic() - start < 1.0
    finally:
        release.set()
    runner.join()
    assert runner.error is None


# ---------------------------------------------------------------------------------------
# Sessions inside an explicit write lock (Node 5)


def _another_thread_can_write(name: str) -> bool:
    locking.AQUIRE_LOCK_TIMEOUT = 0.2

    def take_and_release():
        lock = locking.WriteLock(name)
        lock._lock()
        lock._unlock()

    runner = Runner(take_and_release)
    runner.join()
    if runner.error is None:
        return True
    assert isinstance(runner.error, errors.LockError)
    return False


def test_session_inside_explicit_write_lock_node5(users):
    write_lock = locking.WriteLock("users")
    with write_lock:
        with DDB.at("users").session() as (session, data):
            data["u1"]["age"] = 26
            session.write()
        # the session did not release the explicit lock
        assert write_lock.held
        assert parsed("users") == [(os.getpid(), threading.get_ident(), "has", "write")]
        assert not _another_thread_can_write("users")
        with DDB.at("users", key="u2").session() as (session, u2):
            u2["age"] = 31
            session.write()
        DDB.at("users").update({"u3": {"name": "Cid", "age": 40}})
        assert write_lock.held
        assert len(lock_names("users")) == 1
        assert DDB.at("users", key="u1").read()["age"] == 26
    assert lock_names("users") == []
    assert DDB.at("users").read() == {
        "u1": {"name": "Ann", "age": 26},
        "u2": {"name": "Bob", "age": 31},
        "u3": {"name": "Cid", "age": 40},
    }


def test_session_in_explicit_lock_exception_keeps_the_lock(users):
    with locking.WriteLock("users") as lock:
        with pytest.raises(ZeroDivisionError), DDB.at("users").session() as (_session, data):
            data["u1"]["age"] = 1
            _ = 1 / 0
        assert lock.held
        assert len(lock_names("users")) == 1
    assert lock_names("users") == []
    assert DDB.at("users", key="u1").read()["age"] == 25


def test_safe_context_holds_the_lock(users):
    with DDB.safe_context("users", write=True):
        assert [stage_mode[2:] for stage_mode in parsed("users")] == [("has", "write")]
        with DDB.at("users").session() as (session, data):
            data["u2"]["age"] = 1
            session.write()
    with DDB.safe_context("users"):
        assert [stage_mode[2:] for stage_mode in parsed("users")] == [("has", "read")]
    assert lock_names("users") == []


# ---------------------------------------------------------------------------------------
# Order: a writer that asked first is served before a later reader


def test_a_waiting_writer_is_served_before_a_later_reader(storage):
    locking.AQUIRE_LOCK_TIMEOUT = 10.0
    order = []
    order_lock = threading.Lock()
    writer_in, reader_in = threading.Event(), threading.Event()

    def take(mode: str, event: threading.Event, hold: float):
        with make_lock(mode):
            with order_lock:
                order.append(mode)
            event.set()
            time.sleep(hold)

    first = locking.ReadLock("users")
    first._lock()
    try:
        writer = Runner(take, "write", writer_in, 0.3, name="writer")
        wait_for(lambda: ("need", "write") in [p[2:] for p in parsed("users")])
        time.sleep(0.2)  # a request may be overtaken during its first milliseconds (FAIRNESS_WINDOW)
        reader = Runner(take, "read", reader_in, 0.0, name="reader")
        wait_for(lambda: ("need", "read") in [p[2:] for p in parsed("users")])
        # Only a read lock is held, yet the later reader must not overtake the writer.
        assert not reader_in.wait(0.3)
        assert not writer_in.is_set()
    finally:
        first._unlock()
    assert writer_in.wait(10)
    # While the writer holds the lock the reader still waits.
    assert not reader_in.wait(0.1)
    writer.join()
    reader.join()
    assert writer.error is None
    assert reader.error is None
    assert order == ["write", "read"]


def test_a_stream_of_readers_cannot_starve_a_writer(storage):
    locking.AQUIRE_LOCK_TIMEOUT = 10.0
    stop = threading.Event()
    reads = [0, 0, 0]

    def keep_reading(slot: int):
        # Three readers overlapping all the time: at almost every instant someone reads.
        while not stop.is_set():
            with locking.ReadLock("users"):
                reads[slot] += 1
                time.sleep(0.01)

    readers = [Runner(keep_reading, i, name=f"reader{i}") for i in range(3)]
    try:
        wait_for(lambda: min(reads) > 3)
        start = time.monotonic()
        with locking.WriteLock("users"):
            waited = time.monotonic() - start
            assert all(p[2:] != ("has", "read") for p in parsed("users"))
        before = sum(reads)
        wait_for(lambda: sum(reads) > before + 3)  # readers go on afterwards
    finally:
        stop.set()
    for runner in readers:
        runner.join()
        assert runner.error is None
    assert waited < 2.0


# ---------------------------------------------------------------------------------------
# Orphans


@pytest.mark.parametrize(
    ("stage", "mode"), [("has", "write"), ("has", "read"), ("need", "write")], ids=lambda s: s
)
def test_lock_of_a_dead_process_is_removed_at_once(storage, dead_process, stage, mode):
    locking.AQUIRE_LOCK_TIMEOUT = 10.0
    pid, token = dead_process
    orphan = fake_lock_file("users", pid, token, stage, mode)
    # Its temporary file, as a writer killed in the middle of a write leaves it.
    temp = os.path.join(folder_of("users"), f"{pid}.{token}.7.tmp")
    with open(temp, "wb") as handle:
        handle.write(b'{"half": ')
    lock = locking.WriteLock("users")
    try:
        assert acquire_timed(lock) < FAST
        assert not os.path.exists(orphan)
        assert parsed("users") == [(os.getpid(), threading.get_ident(), "has", "write")]
    finally:
        lock._unlock()
    assert not os.path.exists(temp)  # swept by the writer that removed the orphan


@pytest.mark.parametrize("record_locks", [True, False], ids=["ofd-record-locks", "flock"])
def test_a_waiter_shows_presence_to_releasers(storage, monkeypatch, record_locks):
    """Releasers skip listing the folder unless a waiter shows presence on ``waiting``: with
    open-file-description record locks on 64-bit Linux, else with flock."""
    if record_locks and not locking._USE_RECORD_LOCKS:
        pytest.skip("no OFD record locks on this platform")
    monkeypatch.setattr(locking, "_USE_RECORD_LOCKS", record_locks)
    folder = folder_of("users")
    os.makedirs(folder, exist_ok=True)
    assert not locking._anyone_waiting(folder)
    announced = locking._announce_waiting(folder)
    assert announced >= 0
    try:
        assert locking._anyone_waiting(folder)
    finally:
        utils.untrack_lock_fd(announced)
        os.close(announced)
    assert not locking._anyone_waiting(folder)


_LEFTOVER_CHILD = """
import sys, time
import dictdatabase as DDB
from dictdatabase import locking
DDB.config.storage_directory = sys.argv[1]
with locking.WriteLock("users"):  # a visible lock: it queues, so it opens a wake channel
    pass
print("done", flush=True)
"""


def test_a_process_that_exits_leaves_no_parked_file_or_wake_channel(storage):
    """Lock files are parked and wake channels kept for reuse while a process runs; at exit
    they go, so short-lived processes do not fill the lock folder."""
    child = subprocess.run(
        [sys.executable, "-c", _LEFTOVER_CHILD, DDB.config.storage_directory],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "done"
    folder = folder_of("users")
    assert os.path.isdir(folder)
    left = [entry for entry in os.listdir(folder) if entry.startswith(("parked.", "wake."))]
    assert left == []


def test_leftovers_of_a_killed_process_are_swept_by_the_next_waiter(storage, dead_process):
    pid, token = dead_process
    folder = folder_of("users")
    os.makedirs(folder, exist_ok=True)
    leftovers = [os.path.join(folder, f"parked.{pid}.{token}.4242"), os.path.join(folder, f"wake.{pid}.4242")]
    for path in leftovers:
        with open(path, "wb"):
            pass
    locking._last_sweeps.clear()  # this process has not swept the folder yet
    with locking.WriteLock("users"):  # a visible lock: it waits in the queue protocol
        pass
    assert [path for path in leftovers if os.path.exists(path)] == []


def test_lock_of_a_reused_pid_is_removed_at_once(storage, live_process):
    """A live pid whose start token differs from the lock's belongs to another process."""
    locking.AQUIRE_LOCK_TIMEOUT = 10.0
    pid, token = live_process
    orphan = fake_lock_file("users", pid, str(int(token) + 1), "has", "write")
    lock = locking.WriteLock("users")
    try:
        assert acquire_timed(lock) < FAST
        assert not os.path.exists(orphan)
    finally:
        lock._unlock()


def test_a_live_lock_is_not_broken_before_the_orphan_timeout(storage, fork):
    settings = W.current_settings()  # REMOVE_ORPHAN_LOCK_TIMEOUT keeps its default (20 s)
    holding, release = fork.Event(), fork.Event()
    holder = fork.Process(target=W.hold_lock, args=(storage, settings, "users", "write", holding, release))
    holder.start()
    try:
        assert holding.wait(10)
        held = lock_names("users")
        locking.AQUIRE_LOCK_TIMEOUT = 0.5
        with pytest.raises(errors.LockError) as caught:
            locking.WriteLock("users")._lock()
        assert str(holder.pid) in str(caught.value)  # the message tells who holds the lock
        assert "users" in str(caught.value)
        assert lock_names("users") == held
        assert [p[0] for p in parsed("users")] == [holder.pid]
    finally:
        release.set()
        assert W.join_or_kill([holder]) == []


def test_a_lease_not_refreshed_for_the_orphan_timeout_is_broken(storage, fork):
    """A holder that stops (SIGSTOP: its keeper thread stops too) loses its lock once its
    lease is older than the orphan timeout."""
    settings = W.current_settings(REMOVE_ORPHAN_LOCK_TIMEOUT=0.5, LOCK_KEEP_ALIVE_TIMEOUT=0.05)
    holding, release = fork.Event(), fork.Event()
    holder = fork.Process(target=W.hold_lock, args=(storage, settings, "users", "write", holding, release))
    holder.start()
    try:
        assert holding.wait(10)
        os.kill(holder.pid, signal.SIGSTOP)
        locking.REMOVE_ORPHAN_LOCK_TIMEOUT = 0.5
        locking.AQUIRE_LOCK_TIMEOUT = 10.0
        lock = locking.WriteLock("users")
        try:
            waited = acquire_timed(lock)
            assert [p[0] for p in parsed("users")] == [os.getpid()]  # its lock file is gone
        finally:
            lock._unlock()
        assert 0.45 <= waited < 3.0
    finally:
        os.kill(holder.pid, signal.SIGCONT)
        release.set()
        W.join_or_kill([holder])


def test_lease_keep_alive_keeps_a_live_holder_past_the_orphan_timeout(storage, fork):
    DDB.at("c").create({"counter": {"n": 0}})
    settings = W.current_settings(REMOVE_ORPHAN_LOCK_TIMEOUT=0.5, LOCK_KEEP_ALIVE_TIMEOUT=0.05)
    locking.REMOVE_ORPHAN_LOCK_TIMEOUT = 0.5
    locking.AQUIRE_LOCK_TIMEOUT = 1.5
    ready, go, report = fork.Event(), fork.Event(), fork.Queue()
    holder = fork.Process(target=W.lease_holder, args=(storage, settings, "c", ready, go, report))
    holder.start()
    try:
        assert ready.wait(10)
        start = time.monotonic()
        with pytest.raises(errors.LockError):
            locking.WriteLock("c")._lock()
        assert time.monotonic() - start >= 1.4
        assert W.lock_holders("c") == [holder.pid]
        go.set()
        assert report.get(timeout=10) == ("written", "")
    finally:
        go.set()
        assert W.join_or_kill([holder]) == []
    assert DDB.at("c", key="counter").read() == {"n": 0, "by": "lease holder"}
    assert lock_names("c") == []


# ---------------------------------------------------------------------------------------
# Fencing


@pytest.mark.parametrize("how", ["full", "key"])
def test_a_holder_whose_lock_was_removed_cannot_write(sized_users, how):
    locking.AQUIRE_LOCK_TIMEOUT = 5.0
    if how == "full":
        session, data = DDB.at("users").session()
        data["u1"]["name"] = "stale"
    else:
        session, data = DDB.at("users", key="u1").session()
        data["name"] = "stale"
    try:
        assert W.lock_holders("users") == [os.getpid()]
        # Replace the kernel lock file, as a waiter breaking an expired lease does.
        fresh = os.path.join(folder_of("users"), "fresh")
        with open(fresh, "wb"):
            pass
        os.replace(fresh, os.path.join(folder_of("users"), "kernel"))

        def other_writer():
            with DDB.at("users", key="u1").session() as (other, u1):
                u1["name"] = "other"
                other.write()

        runner = Runner(other_writer)
        runner.join()
        assert runner.error is None
        with pytest.raises(errors.LockError) as caught:
            session.write()
        assert "users" in str(caught.value)
    finally:
        session.close()
    expected = dict(sized_users)
    expected["u1"] = dict(sized_users["u1"], name="other")
    assert DDB.at("users").read() == expected
    assert lock_names("users") == []


def test_an_in_place_write_that_raised_is_never_applied_later(storage):
    """A write that raised must have written nothing, now and later.

    A reader holding the data file's shared kernel lock (docs/architecture.md, "Reads take
    no lock file") keeps an in-place write out until AQUIRE_LOCK_TIMEOUT; if the write then
    fails, no later operation may bring its value back.
    """
    padding = {f"pad{i:05d}": "x" * 90 for i in range(1000)}  # ~100 KiB: key writes splice
    DDB.at("big").create(dict(padding, counter={"n": 10}))
    locking.AQUIRE_LOCK_TIMEOUT = 0.5
    path = os.path.join(storage, "big.json")
    reader_fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(reader_fd, fcntl.LOCK_SH)  # a reader in the middle of a long read
        try:
            with DDB.at("big", key="counter").session() as (session, counter):
                counter["n"] = 11  # same length: an in-place write
                session.write()
            raised = False
        except errors.LockError:
            raised = True
    finally:
        os.close(reader_fd)
    expected = 10 if raised else 11
    assert DDB.at("big", key="counter").read() == {"n": expected}
    with DDB.at("big").session() as (session, data):  # the next writer (writes nothing)
        assert data["counter"] == {"n": expected}
    assert DDB.at("big", key="counter").read() == {"n": expected}
    assert DDB.at("big").read() == dict(padding, counter={"n": expected})


# ---------------------------------------------------------------------------------------
# Waiting is cheap


def test_a_blocked_waiter_uses_almost_no_cpu(storage, fork):
    settings = W.current_settings(AQUIRE_LOCK_TIMEOUT=1.0)
    results = fork.Queue()
    with locking.WriteLock("busy"):
        waiter = fork.Process(target=W.measure_blocked_wait, args=(storage, settings, "busy", results))
        waiter.start()
        try:
            outcome, wall, cpu = results.get(timeout=15)
        finally:
            problems = W.join_or_kill([waiter])
    assert problems == []
    assert outcome == "LockError"
    assert wall >= 0.9
    assert cpu < 0.2, f"a waiter blocked for {wall:.2f} s used {cpu:.3f} s of CPU"


# ---------------------------------------------------------------------------------------
# The kernel lock under sessions, and the fairness window


def test_a_session_shows_in_the_snapshot_as_a_kernel_held_write_lock(storage):
    DDB.at("db").create({"a": 1})
    with DDB.at("db").session():
        snapshot = locking.FileLocksSnapshot(locking.WriteLock("db").need_lock)
        assert [(m.pid, m.stage, m.mode) for m in snapshot.locks] == [(os.getpid(), "has", "write")]
        assert snapshot.any_has_write_locks
        assert lock_names("db") == []  # the library's own locks make no lock file
    assert locking.FileLocksSnapshot(locking.WriteLock("db").need_lock).locks == []


@pytest.mark.parametrize("window", [0.0, 0.3])
def test_a_request_queues_once_it_has_waited_the_fairness_window(storage, window):
    """With a window of 0 a blocked session queues (shows a ``need`` file) at once; with a
    window it first polls for that long, then queues."""
    locking.FAIRNESS_WINDOW = window
    locking.AQUIRE_LOCK_TIMEOUT = 10.0
    DDB.at("db").create({"n": 0})
    holder = locking.WriteLock("db")
    holder._lock()
    try:
        started = time.monotonic()
        runner = Runner(lambda: DDB.at("db").update({"n": 1}), name="waiting writer")
        wait_for(lambda: ("need", "write") in [(s, m) for _, _, s, m in parsed("db")])
        queued_after = time.monotonic() - started
    finally:
        holder._unlock()
    runner.join()
    assert runner.error is None
    assert DDB.at("db").read() == {"n": 1}
    if window == 0.0:
        assert queued_after < 0.2
    else:
        assert window * 0.8 <= queued_after < window + 1.0


def _child_tries_the_lock(storage: str, settings: dict, outcome) -> None:
    W.apply_settings(storage, settings)
    try:
        with DDB.at("db").session() as (session, data):
            data["by"] = "child"
            session.write()
        outcome.put("got the lock")
    except errors.LockError:
        outcome.put("timed out")


def test_a_forked_child_does_not_inherit_a_held_session_lock(storage, fork):
    """The kernel lock lives on an open file description, which fork() shares: the child
    must not find itself holding the parent's lock, and its exit must not release it."""
    DDB.at("db").create({"by": "nobody"})
    settings = W.current_settings(AQUIRE_LOCK_TIMEOUT=0.5)
    outcome = fork.Queue()
    with DDB.at("db").session() as (session, data):
        child = fork.Process(target=_child_tries_the_lock, args=(storage, settings, outcome))
        child.start()
        child.join(20)
        assert child.exitcode == 0
        assert outcome.get(timeout=5) == "timed out"
        assert W.lock_holders("db") == [os.getpid()]  # still ours after the child exited
        data["by"] = "parent"
        session.write()
    assert DDB.at("db").read() == {"by": "parent"}


def test_a_queued_request_is_served_while_another_thread_loops_on_sessions(storage):
    """Once a request has queued, newcomers queue behind it instead of barging: a thread
    that takes the lock again right after each release cannot starve it."""
    locking.AQUIRE_LOCK_TIMEOUT = 10.0
    DDB.at("db").create({"order": []})
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            _append("loop")

    looper = Runner(loop, name="looper")
    try:
        time.sleep(0.05)
        started = time.monotonic()
        with locking.WriteLock("db"):  # an explicit lock queues as soon as it is blocked
            waited = time.monotonic() - started
            _append("queued")
    finally:
        stop.set()
    looper.join()
    assert looper.error is None
    assert waited < 1.0, f"the queued request waited {waited:.2f} s"
    assert "queued" in DDB.at("db", key="order").read()


def _append(item: str) -> None:
    with DDB.at("db", key="order").session() as (session, order):
        order.append(item)
        session.write()


def _append_under_explicit_lock(item: str) -> None:
    with locking.WriteLock("db"):
        _append(item)


def test_a_holder_whose_private_folder_was_removed_cannot_write(storage):
    DDB.at("db").create({"a": 1})
    session, data = DDB.at("db").session()
    try:
        data["a"] = 2
        shutil.rmtree(folder_of("db"))  # someone cleaned up .ddb while we held the lock
        with pytest.raises(errors.LockError):
            session.write()
    finally:
        session.close()
    assert DDB.at("db").read() == {"a": 1}


# Small commits exchange the write lock's own spare without the gate; these tests pin down
# what makes that safe (io_bytes._exchange_own_spare, locking._break_kernel_lock).


def _spares(name: str) -> list:
    return sorted(entry for entry in os.listdir(folder_of(name)) if entry.startswith("spare"))


def test_a_write_lock_writes_through_a_spare_named_after_its_kernel_file(storage):
    DDB.at("db").create({"a": 1})
    for value in (2, 3):
        with DDB.at("db").session() as (session, data):
            data["a"] = value
            session.write()
    kernel = os.stat(os.path.join(folder_of("db"), utils.KERNEL_LOCK_FILE))
    assert _spares("db") == [f"spare.{kernel.st_ino}"]
    assert DDB.at("db").read() == {"a": 3}
    DDB.at("db").delete()
    assert _spares("db") == []


@pytest.mark.parametrize("how", ["full", "key"])
def test_a_small_commit_does_not_wait_for_the_gate(storage, how):
    """The lock is taken and released, and the commit done, while someone else holds the
    gate: a small session needs no gate when nobody waits."""
    DDB.at("db").create({"a": {"n": 0}})
    with DDB.at("db").session() as (session, data):  # the spare exists from here on
        session.write()
    locking.AQUIRE_LOCK_TIMEOUT = 0.5
    gate = os.open(folder_of("db"), os.O_RDONLY)
    try:
        fcntl.flock(gate, fcntl.LOCK_EX)  # another open description: excludes this process too
        started = time.monotonic()
        if how == "full":
            with DDB.at("db").session() as (session, data):
                data["a"]["n"] += 1
                session.write()
        else:
            with DDB.at("db", key="a").session() as (session, value):
                value["n"] += 1
                session.write()
        took = time.monotonic() - started
    finally:
        os.close(gate)
    assert took < 0.25, f"the session took {took:.2f} s"
    assert DDB.at("db").read() == {"a": {"n": 1}}


@pytest.mark.parametrize("exchange_fails", [False, True])
def test_a_lock_broken_just_before_the_exchange_writes_nothing(storage, monkeypatch, exchange_fails):
    """The lease is broken after the holder wrote its spare and before the exchange (or
    the holder finds its spare gone): the commit is refused, and the data stays as it was."""
    from dictdatabase import io_bytes

    DDB.at("db").create({"a": 1})
    with DDB.at("db").session() as (session, data):  # the spare exists from here on
        session.write()
    data_file = Path(storage) / "db.json"
    before = data_file.read_bytes()
    real_exchange = io_bytes._exchange
    breaks = []

    def break_then_exchange(first: str, second: str) -> None:
        if not breaks:
            breaks.append(first)
            locking._break_kernel_lock(folder_of("db"))  # what a waiter does to an expired lease
        real_exchange(first, second)

    session, data = DDB.at("db").session()
    try:
        data["a"] = 2
        if exchange_fails:
            monkeypatch.setattr(io_bytes, "_exchange", break_then_exchange)
        else:
            locking._break_kernel_lock(folder_of("db"))
        with pytest.raises(errors.LockError, match="db"):
            session.write()
    finally:
        session.close()
    assert len(breaks) == int(exchange_fails)
    assert data_file.read_bytes() == before
    monkeypatch.setattr(io_bytes, "_exchange", real_exchange)
    with DDB.at("db").session() as (session, data):  # the next holder writes as usual
        data["a"] = 3
        session.write()
    assert DDB.at("db").read() == {"a": 3}
