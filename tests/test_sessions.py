"""Sessions: full, key, where and folder sessions; write() rules; failures write nothing."""

from __future__ import annotations

import copy
import math

import pytest
from ddb_test_helpers import ddb_path, disk_bytes, json_path, padding_size
from path_dict import PathDict

import dictdatabase as DDB
from dictdatabase import errors, sessions

USERS = {
    "u1": {"name": "Alice", "age": 25, "status": "active"},
    "u2": {"name": "Bob", "age": 30, "status": "inactive"},
    "u3": {"name": "Carol", "age": 16, "status": "active"},
}


def _copy(data):
    return copy.deepcopy(data)


@pytest.fixture
def users():
    DDB.at("users").create(USERS)
    return disk_bytes("users")


def _assert_unlocked(name: str) -> None:
    """A fresh session on ``name`` can be opened and closed at once: no lock is left behind."""
    with DDB.at(name).session() as (session, _):
        assert session is not None


# ---------------------------------------------------------------------------
# full-file sessions


def test_full_session_writes(users):
    with DDB.at("users").session() as (session, data):
        assert isinstance(session, sessions.SessionFileFull)
        assert isinstance(session, sessions.SessionBase)
        assert data == USERS
        data["u1"]["age"] = 26
        data["u4"] = {"name": "Dan", "age": 40, "status": "active"}
        del data["u2"]
        session.write()
    expected = {
        "u1": {"name": "Alice", "age": 26, "status": "active"},
        "u3": USERS["u3"],
        "u4": {"name": "Dan", "age": 40, "status": "active"},
    }
    assert DDB.at("users").read() == expected


def test_full_session_without_write_changes_nothing(users):
    with DDB.at("users").session() as (_, data):
        data["u1"]["age"] = 99
        data.clear()
    assert disk_bytes("users") == users


def test_full_session_with_as_type(users):
    with DDB.at("users").session(as_type=dict) as (session, data):
        assert isinstance(data, dict)
        data["u9"] = {"name": "Zed"}
        session.write()
    assert DDB.at("users", key="u9").read() == {"name": "Zed"}


def test_sessions_with_as_type_pathdict(users):
    with DDB.at("users").session(as_type=PathDict) as (session, data):
        assert isinstance(data, PathDict)
        data["u1", "age"] = 27
        session.write()
    assert DDB.at("users", key="u1").read()["age"] == 27
    with DDB.at("users", key="u2").session(as_type=PathDict) as (session, user):
        assert isinstance(user, PathDict)
        user["age"] = 31
        session.write()
    assert DDB.at("users", key="u2").read()["age"] == 31
    with DDB.at("users", where=lambda k, v: v["age"] < 18).session(as_type=PathDict) as (session, young):
        assert isinstance(young, PathDict)
        assert young.get() == {"u3": USERS["u3"]}
        young["u3", "status"] = "minor"
        session.write()
    assert DDB.at("users", key="u3").read()["status"] == "minor"


def test_full_session_on_compressed_file():
    DDB.config.use_compression = True
    DDB.at("c").create({"a": 1})
    with DDB.at("c").session() as (session, data):
        data["b"] = 2
        session.write()
    assert ddb_path("c").exists()
    assert not json_path("c").exists()
    assert DDB.at("c").read() == {"a": 1, "b": 2}


def test_several_writes_in_one_session_all_commit(users):
    with DDB.at("users").session() as (session, data):
        data["step"] = 1
        session.write()
        assert DDB.at("users", key="step").read(force=True) == 1
        data["step"] = 2
        session.write()
    assert DDB.at("users", key="step").read() == 2


def test_data_changed_after_last_write_is_not_written(users):
    with DDB.at("users").session() as (session, data):
        data["step"] = 1
        session.write()
        data["step"] = 2
    assert DDB.at("users", key="step").read() == 1


# ---------------------------------------------------------------------------
# key sessions


def test_key_session_writes_one_value(users):
    with DDB.at("users", key="u1").session() as (session, user):
        assert isinstance(session, sessions.SessionFileKey)
        assert user == USERS["u1"]
        user["age"] = 26
        user["last_updated"] = "2024-01-01"
        session.write()
    expected = _copy(USERS)
    expected["u1"].update(age=26, last_updated="2024-01-01")
    assert DDB.at("users").read() == expected


