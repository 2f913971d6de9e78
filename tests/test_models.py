"""DDB.at() and DDBMethodChooser: paths, create/exists/delete/read/update/read_all."""

from __future__ import annotations

import ast
import os

import pytest
from ddb_test_helpers import (
    ddb_path,
    json_path,
    padding_size,
    raw_json,
    storage_dir,
    write_json_file,
)
from path_dict import PathDict

import dictdatabase as DDB
from dictdatabase import errors

USERS = {
    "u1": {"name": "Alice", "age": 25, "status": "active"},
    "u2": {"name": "Bob", "age": 30, "status": "inactive"},
    "u3": {"name": "Carol", "age": 16, "status": "active"},
}


# ---------------------------------------------------------------------------
# at(): path joining


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("users",), "users"),
        (("users", "profiles", "active"), "users/profiles/active"),
        ((["users", "profiles"], "active"), "users/profiles/active"),
        (("x", ["y"], "z"), "x/y/z"),
        ((("a", "b"),), "a/b"),
        (("a", ["b", "c"], ("d",)), "a/b/c/d"),
        ((["a"], ("b",), "c/d"), "a/b/c/d"),
        (("a/b", "c"), "a/b/c"),
        (("a\\b",), "a/b"),
        (("a\\b", ["c\\d"]), "a/b/c/d"),
        (("a//b/",), "a/b"),
        (("./a/./b",), "a/b"),
        (("a", "", "b"), "a/b"),
        ((os.path.join("folder", "sub", "file"),), "folder/sub/file"),
    ],
)
def test_at_joins_path_elements(args, expected):
    assert DDB.at(*args).path == expected


def test_at_is_available_from_models_module():
    from dictdatabase.models import DDBMethodChooser, at

    chooser = at("a", "b")
    assert isinstance(chooser, DDBMethodChooser)
    assert chooser.path == "a/b"


@pytest.mark.parametrize("args", [("purchases/*",), ("purchases", "*"), (["purchases", "*"],)])
def test_at_star_joins_like_any_other_segment(args):
    assert DDB.at(*args).path == "purchases/*"


def test_key_with_where_is_a_type_error():
    DDB.at("users").create(USERS)
    with pytest.raises(TypeError):
        DDB.at("users", key="u1", where=lambda k, v: True).read()


@pytest.mark.parametrize("args", [("purchases/*",), ("purchases", "*")])
def test_key_with_star_is_a_type_error(args):
    DDB.at("purchases", "p1").create({"a": 1})
    with pytest.raises(TypeError):
        DDB.at(*args, key="a").read()


# ---------------------------------------------------------------------------
# create / exists


def test_create_without_data_makes_an_empty_dict():
    assert DDB.at("users").exists() is False
    DDB.at("users").create()
    assert DDB.at("users").exists() is True
    assert DDB.at("users").read() == {}
    assert json_path("users").exists()


def test_create_with_none_means_empty_dict():
    DDB.at("users").create(None)
    assert DDB.at("users").read() == {}


def test_create_with_data_and_read_back():
    assert DDB.at("users").create(USERS) is None
    assert DDB.at("users").read() == USERS


def test_create_in_nested_folder_creates_the_folders():
    DDB.at("a", "b", "c").create({"x": 1})
    assert json_path("a/b/c").exists()
    assert DDB.at("a/b/c").read() == {"x": 1}


def test_create_top_level_list_and_scalar():
    DDB.at("lst").create([1, "two", None, {"three": 3}])
    assert DDB.at("lst").read() == [1, "two", None, {"three": 3}]


def test_create_existing_raises_file_exists_and_keeps_data():
    DDB.at("users").create(USERS)
    before = raw_json("users")
    with pytest.raises(errors.FileExistsError) as info:
        DDB.at("users").create({"other": 1})
    assert isinstance(info.value, FileExistsError)
    assert raw_json("users") == before
    assert DDB.at("users").read() == USERS


def test_create_force_overwrite_replaces():
    DDB.at("users").create(USERS)
    DDB.at("users").create({"other": 1}, force_overwrite=True)
    assert DDB.at("users").read() == {"other": 1}
    assert DDB.at("users", key="u1").read() is None


def test_create_force_overwrite_on_missing_file_creates():
    DDB.at("fresh").create({"a": 1}, force_overwrite=True)
    assert DDB.at("fresh").read() == {"a": 1}


