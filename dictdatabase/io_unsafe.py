"""JSON encoding and decoding, full and partial reads and writes. Takes no lock files.

The callers (``io_safe``, ``sessions``) hold the locks. Functions here guarantee:

- Serialisation happens before any byte on disk changes, and errors become
  :class:`errors.SerializationError`.
- Files are canonical (DECISIONS.md, ruling 3): a key write leaves the file byte-identical
  to a full write of the same data with the current settings. A key write splices the new
  value's bytes into the file only when the index says this library wrote the file in the
  current format; otherwise it rewrites the file once (which makes it canonical).
- Unreadable JSON or compressed data raises :class:`errors.CorruptedFileError`.

Files smaller than :data:`SMALL_FILE_BYTES` are parsed whole on a key read: orjson parses
them faster than any index lookup would pay off. Larger files go through the index.
"""

from __future__ import annotations

import json
import os
import threading
import zlib
from collections import OrderedDict
from typing import Any, Callable, ContextManager, Dict, NamedTuple, Optional, Tuple

import orjson

from . import byte_codes, errors, indexing, io_bytes, utils
from .configuration import config
from .errors import CorruptedFileError, KeyNotFoundError, SerializationError
from .indexing import FileFormat, IndexEntry, IndexState
from .io_bytes import DataFile

__all__ = [
    "SMALL_FILE_BYTES",
    "PartialFileHandle",
    "current_format",
    "deserialize",
    "get_partial_file_handle",
    "partial_read",
    "partial_write",
    "read",
    "serialize",
    "serialize_value",
    "write",
]

#: Key reads of smaller files parse the whole file; larger files use the index.
SMALL_FILE_BYTES = io_bytes.JOURNAL_MIN_BYTES

#: Returned by :func:`lookup` for a missing file or key (``None`` is a stored ``null``).
MISSING = object()
_Fence = Callable[[], ContextManager[object]]


def _no_fence() -> ContextManager[object]:
    import contextlib  # noqa: PLC0415 - tiny, only for the default argument

    return contextlib.nullcontext()


# ---------------------------------------------------------------------------------------
# Encoding


def current_format() -> FileFormat:
    """The format a write produces with the current settings."""
    indent = config.indent
    if config.use_orjson:
        return ("orjson", "  " if indent else None)
    if indent is None:
        return ("json", None)
    return ("json", " " * indent if isinstance(indent, int) else indent)


def serialize(data: Any) -> bytes:
    """The canonical bytes of ``data`` with the current settings.

    Raises :class:`errors.SerializationError` for data JSON cannot hold (sets, non-``str``
    keys, NaN or infinity with the json module, ...). With orjson, NaN and infinity are
    written as ``null``, as orjson does.
    """
    try:
        if config.use_orjson:
            option = orjson.OPT_SORT_KEYS | (orjson.OPT_INDENT_2 if config.indent else 0)
            return orjson.dumps(data, option=option)
        _reject_non_str_keys(data)
        return json.dumps(data, indent=config.indent, sort_keys=True, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, OverflowError, RecursionError) as error:
        raise SerializationError(f"Cannot store this data as JSON: {error}. Nothing was written") from None


def serialize_value(value: Any, file_format: FileFormat) -> bytes:
    """The bytes of a top-level value exactly as a full write in ``file_format`` has them."""
    encoder, unit = file_format
    try:
        if encoder == "orjson":
            if unit is None:
                return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
            encoded = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
            return encoded.replace(b"\n", b"\n  ")
        _reject_non_str_keys(value)
        text = json.dumps(value, indent=unit, sort_keys=True, allow_nan=False)
        if unit:
            text = text.replace("\n", "\n" + unit)
        return text.encode("utf-8")
    except (TypeError, ValueError, OverflowError, RecursionError) as error:
        raise SerializationError(f"Cannot store this value as JSON: {error}. Nothing was written") from None


def _reject_non_str_keys(data: Any) -> None:
    """The json module silently turns ``1`` into ``"1"``; refuse, as orjson does."""
    try:
        orjson.dumps(data)
    except TypeError as error:
        if "key must be str" in str(error):
            raise TypeError("dict keys must be str") from None
        # Anything else orjson dislikes (big integers, ...) is for the json module to judge.


