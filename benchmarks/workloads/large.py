"""Workload 2: a large file (default 4000 keys of ~12 KB, about 50 MB).

- first-touch key reads: a fresh process reads many distinct keys once each, so one index
  load (or scan) is spread over them; plus the one-time cost of the first read, with and
  without the index file on disk;
- warm key reads (one key again and again);
- key-session writes that change the value's length, and ones that keep it, compared with
  the cost of writing the file's suffix once and of one plain ``pwrite`` of a value;
- full reads.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import dictdatabase as DDB

from ..context import Context
from ..data import ValueFactory, flip, resize
from ..results import Row, Target
from ..stores import SqliteDocs, TinyDocs, ddb_key_session, ids_for
from ..timing import round_robin

TITLE = "large file"
NAME = "large"
#: TinyDB parses the whole file on every read; a few keys show its (flat) first-touch rate.
TINYDB_FIRST_TOUCH_KEYS = 3


@dataclass
class Stores:
    """The large file in each store, and facts about the DictDataBase file."""

    sqlite: SqliteDocs
    tinydb: TinyDocs
    keys: List[str]
    content: bytes  #: the DictDataBase file as created

    @property
    def size(self) -> int:
        return len(self.content)

    def value_start(self, key: str) -> int:
        """Offset of ``key``'s value in the DictDataBase file (orjson indents with 2 spaces)."""
        marker = b'\n  "' + key.encode() + b'": '
        position = self.content.find(marker)
        if position < 0:
            msg = f"key {key!r} not found at the top level of the file"
            raise LookupError(msg)
        return position + len(marker)


def run(ctx: Context) -> List[Row]:
    stores = _create(ctx)
    title = f"{stores.size / 1e6:.0f} MB file"
    rng = random.Random(ctx.settings.seed)
    write_keys = sorted(rng.sample(stores.keys, min(ctx.settings.write_keys, len(stores.keys))))
    rows = _first_touch_rows(ctx, title, stores, rng)
    rows.append(_warm_read_row(ctx, title, stores))
    rows += _write_rows(ctx, title, stores, write_keys)
    rows.append(_full_read_row(ctx, title, stores))
    stores.sqlite.close()
    stores.tinydb.close()
    return rows


def _create(ctx: Context) -> Stores:
    settings = ctx.settings
    mapping = ValueFactory(settings.value_kb * 1024, seed=settings.seed).mapping(settings.large_keys)
    ctx.say(f"  creating a file of {len(mapping)} values of ~{settings.value_kb} KB in each store")
    DDB.at(NAME).create(mapping)
    keys = list(mapping)
    DDB.at(NAME, key=keys[0]).read()  # the index file now exists, as after any earlier use
    sqlite = SqliteDocs(ctx.sqlite_path(NAME))
    sqlite.load(mapping)
    tinydb = TinyDocs(ctx.tinydb_path(NAME))
    tinydb.load(mapping)
    with open(os.path.join(ctx.storage, NAME + ".json"), "rb") as handle:
        content = handle.read()
    return Stores(sqlite, tinydb, keys, content)


# ---------------------------------------------------------------------------------------
# First-touch reads in fresh processes


@dataclass
class FreshReads:
    """Medians over fresh processes: reads per second, and the first read's duration."""

    rate: float
    first_ms: float


def _fresh_reads(
    ctx: Context, task: Dict[str, Any], runs: int, before: Optional[Callable[[], None]] = None
) -> FreshReads:
    rates, firsts = [], []
    for _ in range(runs):
        if before is not None:
            before()
        result = ctx.run_worker(dict(task, task="first_touch"))
        rates.append(result["count"] / result["total_s"])
        firsts.append(result["first_s"] * 1000)
    return FreshReads(statistics.median(rates), statistics.median(firsts))


def _delete_index() -> None:
    path = os.path.join(DDB.utils.private_dir(NAME), "index")
    if os.path.exists(path):
        os.unlink(path)