@pytest.mark.parametrize(
    "chooser",
    [
        lambda: DDB.at("users", key="u1"),
        lambda: DDB.at("users", where=lambda k, v: True),
        lambda: DDB.at("users", "*"),
        lambda: DDB.at("users/*"),
    ],
    ids=["key", "where", "star-segment", "star-in-string"],
)
def test_create_with_key_where_or_star_is_a_runtime_error(chooser):
    DDB.at("users").create(USERS)
    with pytest.raises(RuntimeError):
        chooser().create({"x": 1})
    assert DDB.at("users").read() == USERS


def test_create_with_key_on_missing_file_is_a_runtime_error_and_creates_nothing():
    with pytest.raises(RuntimeError):
        DDB.at("nothing", key="k").create()
    assert not json_path("nothing").exists()
    assert not ddb_path("nothing").exists()


def test_exists_file_and_key():
    assert DDB.at("users").exists() is False
    assert DDB.at("users", key="u1").exists() is False
    DDB.at("users").create(USERS)
    assert DDB.at("users").exists() is True
    assert DDB.at("users", key="u1").exists() is True
    assert DDB.at("users", key="nonexistent").exists() is False


def test_exists_with_where_is_a_runtime_error():
    DDB.at("users").create(USERS)
    with pytest.raises(RuntimeError):
        DDB.at("users", where=lambda k, v: True).exists()


def test_exists_for_star():
    assert DDB.at("purchases", "*").exists() is False
    DDB.at("purchases", "p1").create({"a": 1})
    assert DDB.at("purchases", "*").exists() is True
    assert DDB.at("purchases/*").exists() is True
    DDB.at("purchases", "p1").delete()
    assert DDB.at("purchases", "*").exists() is False


def test_exists_of_nested_key_is_false():
    DDB.at("f").create({"outer": {"inner": 1}})
    assert DDB.at("f", key="outer").exists() is True
    assert DDB.at("f", key="inner").exists() is False


# ---------------------------------------------------------------------------
# missing vs null (ruling 1)


def test_missing_file_reads_none():
    assert DDB.at("missing").read() is None
    assert DDB.at("missing", key="k").read() is None
    assert DDB.at("missing", where=lambda k, v: True).read() is None


def test_missing_key_reads_none():
    DDB.at("users").create(USERS)
    assert DDB.at("users", key="nonexistent").read() is None


def test_null_value_vs_missing_key_through_exists():
    DDB.at("f").create({"present_null": None, "zero": 0, "empty": ""})
    assert DDB.at("f", key="present_null").read() is None
    assert DDB.at("f", key="present_null").exists() is True
    assert DDB.at("f", key="absent").read() is None
    assert DDB.at("f", key="absent").exists() is False
    assert DDB.at("f", key="zero").read() == 0
    assert DDB.at("f", key="empty").read() == ""


def test_null_file_vs_missing_file_through_exists():
    write_json_file("nullfile", b"null")
    assert DDB.at("nullfile").exists() is True
    assert DDB.at("nullfile").read() is None
    assert DDB.at("nofile").exists() is False


def test_nested_key_is_not_found():
    DDB.at("f").create({"outer": {"inner": 1}})
    assert DDB.at("f", key="inner").read() is None


# ---------------------------------------------------------------------------
# read


def test_key_read_returns_value():
    DDB.at("users").create(USERS)
    for key, value in USERS.items():
        assert DDB.at("users", key=key).read() == value


def test_read_returns_fresh_objects():
    DDB.at("users").create(USERS)
    first = DDB.at("users").read()
    first["u1"]["name"] = "changed"
    first["new"] = 1
    assert DDB.at("users").read() == USERS
    value = DDB.at("users", key="u1").read()
    value["name"] = "changed"
    assert DDB.at("users", key="u1").read() == USERS["u1"]


def test_where_read_filters_top_level_items():
    DDB.at("users").create(USERS)
    adults = DDB.at("users", where=lambda k, v: v["age"] >= 18).read()
    assert adults == {"u1": USERS["u1"], "u2": USERS["u2"]}
    by_key = DDB.at("users", where=lambda k, v: k == "u3").read()
    assert by_key == {"u3": USERS["u3"]}
    assert DDB.at("users", where=lambda k, v: False).read() == {}


def test_read_force_returns_the_data():
    DDB.at("users").create(USERS)
    assert DDB.at("users").read(force=True) == USERS
    assert DDB.at("users", key="u2").read(force=True) == USERS["u2"]


