"""Compare full reads, key reads, key sessions and full sessions on one generated file.

The script builds a database of ``--keys`` top-level keys in a temporary storage directory and
times ``--repeat`` runs of each scenario on random keys, then prints a table of the mean time per
operation and operations per second. The temporary directory is removed at the end.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Tuple

import dictdatabase as DDB

NAME = "scenario"


def make_data(keys: int, value_bytes: int) -> Dict[str, Any]:
    filler = "x" * value_bytes
    return {
        f"key{i:07d}": {"id": i, "count": 0, "nested": {"a": [1, 2, 3]}, "text": filler} for i in range(keys)
    }


def full_read(_key: str) -> None:
    DDB.at(NAME).read()


def key_read(key: str) -> None:
    DDB.at(NAME, key=key).read()


def key_session(key: str) -> None:
    with DDB.at(NAME, key=key).session() as (session, value):
        value["count"] += 1
        session.write()


def full_session(key: str) -> None:
    with DDB.at(NAME).session() as (session, data):
        data[key]["count"] += 1
        session.write()


SCENARIOS: List[Tuple[str, Callable[[str], None], bool]] = [
    ("full read", full_read, False),
    ("key read", key_read, False),
    ("key session", key_session, True),
    ("full session", full_session, True),
]


def time_scenario(
    run: Callable[[str], None], names: List[str], repeat: int, rng: random.Random
) -> List[float]:
    durations = []
    for _ in range(repeat):
        key = rng.choice(names)
        started = time.perf_counter()
        run(key)
        durations.append(time.perf_counter() - started)
    return durations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=5000, help="top-level keys in the file (default 5000)")
    parser.add_argument("--repeat", type=int, default=50, help="runs of each scenario (default 50)")
    parser.add_argument("--value-bytes", type=int, default=100, help="filler bytes per value (default 100)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--indent", default="tab", help='"tab", "none" or a number of spaces (default tab)')
    parser.add_argument("--compression", action="store_true", help="store the file zlib-compressed")
    parser.add_argument("--no-orjson", action="store_true", help="use the standard json module")
    args = parser.parse_args()
    if args.keys < 1 or args.repeat < 1:
        parser.error("--keys and --repeat must be at least 1")
    indent_options = {"tab": "\t", "none": None}
    if args.indent not in indent_options and not args.indent.isdigit():
        parser.error('--indent must be "tab", "none" or a number')
    indent = indent_options[args.indent] if args.indent in indent_options else int(args.indent)

    rng = random.Random(args.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ddb_scenarios_") as storage:
        DDB.config.storage_directory = storage
        DDB.config.indent = indent
        DDB.config.use_compression = args.compression
        DDB.config.use_orjson = not args.no_orjson

        data = make_data(args.keys, args.value_bytes)
        DDB.at(NAME).create(data)
        names = sorted(data)
        size = DDB.utils.file_info(NAME).size_bytes
        writes = 0
        for label, run, writes_once in SCENARIOS:
            durations = time_scenario(run, names, args.repeat, rng)
            writes += args.repeat if writes_once else 0
            rows.append((label, durations))

        total = sum(value["count"] for value in DDB.at(NAME).read().values())

    print(
        f"file: {args.keys} keys, {size / 1024:.0f} KiB, indent={args.indent}, "
        f"compression={args.compression}, orjson={not args.no_orjson}; {args.repeat} runs each"
    )
    print(f"{'scenario':<14}{'mean ms':>10}{'median ms':>11}{'max ms':>10}{'ops/s':>10}")
    for label, durations in rows:
        mean = statistics.mean(durations)
        print(
            f"{label:<14}{mean * 1e3:>10.3f}{statistics.median(durations) * 1e3:>11.3f}"
            f"{max(durations) * 1e3:>10.3f}{1 / mean:>10.0f}"
        )

    if total != writes:
        print(f"FAIL: the counts add up to {total}, expected {writes}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
