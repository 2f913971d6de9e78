"""Byte constants and a JSON byte scanner that never parses more than it must.

The scanner follows the JSON grammar: it skips strings as a whole (escapes included),
so braces, brackets, quotes or ``"key":`` inside strings never confuse it. All positions
are byte offsets. Every function accepts any buffer that supports indexing, slicing and
``re`` (``bytes``, ``bytearray``, ``mmap.mmap``).

Two scanners find the top-level keys of an object:

- :func:`iter_top_level_items` works on any valid JSON. Inside values it jumps from
  bracket to bracket with one C-level regex match per step.
- :func:`iter_indented_top_level_items` is for files known to be written by this library
  with an indentation unit: JSON strings cannot contain raw newlines, so a newline followed
  by exactly one indent unit and a quote always starts a top-level key. It only searches for
  that pattern, at ``memchr`` speed. Callers must only use it on files they know are
  canonical; it raises ``ValueError`` when the layout does not fit.
"""

from __future__ import annotations

import re
from typing import Iterator, Optional, Tuple, Union

import orjson

__all__ = [
    "BACKSLASH",
    "CLOSE_CURLY",
    "CLOSE_SQUARE",
    "COLON",
    "COMMA",
    "NEWLINE",
    "OPEN_CURLY",
    "OPEN_SQUARE",
    "QUOTE",
    "SPACE",
    "TAB",
    "extract_value_bytes",
    "find_key_in_json_bytes",
    "find_value_start",
    "indented_value_span",
    "is_object_start",
    "iter_indented_top_level_items",
    "iter_top_level_items",
    "seek_value_end",
    "skip_string",
    "skip_whitespace",
]

BACKSLASH = ord("\\")
QUOTE = ord('"')
OPEN_SQUARE = ord("[")
CLOSE_SQUARE = ord("]")
OPEN_CURLY = ord("{")
CLOSE_CURLY = ord("}")
SPACE = ord(" ")
TAB = ord("\t")
NEWLINE = ord("\n")
CARRIAGE_RETURN = ord("\r")
COMMA = ord(",")
COLON = ord(":")

#: (key_start, key_end, value_start, value_end): key_start is the key's opening quote,
#: key_end is just past its closing quote, value_end is just past the value.
ItemSpan = Tuple[int, int, int, int]

_WHITESPACE = re.compile(rb"[ \t\n\r]*")
# A whole JSON string, written as an "unrolled loop" so that re never backtracks.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# Everything up to the next bracket, jumping over complete strings.
_UNTIL_BRACKET = re.compile(rb'(?:[^"\[\]{}]+|"[^"\\]*(?:\\.[^"\\]*)*")*', re.DOTALL)
# Scalars (numbers, true, false, null) end at whitespace, a comma or a closing bracket.
_SCALAR = re.compile(rb"[^ \t\n\r,\]}]+")
_OPENERS = (OPEN_CURLY, OPEN_SQUARE)


def skip_whitespace(buf, pos: int) -> int:
    """Return the first index at or after ``pos`` that is not JSON whitespace."""
    return _WHITESPACE.match(buf, pos).end()


def skip_string(buf, pos: int) -> int:
    """``pos`` is an opening quote; return the index just past the closing quote."""
    match = _STRING.match(buf, pos)
    if match is None:
        msg = f"unterminated or missing string at byte {pos}"
        raise ValueError(msg)
    return match.end()


def seek_value_end(buf, pos: int) -> int:
    """Return the index just past the JSON value that starts exactly at ``pos``."""
    if pos >= len(buf):
        msg = f"expected a value at byte {pos}, found the end of the data"
        raise ValueError(msg)
    first = buf[pos]
    if first == QUOTE:
        return skip_string(buf, pos)
    if first not in _OPENERS:
        match = _SCALAR.match(buf, pos)
        if match is None:
            msg = f"expected a value at byte {pos}"
            raise ValueError(msg)
        return match.end()
    depth = 0
    index = pos
    size = len(buf)
    while True:
        index = _UNTIL_BRACKET.match(buf, index).end()
        if index >= size:
            msg = f"unbalanced brackets in the value starting at byte {pos}"
            raise ValueError(msg)
        byte = buf[index]
        if byte == QUOTE:  # a string that never ends
            msg = f"unterminated string at byte {index}"
            raise ValueError(msg)
        depth += 1 if byte in _OPENERS else -1
        index += 1
        if depth == 0:
            return index


def iter_top_level_items(buf, start: int = 0) -> Iterator[ItemSpan]:
    """Yield the span of every key/value pair of the object that starts at ``start``.

    Works on any valid JSON whatever its whitespace. Raises ``ValueError`` when the data
    is not an object or is malformed where the scan passes; it does not validate the
    inside of values (the caller parses the values it uses).
    """
    index = skip_whitespace(buf, start)
    if index >= len(buf) or buf[index] != OPEN_CURLY:
        msg = "the data is not a JSON object"
        raise ValueError(msg)
    index = skip_whitespace(buf, index + 1)
    if index < len(buf) and buf[index] == CLOSE_CURLY:
        return
    while True:
        if index >= len(buf) or buf[index] != QUOTE:
            msg = f"expected a key at byte {index}"
            raise ValueError(msg)
        key_start = index
        key_end = skip_string(buf, index)
        index = skip_whitespace(buf, key_end)
        if index >= len(buf) or buf[index] != COLON:
            msg = f"expected ':' at byte {index}"
            raise ValueError(msg)
        value_start = skip_whitespace(buf, index + 1)
        value_end = seek_value_end(buf, value_start)
        yield key_start, key_end, value_start, value_end
        index = skip_whitespace(buf, value_end)
        if index >= len(buf):
            msg = "the object is not closed"
            raise ValueError(msg)
        if buf[index] == CLOSE_CURLY:
            return
        if buf[index] != COMMA:
            msg = f"expected ',' or '}}' at byte {index}"
            raise ValueError(msg)
        index = skip_whitespace(buf, index + 1)


