"""What the benchmark's fresh subprocesses run: ``python -m benchmarks.worker``.

A worker reads its task as one JSON line on stdin (a command line would limit its size) and
prints one JSON line with its figures on stdout. Tasks:

- ``first_touch``: read many distinct keys once each in a process that never opened the file;
- ``increments``: increment counters through sessions / transactions, started by a signal;
- ``make_big``: create the large file (and its SQLite twin) for the memory workload;
- ``rss``: the peak RSS added by one key read (first-touch or warm).

The module imports only the standard library at the top, so a task decides what is loaded
before its baseline is taken.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any, Callable, Dict

Task = Dict[str, Any]


def main() -> int:
    task = json.loads(sys.stdin.readline())
    result = TASKS[task["task"]](task)
    print(json.dumps(result), flush=True)
    return 0


# ---------------------------------------------------------------------------------------
# Opening a store in a subprocess


def _key_reader(task: Task) -> Callable[[str], Any]:
    """Open the task's store (outside any timing) and return its key-read function."""
    backend = task["backend"]
    if backend == "ddb":
        import dictdatabase as DDB  # noqa: PLC0415

        from .stores import configure_ddb  # noqa: PLC0415

        configure_ddb(task["storage"])
        name = task["name"]
        return lambda key: DDB.at(name, key=key).read()
    if backend == "sqlite":
        from .stores import SqliteDocs  # noqa: PLC0415

        return SqliteDocs(task["path"]).read_key
    from .stores import TinyDocs  # noqa: PLC0415

    return TinyDocs(task["path"], task["doc_ids"]).read_key


# ---------------------------------------------------------------------------------------
# Tasks


def first_touch(task: Task) -> Dict[str, Any]:
    """Time the first key read, then reading every other key of ``keys`` once."""
    read_key = _key_reader(task)
    keys = task["keys"]
    start = time.perf_counter()
    read_key(keys[0])
    first = time.perf_counter()
    for key in keys[1:]:
        read_key(key)
    end = time.perf_counter()
    return {"first_s": first - start, "total_s": end - start, "count": len(keys)}


def increments(task: Task) -> Dict[str, Any]:
    """Wait for ``go`` on stdin, then increment every database's counter ``count`` times."""
    backend, key, count = task["backend"], task["key"], task["count"]
    if backend == "ddb":
        from .stores import configure_ddb, ddb_key_session  # noqa: PLC0415

        configure_ddb(task["storage"])
        names = task["names"]
        bumps = [lambda name=name: ddb_key_session(name, key, _bump) for name in names]
    else:
        from .stores import SqliteDocs  # noqa: PLC0415

        stores = [SqliteDocs(path) for path in task["paths"]]  # one connection each, opened once
        bumps = [lambda store=store: store.key_session(key, _bump) for store in stores]
    # Start each process at a different database, so that they do not march in step.
    shift = task["offset"] % len(bumps)
    bumps = bumps[shift:] + bumps[:shift]
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.monotonic()
    for _ in range(count):
        for bump in bumps:
            bump()
    return {"start": start, "end": time.monotonic()}


def _bump(value: Dict[str, Any]) -> None:
    value["n"] += 1


def make_big(task: Task) -> Dict[str, Any]:
    """Create the big DictDataBase file and its SQLite twin; leave an index file on disk."""
    import dictdatabase as DDB  # noqa: PLC0415

    from .data import ValueFactory, key_name  # noqa: PLC0415
    from .stores import SqliteDocs, configure_ddb  # noqa: PLC0415

    configure_ddb(task["storage"])
    factory = ValueFactory(task["value_bytes"])
    mapping = factory.mapping(task["keys"])
    DDB.at(task["name"]).create(mapping, force_overwrite=True)
    DDB.at(task["name"], key=key_name(0)).read()  # builds the index and stores it on disk
    store = SqliteDocs(task["path"])
    store.load(mapping)
    store.close()
    return {"ddb_bytes": os.path.getsize(os.path.join(task["storage"], task["name"] + ".json"))}


def rss(task: Task) -> Dict[str, Any]:
    """Peak RSS added by a key read, measured in a process whose peak is its own.

    A process started directly by the benchmark inherits, in ``ru_maxrss``, the peak of the
    parent's address space (the kernel keeps the old high-water mark across exec). So this
    task first hops through a small launcher process and measures in the launcher's child.
    """
    if task.get("hop", True):
        child = dict(task, hop=False)
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.worker"],
            input=json.dumps(child) + "\n",
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])
    read_key = _key_reader(task)
    key = task["key"]
    if task["mode"] == "warm":
        read_key(key)  # index (or page cache of SQLite) loaded: what "warm" means
    gc.collect()
    reset = _reset_peak_rss()
    baseline = _peak_rss_mb()
    for _ in range(task["reads"]):
        read_key(key)
    peak = _peak_rss_mb()
    return {"baseline_mb": baseline, "peak_mb": peak, "increase_mb": peak - baseline, "peak_reset": reset}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS (Linux ``clear_refs``); tell whether it worked.

    Without the reset the baseline is the peak so far (imports, the warm-up read), which can
    only hide part of an increase, never invent one.
    """
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


TASKS: Dict[str, Callable[[Task], Dict[str, Any]]] = {
    "first_touch": first_touch,
    "increments": increments,
    "make_big": make_big,
    "rss": rss,
}


if __name__ == "__main__":
    raise SystemExit(main())
