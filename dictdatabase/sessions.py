"""Sessions: atomic read-modify-write of a file, a key, a filtered part, or a folder.

A session reads under the database's write lock and keeps the lock until it exits, so
nothing can change the data between the read and ``session.write()`` (pessimistic, the
default). With ``optimistic=True`` it reads without the lock; ``write()`` then takes the
lock, checks that the data read is unchanged, and raises ``errors.ConcurrentWriteError``
otherwise.

Use a session with ``with`` (``with DDB.at("users").session() as (session, users):``) or
without (``session, users = DDB.at("users").session()`` enters it; ``session.close()``
releases it). ``write()`` commits the current data; it may be called more than once. An
exception inside the ``with`` block writes nothing more and releases every lock. Leaving a
session without ``write()`` changes nothing.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager, Dict, Iterator, List, Optional, Tuple

from path_dict import PathDict

from . import errors, io_safe, io_unsafe, locking, utils
from .configuration import config
from .errors import ConcurrentWriteError

__all__ = [
    "SessionBase",
    "SessionDirFull",
    "SessionDirWhere",
    "SessionFileFull",
    "SessionFileKey",
    "SessionFileWhere",
]

AsType = Optional[Callable[[Any], Any]]
Where = Callable[[Any, Any], bool]


def _plain(data: Any) -> Any:
    """The JSON-able data behind a value the user may have wrapped with ``as_type``."""
    if isinstance(data, PathDict):
        return data.data
    return data


def _cast(as_type: AsType, value: Any) -> Any:
    return value if as_type is None else as_type(value)


class SessionBase:
    """Common life cycle: enter (lock + read), ``write()``, close (release)."""

    # Defaults as class attributes: a session is made per operation, so its constructor
    # only sets what differs.
    #: what the session yields (and ``write()`` stores)
    data: Any = None
    in_session = False
    is_closed = False

    def __init__(self, db_name: str, as_type: AsType = None, *, optimistic: bool = False) -> None:
        self.db_name = utils.normalize_name(db_name)
        self.as_type = as_type
        self.optimistic = optimistic
        #: database name -> the write lock this session took for it
        self._locks: Dict[str, locking.AbstractLock] = {}

    # -- life cycle --------------------------------------------------------------------

    def __enter__(self) -> Tuple[SessionBase, Any]:
        if self.is_closed:
            msg = f"This session on {self.db_name!r} is closed; start a new one"
            raise errors.PermissionError(msg)
        if not self.in_session:
            try:
                self._enter()
            except BaseException:
                self._release()
                raise
            self.in_session = True
        return self, self.data

    def __iter__(self) -> Iterator[Any]:
        """``session, data = DDB.at(...).session()`` enters the session (ruling 6)."""
        return iter(self.__enter__())

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release every lock without writing. Idempotent."""
        self._release()
        self.in_session = False
        self.is_closed = True

    def _release(self) -> None:
        while self._locks:
            _, lock = self._locks.popitem()
            lock._unlock()  # noqa: SLF001 - the spec's lock API

    def _lock(self, files: utils.DbFiles) -> Optional[locking.AbstractLock]:
        lock = io_safe.acquire_for_session(files)
        if lock is not None:
            self._locks[files.name] = lock
        return lock

    def _commit_lock(self, db_name: str) -> ContextManager[Callable[[], Any]]:
        """The fence to commit under: the session's own lock, an explicit lock the thread
        holds, or (optimistic sessions) a write lock taken just for the commit."""
        if not self.optimistic:
            return contextlib.nullcontext(self._own_fence(db_name))
        return self._commit_lock_optimistic(db_name)

    def _own_fence(self, db_name: str) -> Callable[[], ContextManager[None]]:
        """The commit guard of the lock a pessimistic session holds on ``db_name``: its own
        lock (even if write() runs in another thread than the one that entered), or the
        explicit WriteLock the session joined."""
        held = self._locks.get(db_name) or locking.held_lock(db_name)
        if held is None:
            msg = f"The session on {db_name!r} lost its lock; nothing was written"
            raise errors.PermissionError(msg)
        return held.commit_guard

    @staticmethod
    @contextlib.contextmanager
    def _commit_lock_optimistic(db_name: str) -> Iterator[Callable[[], Any]]:
        with io_safe.write_locked(db_name) as lock:
            yield lock.commit_guard

    def write(self) -> None:
        """Commit the session's data. Raises ``PermissionError`` outside an entered session."""
        if not self.in_session or self.is_closed:
            msg = (
                f"write() was called outside an open session on {self.db_name!r}; use it inside "
                "`with DDB.at(...).session() as (session, data):`"
            )
            raise errors.PermissionError(msg)
        self._write()

    # -- the parts each session type fills in ------------------------------------------

    def _enter(self) -> None:
        raise NotImplementedError

    def _write(self) -> None:
        raise NotImplementedError