def deserialize(raw: bytes, path: str) -> Any:
    """Parse JSON bytes; raise :class:`errors.CorruptedFileError` naming ``path``.

    orjson reads an integer beyond 64 bits as an inexact float. orjson cannot write such
    integers (it refuses them), but the json module can: with ``use_orjson = False``, bytes
    that hold a run of 19 or more digits are parsed by the json module, which keeps every
    integer exact. (With orjson, reading a file that another program wrote with such
    integers gives floats; see the README's limits.)
    """
    if not config.use_orjson and _may_hold_big_integers(raw):
        try:
            return json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError):
            pass  # orjson below names the problem
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        first_error = error
    try:
        # The json module also accepts escaped lone surrogates, which orjson refuses.
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        pass
    if not raw.strip():
        raise CorruptedFileError(path, "the file is empty") from None
    raise CorruptedFileError(
        path, f"invalid JSON: {first_error}", pos=getattr(first_error, "pos", 0)
    ) from None


#: Digits to ``0``, every other byte to a space: a run of 19 zeros then marks 19 digits.
_DIGITS_TO_ZERO = bytes(48 if 48 <= byte <= 57 else 32 for byte in range(256))


def _may_hold_big_integers(raw: bytes) -> bool:
    """Does ``raw`` hold 19 digits in a row (an integer that may not fit in 64 bits, or
    digits inside a string: the caller then just parses more slowly)?"""
    return b"0000000000000000000" in raw.translate(_DIGITS_TO_ZERO)


def _reject_constant(name: str) -> Any:
    msg = f"{name} is not valid JSON"
    raise ValueError(msg)


def _decode_file(data_file: DataFile) -> Any:
    return deserialize(data_file.read_all(), data_file.path)


# ---------------------------------------------------------------------------------------
# Reading


def read(db_name: str, *, shared: bool = True) -> Any:
    """The whole database, or ``None`` when the file does not exist."""
    data = load(utils.db_files(db_name), shared=shared)
    return None if data is MISSING else data


def load_listed(files: utils.DbFiles, listed: Tuple[bool, bool], *, shared: bool = True) -> Any:
    """Like :func:`load`, for a file a folder listing just showed (fewer system calls: the
    listing already tells that only one form exists)."""
    if listed[0] != listed[1]:
        path = files.json if listed[0] else files.ddb
        try:
            if shared:
                hit = _cached(files, None, only_form=path)
                if hit is not _NO_HIT:
                    return hit
            want_key = shared and READ_CACHE_BYTES > 0
            raw, key = io_bytes.read_small_with_key(path, shared=shared, want_key=want_key)
        except FileNotFoundError:
            raw = None  # changed since the listing: take the general path
        if raw is not None:
            return _parse_small(files, io_bytes.SmallRead("read", raw, path, key))
    return load(files, shared=shared, listed=listed)


#: Most bytes the per-process read cache keeps (0 turns it off). See :class:`_ReadCache`.
READ_CACHE_BYTES = 16 << 20
#: Larger values of large files are not cached (parsing dominates their read anyway).
_CACHE_MAX_VALUE_BYTES = 1 << 20


