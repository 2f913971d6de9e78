"""Generated documents of a chosen size, the same for every store.

A value looks like a small record with a list of line items::

    {"id": 17, "name": "user-000017", "n": 0, "flip": 0, "pad": "ssssssss", "items": [...]}

``n`` is what the increment workloads count, ``flip`` toggles between 0 and 1 (a change that
keeps the stored length), ``pad`` alternates between two lengths (a change that does not).
The ``items`` lists come from a small pool of random lists shared between values: the bytes
on disk are the same as with distinct lists, but generating a 500 MB file stays cheap.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List

import orjson

SHORT_PAD = "s" * 8
LONG_PAD = "l" * 24
_POOL_SIZE = 16
_WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa", "sigma", "omega")


def key_name(index: int) -> str:
    """The top-level key (or document name) number ``index``."""
    return f"key_{index:07d}"


def stored_size(value: Any) -> int:
    """Bytes of ``value`` as DictDataBase stores a top-level value (orjson, indented)."""
    return len(orjson.dumps({"k": value}, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def _item(rng: random.Random, index: int) -> Dict[str, Any]:
    return {
        "sku": f"SKU-{rng.randrange(10**6):06d}",
        "qty": rng.randrange(1, 50),
        "price": round(rng.uniform(1, 500), 2),
        "note": " ".join(rng.choice(_WORDS) for _ in range(5)),
        "line": index,
    }


def _record(index: int, items: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {"id": index, "name": f"user-{index:06d}", "n": 0, "flip": 0, "pad": SHORT_PAD, "items": items}


class ValueFactory:
    """Makes values of about ``target_bytes`` stored bytes each."""

    def __init__(self, target_bytes: int, seed: int = 1) -> None:
        rng = random.Random(seed)
        per_item = (
            stored_size(_record(0, [_item(rng, i) for i in range(10)])) - stored_size(_record(0, []))
        ) / 10
        count = max(0, round((target_bytes - stored_size(_record(0, []))) / per_item))
        self.pool = [[_item(rng, i) for i in range(count)] for _ in range(_POOL_SIZE)]

    def value(self, index: int) -> Dict[str, Any]:
        """A fresh record (its ``items`` list is shared with other records: do not change it)."""
        return _record(index, self.pool[index % _POOL_SIZE])

    def mapping(self, count: int) -> Dict[str, Dict[str, Any]]:
        """``{key_name(i): value(i)}`` for ``i`` in ``range(count)``."""
        return {key_name(i): self.value(i) for i in range(count)}


def tiny_mapping(count: int) -> Dict[str, Dict[str, Any]]:
    """A handful of small records (the "tiny file" workload)."""
    return {
        key_name(i): {"n": 0, "name": f"user-{i}", "tags": ["a", "b"], "active": True} for i in range(count)
    }


def bump(value: Dict[str, Any]) -> None:
    """The change of the increment workloads."""
    value["n"] += 1


def flip(value: Dict[str, Any]) -> None:
    """A change that keeps the value's stored length (``0`` <-> ``1``)."""
    value["flip"] = 1 - value["flip"]


def resize(value: Dict[str, Any]) -> None:
    """A change of the value's stored length (``pad`` alternates between two lengths)."""
    value["pad"] = LONG_PAD if value["pad"] == SHORT_PAD else SHORT_PAD