def _require_file(db_name: str, found: bool) -> None:
    if not found:
        msg = f"Database {db_name!r} does not exist; create it first with DDB.at({db_name!r}).create()"
        raise errors.FileNotFoundError(msg)


class SessionFileFull(SessionBase):
    """A session on a whole file; yields the file's data."""

    def _enter(self) -> None:
        files = utils.db_files(self.db_name)
        if not self.optimistic:
            self._lock(files)
        self._raw, data = io_safe.recovering(self.db_name, lambda: io_unsafe.raw_snapshot(files))
        _require_file(self.db_name, self._raw is not None)
        self._snapshot = data
        self.data = _cast(self.as_type, data)

    def _write(self) -> None:
        payload = io_unsafe.serialize(_plain(self.data))
        self._commit_payload(payload)

    def _commit_payload(self, payload: bytes) -> None:
        files = utils.db_files(self.db_name)
        if not self.optimistic:
            io_unsafe.write_payload(files, payload, fence=self._own_fence(self.db_name))
            return
        with self._commit_lock(self.db_name) as fence:
            self._check_unchanged(files)
            io_unsafe.write_payload(files, payload, fence=fence)
        self._raw, _ = io_unsafe.raw_snapshot(files)

    def _check_unchanged(self, files: utils.DbFiles) -> None:
        raw, _ = io_unsafe.raw_snapshot(files)
        if raw != self._raw:
            msg = f"Database {self.db_name!r} was changed by someone else since this session read it; nothing was written"
            raise ConcurrentWriteError(msg)


class SessionFileWhere(SessionFileFull):
    """A session on the top-level items of a file that ``where(key, value)`` accepts.

    ``write()`` makes the matching part of the file equal to the yielded dict: changed items
    are stored, items deleted from the dict are deleted from the file, added items added.
    """

    def __init__(
        self, db_name: str, where: Where, as_type: AsType = None, *, optimistic: bool = False
    ) -> None:
        super().__init__(db_name, as_type, optimistic=optimistic)
        self.where = where

    def _enter(self) -> None:
        super()._enter()
        if not isinstance(self._snapshot, dict):
            msg = f"Database {self.db_name!r} does not hold an object, so `where` has no items to filter"
            raise TypeError(msg)
        self._full = self._snapshot
        matched = {k: v for k, v in self._full.items() if self.where(k, _cast(self.as_type, v))}
        self._matched_keys = set(matched)
        self.data = _cast(self.as_type, matched)

    def _write(self) -> None:
        merged = {k: v for k, v in self._full.items() if k not in self._matched_keys}
        merged.update(_plain(self.data))
        self._commit_payload(io_unsafe.serialize(merged))
        self._full = merged
        self._matched_keys = set(_plain(self.data))