class _ReadCache:
    """JSON bytes this process read recently: whole small files, and values of large ones.

    What it guarantees: an entry is served only while ``os.stat`` of the data file shows the
    very inode, size, mtime and ctime seen, under the shared lock, when the bytes were read
    (:data:`io_bytes.StatKey`). Writers of this library give every new version a new mtime
    (the current time in nanoseconds), so a cache does not serve bytes that another thread or
    process has replaced. Other programs cannot set the ctime, so their edits show too.

    What it does not guarantee: on kernels with coarse file timestamps (Linux before 6.13,
    some other file systems) an outside edit that keeps inode and size, made within one clock
    tick (a few ms) of the file's previous change, can go unseen until the file changes again.
    It always serves a fresh parse: callers may change what they get.
    """

    def __init__(self) -> None:
        #: (json path, key or None for the whole file) -> (stat key, JSON bytes), oldest first
        self.entries: OrderedDict[Tuple[str, Optional[str]], Tuple[io_bytes.StatKey, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, files: utils.DbFiles, key: Optional[str], stat: io_bytes.StatKey, data: bytes) -> None:
        if len(data) > min(READ_CACHE_BYTES, _CACHE_MAX_VALUE_BYTES):
            return
        with self._lock:
            old = self.entries.pop((files.json, key), None)
            if old is not None:
                self._bytes -= len(old[1])
            while self.entries and self._bytes + len(data) > READ_CACHE_BYTES:
                _, (_, evicted) = self.entries.popitem(last=False)  # the oldest first
                self._bytes -= len(evicted)
            self.entries[(files.json, key)] = (stat, data)
            self._bytes += len(data)

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()
            self._bytes = 0

    def after_fork(self) -> None:
        # Another thread may have held the lock at the fork; the entries stay valid.
        self._lock = threading.Lock()


_cache = _ReadCache()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_cache.after_fork)


#: What :func:`_cached` returns on a miss (``MISSING`` is a valid answer: a missing key).
_NO_HIT = object()


def _cached(files: utils.DbFiles, key: Optional[str], *, only_form: Optional[str] = None) -> Any:
    """The whole file (``key`` ``None``) or ``key``'s value (``MISSING`` if the file has no
    such key) from cached bytes, or ``_NO_HIT``. A hit costs one ``stat`` and the parse (see
    ``io_bytes.current_stat_key``); a miss with nothing cached for the file costs no system
    call. Raises ``FileNotFoundError`` when ``only_form`` (the file's only form, as a folder
    listing showed) is gone. (This is the hot path of every warm read, hence flat.)"""
    entries = _cache.entries
    path = files.json
    value = entries.get((path, key)) if key is not None else None
    whole = entries.get((path, None)) if value is None else None
    if whole is None and value is None:
        return _NO_HIT
    current = io_bytes.current_stat_key(files) if only_form is None else io_bytes.stat_key(os.stat(only_form))
    if value is not None:
        if value[0] != current:
            whole = entries.get((path, None))
        else:
            raw = value[1]
            found = deserialize(raw, path)
            if raw[1:2] == b"\n":
                # Cached as stored (indented) and now read again: keep it compact from now
                # on, which costs one encoding and makes every later parse faster.
                _cache_value(files, key, current, found)
            return found
    if whole is None or whole[0] != current:
        return _NO_HIT
    data = deserialize(whole[1], path)
    if key is None:
        return data
    found = data.get(key, MISSING) if isinstance(data, dict) else MISSING
    if found is not MISSING:
        _cache_value(files, key, current, found)
    return found


def _cache_value(files: utils.DbFiles, key: str, stat: io_bytes.StatKey, value: Any) -> None:
    """Cache one value of a small file on its own: parsing it alone is faster next time."""
    try:
        encoded = orjson.dumps(value)
    except TypeError:
        return  # orjson cannot write it back exactly (huge int, lone surrogate): do not cache
    _cache.put(files, key, stat, encoded)


#: Private folders of databases last seen as large files (their reads skip the small-file path).
_seen_large: set = set()


def _small_file(files: utils.DbFiles, shared: bool) -> Optional[io_bytes.SmallRead]:
    """The database file read whole if it is small (status ``"read"`` or ``"missing"``), or
    ``None`` when the general path must read it (a large file, or both forms present)."""
    if files.private in _seen_large:
        return None
    found = io_bytes.read_small_database(files, shared=shared)
    if found.status == "general":
        if len(_seen_large) < 4096:
            _seen_large.add(files.private)
        return None
    return found


def _note_size(data_file: DataFile) -> None:
    """A file last seen large may have shrunk: then small-file reads apply to it again."""
    if data_file.identity.size < SMALL_FILE_BYTES:
        _seen_large.discard(data_file.files.private)


def _json_bytes(files: utils.DbFiles, found: io_bytes.SmallRead) -> bytes:
    return io_bytes.decompress(found.raw, found.path) if found.path == files.ddb else found.raw


