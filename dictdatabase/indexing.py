"""The key index: where each top-level value of a large file starts and ends.

An index belongs to exactly one state of one data file: it records the file identity
``(inode, size, mtime_ns)`` it describes, and is ignored for any other. Every entry also
holds a crc32 of its value bytes, which readers check, so even an edit by another program
that keeps size and mtime cannot make a read return an old value.

The index lives in memory (one copy per process, loaded once) and on disk in the
database's private folder, written atomically. Any process may rebuild it; concurrent
rebuilds write equal content, and a rebuild for an older file state is simply ignored
later because its identity no longer matches.

An index also records the *format* (encoder and indentation) of the file when this library
wrote it. Only then may a key write splice new bytes into the file (the result must equal a
full write with the current settings), and only then may the fast line scanner build it.
"""

from __future__ import annotations

import os
import zlib
from collections import OrderedDict
from typing import Dict, NamedTuple, Optional, Tuple

import orjson

from . import byte_codes, io_bytes, utils
from .io_bytes import DataFile, FileIdentity

__all__ = ["FileFormat", "IndexEntry", "IndexState", "Indexer", "build", "current_state", "store"]

#: (encoder, indent unit): ``("orjson", "  ")``, ``("json", "\t")``, ``("json", None)`` ...
#: ``None`` means compact output; ``""`` means newlines without indentation (json, indent=0).
FileFormat = Tuple[str, Optional[str]]

_VERSION = 1
_MEMORY_SLOTS = 256
# During a scan through mmap, give pages back every this many bytes.
_RELEASE_EVERY = 16 << 20


class IndexEntry(NamedTuple):
    """Where one top-level value is: ``[start, end)`` bytes, its line's indentation, a crc32."""

    start: int
    end: int
    indent_level: int
    indent_with: str
    value_hash: int


class IndexState:
    """The index of one data file state."""

    __slots__ = ("entries", "file_format", "identity")

    def __init__(
        self,
        identity: FileIdentity,
        file_format: Optional[FileFormat],
        entries: Optional[Dict[str, IndexEntry]],
    ) -> None:
        self.identity = identity
        self.file_format = file_format
        #: None until a scan fills it; then it holds *every* top-level key
        self.entries = entries

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "version": _VERSION,
                "identity": list(self.identity),
                "format": list(self.file_format) if self.file_format else None,
                "entries": None if self.entries is None else {k: list(e) for k, e in self.entries.items()},
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> Optional[IndexState]:
        try:
            loaded = orjson.loads(raw)
            if loaded.get("version") != _VERSION:
                return None
            identity = FileIdentity(*loaded["identity"])
            file_format = tuple(loaded["format"]) if loaded["format"] else None
            raw_entries = loaded["entries"]
            entries = None if raw_entries is None else {k: IndexEntry(*v) for k, v in raw_entries.items()}
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
            return None  # a damaged index is rebuilt, never trusted
        return cls(identity, file_format, entries)


_memory: OrderedDict = OrderedDict()  # private folder -> IndexState


def _remember(folder: str, state: IndexState) -> None:
    _memory[folder] = state
    _memory.move_to_end(folder)
    while len(_memory) > _MEMORY_SLOTS:
        _memory.popitem(last=False)


def forget(files: utils.DbFiles) -> None:
    """Drop the in-memory index of a database (the disk copy is removed with the data)."""
    _memory.pop(files.private, None)


def current_state(files: utils.DbFiles, identity: FileIdentity) -> Optional[IndexState]:
    """The index for exactly this file state, from memory or disk, or ``None``."""
    state = _memory.get(files.private)
    if state is not None and state.identity == identity:
        return state
    try:
        with open(files.index, "rb") as handle:
            state = IndexState.from_bytes(handle.read())
    except (FileNotFoundError, NotADirectoryError):
        return None
    if state is None or state.identity != identity:
        return None
    _remember(files.private, state)
    return state


