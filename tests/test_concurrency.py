"""Real processes and threads working on the same databases (Nodes 5, 11 and 16).

Every multi-process test runs with both the ``fork`` and the ``spawn`` start method, passes
the storage directory and settings to each child explicitly (a spawned child starts from
the library defaults), and asserts every child's exit code. Handshakes use Events and
shared memory, so the tests check the interleaving itself and not only an end count.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import dictdatabase as DDB
from dictdatabase import errors, locking

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ddb_workers as W

JOIN = 60.0


def start(ctx, target, *args, name: str):
    process = ctx.Process(target=target, args=args, name=name, daemon=True)
    process.start()
    return process


def snapshot_stages(name: str) -> list:
    """``(stage, mode)`` of every lock file of ``name``, oldest request first."""
    snapshot = locking.FileLocksSnapshot(locking.WriteLock(name).need_lock)
    return [(meta.stage, meta.mode) for meta in snapshot.locks]


def wait_for(predicate, timeout: float = 15.0) -> None:
    assert W.wait_until(predicate, timeout), f"condition not reached within {timeout} s"


# ---------------------------------------------------------------------------------------
# N processes x M increments, with readers checking every state they see


def fixed_keys(large: bool) -> dict:
    if not large:
        return {"alpha": {"x": 1}, "omega": [1, 2, 3]}
    # ~100 KiB, above the 64 KiB small-file threshold: key access goes through the index.
    return {f"k{i:04d}": {"name": "x" * 60, "i": i} for i in range(1200)}


@pytest.mark.parametrize(
    ("how", "large"),
    [("full", False), ("key", False), ("full", True), ("key", True), ("mixed", True)],
    ids=["full-small", "key-small", "full-large", "key-large", "mixed-large"],
)
def test_increments_from_many_processes_are_exact(ctx, storage, how, large):
    # The readers pause 2 ms between rounds; see test_in_place_writes_are_not_starved_by_readers
    # for readers that never pause.
    processes, increments, readers = 4, 25, 2
    fixed = fixed_keys(large)
    DDB.at("count").create(dict(fixed, counter={"n": 0}))
    if large:
        assert os.path.getsize(os.path.join(storage, "count.json")) > 64 * 1024
    settings = W.current_settings(AQUIRE_LOCK_TIMEOUT=30.0)
    stop = ctx.Event()
    reads = [ctx.Value("i", 0) for _ in range(readers)]
    reader_procs = [
        start(
            ctx,
            W.checking_reader,
            storage,
            settings,
            "count",
            fixed,
            stop,
            reads[i],
            0.002,
            name=f"reader{i}",
        )
        for i in range(readers)
    ]
    writers = [
        start(ctx, W.incrementer, storage, settings, "count", how, increments, seed, name=f"writer{seed}")
        for seed in range(processes)
    ]
    try:
        writer_problems = W.join_or_kill(writers, JOIN)
    finally:
        stop.set()
        reader_problems = W.join_or_kill(reader_procs, JOIN)
    assert writer_problems == []
    assert reader_problems == []
    assert all(r.value >= 3 for r in reads)
    assert DDB.at("count", key="counter").read() == {"n": processes * increments}
    data = DDB.at("count").read()
    assert data == dict(fixed, counter={"n": processes * increments})
    assert W.lock_files(storage) == []
    assert W.temp_files(storage) == []


def test_in_place_writes_are_not_starved_by_readers(storage):
    """Readers that never pause must not keep a key write on a large file out for ever.

    Same-length changes of a key in a large file are made in place, under an exclusive
    kernel lock on the data file that readers share; readers must not be able to starve it
    ("readers cannot starve writers", docs/architecture.md).
    """
    fixed = fixed_keys(True)
    DDB.at("count").create(dict(fixed, counter={"n": 10}))
    ctx = multiprocessing.get_context("fork")
    settings = W.current_settings()
    stop = ctx.Event()
    reads = [ctx.Value("i", 0) for _ in range(4)]
    readers = [
        start(ctx, W.checking_reader, storage, settings, "count", fixed, stop, reads[i], name=f"reader{i}")
        for i in range(4)
    ]
    locking.AQUIRE_LOCK_TIMEOUT = 3.0
    latencies, failures = [], []
    try:
        wait_for(lambda: all(r.value > 5 for r in reads))
        deadline = time.monotonic() + 12
        for _ in range(9):  # 10 -> 19: every value has the same length, so every write is in place
            started = time.monotonic()
            try:
                W.increment("count", "key")
            except errors.LockError as error:
                failures.append(str(error))
            latencies.append(time.monotonic() - started)
            if time.monotonic() > deadline:
                break
    finally:
        stop.set()
        problems = W.join_or_kill(readers, JOIN)
    assert problems == []
    assert failures == [], f"key writes timed out while readers ran: {failures[:2]}"
    assert len(latencies) == 9
    assert max(latencies) < 2.0, f"write latencies under read load: {[round(x, 2) for x in latencies]}"
    assert DDB.at("count", key="counter").read() == {"n": 19}


def test_node11_multiprocessing_example(ctx, storage):
    """Node 11: four processes create, read and update their own items of one file."""
    DDB.at("shared_db").create({}, force_overwrite=True)
    settings = W.current_settings(AQUIRE_LOCK_TIMEOUT=30.0)
    workers = [start(ctx, W.node11_worker, storage, settings, i, 10, name=f"worker{i}") for i in range(4)]
    assert W.join_or_kill(workers, JOIN) == []
    final_db = DDB.at("shared_db").read()
    assert len(final_db) == 40
    assert final_db == {
        f"proc_{p}_item_{i}": {"value": 2 * i, "process": p} for p in range(4) for i in range(10)
    }


# ---------------------------------------------------------------------------------------
# Readers overlap, a writer excludes everybody, a waiting writer goes first


def test_two_read_locks_overlap_across_processes(ctx, storage):
    settings = W.current_settings(AQUIRE_LOCK_TIMEOUT=10.0)
    first, second, release = ctx.Event(), ctx.Event(), ctx.Event()
    saw = [ctx.Value("i", -1), ctx.Value("i", -1)]
    readers = [
        start(
            ctx, W.overlapping_reader, storage, settings, "db", first, second, saw[0], release, name="reader0"
        ),
        start(
            ctx, W.overlapping_reader, storage, settings, "db", second, first, saw[1], release, name="reader1"
        ),
    ]
    try:
        assert first.wait(15)
        assert second.wait(15)
        # Both processes hold the read lock now, at the same time.
        snapshot = locking.FileLocksSnapshot(locking.ReadLock("db").need_lock)
        holders = sorted(meta.pid for meta in snapshot.locks if meta.stage == "has" and meta.mode == "read")
        assert holders == sorted(p.pid for p in readers)
        assert not snapshot.any_write_locks
    finally:
        release.set()
        problems = W.join_or_kill(readers, JOIN)
    assert problems == []
    assert [s.value for s in saw] == [1, 1]  # each saw the other holding while it held


def test_a_write_lock_excludes_readers_and_writers_across_processes(ctx, storage):
    settings = W.current_settings(AQUIRE_LOCK_TIMEOUT=15.0)
    holding, release = ctx.Event(), ctx.Event()
    holder = start(ctx, W.hold_lock, storage, settings, "db", "write", holding, release, name="holder")
    times = ctx.Array("d", 4)
    requested = [ctx.Event(), ctx.Event()]
    acquired = [ctx.Event(), ctx.Event()]
    others = []
    try:
        assert holding.wait(15)
        for slot, mode in enumerate(("read", "write")):
            others.append(
                start(
                    ctx,
                    W.interval_recorder,
                    storage,
                    settings,
                    "db",
                    mode,
                    slot,
                    requested[slot],
                    acquired[slot],
                    times,
                    0.15,
                    name=f"{mode}er",
                )
            )
        assert requested[0].wait(15)
        assert requested[1].wait(15)
        wait_for(
            lambda: sorted(snapshot_stages("db")) == [("has", "write"), ("need", "read"), ("need", "write")]
        )
        time.sleep(0.3)
        assert not acquired[0].is_set()
        assert not acquired[1].is_set()
        assert snapshot_stages("db").count(("has", "write")) == 1
        released_at = time.monotonic()
        release.set()
    finally:
        release.set()
        problems = W.join_or_kill([holder, *others], JOIN)
    assert problems == []
    read_in, read_out, write_in, write_out = list(times)
    assert read_in > released_at
    assert write_in > released_at
    # the reader and the second writer did not overlap either
    assert read_out <= write_in or write_out <= read_in
    assert W.lock_files(storage) == []


def test_a_waiting_writer_goes_before_a_later_reader_across_processes(ctx, storage):
    settings = W.current_settings(AQUIRE_LOCK_TIMEOUT=15.0)
    holding, release = ctx.Event(), ctx.Event()
    reader1 = start(ctx, W.hold_lock, storage, settings, "db", "read", holding, release, name="reader1")
    times = ctx.Array("d", 4)
    requested = [ctx.Event(), ctx.Event()]
    acquired = [ctx.Event(), ctx.Event()]
    procs = [reader1]
    try:
        assert holding.wait(15)
        procs.append(
            start(
                ctx,
                W.interval_recorder,
                storage,
                settings,
                "db",
                "write",
                0,
                requested[0],
                acquired[0],
                times,
                0.2,
                name="writer",
            )
        )
        wait_for(lambda: ("need", "write") in snapshot_stages("db"))
        time.sleep(0.2)  # a request may be overtaken during its first milliseconds (FAIRNESS_WINDOW)
        procs.append(
            start(
                ctx,
                W.interval_recorder,
                storage,
                settings,
                "db",
                "read",
                1,
                requested[1],
                acquired[1],
                times,
                0.0,
                name="reader2",
            )
        )
        wait_for(lambda: ("need", "read") in snapshot_stages("db"))
        # Only a read lock is held, yet the second reader waits behind the writer.
        time.sleep(0.3)
        assert not acquired[0].is_set()
        assert not acquired[1].is_set()
        released_at = time.monotonic()
        release.set()
    finally:
        release.set()
        problems = W.join_or_kill(procs, JOIN)
    assert problems == []
    write_in, write_out, read_in, _ = list(times)
    assert released_at < write_in < write_out <= read_in


def test_reader_writer_invariant_under_load(ctx, storage):
    settings = W.current_settings(AQUIRE_LOCK_TIMEOUT=30.0)
    state = ctx.Array("i", 4, lock=False)  # readers inside, writers inside, violations, max readers
    guard = ctx.Lock()
    procs = [
        start(
            ctx,
            W.exclusion_participant,
            storage,
            settings,
            "db",
            mode,
            15,
            state,
            guard,
            seed,
            name=f"{mode}{seed}",
        )
        for seed, mode in enumerate(("read", "read", "read", "write", "write"))
    ]
    assert W.join_or_kill(procs, JOIN) == []
    assert state[2] == 0, "a writer shared the lock with someone"
    assert state[0] == 0
    assert state[1] == 0
    assert W.lock_files(storage) == []


# ---------------------------------------------------------------------------------------
# Threads (Node 11)


def thread_worker(thread_id: int, operations_count: int) -> None:
    for _ in range(operations_count):
        with DDB.at("threaded_db").session() as (session, db):
            db["counter"] = db.get("counter", 0) + 1
            session.write()


def test_node11_multithreading_example(storage):
    locking.AQUIRE_LOCK_TIMEOUT = 30.0
    DDB.at("threaded_db").create({"counter": 0}, force_overwrite=True)
    with ThreadPoolExecutor(max_workers=8) as executor:
        futures = [executor.submit(thread_worker, i, 50) for i in range(8)]
        for future in futures:
            future.result(timeout=JOIN)
    assert DDB.at("threaded_db", key="counter").read() == 400
    assert W.lock_files(storage) == []


def test_key_sessions_from_threads_on_a_large_file(storage):
    locking.AQUIRE_LOCK_TIMEOUT = 30.0
    fixed = fixed_keys(True)
    DDB.at("count").create(dict(fixed, counter={"n": 0}))

    def work(seed: int) -> None:
        for _ in range(30):
            W.increment("count", "key" if seed % 2 else "full")

    with ThreadPoolExecutor(max_workers=4) as executor:
        for future in [executor.submit(work, i) for i in range(4)]:
            future.result(timeout=JOIN)
    assert DDB.at("count").read() == dict(fixed, counter={"n": 120})


# ---------------------------------------------------------------------------------------
# Node 16


def test_node16_session_isolation_blocked_thread_times_out(storage):
    """Session A holds the file; thread B's session waits, then fails clearly; A wins."""
    DDB.at("shared_data").create({"value": "initial"})
    locking.AQUIRE_LOCK_TIMEOUT = 0.5
    outcome = {}

    with DDB.at("shared_data").session() as (session_a, data_a):
        data_a["value"] = "session A update"

        def session_b_task():
            start_b = time.monotonic()
            try:
                with DDB.at("shared_data").session() as (session_b, data_b):
                    outcome["read"] = data_b.get("value", "not set")
                    data_b["value"] = "session B update"
                    session_b.write()
            except errors.LockError as error:
                outcome["error"] = error
            outcome["waited"] = time.monotonic() - start_b

        thread_b = threading.Thread(target=session_b_task, daemon=True)
        thread_b.start()
        thread_b.join(JOIN)
        assert not thread_b.is_alive()
        assert data_a["value"] == "session A update"
        session_a.write()

    assert "read" not in outcome
    error = outcome["error"]
    assert isinstance(error, RuntimeError)
    assert "shared_data" in str(error)
    assert 0.45 <= outcome["waited"] < 5
    assert DDB.at("shared_data").read() == {"value": "session A update"}
    assert W.lock_files(storage) == []


