"""Names, paths, file facts, process identity, and thin wrappers over the byte scanner.

A database name is a path relative to ``config.storage_directory`` joined with ``/``
(for example ``"users"`` or ``"purchases/8"``). Its data lives in ``<name>.json`` or
``<name>.ddb``; everything else the library keeps for it (locks, index, journal, temporary
files) lives in its private folder ``<storage>/.ddb/<encoded name>/``. The encoding is
injective, so two names never share a private folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import sys
from typing import Callable, Dict, List, NamedTuple, Optional, Set, Tuple
from urllib.parse import quote

from . import byte_codes
from .configuration import config
from .errors import InvalidNameError

__all__ = [
    "DbFiles",
    "FileInfo",
    "_get_storage_path",
    "_resolve_relative_path",
    "data_paths",
    "db_files",
    "detect_indentation_in_json_bytes",
    "file_exists",
    "file_info",
    "find_all",
    "find_all_forms",
    "find_outermost_key_in_json_bytes",
    "normalize_name",
    "private_dir",
    "seek_index_through_value_bytes",
    "storage_root",
]

#: The library logs here and never prints.
logger = logging.getLogger("dictdatabase")

#: ``os.O_CLOEXEC`` where it exists: descriptors the library opens are not inherited by
#: programs that a process starts.
O_CLOEXEC: int = getattr(os, "O_CLOEXEC", 0)
logger.addHandler(logging.NullHandler())

PRIVATE_FOLDER = ".ddb"
JSON_SUFFIX = ".json"
DDB_SUFFIX = ".ddb"
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
# File systems limit one path segment to 255 bytes; long encoded names get a hash suffix.
_MAX_SEGMENT = 200


# ---------------------------------------------------------------------------------------
# Names and paths


_normalized: Dict[str, str] = {}


def normalize_name(name: str) -> str:
    """Validate a database name and return it in canonical ``a/b/c`` form.

    Backslashes count as separators; empty and ``.`` segments are dropped. Raises
    :class:`errors.InvalidNameError` for an empty name, an absolute path, a ``..`` segment,
    a NUL byte, or the reserved root folder ``.ddb``. Valid names are remembered, since the
    same names come back on every operation.
    """
    found = _normalized.get(name) if type(name) is str else None
    if found is not None:
        return found
    normalized = _normalize(name)
    if len(_normalized) >= 8192:
        _normalized.clear()
    _normalized[name] = normalized
    return normalized


def _normalize(name: str) -> str:
    if not isinstance(name, str):
        msg = f"a database name must be a str, got {type(name).__name__} {name!r}"
        raise TypeError(msg)
    if "\x00" in name:
        raise InvalidNameError(f"database name {name!r} contains a NUL byte")
    unified = name.replace("\\", "/")
    if unified.startswith("/") or _WINDOWS_DRIVE.match(unified):
        raise InvalidNameError(
            f"database name {name!r} is an absolute path; use a path relative to "
            "config.storage_directory, or change config.storage_directory"
        )
    segments = [segment for segment in unified.split("/") if segment not in ("", ".")]
    if not segments:
        raise InvalidNameError(f"database name {name!r} is empty")
    if ".." in segments:
        raise InvalidNameError(f"database name {name!r} contains '..' and would escape the storage directory")
    if segments[0] == PRIVATE_FOLDER:
        raise InvalidNameError(f"database name {name!r} uses the reserved folder {PRIVATE_FOLDER!r}")
    return "/".join(segments)


def has_glob(name: str) -> bool:
    """Tell whether the last segment of a name is a pattern: it holds ``*``.

    Only ``*`` is a wildcard; ``?`` and ``[`` are ordinary characters of names.
    """
    return "*" in name and "*" in name.rsplit("/", 1)[-1]


def storage_root() -> str:
    """Absolute path of the storage directory, as configured right now."""
    return os.path.abspath(config.storage_directory)


def _resolve_relative_path(db_name: str) -> str:
    """Absolute path of ``<storage>/<name>`` without extension."""
    return os.path.join(storage_root(), *normalize_name(db_name).split("/"))


def data_paths(db_name: str) -> Tuple[str, str]:
    """``(json_path, ddb_path)`` of a database."""
    files = db_files(db_name)
    return files.json, files.ddb


def _get_storage_path(db_name: str) -> str:
    """Path of the database's existing file, or of the file a write would create now."""
    json_path, ddb_path = data_paths(db_name)
    if os.path.exists(ddb_path) and not os.path.exists(json_path):
        return ddb_path
    if os.path.exists(json_path):
        return json_path
    return ddb_path if config.use_compression else json_path


def encode_name(db_name: str) -> str:
    """Injective, file-name-safe encoding of a normalised name (``/`` becomes ``%2F``)."""
    encoded = quote(db_name, safe="")
    if len(encoded) > _MAX_SEGMENT:
        digest = hashlib.sha256(db_name.encode("utf-8")).hexdigest()[:32]
        encoded = f"{encoded[: _MAX_SEGMENT - 40]}~{digest}"
    return encoded


def private_dir(db_name: str) -> str:
    """The database's private folder (locks, index, journal, temporary files)."""
    return db_files(db_name).private


class DbFiles(NamedTuple):
    """Every path that belongs to one database."""

    name: str  #: the normalised name
    json: str  #: the plain data file
    ddb: str  #: the compressed data file
    private: str  #: the private folder
    journal: str  #: the redo journal of an in-place write
    index: str  #: the key index
    #: the spare file of writes that hold no lock: the previous version, the target of the
    #: next write (a write lock has a spare of its own, named after its kernel lock file)
    spare: str


_files_cache: dict = {}


def db_files(db_name: str) -> DbFiles:
    """All paths of a database, for the storage directory configured right now.

    Cached by (storage directory, working directory when it is relative, name), so the hot
    paths do not normalise names and join paths again and again.
    """
    directory = config.storage_directory  # a str: the setting turns path objects into str
    # A relative directory is another folder after a chdir: then the key holds the cwd too.
    cache_key = (directory, db_name) if directory[:1] == "/" else (directory, os.getcwd(), db_name)
    found = _files_cache.get(cache_key)
    if found is None:
        if len(_files_cache) >= 8192:
            _files_cache.clear()
        found = _files_cache[cache_key] = _db_files(storage_root(), normalize_name(db_name))
    return found


def _db_files(root: str, name: str) -> DbFiles:
    base = os.path.join(root, *name.split("/"))
    private = os.path.join(root, PRIVATE_FOLDER, encode_name(name))
    return DbFiles(
        name=name,
        json=base + JSON_SUFFIX,
        ddb=base + DDB_SUFFIX,
        private=private,
        journal=os.path.join(private, "journal"),
        index=os.path.join(private, "index"),
        spare=os.path.join(private, SPARE_FILE),
    )


# ---------------------------------------------------------------------------------------
# Descriptors that hold kernel locks


#: Descriptors that hold (or are about to hold) a ``flock``. A child made by ``fork`` shares
#: them with its parent, and a ``flock`` lives until every copy is closed; the child therefore
#: closes its copies right after the fork.
_lock_holding_fds: Set[int] = set()

# Remember / forget such a descriptor. (The set's own methods: these run on every commit,
# and a bound method of a set is several times cheaper to call than a function.)
track_lock_fd: Callable[[int], None] = _lock_holding_fds.add
untrack_lock_fd: Callable[[int], None] = _lock_holding_fds.discard


def _close_inherited_lock_fds() -> None:
    for fd in list(_lock_holding_fds):
        with contextlib.suppress(OSError):
            os.close(fd)
    _lock_holding_fds.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited_lock_fds)


