"""The spec's example code for Nodes 1-4, 6-10, 12, 14 and 15, run as written (adapted only where
the spec is not valid Python), asserting the outputs the spec states, under rulings 1-4."""

from __future__ import annotations

import ast
import datetime
import json
import os
import time

import orjson
import pytest
from ddb_test_helpers import canonical_bytes, json_path, raw_json, write_json_file
from path_dict import PathDict

import dictdatabase as DDB
from dictdatabase import byte_codes, config, io_bytes, io_safe, locking, utils
from dictdatabase.configuration import Confuguration
from dictdatabase.models import at


def test_module_imports():
    # "Module Import" section of the API usage guide.
    import dictdatabase
    from dictdatabase import io_unsafe

    assert DDB.config is config
    assert isinstance(config, Confuguration)
    assert at is DDB.at
    for module in (byte_codes, io_bytes, io_safe, io_unsafe, locking, utils):
        assert module.__name__.startswith("dictdatabase.")
    assert dictdatabase.at("x").path == "x"


def test_default_config_values():
    fresh = Confuguration()
    assert fresh.storage_directory == "ddb_storage"
    assert fresh.use_compression is False
    assert fresh.indent == "\t"
    assert fresh.use_orjson is True


# ---------------------------------------------------------------------------
# Node 1


def test_node1_path_selection():
    db = DDB.at("users", "profiles", "active")
    assert db.path == "users/profiles/active"

    db = DDB.at(["users", "profiles"], "active")
    assert db.path == "users/profiles/active"

    DDB.at("purchases", "file1").create({"item": "a"})
    DDB.at("purchases", "file2").create({"item": "b"})
    all_files = DDB.at("purchases/*").read()
    assert all_files == {"file1": {"item": "a"}, "file2": {"item": "b"}}

    DDB.at("users").create(
        {
            "u1": {"name": "Alice", "age": 25, "status": "active"},
            "u2": {"name": "Bob", "age": 30, "status": "inactive"},
        }
    )
    active_users = DDB.at("users", where=lambda k, v: v["status"] == "active").read()
    assert active_users == {"u1": {"name": "Alice", "age": 25, "status": "active"}}

    user_profile = DDB.at("users", key="u1").read()
    assert user_profile == {"name": "Alice", "age": 25, "status": "active"}


# ---------------------------------------------------------------------------
# Node 2


def test_node2_create_and_delete(capsys):
    DDB.at("users").create()
    assert DDB.at("users").exists() == True  # noqa: E712 - as the spec writes it

    users_data = {"u1": {"name": "Alice", "age": 25}, "u2": {"name": "Bob", "age": 30}}
    DDB.at("users").create(users_data, force_overwrite=True)

    assert DDB.at("users", key="u1").exists() == True  # noqa: E712
    assert DDB.at("users", key="nonexistent").exists() == False  # noqa: E712

    DDB.at("users").delete()
    assert DDB.at("users").exists() == False  # noqa: E712

    try:
        DDB.at("users", key="u1").create()
    except RuntimeError:
        print("Key-level creation operations are not supported")
    assert "Key-level creation operations are not supported" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# Node 3


def test_node3_reading_and_querying():
    DDB.at("users").create({"u1": {"name": "Alice", "age": 25}, "u2": {"name": "Bob", "age": 30}})

    users = DDB.at("users").read()
    assert users == {"u1": {"name": "Alice", "age": 25}, "u2": {"name": "Bob", "age": 30}}

    user_name = DDB.at("users", key="u1").read()
    assert user_name == {"name": "Alice", "age": 25}

    adult_users = DDB.at("users", where=lambda k, v: v["age"] >= 18).read()
    assert adult_users == {"u1": {"name": "Alice", "age": 25}, "u2": {"name": "Bob", "age": 30}}

    user_names = DDB.at("users", key="u1").read(as_type=str)
    # Ruling 2: as_type=str gives str(value), a Python repr, not the spec's JSON-looking text.
    assert isinstance(user_names, str)
    assert ast.literal_eval(user_names) == {"name": "Alice", "age": 25}

    DDB.config.use_compression = False
    users_uncompressed = DDB.at("users").read()
    DDB.config.use_compression = True
    users_compressed = DDB.at("users").read()
    assert users_uncompressed == users_compressed

    for name in ("order1", "order2", "order3"):
        DDB.at("purchases", name).create({"order": name})
    all_purchases = DDB.at("purchases/*").read()
    assert set(all_purchases) == {"order1", "order2", "order3"}
    assert all_purchases["order2"] == {"order": "order2"}


