"""Result rows and the targets they are judged against.

A row holds one figure per store (``None`` when a store was not measured, with the reason in
``skipped``). Rates (``ops/s``, ``docs/s``) get DDB/SQLite and DDB/TinyDB ratios; other units
(milliseconds, megabytes, plain factors) are shown as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

RATE_UNITS = ("ops/s", "docs/s")
STORES = ("ddb", "sqlite", "tinydb")


@dataclass(frozen=True)
class Target:
    """A goal for a row.

    ``kind`` is ``"vs_sqlite"`` (DDB/SQLite ratio >= ``limit``), ``"at_most"`` (DDB value
    <= ``limit``) or ``"below"`` (DDB value < ``limit``).
    """

    kind: str
    limit: float

    def describe(self) -> str:
        if self.kind == "vs_sqlite":
            return f">= {self.limit:g}x SQLite"
        if self.kind == "at_most":
            return f"<= {self.limit:g}"
        return f"< {self.limit:g}"


@dataclass
class Row:
    """One line of the result table."""

    section: str
    operation: str
    unit: str
    ddb: Optional[float] = None
    sqlite: Optional[float] = None
    tinydb: Optional[float] = None
    target: Optional[Target] = None
    #: store -> why it has no figure ("skipped: ...", "n/a: ...")
    skipped: Dict[str, str] = field(default_factory=dict)
    #: an extra condition of the target (exact counts); False makes the row fail
    condition_ok: bool = True
    note: str = ""

    def value(self, store: str) -> Optional[float]:
        return getattr(self, store)

    def ratio(self, other: str) -> Optional[float]:
        """DDB / ``other`` for rates; ``None`` when either side is missing or not a rate."""
        theirs = self.value(other)
        if self.unit not in RATE_UNITS or self.ddb is None or not theirs:
            return None
        return self.ddb / theirs

    def verdict(self) -> Optional[str]:
        """``"PASS"``, ``"FAIL"`` or ``None`` (no target)."""
        if self.target is None:
            return None
        if self.ddb is None:
            return "FAIL"
        if self.target.kind == "vs_sqlite":
            ratio = self.ratio("sqlite")
            passed = ratio is not None and ratio >= self.target.limit
        elif self.target.kind == "at_most":
            passed = self.ddb <= self.target.limit
        else:
            passed = self.ddb < self.target.limit
        return "PASS" if passed and self.condition_ok else "FAIL"

    def to_dict(self) -> Dict[str, Any]:
        return {
            "section": self.section,
            "operation": self.operation,
            "unit": self.unit,
            "ddb": self.ddb,
            "sqlite": self.sqlite,
            "tinydb": self.tinydb,
            "ratio_vs_sqlite": self.ratio("sqlite"),
            "ratio_vs_tinydb": self.ratio("tinydb"),
            "target": self.target.describe() if self.target else None,
            "result": self.verdict(),
            "skipped": self.skipped,
            "note": self.note,
        }
