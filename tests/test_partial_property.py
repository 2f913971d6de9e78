"""Property tests: partial reads and key writes agree with a full parse of the file, for
hostile keys and values, small files and files above the index threshold."""

from __future__ import annotations

import copy
import json

import orjson
import pytest
from ddb_test_helpers import INDENTS, canonical_bytes, padding_size, raw_json
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import dictdatabase as DDB
from dictdatabase import io_unsafe

NAME = "prop"
PAD_KEY = "m\u00e9_pad"

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
LARGE_SETTINGS = settings(SETTINGS, max_examples=20)

SPECIAL_CHARS = [
    '"',
    "\\",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    " ",
    "\n",
    "\t",
    "\x00",
    "\x1f",
    "/",
    "é",
    "中",
    "😀",
    "\u2028",
    "a",
    "b",
    "k",
]
SNIPPETS = ['":', '"b":', '"a": ', "{", "}", '{"a": 1}', '\\"', "\\\\", '", "b": {', '\n\t"', "null"]

key_text = st.one_of(
    st.text(alphabet=st.sampled_from(SPECIAL_CHARS), max_size=6),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=5),
    st.lists(st.sampled_from(SNIPPETS + SPECIAL_CHARS), max_size=4).map("".join),
)
string_values = st.one_of(
    st.text(alphabet=st.sampled_from(SPECIAL_CHARS), max_size=12),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.lists(st.sampled_from(SNIPPETS + SPECIAL_CHARS), max_size=8).map("".join),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    string_values,
)


@st.composite
def documents(draw):
    """A JSON object whose nested objects reuse (shadow) its top-level key names."""
    top_keys = draw(st.lists(key_text, min_size=1, max_size=8, unique=True))
    nested_keys = st.one_of(st.sampled_from(top_keys), key_text)
    values = st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(nested_keys, children, max_size=4),
        ),
        max_leaves=12,
    )
    return {key: draw(values) for key in top_keys}


def nested_keys_of(value, found=None) -> set:
    found = set() if found is None else found
    if isinstance(value, dict):
        for key, inner in value.items():
            found.add(key)
            nested_keys_of(inner, found)
    elif isinstance(value, list):
        for inner in value:
            nested_keys_of(inner, found)
    return found


