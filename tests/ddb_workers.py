"""Child-process entry points and the crash-round harness.

Shared by test_locking.py, test_concurrency.py, test_crash.py and ../soak.py. This module is
deliberately light (no pytest import), because every child started with ``spawn`` imports it.

A child started with ``spawn`` begins from the library defaults, so every entry point takes
the storage directory and a settings dict (see :func:`current_settings`) explicitly and
applies them first. Children started with ``fork`` get the same treatment, so both start
methods run the very same code.

Children that may be SIGKILLed only talk to the parent through lock-free shared memory
(``RawValue``) and ``Event``\\s set before the kill window, so a kill can never leave a
queue or a lock of the parent's in a broken state.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import os
import random
import signal
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import dictdatabase as DDB
from dictdatabase import errors, locking

CONFIG_NAMES = ("indent", "use_compression", "use_orjson", "use_fsync")
LOCK_NAMES = (
    "SLEEP_TIMEOUT",
    "AQUIRE_LOCK_TIMEOUT",
    "REMOVE_ORPHAN_LOCK_TIMEOUT",
    "LOCK_KEEP_ALIVE_TIMEOUT",
    "FAIRNESS_WINDOW",
)

#: Timeout for any join or handshake; a test that reaches it has hung.
HANG_TIMEOUT = 30.0


# ---------------------------------------------------------------------------------------
# Settings that must reach every child


def current_settings(**lock_overrides: float) -> Dict[str, Dict[str, Any]]:
    """The config and lock constants of this process (plus overrides for the locks)."""
    lock_values = {name: getattr(locking, name) for name in LOCK_NAMES}
    lock_values.update(lock_overrides)
    return {
        "config": {name: getattr(DDB.config, name) for name in CONFIG_NAMES},
        "locking": lock_values,
    }


def apply_settings(storage: str, settings: Dict[str, Dict[str, Any]]) -> None:
    """Make this process use ``storage`` and ``settings`` (first thing every child does)."""
    DDB.config.storage_directory = storage
    for name, value in settings.get("config", {}).items():
        setattr(DDB.config, name, value)
    for name, value in settings.get("locking", {}).items():
        setattr(locking, name, value)


# ---------------------------------------------------------------------------------------
# Process helpers


def join_or_kill(
    processes: Sequence[multiprocessing.process.BaseProcess], timeout: float = HANG_TIMEOUT
) -> List[str]:
    """Join every process within ``timeout`` seconds in total; kill the stragglers.

    Returns a list of problems (empty when every process exited with code 0).
    """
    deadline = time.monotonic() + timeout
    problems = []
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            problems.append(f"{process.name} (pid {process.pid}) still running after {timeout} s: killed")
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.join(5)
        elif process.exitcode != 0:
            problems.append(f"{process.name} (pid {process.pid}) exited with code {process.exitcode}")
    return problems


def kill_all(processes: Sequence[multiprocessing.process.BaseProcess]) -> None:
    """SIGKILL (and SIGCONT, in case it is stopped) every process that still runs; reap it."""
    for process in processes:
        if process.pid is not None and process.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
                os.kill(process.pid, signal.SIGCONT)
            process.join(5)


def process_state(pid: int) -> Optional[str]:
    """The state letter of ``pid`` from /proc (``"Z"`` for a zombie), ``None`` if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except FileNotFoundError:
        return None
    return stat[stat.rindex(b")") + 2 :].split()[0].decode()