class SessionFileKey(SessionBase):
    """A session on one top-level key; yields its value. Only that value is rewritten."""

    def __init__(self, db_name: str, key: str, as_type: AsType = None, *, optimistic: bool = False) -> None:
        super().__init__(db_name, as_type, optimistic=optimistic)
        self.key = key

    def _enter(self) -> None:
        files = self._files = utils.db_files(self.db_name)
        if self.optimistic:
            handle = io_safe.recovering(self.db_name, lambda: io_unsafe.read_for_key_write(files, self.key))
            # Optimistic sessions compare a compact encoding of the value at write time.
            self._original = io_unsafe.serialize_value(handle.value, ("orjson", None))
            self._handle = None
        else:
            # Under the write lock (which finished any dead writer's in-place write) the
            # file cannot change, so the handle, with the whole small file read, stays valid.
            self._lock(files)
            handle = self._handle = io_unsafe.read_for_key_write(files, self.key)
        self.data = _cast(self.as_type, handle.value)

    def _write(self) -> None:
        value = _plain(self.data)
        files = self._files
        if self._handle is not None:
            fence = self._own_fence(self.db_name)
            io_unsafe.write_key_of(
                files, self._handle, value, fence=fence, timeout=locking.AQUIRE_LOCK_TIMEOUT
            )
            return
        io_unsafe.serialize_value(value, io_unsafe.current_format())  # fail before any lock or I/O
        with self._commit_lock(self.db_name) as fence:
            if self.optimistic:
                current = io_unsafe.lookup(files, self.key, shared=False)
                if (
                    current is io_unsafe.MISSING
                    or io_unsafe.serialize_value(current, ("orjson", None)) != self._original
                ):
                    msg = (
                        f"Key {self.key!r} of database {self.db_name!r} was changed by someone else since this "
                        "session read it; nothing was written"
                    )
                    raise ConcurrentWriteError(msg)
            io_unsafe.set_key(files, self.key, value, fence=fence, timeout=locking.AQUIRE_LOCK_TIMEOUT)
        if self.optimistic:
            self._original = io_unsafe.serialize_value(value, ("orjson", None))


class SessionDirFull(SessionBase):
    """A session on every file of a folder; yields ``{file name: data}``.

    The files are locked in sorted order (so two folder sessions cannot deadlock) and each
    is written atomically; the folder as a whole is committed file by file. New names in
    the dict create files; names removed from the dict leave their files untouched.
    """

    def __init__(self, pattern: str, as_type: AsType = None, *, optimistic: bool = False) -> None:
        if optimistic:
            msg = "optimistic sessions work on one file; folder sessions always lock"
            raise ValueError(msg)
        super().__init__(pattern, as_type)
        self.pattern = self.db_name
        self.folder = self.pattern.rpartition("/")[0]

    def _document_names(self) -> List[str]:
        return utils.find_all(self.pattern)

    def _enter(self) -> None:
        names = self._document_names()
        for name in names:  # sorted: a fixed order for everybody
            self._lock(utils.db_files(name))
        self._stored: Dict[str, io_unsafe.Snapshot] = {}
        documents = {}
        for name in names:
            found = io_safe.recovering(name, lambda n=name: io_unsafe.snapshot(utils.db_files(n)))
            if found is None:
                continue  # deleted between the listing and the lock
            stem = name.rpartition("/")[2]
            self._stored[stem] = found
            documents[stem] = found.data
        self._set_documents(documents)

    def _set_documents(self, documents: Dict[str, Any]) -> None:
        self.data = {stem: _cast(self.as_type, data) for stem, data in documents.items()}

    def _write(self) -> None:
        payloads = {stem: io_unsafe.serialize(_plain(data)) for stem, data in _plain(self.data).items()}
        for stem in sorted(payloads):
            name = f"{self.folder}/{stem}" if self.folder else stem
            files = utils.db_files(name)
            stored = self._stored.get(stem)
            if (
                stored is not None
                and stored.compressed == config.use_compression
                and stored.json_bytes == payloads[stem]
            ):
                continue  # unchanged: no need to rewrite it
            if name not in self._locks and locking.held_lock(name) is None:
                self._lock(files)  # a new document
            with self._commit_lock(name) as fence:
                io_unsafe.write_payload(files, payloads[stem], fence=fence)
            self._stored[stem] = io_unsafe.Snapshot(b"", payloads[stem], None, config.use_compression)


class SessionDirWhere(SessionDirFull):
    """A folder session on the files for which ``where(file name, data)`` is true."""

    def __init__(
        self, pattern: str, where: Where, as_type: AsType = None, *, optimistic: bool = False
    ) -> None:
        super().__init__(pattern, as_type, optimistic=optimistic)
        self.where = where

    def _set_documents(self, documents: Dict[str, Any]) -> None:
        chosen = {
            stem: data for stem, data in documents.items() if self.where(stem, _cast(self.as_type, data))
        }
        super()._set_documents(chosen)
