"""Process-wide settings. ``dictdatabase.config`` is the one instance everybody reads.

Settings are read at call time by every operation, so changing them takes effect for the
next operation. They are per process: a child process started with ``spawn`` starts from
the defaults and must set them itself.
"""

from __future__ import annotations

from typing import Union

__all__ = ["Confuguration", "config"]

IndentSetting = Union[None, int, str]


class Confuguration:
    """The settings of DictDataBase (the class name keeps the spec's spelling).

    - ``storage_directory``: folder of all databases, default ``"ddb_storage"``. A relative
      path is resolved against the current working directory when it is used. The folder is
      created by the first write.
    - ``indent``: ``None`` (compact), an ``int`` >= 0 or a string of spaces/tabs; default
      ``"\\t"``. With orjson, any truthy indent means orjson's 2-space indentation.
    - ``use_compression``: write zlib-compressed ``.ddb`` files instead of ``.json``; default
      ``False``. Reading detects the format by content, whatever this says.
    - ``use_orjson``: encode with orjson (fast) instead of the json module; default ``True``.
    - ``use_fsync``: fsync files, journals and folders on every write so that acknowledged
      writes survive power loss; default ``False`` (writes already survive process crashes).
    """

    __slots__ = ("_indent", "_storage_directory", "_use_compression", "_use_fsync", "_use_orjson")

    def __init__(self) -> None:
        self.storage_directory = "ddb_storage"
        self.indent = "\t"
        self.use_compression = False
        self.use_orjson = True
        self.use_fsync = False

    @property
    def storage_directory(self) -> str:
        return self._storage_directory

    @storage_directory.setter
    def storage_directory(self, value: str) -> None:
        import os  # noqa: PLC0415 - keeps the module import-light; runs rarely

        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value:
            msg = f"config.storage_directory must be a non-empty path string, got {value!r}"
            raise TypeError(msg)
        self._storage_directory = value

    @property
    def indent(self) -> IndentSetting:
        return self._indent

    @indent.setter
    def indent(self, value: IndentSetting) -> None:
        if isinstance(value, bool) or not (value is None or isinstance(value, (int, str))):
            msg = f"config.indent must be None, an int >= 0 or a string of spaces/tabs, got {value!r}"
            raise TypeError(msg)
        if isinstance(value, int) and value < 0:
            msg = f"config.indent must not be negative, got {value!r}"
            raise ValueError(msg)
        if isinstance(value, str) and value.strip(" \t"):
            msg = f"config.indent as a string may only hold spaces and tabs, got {value!r}"
            raise ValueError(msg)
        self._indent = value

    @property
    def use_compression(self) -> bool:
        return self._use_compression

    @use_compression.setter
    def use_compression(self, value: bool) -> None:
        self._use_compression = _require_bool("use_compression", value)

    @property
    def use_orjson(self) -> bool:
        return self._use_orjson

    @use_orjson.setter
    def use_orjson(self, value: bool) -> None:
        self._use_orjson = _require_bool("use_orjson", value)

    @property
    def use_fsync(self) -> bool:
        return self._use_fsync

    @use_fsync.setter
    def use_fsync(self, value: bool) -> None:
        self._use_fsync = _require_bool("use_fsync", value)

    def __repr__(self) -> str:
        return (
            f"Confuguration(storage_directory={self.storage_directory!r}, indent={self.indent!r}, "
            f"use_compression={self.use_compression!r}, use_orjson={self.use_orjson!r}, "
            f"use_fsync={self.use_fsync!r})"
        )


def _require_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        msg = f"config.{name} must be True or False, got {value!r}"
        raise TypeError(msg)
    return value


config = Confuguration()
