"""The key index is never stale: every key read returns the current value (or None)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import zlib

import orjson
import pytest
from ddb_test_helpers import (
    current_canonical,
    find_index_files,
    json_path,
    padding_size,
    raw_json,
    storage_dir,
)

import dictdatabase as DDB
from dictdatabase import byte_codes, indexing
from dictdatabase.io_bytes import FileIdentity


def make_data(tag: str, *, large: bool, n: int = 40) -> dict:
    data = {f"k{i:03d}": {"tag": tag, "i": i, "s": "é" * (i % 5)} for i in range(n)}
    data["k005"] = f"{tag}-string"
    data["k006"] = None
    if large:
        # A padding value in the middle: keys after it sit beyond 64 KiB.
        data["k020_pad"] = '{"k030": "decoy"} ' * (padding_size() // 18 + 1)
    return data


SIZES = [pytest.param(False, id="small"), pytest.param(True, id="large")]


def read_all_keys(name: str, data: dict) -> None:
    for key, value in data.items():
        assert DDB.at(name, key=key).read() == value, key


def warm_index(name: str, data: dict) -> None:
    """Key reads that build (and use) the index."""
    for key in ("k000", "k010", "k030", "k039"):
        assert DDB.at(name, key=key).read() == data[key]


@pytest.mark.parametrize("large", SIZES)
def test_large_files_are_larger_than_threshold(large):
    DDB.at("db").create(make_data("a", large=large))
    size = len(raw_json("db"))
    assert (size > padding_size() - 8 * 1024) is large


@pytest.mark.parametrize("large", SIZES)
@pytest.mark.parametrize("indent", [None, 2, "\t"])
def test_overwrite_via_create_force_overwrite(large, indent):
    DDB.config.indent = indent
    old = make_data("old", large=large)
    DDB.at("db").create(old)
    warm_index("db", old)
    new = make_data("a-much-longer-tag", large=large)
    del new["k010"]
    new["k000"] = "changed"
    DDB.at("db").create(new, force_overwrite=True)
    read_all_keys("db", new)
    assert DDB.at("db", key="k010").read() is None
    assert DDB.at("db", key="k010").exists() is False


@pytest.mark.parametrize("large", SIZES)
def test_delete_and_recreate(large):
    old = make_data("old", large=large)
    DDB.at("db").create(old)
    warm_index("db", old)
    DDB.at("db").delete()
    assert DDB.at("db", key="k000").read() is None
    new = make_data("x", large=large, n=35)
    DDB.at("db").create(new)
    read_all_keys("db", new)
    assert DDB.at("db", key="k039").read() is None


def _edit_outside(name: str, content: bytes, *, keep_mtime: bool = False, in_place: bool = False) -> None:
    path = json_path(name)
    stat = os.stat(path)
    if in_place:
        with open(path, "r+b") as f:
            f.write(content)
            f.truncate()
    else:
        path.write_bytes(content)
    if keep_mtime:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.parametrize("large", SIZES)
@pytest.mark.parametrize("keep_mtime", [False, True], ids=["mtime-changed", "mtime-restored"])
def test_external_edit_same_length_different_value(large, keep_mtime):
    data = make_data("aaa", large=large)
    DDB.at("db").create(data)
    warm_index("db", data)
    content = raw_json("db")
    edited_content = content.replace(b'"aaa"', b'"bbb"')
    assert len(edited_content) == len(content)
    assert edited_content != content
    _edit_outside("db", edited_content, keep_mtime=keep_mtime, in_place=True)
    edited = json.loads(edited_content)
    assert edited["k030"]["tag"] == "bbb"
    read_all_keys("db", edited)


@pytest.mark.parametrize("large", SIZES)
def test_external_edit_different_length(large):
    data = make_data("aaa", large=large)
    DDB.at("db").create(data)
    warm_index("db", data)
    edited = dict(data)
    edited["k001"] = {"tag": "a value that is much longer than the one before it"}
    del edited["k002"]
    _edit_outside("db", current_canonical(edited))
    read_all_keys("db", edited)
    assert DDB.at("db", key="k002").read() is None


@pytest.mark.parametrize("large", SIZES)
def test_external_edit_reordered_keys(large):
    data = make_data("aaa", large=large)
    DDB.at("db").create(data)
    warm_index("db", data)
    reordered = dict(reversed(list(data.items())))
    reordered["k030"] = {"tag": "moved"}
    content = json.dumps(reordered, indent="\t").encode()  # not sorted: not canonical
    _edit_outside("db", content)
    read_all_keys("db", reordered)


@pytest.mark.parametrize("large", SIZES)
@pytest.mark.parametrize(
    "reformat",
    [
        orjson.dumps,
        lambda d: json.dumps(d, indent=7, sort_keys=True).encode(),
        lambda d: json.dumps(d, separators=(" ,  ", " :\n ")).encode(),
        lambda d: b"\n\n  " + orjson.dumps(d, option=orjson.OPT_INDENT_2) + b"\n\n",
        lambda d: json.dumps(d, ensure_ascii=True, indent=" ").encode(),
    ],
    ids=["compact", "indent7", "odd-separators", "surrounding-whitespace", "ascii-escaped"],
)
def test_external_edit_reformatted(large, reformat):
    data = make_data("aaa", large=large)
    DDB.config.indent = "\t"
    DDB.at("db").create(data)
    warm_index("db", data)
    data["k030"] = {"tag": "reformatted"}
    _edit_outside("db", reformat(data))
    read_all_keys("db", data)
    assert DDB.at("db", key="missing").read() is None


@pytest.mark.parametrize("large", SIZES)
def test_external_removal_of_key_reads_none(large):
    data = make_data("aaa", large=large)
    DDB.at("db").create(data)
    warm_index("db", data)
    del data["k030"]
    _edit_outside("db", current_canonical(data))
    assert DDB.at("db", key="k030").read() is None
    assert DDB.at("db", key="k030").exists() is False
    read_all_keys("db", data)


@pytest.mark.parametrize("large", SIZES)
@pytest.mark.parametrize("indent", [None, 0, 4, "\t"])
@pytest.mark.parametrize("use_orjson", [True, False])
def test_key_write_that_moves_other_values(large, indent, use_orjson):
    DDB.config.indent = indent
    DDB.config.use_orjson = use_orjson
    data = make_data("aaa", large=large)
    DDB.at("db").create(data)
    warm_index("db", data)
    with DDB.at("db", key="k001").session() as (session, value):
        value["tag"] = "grown by quite a lot of bytes ✓"
        session.write()
    data["k001"]["tag"] = "grown by quite a lot of bytes ✓"
    read_all_keys("db", data)
    with DDB.at("db", key="k030").session() as (session, value):
        value.clear()
        session.write()
    data["k030"] = {}
    read_all_keys("db", data)
    assert raw_json("db") == current_canonical(data)


@pytest.mark.parametrize("large", SIZES)
def test_key_delete_then_reads(large):
    data = make_data("aaa", large=large)
    DDB.at("db").create(data)
    warm_index("db", data)
    DDB.at("db", key="k010").delete()
    del data["k010"]
    read_all_keys("db", data)
    assert DDB.at("db", key="k010").read() is None
    assert raw_json("db") == current_canonical(data)


@pytest.mark.parametrize("large", SIZES)
def test_full_session_then_key_reads(large):
    data = make_data("aaa", large=large)
    DDB.at("db").create(data)
    warm_index("db", data)
    with DDB.at("db").session() as (session, full):
        full["k000"] = ["x" * 100]
        full["k0001"] = "inserted between"
        session.write()
    data["k000"] = ["x" * 100]
    data["k0001"] = "inserted between"
    read_all_keys("db", data)


# ---------------------------------------------------------------------------
# the index file on disk


def _read_in_fresh_process(name: str, key: str):
    code = textwrap.dedent(
        f"""
        import json, sys
        import dictdatabase as DDB
        DDB.config.storage_directory = {str(storage_dir())!r}
        sys.stdout.write(json.dumps(DDB.at({name!r}, key={key!r}).read()))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_index_file_is_written_for_large_files():
    data = make_data("aaa", large=True)
    DDB.at("db").create(data)
    warm_index("db", data)
    assert find_index_files(), "a key read of a large file should leave an index on disk"


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.unlink(),
        lambda p: p.write_bytes(b"\x00garbage{{{"),
        lambda p: p.write_bytes(b""),
        lambda p: p.write_bytes(b'{"k030": [0, 10, 1, "\\t", 0]}'),
        lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    ],
    ids=["deleted", "garbage", "empty", "wrong-entries", "truncated"],
)
def test_damaged_index_file_is_rebuilt(damage):
    data = make_data("aaa", large=True)
    DDB.at("db").create(data)
    warm_index("db", data)
    index_files = find_index_files()
    assert index_files
    for path in index_files:
        damage(path)
    # In this process (which may hold the index in memory) ...
    read_all_keys("db", data)
    # ... and in a fresh one, which has to use or rebuild the file on disk.
    for path in index_files:
        if path.exists():
            damage(path)
    assert _read_in_fresh_process("db", "k030") == data["k030"]
    assert _read_in_fresh_process("db", "k039") == data["k039"]
    assert _read_in_fresh_process("db", "nope") is None
    assert all(path.exists() for path in index_files), "the index should be rebuilt"