def start_token(pid: int) -> str:
    """The start time of ``pid`` in clock ticks (field 22 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        stat = handle.read()
    return stat[stat.rindex(b")") + 2 :].split()[19].decode()


def stop_outside_gate(pid: int, private_folder: str, attempts: int = 50) -> None:
    """SIGSTOP ``pid`` at a moment it does not hold the gate of ``private_folder``.

    The gate (docs/architecture.md) is a kernel ``flock`` on the private folder held for a
    few system calls; a process stopped inside it would block everybody, by design. So: stop,
    check that the gate is free, and if it is not, continue the process and try again.
    """
    fd = os.open(private_folder, os.O_RDONLY)
    try:
        for _ in range(attempts):
            os.kill(pid, signal.SIGSTOP)
            wait_until(lambda: process_state(pid) in ("T", None), 5)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.kill(pid, signal.SIGCONT)
                time.sleep(random.uniform(0.001, 0.005))
                continue
            fcntl.flock(fd, fcntl.LOCK_UN)
            return
    finally:
        os.close(fd)
    raise AssertionError(f"could not stop pid {pid} outside the gate of {private_folder}")


def wait_until(predicate, timeout: float, interval: float = 0.002) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; return its last result."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(interval)


def lock_files(storage: str) -> List[str]:
    """Every lock file below ``<storage>/.ddb`` (names only, sorted)."""
    root = os.path.join(storage, ".ddb")
    found = []
    for _folder, _, names in os.walk(root):
        found.extend(name for name in names if name.endswith(".lock"))
    return sorted(found)


def lock_owner(lock_file_name: str) -> Optional[int]:
    """The pid in a lock file name ``<order>.<pid>.<token>.<tid>.<nonce>.<stage>.<mode>.lock``."""
    parts = lock_file_name.split(".")
    return int(parts[1]) if len(parts) == 8 and parts[1].isdigit() else None


def lock_holders(name: str) -> List[int]:
    """Pids holding a lock of database ``name``: lock files, and the kernel lock that
    sessions and writes hold without a file (as FileLocksSnapshot reports them)."""
    snapshot = locking.FileLocksSnapshot(locking.WriteLock(name).need_lock)
    return [meta.pid for meta in snapshot.locks if meta.stage == "has"]


def temp_files(storage: str) -> List[str]:
    """Every ``*.tmp`` file anywhere below ``storage`` (absolute paths, sorted)."""
    found = []
    for folder, _, names in os.walk(storage):
        found.extend(os.path.join(folder, name) for name in names if name.endswith(".tmp"))
    return sorted(found)


# ---------------------------------------------------------------------------------------
# Lock holders and waiters


def hold_lock(
    storage: str,
    settings: dict,
    name: str,
    mode: str,
    holding,
    release,
) -> None:
    """Take ``mode`` ("read"/"write") lock on ``name``, signal ``holding``, wait for ``release``."""
    apply_settings(storage, settings)
    lock = locking.WriteLock(name) if mode == "write" else locking.ReadLock(name)
    with lock:
        holding.set()
        if not release.wait(HANG_TIMEOUT):
            raise SystemExit("hold_lock: never released")


def measure_blocked_wait(storage: str, settings: dict, name: str, results) -> None:
    """Ask for the write lock of ``name`` and report ``(outcome, wall seconds, cpu seconds)``.

    The CPU time is ``time.process_time()`` of this whole process (all threads, user + system)
    over the wait.
    """
    apply_settings(storage, settings)
    lock = locking.WriteLock(name)
    wall0, cpu0 = time.monotonic(), time.process_time()
    try:
        lock._lock()
        outcome = "acquired"
    except errors.LockError:
        outcome = "LockError"
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    if outcome == "acquired":
        lock._unlock()
    results.put((outcome, wall, cpu))


def interval_recorder(  # noqa: PLR0917 - a multiprocessing target takes positional args
    storage: str,
    settings: dict,
    name: str,
    mode: str,
    slot: int,
    requested,
    acquired,
    times,
    hold_seconds: float,
) -> None:
    """Take the lock, record when it was held (``time.monotonic``, host-wide) and release it."""
    apply_settings(storage, settings)
    lock = locking.WriteLock(name) if mode == "write" else locking.ReadLock(name)
    requested.set()
    with lock:
        times[2 * slot] = time.monotonic()
        acquired.set()
        time.sleep(hold_seconds)
        times[2 * slot + 1] = time.monotonic()


def overlapping_reader(
    storage: str,
    settings: dict,
    name: str,
    mine,
    theirs,
    saw_other,
    release,
) -> None:
    """Hold a read lock and wait, while holding it, until the other reader holds it too."""
    apply_settings(storage, settings)
    with locking.ReadLock(name):
        mine.set()
        saw_other.value = 1 if theirs.wait(HANG_TIMEOUT / 3) else 0
        if not release.wait(HANG_TIMEOUT):
            raise SystemExit("overlapping_reader: never released")


def exclusion_participant(
    storage: str,
    settings: dict,
    name: str,
    mode: str,
    iterations: int,
    state,
    guard,
    seed: int,
) -> None:
    """Enter the lock ``iterations`` times and check the reader/writer invariant inside."""
    apply_settings(storage, settings)
    rng = random.Random(seed)
    for _ in range(iterations):
        lock = locking.WriteLock(name) if mode == "write" else locking.ReadLock(name)
        with lock:
            with guard:
                if mode == "write":
                    if state[0] or state[1]:
                        state[2] += 1
                    state[1] += 1
                else:
                    if state[1]:
                        state[2] += 1
                    state[0] += 1
                    state[3] = max(state[3], state[0])
            time.sleep(rng.uniform(0.0005, 0.004))
            with guard:
                state[1 if mode == "write" else 0] -= 1
        time.sleep(rng.uniform(0, 0.002))


# ---------------------------------------------------------------------------------------
# Increments and readers


def increment(
    name: str, how: str, key: str = "counter", before_write: Callable[[], None] = lambda: None
) -> None:
    """One atomic ``+1`` of ``data[key]["n"]`` through a full or a key session;
    ``before_write()`` runs inside the session, just before ``write()``."""
    if how == "full":
        with DDB.at(name).session() as (session, data):
            data[key]["n"] += 1
            before_write()
            session.write()
    elif how == "key":
        with DDB.at(name, key=key).session() as (session, value):
            value["n"] += 1
            before_write()
            session.write()
    else:
        raise ValueError(how)


def incrementer(storage: str, settings: dict, name: str, how: str, count: int, seed: int) -> None:
    """``count`` increments; ``how`` is "full", "key" or "mixed" (random per increment)."""
    apply_settings(storage, settings)
    rng = random.Random(seed)
    for _ in range(count):
        increment(name, rng.choice(("full", "key")) if how == "mixed" else how)


def node11_worker(storage: str, settings: dict, process_id: int, operations_count: int) -> None:
    """The multiprocessing worker of Node 11: create, read and update items of one file."""
    apply_settings(storage, settings)
    for i in range(operations_count):
        key = f"proc_{process_id}_item_{i}"
        with DDB.at("shared_db").session() as (session, db):
            db[key] = {"value": i, "process": process_id}
            session.write()
        item = DDB.at("shared_db", key=key).read()
        if item != {"value": i, "process": process_id}:
            raise AssertionError(f"read back {item!r} for {key}")
        with DDB.at("shared_db", key=key).session() as (session, item):
            item["value"] *= 2
            session.write()


def checking_reader(
    storage: str,
    settings: dict,
    name: str,
    fixed: Dict[str, Any],
    stop,
    reads,
    pause: float = 0.0,
) -> None:
    """Read ``name`` (whole file and single keys) until ``stop``; fail on any anomaly.

    ``fixed`` holds keys whose values never change. The counter must always be an int and
    never go backwards between two reads of this reader.
    """
    apply_settings(storage, settings)
    last = -1
    fixed_keys = sorted(fixed)
    done = 0
    while not stop.is_set() or done < 3:
        data = DDB.at(name).read()
        if not isinstance(data, dict) or not isinstance(data.get("counter"), dict):
            raise AssertionError(f"whole read gave {type(data).__name__}: {str(data)[:200]}")
        n = data["counter"].get("n")
        if type(n) is not int or n < last:
            raise AssertionError(f"whole read: counter {n!r} after {last!r}")
        last = n
        for key in fixed_keys[:: max(1, len(fixed_keys) // 3)]:
            if data[key] != fixed[key]:
                raise AssertionError(f"whole read: key {key!r} changed to {str(data[key])[:100]}")
        value = DDB.at(name, key="counter").read()
        if not isinstance(value, dict) or type(value.get("n")) is not int or value["n"] < last:
            raise AssertionError(f"key read: counter {value!r} after {last!r}")
        last = value["n"]
        probe = fixed_keys[done % len(fixed_keys)]
        if DDB.at(name, key=probe).read() != fixed[probe]:
            raise AssertionError(f"key read of {probe!r} gave a wrong value")
        done += 1
        reads.value = done
        if pause:
            time.sleep(pause)


# ---------------------------------------------------------------------------------------
# Fencing: an owner that is stopped past its lease


def stale_owner(
    storage: str,
    settings: dict,
    name: str,
    how: str,
    ready,
    go,
    report,
) -> None:
    """Open a session, get stopped by the parent, then try to write; report what happened."""
    apply_settings(storage, settings)
    try:
        if how == "full":
            session, data = DDB.at(name).session()
            data["counter"]["n"] += 1
            data["counter"]["by"] = "stopped owner"
        else:
            session, data = DDB.at(name, key="counter").session()
            data["n"] += 1
            data["by"] = "stopped owner"
        ready.set()
        if not go.wait(HANG_TIMEOUT):
            report.put(("hang", "never told to go"))
            return
        try:
            session.write()
            report.put(("written", ""))
        except errors.LockError as error:
            report.put(("LockError", str(error)))
        finally:
            session.close()
    except BaseException as error:
        report.put(("crash", "".join(traceback.format_exception(type(error), error, error.__traceback__))))


def lease_holder(
    storage: str,
    settings: dict,
    name: str,
    ready,
    go,
    report,
) -> None:
    """Hold a session while the parent fails to get the lock, then write through it."""
    apply_settings(storage, settings)
    with DDB.at(name).session() as (session, data):
        ready.set()
        if not go.wait(HANG_TIMEOUT):
            report.put(("hang", ""))
            return
        data["counter"]["by"] = "lease holder"
        try:
            session.write()
            report.put(("written", ""))
        except errors.LockError as error:
            report.put(("LockError", str(error)))


def lease_breaking_incrementer(
    storage: str,
    settings: dict,
    name: str,
    how: str,
    count: int,
    slow_every: int,
    slow_seconds: float,
    results,
) -> None:
    """``count`` increments, every ``slow_every``-th held ``slow_seconds`` past its lease.

    This process never refreshes its leases (its keeper does nothing), so waiters break the
    slow sessions' locks. Records ``(committed, refused)`` in the shared array ``results``:
    a refused increment raised ``LockError`` in ``write()``.
    """
    apply_settings(storage, settings)
    locking._LeaseKeeper._run = lambda self: None  # no lease refreshes in this child
    committed = refused = 0
    for number in range(count):
        pause = (lambda: time.sleep(slow_seconds)) if number % slow_every == 0 else (lambda: None)
        try:
            increment(name, how, before_write=pause)
            committed += 1
        except errors.LockError:
            refused += 1
    results[0], results[1] = committed, refused


# ---------------------------------------------------------------------------------------
# Crash rounds

CRASH_FOLDER = "crash"
SMALL = f"{CRASH_FOLDER}/small"
BIG = f"{CRASH_FOLDER}/big"
#: The counter of the big file sorts last, so it sits at the very end of the file.
BIG_COUNTER = "zzz_counter"
SMALL_COUNTER = "counter"
BIG_TARGET_BYTES = (1 << 20) + (256 << 10)


def crash_value(n: int) -> Dict[str, Any]:
    """The counter value for ``n``; its encoded length changes from one ``n`` to the next."""
    return {"n": n, "pad": "p" * (n * 7 % 23)}


def big_fixed_part() -> Dict[str, Any]:
    """The keys of the big file that never change (a bit more than 1 MiB encoded)."""
    entry = {"name": "x" * 40, "tags": ["a", "b", "c"], "score": 12.5, "ok": True}
    count = BIG_TARGET_BYTES // 110 + 1
    return {f"k{i:06d}": dict(entry, id=i) for i in range(count)}


def small_fixed_part() -> Dict[str, Any]:
    return {"alpha": {"x": 1}, "omega": [1, 2, 3]}


def create_crash_files() -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Create the small and the big file (counters at 0); return their fixed parts."""
    small_fixed, big_fixed = small_fixed_part(), big_fixed_part()
    DDB.at(SMALL).create(dict(small_fixed, **{SMALL_COUNTER: crash_value(0)}), force_overwrite=True)
    DDB.at(BIG).create(dict(big_fixed, **{BIG_COUNTER: crash_value(0)}), force_overwrite=True)
    return small_fixed, big_fixed