def _first_touch_rows(ctx: Context, title: str, stores: Stores, rng: random.Random) -> List[Row]:
    settings = ctx.settings
    order = list(stores.keys)
    rng.shuffle(order)
    order = order[: settings.first_touch_keys or len(order)]
    runs = settings.first_touch_runs
    ctx.say(f"  first-touch reads of {len(order)} keys, each in {runs} fresh processes per store")
    ddb_task = {"backend": "ddb", "storage": ctx.storage, "name": NAME, "keys": order}
    cold = _fresh_reads(ctx, ddb_task, runs, before=_delete_index)
    warm = _fresh_reads(ctx, ddb_task, runs)
    sqlite = _fresh_reads(ctx, {"backend": "sqlite", "path": stores.sqlite.path, "keys": order}, runs)
    tiny_keys = order[:TINYDB_FIRST_TOUCH_KEYS]
    tiny_task = {
        "backend": "tinydb",
        "path": ctx.tinydb_path(NAME),
        "keys": tiny_keys,
        "doc_ids": ids_for(stores.tinydb, tiny_keys),
    }
    tinydb = _fresh_reads(ctx, tiny_task, 1)

    touch = Row(title, "first-touch key read (index file on disk)", "ops/s", target=Target("vs_sqlite", 0.5))
    touch_cold = Row(
        title, "first-touch key read (no index file)", "ops/s", note="the first read scans the file"
    )
    first = Row(title, "first read in a fresh process (index file on disk)", "ms")
    first_cold = Row(title, "first read in a fresh process (no index file)", "ms")
    for row, ddb in ((touch, warm), (touch_cold, cold)):
        ctx.measured(row, "ddb", ddb.rate)
        ctx.measured(row, "sqlite", sqlite.rate)
    ctx.measured(touch, "tinydb", tinydb.rate)
    for row, ddb in ((first, warm), (first_cold, cold)):
        ctx.measured(row, "ddb", ddb.first_ms)
        ctx.measured(row, "sqlite", sqlite.first_ms)
    ctx.measured(first, "tinydb", tinydb.first_ms)
    first.note = (
        "SQLite: first query after connecting (connect and PRAGMAs are not timed); TinyDB: first get()"
    )
    return [touch, touch_cold, first, first_cold]


# ---------------------------------------------------------------------------------------
# Warm reads and full reads


