"""Files of unknown layout (written by another program, or whose index was lost) may be
indexed by the fast line scanner, but only when every value it finds parses: whatever the
whitespace, key reads must agree with a full parse of the file."""

from __future__ import annotations

import json
import os

import orjson
from ddb_test_helpers import padding_size
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_partial_property import SETTINGS, documents, key_text, nested_keys_of

import dictdatabase as DDB
from dictdatabase import indexing, io_unsafe, utils

NAME = "outside"


def _layouts(doc: dict, unit: str, edits: list) -> bytes:
    """``doc`` as another program might write it: consistently indented, then with some
    whitespace moved (all still valid JSON with the same data)."""
    text = json.dumps(doc, indent=unit, ensure_ascii=False)
    for edit, position in edits:
        lines = text.split("\n")
        if len(lines) < 3:
            break
        at = 1 + position % (len(lines) - 2)
        if edit == "dedent":  # a nested line at the top level's indentation
            lines[at] = unit + lines[at].lstrip(" \t")
        elif edit == "join":  # two lines made one (two keys on one line, say)
            lines[at - 1] += " " + lines.pop(at).lstrip(" \t")
        elif edit == "space":  # whitespace before a comma
            lines[at] = lines[at].replace(",", " ,", 1) if lines[at].endswith(",") else lines[at]
        text = "\n".join(lines)
    return text.encode("utf-8")


def _write_outside(raw: bytes) -> None:
    files = utils.db_files(NAME)
    os.makedirs(os.path.dirname(files.json), exist_ok=True)
    with open(files.json, "wb") as handle:
        handle.write(raw)
    indexing.forget(files)
    io_unsafe._cache.clear()
    if os.path.exists(files.index):
        os.unlink(files.index)


def _padded(doc: dict) -> dict:
    # Above the small-file size, so that reads go through the index.
    return {**doc, "zz_pad": ["x" * 100] * (padding_size() // 100 + 1)}


@settings(SETTINGS, max_examples=120)
@given(
    doc=documents(),
    unit=st.sampled_from(["  ", "    ", "\t", " "]),
    edits=st.lists(
        st.tuples(st.sampled_from(["dedent", "join", "space"]), st.integers(0, 10_000)), max_size=4
    ),
    missing=key_text,
)
@example(doc={"a": {"b": 1}, "c": 2}, unit="  ", edits=[("dedent", 1)], missing="b")
@example(doc={"a": 1, "b": 2}, unit="  ", edits=[("join", 1)], missing="x")
def test_key_reads_of_any_layout_match_a_full_parse(doc, unit, edits, missing):
    doc = _padded(doc)
    raw = _layouts(doc, unit, edits)
    expected = orjson.loads(raw)
    _write_outside(raw)
    for key, value in expected.items():
        assert DDB.at(NAME, key=key).read() == value, key
    for key in ({missing} | nested_keys_of(list(expected.values()))) - set(expected):
        assert DDB.at(NAME, key=key).read() is None, key


def test_a_consistently_indented_file_is_indexed_by_the_fast_scan(monkeypatch):
    """The fast scan is taken for an indented file of unknown layout (the full scanner,
    much slower on large files, is not called)."""
    doc = _padded({f"k{i}": {"n": i, "s": 'a,\n  "b": 1'} for i in range(50)})
    _write_outside(json.dumps(doc, indent=2).encode())

    def no_full_scan(*args, **kwargs):
        raise AssertionError("the full scanner ran")

    monkeypatch.setattr(indexing.byte_codes, "iter_top_level_items", no_full_scan)
    assert DDB.at(NAME, key="k7").read() == {"n": 7, "s": 'a,\n  "b": 1'}
    state = indexing.current_state(
        utils.db_files(NAME), io_unsafe.io_bytes.open_data(utils.db_files(NAME)).identity
    )
    assert state is not None
    assert state.file_format is None  # not known canonical: key writes never splice on this basis


def test_a_split_inside_a_value_falls_back_to_the_full_scan():
    """A nested key line at the top level's indentation, after a comma: the fast scanner
    splits there, the split values do not parse, and the full scanner indexes the file."""
    pad = "x" * padding_size()
    raw = ('{\n  "a": {"x": 1,\n  "b": 2},\n  "c": 3,\n  "pad": "' + pad + '"\n}').encode()
    _write_outside(raw)
    assert DDB.at(NAME, key="a").read() == {"x": 1, "b": 2}
    assert DDB.at(NAME, key="b").read() is None
    assert DDB.at(NAME, key="c").read() == 3