def add_padding(doc: dict) -> dict:
    padded = dict(doc)
    # Braces, quotes and `"b":` inside the padding must not confuse any scanner.
    padded[PAD_KEY] = '{"b": "}]\\\\"' * (padding_size() // 12 + 1)
    return padded


def apply_settings(use_compression: bool, use_orjson: bool, indent) -> None:
    DDB.config.use_compression = use_compression
    DDB.config.use_orjson = use_orjson
    DDB.config.indent = indent


def check_partial_reads(doc: dict, missing: str) -> None:
    DDB.at(NAME).create(doc, force_overwrite=True)
    raw = raw_json(NAME)
    assert raw == canonical_bytes(doc, use_orjson=DDB.config.use_orjson, indent=DDB.config.indent)
    parsed = orjson.loads(raw)
    assert parsed == doc
    for key in doc:
        assert DDB.at(NAME, key=key).read() == parsed[key], key
        assert DDB.at(NAME, key=key).exists() is True, key
    absent = {missing} | nested_keys_of(list(doc.values()))
    for key in absent - set(doc):
        assert DDB.at(NAME, key=key).read() is None, key
        assert DDB.at(NAME, key=key).exists() is False, key


FORMATS = pytest.mark.parametrize(
    ("use_compression", "use_orjson"),
    [(False, True), (False, False), (True, True), (True, False)],
    ids=["plain-orjson", "plain-json", "zlib-orjson", "zlib-json"],
)


@FORMATS
@SETTINGS
@given(doc=documents(), indent=st.sampled_from(INDENTS), missing=key_text)
@example(doc={"a": "x{y", "b": 1}, indent=None, missing="c")
@example(doc={"a": "x{y", "b": 1}, indent="\t", missing="x{y")
@example(doc={"a": {"b": 2}, "b": 1}, indent=2, missing='"b":')
def test_key_reads_match_full_parse(use_compression, use_orjson, doc, indent, missing):
    apply_settings(use_compression, use_orjson, indent)
    check_partial_reads(doc, missing)


@FORMATS
@LARGE_SETTINGS
@given(doc=documents(), indent=st.sampled_from(INDENTS), missing=key_text)
@example(doc={"a": "x{y", "b": 1}, indent=None, missing="c")
def test_key_reads_match_full_parse_large(use_compression, use_orjson, doc, indent, missing):
    apply_settings(use_compression, use_orjson, indent)
    if PAD_KEY in doc:
        return
    check_partial_reads(add_padding(doc), missing)


def test_regression_brace_in_string(fmt):
    DDB.at(NAME).create({"a": "x{y", "b": 1})
    assert DDB.at(NAME, key="b").read() == 1
    assert DDB.at(NAME, key="b").exists() is True
    assert DDB.at(NAME, key="a").read() == "x{y"
    assert DDB.at(NAME, key="y").read() is None


# ---------------------------------------------------------------------------
# key sessions produce the canonical full dump


containers = st.one_of(
    st.dictionaries(key_text, scalars, max_size=3),
    st.lists(scalars, max_size=3),
)


def make_change(operation: str, new_key: str, new_item):
    """A deterministic change that makes the value's encoding longer or shorter."""

    def change(value):
        if isinstance(value, list):
            if operation == "shrink" and value:
                value.pop()
            else:
                value.append(new_item)
        elif operation == "shrink" and value:
            del value[min(value)]
        else:
            key = new_key
            while key in value:
                key += "_"
            value[key] = new_item

    return change


def check_key_session(doc: dict, data) -> None:
    target = data.draw(st.sampled_from(sorted(k for k in doc if k != PAD_KEY)), label="target")
    doc[target] = data.draw(containers, label="container")
    change = make_change(
        data.draw(st.sampled_from(["grow", "shrink"]), label="operation"),
        data.draw(key_text, label="new_key"),
        data.draw(scalars, label="new_item"),
    )
    DDB.at(NAME).create(doc, force_overwrite=True)
    # Read a few keys first so that an index, if any, exists before the write.
    for key in list(doc)[:3]:
        assert DDB.at(NAME, key=key).read() == doc[key]
    expected = copy.deepcopy(doc)
    change(expected[target])
    with DDB.at(NAME, key=target).session() as (session, value):
        change(value)
        session.write()
    assert raw_json(NAME) == canonical_bytes(
        expected, use_orjson=DDB.config.use_orjson, indent=DDB.config.indent
    )
    for key, value in expected.items():
        assert DDB.at(NAME, key=key).read() == value, key


@FORMATS
@SETTINGS
@given(doc=documents(), indent=st.sampled_from(INDENTS), data=st.data())
def test_key_session_leaves_canonical_file(use_compression, use_orjson, doc, indent, data):
    apply_settings(use_compression, use_orjson, indent)
    check_key_session(doc, data)


@FORMATS
@LARGE_SETTINGS
@given(doc=documents(), indent=st.sampled_from(INDENTS), data=st.data())
def test_key_session_leaves_canonical_file_large(use_compression, use_orjson, doc, indent, data):
    apply_settings(use_compression, use_orjson, indent)
    if PAD_KEY in doc:
        return
    check_key_session(add_padding(doc), data)


@given(st.text(max_size=12))
@settings(SETTINGS, max_examples=300)
@example("plain_key")
@example("a/b c~")
@example('q"uote')
@example("back\\slash")
@example("\x7f")
@example("\u00e9")
def test_key_encodings_are_what_both_encoders_write(key: str) -> None:
    """The index checks the key bytes before a value against how json and orjson write the
    key; the shortcut for plain ASCII keys must give exactly those encodings."""
    io_unsafe._encoded_keys.clear()  # compute afresh, not from the cache
    expected = {orjson.dumps(key), json.dumps(key).encode("ascii")}
    assert set(io_unsafe._key_encodings(key)) == expected
