"""``python -m benchmarks``: arguments, the run, and the outputs.

Run ``python -m benchmarks --quick`` for a smoke run of about half a minute, or without
arguments for the full run (a few minutes on two cores). ``--help`` lists the sizes.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from importlib import metadata
from typing import Any, Dict, List, Optional, Tuple

from . import REPO_ROOT, report
from .context import Context
from .results import Row
from .timing import Timer

#: Sizes of the full run (each is an argument; ``--quick`` swaps in QUICK).
DEFAULTS: Dict[str, Any] = {
    "tiny_keys": 10,
    "large_keys": 4000,
    "value_kb": 12,
    "first_touch_keys": 0,
    "first_touch_runs": 3,
    "write_keys": 16,
    "procs": 16,
    "files": 4,
    "increments": 50,
    "concurrency_runs": 3,
    "folder_docs": 3000,
    "doc_kb": 2,
    "big_mb": 500,
    "min_time": 0.25,
    "repeats": 5,
}
QUICK: Dict[str, Any] = {
    **DEFAULTS,
    "large_keys": 800,
    "first_touch_runs": 1,
    "write_keys": 6,
    "increments": 5,
    "concurrency_runs": 1,
    "folder_docs": 500,
    "big_mb": 20,
    "min_time": 0.03,
    "repeats": 3,
}
HELP = {
    "tiny_keys": "keys of the tiny file",
    "large_keys": "keys of the large file (4000 x 12 KB is about 50 MB)",
    "value_kb": "size of one value of the large and the big file, in KB",
    "first_touch_keys": "distinct keys a fresh process reads once each (0: all keys)",
    "first_touch_runs": "fresh processes per store for the first-touch reads (median)",
    "write_keys": "keys, spread over the large file, that the key-session writes change",
    "procs": "processes of the concurrency workload",
    "files": "files (databases) each process increments",
    "increments": "increments per process and file",
    "concurrency_runs": "repetitions of the concurrency workload (median)",
    "folder_docs": "documents in the folder",
    "doc_kb": "size of one folder document, in KB",
    "big_mb": "size of the big file of the memory workload, in MB",
    "min_time": "minimum seconds of one timed batch",
    "repeats": "timed batches per measurement (the median is reported)",
}


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    from .workloads import WORKLOADS  # noqa: PLC0415 - imports dictdatabase; keep --help light

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure DictDataBase against SQLite and TinyDB on the same workloads, in one run.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of about 30 s")
    for name, default in DEFAULTS.items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=type(default),
            default=None,
            metavar="N" if isinstance(default, int) else "SECONDS",
            help=f"{HELP[name]} (default {default}; --quick: {QUICK[name]})",
        )
    parser.add_argument(
        "--only", nargs="+", choices=list(WORKLOADS), help="run only these workloads (default: all)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated data (default 1)")
    parser.add_argument("--tmp-dir", help="where to make the temporary directory (default: the system's)")
    assets = os.path.join(REPO_ROOT, "assets")
    parser.add_argument(
        "--chart",
        default=os.path.join(assets, "benchmark.png"),
        help="PNG chart path (default assets/benchmark.png)",
    )
    parser.add_argument(
        "--json",
        default=os.path.join(assets, "benchmark.json"),
        help="JSON results path (default assets/benchmark.json)",
    )
    parser.add_argument(
        "--markdown",
        default=os.path.join(assets, "benchmark.md"),
        help="markdown table path (default assets/benchmark.md)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else DEFAULTS
    for name in DEFAULTS:
        if getattr(args, name) is None:
            setattr(args, name, sizes[name])
    args.only = args.only or list(WORKLOADS)
    return args


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def _library_revision() -> str:
    """The checkout's commit, with ``+changes`` when the library has uncommitted edits."""
    git = shutil.which("git")
    if git is None:
        return "?"
    try:
        commit = subprocess.run(
            [git, "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            [git, "status", "--porcelain", "--", "dictdatabase"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return commit + ("+changes" if changed else "")


def _load() -> List[float]:
    return [round(value, 2) for value in os.getloadavg()] if hasattr(os, "getloadavg") else []


def describe_run(args: argparse.Namespace, argv: List[str], started: float) -> Dict[str, Any]:
    """Date, machine, versions and arguments, for the JSON and markdown files."""
    import dictdatabase  # noqa: PLC0415

    settings = {name: getattr(args, name) for name in DEFAULTS}
    settings.update(quick=args.quick, only=" ".join(args.only), seed=args.seed)
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_start": args.load_at_start,
            "load_average_at_end": _load(),
        },
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "versions": {
            "dictdatabase": f"{dictdatabase.__version__} (git {_library_revision()})",
            "sqlite": sqlite3.sqlite_version,
            "tinydb": _version("tinydb"),
            "orjson": _version("orjson"),
        },
        "command": " ".join(["python -m benchmarks", *map(shlex.quote, argv)]),
        "settings": settings,
        "duration_s": time.monotonic() - started,
    }