def test_as_type_str_on_key_read_is_str_of_value():
    DDB.at("users").create(USERS)
    text = DDB.at("users", key="u1").read(as_type=str)
    assert isinstance(text, str)
    # str(value): Python's repr of a dict (single quotes), not JSON text.
    assert "'name': 'Alice'" in text
    assert ast.literal_eval(text) == USERS["u1"]


def test_as_type_str_on_scalar_and_full_read():
    DDB.at("f").create({"n": 25, "s": "x"})
    assert DDB.at("f", key="n").read(as_type=str) == "25"
    assert DDB.at("f", key="s").read(as_type=str) == "x"
    full = DDB.at("f").read(as_type=str)
    assert isinstance(full, str)
    assert ast.literal_eval(full) == {"n": 25, "s": "x"}


def test_as_type_callable_is_applied_to_value():
    DDB.at("f").create({"n": "7", "lst": [3, 1, 2]})
    assert DDB.at("f", key="n").read(as_type=int) == 7
    assert DDB.at("f", key="lst").read(as_type=sorted) == [1, 2, 3]
    assert DDB.at("f", key="lst").read(as_type=tuple) == (3, 1, 2)


def test_as_type_pathdict_on_full_and_key_read():
    DDB.at("users").create(USERS)
    full = DDB.at("users").read(as_type=PathDict)
    assert isinstance(full, PathDict)
    assert full.get() == USERS
    assert full["u1", "name"] == "Alice"
    one = DDB.at("users", key="u2").read(as_type=PathDict)
    assert isinstance(one, PathDict)
    assert one.get() == USERS["u2"]


def test_where_callback_receives_as_type_value_and_result_is_converted():
    DDB.at("users").create(USERS)
    seen = []

    def where(key, value):
        seen.append((key, type(value)))
        return value["age"] > 18

    result = DDB.at("users", where=where).read(as_type=PathDict)
    assert sorted(seen) == [("u1", PathDict), ("u2", PathDict), ("u3", PathDict)]
    assert isinstance(result, PathDict)
    # The result holds the original values, then as_type is applied to the whole result.
    assert result.get() == {"u1": USERS["u1"], "u2": USERS["u2"]}


def test_where_callback_without_as_type_receives_plain_values():
    DDB.at("users").create(USERS)
    seen = []
    DDB.at("users", where=lambda k, v: seen.append(type(v)) or True).read()
    assert seen == [dict, dict, dict]


def test_where_with_as_type_str():
    DDB.at("f").create({"a": 1, "b": 22, "c": 333})
    result = DDB.at("f", where=lambda k, v: len(v) >= 2).read(as_type=str)
    assert isinstance(result, str)
    assert ast.literal_eval(result) == {"b": 22, "c": 333}


# ---------------------------------------------------------------------------
# folders


def _make_purchases():
    DDB.at("purchases", "8").create({"item": "book", "date": "2024-02-01"})
    DDB.config.use_compression = True
    DDB.at("purchases", "9").create({"item": "pen", "date": "2023-05-01"})
    DDB.config.use_compression = False
    DDB.at("purchases", "sub", "10").create({"item": "nested", "date": "2024-03-01"})
    DDB.at("other").create({"not": "in folder"})
    (storage_dir() / "purchases" / "notes.txt").write_text("not a database")


@pytest.mark.parametrize("args", [("purchases", "*"), ("purchases/*",), (os.path.join("purchases", "*"),)])
def test_folder_read_keyed_by_stem(args):
    _make_purchases()
    assert ddb_path("purchases/9").exists()
    result = DDB.at(*args).read()
    assert result == {
        "8": {"item": "book", "date": "2024-02-01"},
        "9": {"item": "pen", "date": "2023-05-01"},
    }


def test_folder_read_with_where_filters_files():
    _make_purchases()
    recent = DDB.at("purchases", "*", where=lambda k, v: v["date"] > "2024-01-01").read()
    assert recent == {"8": {"item": "book", "date": "2024-02-01"}}
    by_name = DDB.at("purchases/*", where=lambda k, v: k == "9").read()
    assert by_name == {"9": {"item": "pen", "date": "2023-05-01"}}


def test_read_all_equals_star_read():
    _make_purchases()
    assert DDB.at("purchases").read_all() == DDB.at("purchases", "*").read()
    assert set(DDB.at("purchases").read_all()) == {"8", "9"}