def test_key_session_on_list_value():
    DDB.at("f").create({"a": [1, 2], "b": "x"})
    with DDB.at("f", key="a").session() as (session, lst):
        lst.append(3)
        session.write()
    assert DDB.at("f").read() == {"a": [1, 2, 3], "b": "x"}


def test_key_session_on_null_value_is_allowed():
    DDB.at("f").create({"a": None, "b": 1})
    with DDB.at("f", key="a").session() as (session, value):
        assert value is None
        session.write()
    assert DDB.at("f").read() == {"a": None, "b": 1}


def test_key_session_without_write_changes_nothing(users):
    with DDB.at("users", key="u2").session() as (_, user):
        user["age"] = 1000
    assert disk_bytes("users") == users


def test_key_session_on_large_file():
    data = {"a": {"n": 1}, "m": "x" * padding_size(), "z": {"n": 2}}
    DDB.at("big").create(data)
    with DDB.at("big", key="a").session() as (session, value):
        value["n"] = "much longer value than before"
        session.write()
    data["a"]["n"] = "much longer value than before"
    assert DDB.at("big").read() == data
    assert DDB.at("big", key="z").read() == {"n": 2}


# ---------------------------------------------------------------------------
# where sessions


def test_where_session_modifies_matching_items(users):
    with DDB.at("users", where=lambda k, v: v["age"] < 18).session() as (session, young):
        assert isinstance(session, sessions.SessionFileWhere)
        assert young == {"u3": USERS["u3"]}
        for user in young.values():
            user["status"] = "minor"
            user["requires_consent"] = True
        session.write()
    expected = _copy(USERS)
    expected["u3"].update(status="minor", requires_consent=True)
    assert DDB.at("users").read() == expected


def test_where_session_delete_and_add(users):
    with DDB.at("users", where=lambda k, v: v["status"] == "active").session() as (session, active):
        assert set(active) == {"u1", "u3"}
        del active["u1"]
        active["u5"] = {"name": "Eve", "age": 50, "status": "active"}
        session.write()
    assert DDB.at("users").read() == {
        "u2": USERS["u2"],
        "u3": USERS["u3"],
        "u5": {"name": "Eve", "age": 50, "status": "active"},
    }


def test_where_session_with_no_match(users):
    with DDB.at("users", where=lambda k, v: False).session() as (session, matched):
        assert matched == {}
        session.write()
    assert DDB.at("users").read() == USERS


def test_where_session_without_write_changes_nothing(users):
    with DDB.at("users", where=lambda k, v: True).session() as (_, matched):
        matched.clear()
    assert disk_bytes("users") == users


# ---------------------------------------------------------------------------
# folder sessions


@pytest.fixture
def purchases():
    DDB.at("purchases", "1").create({"item": "book", "date": "2024-02-01"})
    DDB.at("purchases", "2").create({"item": "pen", "date": "2023-05-01"})
    DDB.at("purchases", "3").create({"item": "ink", "date": "2024-06-01"})


def test_dir_session_writes_every_document(purchases):
    with DDB.at("purchases", "*").session() as (session, docs):
        assert isinstance(session, sessions.SessionDirFull)
        assert set(docs) == {"1", "2", "3"}
        for doc in docs.values():
            doc["processed"] = True
        session.write()
    for name in ("1", "2", "3"):
        assert DDB.at("purchases", name, key="processed").read() is True


def test_dir_session_new_name_creates_file_removed_name_untouched(purchases):
    with DDB.at("purchases/*").session() as (session, docs):
        docs["4"] = {"item": "new"}
        del docs["1"]
        docs["2"]["item"] = "pencil"
        session.write()
    assert DDB.at("purchases", "4").read() == {"item": "new"}
    assert DDB.at("purchases", "1").read() == {"item": "book", "date": "2024-02-01"}
    assert DDB.at("purchases", "2").read() == {"item": "pencil", "date": "2023-05-01"}


