"""Several processes increment shared counters through sessions; the totals must be exact.

Each worker process does ``--increments`` rounds of:

- a full-file session on ``counter`` that increments ``total`` and its own ``per_process`` entry,
- a key session on ``tally`` that increments the key ``hits``.

Sessions hold the database's write lock from the read to the end of the block, so no increment
is lost. The parent checks every child's exit code and the exact totals, and exits with 1 if
anything is off. Run with ``.venv/bin/python examples/multiprocess_counter.py --help``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time

import dictdatabase as DDB


def worker(storage: str, worker_id: int, increments: int) -> None:
    # A spawned child starts with the default configuration: set it again.
    DDB.config.storage_directory = storage
    for _ in range(increments):
        with DDB.at("counter").session() as (session, counter):
            counter["total"] += 1
            mine = str(worker_id)
            counter["per_process"][mine] = counter["per_process"].get(mine, 0) + 1
            session.write()
        with DDB.at("tally", key="hits").session() as (session, hits):
            hits["n"] += 1
            session.write()


def run(processes: int, increments: int) -> int:
    with tempfile.TemporaryDirectory(prefix="ddb_counter_") as storage:
        DDB.config.storage_directory = storage
        DDB.at("counter").create({"total": 0, "per_process": {}})
        DDB.at("tally").create({"hits": {"n": 0}, "other": "untouched"})

        context = multiprocessing.get_context("spawn")
        children = [
            context.Process(target=worker, args=(storage, worker_id, increments), name=f"worker-{worker_id}")
            for worker_id in range(processes)
        ]
        started = time.perf_counter()
        for child in children:
            child.start()
        for child in children:
            child.join()
        elapsed = time.perf_counter() - started

        failures = [f"{child.name} exited with {child.exitcode}" for child in children if child.exitcode != 0]
        counter = DDB.at("counter").read()
        tally = DDB.at("tally").read()

    expected = processes * increments
    print(f"{processes} processes x {increments} increments in {elapsed:.2f} s")
    print(f"counter total: {counter['total']} (expected {expected})")
    print(f"tally hits:    {tally['hits']['n']} (expected {expected})")
    print(f"per process:   {dict(sorted(counter['per_process'].items(), key=lambda item: int(item[0])))}")

    if counter["total"] != expected:
        failures.append(f"counter total is {counter['total']}, expected {expected}")
    if tally["hits"]["n"] != expected:
        failures.append(f"tally hits is {tally['hits']['n']}, expected {expected}")
    if tally["other"] != "untouched":
        failures.append("a key session changed another key")
    for worker_id in range(processes):
        count = counter["per_process"].get(str(worker_id))
        if count != increments:
            failures.append(f"worker {worker_id} counted {count}, expected {increments}")

    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    if failures:
        return 1
    print("OK: no increment was lost")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4, help="worker processes (default 4)")
    parser.add_argument("--increments", type=int, default=100, help="increments per worker (default 100)")
    args = parser.parse_args()
    if args.processes < 1 or args.increments < 1:
        parser.error("--processes and --increments must be at least 1")
    return run(args.processes, args.increments)


if __name__ == "__main__":
    sys.exit(main())
