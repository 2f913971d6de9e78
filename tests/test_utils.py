"""utils: file_info, file_exists, find_all, path helpers and the JSON byte helpers."""

from __future__ import annotations

import datetime
import json
import os

import orjson
import pytest
from ddb_test_helpers import ddb_path, json_path, storage_dir

import dictdatabase as DDB
from dictdatabase import utils

# ---------------------------------------------------------------------------
# file_info / file_exists


def _same_path(a, b) -> bool:
    return os.path.realpath(str(a)) == os.path.realpath(str(b))


def _as_timestamp(value) -> float:
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    return float(value)


def test_file_info_missing_file():
    info = utils.file_info("users")
    assert not info
    j_path, j_exists, d_path, d_exists = info
    assert j_exists is False
    assert d_exists is False
    assert _same_path(j_path, json_path("users"))
    assert _same_path(d_path, ddb_path("users"))


def test_file_info_json_file():
    DDB.at("users").create({"u1": {"name": "Alice"}})
    info = utils.file_info("users")
    assert info
    assert bool(info) is True
    j_path, j_exists, d_path, d_exists = info
    assert (j_exists, d_exists) == (True, False)
    assert _same_path(j_path, json_path("users"))
    assert _same_path(d_path, ddb_path("users"))
    stat = os.stat(json_path("users"))
    assert info.size_bytes == stat.st_size
    assert info.is_file is True
    assert info.is_directory is False
    assert abs(_as_timestamp(info.modified_time) - stat.st_mtime) < 2
    assert info.created_time is not None
    assert abs(_as_timestamp(info.created_time) - stat.st_mtime) < 60


def test_file_info_ddb_file():
    DDB.config.use_compression = True
    DDB.at("users").create({"u1": {"name": "Alice"}})
    info = utils.file_info("users")
    assert info
    _, j_exists, d_path, d_exists = info
    assert (j_exists, d_exists) == (False, True)
    assert _same_path(d_path, ddb_path("users"))
    assert info.size_bytes == os.path.getsize(ddb_path("users"))
    assert info.is_file is True


def test_file_info_folder_without_file_is_falsy():
    DDB.at("users", "a").create({})
    info = utils.file_info("users")
    assert info.is_directory is True
    assert info.is_file is False
    _, j_exists, _, d_exists = info
    assert (j_exists, d_exists) == (False, False)
    # Ruling 8: falsy when no file exists.
    assert not info


def test_file_info_file_next_to_folder_of_same_name():
    DDB.at("users").create({"u1": 1})
    DDB.at("users", "a").create({})
    info = utils.file_info("users")
    assert info
    assert info.is_file is True
    assert info.size_bytes == os.path.getsize(json_path("users"))


def test_file_info_nested_name():
    DDB.at("a", "b").create({})
    j_path, j_exists, _, _ = utils.file_info("a/b")
    assert j_exists is True
    assert _same_path(j_path, json_path("a/b"))


def test_file_exists():
    assert utils.file_exists("users") is False
    DDB.at("users").create()
    assert utils.file_exists("users") is True
    DDB.config.use_compression = True
    DDB.at("zipped").create()
    assert utils.file_exists("zipped") is True
    DDB.at("users").delete()
    assert utils.file_exists("users") is False


# ---------------------------------------------------------------------------
# find_all


def test_find_all_in_folder():
    DDB.at("users", "b").create({})
    DDB.config.use_compression = True
    DDB.at("users", "a").create({})
    DDB.config.use_compression = False
    DDB.at("users", "sub", "c").create({})
    DDB.at("other").create({})
    (storage_dir() / "users" / "readme.txt").write_text("not a database")
    assert utils.find_all("users/*") == ["users/a", "users/b"]


def test_find_all_at_root_and_empty():
    assert utils.find_all("users/*") == []
    DDB.at("y").create({})
    DDB.at("x").create({"big": "b" * 100_000})
    assert DDB.at("x", key="big").read() == "b" * 100_000
    assert utils.find_all("*") == ["x", "y"]