def iter_indented_top_level_items(buf, unit: bytes) -> Iterator[ItemSpan]:
    """Like :func:`iter_top_level_items`, for canonical indented output only.

    ``unit`` is one level of indentation (for example ``b"  "`` or ``b"\\t"``). The layout
    must be ``{\\n<unit>"k": v,\\n<unit>"k2": v2\\n}`` or ``{}``, as json and orjson write it.
    """
    size = len(buf)
    if size == 2 and buf[0] == OPEN_CURLY and buf[1] == CLOSE_CURLY:
        return
    if size < 4 or buf[0] != OPEN_CURLY or buf[1] != NEWLINE or buf[size - 2 : size] != b"\n}":
        msg = "the data is not a canonical indented JSON object"
        raise ValueError(msg)
    marker = b"\n" + unit + b'"'
    skip = len(marker) - 1
    previous: Optional[Tuple[int, int, int]] = None
    for match in re.finditer(re.escape(marker), buf):
        key_start = match.start() + skip
        if previous is not None:
            _check_byte(buf, match.start() - 1, COMMA)
            yield (*previous, match.start() - 1)
        elif match.start() != 1:
            msg = "the first key does not follow the opening brace"
            raise ValueError(msg)
        key_end = skip_string(buf, key_start)
        if buf[key_end : key_end + 2] != b": ":
            msg = f"expected ': ' at byte {key_end}"
            raise ValueError(msg)
        previous = (key_start, key_end, key_end + 2)
    if previous is None:
        msg = "no top-level key found in a non-empty object"
        raise ValueError(msg)
    yield (*previous, size - 2)


def indented_value_span(buf, unit: bytes, key_json: bytes) -> Optional[Tuple[int, int]]:
    """Where the value of one top-level key is, in a canonical indented object.

    The same layout as :func:`iter_indented_top_level_items`, and the same condition: only
    for bytes known to be canonical. ``key_json`` is the key encoded as the file's encoder
    writes it (quotes included). Returns ``[start, end)`` of the value, or ``None`` when the
    key is not there (or the bytes do not end the way that layout does).
    """
    if not unit or buf[-2:] != b"\n}":
        return None
    marker = b"\n" + unit + key_json + b": "
    found = buf.find(marker)
    if found < 0:
        return None
    start = found + len(marker)
    # Only a top-level key starts after a newline and exactly one unit: the next one (or the
    # closing brace) ends this value.
    end = buf.find(b",\n" + unit + b'"', start)
    return start, (len(buf) - 2 if end < 0 else end)


def _check_byte(buf, index: int, expected: int) -> None:
    if buf[index] != expected:
        msg = f"expected {chr(expected)!r} at byte {index}"
        raise ValueError(msg)


def decode_key(buf, key_start: int, key_end: int) -> str:
    """Decode the JSON string ``buf[key_start:key_end]`` (quotes included) to ``str``."""
    raw = bytes(buf[key_start:key_end])
    if b"\\" not in raw:
        return raw[1:-1].decode("utf-8")
    return orjson.loads(raw)


# ---------------------------------------------------------------------------------------
# Node 12 helpers: small, documented entry points onto the scanner.


def is_object_start(byte: Union[int, bytes]) -> bool:
    """Tell whether ``byte`` (an int, or a bytes object of length 1) is ``{``."""
    if isinstance(byte, (bytes, bytearray)):
        return len(byte) == 1 and byte[0] == OPEN_CURLY
    return byte == OPEN_CURLY


def find_key_in_json_bytes(json_bytes, key: Union[str, bytes]) -> Optional[int]:
    """Return the index of the opening quote of ``key`` in the outermost object, or ``None``.

    ``key`` is the key's text (not JSON-escaped). Nested keys with the same name are
    ignored; only the outermost object is searched.
    """
    wanted = key.decode("utf-8") if isinstance(key, (bytes, bytearray)) else key
    try:
        for key_start, key_end, _, _ in iter_top_level_items(json_bytes):
            if decode_key(json_bytes, key_start, key_end) == wanted:
                return key_start
    except ValueError:
        return None
    return None


def find_value_start(json_bytes, pos: int) -> int:
    """Return the index of the first byte of a value, starting the search at ``pos``.

    ``pos`` may point at a key's opening quote, anywhere in the whitespace or at the colon
    after the key, or at the value itself. A string followed by ``:`` is a key and is
    skipped; any other byte starts the value.
    """
    index = skip_whitespace(json_bytes, pos)
    if index < len(json_bytes) and json_bytes[index] == QUOTE:
        after = skip_whitespace(json_bytes, skip_string(json_bytes, index))
        if after < len(json_bytes) and json_bytes[after] == COLON:
            index = after
    if index < len(json_bytes) and json_bytes[index] == COLON:
        index = skip_whitespace(json_bytes, index + 1)
    return index


def extract_value_bytes(json_bytes, key_pos: int) -> bytes:
    """Return the bytes of the value whose key's opening quote is at ``key_pos``."""
    start = find_value_start(json_bytes, key_pos)
    return bytes(json_bytes[start : seek_value_end(json_bytes, start)])