# ---------------------------------------------------------------------------
# Node 4


def test_node4_sessions():
    DDB.at("users").create(
        {"u1": {"name": "Alice", "age": 25}, "u2": {"name": "Bob", "age": 15}},
    )
    for name in ("p1", "p2"):
        DDB.at("purchases", name).create({"amount": 1})

    with DDB.at("users").session() as (session, users):
        users["u1"]["age"] = 26
        users["u3"] = {"name": "Charlie", "age": 35}
        session.write()
    assert DDB.at("users", key="u3").read() == {"name": "Charlie", "age": 35}

    with DDB.at("users", key="u1").session() as (session, user):
        user["age"] = 26
        user["last_updated"] = "2024-01-01"
        session.write()
    assert DDB.at("users", key="u1").read() == {"name": "Alice", "age": 26, "last_updated": "2024-01-01"}

    with DDB.at("users", where=lambda k, v: v["age"] < 18).session() as (session, young_users):
        for user in young_users.values():
            user["status"] = "minor"
            user["requires_consent"] = True
        session.write()
    assert DDB.at("users", key="u2").read() == {
        "name": "Bob",
        "age": 15,
        "status": "minor",
        "requires_consent": True,
    }
    assert "status" not in DDB.at("users", key="u3").read()

    with DDB.at("purchases/*").session() as (session, purchases):
        for purchase in purchases.values():
            purchase["processed"] = True
            purchase["processed_date"] = "2024-01-01"
        session.write()
    for name in ("p1", "p2"):
        assert DDB.at("purchases", name).read() == {
            "amount": 1,
            "processed": True,
            "processed_date": "2024-01-01",
        }

    # "Error handling and rollback" as written: a string is valid JSON, so nothing raises and
    # the write happens.
    try:
        with DDB.at("users").session() as (session, users):
            users["u1"]["age"] = "invalid_age"
            session.write()
    except TypeError:
        pytest.fail("a str value is serialisable; the spec's example raises nothing")
    assert DDB.at("users", key="u1").read()["age"] == "invalid_age"

    # The same pattern with data that really cannot be stored: TypeError, file unchanged.
    before = raw_json("users")
    rolled_back = False
    try:
        with DDB.at("users").session() as (session, users):
            users["u1"]["age"] = {"not", "json"}
            session.write()
    except TypeError:
        rolled_back = True
    assert rolled_back
    assert raw_json("users") == before


# ---------------------------------------------------------------------------
# Node 6


def test_node6_index(capsys):
    DDB.at("large_file").create({"key1": "value1", "key2": "value2"})

    value1 = DDB.at("large_file", key="key1").read()
    assert value1 == "value1"

    with DDB.at("large_file", key="key1").session() as (session, value):
        value = "updated_value1"  # noqa: PLW2901 - rebinding a local, as in the spec
        session.write()
    # Rebinding the name cannot change the stored value.
    assert DDB.at("large_file", key="key1").read() == "value1"

    start_time = time.time()
    value = DDB.at("large_file", key="key1").read()
    no_index_time = time.time() - start_time

    start_time = time.time()
    value = DDB.at("large_file", key="key1").read()
    with_index_time = time.time() - start_time

    print(f"Performance improvement: {no_index_time / with_index_time:.2f}x")
    assert value == "value1"
    assert "Performance improvement:" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# Node 7