def test_external_edit_seen_by_fresh_process_with_stale_index_file():
    data = make_data("aaa", large=True)
    DDB.at("db").create(data)
    warm_index("db", data)
    content = raw_json("db")
    edited = content.replace(b'"aaa"', b'"bbb"')
    _edit_outside("db", edited, keep_mtime=True, in_place=True)
    assert _read_in_fresh_process("db", "k030") == json.loads(edited)["k030"]


# ---------------------------------------------------------------------------
# Indexer


def test_indexer_get_missing_key_is_none():
    DDB.at("db").create({"a": 1})
    assert indexing.Indexer("db").get("nothing") is None


def _indexed_large_file() -> tuple:
    data = make_data("aaa", large=True)
    DDB.at("db").create(data)
    warm_index("db", data)
    return data, raw_json("db")


def test_indexer_get_describes_the_file():
    data, raw = _indexed_large_file()
    indexer = indexing.Indexer("db")
    for key in ("k000", "k030", "k039", "k020_pad"):
        entry = indexer.get(key)
        assert entry is not None, key
        assert len(entry) == 5
        start, end, indent_level, indent_with, value_hash = entry
        assert orjson.loads(raw[start:end]) == data[key]
        assert value_hash == zlib.crc32(raw[start:end])
        line_start = raw.rfind(b"\n", 0, start) + 1
        prefix = (indent_with * indent_level).encode()
        assert raw[line_start : line_start + len(prefix) + 1] == prefix + b'"'
    assert indexer.get("missing") is None