def crash_writer(
    storage: str,
    settings: dict,
    how: str,
    small_ack,
    big_ack,
    ready,
    seed: int,
) -> None:
    """Increment the counters of both files for ever, one write at a time, until killed.

    ``how`` is "full" (a full session writes the whole file) or "key" (a key session writes
    only the counter; on the big file that is an in-place, journaled write). A write is
    acknowledged (its value stored in the ack) only after ``session.write()`` returned.
    """
    apply_settings(storage, settings)
    rng = random.Random(seed)
    targets = ((SMALL, SMALL_COUNTER, small_ack), (BIG, BIG_COUNTER, big_ack))
    ready.set()
    while True:
        name, key, ack = targets[rng.random() < 0.5]
        if how == "full":
            with DDB.at(name).session() as (session, data):
                n = data[key]["n"] + 1
                data[key] = crash_value(n)
                session.write()
        else:
            with DDB.at(name, key=key).session() as (session, value):
                n = value["n"] + 1
                value.clear()
                value.update(crash_value(n))
                session.write()
        ack.value = n


@dataclass
class RoundResult:
    corrupt: List[str] = field(default_factory=list)
    lost: List[str] = field(default_factory=list)
    other: List[str] = field(default_factory=list)
    #: what the kill interrupted, for statistics: "journal", "lock", "tmp"
    hits: List[str] = field(default_factory=list)
    writes: int = 0

    @property
    def ok(self) -> bool:
        return not (self.corrupt or self.lost or self.other)