def _parse_small(files: utils.DbFiles, found: io_bytes.SmallRead) -> Any:
    """The data of a small file read whole; cached when it was read under the shared lock."""
    json_bytes = _json_bytes(files, found)
    data = deserialize(json_bytes, found.path)
    if found.key is not None and READ_CACHE_BYTES:
        _cache.put(files, None, found.key, json_bytes)
    return data


def _load_small(files: utils.DbFiles, shared: bool) -> Any:
    """The whole small database, ``MISSING``, or ``None`` when the general path must read it."""
    found = _small_file(files, shared)
    if found is None:
        return None
    if found.status == "missing":
        return MISSING
    return _Parsed(_parse_small(files, found))


class _Parsed(NamedTuple):
    data: Any


def load(files: utils.DbFiles, *, shared: bool = True, listed: Optional[Tuple[bool, bool]] = None) -> Any:
    """The whole database, or ``MISSING`` when the file does not exist."""
    if listed is None:
        if shared:
            hit = _cached(files, None)
            if hit is not _NO_HIT:
                return hit
        small = _load_small(files, shared)
        if small is not None:
            return small if small is MISSING else small.data
    data_file = io_bytes.open_data(files, shared=shared, listed=listed)
    if data_file is None:
        return MISSING
    with data_file:
        _note_size(data_file)
        return _decode_file(data_file)


def partial_read(db_name: str, key: str, *, shared: bool = True) -> Any:
    """The value of top-level ``key``, or ``None`` when the file or the key is missing."""
    value = lookup(utils.db_files(db_name), key, shared=shared)
    return None if value is MISSING else value


def key_exists(db_name: str, key: str) -> bool:
    """Whether the file exists and has top-level ``key`` (a stored ``null`` counts)."""
    return lookup(utils.db_files(db_name), key) is not MISSING


def lookup(files: utils.DbFiles, key: str, *, shared: bool = True) -> Any:
    """The value of ``key``, or the sentinel ``MISSING``."""
    if shared:
        hit = _cached(files, key)
        if hit is not _NO_HIT:
            return hit
    small = _load_small(files, shared)
    if small is MISSING:
        return MISSING
    if small is not None:
        return small.data.get(key, MISSING) if isinstance(small.data, dict) else MISSING
    data_file = io_bytes.open_data(files, shared=shared)
    if data_file is None:
        return MISSING
    with data_file:
        return _lookup_in(data_file, key, shared=shared)


def _lookup_in(data_file: DataFile, key: str, *, shared: bool = False) -> Any:
    _note_size(data_file)
    if data_file.identity.size < SMALL_FILE_BYTES:
        data = _decode_file(data_file)
        return data.get(key, MISSING) if isinstance(data, dict) else MISSING
    source = data_file.read_all() if data_file.compressed else None
    for attempt in range(2):
        state = _index_of(data_file, rebuild=attempt > 0)
        entry = state.get(key)
        if entry is None:
            return MISSING
        value_bytes = _verified_value(data_file, source, key, entry, fresh=attempt > 0)
        if value_bytes is not None:
            value = deserialize(value_bytes, data_file.path)
            if shared and READ_CACHE_BYTES:
                # The bytes as stored: encoding them compactly would cost more now than
                # parsing them saves later.
                _cache.put(data_file.files, key, data_file.stat_key, value_bytes)
            return value
        utils.logger.info(
            "Index of %r did not match the file (edited elsewhere?); rebuilding", data_file.path
        )
    msg = f"the index of {data_file.path!r} does not match right after a rebuild"
    raise RuntimeError(msg)