# ---------------------------------------------------------------------------
# path helpers


def test_resolve_relative_path():
    assert _same_path(utils._resolve_relative_path("users"), storage_dir() / "users")
    assert _same_path(utils._resolve_relative_path("a/b"), storage_dir() / "a" / "b")
    assert os.path.isabs(utils._resolve_relative_path("users"))


def test_relative_storage_directory_resolves_at_call_time(tmp_path, monkeypatch):
    first = tmp_path / "cwd1"
    second = tmp_path / "cwd2"
    first.mkdir()
    second.mkdir()
    DDB.config.storage_directory = "rel_store"
    monkeypatch.chdir(first)
    assert _same_path(utils._resolve_relative_path("x"), first / "rel_store" / "x")
    DDB.at("x").create({"where": 1})
    assert (first / "rel_store" / "x.json").exists()
    monkeypatch.chdir(second)
    assert _same_path(utils._resolve_relative_path("x"), second / "rel_store" / "x")
    assert DDB.at("x").read() is None
    DDB.at("x").create({"where": 2})
    assert (second / "rel_store" / "x.json").exists()
    monkeypatch.chdir(first)
    assert DDB.at("x").read() == {"where": 1}


def test_get_storage_path_follows_existing_file_and_settings():
    assert _same_path(utils._get_storage_path("users"), json_path("users"))
    DDB.config.use_compression = True
    assert _same_path(utils._get_storage_path("users"), ddb_path("users"))
    DDB.at("users").create()
    DDB.config.use_compression = False
    # the existing file wins over the setting
    assert _same_path(utils._get_storage_path("users"), ddb_path("users"))


def test_storage_directory_is_created_on_first_write():
    assert not storage_dir().exists()
    assert DDB.at("x").read() is None
    DDB.at("x").create()
    assert storage_dir().is_dir()


# ---------------------------------------------------------------------------
# seek_index_through_value_bytes


SEEK_DOC = b'{"a": "x{y\\"}", "b": [1, {"c": "}]"}, []], "d": 3, "e": {"f": {}}, "g": true, "h": -1.5e3}'


@pytest.mark.parametrize(
    ("start_marker", "value"),
    [
        (b'"x{y', b'"x{y\\"}"'),
        (b"[1, {", b'[1, {"c": "}]"}, []]'),
        (b"3,", b"3"),
        (b'{"f"', b'{"f": {}}'),
        (b"true", b"true"),
        (b"-1.5e3", b"-1.5e3"),
    ],
)
def test_seek_index_through_value_bytes(start_marker, value):
    start = SEEK_DOC.index(start_marker)
    end = utils.seek_index_through_value_bytes(SEEK_DOC, start)
    assert SEEK_DOC[start:end] == value


def test_seek_index_through_value_bytes_whole_document_and_indented():
    assert utils.seek_index_through_value_bytes(SEEK_DOC, 0) == len(SEEK_DOC)
    doc = b'{\n\t"a": 12,\n\t"b": null\n}'
    start = doc.index(b"12")
    assert utils.seek_index_through_value_bytes(doc, start) == start + 2
    start = doc.index(b"null")
    assert utils.seek_index_through_value_bytes(doc, start) == start + 4


def test_seek_index_through_escaped_backslash_string():
    doc = b'{"a": "ends with backslash \\\\", "b": 1}'
    start = doc.index(b'"ends')
    end = utils.seek_index_through_value_bytes(doc, start)
    assert doc[start:end] == b'"ends with backslash \\\\"'
    assert json.loads(doc[start:end]) == "ends with backslash \\"


def test_seek_index_through_multibyte_utf8():
    doc = orjson.dumps({"a": "中文😀", "b": {"é": "ü"}})
    start = doc.index(b"{", 1)
    end = utils.seek_index_through_value_bytes(doc, start)
    assert orjson.loads(doc[start:end]) == {"é": "ü"}


# ---------------------------------------------------------------------------
# find_outermost_key_in_json_bytes


