"""Profile key reads and key sessions on a generated database with pyinstrument.

The script builds a database of ``--keys`` top-level keys in a temporary storage directory,
then runs ``--ops`` rounds of one key read and one key session on random keys under
pyinstrument, and prints pyinstrument's text report. It never opens a browser and removes the
temporary directory when it is done. pyinstrument comes with the ``dev`` dependency group.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from typing import Any, Dict, List

import dictdatabase as DDB


def make_data(keys: int, value_bytes: int) -> Dict[str, Any]:
    filler = "x" * value_bytes
    return {f"key{i:07d}": {"id": i, "count": 0, "tags": ["a", "b"], "text": filler} for i in range(keys)}


def workload(names: List[str], ops: int, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(ops):
        DDB.at("profiled", key=rng.choice(names)).read()
        with DDB.at("profiled", key=rng.choice(names)).session() as (session, value):
            value["count"] += 1
            session.write()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=2000, help="top-level keys in the file (default 2000)")
    parser.add_argument("--ops", type=int, default=1000, help="key read + key session rounds (default 1000)")
    parser.add_argument("--value-bytes", type=int, default=100, help="filler bytes per value (default 100)")
    parser.add_argument("--interval", type=float, default=0.0005, help="sampling interval in seconds")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--compression", action="store_true", help="store the file zlib-compressed")
    parser.add_argument("--no-orjson", action="store_true", help="use the standard json module")
    args = parser.parse_args()
    if args.keys < 1 or args.ops < 1:
        parser.error("--keys and --ops must be at least 1")

    try:
        from pyinstrument import Profiler  # noqa: PLC0415 - dev-only tool; a missing one gets a clear message
    except ImportError:
        print("profiler.py needs pyinstrument: install the dev tools with", file=sys.stderr)
        print("  .venv/bin/python -m pip install -e . --group dev", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="ddb_profile_") as storage:
        DDB.config.storage_directory = storage
        DDB.config.use_compression = args.compression
        DDB.config.use_orjson = not args.no_orjson

        data = make_data(args.keys, args.value_bytes)
        DDB.at("profiled").create(data)
        names = sorted(data)
        size = DDB.utils.file_info("profiled").size_bytes
        print(f"database: {args.keys} keys, {size / 1024:.0f} KiB on disk; {args.ops} rounds")

        profiler = Profiler(interval=args.interval)
        started = time.perf_counter()
        profiler.start()
        workload(names, args.ops, args.seed)
        profiler.stop()
        elapsed = time.perf_counter() - started

        total = sum(value["count"] for value in DDB.at("profiled").read().values())
        if total != args.ops:
            print(f"FAIL: the counts add up to {total}, expected {args.ops}", file=sys.stderr)
            return 1

    print(profiler.output_text(unicode=False, color=False, show_all=False))
    print(f"{args.ops} rounds in {elapsed:.3f} s: {2 * args.ops / elapsed:.0f} operations/s (profiled)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
