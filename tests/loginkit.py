"""What the notebook-login tests share besides `pymemri.testing.forms` (the Pod and provider to log in to, and the
cells a person runs): Python environments with older ipykernels (6, and 7.3: kernels that can't take widget events
while a cell runs), and the environment a kernel under test runs in.
"""
import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IPYKERNEL6 = "ipykernel==6.31.0"
IPYKERNEL73 = "ipykernel==7.3.0"  # the last release before widget messages are taken while a cell awaits


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pymemri-tests"


def kernel_python(requirement: str) -> Path:
    "The Python of a virtual environment with pymemri (this checkout, notebook form) and `requirement` (an ipykernel), made once."
    settings = (ROOT / "settings.ini").read_text()
    key = hashlib.sha256(f"{sys.version}|{ROOT}|{requirement}|{settings}".encode()).hexdigest()[:12]
    folder = cache_dir() / f"venv-{requirement.replace('==', '-')}-{key}"
    python, ready = folder / "bin" / "python", folder / ".ready"
    if ready.exists(): return python
    venv.create(folder, with_pip=True, clear=True)
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", requirement, "-e", f"{ROOT}[notebook]"],
                             capture_output=True, text=True, timeout=600)
    if install.returncode != 0: pytest.fail(f"could not make the {requirement} environment in {folder}:\n{install.stderr[-2000:]}")
    ready.touch()
    return python


def ipykernel6_python() -> Path:
    "The Python of an environment with ipykernel 6, the generation that can't take widget events while a cell runs."
    return kernel_python(IPYKERNEL6)


def kernel_env(home: Path) -> dict:
    "The environment a kernel or Jupyter server of these tests runs in: its own pymemri home, no Pod address."
    env = {name: value for name, value in os.environ.items() if name not in ("POD_ADDRESS", "PYTHONPATH")}
    env["PYMEMRI_HOME"] = str(home)
    return env
