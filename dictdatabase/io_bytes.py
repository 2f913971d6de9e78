"""Raw bytes of database files, written so that no reader ever sees a torn file.

Guarantees of this module (it takes no lock files; ``io_safe`` does that):

- :func:`replace_data` writes a temporary file in the database's private folder and
  ``os.replace``\\s it over the data file: a reader sees the old or the new file, never a mix.
  The other form (``.json``/``.ddb``) is removed only after the switch.
- :func:`splice_data` changes a byte range of a large plain file in place. It first writes
  a redo journal (target inode, offset, new size, payload, crc32), then applies it while
  holding an exclusive ``flock`` on the data file, then removes the journal. A crash leaves
  either an incomplete journal (the data file was not touched yet: the journal is dropped)
  or a complete one, which :func:`recover_journal` applies again (applying is idempotent).
- :class:`DataFile` is a consistent view for readers: it holds a shared ``flock`` on the
  open file, so an in-place change cannot run while it reads, and a replace does not affect
  the inode it opened. If it finds a journal whose writer died, it raises
  :class:`JournalPending`; the caller must take the write lock and call
  :func:`recover_journal`.

With ``config.use_fsync`` every temporary file, journal, data file and folder involved is
fsynced, so acknowledged writes also survive power loss. Without it they survive any
process crash, but the operating system may lose the last writes on power loss.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import fcntl
import gzip
import lzma
import mmap
import os
import sys
import time
import zlib
from typing import Callable, ContextManager, Dict, Iterator, NamedTuple, Optional, Tuple, Union

import orjson

from . import errors, utils
from .configuration import config
from .errors import CorruptedFileError, LockError

__all__ = [
    "DataFile",
    "FileIdentity",
    "JournalPending",
    "compress",
    "decompress",
    "open_data",
    "read",
    "recover_journal",
    "replace_data",
    "splice_data",
    "write",
]

#: Files smaller than this are never changed in place, so readers need no journal check.
JOURNAL_MIN_BYTES = 64 << 10
#: Below this size a length-changing splice always copies the file (cheap, no journal).
IN_PLACE_MIN_BYTES = 1 << 20
#: Files up to this size are written through the spare file (which keeps a copy of the
#: previous version); larger ones through a fresh temporary file.
SPARE_MAX_BYTES = 64 << 20
#: Files at least this large are scanned through mmap instead of being read whole.
MMAP_MIN_BYTES = 8 << 20
#: How long readers wait when they see both forms of a file (a conversion in progress).
_BOTH_FORMS_GRACE = 0.2
#: The buffer of file-to-file copies (measured fastest here: it stays in the processor's cache).
_COPY_CHUNK = 512 << 10
#: A commit fence: calling it gives the guard of the caller's write lock, a context manager
#: to commit under. A guard may also name the lock's own spare file (attribute ``spare``):
#: then small commits go through that spare without entering the guard (see
#: :func:`_exchange_own_spare`).
_FlockFence = Callable[[], ContextManager[object]]


class FileIdentity(NamedTuple):
    """What changes whenever a data file changes: inode, size and mtime in nanoseconds.

    Writers give each new version the current time in nanoseconds as its mtime (an in-place
    change a strictly larger one than before), so a cached index tied to an identity is not
    used on changed bytes written by this library. Edits by other programs are caught by the
    index's checksums.
    """

    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, stat: os.stat_result) -> FileIdentity:
        return cls(stat.st_ino, stat.st_size, stat.st_mtime_ns)


#: What a read cache checks before it serves bytes again: inode, size, mtime and ctime in
#: nanoseconds. No program can set the ctime (the kernel sets it on every change), so an
#: outside edit that keeps the size and restores the mtime still shows.
StatKey = Tuple[int, int, int, int]


def stat_key(stat: os.stat_result) -> StatKey:
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def current_stat_key(files: utils.DbFiles) -> Optional[StatKey]:
    """The stat key of the database's data file (the ``.json`` form, else the ``.ddb``
    form), in one system call; ``None`` when the file is missing.

    It does not look for a second form: a write that creates the other form gives this one
    a new mtime first (:func:`_replace_or_create`), so a stat key taken while only one form
    existed is never current again once there are two.
    """
    try:
        stat = os.stat(files.json)
    except (FileNotFoundError, NotADirectoryError):
        try:
            return stat_key(os.stat(files.ddb))
        except (FileNotFoundError, NotADirectoryError):
            return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)  # (stat_key, inline)


class JournalPending(Exception):  # noqa: N818 - an internal signal, not an error for users
    """A writer died while changing a file in place; recover before reading."""


def _no_fence() -> ContextManager[object]:
    return contextlib.nullcontext()


# ---------------------------------------------------------------------------------------
# Compression


_GZIP_MAGIC = b"\x1f\x8b"
_BZ2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"


def compress(data: bytes) -> bytes:
    """Compress with zlib (the format of ``.ddb`` files)."""
    return zlib.compress(data)


def decompress(data: bytes, path: str = "<bytes>") -> bytes:
    """Decompress ``data``, detecting zlib, gzip, bz2 or xz by its magic bytes.

    Data without a known magic is returned unchanged (the JSON parser then judges it).
    Raises :class:`errors.CorruptedFileError` naming ``path`` for broken compressed data.
    """
    try:
        if len(data) >= 2 and data[0] == 0x78 and (data[0] << 8 | data[1]) % 31 == 0:
            return zlib.decompress(data)
        if data.startswith(_GZIP_MAGIC):
            return gzip.decompress(data)
        if data.startswith(_BZ2_MAGIC):
            return bz2.decompress(data)
        if data.startswith(_XZ_MAGIC):
            return lzma.decompress(data)
    except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as error:
        raise CorruptedFileError(path, f"invalid compressed data: {error}") from None
    # No known magic: maybe plain JSON in a .ddb file; the JSON parser decides.
    return data


# ---------------------------------------------------------------------------------------
# Kernel locks on open files


def flock_wait(fd: int, operation: int, timeout: float, what: str) -> None:
    """Take ``flock(fd, operation)``, polling with capped backoff, for at most ``timeout`` s."""
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        time.sleep(delay)
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                msg = f"timed out after {timeout} s waiting for the file lock of {what}"
                raise LockError(msg) from None
            delay = min(delay * 2, 0.02)


# ---------------------------------------------------------------------------------------
# Reading


class DataFile:
    """An open, consistent view of one database file (see the module docstring).

    ``identity`` is taken after the shared lock, so it describes exactly the bytes this view
    reads. Use it as a context manager, or call :meth:`close`.
    """

    __slots__ = ("compressed", "fd", "files", "identity", "path", "stat_key")

    def __init__(self, files: utils.DbFiles, fd: int, path: str, stat: os.stat_result) -> None:
        self.files = files
        self.fd = fd
        self.path = path
        self.identity = FileIdentity.of(stat)
        #: with ``identity``, the ctime: what a read cache compares (see :func:`stat_key`)
        self.stat_key = stat_key(stat)
        self.compressed = path == files.ddb

    def read_raw(self) -> bytes:
        """The file's bytes as stored (compressed for ``.ddb``)."""
        return _pread_exact(self.fd, 0, self.identity.size)

    def read_all(self) -> bytes:
        """The file's JSON bytes (decompressed for ``.ddb``)."""
        raw = self.read_raw()
        return decompress(raw, self.path) if self.compressed else raw

    def pread(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of a plain file."""
        return _pread_exact(self.fd, start, end - start)

    @contextlib.contextmanager
    def scan_view(self) -> Iterator[Tuple[object, Callable[[int], None]]]:
        """Yield ``(buffer, release)`` for scanning the JSON bytes.

        Large plain files are mapped, and ``release(upto)`` drops the mapped pages before
        ``upto`` from this process, so a scan of a huge file keeps memory flat.
        """
        if self.compressed or self.identity.size < MMAP_MIN_BYTES:
            yield self.read_all(), _ignore_release
            return
        view = mmap.mmap(self.fd, self.identity.size, access=mmap.ACCESS_READ)

        def release(upto: int) -> None:
            aligned = upto - upto % mmap.PAGESIZE
            if aligned > 0 and hasattr(view, "madvise"):
                view.madvise(mmap.MADV_DONTNEED, 0, aligned)

        try:
            yield view, release
        finally:
            with contextlib.suppress(BufferError):  # a live regex iterator still holds it
                view.close()

    def close(self) -> None:
        if self.fd >= 0:
            utils.untrack_lock_fd(self.fd)
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> DataFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _ignore_release(upto: int) -> None:
    """Nothing to release for data that was read into memory."""


def _pread_exact(fd: int, offset: int, length: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) == length:
        return data
    parts = [data]
    done = len(data)
    while done < length:
        chunk = os.pread(fd, length - done, offset + done)
        if not chunk:
            break
        parts.append(chunk)
        done += len(chunk)
    return b"".join(parts)


def _open_if_exists(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | utils.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return -1


def open_data(
    files: utils.DbFiles,
    *,
    shared: bool = True,
    timeout: float = 60.0,
    listed: Optional[Tuple[bool, bool]] = None,
) -> Optional[DataFile]:
    """Open the database file for a consistent read, or return ``None`` when it is missing.

    With ``shared`` (the default) the view holds a shared ``flock`` and checks for a journal
    left by a dead writer (raising :class:`JournalPending`). ``shared=False`` reads whatever
    is there, without waiting (for recovery tools). ``listed`` is ``(json exists, ddb
    exists)`` from a folder listing just made; it saves looking for the other form.
    Raises :class:`errors.FileExistsError` when both ``.json`` and ``.ddb`` exist.
    """
    if listed is not None and listed[0] != listed[1]:
        path = files.json if listed[0] else files.ddb
        fd = _open_if_exists(path)
        if fd >= 0:
            return _view(files, fd, path, shared=shared, timeout=timeout)
    deadline = time.monotonic() + _BOTH_FORMS_GRACE
    while True:
        json_fd = _open_if_exists(files.json)
        # os.access is a cheap look for the other form; open it only when it is there.
        ddb_fd = _open_if_exists(files.ddb) if json_fd < 0 or os.access(files.ddb, os.F_OK) else -1
        if json_fd < 0 or ddb_fd < 0:
            break
        os.close(json_fd)
        os.close(ddb_fd)
        # A writer converting between the forms removes the old one right after the switch.
        if time.monotonic() >= deadline:
            msg = (
                f"Database {files.name!r} exists both as {files.json!r} and as {files.ddb!r}. "
                "Keep the current one (usually the newer) and delete the other"
            )
            raise errors.FileExistsError(msg)
        time.sleep(0.002)
    if json_fd < 0 and ddb_fd < 0:
        return None
    fd, path = (json_fd, files.json) if json_fd >= 0 else (ddb_fd, files.ddb)
    return _view(files, fd, path, shared=shared, timeout=timeout)


def _view(files: utils.DbFiles, fd: int, path: str, *, shared: bool, timeout: float) -> DataFile:
    utils.track_lock_fd(fd)
    try:
        if shared:
            if path.endswith(utils.DDB_SUFFIX):  # compressed files are never changed in place
                flock_wait(fd, fcntl.LOCK_SH, timeout, repr(files.name))
            else:
                _shared_through_turnstile(files, fd, timeout)  # in-place writers are not starved
        stat = os.fstat(fd)
        if shared and stat.st_size >= JOURNAL_MIN_BYTES and _journal_blocks_readers(files):
            raise JournalPending(files.name)
        return DataFile(files, fd, path, stat)
    except BaseException:
        utils.untrack_lock_fd(fd)
        os.close(fd)
        raise


def read_small(path: str, *, shared: bool = True, timeout: float = 60.0) -> Optional[bytes]:
    """The stored bytes of the file at ``path`` if it is smaller than ``JOURNAL_MIN_BYTES``.

    Returns ``None`` for a larger file (use :func:`open_data`). Small files are never changed
    in place, so a shared ``flock`` and one ``read`` give a consistent snapshot. Raises
    ``FileNotFoundError`` when the file is gone.
    """
    return read_small_with_key(path, shared=shared, timeout=timeout, want_key=False)[0]


def read_small_with_key(
    path: str, *, shared: bool = True, timeout: float = 60.0, want_key: bool = True
) -> Tuple[Optional[bytes], Optional[StatKey]]:
    """Like :func:`read_small`, plus the stat key of the bytes read (see
    :func:`_read_small_and_close`)."""
    fd = os.open(path, os.O_RDONLY | utils.O_CLOEXEC)
    return _read_small_and_close(fd, shared, timeout, repr(path), want_key=want_key)


def _read_small_and_close(
    fd: int, shared: bool, timeout: float, what: str, *, want_key: bool = True
) -> Tuple[Optional[bytes], Optional[StatKey]]:
    """Read an open file under a shared ``flock`` and close it.

    Returns ``(bytes, stat key)``; the bytes are ``None`` if the file is not small, the stat
    key (of exactly these bytes) is ``None`` unless ``shared`` and ``want_key``.
    """
    if shared:
        utils.track_lock_fd(fd)  # it will hold a kernel lock: a forked child must not keep it
    try:
        if shared:
            flock_wait(fd, fcntl.LOCK_SH, timeout, what)
        raw = os.read(fd, JOURNAL_MIN_BYTES)
        if len(raw) >= JOURNAL_MIN_BYTES:
            return None, None
        return raw, stat_key(os.fstat(fd)) if shared and want_key else None
    finally:
        if shared:
            utils.untrack_lock_fd(fd)
        os.close(fd)


class SmallRead(NamedTuple):
    """What :func:`read_small_database` found."""

    #: ``"read"``, ``"missing"`` (no file), or ``"general"`` when the general path
    #: (:func:`open_data`) must decide: a large file, or both forms present
    status: str
    raw: bytes = b""
    path: str = ""
    #: the stat key of ``raw`` when read under the shared lock, else ``None``
    key: Optional[StatKey] = None


_GENERAL = SmallRead("general")
_MISSING = SmallRead("missing")


def read_small_database(files: utils.DbFiles, *, shared: bool = True) -> SmallRead:
    """The stored bytes of a small database file, in few system calls."""
    path = files.json
    try:
        fd = os.open(path, os.O_RDONLY | utils.O_CLOEXEC)
        if os.access(files.ddb, os.F_OK):  # cheaper than a failing open or os.path.exists
            os.close(fd)
            return _GENERAL
    except FileNotFoundError:
        path = files.ddb
        try:
            fd = os.open(path, os.O_RDONLY | utils.O_CLOEXEC)
        except FileNotFoundError:
            return _MISSING
    raw, key = _read_small_and_close(fd, shared, 60.0, repr(files.name) if shared else "")
    if raw is None:
        return _GENERAL
    return SmallRead("read", raw, path, key)


def read(db_name: str, start: Optional[int] = None, end: Optional[int] = None) -> bytes:
    """Return the JSON bytes of a database (decompressed), or the slice ``[start:end]``.

    Raises ``FileNotFoundError`` when the database does not exist. Takes no lock file; the
    bytes are a consistent snapshot.
    """
    files = utils.db_files(db_name)
    data_file = open_data(files)
    if data_file is None:
        msg = f"Database {files.name!r} does not exist (looked for {files.json!r} and {files.ddb!r})"
        raise errors.FileNotFoundError(msg)
    with data_file:
        if not data_file.compressed and (start is not None or end is not None):
            size = data_file.identity.size
            lo, hi, _ = slice(start, end).indices(size)
            return data_file.pread(lo, max(lo, hi))
        return data_file.read_all()[start:end]


# ---------------------------------------------------------------------------------------
# Writing


def write(db_name: str, data: bytes, start: Optional[int] = None) -> None:
    """Write ``data`` as the database's JSON bytes, atomically.

    Without ``start`` the file is replaced, compressed if ``config.use_compression`` is set.
    With ``start`` the first ``start`` bytes are kept and everything after them is replaced
    by ``data`` (the file is truncated there); this needs an existing plain file, and raises
    ``RuntimeError`` for a compressed one. Takes no lock file (``io_safe`` does).
    """
    files = utils.db_files(db_name)
    if start is None:
        replace_data(files, data, compressed=config.use_compression)
        return
    data_file = open_data(files)
    if data_file is None:
        msg = f"Database {files.name!r} does not exist, so nothing can be kept before start={start}"
        raise errors.FileNotFoundError(msg)
    with data_file:
        if data_file.compressed:
            msg = f"Cannot write at start={start} into the compressed file {data_file.path!r}"
            raise RuntimeError(msg)
        prefix = data_file.pread(0, min(start, data_file.identity.size))
    replace_data(files, prefix + data, compressed=False)


def replace_data(
    files: utils.DbFiles, payload: bytes, *, compressed: bool, fence: _FlockFence = _no_fence
) -> FileIdentity:
    """Atomically make ``payload`` the database's JSON bytes; return the new identity.

    The payload is serialised (and compressed) before any lock or fence is used. The bytes
    go to the database's spare file, which is then atomically exchanged with the data file
    (see :func:`_commit_through_spare`); the other form is removed after that.
    """
    target, other = (files.ddb, files.json) if compressed else (files.json, files.ddb)
    stored = compress(payload) if compressed else payload
    return _commit_new_version(files, target, len(stored), stored, fence, other=other)


#: What a new version is made of: its bytes, or a function that writes them to a descriptor.
_Fill = Union[bytes, Callable[[int], None]]


def _commit_new_version(
    files: utils.DbFiles,
    target: str,
    length: int,
    fill: _Fill,
    fence: _FlockFence,
    *,
    other: Optional[str] = None,
) -> FileIdentity:
    """Make ``length`` bytes, ``fill`` or written by ``fill(fd)``, the new version of
    ``target``, under the caller's write lock; return its identity.

    Tries the lock's own spare without the guard first (:func:`_exchange_own_spare`), and
    otherwise commits inside the guard (:func:`_commit_through_spare`), where ``other`` (the
    other form of the file, if any) is removed when the commit made a new file.
    """
    guard = fence()
    identity = _exchange_own_spare(guard, target, length, fill)
    if identity is None:
        with guard:
            identity, replaced = _commit_through_spare(files, target, length, fill, _spare_of(guard, files))
            if not replaced and other is not None:  # a new file, or a conversion
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(other)
    if config.use_fsync:
        _fsync_dir(os.path.dirname(target))
    return identity


def _spare_of(guard: object, files: utils.DbFiles) -> str:
    """The spare file to write through: the one of the write lock behind ``guard``, else the
    database's unlocked one."""
    own: Optional[str] = getattr(guard, "spare", None)
    return files.spare if own is None else own


def _exchange_own_spare(guard: object, target: str, length: int, fill: _Fill) -> Optional[FileIdentity]:
    """Commit through the spare of the write lock behind ``guard`` without entering the
    guard; ``None`` if this fast path does not apply (nothing was changed then).

    A write lock names its spare after the inode of its kernel lock file (``guard.spare``),
    and a process that breaks an expired lease removes that spare before it replaces the
    kernel file; nobody creates it again, because spares are only created inside the guard,
    which checks that the lock is still live. So the exchange below is fenced by itself: if
    the lock was broken before it, the spare's name no longer exists and the exchange fails
    with nothing changed; if it ran first, the commit came before the break. Everything that
    is not the common case (no spare yet, a reader still on it, no exchange on this file
    system, a missing data file, a broken lock) returns ``None`` and takes the guarded path,
    which reports a broken lock with ``LockError``.
    """
    spare: Optional[str] = getattr(guard, "spare", None)
    if spare is None or _exchange is None or length > SPARE_MAX_BYTES:
        return None
    try:
        fd = os.open(spare, os.O_RDWR | utils.O_CLOEXEC)  # never created here, see above
    except FileNotFoundError:
        return None
    utils.track_lock_fd(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _close_lock_fd(fd)
        return None  # a reader still reads that old version: the guarded path uses a new file
    try:
        identity = _fill_new_version(fd, length, fill)
    finally:
        _close_lock_fd(fd)
    try:
        _exchange(spare, target)
    except OSError as error:
        # Where the file system cannot exchange, the guarded path renames the spare over the
        # data file, so no spare is left for this path to try again next time.
        if error.errno == errno.ENOENT or error.errno in _NO_EXCHANGE_ERRORS:
            return None
        raise
    return identity


#: How ``renameat2(RENAME_EXCHANGE)`` says that a file system does not support it.
_NO_EXCHANGE_ERRORS = (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV)


def _fill_new_version(fd: int, length: int, fill: _Fill) -> FileIdentity:
    """Write a new version into ``fd`` (from its start), cut it to ``length`` bytes and give
    it the current time in nanoseconds as its mtime, so that file identities do not repeat."""
    if type(fill) is bytes:
        _write_all(fd, fill)
    else:
        fill(fd)
    stat = os.fstat(fd)
    # Truncate after writing, to the new length, and only when the old version was
    # longer: truncating to zero first would free and reallocate the blocks, which is
    # slow on many file systems.
    if stat.st_size != length:
        os.ftruncate(fd, length)
    mtime = time.time_ns()
    os.utime(fd, ns=(mtime, mtime))
    if config.use_fsync:
        os.fsync(fd)
    # File systems that keep coarser times store a rounded mtime; the identity then differs
    # from the file's, which only costs a cache miss or an index rebuild.
    return FileIdentity(stat.st_ino, length, mtime)


def _commit_through_spare(
    files: utils.DbFiles, target: str, length: int, fill: _Fill, spare: str
) -> Tuple[FileIdentity, bool]:
    """Write a new version of ``target``, ``length`` bytes (``fill``, or written by
    ``fill(fd)`` from the start of the file), and switch to it atomically.

    Returns the new identity and whether an old version was replaced (if so, the other form
    of the file cannot exist: only one form ever exists outside a conversion).

    Creating a file with data costs far more on common file systems than rewriting an
    existing one, so each database keeps a *spare* file in its private folder: the new
    version is written into the spare, and ``renameat2(RENAME_EXCHANGE)`` swaps spare and
    data file in one atomic step. The old version becomes the next spare. A reader still
    reading that old version holds a shared ``flock`` on it; then (or where the exchange is
    not available, or for versions over ``SPARE_MAX_BYTES``) a fresh temporary file is used
    instead and renamed over the target. Callers hold the write lock and its guard, so the
    switch cannot be aborted after the bytes were written.
    """
    use_spare = _exchange is not None and length <= SPARE_MAX_BYTES
    fd, path = _open_spare(spare) if use_spare else (-1, "")
    if fd < 0:
        path = utils.temp_path(files.private)
        fd = _create_exclusive(path)
    try:
        identity = _fill_new_version(fd, length, fill)
    except BaseException:
        _close_lock_fd(fd)
        if path != spare:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        raise
    _close_lock_fd(fd)
    if path != spare:
        replaced = _replace_or_create(files, path, target)
        if not use_spare:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(spare)  # do not keep a stale copy of a large file around
        return identity, replaced
    try:
        _exchange(spare, target)
    except FileNotFoundError:
        # A new file (or a conversion): nothing to exchange with.
        return identity, _replace_or_create(files, spare, target)
    except OSError as error:
        # The storage folder's file system may not support the exchange (the probe ran on
        # the temporary folder's): a plain rename is just as atomic.
        if error.errno not in _NO_EXCHANGE_ERRORS:
            raise
        return identity, _replace_or_create(files, spare, target)
    return identity, True


def _replace_or_create(files: utils.DbFiles, source: str, target: str) -> bool:
    """Rename ``source`` to ``target``; tell whether that replaced an existing file.

    When it creates ``target`` and the other form of the file exists (a conversion), that
    other form first gets a new mtime: its stat key changes *before* a second form appears,
    so a read cache entry of it fails its one ``stat`` check and no cached read needs to
    look for the other form (see ``current_stat_key``).
    """
    replaced = os.path.exists(target)
    if not replaced:
        other = files.ddb if target == files.json else files.json
        with contextlib.suppress(FileNotFoundError):
            stat = os.stat(other)
            os.utime(other, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    _replace(source, target)
    return replaced


def _open_spare(spare: str) -> Tuple[int, str]:
    """Open the spare with an exclusive ``flock``; ``(-1, "")`` if a reader still holds it."""
    fd = _open_creating_folder(spare, os.O_RDWR | os.O_CREAT)
    utils.track_lock_fd(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _close_lock_fd(fd)
        return -1, ""
    return fd, spare


def _close_lock_fd(fd: int) -> None:
    utils.untrack_lock_fd(fd)
    os.close(fd)


def _load_exchange() -> Optional[Callable[[str, str], None]]:
    """``renameat2(RENAME_EXCHANGE)`` through libc, or ``None`` where it does not exist."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes  # noqa: PLC0415 - only needed once, at import
        import ctypes.util  # noqa: PLC0415

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return None
    # No argtypes: the arguments are only Python ints (passed as C ints) and bytes (passed as
    # char pointers), which ctypes then converts without checking each call (about 0.5 µs).
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2

    encoded: Dict[str, bytes] = {}

    def exchange(first: str, second: str) -> None:
        # The same few paths are exchanged again and again: encode each once.
        first_bytes = encoded.get(first) or encoded.setdefault(first, os.fsencode(first))
        second_bytes = encoded.get(second) or encoded.setdefault(second, os.fsencode(second))
        if len(encoded) > 4096:
            encoded.clear()
        if renameat2(at_fdcwd, first_bytes, at_fdcwd, second_bytes, rename_exchange) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error), second)

    return exchange


def _probe_exchange() -> Optional[Callable[[str, str], None]]:
    exchange = _load_exchange()
    if exchange is None:
        return None
    import tempfile  # noqa: PLC0415 - a one-time probe

    with tempfile.TemporaryDirectory() as folder:
        first, second = os.path.join(folder, "a"), os.path.join(folder, "b")
        for path in (first, second):
            with open(path, "wb"):
                pass
        try:
            exchange(first, second)
        except OSError:
            return None
    return exchange


_exchange = _probe_exchange()


def delete_data(files: utils.DbFiles, fence: _FlockFence = _no_fence) -> bool:
    """Remove both forms of the data file plus index and journal; tell whether data existed."""
    removed = False
    guard = fence()
    with guard:
        for path in (files.json, files.ddb):
            try:
                os.unlink(path)
                removed = True
            except FileNotFoundError:
                pass
        # The spares and the idle journal hold copies of old data: they go too.
        spares = (files.spare, _spare_of(guard, files))
        for path in (files.index, files.journal, files.journal + ".idle", *spares):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    if removed and config.use_fsync:
        _fsync_dir(os.path.dirname(files.json))
    return removed


def write_private_file(files: utils.DbFiles, path: str, data: bytes) -> None:
    """Atomically replace a file in the private folder (used for the index)."""
    temp, _ = _write_new_file(files.private, data)
    try:
        _replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def splice_data(
    data_file: DataFile,
    value_start: int,
    value_end: int,
    new_bytes: bytes,
    *,
    fence: _FlockFence = _no_fence,
    timeout: float = 60.0,
) -> FileIdentity:
    """Replace bytes ``[value_start, value_end)`` of an open plain file; return the new identity.

    Same-length changes, and length changes in the back half of a file of at least
    ``IN_PLACE_MIN_BYTES``, are done in place through the journal (only the bytes from
    ``value_start`` on are written). Other changes write a new file (prefix and suffix are
    copied from file to file) and replace the old one. The caller must hold the write lock.
    """
    size = data_file.identity.size
    suffix_length = size - value_end
    new_size = value_start + len(new_bytes) + suffix_length
    same_length = new_size == size and size >= JOURNAL_MIN_BYTES
    if same_length or (size >= IN_PLACE_MIN_BYTES and value_start > suffix_length):
        # Same length: only the value's bytes change. Otherwise the suffix moves too.
        suffix_start = size if same_length else value_end
        with fence(), _exclusive(data_file.files, data_file.path, data_file.identity.inode, timeout) as fd:
            # Readers are out. Only from here on does a journal exist: a write that failed
            # earlier (timeout, bad data) leaves nothing behind that recovery could apply.
            journal_fd = _write_journal(data_file, value_start, new_size, new_bytes, suffix_start)
            try:
                header = _read_header(journal_fd)
                if header is None:
                    msg = f"the journal of {data_file.files.name!r} could not be read back"
                    raise OSError(msg)
                # If this fails half-way, the journal stays and the next access finishes it.
                identity = _apply_to(fd, _Journal(header, journal_fd))
            finally:
                os.close(journal_fd)
            _retire_journal(data_file.files)
        return identity

    def fill(fd: int) -> None:
        _copy_range(data_file.fd, fd, 0, value_start)
        _write_all(fd, new_bytes)
        _copy_range(data_file.fd, fd, value_end, suffix_length)

    return _commit_new_version(data_file.files, data_file.path, new_size, fill, fence)


def _copy_range(source_fd: int, target_fd: int, offset: int, length: int) -> None:
    """Append ``length`` bytes of ``source_fd`` from ``offset`` to ``target_fd``."""
    _copy_between(source_fd, offset, target_fd, None, length)


# ---------------------------------------------------------------------------------------
# The redo journal of in-place changes


# A journal is ``<new bytes><old suffix><header JSON>\n<20-digit header length>``. The header
# comes last: a journal without a readable trailer is incomplete, and the data file was not
# touched yet. The suffix is copied from file to file (data file -> journal -> data file)
# through one reused buffer (:func:`_copy_between`), so no copy of it is ever held whole.
_TRAILER_DIGITS = 20


class _Journal(NamedTuple):
    header: dict
    fd: int  #: open journal, read from while applying


def _write_journal(
    data_file: DataFile, offset: int, new_size: int, new_bytes: bytes, suffix_start: int
) -> int:
    """Write the redo journal and make it appear atomically as ``journal``; return its fd.

    The journal file is reused: it is written as ``journal.idle`` (creating a file with data
    is slow on many file systems, rewriting one is not) and renamed into place, and renamed
    back by :func:`_retire_journal` once the change is applied.
    """
    suffix_length = data_file.identity.size - suffix_start
    header = orjson.dumps(
        {
            "inode": data_file.identity.inode,
            "offset": offset,
            "size": new_size,
            "new_length": len(new_bytes),
            "suffix_length": suffix_length,
            "crc32": zlib.crc32(new_bytes),
            "pid": os.getpid(),
            "token": utils.own_process_token(),
        }
    )
    idle = data_file.files.journal + ".idle"
    utils.mark_leftovers(data_file.files.private)  # the next lock holder looks for a journal
    fd = _open_creating_folder(idle, os.O_RDWR | os.O_CREAT)
    try:
        _write_all(fd, new_bytes)
        _copy_range(data_file.fd, fd, suffix_start, suffix_length)
        if config.use_fsync:
            os.fsync(fd)  # the payload is durable before the trailer declares it complete
        _write_all(fd, header + b"\n" + b"%0*d" % (_TRAILER_DIGITS, len(header)))
        os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_CUR))
        if config.use_fsync:
            os.fsync(fd)
        os.rename(idle, data_file.files.journal)
    except BaseException:
        os.close(fd)
        raise
    if config.use_fsync:
        _fsync_dir(data_file.files.private)
    return fd


def _retire_journal(files: utils.DbFiles) -> None:
    os.rename(files.journal, files.journal + ".idle")


@contextlib.contextmanager
def _exclusive(files: utils.DbFiles, path: str, inode: int, timeout: float) -> Iterator[int]:
    """Open the data file and hold an exclusive ``flock`` on it; yield the descriptor.

    New readers are held off first through the database's turnstile (see
    :func:`_shared_through_turnstile`), so a stream of readers cannot starve the writer.
    """
    fd = os.open(path, os.O_RDWR | utils.O_CLOEXEC)
    utils.track_lock_fd(fd)
    try:
        turnstile = _open_turnstile(files)
        try:
            if turnstile >= 0:
                flock_wait(turnstile, fcntl.LOCK_EX, timeout, repr(files.name))
            flock_wait(fd, fcntl.LOCK_EX, timeout, repr(path))
        finally:
            if turnstile >= 0:
                os.close(turnstile)  # readers may queue again; they wait for the data lock
        if os.fstat(fd).st_ino != inode:
            msg = f"{path!r} was replaced while a journaled write was prepared"
            raise RuntimeError(msg)
        yield fd
    finally:
        utils.untrack_lock_fd(fd)
        os.close(fd)


def _apply_in_place(path: str, journal: _Journal, timeout: float, files: utils.DbFiles) -> FileIdentity:
    """Apply a journal to the data file under an exclusive ``flock`` (idempotent)."""
    with _exclusive(files, path, journal.header["inode"], timeout) as fd:
        return _apply_to(fd, journal)


def _apply_to(fd: int, journal: _Journal) -> FileIdentity:
    """Apply a journal to the open data file, whose exclusive ``flock`` the caller holds."""
    header = journal.header
    before = os.fstat(fd)
    new_length = header["new_length"]
    new_bytes = _pread_exact(journal.fd, 0, new_length)
    written = 0
    while written < new_length:
        written += os.pwrite(fd, new_bytes[written:], header["offset"] + written)
    _copy_between(journal.fd, new_length, fd, header["offset"] + new_length, header["suffix_length"])
    if before.st_size != header["size"]:
        os.ftruncate(fd, header["size"])
    # Give the change a strictly newer mtime, so every cached identity becomes stale even
    # when the clock is coarse or the size is unchanged.
    mtime = max(time.time_ns(), before.st_mtime_ns + 1)
    os.utime(fd, ns=(before.st_atime_ns, mtime))
    if config.use_fsync:
        os.fsync(fd)
    return FileIdentity.of(os.fstat(fd))


_turnstiles: dict = {}


def _open_turnstile(files: utils.DbFiles) -> int:
    """A fresh descriptor of the database's turnstile file (-1 if it cannot be opened)."""
    try:
        return os.open(
            os.path.join(files.private, "turnstile"),
            os.O_RDWR | os.O_CREAT | utils.O_CLOEXEC,
            0o644,
        )
    except OSError:
        return -1


def _shared_through_turnstile(files: utils.DbFiles, fd: int, timeout: float) -> None:
    """Take the shared ``flock`` of the data file ``fd`` after passing the turnstile.

    An in-place writer holds the turnstile exclusively while it waits for the readers that
    are already in to leave, so readers that come later queue behind it. Readers hold it
    only for the instant of taking their own lock. The descriptor is cached per process.
    """
    what = repr(files.name)
    turnstile = _turnstiles.get(files.private)
    cached = turnstile is not None
    if turnstile is None:
        turnstile = _open_turnstile(files)
        if turnstile < 0:
            flock_wait(fd, fcntl.LOCK_SH, timeout, what)
            return
        utils.track_lock_fd(turnstile)
        if len(_turnstiles) < 64:
            _turnstiles[files.private] = turnstile
            cached = True
    try:
        flock_wait(turnstile, fcntl.LOCK_SH, timeout, what)
        flock_wait(fd, fcntl.LOCK_SH, timeout, what)
    finally:
        if cached:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        else:
            utils.untrack_lock_fd(turnstile)
            os.close(turnstile)


def _forget_turnstiles() -> None:
    _turnstiles.clear()  # their descriptors are closed by utils after a fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_turnstiles)


def _copy_between(
    source_fd: int, source_offset: int, target_fd: int, target_offset: Optional[int], length: int
) -> None:
    """Copy ``length`` bytes from ``source_offset`` of one file to another, through one reused
    buffer of ``_COPY_CHUNK`` bytes. ``target_offset=None`` appends at the target's position.

    (Not ``copy_file_range``: file systems without shared extents copy through a pipe, page by
    page, and on ext4 that measured 1.7 times slower than these chunks; unaligned ranges, like
    the suffix of a JSON value, cannot share extents anyway.)
    """
    buffer = memoryview(bytearray(min(length, _COPY_CHUNK)))
    while length > 0:
        got = _read_into(source_fd, buffer[: min(length, len(buffer))], source_offset)
        if got == 0:
            msg = f"the source ended {length} bytes before the copy did"
            raise OSError(msg)
        chunk = buffer[:got]
        if target_offset is None:
            _write_all(target_fd, chunk)
        else:
            written = 0
            while written < got:
                written += os.pwrite(target_fd, chunk[written:], target_offset + written)
            target_offset += got
        source_offset += got
        length -= got


def _read_into(fd: int, buffer: memoryview, offset: int) -> int:
    """Read at ``offset`` into ``buffer`` (without a new bytes object where the OS allows)."""
    if _preadv is not None:
        return _preadv(fd, [buffer], offset)
    data = os.pread(fd, len(buffer), offset)
    buffer[: len(data)] = data
    return len(data)


_preadv = getattr(os, "preadv", None)


def _read_header(fd: int) -> Optional[dict]:
    """The header of a complete journal, or ``None`` for an incomplete or damaged one."""
    size = os.fstat(fd).st_size
    if size < _TRAILER_DIGITS + 2:
        return None
    digits = os.pread(fd, _TRAILER_DIGITS, size - _TRAILER_DIGITS)
    if not digits.isdigit():
        return None
    length = int(digits)
    start = size - _TRAILER_DIGITS - 1 - length
    if start < 0:
        return None
    try:
        header = orjson.loads(os.pread(fd, length, start))
    except orjson.JSONDecodeError:
        return None
    if not isinstance(header, dict) or start != header.get("new_length", -1) + header.get(
        "suffix_length", -1
    ):
        return None
    if zlib.crc32(_pread_exact(fd, 0, header["new_length"])) != header.get("crc32"):
        return None
    return header


def _journal_blocks_readers(files: utils.DbFiles) -> bool:
    """True when a journal exists whose writer is dead (the file may be half-changed)."""
    if not os.access(files.journal, os.F_OK):  # the usual case, without raising an exception
        return False
    try:
        fd = os.open(files.journal, os.O_RDONLY | utils.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        header = _read_header(fd)
    finally:
        os.close(fd)
    if header is None:
        return True  # its writer died while writing it: let recovery drop it
    return not utils.process_is_alive(int(header["pid"]), str(header["token"]))


def recover_journal(files: utils.DbFiles, timeout: float = 60.0) -> bool:
    """Finish or drop the in-place write a dead writer left behind. Caller holds the write lock.

    Returns ``True`` when a journal was applied.
    """
    try:
        fd = os.open(files.journal, os.O_RDONLY | utils.O_CLOEXEC)
    except FileNotFoundError:
        return False
    applied = False
    try:
        header = _read_header(fd)
        if header is not None:
            try:
                inode = os.stat(files.json).st_ino
            except FileNotFoundError:
                inode = None
            if inode == header["inode"]:
                _apply_in_place(files.json, _Journal(header, fd), timeout, files)
                applied = True
    finally:
        os.close(fd)
    _retire_journal(files)
    utils.logger.warning(
        "%s the interrupted in-place write of database %r",
        "Finished" if applied else "Dropped",
        files.name,
    )
    return applied


# ---------------------------------------------------------------------------------------
# Small file-system helpers


def _create_exclusive(path: str) -> int:
    return _open_creating_folder(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)


def _open_creating_folder(path: str, flags: int) -> int:
    flags |= utils.O_CLOEXEC
    try:
        return os.open(path, flags, 0o644)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return os.open(path, flags, 0o644)


def _write_new_file(folder: str, data: bytes) -> Tuple[str, FileIdentity]:
    temp = utils.temp_path(folder)
    fd = _create_exclusive(temp)
    try:
        _write_all(fd, data)
        if config.use_fsync:
            os.fsync(fd)
        identity = FileIdentity.of(os.fstat(fd))
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    os.close(fd)
    return temp, identity


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` at the current position."""
    written = os.write(fd, data)  # one call writes it all, except for huge data or signals
    if written < len(data):
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]


def _replace(source: str, target: str) -> None:
    try:
        os.replace(source, target)
    except FileNotFoundError:
        if not os.path.exists(source):
            raise
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(source, target)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync folders; the data itself was synced
    finally:
        os.close(fd)
