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
import re
import zlib
from collections import OrderedDict
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import orjson

from . import byte_codes, io_bytes, utils
from .io_bytes import DataFile, FileIdentity

__all__ = ["FileFormat", "IndexEntry", "IndexState", "Indexer", "build", "current_state", "store"]

#: (encoder, indent unit): ``("orjson", "  ")``, ``("json", "\t")``, ``("json", None)`` ...
#: ``None`` means compact output; ``""`` means newlines without indentation (json, indent=0).
FileFormat = Tuple[str, Optional[str]]

_VERSION = 2
#: Pending shifts an index keeps before it applies them to every entry.
_MAX_SHIFTS = 64
#: Changed entries an index keeps apart before it copies them into a new base.
_MAX_CHANGED = 64
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
    """The index of one data file state.

    Moving later values after a length change would touch every entry, so moves are kept
    as a short list of pending shifts ``(from, delta)``: an entry stored after ``g`` shifts
    moves by every later shift whose ``from`` lies before it. :meth:`get` applies them to
    one entry; :attr:`entries` applies them all once (after ``_MAX_SHIFTS`` they are folded
    in anyway).
    """

    __slots__ = ("_base", "_changed", "_shifts", "file_format", "identity")

    def __init__(
        self,
        identity: FileIdentity,
        file_format: Optional[FileFormat],
        entries: Optional[Dict[str, IndexEntry]],
        shifts: Tuple[Tuple[int, int], ...] = (),
        generations: Optional[Dict[str, Tuple[IndexEntry, int]]] = None,
        changed: Optional[Dict[str, Tuple[IndexEntry, int]]] = None,
    ) -> None:
        self.identity = identity
        self.file_format = file_format
        #: key -> (entry, number of shifts that already apply to it); None until a scan
        #: fills it, then it holds *every* top-level key. Shared by the states that
        #: :meth:`with_change` derives, so it is never changed.
        self._base = generations
        if self._base is None and entries is not None:
            self._base = {key: (entry, 0) for key, entry in entries.items()}
        #: the same for the keys changed since ``_base`` was made: a change copies this small
        #: dict instead of the whole index (``_MAX_CHANGED`` changes are folded in at once)
        self._changed = changed if changed is not None else {}
        self._shifts = shifts

    @property
    def complete(self) -> bool:
        """Does the index list every top-level key (is it not metadata only)?"""
        return self._base is not None

    def get(self, key: str) -> Optional[IndexEntry]:
        """The current entry of ``key`` (pending shifts applied), or ``None``."""
        stored = self._changed.get(key)
        if stored is None:
            stored = self._base.get(key) if self._base is not None else None
            if stored is None:
                return None
        entry, generation = stored
        start, end = entry.start, entry.end
        for frm, delta in self._shifts[generation:]:
            if start > frm:
                start += delta
                end += delta
        if start == entry.start:
            return entry
        return IndexEntry(start, end, entry.indent_level, entry.indent_with, entry.value_hash)

    @property
    def entries(self) -> Optional[Dict[str, IndexEntry]]:
        """Every entry with all shifts applied (``None`` for a metadata-only index)."""
        if self._base is None:
            return None
        return {key: self.get(key) for key in self._base}

    def with_change(
        self, key: str, new_entry: IndexEntry, identity: FileIdentity, old_start: int
    ) -> IndexState:
        """The index after ``key``'s value became ``new_entry``: values that started after
        ``old_start`` move by the change of the value's end."""
        old = self.get(key)
        shifts = self._shifts
        if old is not None and new_entry.end != old.end:
            shifts = (*shifts, (old_start, new_entry.end - old.end))
        base = self._base  # a complete index (callers only change keys they found in it)
        changed = {**self._changed, key: (new_entry, len(shifts))}
        if len(changed) > _MAX_CHANGED or key not in base:
            base, changed = {**base, **changed}, {}
        state = IndexState(identity, self.file_format, None, shifts, base, changed)
        if len(shifts) > _MAX_SHIFTS:
            return IndexState(identity, self.file_format, state.entries)
        return state

    def to_bytes(self) -> bytes:
        """One snapshot line (keys and flat spans keep it compact and fast to encode)."""
        record: Dict[str, Any] = {
            "version": _VERSION,
            "identity": list(self.identity),
            "format": list(self.file_format) if self.file_format else None,
            "keys": None,
        }
        materialized = self.entries
        if materialized is not None:
            entries = list(materialized.values())
            unit = entries[0].indent_with if entries else ""
            spans: List[Any] = []
            for entry in entries:
                spans += (entry.start, entry.end, entry.indent_level, entry.value_hash)
            record["keys"] = list(materialized)
            record["spans"] = spans
            record["unit"] = unit
            if any(entry.indent_with != unit for entry in entries):
                record["units"] = [entry.indent_with for entry in entries]
        return orjson.dumps(record) + b"\n"

    @classmethod
    def from_bytes(cls, raw: bytes) -> Optional[IndexState]:
        """Parse a snapshot line followed by any number of change lines (see :func:`record_change`)."""
        lines = raw.split(b"\n")
        try:
            record = orjson.loads(lines[0])
            if record.get("version") != _VERSION:
                return None
            state = cls(FileIdentity(*record["identity"]), _format(record["format"]), _entries(record))
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError, IndexError):
            return None  # a damaged index is rebuilt, never trusted
        for line in lines[1:]:
            if not line:
                continue
            try:
                change = orjson.loads(line)
                state = shifted(
                    state,
                    change["key"],
                    IndexEntry(*change["entry"]),
                    FileIdentity(*change["identity"]),
                    change["from"],
                )
            except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
                break  # a torn last line: the identity before it no longer matches the file
        return state


