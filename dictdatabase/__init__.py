"""DictDataBase: a document database in JSON files, safe across threads and processes.

>>> import dictdatabase as DDB
>>> DDB.at("users").create({"u1": {"name": "Ann"}})            # doctest: +SKIP
>>> DDB.at("users", key="u1").read()                            # doctest: +SKIP
{'name': 'Ann'}
>>> with DDB.at("users").session() as (session, users):         # doctest: +SKIP
...     users["u2"] = {"name": "Bob"}
...     session.write()
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from . import (
    byte_codes,
    configuration,
    errors,
    indexing,
    io_bytes,
    io_safe,
    io_unsafe,
    locking,
    models,
    sessions,
    utils,
)
from .configuration import Confuguration, config
from .models import DDBMethodChooser, at

__all__ = [
    "Confuguration",
    "DDBMethodChooser",
    "at",
    "byte_codes",
    "config",
    "configuration",
    "errors",
    "indexing",
    "io_bytes",
    "io_safe",
    "io_unsafe",
    "locking",
    "models",
    "safe_context",
    "sessions",
    "utils",
]

__version__ = "3.0.0"


@contextlib.contextmanager
def safe_context(db_name: str, write: bool = False) -> Iterator[locking.AbstractLock]:
    """Hold the read lock (or, with ``write=True``, the write lock) of one database.

    Yields the lock. Inside a write context this thread may use sessions and writes on the
    same database; they use the held lock. Reads need no lock and work anywhere.
    """
    lock = locking.WriteLock(db_name) if write else locking.ReadLock(db_name)
    with lock:
        yield lock