def test_star_at_storage_root_ignores_private_folder():
    DDB.at("x").create({"a": 1})
    big = {"pad": "p" * padding_size(), "k": 1}
    DDB.at("y").create(big)
    assert DDB.at("y", key="k").read() == 1  # may create the private .ddb folder (index)
    assert DDB.at("*").read() == {"x": {"a": 1}, "y": big}


# ---------------------------------------------------------------------------
# delete


def test_delete_file():
    DDB.at("users").create(USERS)
    assert DDB.at("users").delete() is None
    assert DDB.at("users").exists() is False
    assert not json_path("users").exists()
    assert DDB.at("users").read() is None
    DDB.at("users").create({"again": True})
    assert DDB.at("users").read() == {"again": True}


def test_delete_compressed_file():
    DDB.config.use_compression = True
    DDB.at("users").create(USERS)
    assert ddb_path("users").exists()
    DDB.config.use_compression = False
    DDB.at("users").delete()
    assert not ddb_path("users").exists()
    assert not json_path("users").exists()


def test_delete_missing_file_is_a_no_op():
    DDB.at("nothing").delete()
    DDB.at("nothing", key="k").delete()
    assert DDB.at("nothing").exists() is False


def test_delete_key():
    DDB.at("users").create(USERS)
    DDB.at("users", key="u2").delete()
    assert DDB.at("users").read() == {"u1": USERS["u1"], "u3": USERS["u3"]}
    assert DDB.at("users", key="u2").exists() is False


def test_delete_missing_key_is_a_no_op():
    DDB.at("users").create(USERS)
    before = raw_json("users")
    DDB.at("users", key="nonexistent").delete()
    assert raw_json("users") == before


def test_delete_with_where_removes_matching_keys():
    DDB.at("users").create(USERS)
    DDB.at("users", where=lambda k, v: v["status"] == "active").delete()
    assert DDB.at("users").read() == {"u2": USERS["u2"]}


def test_delete_star_removes_every_file_of_the_folder_only():
    _make_purchases()
    DDB.at("purchases", "*").delete()
    assert DDB.at("purchases", "*").read() in ({}, None)
    assert not json_path("purchases/8").exists()
    assert not ddb_path("purchases/9").exists()
    assert DDB.at("other").read() == {"not": "in folder"}
    assert DDB.at("purchases/sub/10").read() == {"item": "nested", "date": "2024-03-01"}


def test_delete_star_with_where_deletes_only_matching_files():
    _make_purchases()
    DDB.at("purchases", "*", where=lambda k, v: v["date"] > "2024-01-01").delete()
    assert not json_path("purchases/8").exists()
    assert DDB.at("purchases", "9").read() == {"item": "pen", "date": "2023-05-01"}


def test_folder_read_includes_a_document_holding_null():
    DDB.at("docs", "a").create({"v": 1})
    write_json_file("docs/n", b"null")
    assert DDB.at("docs", "n").exists() is True
    assert DDB.at("docs", "*").read() == {"a": {"v": 1}, "n": None}
    assert DDB.at("docs").read_all() == {"a": {"v": 1}, "n": None}


def test_folder_read_includes_every_json_file_of_the_folder():
    DDB.at("docs", ".hidden").create({"h": 1})
    DDB.at("docs", "visible").create({"v": 1})
    assert DDB.at("docs", "*").read() == {".hidden": {"h": 1}, "visible": {"v": 1}}


# ---------------------------------------------------------------------------
# update


def test_update_merges_top_level():
    DDB.at("users").create(USERS)
    result = DDB.at("users").update({"u4": {"name": "Dan"}, "u1": {"replaced": True}})
    assert result is None
    expected = dict(USERS)
    expected["u4"] = {"name": "Dan"}
    expected["u1"] = {"replaced": True}  # top level only: no deep merge
    assert DDB.at("users").read() == expected


def test_update_creates_missing_file():
    DDB.at("new", "file").update({"a": 1})
    assert DDB.at("new/file").read() == {"a": 1}


def test_update_with_empty_mapping_keeps_data():
    DDB.at("users").create(USERS)
    DDB.at("users").update({})
    assert DDB.at("users").read() == USERS


# ---------------------------------------------------------------------------
# external files


def test_reads_a_file_written_outside_the_library():
    write_json_file("ext", b'{ "b" : [1, 2] , "a":{"x":"y"}}')
    assert DDB.at("ext").read() == {"b": [1, 2], "a": {"x": "y"}}
    assert DDB.at("ext", key="a").read() == {"x": "y"}
    assert DDB.at("ext", key="b").read() == [1, 2]
    assert DDB.at("ext", key="c").read() is None