def _format(raw: Any) -> Optional[FileFormat]:
    return (raw[0], raw[1]) if raw else None


def _entries(record: Dict[str, Any]) -> Optional[Dict[str, IndexEntry]]:
    keys = record["keys"]
    if keys is None:
        return None
    spans = record["spans"]
    units = record.get("units") or [record["unit"]] * len(keys)
    return {
        key: IndexEntry(spans[4 * i], spans[4 * i + 1], spans[4 * i + 2], units[i], spans[4 * i + 3])
        for i, key in enumerate(keys)
    }


_memory: OrderedDict = OrderedDict()  # private folder -> IndexState
#: private folder -> (inode, size) of the index file as this process last wrote or read it
_disk_stamps: Dict[str, Tuple[int, int]] = {}
#: private folder -> number of change lines after the snapshot
_change_counts: Dict[str, int] = {}
_COMPACT_AFTER = 256


def _remember(folder: str, state: IndexState) -> None:
    _memory[folder] = state
    _memory.move_to_end(folder)
    while len(_memory) > _MEMORY_SLOTS:
        _memory.popitem(last=False)


def forget(files: utils.DbFiles) -> None:
    """Drop the in-memory index of a database (the disk copy is removed with the data)."""
    _memory.pop(files.private, None)
    _disk_stamps.pop(files.private, None)


