"""What the tests share besides fixtures: the tiny-run overrides, and running the CLI as a user would.

Test modules import these from here; ``conftest.py`` holds only fixtures (pytest loads it on its own).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# conf/debug/tiny.yaml: one epoch of two batches at 32 px on the CPU, no pretrained weights.
TINY = ["debug=tiny"]


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m translearn.train ARGS`` in a subprocess, as a user would type it."""
    return subprocess.run(
        [sys.executable, "-m", "translearn.train", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Non-zero exit, no traceback, and one ``translearn: error:`` line containing every fragment."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("translearn: error:")]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
