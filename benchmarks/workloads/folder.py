"""Workload 4: a folder of many small documents, read all at once.

DictDataBase: ``DDB.at(folder, "*").read()`` over one file per document. SQLite: one table,
``SELECT key, value FROM docs`` decoding each row. TinyDB: all documents in one file.
"""

from __future__ import annotations

from typing import List

import dictdatabase as DDB

from ..context import Context
from ..data import ValueFactory, key_name
from ..results import Row, Target
from ..stores import SqliteDocs, TinyDocs

TITLE = "folder"
FOLDER = "folder"


def run(ctx: Context) -> List[Row]:
    settings = ctx.settings
    count = settings.folder_docs
    mapping = ValueFactory(settings.doc_kb * 1024, seed=settings.seed).mapping(count)
    ctx.say(f"  creating {count} documents of ~{settings.doc_kb} KB in each store")
    for name, document in mapping.items():
        DDB.at(FOLDER, name).create(document)
    sqlite = SqliteDocs(ctx.sqlite_path(FOLDER))
    sqlite.load(mapping)
    tinydb = TinyDocs(ctx.tinydb_path(FOLDER))
    tinydb.load(mapping)
    _check_same(DDB.at(FOLDER, "*").read(), sqlite.read_all(), count)

    row = Row(TITLE, f"read all {count} documents", "docs/s", target=Target("vs_sqlite", 0.5))
    operations = {"ddb": DDB.at(FOLDER, "*").read, "sqlite": sqlite.read_all, "tinydb": tinydb.read_all}
    ctx.measure(row, operations, scale=dict.fromkeys(operations, count))
    sqlite.close()
    tinydb.close()
    return [row]


def _check_same(ddb: dict, sqlite: dict, count: int) -> None:
    """Both stores return the same documents (so both really read everything)."""
    if len(ddb) != count or ddb != sqlite or key_name(0) not in ddb:
        msg = "the folder read and the SQLite read disagree"
        raise AssertionError(msg)
