"""The per-process read cache (``io_unsafe._ReadCache``) never serves replaced data.

Reads keep the JSON bytes of small files and of values of large files, and serve them again
only while ``os.stat`` of the data file shows the same inode, size, mtime and ctime. These
tests change files behind a warm cache in every way the library and other programs do, and
check that the next read sees the change.
"""

from __future__ import annotations

import multiprocessing
import os
import sys

import pytest

import dictdatabase as DDB
from dictdatabase import errors, io_unsafe

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ddb_workers as W

PADDING = {f"pad{i:05d}": "x" * 90 for i in range(1000)}  # ~100 KiB: a large file, index reads


@pytest.fixture(params=["small", "large"])
def size(request) -> str:
    return request.param


def make(size: str, counter: int = 0) -> dict:
    data = {"counter": {"n": counter}, "name": "Ann"}
    return dict(PADDING, **data) if size == "large" else data


def child_increments(storage: str, settings: dict, times: int) -> None:
    W.apply_settings(storage, settings)
    for _ in range(times):
        with DDB.at("db", key="counter").session() as (session, counter):
            counter["n"] += 1
            session.write()


def test_a_warm_read_sees_every_write_of_another_process(size):
    DDB.at("db").create(make(size))
    ctx = multiprocessing.get_context("fork")
    for round_number in range(1, 6):
        assert DDB.at("db", key="counter").read() == {"n": round_number - 1}  # warms the cache
        assert DDB.at("db").read()["counter"] == {"n": round_number - 1}
        storage = str(DDB.config.storage_directory)
        child = ctx.Process(target=child_increments, args=(storage, W.current_settings(), 1))
        child.start()
        child.join(30)
        assert child.exitcode == 0
        assert DDB.at("db", key="counter").read() == {"n": round_number}
        assert DDB.at("db").read()["counter"] == {"n": round_number}


def test_same_length_writes_in_quick_succession_are_all_seen(size):
    """Versions of equal length, written microseconds apart, each read right after."""
    DDB.at("db").create(make(size, 10))
    for n in range(11, 400):
        with DDB.at("db", key="counter").session() as (session, counter):
            counter["n"] = n  # same length for 11..99, then 100..399
            session.write()
        assert DDB.at("db", key="counter").read() == {"n": n}


def test_an_outside_edit_of_the_same_size_with_the_mtime_restored_is_seen(size):
    DDB.at("db").create(make(size))
    path = os.path.join(DDB.config.storage_directory, "db.json")
    assert DDB.at("db", key="name").read() == "Ann"
    assert DDB.at("db", key="name").read() == "Ann"  # served from the cache now
    assert any(path == cached for cached, _ in io_unsafe._cache.entries)
    before = os.stat(path)
    with open(path, "rb") as handle:
        raw = handle.read()
    with open(path, "r+b") as handle:  # in place: same inode, same size
        handle.write(raw.replace(b'"Ann"', b'"Bob"'))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size
    assert DDB.at("db", key="name").read() == "Bob"
    assert DDB.at("db").read()["name"] == "Bob"


@pytest.mark.parametrize("first_compressed", [False, True], ids=["json-then-ddb", "ddb-then-json"])
def test_both_forms_left_by_a_conversion_are_still_reported_on_a_warm_cache(monkeypatch, first_compressed):
    """A writer that dies while converting (the new form in place, the old one not yet
    removed) leaves both forms. A warm cache does not look for the other form on every hit:
    the conversion changed the old form's stat key before it made the new one."""
    DDB.config.use_compression = first_compressed
    DDB.at("db").create({"a": 1})
    assert DDB.at("db", key="a").read() == 1
    assert DDB.at("db", key="a").read() == 1  # now from the cache
    DDB.config.use_compression = not first_compressed

    def crash(path, *args, **kwargs):
        raise KeyboardInterrupt  # the process dies before the old form is removed

    monkeypatch.setattr(os, "unlink", crash)
    with pytest.raises(KeyboardInterrupt):
        DDB.at("db").create({"a": 2}, force_overwrite=True)
    monkeypatch.undo()
    names = sorted(os.listdir(DDB.config.storage_directory))
    assert "db.json" in names
    assert "db.ddb" in names
    with pytest.raises(errors.FileExistsError):
        DDB.at("db", key="a").read()
    with pytest.raises(errors.FileExistsError):
        DDB.at("db").read()