def store(files: utils.DbFiles, state: IndexState) -> None:
    """Keep ``state`` in memory and write it to disk atomically (best effort on disk)."""
    _remember(files.private, state)
    try:
        io_bytes.write_private_file(files, files.index, state.to_bytes())
    except OSError as error:  # a read-only folder must not break reads
        utils.logger.debug("Could not write the index of %r: %s", files.name, error)


def build(data_file: DataFile, file_format: Optional[FileFormat]) -> IndexState:
    """Scan the file once and index every top-level key. Raises ``ValueError`` on bad JSON.

    When ``file_format`` is known (this library wrote the file) and indented, the fast line
    scanner is used; otherwise, or if the layout surprises it, the full scanner.
    """
    unit = file_format[1] if file_format else None
    with data_file.scan_view() as (buffer, release):
        entries = None
        if unit:
            try:
                entries = _scan(
                    buffer, release, byte_codes.iter_indented_top_level_items(buffer, unit.encode())
                )
            except ValueError:
                utils.logger.debug("File %r does not have the recorded layout; full scan", data_file.path)
                file_format = None
        if entries is None:
            entries = _scan(buffer, release, byte_codes.iter_top_level_items(buffer))
    state = IndexState(data_file.identity, file_format, entries)
    store(data_file.files, state)
    return state


def _scan(buffer, release, spans) -> Dict[str, IndexEntry]:
    entries: Dict[str, IndexEntry] = {}
    released = 0
    level = 1
    unit = None
    for key_start, key_end, value_start, value_end in spans:
        if unit is None:
            level, unit = utils.detect_indentation_in_json_bytes(buffer, key_start)
        key = byte_codes.decode_key(buffer, key_start, key_end)
        value_hash = zlib.crc32(buffer[value_start:value_end])
        entries[key] = IndexEntry(value_start, value_end, level, unit, value_hash)
        if value_end - released >= _RELEASE_EVERY:
            release(value_end)
            released = value_end
    return entries


def shifted(state: IndexState, key: str, new_entry: IndexEntry, identity: FileIdentity) -> IndexState:
    """The index after the value of ``key`` became ``new_entry`` (later values move)."""
    old = state.entries[key]
    delta = new_entry.end - old.end
    entries = {}
    for name, entry in state.entries.items():
        if entry.start > old.start and delta:
            entry = entry._replace(start=entry.start + delta, end=entry.end + delta)  # noqa: PLW2901
        entries[name] = entry
    entries[key] = new_entry
    return IndexState(identity, state.file_format, entries)


class Indexer:
    """The spec's view of one database's index.

    ``get(key)`` returns the :class:`IndexEntry` of a key for the data file as it is now, or
    ``None`` (no index yet, file changed since, or no such key). ``write(...)`` records a
    value's new position and shifts the entries after it; it only amends a complete index
    of the current file state (an index always lists every key, so a partial one is never
    created).
    """

    def __init__(self, db_name: str) -> None:
        self.files = utils.db_files(db_name)

    def _identity(self) -> Optional[FileIdentity]:
        for path in (self.files.json, self.files.ddb):
            try:
                return FileIdentity.of(os.stat(path))
            except FileNotFoundError:
                continue
        return None

    def get(self, key: str) -> Optional[IndexEntry]:
        identity = self._identity()
        state = current_state(self.files, identity) if identity else None
        if state is None or state.entries is None:
            return None
        return state.entries.get(key)

    def write(
        self,
        key: str,
        start_index: int,
        end_index: int,
        indent_level: int,
        indent_with: str,
        value_hash: int,
        old_value_end: int,
    ) -> None:
        identity = self._identity()
        state = current_state(self.files, identity) if identity else None
        if state is None or state.entries is None:
            return  # an index always lists every key; the next read builds a complete one
        entry = IndexEntry(start_index, end_index, indent_level, indent_with, value_hash)
        entries = dict(state.entries)
        if key in entries:
            entries[key] = entries[key]._replace(end=old_value_end)
            store(self.files, shifted(IndexState(identity, state.file_format, entries), key, entry, identity))
        else:
            entries[key] = entry
            store(self.files, IndexState(identity, state.file_format, entries))