def test_dir_session_without_write_changes_nothing(purchases):
    before = {n: disk_bytes(f"purchases/{n}") for n in ("1", "2", "3")}
    with DDB.at("purchases", "*").session() as (_, docs):
        for doc in docs.values():
            doc.clear()
    assert {n: disk_bytes(f"purchases/{n}") for n in ("1", "2", "3")} == before


@pytest.mark.parametrize("compression_now", [True, False])
def test_dir_session_with_non_object_documents(compression_now):
    DDB.at("mixed", "lst").create([1, 2])
    DDB.at("mixed", "num").create(5)
    DDB.at("mixed", "neg").create(-5)
    DDB.at("mixed", "flag").create(True)
    DDB.at("mixed", "nothing").create("")
    DDB.at("mixed", "obj").create({"a": 1})
    DDB.config.use_compression = compression_now
    with DDB.at("mixed", "*").session() as (session, docs):
        docs["lst"].append(3)
        docs["obj"]["b"] = 2
        session.write()
    assert DDB.at("mixed", "*").read() == {
        "lst": [1, 2, 3],
        "num": 5,
        "neg": -5,
        "flag": True,
        "nothing": "",
        "obj": {"a": 1, "b": 2},
    }


def test_dir_where_session(purchases):
    with DDB.at("purchases", "*", where=lambda k, v: v["date"] > "2024-01-01").session() as (
        session,
        docs,
    ):
        assert isinstance(session, sessions.SessionDirWhere)
        assert set(docs) == {"1", "3"}
        for doc in docs.values():
            doc["recent"] = True
        session.write()
    assert DDB.at("purchases", "1", key="recent").read() is True
    assert DDB.at("purchases", "3", key="recent").read() is True
    assert DDB.at("purchases", "2").read() == {"item": "pen", "date": "2023-05-01"}


def test_dir_where_session_filters_by_name(purchases):
    with DDB.at("purchases/*", where=lambda k, v: k == "2").session() as (session, docs):
        assert docs == {"2": {"item": "pen", "date": "2023-05-01"}}
        docs["2"]["x"] = 1
        session.write()
    assert DDB.at("purchases", "2", key="x").read() == 1


# ---------------------------------------------------------------------------
# write() permission and sessions without `with`


def test_write_before_entering_is_a_permission_error(users):
    session = DDB.at("users").session()
    with pytest.raises(errors.PermissionError) as info:
        session.write()
    assert isinstance(info.value, PermissionError)
    assert disk_bytes("users") == users


def test_write_after_exit_is_a_permission_error(users):
    with DDB.at("users").session() as (session, data):
        data["x"] = 1
    with pytest.raises(PermissionError):
        session.write()
    assert disk_bytes("users") == users


@pytest.mark.parametrize(
    "chooser",
    [lambda: DDB.at("users", key="u1"), lambda: DDB.at("users", where=lambda k, v: True)],
    ids=["key", "where"],
)
def test_write_after_exit_of_partial_sessions_is_a_permission_error(users, chooser):
    with chooser().session() as (session, _):
        pass
    with pytest.raises(errors.PermissionError):
        session.write()


def test_session_without_with(users):
    session, data = DDB.at("users").session()
    assert session.is_closed is False
    data["u1"]["age"] = 77
    session.write()
    session.close()
    assert session.is_closed is True
    assert DDB.at("users", key="u1").read()["age"] == 77
    with pytest.raises(errors.PermissionError):
        session.write()
    _assert_unlocked("users")


def test_key_session_without_with(users):
    session, user = DDB.at("users", key="u2").session()
    user["age"] = 31
    session.write()
    session.close()
    assert session.is_closed
    assert DDB.at("users", key="u2").read()["age"] == 31
    _assert_unlocked("users")


def test_close_without_write_writes_nothing_and_releases(users):
    session, data = DDB.at("users").session()
    data.clear()
    session.close()
    assert session.is_closed is True
    assert disk_bytes("users") == users
    _assert_unlocked("users")


def test_close_twice_is_harmless(users):
    session, _ = DDB.at("users").session()
    session.close()
    session.close()
    assert session.is_closed is True


def test_with_block_closes_session(users):
    with DDB.at("users").session() as (session, _):
        assert session.is_closed is False
    assert session.is_closed is True


