"""Crash safety with real signals: SIGKILL at random moments, SIGKILL of lock holders, and
SIGSTOP of a holder past its lease (fencing).

The crash rounds are the short version of ``soak.py`` (same harness, ddb_workers.crash_round).
Each round starts a writer process that increments counters in a small file and in a file
larger than 1 MiB (its counter is the last key, and its encoded length changes, so key
writes on it are journaled in-place writes), kills it with SIGKILL after a random delay,
and checks: every file parses, the counter is the last acknowledged value or one more, the
rest of the data is intact, a folder read lists only the data files, and the next writer
removes the dead writer's lock and temporary files.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sys
import time

import pytest

import dictdatabase as DDB
from dictdatabase import locking

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ddb_workers as W

#: Rounds per (start method, write kind) in the default run; soak.py runs hundreds.
ROUNDS = {"fork": 16, "spawn": 6}


# ---------------------------------------------------------------------------------------
# (a) writers killed at random moments


def test_key_writes_on_the_big_file_are_in_place(storage):
    """Precondition of the crash rounds: a key write on the big file changes it in place
    (same inode, new size), which is the journaled path the rounds must exercise."""
    W.create_crash_files()
    path = os.path.join(storage, f"{W.BIG}.json")
    before = os.stat(path)
    assert before.st_size > 1 << 20
    with DDB.at(W.BIG, key=W.BIG_COUNTER).session() as (session, value):
        value.update(W.crash_value(1))
        session.write()
    after = os.stat(path)
    assert after.st_size != before.st_size
    assert after.st_ino == before.st_ino, "the key write replaced the file: the journal path is not exercised"


@pytest.mark.parametrize("how", ["full", "key"])
def test_writer_killed_at_random_moments(ctx, storage, how):
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    fixed = W.create_crash_files()
    settings = W.current_settings(AQUIRE_LOCK_TIMEOUT=20.0)
    rounds = ROUNDS[ctx.get_start_method()]
    failures, hits, writes = [], [], 0
    for number in range(rounds):
        # Every other key round aims the kill at an in-place write (its journal present).
        aim = how == "key" and number % 2 == 1
        result = W.crash_round(ctx, storage, settings, how, fixed, rng, aim_at_journal=aim)
        writes += result.writes
        hits.extend(result.hits)
        if not result.ok:
            failures.append((number, result.corrupt, result.lost, result.other))
    assert failures == [], f"seed {seed}: {failures}"
    assert writes >= rounds, f"seed {seed}: the writers hardly wrote ({writes} acknowledged writes)"
    # Almost every kill lands while the writer holds its lock; the next writer removed it.
    assert "lock" in hits, f"seed {seed}: no round killed a lock holder ({hits})"
    # A final look: both files are fine after all the rounds, and nothing is left over.
    assert sorted(DDB.at(W.CRASH_FOLDER, "*").read()) == ["big", "small"]
    assert W.lock_files(storage) == []
    assert W.temp_files(storage) == []


def test_writer_killed_during_in_place_writes(storage):
    """Kill key writers while the big file's journal exists, until that happened a few times:
    the next access rolls the write forward (or drops an incomplete journal), and the
    acknowledged writes are all there."""
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    fixed = W.create_crash_files()
    settings = W.current_settings(AQUIRE_LOCK_TIMEOUT=20.0)
    ctx = multiprocessing.get_context("fork")
    journal_kills, rounds, failures = 0, 0, []
    deadline = time.monotonic() + 15
    while journal_kills < 3 and rounds < 60 and time.monotonic() < deadline:
        result = W.crash_round(ctx, storage, settings, "key", fixed, rng, aim_at_journal=True)
        rounds += 1
        journal_kills += "journal" in result.hits
        if not result.ok:
            failures.append((rounds, result.corrupt, result.lost, result.other))
    assert failures == [], f"seed {seed}: {failures}"
    assert journal_kills >= 1, f"seed {seed}: no kill in {rounds} rounds hit an in-place write"
    assert not os.path.exists(os.path.join(locking.WriteLock(W.BIG).need_lock.folder, "journal"))


# ---------------------------------------------------------------------------------------
# (b) a killed lock holder does not block the next writer


HOLDERS = ["write", "read", "session"]


def session_holder(storage: str, settings: dict, name: str, holding, release) -> None:
    W.apply_settings(storage, settings)
    with DDB.at(name).session() as (_session, data):
        data["by"] = "killed holder"
        holding.set()
        release.wait(W.HANG_TIMEOUT)


@pytest.mark.parametrize("reaped", [True, False], ids=["reaped", "zombie"])
@pytest.mark.parametrize("holder_kind", HOLDERS)
def test_killed_lock_holder_lets_the_next_writer_in_at_once(ctx, storage, holder_kind, reaped):
    DDB.at("db").create({"by": "nobody"})
    settings = W.current_settings()  # default timeouts: a wait would take 20 s to break
    holding, release = ctx.Event(), ctx.Event()
    if holder_kind == "session":
        holder = ctx.Process(
            target=session_holder, args=(storage, settings, "db", holding, release), daemon=True
        )
    else:
        holder = ctx.Process(
            target=W.hold_lock, args=(storage, settings, "db", holder_kind, holding, release), daemon=True
        )
    holder.start()
    try:
        assert holding.wait(20)
        assert W.lock_holders("db") == [holder.pid]
        os.kill(holder.pid, signal.SIGKILL)
        if reaped:
            holder.join(10)
            assert holder.exitcode == -signal.SIGKILL
        else:
            assert W.wait_until(lambda: W.process_state(holder.pid) == "Z", 10), (
                "the child did not become a zombie"
            )
        locking.AQUIRE_LOCK_TIMEOUT = 5.0
        started = time.monotonic()
        with locking.WriteLock("db"):
            waited = time.monotonic() - started
            if not reaped:
                assert W.process_state(holder.pid) == "Z"  # still not reaped while we got in
        assert waited < 0.1, f"the next writer waited {waited:.3f} s"
        DDB.at("db").update({"by": "next writer"})
    finally:
        W.kill_all([holder])
    assert holder.exitcode == -signal.SIGKILL
    assert DDB.at("db").read() == {"by": "next writer"}
    assert W.lock_files(storage) == []


# ---------------------------------------------------------------------------------------
# (c) a holder stopped past its lease loses the lock and cannot write


@pytest.mark.parametrize("size", ["small", "big"])
@pytest.mark.parametrize("how", ["full", "key"])
def test_stopped_holder_loses_its_lease_and_cannot_write(ctx, storage, how, size):
    fixed = {"k": list(range(10))}
    if size == "big":
        # > 1 MiB, and "counter" sorts last: a key write on it is an in-place, journaled write
        fixed = {"a" + key[1:]: value for key, value in W.big_fixed_part().items()}
    DDB.at("db").create(dict(fixed, counter={"n": 0}))
    lease = {"REMOVE_ORPHAN_LOCK_TIMEOUT": 1.0, "LOCK_KEEP_ALIVE_TIMEOUT": 0.1, "AQUIRE_LOCK_TIMEOUT": 15.0}
    settings = W.current_settings(**lease)
    for name, value in lease.items():
        setattr(locking, name, value)
    ready, go, report = ctx.Event(), ctx.Event(), ctx.Queue()
    owner = ctx.Process(
        target=W.stale_owner, args=(storage, settings, "db", how, ready, go, report), daemon=True
    )
    owner.start()
    stopped = False
    try:
        assert ready.wait(20), "the owner never opened its session"
        os.kill(owner.pid, signal.SIGSTOP)
        stopped = True
        assert W.wait_until(lambda: W.process_state(owner.pid) == "T", 5)
        # The waiter: blocked until the stopped owner's lease expires, then it writes.
        started = time.monotonic()
        with DDB.at("db").session() as (session, data):
            waited = time.monotonic() - started
            data["counter"]["n"] += 1
            data["counter"]["by"] = "waiter"
            session.write()
        # Continue first: setting a multiprocessing Event waits for its sleepers to wake.
        os.kill(owner.pid, signal.SIGCONT)
        stopped = False
        go.set()
        outcome, message = report.get(timeout=20)
    finally:
        if stopped:
            os.kill(owner.pid, signal.SIGCONT)
        go.set()
        problems = W.join_or_kill([owner], 20)
    assert problems == []
    assert 0.9 <= waited < 10, f"the waiter got in after {waited:.2f} s"
    assert outcome == "LockError", message
    assert "db" in message
    assert DDB.at("db").read() == dict(fixed, counter={"n": 1, "by": "waiter"})
    assert W.lock_files(storage) == []


@pytest.mark.parametrize("how", ["full", "key"])
def test_broken_leases_under_load_lose_no_committed_increment(ctx, storage, how):
    """Holders that outlive their lease while others queue get their locks broken: their
    write() raises LockError and writes nothing, and every write() that returned counts.
    (Small commits exchange the lock's own spare without the gate; breaking removes it.)"""
    DDB.at("db").create({"counter": {"n": 0}})
    settings = W.current_settings(
        REMOVE_ORPHAN_LOCK_TIMEOUT=0.02, FAIRNESS_WINDOW=0.0, AQUIRE_LOCK_TIMEOUT=20.0
    )
    processes, count = 4, 16
    results = [ctx.RawArray("i", 2) for _ in range(processes)]
    workers = [
        ctx.Process(
            target=W.lease_breaking_incrementer,
            args=(storage, settings, "db", how, count, 4, 0.15, results[i]),
            daemon=True,
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    assert W.join_or_kill(workers, 60) == []
    committed = sum(result[0] for result in results)
    refused = sum(result[1] for result in results)
    assert committed + refused == processes * count
    assert refused > 0, "no lease was broken: the test did not test anything"
    assert committed > 0
    assert DDB.at("db", key="counter").read() == {"n": committed}
    assert W.lock_files(storage) == []


def test_stopped_waiter_does_not_block_others_for_ever(ctx, storage):
    """A waiter stopped while queued (its request file is not refreshed) is skipped once
    its request is older than the orphan timeout; the lock keeps working for the others."""
    DDB.at("db").create({"n": 0})
    lease = {"REMOVE_ORPHAN_LOCK_TIMEOUT": 1.0, "LOCK_KEEP_ALIVE_TIMEOUT": 0.1, "AQUIRE_LOCK_TIMEOUT": 15.0}
    settings = W.current_settings(**lease)
    for name, value in lease.items():
        setattr(locking, name, value)
    results = ctx.Queue()
    with locking.WriteLock("db"):
        waiter = ctx.Process(
            target=W.measure_blocked_wait, args=(storage, settings, "db", results), daemon=True
        )
        waiter.start()
        try:
            assert W.wait_until(lambda: any(".need." in n for n in W.lock_files(storage)), 20)
            W.stop_outside_gate(waiter.pid, locking.WriteLock("db").need_lock.folder)
            time.sleep(0.2)  # its request is no longer a young one that may be overtaken
        except BaseException:
            W.kill_all([waiter])
            raise
    try:
        started = time.monotonic()
        with locking.WriteLock("db"):
            waited = time.monotonic() - started
        DDB.at("db").update({"n": 1})
    finally:
        os.kill(waiter.pid, signal.SIGCONT)
        problems = W.join_or_kill([waiter], 30)
    assert problems == []
    assert 0.9 <= waited < 5
    assert results.get(timeout=5)[0] == "acquired"  # it asked again after waking up
    assert DDB.at("db").read() == {"n": 1}
    assert W.lock_files(storage) == []
