"""One exception hierarchy for everything DictDataBase raises on purpose.

Every class derives from :class:`DatabaseError` *and* from the built-in exception that
the same situation raised before the hierarchy existed, so both ``except
errors.DatabaseError`` and ``except FileNotFoundError`` (or ``KeyError``, ``RuntimeError``
...) keep working.

All classes pickle cleanly, so they survive being sent between processes.
"""

from __future__ import annotations

import builtins
import json
from typing import Any, Tuple

__all__ = [
    "ConcurrentWriteError",
    "CorruptedFileError",
    "DatabaseError",
    "FileExistsError",
    "FileNotFoundError",
    "InvalidNameError",
    "KeyNotFoundError",
    "LockError",
    "PermissionError",
    "SerializationError",
]


class DatabaseError(Exception):
    """Base class of every error DictDataBase raises on purpose."""


class FileNotFoundError(DatabaseError, builtins.FileNotFoundError):  # noqa: A001 - ruling 11 names it so
    """The database file does not exist."""


class FileExistsError(DatabaseError, builtins.FileExistsError):  # noqa: A001 - mirrors the built-in
    """The database file exists already, or both its ``.json`` and ``.ddb`` forms exist."""


class PermissionError(DatabaseError, builtins.PermissionError):  # noqa: A001 - ruling 11 names it so
    """The operation is not allowed in this state (for example ``write()`` outside a session)."""


class KeyNotFoundError(DatabaseError, KeyError):
    """A session asked for a top-level key that the file does not have."""

    def __str__(self) -> str:
        # KeyError quotes its argument; a sentence reads better.
        return str(self.args[0]) if self.args else ""


class InvalidNameError(DatabaseError, ValueError):
    """A database name is empty, absolute, or escapes the storage directory."""


class SerializationError(DatabaseError, TypeError, ValueError):
    """The data cannot be stored as JSON (a set, a non-``str`` key, NaN with the json module ...).

    It is both a ``TypeError`` and a ``ValueError`` because Python raises either for
    unserialisable data, and callers may be catching either.
    """


class LockError(DatabaseError, RuntimeError):
    """A lock could not be taken in time, would deadlock, or was lost (fencing)."""


class ConcurrentWriteError(DatabaseError):
    """An optimistic session found that someone else changed the data since it was read."""


class CorruptedFileError(DatabaseError, json.JSONDecodeError):
    """A database file holds invalid JSON or invalid compressed data.

    ``path`` names the file. The file is never read as empty and never overwritten by a
    key write; restore it from a backup or repair it by hand.
    """

    def __init__(self, path: str, reason: str, doc: str = "", pos: int = 0) -> None:
        self.path = path
        self.reason = reason
        message = (
            f"Database file {path!r} is corrupted ({reason}). It was left untouched: "
            "restore it from a backup or repair it, then retry"
        )
        json.JSONDecodeError.__init__(self, message, doc, pos)
        # JSONDecodeError formats "msg: line x column y (char z)"; keep the plain sentence.
        self.args = (message,)

    def __str__(self) -> str:
        return self.msg

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), (self.path, self.reason, self.doc, self.pos))