def crash_round(
    ctx: multiprocessing.context.BaseContext,
    storage: str,
    settings: dict,
    how: str,
    fixed: Tuple[Dict[str, Any], Dict[str, Any]],
    rng: random.Random,
    max_delay: float = 0.12,
    aim_at_journal: bool = False,
) -> RoundResult:
    """Start a crash writer, SIGKILL it at a random moment, check both files.

    With ``aim_at_journal`` the kill is sent as soon as the big file's journal is seen (an
    in-place write is in progress), or after ``max_delay`` if it never shows up.

    Checks: every file parses; the counter is the last acknowledged value or one more; the
    fixed keys are intact; the folder read shows exactly the two files; the next writer
    removes the dead writer's lock and temporary files.
    """
    result = RoundResult()
    names = ((SMALL, SMALL_COUNTER, fixed[0]), (BIG, BIG_COUNTER, fixed[1]))
    starts = {name: DDB.at(name, key=key).read()["n"] for name, key, _ in names}
    acks = {name: ctx.RawValue("q", starts[name]) for name in (SMALL, BIG)}
    dead_pid = _run_and_kill(ctx, storage, settings, how, acks, rng, max_delay, aim_at_journal, result)
    if dead_pid is None:
        return result
    result.hits += _left_behind(storage, dead_pid)
    for name, key, fixed_part in names:
        result.writes += acks[name].value - starts[name]
        _check_file(name, key, fixed_part, acks[name].value, result)
    try:
        listing = sorted(DDB.at(CRASH_FOLDER, "*").read())
    except Exception as error:
        listing = [f"{type(error).__name__}: {error}"]
    if listing != ["big", "small"]:
        result.other.append(f"the folder read returned {listing}")
    _check_takeover(storage, [name for name, _, _ in names], dead_pid, result)
    return result