def _verified_value(
    data_file: DataFile, source: Optional[bytes], key: str, entry: IndexEntry, *, fresh: bool = False
) -> Optional[bytes]:
    """The value bytes at ``entry`` if they still belong to ``key``, else ``None``.

    One read covers the key and the value: the value's crc32 must match, and the bytes
    before it must be ``"key"`` (as json or orjson encode it), a colon and whitespace. So an
    edit elsewhere that keeps size and mtime, or even swaps two keys, is detected. An index
    ``fresh`` from a scan of this very file state needs no check (and keys written with
    unusual escapes, like ``"\\u0061"``, only pass that way).
    """
    if fresh:
        return (
            source[entry.start : entry.end] if source is not None else data_file.pread(entry.start, entry.end)
        )
    encodings = _key_encodings(key)
    low = max(0, entry.start - max(len(e) for e in encodings) - 8)
    raw = source[low : entry.end] if source is not None else data_file.pread(low, entry.end)
    value_bytes = raw[entry.start - low :]
    if zlib.crc32(value_bytes) != entry.value_hash:
        return None
    before = raw[: entry.start - low].rstrip(b" \t\n\r")
    if not before.endswith(b":"):
        return None
    before = before[:-1].rstrip(b" \t\n\r")
    for encoded in encodings:
        if before.endswith(encoded):
            preceding = before[-len(encoded) - 1 : -len(encoded)]
            if preceding in (b"{", b",", b" ", b"\t", b"\n", b"\r") or len(before) == len(encoded):
                return value_bytes
    return None


_encoded_keys: Dict[str, Tuple[bytes, ...]] = {}


def _key_encodings(key: str) -> Tuple[bytes, ...]:
    """How json and orjson write ``key`` (cached: the same keys are read again and again)."""
    found = _encoded_keys.get(key)
    if found is None:
        if key.isascii() and key.isprintable() and '"' not in key and "\\" not in key:
            # Printable ASCII without quote or backslash: both encoders only add the quotes.
            found = (b'"' + key.encode("ascii") + b'"',)
        else:
            with_orjson = orjson.dumps(key)
            with_json = json.dumps(key).encode("ascii")
            found = (with_orjson,) if with_orjson == with_json else (with_orjson, with_json)
        if len(_encoded_keys) >= 65536:
            _encoded_keys.clear()
        _encoded_keys[key] = found
    return found


def _index_of(data_file: DataFile, *, rebuild: bool = False) -> IndexState:
    """The complete index of this file state, built by one scan if needed."""
    state = None if rebuild else indexing.current_state(data_file.files, data_file.identity)
    if state is not None and state.complete:
        return state
    known_format = state.file_format if state is not None else None
    try:
        return indexing.build(data_file, known_format)
    except ValueError as error:
        # The scan found no valid object; let the JSON parser name the exact problem.
        data = _decode_file(data_file)
        if not isinstance(data, dict):
            return IndexState(data_file.identity, None, {})
        raise CorruptedFileError(data_file.path, str(error)) from None


# ---------------------------------------------------------------------------------------
# Writing


def write(db_name: str, data: Any, *, fence: _Fence = _no_fence) -> None:
    """Replace the whole database with ``data`` (serialised first)."""
    files = utils.db_files(db_name)
    write_payload(files, serialize(data), fence=fence)


def write_payload(
    files: utils.DbFiles,
    payload: bytes,
    *,
    fence: _Fence = _no_fence,
    file_format: Optional[FileFormat] = None,
) -> None:
    """Replace the database with already serialised bytes (``serialize()`` output with the
    current settings, whose ``file_format`` the caller may pass) and remember their format."""
    compressed = config.use_compression
    identity = io_bytes.replace_data(files, payload, compressed=compressed, fence=fence)
    if len(payload) >= SMALL_FILE_BYTES:
        # The file is canonical in the current format: the next index can use the fast scan.
        indexing.store(files, IndexState(identity, file_format or current_format(), None))
    elif not compressed:
        if len(_written_small) >= _WRITTEN_SMALL_FILES and files.json not in _written_small:
            _written_small.clear()  # one atomic step (threads share it); next writes refill it
        _written_small[files.json] = (payload, file_format or current_format())


# ---------------------------------------------------------------------------------------
# Key sessions on small files: splice the value when the bytes are known to be canonical

#: json path -> (the bytes this process last wrote to that small plain file, their format)
_written_small: Dict[str, Tuple[bytes, FileFormat]] = {}
#: How many files :data:`_written_small` remembers (at most 64 KiB each).
_WRITTEN_SMALL_FILES = 64


