"""Canonical file bytes (ruling 3) for every use_compression x use_orjson x indent setting."""

from __future__ import annotations

import copy
import json
import zlib

import pytest
from ddb_test_helpers import (
    ALL_FMTS,
    Fmt,
    current_canonical,
    ddb_path,
    json_path,
    padding_size,
    raw_json,
    write_json_file,
)

import dictdatabase as DDB
from dictdatabase import errors

SAMPLE = {
    "users": {"u1": {"name": "Ålice 中文 😀", "age": 25, "tags": ["a", "b"], "score": 1.5}},
    "zeta": [1, 2, {"nested": [True, False, None]}],
    "empty_obj": {},
    "empty_list": [],
    "escapes": 'quote " backslash \\ newline \n tab \t ctrl \x01 slash /',
    "ünïcode-kéy": "välue",
    "num": -12345,
    "float": 3.25,
    "null": None,
    "bool": True,
    "braces": '{"b": 1} }{ [',
    "a": {"users": "shadow of a top-level name", "zeta": {"a": 1}},
}


def _assert_canonical(name: str, fmt: Fmt, expected) -> None:
    assert raw_json(name) == fmt.encode(expected)
    path = json_path(name) if fmt.ext == ".json" else ddb_path(name)
    other = ddb_path(name) if fmt.ext == ".json" else json_path(name)
    assert path.exists()
    assert not other.exists()


def test_create_writes_canonical_bytes(fmt):
    DDB.at("db").create(SAMPLE)
    _assert_canonical("db", fmt, SAMPLE)
    assert DDB.at("db").read() == SAMPLE


def test_create_default_empty_dict_is_canonical(fmt):
    DDB.at("db").create()
    _assert_canonical("db", fmt, {})


def test_create_in_subfolder_is_canonical(fmt):
    DDB.at("sub", "db").create(SAMPLE)
    _assert_canonical("sub/db", fmt, SAMPLE)


def test_compressed_file_is_zlib(fmt):
    DDB.at("db").create(SAMPLE)
    if fmt.use_compression:
        stored = ddb_path("db").read_bytes()
        assert stored[:1] == b"\x78"  # zlib header
        assert zlib.decompress(stored) == fmt.encode(SAMPLE)
    else:
        assert json_path("db").read_bytes() == fmt.encode(SAMPLE)


def test_full_session_writes_canonical_bytes(fmt):
    DDB.at("db").create(SAMPLE)
    expected = copy.deepcopy(SAMPLE)
    with DDB.at("db").session() as (session, data):
        data["users"]["u2"] = {"name": "Bob", "age": 30}
        data["new"] = "Ω"
        del data["braces"]
        expected["users"]["u2"] = {"name": "Bob", "age": 30}
        expected["new"] = "Ω"
        del expected["braces"]
        session.write()
    _assert_canonical("db", fmt, expected)


KEY_EDITS = {
    "grow-dict": ("users", lambda v: v["u1"].update(extra="longer than before")),
    "shrink-dict": ("users", lambda v: v.clear()),
    "grow-list": ("zeta", lambda v: v.append({"k": "vvvvvvvvvv"})),
    "shrink-list": ("zeta", lambda v: v.pop()),
    "fill-empty-obj": ("empty_obj", lambda v: v.update(x=1, y=[1, 2])),
    "fill-empty-list": ("empty_list", lambda v: v.extend([1, "é"])),
    "shadow-key": ("a", lambda v: v.update(users="changed", b=2)),
    "no-change": ("users", lambda v: None),
}


@pytest.mark.parametrize("edit", list(KEY_EDITS), ids=list(KEY_EDITS))
def test_key_session_writes_canonical_bytes(fmt, edit):
    key, change = KEY_EDITS[edit]
    DDB.at("db").create(SAMPLE)
    expected = copy.deepcopy(SAMPLE)
    change(expected[key])
    with DDB.at("db", key=key).session() as (session, value):
        change(value)
        session.write()
    _assert_canonical("db", fmt, expected)
    for k, v in expected.items():
        assert DDB.at("db", key=k).read() == v


def test_where_session_writes_canonical_bytes(fmt):
    DDB.at("db").create(SAMPLE)
    expected = copy.deepcopy(SAMPLE)
    with DDB.at("db", where=lambda k, v: isinstance(v, (dict, list))).session() as (session, part):
        part["users"]["u1"]["age"] = 26
        del part["zeta"]
        part["added"] = {"é": [1, 2, 3]}
        session.write()
    expected["users"]["u1"]["age"] = 26
    del expected["zeta"]
    expected["added"] = {"é": [1, 2, 3]}
    _assert_canonical("db", fmt, expected)


