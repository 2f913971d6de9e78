"""The three stores behind one small vocabulary: load, read all, read a key, change in a session.

- DictDataBase with its default settings (orjson, indent ``"\\t"``, no compression).
- SQLite: one table ``docs(key TEXT PRIMARY KEY, value TEXT)`` per database, one row per
  top-level key holding the value as JSON text; WAL journal, ``synchronous=NORMAL``, one
  connection per process opened once. Values are encoded and decoded with orjson, as
  DictDataBase does, so the comparison is about storage and not about JSON libraries.
- TinyDB with its default ``JSONStorage``: one document ``{"_key": key, "value": value}``
  per top-level key.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Callable, Dict, Iterable, List, Optional

import orjson

import dictdatabase as DDB

Change = Callable[[Any], None]


# ---------------------------------------------------------------------------------------
# DictDataBase


def configure_ddb(storage_directory: str) -> None:
    """Point DictDataBase at ``storage_directory`` with the default format settings."""
    DDB.config.storage_directory = storage_directory
    DDB.config.indent = "\t"
    DDB.config.use_orjson = True
    DDB.config.use_compression = False


def ddb_full_session(name: str, key: str, change: Change) -> None:
    """Change one value through a session on the whole file."""
    with DDB.at(name).session() as (session, data):
        change(data[key])
        session.write()


def ddb_key_session(name: str, key: str, change: Change) -> None:
    """Change one value through a session on that key only."""
    with DDB.at(name, key=key).session() as (session, value):
        change(value)
        session.write()


# ---------------------------------------------------------------------------------------
# SQLite


def _encode(value: Any) -> str:
    return orjson.dumps(value).decode()


class SqliteDocs:
    """One SQLite database holding ``docs(key, value)``; the connection stays open."""

    def __init__(self, path: str, *, timeout: float = 60.0) -> None:
        self.path = path
        # isolation_level=None: no implicit transactions; every BEGIN/COMMIT below is explicit.
        self.conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS docs(key TEXT PRIMARY KEY, value TEXT)")

    def load(self, mapping: Dict[str, Any]) -> None:
        """Insert (or replace) every item of ``mapping`` in one transaction."""
        with self._transaction():
            self.conn.executemany(
                "INSERT OR REPLACE INTO docs(key, value) VALUES (?, ?)",
                ((key, _encode(value)) for key, value in mapping.items()),
            )

    def read_all(self) -> Dict[str, Any]:
        """Every row, decoded, as one dict (the equivalent of a full read)."""
        return {key: orjson.loads(value) for key, value in self.conn.execute("SELECT key, value FROM docs")}

    def read_key(self, key: str) -> Any:
        row = self.conn.execute("SELECT value FROM docs WHERE key = ?", (key,)).fetchone()
        return None if row is None else orjson.loads(row[0])

    def full_session(self, key: str, change: Change) -> None:
        """BEGIN IMMEDIATE; read all rows; UPDATE the changed row; COMMIT."""
        with self._transaction():
            data = self.read_all()
            change(data[key])
            self._update(key, data[key])

    def key_session(self, key: str, change: Change) -> None:
        """BEGIN IMMEDIATE; SELECT the row; UPDATE it; COMMIT."""
        with self._transaction():
            value = self.read_key(key)
            change(value)
            self._update(key, value)

    def _update(self, key: str, value: Any) -> None:
        self.conn.execute("UPDATE docs SET value = ? WHERE key = ?", (_encode(value), key))

    def _transaction(self) -> _Transaction:
        return _Transaction(self.conn)

    def close(self) -> None:
        self.conn.close()


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` when the block raises."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Optional[type], *rest: object) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


# ---------------------------------------------------------------------------------------
# TinyDB


class TinyDocs:
    """A TinyDB file (default ``JSONStorage``, which parses the whole file on every access).

    Key reads use ``get(doc_id=...)``: the document id of every key is remembered at load
    time, which is the fastest honest lookup (a ``Query`` on ``_key`` would also test every
    document). Both re-read and parse the whole file, as TinyDB's default storage always does.
    """

    def __init__(self, path: str, doc_ids: Optional[Dict[str, int]] = None) -> None:
        from tinydb import TinyDB  # noqa: PLC0415 - subprocesses that do not use TinyDB skip it

        self.db = TinyDB(path)
        self.doc_ids: Dict[str, int] = dict(doc_ids or {})

    def load(self, mapping: Dict[str, Any]) -> None:
        ids: List[int] = self.db.insert_multiple(
            {"_key": key, "value": value} for key, value in mapping.items()
        )
        self.doc_ids.update(zip(mapping, ids))

    def read_all(self) -> Dict[str, Any]:
        return {document["_key"]: document["value"] for document in self.db.all()}

    def read_key(self, key: str) -> Any:
        document = self.db.get(doc_id=self.doc_ids[key])
        return None if document is None else document["value"]

    def full_session(self, key: str, change: Change) -> None:
        """Read everything, then update the changed document (TinyDB has no transactions)."""
        self.read_all()
        self.key_session(key, change)

    def key_session(self, key: str, change: Change) -> None:
        """``update`` with a callable: TinyDB reads, changes and rewrites the whole file."""

        def transform(document: Dict[str, Any]) -> None:
            change(document["value"])

        self.db.update(transform, doc_ids=[self.doc_ids[key]])

    def close(self) -> None:
        self.db.close()


def ids_for(store: TinyDocs, keys: Iterable[str]) -> Dict[str, int]:
    """The TinyDB document ids of ``keys`` (to hand to a subprocess)."""
    return {key: store.doc_ids[key] for key in keys}
