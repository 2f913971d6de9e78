"""The error hierarchy (ruling 11) and pickling of real error instances."""

from __future__ import annotations

import builtins
import json
import pickle

import pytest
from ddb_test_helpers import write_json_file

import dictdatabase as DDB
from dictdatabase import errors, locking

HIERARCHY = [
    ("FileNotFoundError", (builtins.FileNotFoundError,)),
    ("FileExistsError", (builtins.FileExistsError,)),
    ("PermissionError", (builtins.PermissionError,)),
    ("KeyNotFoundError", (KeyError,)),
    ("InvalidNameError", (ValueError,)),
    ("SerializationError", (TypeError, ValueError)),
    ("CorruptedFileError", (json.JSONDecodeError, ValueError)),
    ("LockError", (RuntimeError,)),
    ("ConcurrentWriteError", ()),
]


def test_database_error_is_an_exception():
    assert issubclass(errors.DatabaseError, Exception)


@pytest.mark.parametrize(("name", "builtins_"), HIERARCHY, ids=[h[0] for h in HIERARCHY])
def test_each_error_is_a_database_error_and_its_builtin(name, builtins_):
    cls = getattr(errors, name)
    assert issubclass(cls, errors.DatabaseError)
    for base in builtins_:
        assert issubclass(cls, base), f"{name} should subclass {base.__name__}"


def test_error_names_do_not_replace_builtins_in_namespace():
    # errors.FileNotFoundError is a distinct class, the built-in is untouched.
    assert errors.FileNotFoundError is not builtins.FileNotFoundError
    assert builtins.FileNotFoundError.__module__ == "builtins"


# ---------------------------------------------------------------------------
# real instances, caught through their built-in and through DatabaseError


def _trigger_file_not_found():
    with DDB.at("missing").session():
        pass


def _trigger_file_exists():
    DDB.at("x").create()
    DDB.at("x").create()


def _trigger_permission():
    DDB.at("x").create()
    DDB.at("x").session().write()


def _trigger_key_not_found():
    DDB.at("x").create({"a": 1})
    with DDB.at("x", key="nope").session():
        pass


def _trigger_invalid_name():
    DDB.at("../escape").read()


def _trigger_serialization():
    DDB.at("x").create({"a": {1, 2}})


def _trigger_corrupted():
    write_json_file("bad", b'{"a": ')
    DDB.at("bad").read()


def _trigger_lock():
    DDB.at("x").create()
    with DDB.at("x").session(), DDB.at("x").session():
        pass


def _trigger_concurrent_write():
    DDB.at("x").create({"a": 1})
    with DDB.at("x").session(optimistic=True) as (session, data):
        DDB.at("x").create({"a": 2}, force_overwrite=True)
        data["a"] = 3
        session.write()


TRIGGERS = [
    ("FileNotFoundError", builtins.FileNotFoundError, _trigger_file_not_found),
    ("FileExistsError", builtins.FileExistsError, _trigger_file_exists),
    ("PermissionError", builtins.PermissionError, _trigger_permission),
    ("KeyNotFoundError", KeyError, _trigger_key_not_found),
    ("InvalidNameError", ValueError, _trigger_invalid_name),
    ("SerializationError", TypeError, _trigger_serialization),
    ("CorruptedFileError", json.JSONDecodeError, _trigger_corrupted),
    ("LockError", RuntimeError, _trigger_lock),
    ("ConcurrentWriteError", errors.DatabaseError, _trigger_concurrent_write),
]


@pytest.fixture
def short_lock_timeout(monkeypatch):
    # Only so that a missing same-thread check shows up as a quick failure, not a 60 s wait.
    monkeypatch.setattr(locking, "AQUIRE_LOCK_TIMEOUT", 2.0)


def _raised(trigger):
    try:
        trigger()
    except errors.DatabaseError as exc:
        return exc
    pytest.fail(f"{trigger.__name__} raised nothing")
    return None


@pytest.mark.parametrize(("name", "builtin", "trigger"), TRIGGERS, ids=[t[0] for t in TRIGGERS])
def test_real_errors_are_caught_by_old_and_new_except_clauses(short_lock_timeout, name, builtin, trigger):
    with pytest.raises(builtin) as info:
        trigger()
    assert type(info.value) is getattr(errors, name)
    assert isinstance(info.value, errors.DatabaseError)
    assert str(info.value)


@pytest.mark.parametrize(("name", "builtin", "trigger"), TRIGGERS, ids=[t[0] for t in TRIGGERS])
def test_real_errors_pickle_round_trip(short_lock_timeout, name, builtin, trigger):
    exc = _raised(trigger)
    assert type(exc) is getattr(errors, name)
    clone = pickle.loads(pickle.dumps(exc))
    assert type(clone) is type(exc)
    assert str(clone) == str(exc)
    assert clone.args == exc.args
    assert isinstance(clone, builtin)


def test_corrupted_error_keeps_its_attributes_through_pickle():
    exc = _raised(_trigger_corrupted)
    clone = pickle.loads(pickle.dumps(exc))
    for attr in ("msg", "doc", "pos", "lineno", "colno"):
        assert getattr(clone, attr) == getattr(exc, attr)
    assert "bad.json" in str(clone)


@pytest.mark.parametrize(
    "name", ["DatabaseError"] + [h[0] for h in HIERARCHY if h[0] != "CorruptedFileError"]
)
def test_errors_built_from_a_message_pickle(name):
    cls = getattr(errors, name)
    exc = cls("something went wrong with 'users'")
    clone = pickle.loads(pickle.dumps(exc))
    assert type(clone) is cls
    assert str(clone) == str(exc)
    assert "users" in str(clone)
