"""pytest's notebook run (nbval) on the notebooks as nbdev keeps them.

- It skips the cells that carry one of settings.ini's test flags (`#| docker`, ...). `nbdev_test` runs such cells
  only when asked (`nbdev_test --flags docker`); nbval knows no flags, so without this it would run every cell, and
  fail on a machine without what the flag names.
- It checks every cell's outputs. nbval takes a cell without an execution count for one never run: it checks no
  outputs for it, and fails it if it has some. `nbdev_clean` blanks every count, so here each code cell counts as run,
  and `pytest --nbval` compares what it prints now with what `tools/store_outputs.py` stored (no output: none).
"""
import re
from configparser import ConfigParser
from pathlib import Path

import pytest


def notebook_test_flags() -> set:
    "The flags settings.ini lists as `tst_flags`."
    config = ConfigParser(delimiters=["="])
    config.read(Path(__file__).parent.parent / "settings.ini", encoding="utf-8")
    return set(config["DEFAULT"].get("tst_flags", "").split())


def pytest_collection_modifyitems(items):
    flags = notebook_test_flags()
    for item in items:
        cell = getattr(item, "cell", None)
        source = getattr(cell, "source", None)
        if not isinstance(source, str): continue
        if cell.get("execution_count") is None: cell.execution_count = 1
        found = sorted(set(re.findall(r"^#\|\s*(\w+)\s*$", source, re.MULTILINE)) & flags)
        if found: item.add_marker(pytest.mark.skip(reason=f"flagged {', '.join(found)}: nbdev_test --flags {' '.join(found)} runs it"))