# ---------------------------------------------------------------------------
# exceptions inside the block


class Boom(Exception):
    pass


@pytest.mark.parametrize(
    "chooser",
    [
        lambda: DDB.at("users"),
        lambda: DDB.at("users", key="u1"),
        lambda: DDB.at("users", where=lambda k, v: True),
    ],
    ids=["full", "key", "where"],
)
def test_exception_in_block_writes_nothing(users, chooser):
    with pytest.raises(Boom), chooser().session() as (_, data):
        data.clear()
        raise Boom
    assert disk_bytes("users") == users
    _assert_unlocked("users")


def test_exception_after_write_keeps_committed_write(users):
    with pytest.raises(Boom), DDB.at("users").session() as (session, data):
        data["committed"] = True
        session.write()
        data["not_committed"] = True
        raise Boom
    after = DDB.at("users").read()
    assert after["committed"] is True
    assert "not_committed" not in after
    _assert_unlocked("users")


def test_exception_in_dir_session_writes_nothing(purchases):
    before = {n: disk_bytes(f"purchases/{n}") for n in ("1", "2", "3")}
    with pytest.raises(Boom), DDB.at("purchases", "*").session() as (_, docs):
        docs["1"]["x"] = 1
        docs["9"] = {"new": True}
        raise Boom
    assert {n: disk_bytes(f"purchases/{n}") for n in ("1", "2", "3")} == before
    assert DDB.at("purchases", "9").exists() is False


# ---------------------------------------------------------------------------
# serialisation errors


BAD_VALUES = [
    pytest.param({1, 2}, id="set"),
    pytest.param({1: "int key"}, id="int-key"),
    pytest.param({("t",): "tuple key"}, id="tuple-key"),
    pytest.param(object(), id="object"),
]


def _assert_serialization_error(exc):
    assert isinstance(exc, errors.SerializationError)
    assert isinstance(exc, TypeError)
    assert isinstance(exc, ValueError)


@pytest.mark.parametrize("use_orjson", [True, False])
@pytest.mark.parametrize("bad", BAD_VALUES)
def test_full_session_serialisation_error_changes_no_byte(users, use_orjson, bad):
    DDB.config.use_orjson = use_orjson
    with pytest.raises(errors.SerializationError) as info, DDB.at("users").session() as (session, data):
        data["u1"]["bad"] = bad
        session.write()
    _assert_serialization_error(info.value)
    assert disk_bytes("users") == users
    _assert_unlocked("users")


@pytest.mark.parametrize("use_orjson", [True, False])
@pytest.mark.parametrize("bad", BAD_VALUES)
def test_key_session_serialisation_error_changes_no_byte(users, use_orjson, bad):
    DDB.config.use_orjson = use_orjson
    with pytest.raises(errors.SerializationError), DDB.at("users", key="u2").session() as (session, user):
        user["bad"] = bad
        session.write()
    assert disk_bytes("users") == users
    _assert_unlocked("users")


@pytest.mark.parametrize("use_orjson", [True, False])
def test_where_session_serialisation_error_changes_no_byte(users, use_orjson):
    DDB.config.use_orjson = use_orjson
    where_chooser = DDB.at("users", where=lambda k, v: True)
    with pytest.raises(errors.SerializationError), where_chooser.session() as (session, matched):
        matched["u1"]["bad"] = {1, 2}
        session.write()
    assert disk_bytes("users") == users


def test_non_str_top_level_key_is_rejected(users):
    with pytest.raises(errors.SerializationError), DDB.at("users").session() as (session, data):
        data[5] = "five"
        session.write()
    assert disk_bytes("users") == users


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_with_standard_json_is_a_serialisation_error(users, bad):
    DDB.config.use_orjson = False
    with pytest.raises(errors.SerializationError), DDB.at("users").session() as (session, data):
        data["u1"]["score"] = bad
        session.write()
    assert disk_bytes("users") == users


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_nan_with_standard_json_in_key_session(users, bad):
    DDB.config.use_orjson = False
    with pytest.raises(errors.SerializationError), DDB.at("users", key="u1").session() as (session, user):
        user["score"] = bad
        session.write()
    assert disk_bytes("users") == users


