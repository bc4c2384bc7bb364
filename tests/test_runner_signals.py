"""How a `run_plugin` process ends when its run is aborted through the Pod, and when the person presses Ctrl-C.

The abort reaches the plugin through the runner (`AbortWatch`): here the plugin never reports progress and
never uses `self.http`, so only the `RunAborted` raised in the main thread stops it. Ctrl-C is a real SIGINT
sent by the test, as a terminal sends it."""
import json
import os
import signal
import subprocess
import sys
import time

from pymemri.pod.client import PodClient

PLUGIN = '''
import time
from pymemri.plugin.pluginbase import PluginBase

class Busy(PluginBase):
    "Works a little at a time, forever, never reporting progress and carrying on after any error."
    def run(self):
        print("working", flush=True)
        while True:
            try: time.sleep(0.01)
            except Exception: pass
'''


def start_run_plugin(tmp_path, server) -> tuple:
    "`(process, client, run_id)`: `run_plugin --metadata` of the Busy plugin against `server`, once its run has started."
    (tmp_path / "busy_plugin.py").write_text(PLUGIN)
    (tmp_path / "metadata.json").write_text(json.dumps({"pluginModule": "busy_plugin", "pluginName": "Busy"}))
    client = PodClient(server.url)
    environment = {**os.environ, "PYTHONPATH": str(tmp_path), "PYMEMRI_HOME": str(tmp_path / "home")}
    process = subprocess.Popen([sys.executable, "-m", "pymemri.plugin", "--metadata", str(tmp_path / "metadata.json"),
                                "--pod_full_address", server.url, "--owner_key", client.owner_key,
                                "--database_key", client.database_key],
                               env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = client.api.search({"type": "PluginRun"})
        if runs and runs[0].get("status") == "started": return process, client, runs[0]["id"]
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.kill()
    raise AssertionError("the run did not start within 60 s")


def test_an_abort_through_the_pod_stops_a_plugin_that_never_reports_progress(tmp_path, start_server):
    process, client, run_id = start_run_plugin(tmp_path, start_server())
    aborted_at = time.monotonic()
    client.api.update_item({"id": run_id, "status": "aborted"})
    _, stderr = process.communicate(timeout=10)
    took = time.monotonic() - aborted_at
    assert process.returncode == 2, stderr
    assert took < 3, took
    assert "Aborted: Busy stopped because its run was aborted" in stderr
    assert "Traceback" not in stderr, stderr
    assert client.api.get_item(run_id)[0]["status"] == "aborted"


def test_ctrl_c_ends_the_run_as_interrupted(tmp_path, start_server):
    process, client, run_id = start_run_plugin(tmp_path, start_server())
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 130, stderr
    assert stderr.splitlines()[-1] == "Interrupted", stderr
    run = client.api.get_item(run_id)[0]
    assert (run["status"], run["message"]) == ("error", "interrupted")
