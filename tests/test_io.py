"""io_bytes, io_safe, io_unsafe, and corrupted files."""

from __future__ import annotations

import json
import zlib

import pytest
from ddb_test_helpers import (
    current_canonical,
    ddb_path,
    disk_bytes,
    json_path,
    padding_size,
    raw_json,
    write_json_file,
)

import dictdatabase as DDB
from dictdatabase import errors, io_bytes, io_safe, io_unsafe

# ---------------------------------------------------------------------------
# io_bytes


def test_io_bytes_write_and_read():
    io_bytes.write("test_file", b"Hello World")
    assert io_bytes.read("test_file") == b"Hello World"
    assert json_path("test_file").read_bytes() == b"Hello World"


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, 5, b"Hello"),
        (6, None, b"World"),
        (None, 5, b"Hello"),
        (None, None, b"Hello World"),
        (3, 8, b"lo Wo"),
        (11, None, b""),
    ],
)
def test_io_bytes_read_range(start, end, expected):
    io_bytes.write("test_file", b"Hello World")
    assert io_bytes.read("test_file", start=start, end=end) == expected


def test_io_bytes_write_at_start_truncates():
    io_bytes.write("f", b"Hello World")
    io_bytes.write("f", b"XY", start=5)
    assert io_bytes.read("f") == b"HelloXY"
    io_bytes.write("f", b"", start=2)
    assert io_bytes.read("f") == b"He"


def test_io_bytes_write_at_start_can_extend():
    io_bytes.write("f", b"abc")
    io_bytes.write("f", b"defgh", start=3)
    assert io_bytes.read("f") == b"abcdefgh"


def test_io_bytes_write_without_start_replaces():
    io_bytes.write("f", b"a long first content")
    io_bytes.write("f", b"short")
    assert io_bytes.read("f") == b"short"


def test_io_bytes_write_in_subfolder_creates_it():
    io_bytes.write("a/b/c", b"{}")
    assert json_path("a/b/c").read_bytes() == b"{}"


def test_io_bytes_read_missing_is_file_not_found():
    with pytest.raises(FileNotFoundError):
        io_bytes.read("missing")


def test_io_bytes_read_of_compressed_file_is_decompressed():
    DDB.config.use_compression = True
    DDB.at("c").create({"b": 1, "a": [1, 2]})
    assert ddb_path("c").exists()
    expected = current_canonical({"a": [1, 2], "b": 1})
    assert io_bytes.read("c") == expected
    assert io_bytes.read("c", start=0, end=5) == expected[:5]
    DDB.config.use_compression = False
    assert io_bytes.read("c") == expected


def test_io_bytes_write_with_compression_makes_ddb():
    DDB.config.use_compression = True
    io_bytes.write("c", b'{"a": 1}')
    assert zlib.decompress(ddb_path("c").read_bytes()) == b'{"a": 1}'
    assert io_bytes.read("c") == b'{"a": 1}'


@pytest.mark.parametrize("compression_now", [True, False])
def test_io_bytes_write_at_start_into_compressed_is_runtime_error(compression_now):
    DDB.config.use_compression = True
    DDB.at("c").create({"a": 1})
    before = ddb_path("c").read_bytes()
    DDB.config.use_compression = compression_now
    with pytest.raises(RuntimeError):
        io_bytes.write("c", b"2}", start=6)
    assert ddb_path("c").read_bytes() == before
    assert not json_path("c").exists()


# ---------------------------------------------------------------------------
# io_safe


def test_io_safe_write_read_partial_read_delete():
    io_safe.write("s", {"u1": {"name": "Alice"}, "u2": None})
    assert io_safe.read("s") == {"u1": {"name": "Alice"}, "u2": None}
    assert raw_json("s") == current_canonical({"u1": {"name": "Alice"}, "u2": None})
    assert io_safe.partial_read("s", "u1") == {"name": "Alice"}
    assert io_safe.partial_read("s", key="u1") == {"name": "Alice"}
    io_safe.delete("s")
    assert io_safe.read("s") is None
    assert not json_path("s").exists()


def test_io_safe_missing_file_reads_none():
    assert io_safe.read("missing") is None
    assert io_safe.partial_read("missing", "k") is None


