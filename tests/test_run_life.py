"""The life of a plugin run in the embedded Pod (pod-api.md §12.2), through a real Pod and real plugin processes.

Each test is one way a run used to outlive its plugin, or a plugin its run: a dead token revived by rewriting
`status`, a plugin that exits 0 without a final status, a plugin starting a plugin, `start_pod` stopped with
SIGTERM (or SIGINT, or `PodServer.stop()`), and a Pod killed with `kill -9` and started again. The plugin is
`LifePlugin` below, run by `run_plugin` in a process of its own as the Pod starts every plugin: it notes its
token and process id in a folder, then finishes, exits without a word, or works until it is stopped.
"""
import json
import os
import signal
import time
from pathlib import Path

import pytest
import requests

from conftest import PodCaller, wait_for
from pymemri.plugin.cli import create_run
from pymemri.pod.client import PodClient

LIFE_PLUGINS = '''
import os, time
from pathlib import Path
from pymemri.plugin.pluginbase import PluginBase

def note(path: Path, text: str):
    path.with_suffix(".part").write_text(text)
    path.with_suffix(".part").rename(path)

class LifePlugin(PluginBase):
    "Notes its token and process id in `folder`, then finishes (`done`), exits 0 saying nothing (`exit`), or works on (`work`)."
    def __init__(self, folder: str, finish: str = "work", **kwargs):
        super().__init__(**kwargs)
        self.folder, self.finish = Path(folder), finish

    def run(self):
        note(self.folder / "token.json", os.environ["POD_AUTH_JSON"])
        note(self.folder / "pid", str(os.getpid()))
        self.set_progress(0.1, "working")
        if self.finish == "exit": os._exit(0)
        if self.finish == "work":
            for _ in range(1200): time.sleep(0.1)
'''


@pytest.fixture
def plugins(tmp_path, monkeypatch) -> Path:
    "A folder holding the module `life_plugins`, on the PYTHONPATH that plugin processes get."
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "life_plugins.py").write_text(LIFE_PLUGINS)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")])))
    return folder


def running(pid: int) -> bool:
    "Whether process `pid` exists and is not a zombie."
    try: return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError): return False


def start_run(caller: PodCaller, folder: Path, finish: str = "work") -> str:
    "Create a PluginRun of `LifePlugin` (the Pod starts it); its id."
    folder.mkdir(parents=True, exist_ok=True)
    client = PodClient(caller.url, caller.owner, caller.key)
    metadata = {"pluginModule": "life_plugins", "pluginName": "LifePlugin"}
    return create_run(client, metadata, container="pymemri", config={"folder": str(folder), "finish": finish}).id


def token_of(folder: Path) -> dict:
    "The PluginAuth the plugin noted in `folder`, once it did."
    text = wait_for(lambda: (folder / "token.json").exists() and (folder / "token.json").read_text(), what="the plugin's token")
    return {"type": "PluginAuth", **json.loads(text)}


def pid_of(folder: Path) -> int:
    return int(wait_for(lambda: (folder / "pid").exists() and (folder / "pid").read_text(), what="the plugin's process id"))


def status_of(caller: PodCaller, run_id: str, statuses=("done", "error", "aborted"), timeout: float = 30) -> dict:
    "The run, once its status is one of `statuses`."
    return wait_for(lambda: (run := caller.get(run_id)).get("status") in statuses and run, timeout, f"run {run_id} in {statuses}")


def refused_as_ended(reply: requests.Response) -> bool:
    return reply.status_code == 401 and reply.headers.get("X-Pod-Error") == "run-ended"


def test_a_dead_token_stays_dead_whatever_status_says(plugins, start_server, tmp_path):
    caller = PodCaller(start_server(tmp_path / "data").url)
    run_id = start_run(caller, tmp_path / "run", finish="done")
    token = token_of(tmp_path / "run")
    assert status_of(caller, run_id)["status"] == "done"
    assert refused_as_ended(caller.post("search", {"id": run_id}, auth=token))
    for status in ("started", None, "error"):
        reply = caller.post("update_item", {"id": run_id, "status": status})
        assert reply.status_code == 400 and "a final status can't change" in reply.text, (status, reply.text)
    reply = caller.post("bulk", {"updateItems": [{"id": run_id, "status": "started"}]})
    assert reply.status_code == 400 and caller.get(run_id)["status"] == "done"
    for endpoint, payload in (("search", {}), ("create_item", {"type": "Note"})):
        assert refused_as_ended(caller.post(endpoint, payload, auth=token)), endpoint


def test_a_plugin_that_exits_without_a_final_status(plugins, start_server, tmp_path):
    server = start_server(tmp_path / "data")
    caller = PodCaller(server.url)
    run_id = start_run(caller, tmp_path / "run", finish="exit")
    token = token_of(tmp_path / "run")
    run = status_of(caller, run_id)
    assert (run["status"], run["message"]) == (
        "error", "the plugin process exited with code 0 without reporting how its run ended; its output is in the run's plugin log")
    assert refused_as_ended(caller.post("search", {}, auth=token))
    assert server.app.state.pod.runs.live == {}