def current_state(files: utils.DbFiles, identity: FileIdentity) -> Optional[IndexState]:
    """The index for exactly this file state, from memory or disk, or ``None``."""
    state = _memory.get(files.private)
    if state is not None and state.identity == identity:
        return state
    try:
        fd = os.open(files.index, os.O_RDONLY | utils.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        stat = os.fstat(fd)
        raw = os.pread(fd, stat.st_size, 0)
    finally:
        os.close(fd)
    state = IndexState.from_bytes(raw)
    if state is None or state.identity != identity:
        return None
    _disk_stamps[files.private] = (stat.st_ino, len(raw))
    _change_counts[files.private] = raw.count(b"\n") - 1
    _remember(files.private, state)
    return state


def store(files: utils.DbFiles, state: IndexState) -> None:
    """Keep ``state`` in memory and write it to disk as a new snapshot (best effort)."""
    _remember(files.private, state)
    raw = state.to_bytes()
    try:
        io_bytes.write_private_file(files, files.index, raw)
        _disk_stamps[files.private] = (os.stat(files.index).st_ino, len(raw))
        _change_counts[files.private] = 0
    except OSError as error:  # a read-only folder must not break reads
        utils.logger.debug("Could not write the index of %r: %s", files.name, error)


def record_change(
    files: utils.DbFiles, state: IndexState, key: str, entry: IndexEntry, identity: FileIdentity
) -> None:
    """The value of ``key`` moved to ``entry`` (later values shift) and the file is now
    ``identity``: update the index in memory and append one change line on disk.

    Appending costs one small write instead of rewriting the whole index. It is only done
    when the index file is exactly as this process left it (so the line applies to the right
    base); otherwise, and every ``_COMPACT_AFTER`` changes, a fresh snapshot is written.
    """
    old_start = state.get(key).start
    new_state = shifted(state, key, entry, identity, old_start)
    stamp = _disk_stamps.get(files.private)
    if stamp is None or _change_counts.get(files.private, 0) >= _COMPACT_AFTER:
        store(files, new_state)
        return
    line = (
        orjson.dumps({"identity": list(identity), "key": key, "entry": list(entry), "from": old_start})
        + b"\n"
    )
    try:
        fd = os.open(files.index, os.O_WRONLY | os.O_APPEND | utils.O_CLOEXEC)
    except FileNotFoundError:
        store(files, new_state)
        return
    try:
        current = os.fstat(fd)
        if (current.st_ino, current.st_size) != stamp:
            os.close(fd)
            fd = -1
            store(files, new_state)
            return
        os.write(fd, line)
    finally:
        if fd >= 0:
            os.close(fd)
    _disk_stamps[files.private] = (stamp[0], stamp[1] + len(line))
    _change_counts[files.private] = _change_counts.get(files.private, 0) + 1
    _remember(files.private, new_state)


def build(data_file: DataFile, file_format: Optional[FileFormat]) -> IndexState:
    """Scan the file once and index every top-level key. Raises ``ValueError`` on bad JSON.

    When ``file_format`` is known (this library wrote the file) and indented, the fast line
    scanner is used. When it is not known (no index recorded it: another program wrote the
    file, or the index was lost) and the file looks indented, the fast scanner is tried too,
    and every value it finds is parsed to prove the split right (:func:`_scan_checked`).
    Otherwise, or if the layout surprises it, the full scanner runs.
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
        elif file_format is None:
            entries = _scan_checked(buffer, release)
        if entries is None:
            entries = _scan(buffer, release, byte_codes.iter_top_level_items(buffer))
    state = IndexState(data_file.identity, file_format, entries)
    store(data_file.files, state)
    return state


#: The first line of an indented object: ``{``, a newline, one indent unit, a key's quote.
_INDENTED_START = re.compile(rb'\{\n( +|\t+)"')
#: Values up to this size are parsed to check a scan of a file of unknown layout.
_CHECK_BY_PARSING_MAX = 1 << 20


def _scan_checked(buffer, release) -> Optional[Dict[str, IndexEntry]]:
    """The fast line scan of a file whose layout nobody recorded, or ``None`` when it does
    not apply or its result cannot be proven right.

    The fast scanner splits at every newline followed by one indent unit and a quote. In a
    file that is not consistently indented, such a line may lie inside a value, or a key may
    not start such a line. Either way some value span then holds unbalanced brackets or more
    than one value, so it is not valid JSON: each span is parsed (they are small; a span over
    ``_CHECK_BY_PARSING_MAX`` sends the file to the full scanner instead).
    """
    first_line = _INDENTED_START.match(bytes(buffer[:64]))
    if first_line is None:
        return None
    try:
        return _scan(
            buffer,
            release,
            byte_codes.iter_indented_top_level_items(buffer, first_line.group(1)),
            check=True,
        )
    except ValueError:  # orjson's JSONDecodeError is one, too
        return None


def _scan(buffer, release, spans, *, check: bool = False) -> Dict[str, IndexEntry]:
    entries: Dict[str, IndexEntry] = {}
    released = 0
    level = 1
    unit = None
    for key_start, key_end, value_start, value_end in spans:
        if unit is None:
            level, unit = utils.detect_indentation_in_json_bytes(buffer, key_start)
        key = byte_codes.decode_key(buffer, key_start, key_end)
        value_bytes = buffer[value_start:value_end]
        if check:
            if value_end - value_start > _CHECK_BY_PARSING_MAX:
                msg = "a value too large to check by parsing"
                raise ValueError(msg)
            orjson.loads(value_bytes)
        value_hash = zlib.crc32(value_bytes)
        entries[key] = IndexEntry(value_start, value_end, level, unit, value_hash)
        if value_end - released >= _RELEASE_EVERY:
            release(value_end)
            released = value_end
    return entries


def shifted(
    state: IndexState,
    key: str,
    new_entry: IndexEntry,
    identity: FileIdentity,
    old_start: Optional[int] = None,
) -> IndexState:
    """The index after the value of ``key`` became ``new_entry``: values that started after
    ``old_start`` (default: the key's current start) move by the change in its end."""
    if old_start is None:
        current = state.get(key)
        old_start = current.start if current is not None else new_entry.start
    return state.with_change(key, new_entry, identity, old_start)


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
        if state is None or not state.complete:
            return None
        return state.get(key)

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
        if state is None or not state.complete:
            return  # an index always lists every key; the next read builds a complete one
        entry = IndexEntry(start_index, end_index, indent_level, indent_with, value_hash)
        entries = dict(state.entries)
        if key in entries:
            entries[key] = entries[key]._replace(end=old_value_end)
            store(self.files, shifted(IndexState(identity, state.file_format, entries), key, entry, identity))
        else:
            entries[key] = entry
            store(self.files, IndexState(identity, state.file_format, entries))