def test_find_outermost_key_compact():
    doc = orjson.dumps({"key1": "value1", "key2": "value2"})
    assert utils.find_outermost_key_in_json_bytes(doc, "key1") == (1, 8)
    start, end = utils.find_outermost_key_in_json_bytes(doc, "key2")
    assert doc[start:end] == b'"key2":'


def test_find_outermost_key_skips_nested_and_string_occurrences():
    doc = b'{"a": {"b": 1}, "s": "\\"b\\": 2", "b": 3}'
    start, end = utils.find_outermost_key_in_json_bytes(doc, "b")
    assert doc[start:end] == b'"b":'
    assert start == doc.rindex(b'"b":')


def test_find_outermost_key_absent():
    doc = b'{"a": {"b": 1}, "s": "\\"c\\": 2"}'
    assert utils.find_outermost_key_in_json_bytes(doc, "b") == (-1, -1)
    assert utils.find_outermost_key_in_json_bytes(doc, "c") == (-1, -1)
    assert utils.find_outermost_key_in_json_bytes(doc, "zzz") == (-1, -1)
    assert utils.find_outermost_key_in_json_bytes(b"{}", "a") == (-1, -1)


def test_find_outermost_key_indented():
    data = {"a": {"b": 1}, "b": [1, 2], "c": '{"b": 0}'}
    for doc in (
        json.dumps(data, indent="\t", sort_keys=True).encode(),
        orjson.dumps(data, option=orjson.OPT_INDENT_2),
        json.dumps(data, indent=4).encode(),
    ):
        start, end = utils.find_outermost_key_in_json_bytes(doc, "b")
        assert doc[start:end] == b'"b":'
        value_start = doc.index(b"[", end)
        assert orjson.loads(doc[value_start : utils.seek_index_through_value_bytes(doc, value_start)]) == [
            1,
            2,
        ]


def test_find_outermost_key_with_space_before_colon():
    doc = b'{"a" : 1, "b" :2}'
    start, end = utils.find_outermost_key_in_json_bytes(doc, "b")
    assert start == doc.index(b'"b"')
    assert doc[end - 1 : end] == b":"
    assert end == doc.index(b":2") + 1


def test_find_outermost_key_special_characters():
    data = {'q"uote': 1, "back\\slash": 2, "中文": 3, '{"x":': 4}
    doc = orjson.dumps(data)
    for key, value in data.items():
        start, end = utils.find_outermost_key_in_json_bytes(doc, key)
        assert start >= 0
        assert orjson.loads(doc[start : end - 1]) == key
        value_start = end
        value_end = utils.seek_index_through_value_bytes(doc, value_start)
        assert orjson.loads(doc[value_start:value_end]) == value


def test_find_outermost_key_after_multibyte_values_uses_byte_offsets():
    doc = orjson.dumps({"a": "😀😀😀", "b": 7})
    start, end = utils.find_outermost_key_in_json_bytes(doc, "b")
    assert doc[start:end] == b'"b":'
    assert doc[end : end + 1] == b"7"


# ---------------------------------------------------------------------------
# detect_indentation_in_json_bytes


def test_detect_indentation_tabs():
    DDB.config.indent = "\t"
    doc = b'{\n\t"a": {\n\t\t"b": 1\n\t}\n}'
    assert utils.detect_indentation_in_json_bytes(doc, doc.index(b'"a"')) == (1, "\t")
    assert utils.detect_indentation_in_json_bytes(doc, doc.index(b'"b"')) == (2, "\t")


def test_detect_indentation_spaces():
    DDB.config.indent = 2
    doc = b'{\n  "a": {\n    "b": 1\n  }\n}'
    assert utils.detect_indentation_in_json_bytes(doc, doc.index(b'"a"')) == (1, "  ")
    assert utils.detect_indentation_in_json_bytes(doc, doc.index(b'"b"')) == (2, "  ")


def test_detect_indentation_compact():
    DDB.config.indent = None
    doc = b'{"a": {"b": 1}}'
    level, _ = utils.detect_indentation_in_json_bytes(doc, doc.index(b'"a"'))
    assert level == 0
