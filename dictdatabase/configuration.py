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

    __slots__ = ("indent", "storage_directory", "use_compression", "use_fsync", "use_orjson")

    # Every operation reads several settings, so they are plain attributes (a read costs
    # no function call); assignments are checked in ``__setattr__``.
    storage_directory: str
    indent: IndentSetting
    use_compression: bool
    use_orjson: bool
    use_fsync: bool

    def __init__(self) -> None:
        self.storage_directory = "ddb_storage"
        self.indent = "\t"
        self.use_compression = False
        self.use_orjson = True
        self.use_fsync = False

    def __setattr__(self, name: str, value: object) -> None:
        check = _CHECKS.get(name)
        if check is None:
            msg = f"config has no setting {name!r}; the settings are {', '.join(sorted(_CHECKS))}"
            raise AttributeError(msg)
        object.__setattr__(self, name, check(name, value))

    def __repr__(self) -> str:
        return (
            f"Confuguration(storage_directory={self.storage_directory!r}, indent={self.indent!r}, "
            f"use_compression={self.use_compression!r}, use_orjson={self.use_orjson!r}, "
            f"use_fsync={self.use_fsync!r})"
        )


def _storage_directory(name: str, value: object) -> str:
    import os  # noqa: PLC0415 - keeps the module import-light; runs rarely

    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        msg = f"config.{name} must be a non-empty path string, got {value!r}"
        raise TypeError(msg)
    return value


def _indent(name: str, value: object) -> IndentSetting:
    if isinstance(value, bool) or not (value is None or isinstance(value, (int, str))):
        msg = f"config.{name} must be None, an int >= 0 or a string of spaces/tabs, got {value!r}"
        raise TypeError(msg)
    if isinstance(value, int) and value < 0:
        msg = f"config.{name} must not be negative, got {value!r}"
        raise ValueError(msg)
    if isinstance(value, str) and value.strip(" \t"):
        msg = f"config.{name} as a string may only hold spaces and tabs, got {value!r}"
        raise ValueError(msg)
    return value


def _require_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        msg = f"config.{name} must be True or False, got {value!r}"
        raise TypeError(msg)
    return value


_CHECKS = {
    "storage_directory": _storage_directory,
    "indent": _indent,
    "use_compression": _require_bool,
    "use_orjson": _require_bool,
    "use_fsync": _require_bool,
}

config = Confuguration()
