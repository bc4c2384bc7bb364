"""The Plugins page's `ExamplePlugin`, exactly as the page prints it, under both command-line tools, and runs
stored the way 2022 pymemri stores them, which the Pod must not start a second time."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pymemri.data.schema import PluginRun
from pymemri.pod.client import Dog, PodClient
from pymemri.pod.keys import read_keys
from pymemri.pod.keys import plugin_log_path
from pymemri.testing.fixtures import RecordingLauncher
from pymemri.server.serve import PodServer
from test_user_notebooks import METADATA, PLUGIN_MODULE


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    "A folder holding the page's plugin as a module, importable here and by the plugin processes a Pod starts."
    (tmp_path / "page_plugin.py").write_text(PLUGIN_MODULE)
    (tmp_path / "page_plugin.json").write_text(json.dumps({**METADATA, "containerImage": "pymemri"}))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("PYMEMRI_HOME", str(tmp_path / "pymemri-home"))
    monkeypatch.delenv("POD_ADDRESS", raising=False)
    return tmp_path


def tool(folder: Path, *arguments: str) -> subprocess.CompletedProcess:
    "Run a pymemri command-line tool in `folder`; it must succeed."
    command = [str(Path(sys.executable).parent / arguments[0]), *arguments[1:]]
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_run_plugin(folder):
    result = tool(folder, "run_plugin", "--metadata", "page_plugin.json")
    assert result.stdout.splitlines() == ["Started plugin run...", "Run success!"], result.stdout
    with PodServer() as pod:
        client = PodClient.from_local_keys(pod.url)
        assert [(dog.name, dog.age) for dog in client.search(Dog)] == [("Rex", 10)]
        [run] = client.search(PluginRun)
        assert (run.containerImage, run.status, run.pluginName) == ("none", "done", "ExamplePlugin")


def test_simulate_run_plugin_from_frontend(folder):
    with PodServer(folder / "pod") as pod:
        tool(folder, "simulate_run_plugin_from_frontend", "--metadata", "page_plugin.json", "--pod_full_address", pod.url)
        client = PodClient.from_local_keys(pod.url)
        assert [(dog.name, dog.age) for dog in client.search(Dog)] == [("Rex", 10)]
        [run] = client.search(PluginRun)
        log = plugin_log_path(folder / "pod" / "logs", client.owner_key, run.id).read_text()
        assert "Started plugin run...\nRun success!\n" in log, log


def test_a_2022_run_is_run_once(folder):
    "2022 pymemri's run_plugin --metadata stores its run with containerImage none and runs it itself."
    launcher = RecordingLauncher()
    with PodServer(folder / "pod", launcher=launcher) as pod:
        tool(folder, "store_keys")
        client = PodClient(pod.url, *read_keys())
        run = PluginRun(pluginModule="page_plugin", pluginName="ExamplePlugin", containerImage="none",
                        config=json.dumps({"dog_name": "Rex"}), status="not started")
        run.id = os.urandom(16).hex()
        run.targetItemId = run.id
        client.create(run)
        tool(folder, "run_plugin", "--plugin_run_id", run.id, "--pod_full_address", pod.url)
        assert launcher.launches == []  # the Pod was not asked to start it
        assert [(dog.name, dog.age) for dog in client.search(Dog)] == [("Rex", 10)]
        assert client.get(run.id).status == "done"