# ---------------------------------------------------------------------------------------
# Temporary files


_temp_counter = 0


#: The file in a private folder whose kernel ``flock`` is the database's lock (``locking``).
#: A size above zero also says "there may be leftovers to clean up": temporary files or a
#: journal made since the last clean-up (see :func:`mark_leftovers`).
KERNEL_LOCK_FILE = "kernel"
#: The name of spare files in a private folder (``spare``, and ``spare.<kernel inode>`` for
#: the holders of a write lock; see ``io_bytes._commit_through_spare``).
SPARE_FILE = "spare"


def mark_leftovers(folder: str) -> None:
    """Note in ``folder`` that a temporary file or a journal is about to be made.

    Lock holders look for leftovers of dead processes only when the mark is there, so the
    common case costs no directory listing. Make the mark before the file, so that a crash
    in between cannot leave an unmarked leftover.
    """
    marker = os.path.join(folder, KERNEL_LOCK_FILE)
    try:
        os.truncate(marker, 1)
    except FileNotFoundError:
        with contextlib.suppress(FileNotFoundError):  # no folder yet: no leftovers either
            os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | O_CLOEXEC, 0o644))
            os.truncate(marker, 1)


def temp_path(folder: str) -> str:
    """A fresh temporary file name in ``folder``; its name records the owner process.

    Marks the folder (:func:`mark_leftovers`), so that the next lock taken there sweeps the
    file away should its owner die before renaming or removing it.
    """
    global _temp_counter  # noqa: PLW0603 - a per-process counter; uniqueness comes from pid+token
    _temp_counter += 1
    mark_leftovers(folder)
    return os.path.join(folder, f"{os.getpid()}.{own_process_token()}.{_temp_counter}.tmp")


