"""pytest's notebook run (nbval) on the notebooks as nbdev keeps them.

- It skips the cells that carry one of settings.ini's test flags (`#| docker`, ...). `nbdev_test` runs such cells
  only when asked (`nbdev_test --flags docker`); nbval knows no flags, so without this it would run every cell, and
  fail on a machine without what the flag names.
- It checks every cell's outputs. nbval takes a cell without an execution count for one never run: it checks no
  outputs for it, and fails it if it has some. `nbdev_clean` blanks every count, so here each code cell counts as run,
  and `pytest --nbval` compares what it prints now with what `tools/store_outputs.py` stored (no output: none).
  A cell whose outputs differ says how to store the new ones, when they are right.
- The notebook's kernel gets `KERNEL_ENV`, as under `tools/store_outputs.py`: help texts wrap alike everywhere.
"""
import os
import re
from configparser import ConfigParser
from pathlib import Path

import pytest

KERNEL_ENV = {"COLUMNS": "100"}  # `!cmd --help` wraps at this width, whatever the terminal pytest runs in


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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if report.failed and getattr(item, "cell", None) is not None and "Cell outputs differ" in str(report.longrepr):
        name = Path(str(item.fspath)).stem
        report.sections.append(("how to fix", "If the new outputs are right (an edit changed them), store them with:\n"
                                f"    python tools/store_outputs.py {name}\nIf they vary from run to run, mask what "
                                "varies in nbs/nbval_sanitize.cfg, or make the cell's output deterministic."))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    "nbval starts a notebook's kernel when its first cell is set up: with `KERNEL_ENV` in its environment."
    if getattr(item, "cell", None) is None:
        yield
        return
    saved = {name: os.environ.get(name) for name in KERNEL_ENV}
    os.environ.update(KERNEL_ENV)
    try: yield
    finally:
        for name, value in saved.items():
            if value is None: os.environ.pop(name, None)
            else: os.environ[name] = value
