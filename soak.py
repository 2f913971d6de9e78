"""Crash-safety and concurrency soak run for DictDataBase.

Run it from the repository root:

    python soak.py                      # 200 crash rounds each for full and key writes, plus
                                        # the multi-process increment mix
    python soak.py --rounds 1000 --seed 7 --start-method spawn

Crash rounds: a writer process increments counters in a small file and in a file larger
than 1 MiB (full sessions or key sessions; key writes on the big file are journaled
in-place writes) and is SIGKILLed at a random moment. After every kill all files must
parse, every acknowledged write must be on disk (the counter is the last acknowledged value
or one more), the rest of the data must be intact, and the next writer must clean up the
dead writer's lock and temporary files.

Increment mix: several processes increment one counter through full and key sessions while
reader processes check every state they see; the end count must be exact.

The last line is ``N rounds, C corrupt, L lost``; the exit code is non-zero when anything
was corrupt, lost, or otherwise wrong. The harness lives in tests/ddb_workers.py (shared
with tests/test_crash.py and tests/test_concurrency.py).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "tests"))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import ddb_workers as W  # noqa: E402

import dictdatabase as DDB  # noqa: E402


def parse_args(argv: list | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200, help="crash rounds per write kind (default 200)")
    parser.add_argument(
        "--kinds",
        default="full,key",
        help="write kinds of the crash rounds, comma separated (default full,key)",
    )
    parser.add_argument(
        "--start-method",
        choices=("fork", "spawn", "both"),
        default="both",
        help="how to start children; 'both' uses spawn for every fourth round (default)",
    )
    parser.add_argument(
        "--max-delay", type=float, default=0.12, help="latest kill after the writer started, s"
    )
    parser.add_argument("--mix-runs", type=int, default=6, help="runs of the multi-process increment mix")
    parser.add_argument("--procs", type=int, default=4, help="incrementing processes per mix run")
    parser.add_argument("--increments", type=int, default=50, help="increments per process per mix run")
    parser.add_argument("--readers", type=int, default=2, help="reader processes per mix run")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--storage", default=None, help="storage directory (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the storage directory at the end")
    parser.add_argument("--quiet", action="store_true", help="print only problems and the final line")
    return parser.parse_args(argv)


def context_for(round_number: int, method: str) -> multiprocessing.context.BaseContext:
    if method == "both":
        method = "spawn" if round_number % 4 == 3 else "fork"
    return multiprocessing.get_context(method)


class Tally:
    def __init__(self, quiet: bool) -> None:
        self.rounds = 0
        self.corrupt = 0
        self.lost = 0
        self.other = 0
        self.quiet = quiet

    def problem(self, kind: str, text: str) -> None:
        print(f"  {kind.upper()}: {text}", flush=True)  # noqa: T201 - a command-line report

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)  # noqa: T201 - a command-line report


def crash_rounds(args: argparse.Namespace, storage: str, rng: random.Random, tally: Tally) -> None:
    fixed = W.create_crash_files()
    settings = W.current_settings(AQUIRE_LOCK_TIMEOUT=30.0)
    for how in [kind.strip() for kind in args.kinds.split(",") if kind.strip()]:
        hits: dict = {}
        writes = 0
        started = time.monotonic()
        for number in range(args.rounds):
            ctx = context_for(number, args.start_method)
            # Every other key round aims the kill at an in-place write (journal present).
            aim = how == "key" and number % 2 == 1
            result = W.crash_round(
                ctx, storage, settings, how, fixed, rng, args.max_delay, aim_at_journal=aim
            )
            tally.rounds += 1
            writes += result.writes
            for hit in result.hits:
                hits[hit] = hits.get(hit, 0) + 1
            for text in result.corrupt:
                tally.corrupt += 1
                tally.problem("corrupt", f"{how} round {number}: {text}")
            for text in result.lost:
                tally.lost += 1
                tally.problem("lost", f"{how} round {number}: {text}")
            for text in result.other:
                tally.other += 1
                tally.problem("error", f"{how} round {number}: {text}")
            if (number + 1) % 20 == 0 or number + 1 == args.rounds:
                seen = ", ".join(f"{k}={v}" for k, v in sorted(hits.items())) or "none"
                tally.say(
                    f"{how:>4}: {number + 1}/{args.rounds} rounds, {writes} acknowledged writes, "
                    f"{tally.corrupt} corrupt, {tally.lost} lost so far; kills left: {seen} "
                    f"({time.monotonic() - started:.1f} s)"
                )


def increment_mix(args: argparse.Namespace, storage: str, rng: random.Random, tally: Tally) -> None:
    settings = W.current_settings(AQUIRE_LOCK_TIMEOUT=60.0)
    layouts = [
        ("full", False),
        ("key", False),
        ("mixed", False),
        ("full", True),
        ("key", True),
        ("mixed", True),
    ]
    for run in range(args.mix_runs):
        how, large = layouts[run % len(layouts)]
        ctx = context_for(run, args.start_method)
        name = f"mix/run{run}"
        fixed = (
            {f"k{i:04d}": {"name": "x" * 60, "i": i} for i in range(1200)}
            if large
            else {"alpha": {"x": 1}, "omega": [1, 2, 3]}
        )
        DDB.at(name).create(dict(fixed, counter={"n": 0}), force_overwrite=True)
        stop = ctx.Event()
        reads = [ctx.Value("i", 0) for _ in range(args.readers)]
        readers = [
            ctx.Process(
                target=W.checking_reader,
                args=(storage, settings, name, fixed, stop, reads[i], 0.002),
                daemon=True,
            )
            for i in range(args.readers)
        ]
        writers = [
            ctx.Process(
                target=W.incrementer,
                args=(storage, settings, name, how, args.increments, rng.getrandbits(32)),
                daemon=True,
            )
            for _ in range(args.procs)
        ]
        started = time.monotonic()
        for process in readers + writers:
            process.start()
        try:
            writer_problems = W.join_or_kill(writers, 600)
        finally:
            stop.set()
            reader_problems = W.join_or_kill(readers, 60)
        tally.rounds += 1
        expected = args.procs * args.increments
        try:
            data = DDB.at(name).read()
            got = data["counter"]["n"]
            intact = {k: v for k, v in data.items() if k != "counter"} == fixed
        except Exception as error:  # noqa: BLE001 - any failure to read is corruption
            tally.corrupt += 1
            tally.problem("corrupt", f"mix run {run}: {type(error).__name__}: {error}")
            continue
        if not intact:
            tally.corrupt += 1
            tally.problem("corrupt", f"mix run {run}: the keys that never change were changed")
        if got < expected:
            tally.lost += expected - got
            tally.problem("lost", f"mix run {run} ({how}, large={large}): counter {got}, expected {expected}")
        elif got > expected:
            tally.corrupt += 1
            tally.problem(
                "corrupt", f"mix run {run} ({how}, large={large}): counter {got}, expected {expected}"
            )
        for text in reader_problems:
            tally.corrupt += 1
            tally.problem("corrupt", f"mix run {run}: a reader saw a bad state or failed: {text}")
        for text in writer_problems:
            tally.other += 1
            tally.problem("error", f"mix run {run}: {text}")
        tally.say(
            f" mix: run {run + 1}/{args.mix_runs} ({how}, {'large' if large else 'small'} file, "
            f"{ctx.get_start_method()}): counter {got}/{expected}, reads {[r.value for r in reads]} "
            f"({time.monotonic() - started:.1f} s)"
        )


def main(argv: list | None = None) -> int:
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)  # noqa: S311 - kill timing, not cryptography
    storage = os.path.abspath(args.storage) if args.storage else tempfile.mkdtemp(prefix="ddb_soak_")
    DDB.config.storage_directory = storage
    tally = Tally(args.quiet)
    tally.say(f"soak: seed {seed}, storage {storage}")
    started = time.monotonic()
    try:
        if args.rounds > 0:
            crash_rounds(args, storage, rng, tally)
        if args.mix_runs > 0:
            increment_mix(args, storage, rng, tally)
    finally:
        failed = tally.corrupt or tally.lost or tally.other
        if failed or args.keep:
            tally.say(f"storage kept at {storage}")
        elif not args.storage:
            shutil.rmtree(storage, ignore_errors=True)
    if tally.other:
        print(f"{tally.other} other problems (see above); seed {seed}", flush=True)  # noqa: T201
    tally.say(f"took {time.monotonic() - started:.1f} s")
    print(f"{tally.rounds} rounds, {tally.corrupt} corrupt, {tally.lost} lost", flush=True)  # noqa: T201
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
