"""Several processes write random keys of one database through key sessions for a while.

``--processes`` writer processes each run key sessions on random keys of one file for
``--seconds`` seconds (every session increments the key's ``count``), while ``--readers`` reader
processes read random keys and check that no count ever goes backwards. Afterwards the script
checks that every key's count equals the number of increments the writers reported, that no key
was lost or added, and that every worker exited cleanly; it prints operations per second. It works
in a temporary storage directory and removes it at the end. Exit status 1 means a check failed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue
import random
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Tuple

import dictdatabase as DDB

NAME = "random_writes"


def make_data(keys: int, value_bytes: int) -> Dict[str, Any]:
    filler = "x" * value_bytes
    return {f"key{i:05d}": {"count": 0, "last_writer": None, "text": filler} for i in range(keys)}


def writer(
    storage: str, worker_id: int, names: List[str], seconds: float, seed: int, go: Any, out: Any
) -> None:
    DDB.config.storage_directory = storage
    rng = random.Random(seed)
    counts: Dict[str, int] = {}
    try:
        go.wait()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            key = rng.choice(names)
            with DDB.at(NAME, key=key).session() as (session, value):
                value["count"] += 1
                value["last_writer"] = worker_id
                session.write()
            counts[key] = counts.get(key, 0) + 1
    except Exception as error:
        out.put(("error", f"writer {worker_id}", repr(error)))
        raise
    out.put(("writer", worker_id, counts))


def reader(
    storage: str, worker_id: int, names: List[str], seconds: float, seed: int, go: Any, out: Any
) -> None:
    DDB.config.storage_directory = storage
    rng = random.Random(seed)
    seen: Dict[str, int] = {}
    reads = 0
    problems: List[str] = []
    try:
        go.wait()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            key = rng.choice(names)
            value = DDB.at(NAME, key=key).read()
            reads += 1
            if not isinstance(value, dict) or not isinstance(value.get("count"), int):
                problems.append(f"{key} read as {value!r}")
            elif value["count"] < seen.get(key, 0):
                problems.append(f"{key} went back from {seen[key]} to {value['count']}")
            else:
                seen[key] = value["count"]
    except Exception as error:
        out.put(("error", f"reader {worker_id}", repr(error)))
        raise
    out.put(("reader", worker_id, {"reads": reads, "problems": problems[:10]}))


class Results:
    """What the workers reported, and every problem found."""

    def __init__(self) -> None:
        self.failures: List[str] = []
        self.written: Dict[str, int] = {}
        self.writes = 0
        self.reads = 0

    def add(self, kind: str, who: Any, result: Any) -> None:
        if kind == "error":
            self.failures.append(f"{who} failed: {result}")
        elif kind == "writer":
            self.writes += sum(result.values())
            for key, count in result.items():
                self.written[key] = self.written.get(key, 0) + count
        else:
            self.reads += result["reads"]
            self.failures.extend(f"reader {who}: {problem}" for problem in result["problems"])

    def verify(self, final: Dict[str, Any], names: List[str]) -> None:
        if sorted(final) != names:
            self.failures.append(
                f"the file has {len(final)} keys, expected the {len(names)} it was created with"
            )
        wrong = [key for key in names if final.get(key, {}).get("count") != self.written.get(key, 0)]
        self.failures.extend(
            f"{key}: count {final.get(key, {}).get('count')}, writers reported {self.written.get(key, 0)}"
            for key in wrong[:10]
        )
        if len(wrong) > 10:
            self.failures.append(f"... and {len(wrong) - 10} more keys with wrong counts")


def run_workers(storage: str, names: List[str], args: argparse.Namespace, results: Results) -> None:
    context = multiprocessing.get_context("spawn")
    go = context.Barrier(args.processes + args.readers + 1)  # everybody starts at once
    out = context.Queue()
    roles: List[Tuple[str, Any]] = [("writer", writer)] * args.processes + [("reader", reader)] * args.readers
    children = [
        context.Process(
            target=target,
            args=(storage, index, names, args.seconds, args.seed * 1000 + index, go, out),
            name=f"{role}-{index}",
        )
        for index, (role, target) in enumerate(roles)
    ]
    for child in children:
        child.start()
    try:
        go.wait(timeout=120)
    except threading.BrokenBarrierError:
        results.failures.append("the workers did not all start within 120 s")
        for child in children:
            child.terminate()
    else:
        for _ in children:
            try:
                results.add(*out.get(timeout=args.seconds + 120))
            except queue.Empty:
                results.failures.append("a worker did not report within its time budget")
                break
    for child in children:
        child.join(timeout=60)
        if child.is_alive():
            child.terminate()
            child.join()
        if child.exitcode != 0:
            results.failures.append(f"{child.name} exited with {child.exitcode}")


def run(args: argparse.Namespace) -> int:
    results = Results()
    with tempfile.TemporaryDirectory(prefix="ddb_random_writes_") as storage:
        DDB.config.storage_directory = storage
        data = make_data(args.keys, args.value_bytes)
        DDB.at(NAME).create(data)
        names = sorted(data)
        run_workers(storage, names, args, results)
        final = DDB.at(NAME).read()
    results.verify(final, names)

    print(f"{args.processes} writers, {args.readers} readers, {args.keys} keys, {args.seconds:g} s")
    print(f"key-session writes: {results.writes} ({results.writes / args.seconds:.0f}/s)")
    print(f"key reads:          {results.reads} ({results.reads / args.seconds:.0f}/s)")
    print(f"sum of counts in the file: {sum(value.get('count', 0) for value in final.values())}")
    for failure in results.failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    if results.failures:
        return 1
    print("OK: every write is in the file, no read went backwards")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4, help="writer processes (default 4)")
    parser.add_argument("--readers", type=int, default=1, help="reader processes (default 1)")
    parser.add_argument("--seconds", type=float, default=3.0, help="how long the workers run (default 3)")
    parser.add_argument("--keys", type=int, default=200, help="top-level keys in the file (default 200)")
    parser.add_argument("--value-bytes", type=int, default=64, help="filler bytes per value (default 64)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    args = parser.parse_args()
    if args.processes < 1 or args.readers < 0 or args.keys < 1 or args.seconds <= 0:
        parser.error("need --processes >= 1, --readers >= 0, --keys >= 1 and --seconds > 0")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
