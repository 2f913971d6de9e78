"""What every workload gets: the settings, the timer, the temporary folders, progress output,
and a way to start fresh worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from argparse import Namespace
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from . import REPO_ROOT
from .results import Row
from .timing import Timer


@dataclass
class Context:
    settings: Namespace
    timer: Timer
    root: str  #: the temporary directory of this run

    @property
    def storage(self) -> str:
        """DictDataBase's storage directory."""
        return os.path.join(self.root, "ddb")

    def sqlite_path(self, name: str) -> str:
        return self._path("sqlite", name + ".sqlite")

    def tinydb_path(self, name: str) -> str:
        return self._path("tinydb", name + ".json")

    def scratch_path(self, name: str) -> str:
        return self._path("scratch", name)

    def _path(self, folder: str, name: str) -> str:
        os.makedirs(os.path.join(self.root, folder), exist_ok=True)
        return os.path.join(self.root, folder, name)

    # -- progress ----------------------------------------------------------------------

    @staticmethod
    def say(text: str) -> None:
        print(text, flush=True)

    def measured(self, row: Row, store: str, value: Optional[float]) -> None:
        """Record one store's figure in ``row`` and print it."""
        setattr(row, store, value)
        shown = "-" if value is None else format_number(value)
        self.say(f"    {row.section} | {row.operation} | {store:<6} {shown:>12} {row.unit}")

    def measure(
        self,
        row: Row,
        operations: Dict[str, Callable[[], Any]],
        *,
        slow: Optional[Dict[str, int]] = None,
        scale: Optional[Dict[str, float]] = None,
    ) -> Row:
        """Measure the stores' operations in interleaved rounds and record their rates.

        ``slow``: store -> number of single timed calls (operations of about a second);
        ``scale``: store -> units per call (documents per folder read, writes per pass).
        """
        rates = self.timer.rates(operations, slow=slow)
        for store, rate in rates.items():
            self.measured(row, store, rate * (scale or {}).get(store, 1))
        return row

    # -- subprocesses ------------------------------------------------------------------

    #: a worker reads its task as the first line of its standard input
    WORKER_COMMAND = (sys.executable, "-m", "benchmarks.worker")

    def worker_env(self) -> Dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO_ROOT, env.get("PYTHONPATH")]))
        return env

    def run_worker(self, task: Dict[str, Any]) -> Dict[str, Any]:
        """Run one task in a fresh process and return its JSON result."""
        done = subprocess.run(
            self.WORKER_COMMAND,
            input=json.dumps(task) + "\n",
            capture_output=True,
            text=True,
            cwd=self.root,
            env=self.worker_env(),
            check=False,
        )
        if done.returncode != 0:
            msg = f"worker task {task['task']!r} failed with code {done.returncode}:\n{done.stderr}"
            raise RuntimeError(msg)
        return json.loads(done.stdout.strip().splitlines()[-1])

    def start_worker(self, task: Dict[str, Any]) -> subprocess.Popen:
        """Start a task that goes on talking over stdin/stdout (the increments workers)."""
        worker = subprocess.Popen(
            self.WORKER_COMMAND,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.root,
            env=self.worker_env(),
        )
        worker.stdin.write(json.dumps(task) + "\n")
        worker.stdin.flush()
        return worker


def format_number(value: float) -> str:
    """Three significant digits, with thousands separators for big numbers."""
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"
