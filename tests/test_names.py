"""Database names (ruling 10): unsafe names are rejected; distinct names never share data or index."""

from __future__ import annotations

import os

import pytest
from ddb_test_helpers import json_path, padding_size, raw_json, storage_dir

import dictdatabase as DDB
from dictdatabase import errors

BAD_NAMES = [
    pytest.param("..", id="dotdot"),
    pytest.param("../escape", id="dotdot-prefix"),
    pytest.param("a/../../escape", id="dotdot-middle"),
    pytest.param("a/..", id="dotdot-last"),
    pytest.param("a\\..\\escape", id="dotdot-backslash"),
    pytest.param("/tmp/absolute", id="absolute"),
    pytest.param("a\x00b", id="nul-byte"),
    pytest.param(".ddb", id="reserved-root"),
    pytest.param(".ddb/x", id="inside-reserved-root"),
]

OPERATIONS = {
    "read": lambda name: DDB.at(name).read(),
    "create": lambda name: DDB.at(name).create({"x": 1}),
    "exists": lambda name: DDB.at(name).exists(),
    "key-read": lambda name: DDB.at(name, key="x").read(),
    "delete": lambda name: DDB.at(name).delete(),
    "session": lambda name: DDB.at(name).session().__enter__(),
}


def _assert_invalid_name(info, name: str) -> None:
    exc = info.value
    assert isinstance(exc, errors.InvalidNameError)
    assert isinstance(exc, ValueError)
    assert isinstance(exc, errors.DatabaseError)
    message = str(exc)
    assert name in message or repr(name) in message or name.replace("\\", "/") in message


@pytest.mark.parametrize("operation", list(OPERATIONS), ids=list(OPERATIONS))
@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_rejected(tmp_path, name, operation):
    with pytest.raises(errors.InvalidNameError) as info:
        OPERATIONS[operation](name)
    _assert_invalid_name(info, name)
    # Nothing was written anywhere near the storage directory.
    assert not (tmp_path / "escape.json").exists()
    assert not (tmp_path / "escape.ddb").exists()
    assert not (storage_dir() / ".ddb.json").exists()


@pytest.mark.parametrize("args", [("",), ("", ""), ([],), ("/",), (".",), ("./.",)])
def test_empty_names_are_rejected(args):
    with pytest.raises(errors.InvalidNameError):
        DDB.at(*args).create({"x": 1})
    with pytest.raises(errors.InvalidNameError):
        DDB.at(*args).read()


def test_dotdot_as_separate_path_element_is_rejected():
    with pytest.raises(errors.InvalidNameError) as info:
        DDB.at("a", "..", "..", "escape").create({})
    assert ".." in str(info.value)


def test_absolute_path_in_list_is_rejected(tmp_path):
    target = str(tmp_path / "abs_target")
    with pytest.raises(errors.InvalidNameError) as info:
        DDB.at([target]).create({"x": 1})
    assert target in str(info.value)
    assert not (tmp_path / "abs_target.json").exists()


def test_bad_name_in_low_level_modules():
    from dictdatabase import io_bytes, io_safe, utils

    for call in (
        lambda: io_safe.read("../x"),
        lambda: io_safe.write("../x", {}),
        lambda: io_bytes.write("../x", b"{}"),
        lambda: utils.file_exists("../x"),
    ):
        with pytest.raises(errors.InvalidNameError):
            call()


@pytest.mark.parametrize("name", ["report[2024]", "faq?", "x]y", "a/b[1]"])
def test_only_star_selects_a_folder(name):
    """The contract makes only `*` a folder selector; other glob characters are plain names."""
    DDB.at(name).create({"name": name})
    assert json_path(name).exists()
    assert DDB.at(name).read() == {"name": name}
    assert DDB.at(name, key="name").read() == name
    assert DDB.at(name).exists() is True
    with DDB.at(name).session() as (session, data):
        data["x"] = 1
        session.write()
    assert DDB.at(name).read() == {"name": name, "x": 1}