def test_io_safe_missing_key_reads_none():
    io_safe.write("s", {"a": 1})
    assert io_safe.partial_read("s", "b") is None


def test_io_safe_delete_missing_is_no_op():
    io_safe.delete("missing")
    assert not json_path("missing").exists()


def test_io_safe_write_unserialisable_raises():
    io_safe.write("s", {"a": 1})
    before = disk_bytes("s")
    with pytest.raises(errors.SerializationError):
        io_safe.write("s", {"a": {1, 2}})
    assert disk_bytes("s") == before


# ---------------------------------------------------------------------------
# io_unsafe


def _count_sessions(name: str, rounds: int) -> None:
    for number in range(rounds):
        with DDB.at(name).session() as (session, data):
            data["n"] += 1
            session.write()
        with DDB.at(name, key="n").session() as (session, _value):
            session.data = number * 2 + 2
            session.write()


def test_writes_where_the_storage_cannot_exchange_files(monkeypatch):
    """A storage file system that refuses renameat2(RENAME_EXCHANGE) (the probe at import ran
    on the temporary folder's): writes fall back to a rename, and each commit tries the
    exchange once (the fallback leaves no spare behind, so nothing is written twice)."""
    DDB.at("db").create({"n": 0})
    calls = []

    def refuse(first: str, second: str) -> None:
        calls.append(first)
        raise OSError(18, "Invalid cross-device link", second)  # EXDEV, as from an overlay

    monkeypatch.setattr(io_bytes, "_exchange", refuse)
    _count_sessions("db", 3)
    assert DDB.at("db").read() == {"n": 6}
    assert len(calls) == 6


def test_writes_where_there_is_no_exchange_at_all(monkeypatch):
    """Systems without renameat2 (not Linux): a fresh temporary file is renamed over the file."""
    DDB.at("db").create({"n": 0})
    monkeypatch.setattr(io_bytes, "_exchange", None)
    _count_sessions("db", 3)
    assert DDB.at("db").read() == {"n": 6}


def test_io_unsafe_write_read_partial_read():
    io_unsafe.write("u", {"b": [1, 2], "a": "x{y"})
    assert raw_json("u") == current_canonical({"a": "x{y", "b": [1, 2]})
    assert io_unsafe.read("u") == {"a": "x{y", "b": [1, 2]}
    assert io_unsafe.partial_read("u", "a") == "x{y"
    assert io_unsafe.partial_read("u", "b") == [1, 2]


def test_io_unsafe_partial_read_large_file():
    data = {"a": 1, "m": "p" * padding_size(), "z": {"k": "v"}}
    io_unsafe.write("big", data)
    assert io_unsafe.partial_read("big", "z") == {"k": "v"}
    assert io_unsafe.partial_read("big", "a") == 1


def test_io_unsafe_partial_file_handle_round_trip():
    data = {"a": {"n": 1}, "b": [1, 2, 3], "c": "text"}
    io_unsafe.write("u", data)
    before = raw_json("u")
    handle = io_unsafe.get_partial_file_handle("u", "b")
    io_unsafe.partial_write(handle)
    assert raw_json("u") == before
    assert io_unsafe.read("u") == data


# ---------------------------------------------------------------------------
# corrupted files


CORRUPT_JSON = [
    pytest.param(b'{"a": 1,', id="truncated"),
    pytest.param(b"", id="empty"),
    pytest.param(b'{"a": 1} trailing', id="trailing-garbage"),
    pytest.param(b"\x00\x00\x00\x00", id="nul-bytes"),
    pytest.param(b"{'a': 1}", id="single-quotes"),
    pytest.param(b'{"a": }', id="missing-value"),
]


def _assert_corrupted(info, filename: str) -> None:
    exc = info.value
    assert isinstance(exc, errors.CorruptedFileError)
    assert isinstance(exc, json.JSONDecodeError)
    assert isinstance(exc, errors.DatabaseError)
    assert filename in str(exc)


@pytest.mark.parametrize("content", CORRUPT_JSON)
def test_corrupted_json_full_read(content):
    write_json_file("bad", content)
    with pytest.raises(errors.CorruptedFileError) as info:
        DDB.at("bad").read()
    _assert_corrupted(info, "bad.json")
    assert json_path("bad").read_bytes() == content


