"""What the notebook-login tests share: a Pod and an OAuth provider to log in to, the cells a person runs, and
Python environments with older ipykernels (6, and 7.3: kernels that can't take widget events while a cell runs).
"""
import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from pymemri.data.schema import Account
from pymemri.testing.oauth_provider import OAuthTestServer
from pymemri.pod.client import PodClient
from pymemri.pod.keys import generate_random_key, read_keys, write_keys
from pymemri.server.serve import PodServer

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery-staple"
IPYKERNEL6 = "ipykernel==6.31.0"
IPYKERNEL73 = "ipykernel==7.3.0"  # the last release before widget messages are taken while a cell awaits

SETUP_CELL = """\
import asyncio, os
os.environ["PYMEMRI_HOME"] = {home!r}  # where this test's Pod keys are
from pymemri.data.schema import PluginRun
from pymemri.pod.client import PodClient
from pymemri.plugin.authenticators.password import ExamplePasswordPlugin
from pymemri.plugin.authenticators.oauth import ExampleOAuthPlugin
client = PodClient.from_local_keys({pod_url!r})
run = PluginRun(pluginName="{plugin}")
plugin = {plugin}({url_name}={provider_url!r}, timeout=60, client=client, pluginRun=run)"""
RUN_CELLS = {"thread": "await asyncio.to_thread(plugin.run)\nprint('plugin done:', run.message)",
             "cell": "plugin.run()\nprint('plugin done:', run.message)"}
PLUGINS = {"password": ("ExamplePasswordPlugin", "service_url", "example"),
           "oauth": ("ExampleOAuthPlugin", "provider_url", "example-oauth")}


class LoginWorld:
    "An embedded Pod (with keys in `home`) and an OAuth test provider whose user alice has `PASSWORD`."
    def __init__(self, home: Path):
        self.home = home
        write_keys(generate_random_key(), generate_random_key(), home / "pod_keys" / "keys.json")
        self.provider = OAuthTestServer(users={"alice": PASSWORD}).start()
        self.pod = PodServer(home / "pod").start()

    def client(self) -> PodClient:
        return PodClient(self.pod.url, *read_keys(self.home / "pod_keys" / "keys.json"))

    def setup_cell(self, kind: str) -> str:
        plugin, url_name, _ = PLUGINS[kind]
        return SETUP_CELL.format(home=str(self.home), pod_url=self.pod.url, plugin=plugin, url_name=url_name, provider_url=self.provider.url)

    def account(self, kind: str) -> Account:
        "The newest Account of the plugin's service."
        return self.client().search(Account, service=PLUGINS[kind][2])[-1]

    def stop(self):
        self.pod.stop()
        self.provider.stop()


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pymemri-tests"


def kernel_python(requirement: str) -> Path:
    "The Python of a virtual environment with pymemri (this checkout, with the notebook form) and `requirement` (an ipykernel), made once and reused."
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
