"""Workload 1: a tiny file (a few keys of small dicts), read and changed in every way."""

from __future__ import annotations

from typing import List

import dictdatabase as DDB

from ..context import Context
from ..data import bump, tiny_mapping
from ..results import Row, Target
from ..stores import SqliteDocs, TinyDocs, ddb_full_session, ddb_key_session
from ..timing import round_robin

TITLE = "tiny file"
NAME = "tiny"


def run(ctx: Context) -> List[Row]:
    mapping = tiny_mapping(ctx.settings.tiny_keys)
    ctx.say(f"  creating a file of {len(mapping)} small values in each store")
    DDB.at(NAME).create(mapping)
    sqlite = SqliteDocs(ctx.sqlite_path(NAME))
    sqlite.load(mapping)
    tiny = TinyDocs(ctx.tinydb_path(NAME))
    tiny.load(mapping)
    keys = list(mapping)
    target = Target("vs_sqlite", 0.5)
    rows = [
        ctx.measure(
            Row(TITLE, "full read", "ops/s", target=target),
            {"ddb": DDB.at(NAME).read, "sqlite": sqlite.read_all, "tinydb": tiny.read_all},
        ),
        ctx.measure(
            Row(TITLE, "key read", "ops/s", target=target),
            {
                "ddb": round_robin(lambda key: DDB.at(NAME, key=key).read(), keys),
                "sqlite": round_robin(sqlite.read_key, keys),
                "tinydb": round_robin(tiny.read_key, keys),
            },
        ),
        ctx.measure(
            Row(TITLE, "full-session write", "ops/s", target=target),
            {
                "ddb": round_robin(lambda key: ddb_full_session(NAME, key, bump), keys),
                "sqlite": round_robin(lambda key: sqlite.full_session(key, bump), keys),
                "tinydb": round_robin(lambda key: tiny.full_session(key, bump), keys),
            },
        ),
        ctx.measure(
            Row(TITLE, "key-session write", "ops/s", target=target),
            {
                "ddb": round_robin(lambda key: ddb_key_session(NAME, key, bump), keys),
                "sqlite": round_robin(lambda key: sqlite.key_session(key, bump), keys),
                "tinydb": round_robin(lambda key: tiny.key_session(key, bump), keys),
            },
        ),
    ]
    sqlite.close()
    tiny.close()
    return rows