def run_workloads(ctx: Context, names: List[str]) -> Tuple[List[Row], List[str]]:
    """Run the chosen workloads in order; a failing workload is reported and skipped."""
    from .workloads import WORKLOADS  # noqa: PLC0415

    rows: List[Row] = []
    errors: List[str] = []
    for number, name in enumerate(names, 1):
        module = WORKLOADS[name]
        ctx.say(f"[{number}/{len(names)}] {module.TITLE}")
        started = time.monotonic()
        try:
            rows += module.run(ctx)
        except Exception as error:  # noqa: BLE001 - one broken workload must not lose the others
            traceback.print_exc()
            errors.append(f"workload {name!r} failed: {error!r}")
        ctx.say(f"  ({time.monotonic() - started:.0f} s)")
    return rows, errors


def missing_requirements() -> List[str]:
    """The packages the run needs that cannot be imported."""
    missing = []
    for package in ("orjson", "tinydb", "matplotlib", "dictdatabase"):
        try:
            importlib.import_module(package)
        except ImportError:
            missing.append(package)
    return missing


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    missing = missing_requirements()
    if missing:
        print(
            f"Missing packages: {', '.join(missing)}. Use the project's .venv (`just setup`), or "
            "pip install orjson path-dict tinydb matplotlib and run with PYTHONPATH=<this checkout>.",
            file=sys.stderr,
        )
        return 2
    args = parse_args(argv)
    started = time.monotonic()
    args.load_at_start = _load()
    if args.load_at_start and args.load_at_start[0] > 0.5:
        print(
            f"Note: the machine is busy (load average {args.load_at_start[0]}); absolute figures will be noisy."
        )
    root = tempfile.mkdtemp(prefix="ddb-bench-", dir=args.tmp_dir)
    ctx = Context(settings=args, timer=Timer(args.min_time, args.repeats), root=root)
    ctx.say(
        f"Benchmark of DictDataBase vs SQLite vs TinyDB in {root} ({'quick' if args.quick else 'full'} run)"
    )
    previous_cwd = os.getcwd()
    try:
        from .stores import configure_ddb  # noqa: PLC0415

        os.chdir(root)
        configure_ddb(ctx.storage)
        rows, errors = run_workloads(ctx, args.only)
    finally:
        os.chdir(previous_cwd)
        shutil.rmtree(root, ignore_errors=True)
    meta = describe_run(args, argv, started)
    meta["errors"] = errors
    print()
    print(report.text_table(rows))
    for line in report.notes(rows):
        print(f"  * {line}")
    result = report.summary(rows)
    print(f"\nTargets: {result['passed']} of {result['targets']} pass")
    for failed in result["failed"]:
        print(f"  FAIL: {failed}")
    report.write_json(args.json, rows, meta)
    report.write_text(args.markdown, report.markdown(rows, meta))
    report.write_chart(args.chart, rows, meta)
    print(f"\nWrote {args.chart}, {args.json} and {args.markdown} ({meta['duration_s']:.0f} s)")
    for error in errors:
        print(f"ERROR: {error}", file=sys.stderr)
    return 1 if errors else 0
