"""Workload 3: many processes incrementing counters in a few databases at once.

DictDataBase: every process runs key sessions on each of the files in turn. SQLite: every
process runs ``BEGIN IMMEDIATE; SELECT; UPDATE; COMMIT`` on each of the databases in turn
(busy timeout 60 s). All processes are started and have imported everything before a
common start signal; the rate is all increments over the time from the first start to the
last finish. The final counts must be exact on both sides. TinyDB is not safe across
processes, so it is not measured.
"""

from __future__ import annotations

import json
import statistics
from typing import Any, Callable, Dict, List, Tuple

import dictdatabase as DDB

from ..context import Context
from ..results import Row, Target
from ..stores import SqliteDocs

TITLE = "concurrency"
KEY = "counter"
#: Seconds a worker may take before the run is declared hung.
WORKER_TIMEOUT = 1800


def run(ctx: Context) -> List[Row]:
    settings = ctx.settings
    procs, files, count = settings.procs, settings.files, settings.increments
    row = Row(
        TITLE,
        f"{procs} processes x {files} files x {count} increments",
        "ops/s",
        target=Target("vs_sqlite", 0.5),
        skipped={"tinydb": "n/a: not safe across processes"},
    )
    names = [f"counters/c{i}" for i in range(files)]
    paths = [ctx.sqlite_path(f"counter{i}") for i in range(files)]
    ddb_task = {"backend": "ddb", "storage": ctx.storage, "names": names}
    sqlite_task = {"backend": "sqlite", "paths": paths}
    exact = {}
    for store, task, reset, counts in (
        ("ddb", ddb_task, lambda: _reset_ddb(names), lambda: _ddb_counts(names)),
        ("sqlite", sqlite_task, lambda: _reset_sqlite(paths), lambda: _sqlite_counts(paths)),
    ):
        rate, exact[store] = _measure(ctx, store, task, reset, counts)
        ctx.measured(row, store, rate)
    row.condition_ok = all(exact.values())
    row.note = "final counts exact: " + ", ".join(
        f"{store} {'yes' if ok else 'NO'}" for store, ok in exact.items()
    )
    return [row]


def _measure(
    ctx: Context,
    store: str,
    task: Dict[str, Any],
    reset: Callable[[], None],
    counts: Callable[[], List[int]],
) -> Tuple[float, bool]:
    """Median rate over the runs, and whether every run ended with exact counts."""
    settings = ctx.settings
    expected = settings.procs * settings.increments
    rates, exact = [], True
    for run_number in range(settings.concurrency_runs):
        reset()
        rate = _one_run(ctx, dict(task, task="increments", key=KEY, count=settings.increments))
        found = counts()
        ok = all(value == expected for value in found)
        exact = exact and ok
        ctx.say(
            f"    run {run_number + 1} of {store}: {rate:,.0f} ops/s, counts {found} (expected {expected} each)"
        )
        rates.append(rate)
    return statistics.median(rates), exact


def _one_run(ctx: Context, task: Dict[str, Any]) -> float:
    """Start the processes, wait until all are ready, signal go, and time them."""
    workers = [ctx.start_worker(dict(task, offset=index)) for index in range(ctx.settings.procs)]
    try:
        for worker in workers:
            if worker.stdout.readline().strip() != "ready":
                msg = f"an increments worker did not start:\n{worker.stderr.read()}"
                raise RuntimeError(msg)
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        spans = []
        for worker in workers:
            out, err = worker.communicate(timeout=WORKER_TIMEOUT)
            if worker.returncode != 0:
                msg = f"an increments worker failed:\n{err}"
                raise RuntimeError(msg)
            spans.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    elapsed = max(span["end"] for span in spans) - min(span["start"] for span in spans)
    total = ctx.settings.procs * ctx.settings.files * task["count"]
    return total / elapsed


def _reset_ddb(names: List[str]) -> None:
    for name in names:
        DDB.at(name).create({KEY: {"n": 0}}, force_overwrite=True)


def _ddb_counts(names: List[str]) -> List[int]:
    return [DDB.at(name, key=KEY).read()["n"] for name in names]


def _reset_sqlite(paths: List[str]) -> None:
    for path in paths:
        store = SqliteDocs(path)
        store.load({KEY: {"n": 0}})
        store.close()


def _sqlite_counts(paths: List[str]) -> List[int]:
    counts = []
    for path in paths:
        store = SqliteDocs(path)
        counts.append(store.read_key(KEY)["n"])
        store.close()
    return counts