def _splice_point(files: utils.DbFiles, found: io_bytes.SmallRead, key: str) -> Optional[_SplicePoint]:
    """Where ``key``'s value is in the bytes of a small file, if they are the very bytes this
    process last wrote there (then they are canonical in the format recorded with them, and a
    splice equals a full write), and that format is indented; else ``None``.

    Equal bytes are the proof, not file identities: whoever wrote the file since, a mismatch
    only means a full parse. (The write checks that the settings still give that format.)
    """
    written = _written_small.get(files.json)
    if written is None or found.path != files.json or written[0] != found.raw:
        return None
    file_format = written[1]
    encoder, unit = file_format
    if not unit:
        return None
    encodings = _key_encodings(key)  # (orjson's, json's) when they differ
    key_json = encodings[0] if encoder == "orjson" else encodings[-1]
    span = byte_codes.indented_value_span(found.raw, unit.encode(), key_json)
    return None if span is None else (found.raw, span[0], span[1], file_format)


#: The bytes of a canonical small file, ``[start, end)`` of one value in them, their format.
_SplicePoint = Tuple[bytes, int, int, FileFormat]


class PartialFileHandle(NamedTuple):
    """What a key session read: the database, the key, and the value (to be changed).

    For a small file, ``full`` is the whole parsed file (``value`` is ``full[key]``): the
    write then serialises it again instead of reading the file a second time. When the
    file's bytes are known canonical, only the value was parsed and ``splice_point`` says
    where it is: the write then puts the new value's bytes in its place. The caller holds
    the write lock between the read and the write, so the file cannot change.
    """

    db_name: str
    key: str
    value: Any
    full: Any = None
    splice_point: Optional[_SplicePoint] = None


def get_partial_file_handle(db_name: str, key: str) -> PartialFileHandle:
    """Read ``key`` for a key session. Raises ``FileNotFoundError`` or ``KeyError``."""
    return read_for_key_write(utils.db_files(db_name), key)


def read_for_key_write(files: utils.DbFiles, key: str) -> PartialFileHandle:
    """:func:`get_partial_file_handle` for a database whose paths the caller has at hand."""
    found = _small_file(files, shared=False)
    if found is not None and found.status == "read":
        splice_point = _splice_point(files, found, key)
        if splice_point is not None:
            _, start, end, _ = splice_point
            value = deserialize(found.raw[start:end], found.path)
            return PartialFileHandle(files.name, key, value, None, splice_point)
        full = deserialize(_json_bytes(files, found), found.path)
        value = full.get(key, MISSING) if isinstance(full, dict) else MISSING
        if value is MISSING:
            msg = f"Key {key!r} does not exist in database {files.name!r}"
            raise KeyNotFoundError(msg)
        return PartialFileHandle(files.name, key, value, full)
    data_file = io_bytes.open_data(files, shared=False)
    if data_file is None:
        msg = f"Database {files.name!r} does not exist; create it first"
        raise errors.FileNotFoundError(msg)
    full = None
    with data_file:
        if data_file.identity.size < SMALL_FILE_BYTES:
            full = _decode_file(data_file)
            value = full.get(key, MISSING) if isinstance(full, dict) else MISSING
        else:
            value = _lookup_in(data_file, key)
    if value is MISSING:
        msg = f"Key {key!r} does not exist in database {files.name!r}"
        raise KeyNotFoundError(msg)
    return PartialFileHandle(files.name, key, value, full)


def partial_write(handle: PartialFileHandle, *, fence: _Fence = _no_fence, timeout: float = 60.0) -> None:
    """Store ``handle.value`` under ``handle.key`` (the caller holds the write lock)."""
    write_key_of(utils.db_files(handle.db_name), handle, handle.value, fence=fence, timeout=timeout)


