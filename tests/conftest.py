"""Shared fixtures: every test gets its own storage directory and leaves the config as it found it."""

from __future__ import annotations

import multiprocessing
import os
import sys

import pytest

# Make the helper module importable whatever pytest's import mode is.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ddb_workers as W
from ddb_test_helpers import ALL_FMTS, Fmt

import dictdatabase as DDB
from dictdatabase import locking

_CONFIG_NAMES = ("storage_directory", "indent", "use_compression", "use_orjson", "use_fsync")


def _config_names() -> tuple:
    names = list(_CONFIG_NAMES)
    # Pick up any further public setting the library may grow.
    for cls in type(DDB.config).__mro__:
        for attr, value in vars(cls).items():
            if (
                isinstance(value, property)
                and value.fset is not None
                and not attr.startswith("_")
                and attr not in names
            ):
                names.append(attr)
    return tuple(names)


@pytest.fixture(autouse=True)
def ddb_storage(tmp_path):
    """A fresh storage directory per test; all config values are restored afterwards."""
    names = _config_names()
    saved = {name: getattr(DDB.config, name) for name in names}
    storage = tmp_path / "ddb"
    DDB.config.storage_directory = str(storage)
    try:
        yield storage
    finally:
        for name, value in saved.items():
            setattr(DDB.config, name, value)


@pytest.fixture(params=ALL_FMTS, ids=[f.id for f in ALL_FMTS])
def fmt(request) -> Fmt:
    """use_compression x use_orjson x indent, applied to DDB.config."""
    setting: Fmt = request.param
    setting.apply()
    return setting


@pytest.fixture(autouse=True)
def _restore_lock_constants():
    """Tests may lower the lock timeouts; put them back afterwards."""
    saved = {name: getattr(locking, name) for name in W.LOCK_NAMES}
    yield
    for name, value in saved.items():
        setattr(locking, name, value)


@pytest.fixture
def storage(ddb_storage) -> str:
    """The test's storage directory as a string (child processes get it as an argument)."""
    return str(ddb_storage)


@pytest.fixture(params=["fork", "spawn"])
def ctx(request):
    """Every multi-process test runs under both start methods."""
    return multiprocessing.get_context(request.param)