@pytest.mark.parametrize("content", CORRUPT_JSON)
def test_corrupted_json_key_read(content):
    write_json_file("bad", content)
    with pytest.raises(errors.CorruptedFileError) as info:
        DDB.at("bad", key="a").read()
    _assert_corrupted(info, "bad.json")


@pytest.mark.parametrize("content", CORRUPT_JSON)
def test_corrupted_json_where_read_and_io_safe(content):
    write_json_file("bad", content)
    with pytest.raises(errors.CorruptedFileError):
        DDB.at("bad", where=lambda k, v: True).read()
    with pytest.raises(errors.CorruptedFileError):
        io_safe.read("bad")


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda: DDB.at("bad", key="a").session(), id="key-session"),
        pytest.param(lambda: DDB.at("bad").session(), id="full-session"),
        pytest.param(lambda: DDB.at("bad", where=lambda k, v: True).session(), id="where-session"),
    ],
)
@pytest.mark.parametrize("content", CORRUPT_JSON)
def test_failing_session_on_corrupted_file_leaves_it_untouched(content, write):
    path = write_json_file("bad", content)
    with pytest.raises(errors.CorruptedFileError) as info, write() as (session, _):
        session.write()
    _assert_corrupted(info, "bad.json")
    assert path.read_bytes() == content


@pytest.mark.parametrize("content", CORRUPT_JSON)
def test_key_delete_and_update_on_corrupted_file_leave_it_untouched(content):
    path = write_json_file("bad", content)
    with pytest.raises(errors.CorruptedFileError):
        DDB.at("bad", key="a").delete()
    assert path.read_bytes() == content
    with pytest.raises(errors.CorruptedFileError):
        DDB.at("bad").update({"a": 2})
    assert path.read_bytes() == content


def test_truncated_large_file_is_corrupted_and_untouched():
    data = {"a": {"n": 1}, "m": "p" * padding_size(), "z": {"n": 2}}
    DDB.at("big").create(data)
    assert DDB.at("big", key="z").read() == {"n": 2}
    content = json_path("big").read_bytes()[:-10]
    json_path("big").write_bytes(content)
    with pytest.raises(errors.CorruptedFileError) as info:
        DDB.at("big").read()
    _assert_corrupted(info, "big.json")
    with pytest.raises(errors.CorruptedFileError), DDB.at("big", key="a").session() as (session, value):
        value["n"] = 2
        session.write()
    assert json_path("big").read_bytes() == content


CORRUPT_ZLIB = [
    pytest.param(b"not zlib at all", id="garbage"),
    pytest.param(zlib.compress(b'{"a": 1, "b": 2}')[:-6], id="truncated-stream"),
    pytest.param(b"x\x9c" + b"\xff" * 20, id="bad-deflate"),
    pytest.param(b"", id="empty"),
]


@pytest.mark.parametrize("content", CORRUPT_ZLIB)
def test_corrupted_zlib(content):
    path = ddb_path("bad")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    with pytest.raises(errors.CorruptedFileError) as info:
        DDB.at("bad").read()
    _assert_corrupted(info, "bad.ddb")
    with pytest.raises(errors.CorruptedFileError) as info:
        DDB.at("bad", key="a").read()
    _assert_corrupted(info, "bad.ddb")
    with pytest.raises(errors.CorruptedFileError), DDB.at("bad", key="a").session() as (session, _):
        session.write()
    assert path.read_bytes() == content


def test_valid_zlib_with_invalid_json_inside():
    path = write_json_file("bad", b'{"a": [1, 2', compressed=True)
    before = path.read_bytes()
    with pytest.raises(errors.CorruptedFileError) as info:
        DDB.at("bad").read()
    _assert_corrupted(info, "bad.ddb")
    with pytest.raises(errors.CorruptedFileError):
        DDB.at("bad", key="a").read()
    assert path.read_bytes() == before


def test_corrupted_file_in_folder_read():
    DDB.at("docs", "good").create({"a": 1})
    write_json_file("docs/bad", b"{nope")
    with pytest.raises(errors.CorruptedFileError) as info:
        DDB.at("docs", "*").read()
    _assert_corrupted(info, "bad.json")