def test_node7_io(capsys):
    DDB.at("users").create({"u1": {"name": "Alice"}})
    write_json_file("corrupted_file", b'{"broken": ')

    try:
        data = io_safe.read("users")
        print("File read successfully")
    except Exception as e:
        print(f"File read failed: {e}")
    assert data == {"u1": {"name": "Alice"}}

    partial_data = io_safe.partial_read("users", key="u1")
    print(f"Partial read result: {partial_data}")
    assert partial_data == {"name": "Alice"}

    io_bytes.write("test_file", b"Hello World")
    content = io_bytes.read("test_file")
    assert content == b"Hello World"

    partial_content = io_bytes.read("test_file", start=0, end=5)
    assert partial_content == b"Hello"

    DDB.config.use_compression = True
    DDB.at("compressed_users").create({"u1": {"name": "Alice"}})

    compressed_data = DDB.at("compressed_users").read()
    DDB.config.use_compression = False
    uncompressed_data = DDB.at("compressed_users").read()
    assert compressed_data == uncompressed_data

    recovered = False
    try:
        io_safe.read("corrupted_file")
    except json.JSONDecodeError:
        print("A corrupted JSON file was detected. Attempting to recover...")
        recovered = True
    assert recovered
    out = capsys.readouterr().out
    assert "File read successfully" in out
    assert "A corrupted JSON file was detected" in out


# ---------------------------------------------------------------------------
# Node 8


def test_node8_configuration(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)

    config.storage_directory = "./my_database"
    print(f"The database will be stored in: {config.storage_directory}")
    assert config.storage_directory == "./my_database"

    config.use_compression = True
    assert config.use_compression is True

    config.indent = 4
    assert config.indent == 4
    config.indent = "\t"
    assert config.indent == "\t"
    config.indent = None
    assert config.indent is None

    config.use_orjson = True
    assert config.use_orjson is True
    config.use_orjson = False
    assert config.use_orjson is False

    print("Current configuration:")
    print(f"  Storage directory: {config.storage_directory}")
    print(f"  Compression enabled: {config.use_compression}")
    print(f"  Indentation format: {config.indent!r}")
    print(f"  Using orjson: {config.use_orjson}")
    out = capsys.readouterr().out
    assert "Storage directory: ./my_database" in out
    assert "Indentation format: None" in out

    # The settings take effect: the file lands in ./my_database, compressed.
    DDB.at("cfg").create({"k": "v"})
    assert (tmp_path / "my_database" / "cfg.ddb").exists()
    assert DDB.at("cfg").read() == {"k": "v"}


# ---------------------------------------------------------------------------
# Node 9


def test_node9_utils(capsys):
    DDB.at("users").create({"u1": {"name": "Alice"}})
    DDB.at("users", "a").create({})
    DDB.at("users", "b").create({})

    file_info = utils.file_info("users")
    if file_info:
        print(f"File size: {file_info.size_bytes} bytes")
        print(f"Modification time: {file_info.modified_time}")
    assert file_info
    assert file_info.size_bytes == os.path.getsize(json_path("users"))

    exists = utils.file_exists("users")
    assert exists is True

    all_files = utils.find_all("users/*")
    print(f"{len(all_files)} files were found")
    for file_path in all_files:
        print(f"  - {file_path}")
    assert all_files == ["users/a", "users/b"]

    json_bytes = orjson.dumps({"key1": "value1", "key2": "value2"})
    key_pos = utils.find_outermost_key_in_json_bytes(json_bytes, "key1")
    if key_pos:
        print(f"The key 'key1' is at byte position: {key_pos}")
    assert key_pos == (1, 8)

    from dictdatabase import safe_context

    with safe_context("users", write=True) as lock:  # noqa: F841 - named as in the spec
        data = utils.file_exists("users")
        print("The operation is completed, and the lock has been released")
    assert data is True
    out = capsys.readouterr().out
    assert "2 files were found" in out
    assert "The key 'key1' is at byte position: (1, 8)" in out
    # The lock was released: a session on the same database opens at once.
    with DDB.at("users").session() as (session, _):
        session.write()


# ---------------------------------------------------------------------------
# Node 10