def write_key_of(
    files: utils.DbFiles, handle: PartialFileHandle, value: Any, *, fence: _Fence, timeout: float
) -> None:
    """Store ``value`` under ``handle.key`` of the database ``handle`` was read from (its
    paths are ``files``); the caller has held the write lock since that read, so the whole
    small file read then (``handle.full``, or its bytes) is still current and is written
    back changed."""
    full = handle.full
    if handle.splice_point is not None:
        raw, start, end, file_format = handle.splice_point
        if file_format == current_format():
            payload = raw[:start] + serialize_value(value, file_format) + raw[end:]
            write_payload(files, payload, fence=fence, file_format=file_format)
            return
        full = deserialize(raw, files.json)  # the settings changed since the read
    if full is not None:
        full[handle.key] = value
        write_payload(files, serialize(full), fence=fence)
        return
    set_key(files, handle.key, value, fence=fence, timeout=timeout)


def set_key(
    files: utils.DbFiles, key: str, value: Any, *, fence: _Fence = _no_fence, timeout: float = 60.0
) -> None:
    """Set one top-level key, splicing its bytes into large canonical files."""
    file_format = current_format()
    value_bytes = serialize_value(value, file_format)  # fails before any I/O
    data_file = io_bytes.open_data(files, shared=False)
    if data_file is None:
        msg = f"Database {files.name!r} does not exist; create it first"
        raise errors.FileNotFoundError(msg)
    with data_file:
        if _can_splice(data_file, file_format):
            spliced = _splice_key(data_file, key, value_bytes, file_format, fence, timeout)
            if spliced:
                return
        data = _decode_file(data_file)
    if not isinstance(data, dict):
        msg = f"Database {files.name!r} does not hold an object, so it has no key {key!r}"
        raise TypeError(msg)
    data[key] = value
    write_payload(files, serialize(data), fence=fence)


def _can_splice(data_file: DataFile, file_format: FileFormat) -> bool:
    return (
        not data_file.compressed
        and not config.use_compression
        and data_file.identity.size >= SMALL_FILE_BYTES
        and _format_of(data_file) == file_format
    )


def _format_of(data_file: DataFile) -> Optional[FileFormat]:
    state = indexing.current_state(data_file.files, data_file.identity)
    return state.file_format if state is not None else None


def _splice_key(
    data_file: DataFile, key: str, value_bytes: bytes, file_format: FileFormat, fence: _Fence, timeout: float
) -> bool:
    """Splice the value in; ``False`` when the key is new (the caller rewrites the file)."""
    for attempt in range(2):
        state = _index_of(data_file, rebuild=attempt > 0)
        entry = state.get(key)
        if entry is None:
            return False
        if _verified_value(data_file, None, key, entry) is not None:
            break
    else:
        return False
    if state.file_format != file_format:
        return False  # the rebuild found the file is not canonical after all
    identity = io_bytes.splice_data(
        data_file, entry.start, entry.end, value_bytes, fence=fence, timeout=timeout
    )
    new_entry = IndexEntry(
        entry.start,
        entry.start + len(value_bytes),
        entry.indent_level,
        entry.indent_with,
        zlib.crc32(value_bytes),
    )
    indexing.record_change(data_file.files, state, key, new_entry, identity)
    return True


class Snapshot(NamedTuple):
    """One database file as read: stored bytes, JSON bytes, data, and whether compressed."""

    raw: bytes
    json_bytes: bytes
    data: Any
    compressed: bool


def snapshot(files: utils.DbFiles, *, shared: bool = False) -> Optional[Snapshot]:
    """The database as stored right now, or ``None`` when it is missing."""
    found = _small_file(files, shared)
    if found is not None:
        if found.status == "missing":
            return None
        json_bytes = _json_bytes(files, found)
        return Snapshot(found.raw, json_bytes, deserialize(json_bytes, found.path), found.path == files.ddb)
    data_file = io_bytes.open_data(files, shared=shared)
    if data_file is None:
        return None
    with data_file:
        _note_size(data_file)
        raw = data_file.read_raw()
        json_bytes = io_bytes.decompress(raw, data_file.path) if data_file.compressed else raw
        return Snapshot(raw, json_bytes, deserialize(json_bytes, data_file.path), data_file.compressed)


def raw_snapshot(files: utils.DbFiles) -> Tuple[Optional[bytes], Any]:
    """``(stored bytes, data)`` of the database, ``(None, None)`` when it is missing."""
    found = snapshot(files)
    return (None, None) if found is None else (found.raw, found.data)
