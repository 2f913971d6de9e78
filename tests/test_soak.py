"""Runs ../soak.py (the long crash and concurrency soak). Deselected by default; run it with
``python -m pytest -m soak``."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_soak_script(tmp_path):
    completed = subprocess.run(
        [sys.executable, os.path.join(ROOT, "soak.py"), "--storage", str(tmp_path / "soak")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1700,
        check=False,
    )
    output = completed.stdout + completed.stderr
    lines = completed.stdout.strip().splitlines()
    assert lines, output[-5000:]
    match = re.fullmatch(r"(\d+) rounds, (\d+) corrupt, (\d+) lost", lines[-1])
    assert match, output[-5000:]
    rounds, corrupt, lost = map(int, match.groups())
    assert rounds >= 400, output[-5000:]
    assert (corrupt, lost) == (0, 0), output[-5000:]
    assert completed.returncode == 0, output[-5000:]