def test_dots_inside_names_are_fine():
    DDB.at("v1.2").create({"a": 1})
    DDB.at("...x").create({"b": 2})
    assert DDB.at("v1.2").read() == {"a": 1}
    assert DDB.at("...x").read() == {"b": 2}
    assert json_path("v1.2").exists()


# ---------------------------------------------------------------------------
# a/b vs a___b


def test_slash_and_triple_underscore_are_distinct_databases():
    DDB.at("a/b").create({"who": "slash"})
    DDB.at("a___b").create({"who": "underscores"})
    assert json_path("a/b").exists()
    assert json_path("a___b").exists()
    assert DDB.at("a/b").read() == {"who": "slash"}
    assert DDB.at("a___b").read() == {"who": "underscores"}
    assert DDB.at("a/b", key="who").read() == "slash"
    assert DDB.at("a___b", key="who").read() == "underscores"
    DDB.at("a___b").delete()
    assert DDB.at("a/b").read() == {"who": "slash"}
    assert DDB.at("a___b").exists() is False


def test_sessions_on_distinct_names_do_not_interfere():
    DDB.at("a/b").create({"n": 0})
    DDB.at("a___b").create({"n": 0})
    # If both names shared a lock, the inner session would fail at once (same thread).
    with DDB.at("a/b").session() as (outer, data_outer):
        with DDB.at("a___b").session() as (inner, data_inner):
            data_inner["n"] = 2
            inner.write()
        data_outer["n"] = 1
        outer.write()
    assert DDB.at("a/b").read() == {"n": 1}
    assert DDB.at("a___b").read() == {"n": 2}


def _big(tag: str) -> dict:
    # Same keys and the same value lengths in both files, so byte offsets coincide.
    pad = "p" * padding_size()
    return {"k1": f"{tag}-value-1", "k2": {"x": f"{tag}-value-2"}, "pad": pad, "z": f"{tag}-last"}


def test_index_of_one_name_is_never_used_for_the_other():
    DDB.at("a/b").create(_big("AAA"))
    DDB.at("a___b").create(_big("BBB"))
    for _ in range(2):
        assert DDB.at("a/b", key="k1").read() == "AAA-value-1"
        assert DDB.at("a___b", key="k1").read() == "BBB-value-1"
        assert DDB.at("a/b", key="z").read() == "AAA-last"
        assert DDB.at("a___b", key="z").read() == "BBB-last"
    with DDB.at("a/b", key="k2").session() as (session, value):
        value["x"] = "AAA-now-a-much-longer-value"
        session.write()
    assert DDB.at("a/b", key="z").read() == "AAA-last"
    assert DDB.at("a___b", key="z").read() == "BBB-last"
    assert DDB.at("a___b", key="k2").read() == {"x": "BBB-value-2"}
    assert DDB.at("a/b", key="k2").read() == {"x": "AAA-now-a-much-longer-value"}
    assert b"AAA" not in raw_json("a___b")
    assert b"BBB" not in raw_json("a/b")


def test_backslash_name_is_the_same_database_as_slash_name():
    DDB.at("a\\b").create({"v": 1})
    assert DDB.at("a/b").read() == {"v": 1}
    assert DDB.at("a", "b", key="v").read() == 1


def test_a_folder_listing_sees_names_as_splitext_would():
    """File names that are only dots and a suffix name no database; dots elsewhere are part
    of the name; other files are not databases."""
    DDB.at("f", "plain").create({"n": 1})
    folder = os.path.join(DDB.config.storage_directory, "f")
    for odd in ("..json", "...ddb", ".json", ".ddb", "notes.txt", "a.b.json", ".hidden.json"):
        with open(os.path.join(folder, odd), "wb") as handle:
            handle.write(b'{"odd": true}')
    assert sorted(DDB.at("f", "*").read()) == [".hidden", "a.b", "plain"]