def test_indexer_write_records_entry_and_shifts_later_ones():
    _, _ = _indexed_large_file()
    indexer = indexing.Indexer("db")
    first = indexer.get("k001")
    later = indexer.get("k030")
    earlier = indexer.get("k000")
    # k001's value grows by 5 bytes: its old value ended at first.end.
    indexer.write("k001", first.start, first.end + 5, first.indent_level, first.indent_with, 7, first.end)
    assert tuple(indexing.Indexer("db").get("k001")) == (
        first.start,
        first.end + 5,
        first.indent_level,
        first.indent_with,
        7,
    )
    moved = indexer.get("k030")
    assert (moved.start, moved.end) == (later.start + 5, later.end + 5)
    assert tuple(indexer.get("k000")) == tuple(earlier)


def test_reads_stay_correct_after_bogus_indexer_writes():
    data, _ = _indexed_large_file()
    indexer = indexing.Indexer("db")
    entry = indexer.get("k030")
    indexer.write("k030", entry.start + 3, entry.end + 3, entry.indent_level, entry.indent_with, 0, entry.end)
    indexer.write("k031", 0, 10, 1, "\t", 1, 10)
    read_all_keys("db", data)


@pytest.mark.parametrize("large", SIZES)
@pytest.mark.parametrize("keep_mtime", [False, True], ids=["mtime-changed", "mtime-restored"])
def test_external_edit_renaming_keys_same_length(large, keep_mtime):
    """Two keys swap names in place (same size); with mtime restored the file identity is unchanged."""
    data = make_data("aaa", large=large)
    data["ka"] = "value-of-ka"
    data["kb"] = "value-of-kb"
    DDB.at("db").create(data)
    warm_index("db", data)
    assert DDB.at("db", key="ka").read() == "value-of-ka"
    assert DDB.at("db", key="kb").read() == "value-of-kb"
    content = raw_json("db")
    edited_content = (
        content.replace(b'"ka":', b'"k#":').replace(b'"kb":', b'"ka":').replace(b'"k#":', b'"kb":')
    )
    assert len(edited_content) == len(content)
    _edit_outside("db", edited_content, keep_mtime=keep_mtime, in_place=True)
    edited = json.loads(edited_content)
    assert edited["ka"] == "value-of-kb"
    assert DDB.at("db", key="ka").read() == "value-of-kb"
    assert DDB.at("db", key="kb").read() == "value-of-ka"
    read_all_keys("db", edited)


