"""The outputs: a text table for the terminal, a markdown file, a JSON file and a PNG chart."""

from __future__ import annotations

import json
import os
import textwrap
from typing import Any, Dict, List, Optional, Sequence

from .context import format_number
from .results import RATE_UNITS, Row

HEADERS = (
    "Workload",
    "Operation",
    "Unit",
    "DDB",
    "SQLite",
    "TinyDB",
    "DDB/SQLite",
    "DDB/TinyDB",
    "Target",
    "Result",
)
STORE_LABELS = {"ddb": "DictDataBase", "sqlite": "SQLite", "tinydb": "TinyDB"}
STORE_COLORS = {"ddb": "#1f77b4", "sqlite": "#7f7f7f", "tinydb": "#ff7f0e"}
VERDICT_COLORS = {"PASS": "#2ca02c", "FAIL": "#d62728", None: "#9e9e9e"}
RATIO_TICKS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)


# ---------------------------------------------------------------------------------------
# Cells


def _value_cell(row: Row, store: str) -> str:
    value = row.value(store)
    if value is not None:
        return format_number(value)
    reason = row.skipped.get(store, "")
    return reason.split(":", 1)[0] if reason else "-"


def _ratio_cell(ratio: Optional[float]) -> str:
    return "" if ratio is None else f"{ratio:.2f}x"


def cells(row: Row) -> List[str]:
    return [
        row.section,
        row.operation,
        row.unit,
        _value_cell(row, "ddb"),
        _value_cell(row, "sqlite"),
        _value_cell(row, "tinydb"),
        _ratio_cell(row.ratio("sqlite")),
        _ratio_cell(row.ratio("tinydb")),
        row.target.describe() if row.target else "",
        row.verdict() or "",
    ]


def notes(rows: Sequence[Row]) -> List[str]:
    """One line per row that has a note or a reason for a missing figure (each reason is
    given once per workload)."""
    lines = []
    told = set()
    for row in rows:
        parts = [row.note] if row.note else []
        for store, reason in row.skipped.items():
            if (row.section, store, reason) not in told:
                told.add((row.section, store, reason))
                parts.append(f"{STORE_LABELS[store]} {reason}")
        if parts:
            lines.append(f"{row.section} / {row.operation}: {'; '.join(parts)}")
    return lines


def summary(rows: Sequence[Row]) -> Dict[str, Any]:
    verdicts = [row.verdict() for row in rows if row.target is not None]
    failed = [f"{row.section} / {row.operation}" for row in rows if row.verdict() == "FAIL"]
    return {"targets": len(verdicts), "passed": verdicts.count("PASS"), "failed": failed}


# ---------------------------------------------------------------------------------------
# Text and markdown


def text_table(rows: Sequence[Row]) -> str:
    table = [list(HEADERS)] + [cells(row) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    numeric = {3, 4, 5, 6, 7}

    def render(line: List[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in enumerate(line)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(table[0]), rule] + [render(line) for line in table[1:]])


def markdown(rows: Sequence[Row], meta: Dict[str, Any]) -> str:
    result = summary(rows)
    lines = [
        "# DictDataBase benchmark",
        "",
        f"- Date: {meta['date']}",
        f"- Machine: {meta['machine']['cores']} cores ({meta['machine']['usable_cores']} usable), "
        f"{meta['machine']['platform']}; load average {meta['machine']['load_average_at_start']} at the start, "
        f"{meta['machine']['load_average_at_end']} at the end",
        f"- Python: {meta['python']}",
        "- Versions: " + ", ".join(f"{name} {version}" for name, version in meta["versions"].items()),
        f"- Arguments: `{meta['command']}`",
        "- Settings: " + ", ".join(f"{name}={value}" for name, value in meta["settings"].items()),
        f"- Duration: {meta['duration_s']:.0f} s",
        f"- Targets: {result['passed']} of {result['targets']} pass",
        "",
        "Rates are medians of several timed batches; ratios are DDB / other store (higher is better",
        "for DDB). All figures come from this one run on this machine.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---:" if 3 <= i <= 7 else "---" for i in range(len(HEADERS))) + "|",
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in cells(row)) + " |" for row in rows]
    lines += ["", "Notes:", ""] + [f"- {line}" for line in notes(rows)]
    if meta.get("errors"):
        lines += ["", "Errors:", ""] + [f"- {error}" for error in meta["errors"]]
    return "\n".join(lines) + "\n"