NODE10_USERS = {
    "u1": {
        "name": "Ann",
        "age": 22,
        "status": "active",
        "subscription": "premium",
        "skills": ["Python", "Go"],
        "email": "ann@example.com",
        "last_login": "2024-03-01",
    },
    "u2": {
        "name": "Ben",
        "age": 17,
        "status": "active",
        "subscription": "free",
        "skills": ["Rust"],
        "email": "not-an-email",
        "last_login": "2023-06-01",
    },
    "u3": {
        "name": "Cid",
        "age": 40,
        "status": "inactive",
        "subscription": "premium",
        "email": "cid@example.org",
        "last_login": "2023-01-01",
    },
    "u4": {
        "name": "Dee",
        "age": 25,
        "status": "active",
        "subscription": "premium",
        "skills": ["Python"],
        "last_login": "2024-05-01",
    },
}


def test_node10_conditional_queries():
    DDB.at("users").create(NODE10_USERS)
    DDB.at("orders", "o1").create({"date": "2024-02-02"})
    DDB.at("orders", "o2").create({"date": "2023-12-31"})

    active_users = DDB.at("users", where=lambda k, v: v["status"] == "active").read()
    assert set(active_users) == {"u1", "u2", "u4"}

    premium_adults = DDB.at(
        "users",
        where=lambda k, v: v["age"] >= 18 and v["subscription"] == "premium" and v["status"] == "active",
    ).read()
    assert set(premium_adults) == {"u1", "u4"}

    young_users = DDB.at("users", where=lambda k, v: 18 <= v["age"] <= 25).read()
    assert set(young_users) == {"u1", "u4"}

    # The spec breaks this line before `.read()`, which is not valid Python; joined here.
    python_devs = DDB.at("users", where=lambda k, v: "Python" in v.get("skills", [])).read()
    assert set(python_devs) == {"u1", "u4"}

    import re

    email_users = DDB.at(
        "users",
        where=lambda k, v: re.match(r"^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}$", v.get("email", "")),
    ).read()
    assert set(email_users) == {"u1", "u3"}

    recent_orders = DDB.at("orders/*", where=lambda k, v: v["date"] > "2024-01-01").read()
    assert recent_orders == {"o1": {"date": "2024-02-02"}}

    with DDB.at("users", where=lambda k, v: v["last_login"] < "2024-01-01").session() as (
        session,
        inactive_users,
    ):
        for user in inactive_users.values():
            user["status"] = "inactive"
            user["inactive_since"] = "2024-01-01"
        session.write()
    after = DDB.at("users").read()
    assert after["u2"]["status"] == "inactive"
    assert after["u2"]["inactive_since"] == "2024-01-01"
    assert after["u3"]["inactive_since"] == "2024-01-01"
    assert "inactive_since" not in after["u1"]
    assert after["u1"]["status"] == "active"

    pd_users = DDB.at("users", where=lambda k, v: v["age"] > 18).read(as_type=PathDict)
    assert type(pd_users) is PathDict
    assert set(pd_users.get()) == {"u1", "u3", "u4"}


# ---------------------------------------------------------------------------
# Node 12


def test_node12_byte_codes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    json_bytes = b'{"key1": "value1", "key2": {"nested": "value2"}}'

    is_object_start = byte_codes.is_object_start(json_bytes[0])
    print(f"Is the starting character the start of an object: {is_object_start}")
    assert is_object_start is True

    key_pos = byte_codes.find_key_in_json_bytes(json_bytes, b"key2")
    assert key_pos == json_bytes.index(b'"key2"')

    if key_pos:
        # The spec has `len(b"key2": "")` here, which is not valid Python.
        value_start_pos = byte_codes.find_value_start(json_bytes, key_pos + len(b'"key2": '))
        is_object = byte_codes.is_object_start(json_bytes[value_start_pos])
        print(f"The value of 'key2' is an object: {is_object}")
        assert is_object is True

    large_file_path = "large_data.json"
    with open(large_file_path, "wb") as f:
        f.write(orjson.dumps({"a": {"important_key": "nested decoy"}, "important_key": {"v": [1, 2]}}))
    with open(large_file_path, "rb") as f:
        json_bytes = f.read()
        key_pos = byte_codes.find_key_in_json_bytes(json_bytes, b"important_key")
        important_value = None
        if key_pos:
            value_bytes = byte_codes.extract_value_bytes(json_bytes, key_pos)
            important_value = orjson.loads(value_bytes)
            print(f"Extracted value: {important_value}")
    assert important_value == {"v": [1, 2]}
    assert "start of an object: True" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# Node 14