def _warm_read_row(ctx: Context, title: str, stores: Stores) -> Row:
    key = stores.keys[len(stores.keys) // 2]
    return ctx.measure(
        Row(title, "warm key read (same key)", "ops/s", target=Target("vs_sqlite", 1.0)),
        {
            "ddb": lambda: DDB.at(NAME, key=key).read(),
            "sqlite": lambda: stores.sqlite.read_key(key),
            "tinydb": lambda: stores.tinydb.read_key(key),
        },
        slow={"tinydb": 3},
    )


def _full_read_row(ctx: Context, title: str, stores: Stores) -> Row:
    return ctx.measure(
        Row(title, "full read", "ops/s"),
        {"ddb": DDB.at(NAME).read, "sqlite": stores.sqlite.read_all, "tinydb": stores.tinydb.read_all},
        slow={"tinydb": 2},
    )


# ---------------------------------------------------------------------------------------
# Key-session writes and their references


def _write_rows(ctx: Context, title: str, stores: Stores, write_keys: List[str]) -> List[Row]:
    ctx.say(f"  key-session writes on {len(write_keys)} keys spread over the file")
    resize_row = _key_write_row(ctx, title, "key-session write, length changes", stores, write_keys, resize)
    flip_row = _key_write_row(ctx, title, "key-session write, same length", stores, write_keys, flip)

    starts = [stores.value_start(key) for key in write_keys]
    resize_s, suffix_s = _resize_and_suffix_seconds(ctx, stores.content, write_keys, starts)
    mean_suffix_mb = statistics.mean(stores.size - start for start in starts) / 1e6
    suffix_row = Row(
        title,
        "length-changing key write / one write() of the file's suffix",
        "x",
        target=Target("at_most", 2.0),
        note=(
            f"{resize_s * 1000:.2f} ms per length-changing key-session write vs {suffix_s * 1000:.2f} ms to "
            f"write the suffix (mean {mean_suffix_mb:.1f} MB) to a new file with one write(), "
            "in alternating passes over the same keys"
        ),
    )
    ctx.measured(suffix_row, "ddb", resize_s / suffix_s)

    pwrite_s = _pwrite_seconds(ctx, stores.content, starts, ctx.settings.value_kb * 1024)
    flip_s = 1 / flip_row.ddb
    pwrite_row = Row(
        title,
        f"same-length key write / one {ctx.settings.value_kb} KB pwrite",
        "x",
        note=f"{flip_s * 1e6:.0f} us per same-length key-session write vs {pwrite_s * 1e6:.1f} us per pwrite",
    )
    ctx.measured(pwrite_row, "ddb", flip_s / pwrite_s)
    return [resize_row, flip_row, suffix_row, pwrite_row]


def _key_write_row(
    ctx: Context, title: str, operation: str, stores: Stores, keys: List[str], change: Callable[[Any], None]
) -> Row:
    """Key-session writes of ``change`` on ``keys``. DictDataBase is timed in whole passes
    over the keys (its cost depends on where the key is), the others round robin."""

    def ddb_pass() -> None:
        for key in keys:
            ddb_key_session(NAME, key, change)

    return ctx.measure(
        Row(title, operation, "ops/s"),
        {
            "ddb": ddb_pass,
            "sqlite": round_robin(lambda key: stores.sqlite.key_session(key, change), keys),
            "tinydb": round_robin(lambda key: stores.tinydb.key_session(key, change), keys),
        },
        slow={"ddb": ctx.timer.repeats, "tinydb": 2},
        scale={"ddb": len(keys)},
    )


def _resize_and_suffix_seconds(
    ctx: Context, content: bytes, keys: List[str], starts: List[int]
) -> Tuple[float, float]:
    """Mean seconds per length-changing key write and per suffix write, as medians over
    alternating passes (one pass writes each key once / each key's suffix once)."""
    path = ctx.scratch_path("suffix")
    view = memoryview(content)

    def suffix_write(start: int) -> float:
        begin = time.perf_counter()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        written = os.write(fd, view[start:])
        os.close(fd)
        elapsed = time.perf_counter() - begin
        os.unlink(path)  # not timed
        if written != len(view) - start:
            msg = "a single write() did not write the whole suffix"
            raise OSError(msg)
        return elapsed

    def resize_pass() -> float:
        begin = time.perf_counter()
        for key in keys:
            ddb_key_session(NAME, key, resize)
        return (time.perf_counter() - begin) / len(keys)

    def suffix_pass() -> float:
        return statistics.mean(suffix_write(start) for start in starts)

    resize_pass()  # warm-up
    suffix_pass()
    resize_times, suffix_times = [], []
    for _ in range(ctx.timer.repeats):
        resize_times.append(resize_pass())
        suffix_times.append(suffix_pass())
    return statistics.median(resize_times), statistics.median(suffix_times)


def _pwrite_seconds(ctx: Context, content: bytes, starts: List[int], length: int) -> float:
    """Seconds per ``pwrite`` of ``length`` bytes into an open copy of the file."""
    path = ctx.scratch_path("pwrite")
    with open(path, "wb") as handle:
        handle.write(content)
    fd = os.open(path, os.O_WRONLY)
    payload = b"x" * length
    try:
        rate = ctx.timer.rate(round_robin(lambda start: os.pwrite(fd, payload, start), starts))
    finally:
        os.close(fd)
        os.unlink(path)
    return 1 / rate