def _run_and_kill(  # noqa: PLR0917 - the round's knobs, passed through once
    ctx: multiprocessing.context.BaseContext,
    storage: str,
    settings: dict,
    how: str,
    acks: Dict[str, Any],
    rng: random.Random,
    max_delay: float,
    aim_at_journal: bool,
    result: RoundResult,
) -> Optional[int]:
    """Run a crash writer and SIGKILL it; return its pid (``None`` if it never started)."""
    ready = ctx.Event()
    child = ctx.Process(
        target=crash_writer,
        args=(storage, settings, how, acks[SMALL], acks[BIG], ready, rng.getrandbits(32)),
        name=f"crash-writer-{how}",
        daemon=True,
    )
    child.start()
    try:
        if not ready.wait(HANG_TIMEOUT):
            result.other.append("the crash writer never started")
            return None
        if aim_at_journal:
            journal = os.path.join(locking.WriteLock(BIG).need_lock.folder, "journal")
            deadline = time.monotonic() + rng.uniform(0.01, max_delay)
            while not os.path.exists(journal) and time.monotonic() < deadline:
                pass
        else:
            time.sleep(rng.uniform(0.0, max_delay))
        # Sessions hold the kernel lock without a lock file: note if the kill lands on it
        # (not when aiming at a journal, where the kill must follow the sighting at once).
        holding = not aim_at_journal and any(
            meta.pid == child.pid and meta.stage == "has"
            for name in (SMALL, BIG)
            for meta in locking.FileLocksSnapshot(locking.WriteLock(name).need_lock).locks
        )
        os.kill(child.pid, signal.SIGKILL)
        if holding:
            result.hits.append("lock")
        child.join(HANG_TIMEOUT)
    finally:
        kill_all([child])
    if child.exitcode != -signal.SIGKILL:
        result.other.append(f"the crash writer ended by itself with exit code {child.exitcode}")
    return child.pid