def test_serialisation_error_caught_inside_block_leaves_file_and_session_usable(users):
    with DDB.at("users").session() as (session, data):
        data["bad"] = {1}
        with pytest.raises(errors.SerializationError):
            session.write()
        assert disk_bytes("users") == users
        del data["bad"]
        data["good"] = 1
        session.write()
    assert DDB.at("users", key="good").read() == 1


@pytest.mark.parametrize("use_orjson", [True, False])
@pytest.mark.parametrize("bad", BAD_VALUES)
def test_create_with_unserialisable_data_creates_nothing(use_orjson, bad):
    DDB.config.use_orjson = use_orjson
    with pytest.raises(errors.SerializationError):
        DDB.at("fresh").create({"a": bad})
    assert DDB.at("fresh").exists() is False
    assert not json_path("fresh").exists()


def test_create_force_overwrite_with_unserialisable_data_changes_no_byte(users):
    with pytest.raises(errors.SerializationError):
        DDB.at("users").create({"a": {1, 2}}, force_overwrite=True)
    assert disk_bytes("users") == users


# ---------------------------------------------------------------------------
# missing file / key


@pytest.mark.parametrize(
    "chooser",
    [
        lambda: DDB.at("missing"),
        lambda: DDB.at("missing", key="k"),
        lambda: DDB.at("missing", where=lambda k, v: True),
    ],
    ids=["full", "key", "where"],
)
def test_session_on_missing_file_is_file_not_found(chooser):
    with pytest.raises(errors.FileNotFoundError) as info, chooser().session():
        pass
    assert isinstance(info.value, FileNotFoundError)
    assert not json_path("missing").exists()
    assert not ddb_path("missing").exists()


def test_key_session_on_missing_key_is_key_error(users):
    with pytest.raises(errors.KeyNotFoundError) as info, DDB.at("users", key="nonexistent").session():
        pass
    assert isinstance(info.value, KeyError)
    assert disk_bytes("users") == users
    _assert_unlocked("users")


def test_key_session_on_nested_key_is_key_error():
    DDB.at("f").create({"outer": {"inner": 1}})
    with pytest.raises(KeyError), DDB.at("f", key="inner").session():
        pass


def test_session_on_missing_file_without_with():
    with pytest.raises(errors.FileNotFoundError):
        _session, _data = DDB.at("missing").session()


# ---------------------------------------------------------------------------
# optimistic sessions


def test_optimistic_session_without_conflict_writes(users):
    with DDB.at("users").session(optimistic=True) as (session, data):
        data["u1"]["age"] = 26
        session.write()
    assert DDB.at("users", key="u1").read()["age"] == 26


def test_optimistic_full_session_conflict(users):
    other = {"other": "writer"}
    with DDB.at("users").session(optimistic=True) as (session, data):
        # Another writer changes the file between our read and our write.
        DDB.at("users").create(other, force_overwrite=True)
        data["u1"]["age"] = 26
        with pytest.raises(errors.ConcurrentWriteError):
            session.write()
    assert DDB.at("users").read() == other


def test_optimistic_key_session_conflict(users):
    with DDB.at("users", key="u1").session(optimistic=True) as (session, user):
        changed = dict(USERS, u1={"name": "Alice", "age": 99, "status": "active"})
        DDB.at("users").create(changed, force_overwrite=True)
        user["age"] = 26
        with pytest.raises(errors.ConcurrentWriteError):
            session.write()
    assert DDB.at("users", key="u1").read()["age"] == 99


def test_optimistic_conflict_propagates_out_of_block(users):
    other = {"other": "writer"}
    with pytest.raises(errors.ConcurrentWriteError), DDB.at("users").session(optimistic=True) as (
        session,
        data,
    ):
        DDB.at("users").create(other, force_overwrite=True)
        data.clear()
        session.write()
    assert DDB.at("users").read() == other
    _assert_unlocked("users")


def test_optimistic_session_after_delete_conflicts(users):
    with DDB.at("users").session(optimistic=True) as (session, data):
        DDB.at("users").delete()
        data["x"] = 1
        with pytest.raises(errors.ConcurrentWriteError):
            session.write()
    assert DDB.at("users").exists() is False
