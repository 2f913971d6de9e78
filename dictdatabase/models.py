"""``at()``: choose a file, a key, a filtered part, or the files of a folder.

``DDB.at("users")`` selects a file, ``DDB.at("users", key="u1")`` one top-level key,
``DDB.at("users", where=lambda k, v: ...)`` the top-level items a callback accepts, and
``DDB.at("purchases", "*")`` (or ``"purchases/*"``) every file of a folder. The returned
:class:`DDBMethodChooser` offers ``exists``, ``create``, ``delete``, ``read``, ``update``,
``read_all`` and ``session``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from . import errors, io_bytes, io_safe, io_unsafe, sessions, utils

__all__ = ["DDBMethodChooser", "at"]

PathPart = Union[str, Sequence[str]]
Where = Callable[[Any, Any], bool]
AsType = Optional[Callable[[Any], Any]]


class DDBMethodChooser:
    """The operations available on what ``at()`` selected."""

    __slots__ = ("_is_folder", "key", "path", "where")

    def __init__(self, path: str, key: Optional[str] = None, where: Optional[Where] = None) -> None:
        self.path = path
        self.key = key
        self.where = where
        self._is_folder = utils.has_glob(path)

    def __repr__(self) -> str:
        extra = f", key={self.key!r}" if self.key is not None else ", where=..." if self.where else ""
        return f"DDB.at({self.path!r}{extra})"

    def _refuse(self, operation: str, *, key: bool = True, where: bool = True, folder: bool = True) -> None:
        if key and self.key is not None:
            msg = f"{operation}() cannot be used with key= ({self!r}); select the whole file"
            raise RuntimeError(msg)
        if where and self.where is not None:
            msg = f"{operation}() cannot be used with where= ({self!r}); select the whole file"
            raise RuntimeError(msg)
        if folder and self._is_folder:
            msg = f"{operation}() cannot be used on a folder pattern ({self!r}); select one file"
            raise RuntimeError(msg)

    # -- queries -----------------------------------------------------------------------

    def exists(self) -> bool:
        """Does the file exist / does it have the key (a stored ``null`` counts) / does the
        folder pattern match any file? Raises ``RuntimeError`` with ``where``."""
        if self.where is not None:
            msg = f"exists() cannot be used with where= ({self!r}); read() and check the result"
            raise RuntimeError(msg)
        if self._is_folder:
            return bool(utils.find_all(self.path))
        if self.key is not None:
            return io_safe.key_exists(self.path, self.key)
        return utils.file_exists(self.path)

    def read(self, as_type: AsType = None, *, force: bool = False) -> Any:
        """Read the selection; ``None`` when the file (or key) does not exist.

        - a file: its data; a key: its value (top-level keys only);
        - ``where``: ``{k: v}`` of the items with ``where(k, as_type(v))`` true;
        - a folder pattern: ``{file name: data}`` (names without folder and extension).

        ``as_type`` is applied to the result as ``as_type(result)``. ``force=True`` reads
        without waiting for locks (for recovery tools).
        """
        if self._is_folder:
            return self._read_folder(as_type, force=force)
        if self.key is not None:
            files = utils.db_files(self.path)
            try:
                value = io_unsafe.lookup(files, self.key, shared=not force)
            except io_bytes.JournalPending:
                value = io_safe.recovering(
                    self.path, lambda: io_unsafe.lookup(files, self.key, shared=not force)
                )
            return None if value is io_unsafe.MISSING else _cast(as_type, value)
        data = io_safe.read(self.path, force=force)
        if data is None:
            return None
        if self.where is not None:
            if not isinstance(data, dict):
                msg = f"Database {self.path!r} does not hold an object, so `where` has no items to filter"
                raise TypeError(msg)
            data = {k: v for k, v in data.items() if self.where(k, _cast(as_type, v))}
        return _cast(as_type, data)

    def _read_folder(self, as_type: AsType, *, force: bool) -> Dict[str, Any]:
        documents = {}
        shared = not force
        for name, listed in sorted(utils.find_all_forms(self.path).items()):
            files = utils.db_files(name)
            try:  # (io_safe.recovering, written out: this runs once per document)
                data = io_unsafe.load_listed(files, listed, shared=shared)
            except io_bytes.JournalPending:
                data = io_safe.recovering(
                    name,
                    lambda files=files, listed=listed: io_unsafe.load_listed(files, listed, shared=shared),
                )
            if data is io_unsafe.MISSING:
                continue  # deleted while we were reading the folder
            stem = name.rpartition("/")[2]
            if self.where is None or self.where(stem, _cast(as_type, data)):
                documents[stem] = data
        return _cast(as_type, documents)

    def read_all(self) -> Dict[str, Any]:
        """``{file name: data}`` of every file in the folder ``path`` (Node 29)."""
        self._refuse("read_all", folder=False)
        pattern = self.path if self._is_folder else f"{self.path}/*"
        return DDBMethodChooser(pattern).read()

    # -- changes -----------------------------------------------------------------------

    def create(self, data: Any = None, force_overwrite: bool = False) -> None:
        """Create the file with ``data`` (default ``{}``).

        Raises ``FileExistsError`` if it exists, unless ``force_overwrite``; ``RuntimeError``
        with ``key``, ``where`` or a folder pattern.
        """
        self._refuse("create")
        payload = io_unsafe.serialize({} if data is None else data)
        files = utils.db_files(self.path)
        with io_safe.write_locked(self.path) as lock:
            if not force_overwrite and utils.file_exists(self.path):
                msg = (
                    f"Database {files.name!r} already exists; pass force_overwrite=True to replace it, "
                    "or use a session to change it"
                )
                raise errors.FileExistsError(msg)
            io_unsafe.write_payload(files, payload, fence=lock.commit_guard)

    def delete(self) -> None:
        """Delete the file; with ``key`` that key, with ``where`` the matching items, with a
        folder pattern every matching file. Deleting what does not exist does nothing."""
        if self._is_folder:
            for name in utils.find_all(self.path):
                if self.where is not None:
                    data = io_safe.read(name)
                    if data is None or not self.where(name.rpartition("/")[2], data):
                        continue
                io_safe.delete(name)
            return
        if self.key is None and self.where is None:
            io_safe.delete(self.path)
            return
        files = utils.db_files(self.path)
        with io_safe.write_locked(self.path) as lock:
            _, data = io_unsafe.raw_snapshot(files)
            if not isinstance(data, dict):
                return
            if self.key is not None:
                doomed: List[str] = [self.key] if self.key in data else []
            else:
                doomed = [k for k, v in data.items() if self.where(k, v)]
            if doomed:
                for key in doomed:
                    del data[key]
                io_unsafe.write_payload(files, io_unsafe.serialize(data), fence=lock.commit_guard)

    def update(self, mapping: Dict[str, Any]) -> None:
        """Merge ``mapping`` into the file's top level under the write lock; create the
        file when it does not exist (Nodes 26-27)."""
        self._refuse("update")
        if not isinstance(mapping, dict):
            msg = f"update() takes a dict, got {type(mapping).__name__}"
            raise TypeError(msg)
        io_unsafe.serialize(mapping)  # reject bad data before taking the lock
        files = utils.db_files(self.path)
        with io_safe.write_locked(self.path) as lock:
            _, data = io_unsafe.raw_snapshot(files)
            if data is None:
                data = {}
            if not isinstance(data, dict):
                msg = f"Database {files.name!r} does not hold an object; update() cannot merge into it"
                raise TypeError(msg)
            data.update(mapping)
            io_unsafe.write_payload(files, io_unsafe.serialize(data), fence=lock.commit_guard)

    def session(self, as_type: AsType = None, *, optimistic: bool = False) -> sessions.SessionBase:
        """Start a session on the selection (see :mod:`dictdatabase.sessions`)."""
        if self._is_folder:
            if self.where is not None:
                return sessions.SessionDirWhere(self.path, self.where, as_type, optimistic=optimistic)
            return sessions.SessionDirFull(self.path, as_type, optimistic=optimistic)
        if self.key is not None:
            return sessions.SessionFileKey(self.path, self.key, as_type, optimistic=optimistic)
        if self.where is not None:
            return sessions.SessionFileWhere(self.path, self.where, as_type, optimistic=optimistic)
        return sessions.SessionFileFull(self.path, as_type, optimistic=optimistic)


def _cast(as_type: AsType, value: Any) -> Any:
    return value if as_type is None else as_type(value)


def _join(parts: Sequence[PathPart]) -> str:
    pieces: List[str] = []
    for part in parts:
        if isinstance(part, str):
            pieces.append(part)
        elif isinstance(part, (list, tuple)) and all(isinstance(item, str) for item in part):
            pieces.extend(part)
        else:
            msg = f"at() takes path parts as str or lists of str, got {part!r}"
            raise TypeError(msg)
    return "/".join(pieces)


def at(*path: PathPart, key: Optional[str] = None, where: Optional[Where] = None) -> DDBMethodChooser:
    """Select a file, a key of it, a filtered part of it, or the files of a folder.

    Path parts (strings, or lists of strings) are joined with ``/``. ``key`` and ``where``
    exclude each other, and ``key`` cannot be used with a ``*`` pattern (``TypeError``).
    Names that escape the storage directory raise ``errors.InvalidNameError`` (a ``ValueError``).
    """
    # One plain string is by far the most common call: it needs no joining.
    name = utils.normalize_name(path[0] if len(path) == 1 and type(path[0]) is str else _join(path))
    chooser = DDBMethodChooser(name, key, where)
    if key is not None:
        if where is not None:
            msg = f"at({name!r}) takes key= or where=, not both"
            raise TypeError(msg)
        if chooser._is_folder:  # noqa: SLF001 - same module
            msg = f"at({name!r}) selects several files; key= needs a single file"
            raise TypeError(msg)
        if not isinstance(key, str):
            msg = f"key must be a str (JSON object keys are strings), got {key!r}"
            raise TypeError(msg)
    elif where is not None and not callable(where):
        msg = f"where must be a callable taking (key, value), got {where!r}"
        raise TypeError(msg)
    return chooser