def test_node16_version_check_example(storage):
    """The versioned example: session 2 cannot get in while session 1 holds the file, so
    session 1's version check passes and its write is the one that counts."""
    DDB.at("versioned_data").create({"_version": 1, "data": "initial value"})
    locking.AQUIRE_LOCK_TIMEOUT = 0.3
    failures = []
    with DDB.at("versioned_data").session() as (session1, data1):
        version1 = data1["_version"]

        def session2_task():
            try:
                with DDB.at("versioned_data").session() as (session2, data2):
                    data2["data"] = "updated by session2"
                    data2["_version"] += 1
                    session2.write()
            except errors.LockError as error:
                failures.append(error)

        thread2 = threading.Thread(target=session2_task, daemon=True)
        thread2.start()
        thread2.join(JOIN)
        assert not thread2.is_alive()
        current_data = DDB.at("versioned_data").read()
        assert current_data["_version"] == version1
        data1["data"] = "updated by session1"
        data1["_version"] += 1
        session1.write()
    assert len(failures) == 1
    assert "versioned_data" in str(failures[0])
    assert DDB.at("versioned_data").read() == {"_version": 2, "data": "updated by session1"}


def test_node16_transaction_without_with(storage):
    db_path = "transaction_test"
    DDB.at(f"{db_path}/users").create({"user1": {"name": "Alice"}})
    DDB.at(f"{db_path}/accounts").create({"user1": {"balance": 100}})
    locking.AQUIRE_LOCK_TIMEOUT = 5.0

    transaction_successful = False
    session_users = session_accounts = None
    try:
        session_users, users = DDB.at(f"{db_path}/users").session()
        session_accounts, accounts = DDB.at(f"{db_path}/accounts").session()
        assert "user1" in users
        assert accounts["user1"]["balance"] >= 50
        accounts["user1"]["balance"] -= 50
        users["user1"].setdefault("transactions", []).append({"type": "withdrawal", "amount": 50})
        session_accounts.write()
        session_users.write()
        transaction_successful = True
    finally:
        for session in (session_users, session_accounts):
            if session is not None and not session.is_closed:
                session.close()

    assert transaction_successful
    assert session_users.is_closed
    assert session_accounts.is_closed
    assert DDB.at(f"{db_path}/users").read() == {
        "user1": {"name": "Alice", "transactions": [{"type": "withdrawal", "amount": 50}]}
    }
    assert DDB.at(f"{db_path}/accounts").read() == {"user1": {"balance": 50}}
    assert W.lock_files(storage) == []
    # The locks are really gone: another thread can open the same sessions at once.
    opened = []

    def again():
        with DDB.at(f"{db_path}/accounts").session() as (_s, a), DDB.at(f"{db_path}/users").session() as (
            _t,
            u,
        ):
            opened.append((a["user1"]["balance"], len(u["user1"]["transactions"])))

    thread = threading.Thread(target=again, daemon=True)
    thread.start()
    thread.join(JOIN)
    assert opened == [(50, 1)]


def test_transaction_without_with_failing_midway_writes_nothing_more(storage):
    DDB.at("tx/users").create({"user1": {"name": "Alice"}})
    DDB.at("tx/accounts").create({"user1": {"balance": 30}})
    session_users = session_accounts = None
    with pytest.raises(ValueError, match="Insufficient"):
        try:
            session_users, users = DDB.at("tx/users").session()
            session_accounts, accounts = DDB.at("tx/accounts").session()
            users["user1"]["transactions"] = [{"type": "withdrawal", "amount": 50}]
            if accounts["user1"]["balance"] < 50:
                raise ValueError("Insufficient balance")
        finally:
            for session in (session_users, session_accounts):
                if session is not None and not session.is_closed:
                    session.close()
    assert DDB.at("tx/users").read() == {"user1": {"name": "Alice"}}
    assert DDB.at("tx/accounts").read() == {"user1": {"balance": 30}}
    assert W.lock_files(storage) == []
