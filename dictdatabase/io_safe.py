"""Database operations made safe across threads and processes.

- Reads take no lock file. Writers replace files atomically or change them in place only
  while readers are kept out by a kernel ``flock`` (see ``io_bytes``), so a read always sees
  one committed state. A reader that finds an unfinished in-place write of a dead process
  takes the write lock, finishes it, and reads again.
- Writes serialise first, then take the database's write lock, finish any unfinished
  in-place write, and commit under the lock's fence (``AbstractLock.commit_guard``).
- Missing files read as ``None``.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Optional, TypeVar

from . import indexing, io_bytes, io_unsafe, locking, utils
from .errors import LockError

__all__ = ["delete", "partial_read", "read", "recovering", "write", "write_locked"]

T = TypeVar("T")


def read(db_name: str, *, force: bool = False) -> Any:
    """The whole database, or ``None`` when it does not exist.

    ``force=True`` reads whatever is on disk without waiting for any lock (for recovery
    tools); it may then see an in-place write half done.
    """
    return recovering(db_name, lambda: io_unsafe.read(db_name, shared=not force))


def partial_read(db_name: str, key: str, *, force: bool = False) -> Any:
    """The value of top-level ``key``, or ``None`` when the file or key is missing."""
    return recovering(db_name, lambda: io_unsafe.partial_read(db_name, key, shared=not force))


def key_exists(db_name: str, key: str) -> bool:
    """Whether top-level ``key`` exists (a stored ``null`` counts as existing)."""
    return recovering(db_name, lambda: io_unsafe.key_exists(db_name, key))


def write(db_name: str, data: Any) -> None:
    """Replace the whole database with ``data``, atomically."""
    payload = io_unsafe.serialize(data)  # before the lock: fail early, hold the lock briefly
    files = utils.db_files(db_name)
    with write_locked(db_name) as lock:
        io_unsafe.write_payload(files, payload, fence=lock.commit_guard)


def delete(db_name: str) -> bool:
    """Delete the database file (either form), its index and journal; tell whether it existed."""
    files = utils.db_files(db_name)
    with write_locked(db_name) as lock:
        removed = io_bytes.delete_data(files, fence=lock.commit_guard)
    indexing.forget(files)
    return removed


def recovering(db_name: str, operation: Callable[[], T]) -> T:
    """Run a read; if a dead writer left an in-place write unfinished, finish it and retry."""
    try:
        return operation()
    except io_bytes.JournalPending:
        utils.logger.warning("Database %r has an unfinished write of a dead process; finishing it", db_name)
    with write_locked(db_name):
        pass  # write_locked() finishes the journal
    return operation()


@contextlib.contextmanager
def write_locked(db_name: str, *, for_session: bool = False) -> Iterator[locking.AbstractLock]:
    """Hold the write lock of ``db_name`` and finish any unfinished in-place write first.

    Inside an explicit ``WriteLock`` the current thread already holds, that lock is used.
    Inside the thread's own session, or under its read lock, ``errors.LockError`` is raised
    at once (waiting would deadlock).
    """
    files = utils.db_files(db_name)
    held = locking.held_lock_of(files)
    if held is not None:
        if held.mode != locking.WRITE or held.for_session:
            what = "a session" if held.for_session else f"a {held.mode} lock"
            msg = (
                f"This thread already holds {what} on database {held.db_name!r}; writing it from here "
                "would deadlock. Finish that first, or write through the session"
            )
            raise LockError(msg)
        io_bytes.recover_journal(files)
        yield held
        return
    # The kernel lock alone: no lock file to create and remove.
    lock = locking.WriteLock.internal(files, for_session=for_session)
    lock._lock()  # noqa: SLF001 - the spec's lock API
    try:
        _clean_up(files, lock)
        yield lock
    finally:
        lock._unlock()  # noqa: SLF001 - the spec's lock API


def acquire_for_session(files: utils.DbFiles) -> Optional[locking.AbstractLock]:
    """Take the write lock for a session on the database of ``files``. Returns ``None`` when
    the session joins an explicit ``WriteLock`` this thread holds (the session must not
    release it)."""
    held = locking.held_lock_of(files)
    if held is not None:
        if held.mode == locking.WRITE and not held.for_session:
            io_bytes.recover_journal(files)
            return None
        what = "a session" if held.for_session else f"a {held.mode} lock"
        msg = (
            f"This thread already holds {what} on database {held.db_name!r}; a second session on it "
            "would deadlock. Use the open session's data, or close it first"
        )
        raise LockError(msg)
    # The kernel lock alone: no lock file to create and remove.
    lock = locking.WriteLock.internal(files, for_session=True)
    lock._lock()  # noqa: SLF001 - the spec's lock API
    try:
        _clean_up(files, lock)
    except BaseException:
        lock._unlock()  # noqa: SLF001 - the spec's lock API
        raise
    return lock


def _clean_up(files: utils.DbFiles, lock: locking.AbstractLock) -> None:
    """Finish a dead writer's in-place write, if the folder is marked as maybe having one.

    Writers mark the folder before they make a journal (``utils.mark_leftovers``), so an
    unmarked folder has none and costs no look. The mark is cleared only here, after the
    look, so no lock that skips this (an explicit one) can hide a journal.
    """
    if lock.leftovers:
        io_bytes.recover_journal(files)
        lock.clear_leftovers()
