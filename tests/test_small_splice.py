"""Key sessions on small files splice the new value into the bytes this process last wrote.

The splice is only taken when the bytes read back are exactly the bytes this process wrote
(so they are canonical), and it must always give the bytes of a full write. Every other case
parses the whole file, as before.
"""

from __future__ import annotations

import copy
import multiprocessing
import os

import orjson
import pytest
from ddb_test_helpers import INDENTS, canonical_bytes, raw_json
from hypothesis import given, settings
from hypothesis import strategies as st
from test_partial_property import (
    SETTINGS,
    containers,
    documents,
    key_text,
    make_change,
    nested_keys_of,
    scalars,
)

import dictdatabase as DDB
from dictdatabase import byte_codes, errors, io_unsafe, utils

NAME = "small"


def _spliced_handles(monkeypatch) -> list:
    """Record, for every key session read, whether it took the splice path."""
    seen = []
    read = io_unsafe.read_for_key_write

    def recording(files, key):
        handle = read(files, key)
        seen.append(handle.splice_point is not None)
        return handle

    monkeypatch.setattr(io_unsafe, "read_for_key_write", recording)
    return seen


def _bump(name: str, key: str) -> None:
    with DDB.at(name, key=key).session() as (session, value):
        value["n"] += 1
        session.write()


def _expected_bytes(data) -> bytes:
    return canonical_bytes(data, use_orjson=DDB.config.use_orjson, indent=DDB.config.indent)


@pytest.mark.parametrize("use_orjson", [True, False], ids=["orjson", "json"])
@pytest.mark.parametrize("indent", INDENTS)
def test_the_splice_is_taken_after_an_own_write_of_an_indented_file(monkeypatch, use_orjson, indent):
    DDB.config.use_orjson = use_orjson
    DDB.config.indent = indent
    data = {f"k{i}": {"n": 0, "text": 'é "q" \\ \n'} for i in range(5)}
    DDB.at(NAME).create(data)
    seen = _spliced_handles(monkeypatch)
    for i in range(10):
        _bump(NAME, f"k{i % 5}")
        data[f"k{i % 5}"]["n"] += 1
        assert raw_json(NAME) == _expected_bytes(data)
    # Compact files have no layout that marks top-level keys: those always parse in full.
    assert seen == [bool(indent)] * 10


def test_compressed_files_are_never_spliced(monkeypatch):
    DDB.config.use_compression = True
    DDB.at(NAME).create({"a": {"n": 0}})
    seen = _spliced_handles(monkeypatch)
    _bump(NAME, "a")
    _bump(NAME, "a")
    assert seen == [False, False]
    assert DDB.at(NAME, key="a").read() == {"n": 2}


def test_an_outside_edit_means_a_full_parse(monkeypatch):
    DDB.at(NAME).create({"a": {"n": 0}, "b": {"n": 0}})
    path = utils.db_files(NAME).json
    # Valid JSON in a layout the splice would misread: both keys on one line.
    with open(path, "wb") as file:
        file.write(b'{"a": {"n": 5}, "b": {"n": 7}}')
    seen = _spliced_handles(monkeypatch)
    _bump(NAME, "b")
    assert seen == [False]
    assert DDB.at(NAME).read() == {"a": {"n": 5}, "b": {"n": 8}}
    assert raw_json(NAME) == _expected_bytes({"a": {"n": 5}, "b": {"n": 8}})


def test_an_outside_edit_of_the_same_size_means_a_full_parse(monkeypatch):
    DDB.at(NAME).create({"a": {"n": 1}, "b": {"n": 2}})
    path = utils.db_files(NAME).json
    with open(path, "rb") as file:
        old = file.read()
    edited = old.replace(b'"n": 1', b'"n": 9')
    assert len(edited) == len(old)
    stat = os.stat(path)
    with open(path, "r+b") as file:
        file.write(edited)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # hide it from mtime
    seen = _spliced_handles(monkeypatch)
    _bump(NAME, "b")
    assert seen == [False]
    assert DDB.at(NAME).read() == {"a": {"n": 9}, "b": {"n": 3}}