def test_update_writes_canonical_bytes(fmt):
    DDB.at("db").create(SAMPLE)
    DDB.at("db").update({"num": 1, "zz": {"b": 2, "a": 1}})
    expected = dict(SAMPLE, num=1, zz={"a": 1, "b": 2})
    _assert_canonical("db", fmt, expected)


def test_key_delete_writes_canonical_bytes(fmt):
    DDB.at("db").create(SAMPLE)
    DDB.at("db", key="users").delete()
    expected = dict(SAMPLE)
    del expected["users"]
    _assert_canonical("db", fmt, expected)


def test_where_delete_writes_canonical_bytes(fmt):
    DDB.at("db").create(SAMPLE)
    DDB.at("db", where=lambda k, v: v is None or v == []).delete()
    expected = {k: v for k, v in SAMPLE.items() if k not in ("null", "empty_list")}
    _assert_canonical("db", fmt, expected)


def test_dir_session_writes_canonical_bytes(fmt):
    DDB.at("docs", "one").create({"b": 1, "a": "é"})
    DDB.at("docs", "two").create({"x": [1, {"y": None}]})
    with DDB.at("docs", "*").session() as (session, docs):
        docs["one"]["c"] = {"z": 1, "y": 2}
        docs["two"]["x"].append("more")
        docs["three"] = {"new": True}
        session.write()
    _assert_canonical("docs/one", fmt, {"a": "é", "b": 1, "c": {"y": 2, "z": 1}})
    _assert_canonical("docs/two", fmt, {"x": [1, {"y": None}, "more"]})
    _assert_canonical("docs/three", fmt, {"new": True})