@pytest.mark.parametrize("large", SIZES)
def test_external_file_with_escaped_and_duplicate_keys(large):
    pad = '"pad": "' + "p" * padding_size() + '", ' if large else ""
    content = ('{"\\u0061": 1, "b\\/c": 2, ' + pad + '"dup": "first", "\\u00e9": 3, "dup": "last"}').encode()
    path = json_path("ext")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    expected = orjson.loads(content)
    assert expected["dup"] == "last"
    for key in ("a", "b/c", "é", "dup"):
        assert DDB.at("ext", key=key).read() == expected[key], key
    assert DDB.at("ext", key="\\u0061").read() is None


@pytest.mark.parametrize("large", SIZES)
@pytest.mark.parametrize("keep_mtime", [False, True], ids=["mtime-changed", "mtime-restored"])
def test_external_edit_same_size_moving_value_boundaries(large, keep_mtime):
    """One value shrinks and the next grows by the same amount: file size stays, offsets move."""
    data = make_data("aaa", large=large)
    data["k030"] = "xxxxxxxx"
    data["k031"] = "y"
    DDB.at("db").create(data)
    warm_index("db", data)
    assert DDB.at("db", key="k031").read() == "y"
    content = raw_json("db")
    edited_content = content.replace(b'"xxxxxxxx"', b'"x"').replace(b'"y"', b'"yyyyyyyy"')
    assert len(edited_content) == len(content)
    _edit_outside("db", edited_content, keep_mtime=keep_mtime, in_place=True)
    edited = json.loads(edited_content)
    assert (edited["k030"], edited["k031"]) == ("x", "yyyyyyyy")
    read_all_keys("db", edited)


# ---------------------------------------------------------------------------
# An index followed through many changes equals a fresh scan of the changed bytes


def _scan_spans(raw: bytes) -> dict:
    return {
        byte_codes.decode_key(raw, key_start, key_end): (value_start, value_end)
        for key_start, key_end, value_start, value_end in byte_codes.iter_top_level_items(raw)
    }


def test_an_index_followed_through_many_changes_matches_a_fresh_scan():
    """More changes than the index keeps apart (``_MAX_CHANGED``) and more length changes
    than it keeps as pending shifts (``_MAX_SHIFTS``): after every change, every entry, the
    full entry list and a snapshot read back all agree with a scan of the changed bytes."""
    rng = random.Random(7)
    data = {f"k{i:03d}": "v" * rng.randrange(1, 30) for i in range(120)}
    raw = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    spans = _scan_spans(raw)
    state = indexing.IndexState(
        FileIdentity(1, len(raw), 0),
        ("orjson", "  "),
        {key: indexing.IndexEntry(s, e, 1, "  ", zlib.crc32(raw[s:e])) for key, (s, e) in spans.items()},
    )
    for step in range(1, 300):
        key = rng.choice(sorted(data))
        # Mostly the same length (no shift), sometimes longer or shorter.
        length = len(data[key]) if rng.random() < 0.5 else rng.randrange(1, 30)
        data[key] = rng.choice("abc") * length
        value = orjson.dumps(data[key])
        start, end = state.get(key).start, state.get(key).end
        raw = raw[:start] + value + raw[end:]
        entry = indexing.IndexEntry(start, start + len(value), 1, "  ", zlib.crc32(value))
        state = indexing.shifted(state, key, entry, FileIdentity(1, len(raw), step))
        spans = _scan_spans(raw)
        for name, (s, e) in spans.items():
            found = state.get(name)
            assert (found.start, found.end) == (s, e), (step, name)
            assert found.value_hash == zlib.crc32(raw[s:e])
        assert [(x.start, x.end) for x in state.entries.values()] == list(spans.values())
        assert list(state.entries) == list(spans)
    again = indexing.IndexState.from_bytes(state.to_bytes())
    assert again.entries == state.entries