def sweep_dead_temp_files(folder: str) -> int:
    """Remove the temporary files in ``folder`` whose owner process is gone; return how many."""
    removed = 0
    try:
        entries = os.listdir(folder)
    except FileNotFoundError:
        return 0
    for entry in entries:
        parts = entry.split(".")
        if len(parts) != 4 or parts[3] != "tmp" or not parts[0].isdigit():
            continue
        if process_is_alive(int(parts[0]), parts[1]):
            continue
        try:
            os.unlink(os.path.join(folder, entry))
            removed += 1
        except FileNotFoundError:
            pass
    return removed


# ---------------------------------------------------------------------------------------
# File facts


class FileInfo:
    """What exists on disk for one database name.

    Unpacks as ``(json_path, json_exists, ddb_path, ddb_exists)``. ``size_bytes``,
    ``created_time`` and ``modified_time`` (seconds since the epoch) describe the existing
    data file (``None`` when there is none; ``created_time`` is the inode change time where
    the platform has no birth time). The object is falsy when no data file exists (a folder
    of that name alone does not count).
    """

    __slots__ = (
        "created_time",
        "ddb_exists",
        "ddb_path",
        "is_directory",
        "is_file",
        "json_exists",
        "json_path",
        "modified_time",
        "size_bytes",
    )

    def __init__(self, db_name: str) -> None:
        self.json_path, self.ddb_path = data_paths(db_name)
        self.json_exists = os.path.isfile(self.json_path)
        self.ddb_exists = os.path.isfile(self.ddb_path)
        self.is_directory = os.path.isdir(_resolve_relative_path(db_name))
        self.is_file = self.json_exists or self.ddb_exists
        self.size_bytes: Optional[int] = None
        self.created_time: Optional[float] = None
        self.modified_time: Optional[float] = None
        if self.is_file:
            stat = os.stat(self.json_path if self.json_exists else self.ddb_path)
            self.size_bytes = stat.st_size
            self.modified_time = stat.st_mtime
            self.created_time = getattr(stat, "st_birthtime", stat.st_ctime)

    def __iter__(self):
        return iter((self.json_path, self.json_exists, self.ddb_path, self.ddb_exists))

    def __bool__(self) -> bool:
        return self.is_file

    def __repr__(self) -> str:
        return (
            f"FileInfo(json_path={self.json_path!r}, json_exists={self.json_exists}, "
            f"ddb_path={self.ddb_path!r}, ddb_exists={self.ddb_exists}, size_bytes={self.size_bytes})"
        )


def file_info(db_name: str) -> FileInfo:
    """Return a :class:`FileInfo` for ``db_name``."""
    return FileInfo(db_name)


def file_exists(db_name: str) -> bool:
    """Tell whether the database file exists (as ``.json`` or ``.ddb``)."""
    json_path, ddb_path = data_paths(db_name)
    return os.path.isfile(json_path) or os.path.isfile(ddb_path)


def find_all(pattern: str) -> List[str]:
    """Return the sorted database names matching ``pattern``, a name whose last segment
    may hold ``*`` wildcards, for example ``find_all("users/*")``. Not recursive."""
    return sorted(find_all_forms(pattern))


def find_all_forms(pattern: str) -> Dict[str, Tuple[bool, bool]]:
    """Like :func:`find_all`, with ``(json exists, ddb exists)`` for each name, as listed."""
    name = normalize_name(pattern)
    folder, _, file_pattern = name.rpartition("/")
    folder_path = os.path.join(storage_root(), *folder.split("/")) if folder else storage_root()
    try:
        entries = os.listdir(folder_path)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    matcher = re.compile(".*".join(re.escape(part) for part in file_pattern.split("*")), re.DOTALL)
    found: Dict[str, Tuple[bool, bool]] = {}
    for entry in entries:
        # (Not os.path.splitext: this loop runs once per file of the folder.)
        if entry.endswith(JSON_SUFFIX):
            stem, suffix = entry[: -len(JSON_SUFFIX)], JSON_SUFFIX
        elif entry.endswith(DDB_SUFFIX):
            stem, suffix = entry[: -len(DDB_SUFFIX)], DDB_SUFFIX
        else:
            continue
        if not stem.strip("."):  # no name, or only dots (as os.path.splitext sees it)
            continue
        if folder == "" and stem == PRIVATE_FOLDER:
            continue
        if matcher.fullmatch(stem):
            key = f"{folder}/{stem}" if folder else stem
            has_json, has_ddb = found.get(key, (False, False))
            found[key] = (has_json or suffix == JSON_SUFFIX, has_ddb or suffix == DDB_SUFFIX)
    return found