def test_a_deleted_file_is_not_served():
    DDB.at("db").create({"a": 1})
    assert DDB.at("db", key="a").read() == 1
    os.unlink(os.path.join(DDB.config.storage_directory, "db.json"))
    assert DDB.at("db", key="a").read() is None
    assert DDB.at("db").read() is None


def test_every_read_returns_a_fresh_object(size):
    DDB.at("db").create(make(size))
    first = DDB.at("db", key="counter").read()
    first["n"] = 99
    assert DDB.at("db", key="counter").read() == {"n": 0}
    whole = DDB.at("db").read()
    whole["counter"]["n"] = 98
    assert DDB.at("db").read()["counter"] == {"n": 0}


def test_the_cache_stays_within_its_budget(monkeypatch):
    monkeypatch.setattr(io_unsafe, "READ_CACHE_BYTES", 64 << 10)
    io_unsafe._cache.clear()
    DDB.at("db").create({f"k{i:04d}": "v" * 1000 for i in range(300)})  # ~300 KiB
    for i in range(300):
        assert DDB.at("db", key=f"k{i:04d}").read() == "v" * 1000
    cached = sum(len(data) for _, data in io_unsafe._cache.entries.values())
    assert 0 < cached <= 64 << 10
    assert DDB.at("db", key="k0299").read() == "v" * 1000


def test_a_zero_budget_turns_the_cache_off(monkeypatch):
    monkeypatch.setattr(io_unsafe, "READ_CACHE_BYTES", 0)
    io_unsafe._cache.clear()
    DDB.at("db").create({"a": 1})
    assert DDB.at("db", key="a").read() == 1
    assert DDB.at("db").read() == {"a": 1}
    assert not io_unsafe._cache.entries


def test_a_warm_folder_read_sees_changed_documents():
    for name in ("a", "b", "c"):
        DDB.at("docs", name).create({"n": 1})
    assert DDB.at("docs", "*").read() == {"a": {"n": 1}, "b": {"n": 1}, "c": {"n": 1}}
    assert DDB.at("docs", "*").read() == {"a": {"n": 1}, "b": {"n": 1}, "c": {"n": 1}}  # warm now
    DDB.at("docs", "b").update({"n": 2})  # same length
    path = os.path.join(DDB.config.storage_directory, "docs", "c.json")
    before = os.stat(path)
    with open(path, "rb") as handle:
        raw = handle.read()
    with open(path, "r+b") as handle:  # another program, in place, mtime restored
        handle.write(raw.replace(b"1", b"3"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert DDB.at("docs", "*").read() == {"a": {"n": 1}, "b": {"n": 2}, "c": {"n": 3}}
    os.unlink(os.path.join(DDB.config.storage_directory, "docs", "a.json"))
    assert DDB.at("docs", "*").read() == {"b": {"n": 2}, "c": {"n": 3}}


def test_a_value_read_again_is_kept_compact():
    """The first read of a large file caches the value's bytes as stored (indented); the
    second stores them compact; every read returns the same, fresh value."""
    value = {"list": [1, 2.5, "é"], "nested": {"s": 'a"b', "empty": {}}}
    DDB.at("db").create(dict(PADDING, counter=value))
    path = os.path.join(DDB.config.storage_directory, "db.json")

    def cached_bytes() -> bytes:
        return io_unsafe._cache.entries[(path, "counter")][1]

    assert DDB.at("db", key="counter").read() == value
    assert cached_bytes()[1:2] == b"\n"  # as stored
    assert DDB.at("db", key="counter").read() == value
    assert b"\n" not in cached_bytes()  # compact now
    for _ in range(3):
        read = DDB.at("db", key="counter").read()
        assert read == value
        read["list"].append(0)  # callers may change what they get
