"""byte_codes: constants and the Node 12 helpers."""

from __future__ import annotations

import json

import orjson
import pytest

from dictdatabase import byte_codes


@pytest.mark.parametrize(
    ("name", "char"),
    [
        ("BACKSLASH", "\\"),
        ("QUOTE", '"'),
        ("OPEN_SQUARE", "["),
        ("CLOSE_SQUARE", "]"),
        ("OPEN_CURLY", "{"),
        ("CLOSE_CURLY", "}"),
        ("SPACE", " "),
        ("TAB", "\t"),
        ("NEWLINE", "\n"),
        ("COMMA", ","),
    ],
)
def test_constants_are_byte_values(name, char):
    value = getattr(byte_codes, name)
    assert isinstance(value, int)
    assert value == ord(char)
    assert char.encode()[0] == value


def test_is_object_start():
    assert byte_codes.is_object_start(ord("{")) is True
    assert byte_codes.is_object_start(b"{"[0]) is True
    for char in '[}]" a1\n':
        assert byte_codes.is_object_start(ord(char)) is False


NODE12 = b'{"key1": "value1", "key2": {"nested": "value2"}}'


def test_node12_example():
    assert byte_codes.is_object_start(NODE12[0]) is True
    key_pos = byte_codes.find_key_in_json_bytes(NODE12, b"key2")
    assert key_pos == NODE12.index(b'"key2"')
    # The spec writes `key_pos + len(b"key2": "")`, which is not valid Python; the intent is
    # the position just past `"key2":`.
    value_start_pos = byte_codes.find_value_start(NODE12, key_pos + len(b'"key2":'))
    assert NODE12[value_start_pos : value_start_pos + 1] == b"{"
    assert byte_codes.is_object_start(NODE12[value_start_pos]) is True
    value_bytes = byte_codes.extract_value_bytes(NODE12, key_pos)
    assert value_bytes == b'{"nested": "value2"}'
    assert orjson.loads(value_bytes) == {"nested": "value2"}


def test_find_key_returns_none_when_absent_or_nested():
    assert byte_codes.find_key_in_json_bytes(NODE12, b"missing") is None
    assert byte_codes.find_key_in_json_bytes(NODE12, b"nested") is None
    assert byte_codes.find_key_in_json_bytes(b'{"a": "\\"key\\": 1"}', b"key") is None


def test_find_key_accepts_str_key():
    assert byte_codes.find_key_in_json_bytes(NODE12, "key1") == 1


def test_find_key_ignores_braces_in_strings():
    doc = b'{"a": "x{y", "b": 1}'
    assert byte_codes.find_key_in_json_bytes(doc, b"b") == doc.index(b'"b"')
    assert orjson.loads(byte_codes.extract_value_bytes(doc, doc.index(b'"b"'))) == 1


def test_find_value_start_skips_whitespace():
    doc = b'{"k":   \n\t [1, 2]}'
    key_pos = doc.index(b'"k"')
    start = byte_codes.find_value_start(doc, key_pos + len(b'"k":'))
    assert doc[start : start + 1] == b"["


@pytest.mark.parametrize(
    "data",
    [
        {"k": "v", "other": 1},
        {"k": [1, {"x": "]"}], "z": None},
        {"a": {"k": 0}, "k": {"deep": {"k": "}"}}},
        {"k": None},
        {"k": -2.5e-3, "b": True},
        {"k": "中文😀", "é": "x"},
    ],
)
@pytest.mark.parametrize("indent", [None, 2, "\t"])
def test_extract_value_bytes_matches_parse(data, indent):
    doc = json.dumps(data, indent=indent, ensure_ascii=False).encode()
    key_pos = byte_codes.find_key_in_json_bytes(doc, b"k")
    assert key_pos is not None
    assert orjson.loads(byte_codes.extract_value_bytes(doc, key_pos)) == data["k"]