def test_key_session_on_large_file_is_canonical(fmt):
    data = {f"k{i:03d}": {"i": i, "text": "é" * (i % 7)} for i in range(100)}
    data["m_pad"] = '{"b": 1} ' * (padding_size() // 9 + 1)
    DDB.at("big").create(data)
    assert DDB.at("big", key="k050").read() == data["k050"]
    with DDB.at("big", key="k010").session() as (session, value):
        value["text"] = "changed to something much longer ü"
        session.write()
    data["k010"]["text"] = "changed to something much longer ü"
    _assert_canonical("big", fmt, data)
    assert DDB.at("big", key="k099").read() == data["k099"]
    assert DDB.at("big", key="k010").read() == data["k010"]


@pytest.mark.parametrize("source", [ALL_FMTS[0], ALL_FMTS[8], ALL_FMTS[12]], ids=lambda f: f"from-{f.id}")
def test_partial_write_uses_current_settings(fmt, source):
    """A file written with other settings becomes canonical for the current ones on any write."""
    source.apply()
    DDB.at("db").create(SAMPLE)
    fmt.apply()
    expected = copy.deepcopy(SAMPLE)
    expected["users"]["u1"]["age"] = 99
    with DDB.at("db", key="users").session() as (session, value):
        value["u1"]["age"] = 99
        session.write()
    _assert_canonical("db", fmt, expected)


# ---------------------------------------------------------------------------
# compression switching


def test_switch_compression_on_reads_same_data_then_converts():
    DDB.config.use_compression = False
    DDB.at("db").create(SAMPLE)
    assert json_path("db").exists()
    DDB.config.use_compression = True
    assert DDB.at("db").read() == SAMPLE
    assert DDB.at("db", key="users").read() == SAMPLE["users"]
    assert DDB.at("db").exists() is True
    with DDB.at("db").session() as (session, data):
        data["x"] = 1
        session.write()
    assert ddb_path("db").exists()
    assert not json_path("db").exists()
    assert zlib.decompress(ddb_path("db").read_bytes()) == current_canonical(dict(SAMPLE, x=1))


def test_switch_compression_off_reads_same_data_then_converts():
    DDB.config.use_compression = True
    DDB.at("db").create(SAMPLE)
    assert ddb_path("db").exists()
    DDB.config.use_compression = False
    assert DDB.at("db").read() == SAMPLE
    assert DDB.at("db", key="zeta").read() == SAMPLE["zeta"]
    with DDB.at("db", key="users").session() as (session, users):
        users["u9"] = {}
        session.write()
    assert json_path("db").exists()
    assert not ddb_path("db").exists()
    expected = copy.deepcopy(SAMPLE)
    expected["users"]["u9"] = {}
    assert json_path("db").read_bytes() == current_canonical(expected)


@pytest.mark.parametrize("compress_first", [True, False])
def test_update_and_force_overwrite_convert(compress_first):
    DDB.config.use_compression = compress_first
    DDB.at("a").create({"v": 1})
    DDB.at("b").create({"v": 1})
    DDB.config.use_compression = not compress_first
    DDB.at("a").update({"w": 2})
    DDB.at("b").create({"v": 2}, force_overwrite=True)
    new, old = (json_path, ddb_path) if compress_first else (ddb_path, json_path)
    for name in ("a", "b"):
        assert new(name).exists()
        assert not old(name).exists()
    assert DDB.at("a").read() == {"v": 1, "w": 2}
    assert DDB.at("b").read() == {"v": 2}


def test_switch_back_and_forth_keeps_one_file():
    DDB.at("db").create({"n": 0})
    for i in range(1, 5):
        DDB.config.use_compression = i % 2 == 1
        with DDB.at("db").session() as (session, data):
            data["n"] = i
            session.write()
        assert json_path("db").exists() != ddb_path("db").exists()
        assert DDB.at("db").read() == {"n": i}


def test_delete_after_switch_removes_the_file():
    DDB.config.use_compression = True
    DDB.at("db").create(SAMPLE)
    DDB.config.use_compression = False
    DDB.at("db").delete()
    assert not ddb_path("db").exists()
    assert not json_path("db").exists()


def test_create_after_switch_on_existing_file_is_file_exists():
    DDB.config.use_compression = True
    DDB.at("db").create(SAMPLE)
    DDB.config.use_compression = False
    with pytest.raises(errors.FileExistsError):
        DDB.at("db").create({})
    assert not json_path("db").exists()


# ---------------------------------------------------------------------------
# both forms present


@pytest.fixture
def both_forms():
    write_json_file("db", b'{"a": 1}')
    write_json_file("db", b'{"a": 2}', compressed=True)


@pytest.mark.parametrize(
    "operation",
    [
        lambda: DDB.at("db").read(),
        lambda: DDB.at("db", key="a").read(),
        lambda: DDB.at("db", where=lambda k, v: True).read(),
    ],
    ids=["read", "key-read", "where-read"],
)
def test_both_json_and_ddb_present_is_file_exists(both_forms, operation):
    with pytest.raises(errors.FileExistsError) as info:
        operation()
    assert isinstance(info.value, FileExistsError)
    message = str(info.value)
    assert "db.json" in message
    assert "db.ddb" in message


def test_both_forms_present_session_is_file_exists_and_writes_nothing(both_forms):
    before = (json_path("db").read_bytes(), ddb_path("db").read_bytes())
    with pytest.raises(errors.FileExistsError), DDB.at("db").session() as (session, data):
        data["x"] = 1
        session.write()
    assert (json_path("db").read_bytes(), ddb_path("db").read_bytes()) == before


@pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
def test_integers_beyond_64_bits_round_trip_with_the_json_encoder(large):
    """orjson reads such integers as floats; with use_orjson = False (the encoder that can
    write them) every read, cached or not, and every session keeps them exact."""
    DDB.config.use_orjson = False
    big = {"pos": 2**70, "neg": -(2**63) - 1, "u64": 2**64 - 1, "text": "1234567890123456789012"}
    data = {"big": big, "n": 1}
    if large:
        data["pad"] = ["x" * 100] * (padding_size() // 100 + 1)
    DDB.at("ints").create(data)
    for _ in range(3):  # the later reads come from the read cache
        assert DDB.at("ints", key="big").read() == big
        assert DDB.at("ints").read()["big"] == big
    assert DDB.at("*").read()["ints"]["big"] == big
    with DDB.at("ints", key="big").session() as (session, value):
        value["pos"] += 1
        session.write()
    with DDB.at("ints").session() as (session, whole):
        whole["n"] += 1
        session.write()
    stored = json.loads(raw_json("ints"))
    assert stored["big"] == {**big, "pos": 2**70 + 1}
    assert type(stored["big"]["pos"]) is int
    assert stored["n"] == 2