def test_node14_storage_management(capsys):
    current_dir = DDB.config.storage_directory
    assert not os.path.exists(current_dir)

    absolute_path = utils._resolve_relative_path("users")
    assert os.path.isabs(absolute_path)
    assert os.path.realpath(absolute_path) == os.path.realpath(os.path.join(current_dir, "users"))

    storage_path = utils._get_storage_path("users")
    assert os.path.realpath(storage_path) == os.path.realpath(os.path.join(current_dir, "users.json"))

    DDB.at("users").create({"u1": {"name": "Alice"}})
    file_info = utils.file_info("users")
    if file_info:
        print(f"File size: {file_info.size_bytes} bytes")
        print(f"Creation time: {file_info.created_time}")
        print(f"Modification time: {file_info.modified_time}")
        print(f"Is it a directory: {file_info.is_directory}")
        print(f"Is it a file: {file_info.is_file}")
    assert file_info.is_file is True
    assert file_info.is_directory is False

    assert utils.file_exists("users") is True
    DDB.at("users", "x").create({})
    all_users = utils.find_all("users/*")
    assert all_users == ["users/x"]

    DDB.config.use_compression = True
    sample_data = {f"key_{i}": f"value_{i}" for i in range(1000)}
    DDB.at("large_compressed_file").create(sample_data)
    compressed_info = utils.file_info("large_compressed_file")
    assert compressed_info
    assert os.path.exists(os.path.join(current_dir, "large_compressed_file.ddb"))

    DDB.config.use_compression = False
    DDB.at("large_uncompressed_file").create(sample_data)
    uncompressed_info = utils.file_info("large_uncompressed_file")
    assert uncompressed_info
    compression_ratio = (1 - compressed_info.size_bytes / uncompressed_info.size_bytes) * 100
    print(f"Compression ratio: {compression_ratio:.1f}%")
    assert compressed_info.size_bytes < uncompressed_info.size_bytes
    assert compression_ratio > 50
    assert DDB.at("large_compressed_file").read() == DDB.at("large_uncompressed_file").read() == sample_data
    assert "Is it a file: True" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# Node 15


def test_node15_serialisation():
    DDB.config.use_orjson = True
    large_data = {f"key_{i}": {"nested": list(range(10))} for i in range(1000)}
    DDB.at("orjson_test").create(large_data)

    DDB.config.use_orjson = False
    DDB.at("stdjson_test").create(large_data)
    assert DDB.at("orjson_test").read() == DDB.at("stdjson_test").read() == large_data
    indent = DDB.config.indent
    assert raw_json("orjson_test") == canonical_bytes(large_data, use_orjson=True, indent=indent)
    assert raw_json("stdjson_test") == canonical_bytes(large_data, use_orjson=False, indent=indent)

    DDB.config.indent = 4
    DDB.at("indented_4").create({"key": "value"})
    assert raw_json("indented_4") == b'{\n    "key": "value"\n}'

    DDB.config.indent = "\t"
    DDB.at("indented_tab").create({"key": "value"})
    assert raw_json("indented_tab") == b'{\n\t"key": "value"\n}'

    DDB.config.indent = None
    DDB.at("compact_json").create({"key": "value"})
    assert raw_json("compact_json") == b'{"key": "value"}'

    class Person:
        def __init__(self, name, age):
            self.name = name
            self.age = age

    def person_to_dict(person):
        return {"name": person.name, "age": person.age}

    person = Person("Alice", 30)
    DDB.at("person").create(person_to_dict(person))
    assert DDB.at("person").read() == {"name": "Alice", "age": 30}

    current_time = datetime.datetime.now()
    DDB.at("timestamp").create({"current_time": current_time.isoformat()})
    data = DDB.at("timestamp").read()
    restored_time = datetime.datetime.fromisoformat(data["current_time"])
    assert restored_time == current_time