def _left_behind(storage: str, dead_pid: int) -> List[str]:
    """What the kill interrupted, judged by what it left (statistics only)."""
    hits = []
    for _folder, _, entries in os.walk(os.path.join(storage, ".ddb")):
        for entry in entries:
            if entry == "journal":
                hits.append("journal")
            elif entry.endswith(".lock") and lock_owner(entry) == dead_pid:
                hits.append("lock")
            elif entry.endswith(".tmp") and entry.startswith(f"{dead_pid}."):
                hits.append("tmp")
    return hits


def _check_file(name: str, key: str, fixed_part: Dict[str, Any], acked: int, result: RoundResult) -> None:
    """The file parses, its counter is ``acked`` or ``acked + 1``, the rest is unchanged."""
    try:
        data = DDB.at(name).read()
        value = DDB.at(name, key=key).read()
    except Exception as error:
        result.corrupt.append(f"{name}: {type(error).__name__}: {error}")
        return
    if not isinstance(data, dict) or not isinstance(data.get(key), dict):
        result.corrupt.append(f"{name}: unexpected content {str(data)[:200]}")
        return
    if value != data[key]:
        result.corrupt.append(f"{name}: key read {value!r} differs from whole read {data[key]!r}")
    n = data[key].get("n")
    if type(n) is not int or data[key] != crash_value(n):
        result.corrupt.append(f"{name}: counter holds {data[key]!r}")
    elif n < acked:
        result.lost.append(f"{name}: counter {n} but {acked} was acknowledged")
    elif n > acked + 1:
        result.corrupt.append(
            f"{name}: counter {n} but only {acked} was acknowledged (at most one more allowed)"
        )
    if {k: v for k, v in data.items() if k != key} != fixed_part:
        result.corrupt.append(f"{name}: the keys that never change were changed")


def _check_takeover(storage: str, names: List[str], dead_pid: int, result: RoundResult) -> None:
    """The next writer gets in, and the dead writer's lock and temporary files are gone."""
    for name in names:
        try:
            with locking.WriteLock(name):
                pass
        except errors.LockError as error:
            result.other.append(f"the next writer could not take the lock of {name}: {error}")
    leftovers = [path for path in temp_files(storage) if os.path.basename(path).startswith(f"{dead_pid}.")]
    if leftovers:
        result.other.append(f"temporary files of the dead writer were not swept: {leftovers}")
    stale_locks = [entry for entry in lock_files(storage) if lock_owner(entry) == dead_pid]
    if stale_locks:
        result.other.append(f"lock files of the dead writer are left: {stale_locks}")