# ---------------------------------------------------------------------------------------
# Process identity (used to tell dead lock owners from live ones)


def process_start_token(pid: int) -> Optional[str]:
    """A token that differs between two processes that had the same pid.

    On Linux it is the process start time in clock ticks since boot (from /proc). Returns
    ``None`` when the process does not exist or is a zombie, and ``"0"`` where the platform
    offers no such token.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except FileNotFoundError:
        if sys.platform.startswith("linux"):
            return None
        return "0" if _pid_exists(pid) else None
    except OSError:
        return "0" if _pid_exists(pid) else None
    # The command name may hold spaces and parentheses; fields resume after the last ')'.
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[0] == b"Z":  # a zombie has exited; it only waits to be reaped
        return None
    return fields[19].decode("ascii")


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_own_token: Optional[Tuple[int, str]] = None


def own_process_token() -> str:
    """The start token of this process (cached; recomputed after ``fork``)."""
    global _own_token  # noqa: PLW0603 - a per-process cache, reset by the pid check
    pid = os.getpid()
    if _own_token is None or _own_token[0] != pid:
        _own_token = (pid, process_start_token(pid) or "0")
    return _own_token[1]


def process_is_alive(pid: int, token: str) -> bool:
    """Tell whether the process ``pid`` that had start token ``token`` still runs."""
    if pid == os.getpid():
        return token == own_process_token()
    current = process_start_token(pid)
    if current is None:
        return False
    return token in ("0", current) or current == "0"


# ---------------------------------------------------------------------------------------
# Byte-level helpers (spec names)


def seek_index_through_value_bytes(json_bytes: bytes, index: int) -> int:
    """Return the index just past the JSON value that starts at ``index``.

    Leading whitespace at ``index`` is skipped. Strings are skipped whole, so brackets and
    quotes inside them do not count.
    """
    return byte_codes.seek_value_end(json_bytes, byte_codes.skip_whitespace(json_bytes, index))


def find_outermost_key_in_json_bytes(json_bytes: bytes, key: str) -> Tuple[int, int]:
    """Find ``"key":`` in the outermost object of ``json_bytes``.

    Returns ``(start, end)``: ``start`` is the key's opening quote, ``end`` is just past the
    colon. Returns ``(-1, -1)`` when the outermost object has no such key (nested keys of
    the same name do not count) or the bytes are not a JSON object.
    """
    try:
        for key_start, key_end, _, _ in byte_codes.iter_top_level_items(json_bytes):
            if byte_codes.decode_key(json_bytes, key_start, key_end) == key:
                colon = byte_codes.skip_whitespace(json_bytes, key_end)
                return key_start, colon + 1
    except ValueError:
        return -1, -1
    return -1, -1


def detect_indentation_in_json_bytes(json_bytes: bytes, index: int) -> Tuple[int, str]:
    """Return ``(indent_level, indent_with)`` of the line holding byte ``index``.

    ``indent_with`` is one indentation unit: a tab, or the run of spaces of the first
    indented line of the document. A line without indentation gives ``(0, "")``.
    """
    line_start = json_bytes.rfind(b"\n", 0, index) + 1
    end = line_start
    while end < index and json_bytes[end] in (byte_codes.SPACE, byte_codes.TAB):
        end += 1
    whitespace = bytes(json_bytes[line_start:end]).decode("ascii")
    if not whitespace:
        return 0, ""
    if whitespace[0] == "\t":
        return len(whitespace), "\t"
    unit = _first_space_unit(json_bytes) or whitespace
    return max(1, len(whitespace) // len(unit)), unit


def _first_space_unit(json_bytes: bytes) -> Optional[str]:
    match = re.search(rb"\n( +)\S", json_bytes)
    return match.group(1).decode("ascii") if match else None