def test_a_plugin_cannot_start_a_plugin_nor_touch_another_run(plugins, start_server, tmp_path):
    server = start_server(tmp_path / "data")
    caller = PodCaller(server.url)
    other = start_run(caller, tmp_path / "other")
    run_id = start_run(caller, tmp_path / "run")
    token, _ = token_of(tmp_path / "run"), token_of(tmp_path / "other")
    assert caller.call("search", {"id": run_id}, auth=token)[0]["status"] == "started"  # live: its token works
    new_run = {"type": "PluginRun", "containerImage": "pymemri", "pluginModule": "life_plugins", "pluginName": "LifePlugin"}
    for endpoint, payload in (("create_item", {**new_run, "id": "spawned-1", "targetItemId": "spawned-1"}),
                              ("bulk", {"createItems": [{**new_run, "id": "spawned-2", "targetItemId": "spawned-2"}]}),
                              ("update_item", {"id": other, "status": "aborted"}),
                              ("delete_item", other)):
        reply = caller.post(endpoint, payload, auth=token)
        assert reply.status_code == 403, (endpoint, reply.status_code, reply.text)
    assert sorted(run["id"] for run in caller.search(type="PluginRun")) == sorted([other, run_id])
    assert caller.get(other)["status"] == "started"
    assert caller.call("update_item", {"id": run_id, "message": "my own run"}, auth=token) == {}
    assert sorted(server.app.state.pod.runs.live) == sorted([(caller.owner, other), (caller.owner, run_id)])


def test_aborting_a_run_stops_its_plugin(plugins, start_server, tmp_path):
    server = start_server(tmp_path / "data")
    caller = PodCaller(server.url)
    run_id = start_run(caller, tmp_path / "run")
    token, pid = token_of(tmp_path / "run"), pid_of(tmp_path / "run")
    process = server.app.state.pod.launcher.processes[run_id]
    caller.call("update_item", {"id": run_id, "status": "aborted"})
    assert refused_as_ended(caller.post("search", {}, auth=token))  # at once, not when the plugin notices
    assert process.wait(10) == 2  # run_plugin took SIGTERM as the abort it is, and stopped cleanly
    assert not running(pid) and caller.get(run_id)["status"] == "aborted"
    assert "Aborted: LifePlugin stopped because its run was aborted" in (server.data_dir / "logs").rglob("*.log").__next__().read_text()


def test_a_run_someone_else_ends_is_stopped(plugins, start_server, tmp_path):
    caller = PodCaller(start_server(tmp_path / "data").url)
    run_id = start_run(caller, tmp_path / "run")
    token, pid = token_of(tmp_path / "run"), pid_of(tmp_path / "run")
    caller.call("update_item", {"id": run_id, "status": "error", "message": "stopped from the app"})
    assert refused_as_ended(caller.post("search", {}, auth=token))
    wait_for(lambda: not running(pid), 15, "the plugin stopping")
    assert (caller.get(run_id)["status"], caller.get(run_id)["message"]) == ("error", "stopped from the app")


def test_pod_server_stop_stops_every_plugin(plugins, start_server, tmp_path):
    server = start_server(tmp_path / "data")
    caller = PodCaller(server.url)
    runs = [start_run(caller, tmp_path / f"run{number}") for number in range(2)]
    pids = [pid_of(tmp_path / f"run{number}") for number in range(2)]
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 15 and not any(running(pid) for pid in pids)
    again = PodCaller(start_server(tmp_path / "data").url, caller.owner, caller.key)
    for run_id in runs: assert (again.get(run_id)["status"], again.get(run_id)["message"]) == ("aborted", "the Pod stopped")


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_start_pod_stops_its_plugins_when_signalled(plugins, pod_processes, start_server, tmp_path, number):
    process, url = pod_processes(tmp_path / "data")
    caller = PodCaller(url)
    run_id = start_run(caller, tmp_path / "run")
    pid = pid_of(tmp_path / "run")
    process.send_signal(number)
    assert process.wait(20) == 0, process.stderr.read()[-2000:]
    assert process.stdout.read().endswith("pymemri Pod stopped\n")
    assert not running(pid), "the plugin outlived the Pod"
    again = PodCaller(start_server(tmp_path / "data").url, caller.owner, caller.key)
    assert (again.get(run_id)["status"], again.get(run_id)["message"]) == ("aborted", "the Pod stopped")


def test_a_pod_killed_with_9_is_cleaned_up_by_the_next(plugins, pod_processes, tmp_path):
    process, url = pod_processes(tmp_path / "data")
    caller = PodCaller(url)
    going = [start_run(caller, tmp_path / f"run{number}") for number in range(2)]
    pids = [pid_of(tmp_path / f"run{number}") for number in range(2)]
    waiting = start_run(caller, tmp_path / "third")  # two runs per owner at once: this one waits
    assert "waiting to start" in caller.get(waiting)["message"]
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(10) == -signal.SIGKILL
    assert all(map(running, pids)), "plugins outlive a Pod killed with -9: this is what the next Pod cleans up"
    process, url = pod_processes(tmp_path / "data")
    wait_for(lambda: not any(map(running, pids)), 20, "the next Pod stopping the plugins the dead Pod left")
    again = PodCaller(url, caller.owner, caller.key)
    for run_id in going:
        run = again.get(run_id)
        assert (run["status"], run["message"]) == ("error", "the Pod stopped unexpectedly (killed or crashed) while this run was going")
    run = again.get(waiting)
    assert (run["status"], run["message"]) == ("error", "the Pod stopped unexpectedly (killed or crashed) before this run started")
    wait_for(lambda: not (tmp_path / "data" / "runs.json").exists(), 10, "runs.json going: every end written, nothing left to reap")
