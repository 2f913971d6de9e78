"""Helpers shared by the core test modules (imported as a plain module; conftest puts this
folder on sys.path so that it works with every pytest import mode).

Everything here looks at the storage directory from the outside: the tests never ask the
library for the bytes they check.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

import dictdatabase as DDB

INDENTS = (None, 0, 2, 4, "\t")


def canonical_bytes(data: Any, *, use_orjson: bool, indent: Any) -> bytes:
    """The exact bytes ruling 3 prescribes for ``data`` under these settings."""
    if use_orjson:
        option = orjson.OPT_SORT_KEYS | (orjson.OPT_INDENT_2 if indent else 0)
        return orjson.dumps(data, option=option)
    return json.dumps(data, indent=indent, sort_keys=True).encode("utf-8")


def current_canonical(data: Any) -> bytes:
    """Canonical bytes of ``data`` for the settings currently in ``DDB.config``."""
    return canonical_bytes(data, use_orjson=DDB.config.use_orjson, indent=DDB.config.indent)


def storage_dir() -> Path:
    return Path(os.path.abspath(DDB.config.storage_directory))


def json_path(name: str) -> Path:
    return storage_dir() / f"{name}.json"


def ddb_path(name: str) -> Path:
    return storage_dir() / f"{name}.ddb"


def data_file(name: str) -> Path:
    """The one data file of ``name``; fails if there is none or if both forms exist."""
    j, d = json_path(name), ddb_path(name)
    assert j.exists() != d.exists(), f"expected exactly one of {j} / {d}; json={j.exists()} ddb={d.exists()}"
    return j if j.exists() else d


def disk_bytes(name: str) -> bytes:
    """The bytes on disk, as stored (compressed for .ddb)."""
    return data_file(name).read_bytes()


def raw_json(name: str) -> bytes:
    """The JSON bytes of ``name``: the .json file, or the zlib-decompressed .ddb file."""
    path = data_file(name)
    content = path.read_bytes()
    return zlib.decompress(content) if path.suffix == ".ddb" else content


def write_json_file(name: str, content: bytes, *, compressed: bool = False) -> Path:
    """Put ``content`` into the storage directory behind the library's back."""
    path = ddb_path(name) if compressed else json_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zlib.compress(content) if compressed else content)
    return path


def padding_size() -> int:
    """A size comfortably above the small-file threshold (files below it may be parsed whole)."""
    from dictdatabase import io_unsafe

    threshold = getattr(io_unsafe, "SMALL_FILE_BYTES", 64 * 1024)
    return max(threshold, 64 * 1024) + 8 * 1024


@dataclass(frozen=True)
class Fmt:
    """One combination of the three format settings."""

    use_compression: bool
    use_orjson: bool
    indent: Any

    def apply(self) -> None:
        DDB.config.use_compression = self.use_compression
        DDB.config.use_orjson = self.use_orjson
        DDB.config.indent = self.indent

    def encode(self, data: Any) -> bytes:
        return canonical_bytes(data, use_orjson=self.use_orjson, indent=self.indent)

    @property
    def ext(self) -> str:
        return ".ddb" if self.use_compression else ".json"

    @property
    def other_ext(self) -> str:
        return ".json" if self.use_compression else ".ddb"

    @property
    def id(self) -> str:
        return (
            f"{'zlib' if self.use_compression else 'plain'}-"
            f"{'orjson' if self.use_orjson else 'json'}-indent{self.indent!r}"
        )


ALL_FMTS = tuple(
    Fmt(use_compression=c, use_orjson=o, indent=i)
    for c in (False, True)
    for o in (True, False)
    for i in INDENTS
)


def find_index_files() -> list:
    """Index files in the private ``.ddb`` folder (docs/architecture.md: ``.ddb/<encoded name>/index``)."""
    root = storage_dir() / ".ddb"
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("index") if p.is_file())