def write_text(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_json(path: str, rows: Sequence[Row], meta: Dict[str, Any]) -> None:
    document = {"meta": meta, "summary": summary(rows), "rows": [row.to_dict() for row in rows]}
    write_text(path, json.dumps(document, indent=2) + "\n")


# ---------------------------------------------------------------------------------------
# Chart


def _label(row: Row) -> str:
    return textwrap.fill(f"{row.section}: {row.operation}", 48)


def write_chart(path: str, rows: Sequence[Row], meta: Dict[str, Any]) -> None:
    """Three panels: rates of every store, DDB/SQLite ratios against their targets, and the
    figures with an absolute limit (as a fraction of the limit)."""
    import matplotlib  # noqa: PLC0415 - only the chart needs it

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rates = [row for row in rows if row.unit in RATE_UNITS]
    ratios = [row for row in rates if row.ratio("sqlite") is not None]
    limits = [
        row
        for row in rows
        if row.target is not None and row.target.kind != "vs_sqlite" and row.ddb is not None
    ]
    panels = [
        (panel, rows) for panel, rows in (("rates", rates), ("ratios", ratios), ("limits", limits)) if rows
    ]
    heights = [len(panel_rows) * (1.6 if name == "rates" else 0.8) + 1 for name, panel_rows in panels]
    figure, axes = plt.subplots(
        len(panels),
        1,
        figsize=(13, sum(heights) * 0.42 + 1.0),
        squeeze=False,
        constrained_layout=True,
        gridspec_kw={"height_ratios": heights},
    )
    drawers = {"rates": _draw_rates, "ratios": _draw_ratios, "limits": _draw_limits}
    for axis, (name, panel_rows) in zip(axes[:, 0], panels):
        drawers[name](axis, panel_rows)
    figure.suptitle(
        f"DictDataBase vs SQLite vs TinyDB — {meta['date'][:10]}, {meta['machine']['cores']} cores, "
        f"Python {meta['python'].split()[0]}",
        fontsize=13,
    )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


def _draw_rates(axis, rows: Sequence[Row]) -> None:
    height = 0.27
    for offset, store in enumerate(("ddb", "sqlite", "tinydb")):
        positions = [index + (offset - 1) * height for index in range(len(rows))]
        values = [row.value(store) or 0 for row in rows]
        axis.barh(positions, values, height=height, color=STORE_COLORS[store], label=STORE_LABELS[store])
    axis.set_yticks(range(len(rows)))
    axis.set_yticklabels([f"{_label(row)} [{row.unit}]" for row in rows], fontsize=8)
    axis.invert_yaxis()
    axis.set_xscale("log")
    axis.set_xlabel("operations (or documents) per second, log scale — longer is faster")
    axis.legend(loc="lower right", fontsize=8)
    axis.grid(axis="x", which="major", alpha=0.3)


def _draw_ratios(axis, rows: Sequence[Row]) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # noqa: PLC0415

    ratios = [row.ratio("sqlite") for row in rows]
    colors = [
        VERDICT_COLORS[row.verdict() if row.target and row.target.kind == "vs_sqlite" else None]
        for row in rows
    ]
    axis.barh(range(len(rows)), ratios, color=colors, height=0.6)
    for index, row in enumerate(rows):
        if row.target is not None and row.target.kind == "vs_sqlite":
            axis.plot([row.target.limit] * 2, [index - 0.4, index + 0.4], color="black", linewidth=2)
        axis.text(ratios[index], index, f" {ratios[index]:.2f}x", va="center", fontsize=8)
    axis.axvline(1.0, color="black", linewidth=0.8, linestyle=":")
    axis.set_yticks(range(len(rows)))
    axis.set_yticklabels([_label(row) for row in rows], fontsize=8)
    axis.invert_yaxis()
    axis.set_xscale("log")
    axis.set_xlim(min([*ratios, 0.1]) / 1.5, max([*ratios, 1.0]) * 2)
    axis.xaxis.set_major_locator(FixedLocator(RATIO_TICKS))
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    axis.xaxis.set_minor_locator(NullLocator())
    axis.set_xlabel("DDB / SQLite (log scale); black tick = target; green PASS, red FAIL, grey no target")
    axis.grid(axis="x", which="major", alpha=0.3)


def _draw_limits(axis, rows: Sequence[Row]) -> None:
    fractions = [row.ddb / row.target.limit for row in rows]
    axis.barh(range(len(rows)), fractions, color=[VERDICT_COLORS[row.verdict()] for row in rows], height=0.6)
    for index, row in enumerate(rows):
        axis.text(
            fractions[index],
            index,
            f" {format_number(row.ddb)} {row.unit} ({row.target.describe()})",
            va="center",
            fontsize=8,
        )
    axis.axvline(1.0, color="black", linewidth=1.5)
    axis.set_yticks(range(len(rows)))
    axis.set_yticklabels([_label(row) for row in rows], fontsize=8)
    axis.invert_yaxis()
    axis.set_xlim(0, max([*fractions, 1.0]) * 1.6)
    axis.set_xlabel("DDB figure / its limit — left of the black line passes")
    axis.grid(axis="x", alpha=0.3)
