"""One command that measures DictDataBase against SQLite and TinyDB: ``python -m benchmarks``.

Every workload runs on all three stores in the same run, inside one temporary directory that
is removed at the end. The figures go to the terminal and to ``assets/benchmark.{png,json,md}``.

Modules:

- :mod:`benchmarks.cli`: arguments, the order of the workloads, writing the outputs;
- :mod:`benchmarks.timing`: repeated timing (median of several batches);
- :mod:`benchmarks.data`: the generated documents;
- :mod:`benchmarks.stores`: the SQLite and TinyDB baselines and the DictDataBase operations;
- :mod:`benchmarks.workloads`: the five workloads, each returning result rows;
- :mod:`benchmarks.worker`: what fresh subprocesses run (first reads, increments, memory);
- :mod:`benchmarks.results` and :mod:`benchmarks.report`: rows, targets, table, chart.
"""

import os

#: The checkout that holds the ``benchmarks`` and ``dictdatabase`` packages.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
