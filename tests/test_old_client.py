"""The 2022 client itself, pymemri 0.0.38 from PyPI, paging a real Pod process of ours.

`tests/test_conformance.py` replays what the 2022 clients send; this runs the real package. It can't share an
environment with today's pymemri (same package name, clashing pins), so `tools/bench_pod.py` makes one for it under
the user's cache folder and pages all Dogs back with their edges through it (`tools/old_client_paging.py`, which
checks every Dog came back with its owner). Here the bench runs small, and the test checks the 2022 client read every
Dog. Without PyPI the environment can't be made: on CI that fails, elsewhere the test skips, saying why.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from test_launchers_integration import on_ci

BENCH = Path(__file__).resolve().parent.parent / "tools" / "bench_pod.py"


def test_the_2022_client_pages_every_dog_with_its_edges(tmp_path):
    ran = subprocess.run([sys.executable, str(BENCH), "--items", "300", "--batch", "100"], capture_output=True, text=True,
                         timeout=900, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    figures = json.loads(ran.stdout)
    if "old_client_error" in figures and not on_ci():
        pytest.skip(f"the 2022 client could not be installed here: {figures['old_client_error'][:300]}")
    assert figures.get("old_client_paging_items_per_s", 0) > 0, figures.get("old_client_error")