def test_settings_changed_inside_the_session_give_a_full_write_in_the_new_format(monkeypatch):
    DDB.config.indent = 2
    DDB.config.use_orjson = False
    DDB.at(NAME).create({"a": {"n": 0}, "b": {"n": 0}})
    seen = _spliced_handles(monkeypatch)
    with DDB.at(NAME, key="a").session() as (session, value):
        DDB.config.indent = "\t"
        value["n"] = 1
        session.write()
    assert seen == [True]
    assert raw_json(NAME) == _expected_bytes({"a": {"n": 1}, "b": {"n": 0}})


def test_a_missing_key_is_reported_as_before():
    DDB.at(NAME).create({"a": 1})
    with pytest.raises(errors.KeyNotFoundError, match="'b'"), DDB.at(NAME, key="b").session():
        pass


def test_a_value_that_cannot_be_stored_leaves_the_bytes_unchanged():
    DDB.at(NAME).create({"a": {"n": 0}, "b": 1})
    before = raw_json(NAME)
    with pytest.raises(errors.SerializationError), DDB.at(NAME, key="a").session() as (session, value):
        value["bad"] = {1, 2}
        session.write()
    assert raw_json(NAME) == before


def test_a_write_by_another_process_means_a_full_parse(monkeypatch):
    DDB.at(NAME).create({"a": {"n": 0}, "b": {"n": 0}})
    context = multiprocessing.get_context("spawn")
    child = context.Process(target=_child_bumps, args=(DDB.config.storage_directory,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    seen = _spliced_handles(monkeypatch)
    _bump(NAME, "a")
    _bump(NAME, "a")
    assert seen == [False, True]
    assert DDB.at(NAME).read() == {"a": {"n": 2}, "b": {"n": 1}}


def _child_bumps(storage: str) -> None:
    DDB.config.storage_directory = storage
    _bump(NAME, "b")


@settings(SETTINGS, max_examples=60)
@given(
    doc=documents(),
    use_orjson=st.booleans(),
    indent=st.sampled_from(INDENTS),
    data=st.data(),
)
def test_sessions_in_a_row_give_the_bytes_of_full_writes(doc, use_orjson, indent, data):
    """Hostile keys and values (escapes, nested copies of top-level keys, newlines in
    strings): every session, spliced or not, leaves exactly the canonical full dump."""
    DDB.config.use_orjson = use_orjson
    DDB.config.indent = indent
    DDB.at(NAME).create(doc, force_overwrite=True)
    expected = copy.deepcopy(doc)
    for _ in range(3):
        target = data.draw(st.sampled_from(sorted(expected)), label="target")
        replacement = data.draw(st.one_of(containers, scalars), label="value")
        change = make_change(
            data.draw(st.sampled_from(["grow", "shrink"]), label="operation"),
            data.draw(key_text, label="new_key"),
            data.draw(scalars, label="new_item"),
        )
        with DDB.at(NAME, key=target).session() as (session, value):
            if isinstance(value, (dict, list)):
                change(value)
                change(expected[target])
            else:
                session.data = copy.deepcopy(replacement)
                expected[target] = copy.deepcopy(replacement)
            session.write()
        assert raw_json(NAME) == _expected_bytes(expected)
        assert DDB.at(NAME).read() == expected


@settings(max_examples=200, deadline=None, database=None)
@given(doc=documents(), use_orjson=st.booleans(), indent=st.sampled_from([2, 4, "\t"]), missing=key_text)
def test_the_value_span_of_every_key_parses_to_its_value(doc, use_orjson, indent, missing):
    """The span finder against ``orjson.loads`` of the whole canonical dump: every top-level
    key's span holds exactly its value; keys that only occur nested, or not at all, have none."""
    raw = canonical_bytes(doc, use_orjson=use_orjson, indent=indent)
    file_format = (
        ("orjson", "  ") if use_orjson else ("json", " " * indent if isinstance(indent, int) else indent)
    )
    unit = file_format[1].encode()
    parsed = orjson.loads(raw)
    for key in doc:
        encodings = io_unsafe._key_encodings(key)
        key_json = encodings[0] if use_orjson else encodings[-1]
        start, end = byte_codes.indented_value_span(raw, unit, key_json)
        assert orjson.loads(raw[start:end]) == parsed[key]
    for key in ({missing} | nested_keys_of(list(doc.values()))) - set(doc):
        encodings = io_unsafe._key_encodings(key)
        key_json = encodings[0] if use_orjson else encodings[-1]
        assert byte_codes.indented_value_span(raw, unit, key_json) is None
