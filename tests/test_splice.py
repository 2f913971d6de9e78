"""Key writes on large files: in-place splices, the redo journal, and index change lines.

Files here are larger than ``io_bytes.IN_PLACE_MIN_BYTES`` so that every path runs: the
same-length in-place write, the length-changing in-place write (key in the back half), and
the copy through the spare file (key in the front half).
"""

import json
import multiprocessing
import os
import random

import orjson
import pytest

import dictdatabase as DDB
from dictdatabase import indexing, io_bytes, utils


def _big_data(keys: int = 900, blob: int = 1400) -> dict:
    return {f"k{i:04d}": {"blob": "x" * blob, "n": 10, "uni": "é€"} for i in range(keys)}


def _canonical(data: dict) -> bytes:
    if DDB.config.use_orjson:
        option = orjson.OPT_SORT_KEYS | (orjson.OPT_INDENT_2 if DDB.config.indent else 0)
        return orjson.dumps(data, option=option)
    return json.dumps(data, indent=DDB.config.indent, sort_keys=True).encode()


def _raw(name: str) -> bytes:
    return io_bytes.read(name)


@pytest.fixture
def big():
    data = _big_data()
    DDB.at("big").create(data)
    assert os.path.getsize(utils.db_files("big").json) > io_bytes.IN_PLACE_MIN_BYTES
    DDB.at("big", key="k0000").read()  # build the index
    return data


@pytest.mark.parametrize("indent", [None, 2, "\t"])
@pytest.mark.parametrize("use_orjson", [True, False])
def test_random_key_writes_keep_the_file_canonical(indent, use_orjson):
    DDB.config.indent = indent
    DDB.config.use_orjson = use_orjson
    rng = random.Random(7)
    data = _big_data()
    DDB.at("big").create(data)
    keys = list(data)
    for step in range(60):
        key = rng.choice(keys)
        with DDB.at("big", key=key).session() as (session, value):
            if step % 3 == 0:
                value["n"] = rng.randint(10, 99)  # same length
            else:
                value["blob"] = "y" * rng.randint(0, 3000)  # length changes
            session.write()
        data[key] = value
        if step % 10 == 0:
            indexing._memory.clear()  # next read loads the index from disk and replays changes
    assert _raw("big") == _canonical(data)
    indexing._memory.clear()
    for key in rng.sample(keys, 50):
        assert DDB.at("big", key=key).read() == data[key]


def test_same_length_write_touches_only_the_value(big):
    path = utils.db_files("big").json
    before = _raw("big")
    inode = os.stat(path).st_ino
    with DDB.at("big", key="k0450").session() as (session, value):
        value["n"] = 42
        session.write()
    after = _raw("big")
    assert os.stat(path).st_ino == inode  # changed in place, not replaced
    assert len(after) == len(before)
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    entry = indexing.Indexer("big").get("k0450")
    assert changed
    assert entry.start <= changed[0]
    assert changed[-1] < entry.end


def test_length_change_in_the_back_half_is_done_in_place(big):
    path = utils.db_files("big").json
    inode = os.stat(path).st_ino
    with DDB.at("big", key="k0850").session() as (session, value):
        value["blob"] = "z" * 5000
        session.write()
    big["k0850"] = value
    assert os.stat(path).st_ino == inode
    assert _raw("big") == _canonical(big)
    assert not os.path.exists(utils.db_files("big").journal)


def test_length_change_in_the_front_half_replaces_the_file(big):
    path = utils.db_files("big").json
    inode = os.stat(path).st_ino
    with DDB.at("big", key="k0001").session() as (session, value):
        value["blob"] = ""
        session.write()
    big["k0001"] = value
    assert os.stat(path).st_ino != inode
    assert _raw("big") == _canonical(big)


def _write_journal_and_die(storage: str, key: str, new_value: dict, apply_half: bool) -> None:
    """Child: write the journal of a key change (and maybe half of it), then die."""
    DDB.config.storage_directory = storage
    files = utils.db_files("big")
    data_file = io_bytes.open_data(files, shared=False)
    entry = indexing.Indexer("big").get(key)
    from dictdatabase import io_unsafe

    new_bytes = io_unsafe.serialize_value(new_value, io_unsafe.current_format())
    size = data_file.identity.size
    new_size = size + len(new_bytes) - (entry.end - entry.start)
    fd = io_bytes._write_journal(data_file, entry.start, new_size, new_bytes, entry.end)
    if apply_half:
        # Tear the data file: the first bytes of the new value land, the rest does not.
        with open(files.json, "r+b") as handle:
            handle.seek(entry.start)
            handle.write(new_bytes[: len(new_bytes) // 2])
    os.close(fd)
    os._exit(0)


@pytest.mark.parametrize("apply_half", [False, True], ids=["before-apply", "half-applied"])
def test_a_dead_writers_journal_is_rolled_forward(big, apply_half):
    storage = DDB.config.storage_directory
    new_value = {"blob": "recovered" * 300, "n": 1}
    child = multiprocessing.get_context("fork").Process(
        target=_write_journal_and_die, args=(storage, "k0800", new_value, apply_half)
    )
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert os.path.exists(utils.db_files("big").journal)
    # A plain reader finds the journal of a dead writer, finishes it, and reads the result.
    assert DDB.at("big", key="k0800").read() == new_value
    big["k0800"] = new_value
    assert not os.path.exists(utils.db_files("big").journal)
    assert _raw("big") == _canonical(big)


def test_an_incomplete_journal_is_dropped(big):
    files = utils.db_files("big")
    before = _raw("big")
    with open(files.journal, "wb") as handle:
        handle.write(b"half a journal without its trailer")
    # Simulate a dead writer: an unreadable journal counts as one.
    assert DDB.at("big", key="k0005").read() == big["k0005"]
    assert not os.path.exists(files.journal)
    assert _raw("big") == before
