"""Workload 5: peak memory of key reads on a big file (default 500 MB).

A subprocess creates the file (and its SQLite twin), so this process's memory is not
involved. Each case then runs in its own fresh process (see ``worker.rss``): the baseline
is taken after the imports (and, for a warm read, after a first read of the key); the
figure is how much the peak RSS rose over it during the measured read(s).
TinyDB would parse the whole file into memory, so it is not measured.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List

import dictdatabase as DDB

from ..context import Context
from ..data import key_name
from ..results import Row, Target

TITLE = "memory on a big file"
NAME = "big"
WARM_READS = 200
TINYDB_SKIPPED = {"tinydb": "skipped: loads the whole file into memory"}


def run(ctx: Context) -> List[Row]:
    settings = ctx.settings
    value_bytes = settings.value_kb * 1024
    keys = max(1, settings.big_mb * 1_000_000 // value_bytes)
    sqlite_path = ctx.sqlite_path(NAME)
    ctx.say(f"  creating a {settings.big_mb} MB file ({keys} keys) and its SQLite twin in a subprocess")
    made = ctx.run_worker(
        {
            "task": "make_big",
            "storage": ctx.storage,
            "name": NAME,
            "path": sqlite_path,
            "keys": keys,
            "value_bytes": value_bytes,
        }
    )
    title = f"{made['ddb_bytes'] / 1e6:.0f} MB file, memory"
    key = key_name(keys // 2)
    ddb = {"backend": "ddb", "storage": ctx.storage, "name": NAME, "key": key}
    sqlite = {"backend": "sqlite", "path": sqlite_path, "key": key}

    warm = Row(title, f"warm key read x{WARM_READS}: added peak RSS", "MB", target=Target("below", 32))
    first = Row(
        title, "first-touch key read (index file on disk): added peak RSS", "MB", target=Target("below", 64)
    )
    cold = Row(
        title, "first-touch key read (no index file): added peak RSS", "MB", target=Target("below", 64)
    )
    for row in (warm, first, cold):
        row.skipped = dict(TINYDB_SKIPPED)
    ctx.measured(warm, "ddb", _added_mb(ctx, ddb, "warm", WARM_READS))
    ctx.measured(warm, "sqlite", _added_mb(ctx, sqlite, "warm", WARM_READS))
    ctx.measured(first, "ddb", _added_mb(ctx, ddb, "first", 1))
    ctx.measured(first, "sqlite", _added_mb(ctx, sqlite, "first", 1))
    os.unlink(os.path.join(DDB.utils.private_dir(NAME), "index"))
    ctx.measured(cold, "ddb", _added_mb(ctx, ddb, "first", 1))
    cold.note = "the read scans the whole file to build the index"
    return [warm, first, cold]


def _added_mb(ctx: Context, task: Dict[str, Any], mode: str, reads: int) -> float:
    result = ctx.run_worker(dict(task, task="rss", mode=mode, reads=reads))
    if not result["peak_reset"]:
        ctx.say("    (could not reset the peak RSS; the baseline is the peak so far)")
    return result["increase_mb"]
