"""The embedded Pod under a hostile caller on this machine: each test closes one gap a loopback attack found.

Every loop here is bounded and every Pod listens on 127.0.0.1 and is stopped by the test that started it.
The groups follow the findings: replies and work a small request can cause; who may use the Pod; slow
and greedy clients; the data folder.
"""
import hashlib
import json
import logging
import os
import random
import secrets
import socket
import stat
import sys
import time

import orjson
import pytest
import requests

from pymemri.server.auth import owner_hash
from pymemri.server.db import Store
from pymemri.pod.api import PodAPI, PodUnavailable, client_auth
from pymemri.pod.keys import write_keys
from pymemri.server.launchers import PLUGIN_VARIABLES, ProcessLauncher
from pymemri.testing.fixtures import RecordingLauncher
from pymemri.server.private import DataFolderLocked

from conftest import PodCaller, free_port, plugin_run, wait_for

MiB = 2**20


# ---------------------------------------------------------------------------------------------- replies and work

def people_with_megabyte_bios(caller: PodCaller, count: int = 4):
    "`count` Persons of 1 MB each, every one knowing every one."
    caller.declare("Person/bio/Text")
    ids = [caller.create(type="Person", bio=secrets.token_hex(MiB // 2)) for _ in range(count)]
    edges = [{"_source": source, "_target": target, "_name": "knows"} for source in ids for target in ids]
    caller.call("bulk", {"createEdges": edges})
    return ids


def test_graphql_reply_is_bounded_by_bytes(pod):
    people_with_megabyte_bios(pod)
    # 4 + 16 + 64 items of 1 MB: an 84 MB reply from a one-line query.
    reply = pod.post("graphql", "Person { bio knows { bio knows { bio } } }")
    assert reply.status_code == 400 and "the reply would be larger than 64 MiB" in reply.text, reply.text[:300]
    assert pod.post("graphql", "Person { bio knows { id } }").status_code == 200  # 4 MB is fine


def test_bulk_reply_is_bounded_by_bytes(pod):
    people_with_megabyte_bios(pod)
    bulk = {"createItems": [{"type": "Person", "id": "written-000001"}], "search": [{"type": "Person"}] * 20}
    reply = pod.post("bulk", bulk)  # 20 searches of 4 MB each
    assert reply.status_code == 400 and "would reply with more than 64 MiB" in reply.text, reply.text[:300]
    assert pod.call("get_item", "written-000001") == []  # nothing of the refused bulk was written
    found = pod.call("bulk", {"search": [{"type": "Person"}] * 2})["search"]
    assert [len(results) for results in found] == [4, 4]


COUNT_RUNNING = """
import json, os, sys, time
from pathlib import Path
folder, run, owner = Path(sys.argv[1]), os.environ["POD_PLUGINRUN_ID"], os.environ["POD_OWNER"]
marker = folder / "running" / f"{owner}-{run}"
marker.parent.mkdir(exist_ok=True)
marker.touch()
names = [path.name for path in marker.parent.iterdir()]
seen = {"total": len(names), "owner": sum(name.startswith(owner) for name in names)}
time.sleep(0.4)
marker.unlink()
(folder / f"{run}.json").write_text(json.dumps(seen))
"""


def test_plugin_launches_are_capped_and_queued(tmp_path, start_server, http):
    script = tmp_path / "count_running.py"
    script.write_text(COUNT_RUNNING)
    launcher = ProcessLauncher(tmp_path / "logs", command=[sys.executable, str(script), str(tmp_path)])
    server = start_server(launcher=launcher, max_plugin_runs=2, max_plugin_runs_per_owner=1)
    first, second = PodCaller(server.url, http=http), PodCaller(server.url, http=http)
    for caller in (first, second): caller.declare("PluginRun/status/Text", "PluginRun/message/Text")
    runs = {first: [plugin_run() for _ in range(4)], second: [plugin_run() for _ in range(2)]}
    for caller, created in runs.items(): caller.call("bulk", {"createItems": created})
    waiting = [caller.get(run["id"]).get("message", "") for caller, created in runs.items() for run in created]
    assert sum("waiting to start" in message for message in waiting) >= 3, waiting
    all_runs = [run["id"] for created in runs.values() for run in created]
    wait_for(lambda: all((tmp_path / f"{run}.json").exists() for run in all_runs), 60, "every plugin run")
    seen = [json.loads((tmp_path / f"{run}.json").read_text()) for run in all_runs]
    assert max(entry["total"] for entry in seen) <= 2 and max(entry["owner"] for entry in seen) == 1, seen


def test_a_launch_that_fails_is_recorded_on_the_run(tmp_path, start_server, http):
    server = start_server(plugin_runner="process")
    caller = PodCaller(server.url, http=http)
    caller.declare("PluginRun/status/Text", "PluginRun/message/Text", "PluginRun/note/Text")
    # A run (its own target) with a 300 KB property: its POD_TARGET_ITEM is too long for exec.
    run = plugin_run(image="pymemri", status="idle", note="x" * 300_000)
    reply = caller.post("create_item", run)
    assert reply.status_code == 200, reply.text[:300]
    stored = wait_for(lambda: caller.get(run["id"]) if caller.get(run["id"])["status"] == "error" else None)
    assert stored["message"] == "could not start plugin pymemri: Argument list too long"


def test_a_missing_docker_is_recorded_without_a_server_path(tmp_path, start_server, http, monkeypatch):
    empty = tmp_path / "no-docker-here"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    server = start_server(plugin_runner="docker")
    caller = PodCaller(server.url, http=http)
    caller.declare("PluginRun/status/Text", "PluginRun/message/Text")
    runs = [plugin_run(image="pymemri", status="idle") for _ in range(3)]
    reply = caller.post("bulk", {"createItems": runs})
    assert reply.status_code == 200, reply.text[:300]
    for run in runs:
        stored = wait_for(lambda: caller.get(run["id"]) if caller.get(run["id"])["status"] == "error" else None)
        assert stored["message"] == "could not start plugin pymemri: No such file or directory"
        assert str(tmp_path) not in stored["message"]


def test_a_plugin_that_dies_is_recorded_without_a_server_path(tmp_path, start_server, http):
    "An image that doesn't exist makes `docker run` exit 125; any plugin that dies so is marked error, naming no server path."
    launcher = ProcessLauncher(tmp_path / "logs", command=[sys.executable, "-c", "raise SystemExit(125)"])
    server = start_server(tmp_path / "data", launcher=launcher)
    caller = PodCaller(server.url, http=http)
    caller.declare("PluginRun/status/Text", "PluginRun/message/Text")
    run = plugin_run(status="idle")
    caller.call("create_item", run)
    stored = wait_for(lambda: caller.get(run["id"]) if caller.get(run["id"])["status"] == "error" else None)
    assert stored["message"] == "the plugin process exited with code 125; its output is in the run's plugin log"
    assert str(tmp_path) not in stored["message"] and "/tmp" not in stored["message"]


# ---------------------------------------------------------------------------------------------- who may use the Pod

def test_start_pod_serves_only_the_stored_owner(tmp_path, pod_process, http):
    home = tmp_path / "home"
    owner, key = secrets.token_hex(32), secrets.token_hex(32)
    write_keys(owner, key, home / ".pymemri" / "pod_keys" / "keys.json")
    pod = pod_process(tmp_path / "data", home=home)
    assert PodCaller(pod.url, owner, key, http).post("search", {}).status_code == 200
    stranger = PodCaller(pod.url, http=http)
    reply = stranger.post("create_item", plugin_run())
    assert (reply.status_code, reply.text) == (403, "Failure: Unexpected owner")
    assert not list((tmp_path / "data" / "db").glob(f"{stranger.owner}*"))
    anyone = pod_process(tmp_path / "open", "--owners", "ANY", home=home)
    assert PodCaller(anyone.url, http=http).post("search", {}).status_code == 200


def test_start_pod_without_stored_keys_says_what_to_do(tmp_path, pod_process):
    pod = pod_process(tmp_path / "data", wait=False)
    assert pod.process.wait(30) == 1
    assert pod.output().strip().splitlines() == [
        f"Error: no stored keys at {pod.home / '.pymemri' / 'pod_keys' / 'keys.json'} to take the owner from; "
        "run store_keys first, or pass --owners ANY to serve every owner"]


def test_the_cli_embedded_pod_serves_only_the_cli_owner(tmp_path, monkeypatch, http):
    from pymemri.plugin.cli_options import pod_for_cli
    monkeypatch.setenv("PYMEMRI_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("POD_ADDRESS", raising=False)
    monkeypatch.setattr("pymemri.plugin.cli_options.DEFAULT_POD_ADDRESS", f"http://127.0.0.1:{free_port()}")  # nothing answers there
    owner, key = secrets.token_hex(32), secrets.token_hex(32)
    url, server = pod_for_cli(quiet=True, owner_key=owner)
    try:
        assert PodCaller(url, owner, key, http).post("search", {}).status_code == 200
        assert PodCaller(url, http=http).post("search", {}).status_code == 403
    finally: server.stop()


def test_the_owner_list_compares_exactly(start_server, http):
    owner = secrets.token_hex(32)
    server = start_server(owners=owner_hash(owner))
    assert PodCaller(server.url, owner, http=http).post("search", {}).status_code == 200
    reply = PodCaller(server.url, owner.upper(), http=http).post("create_item", {"type": "Note"})
    assert reply.status_code in (400, 403) and "lowercase" in reply.text, reply.text
    assert [path.name for path in (server.data_dir / "db").iterdir() if path.suffix == ".sqlite"] == [f"{owner}.p4.4.sqlite"]


RECORD_PROCESS = """
import json, os, sys
from pathlib import Path
record = {"environment": sorted(os.environ), "path": sys.path, "cwd": os.getcwd()}
Path(sys.argv[1]).write_text(json.dumps(record))
"""


def test_plugin_processes_get_a_filtered_environment(tmp_path, start_server, http, monkeypatch):
    monkeypatch.setenv("POD_HOST_SECRET_TOKEN", "not for plugins")  # a POD_ name the Pod itself does not set
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not for plugins either")
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    script, record = tmp_path / "record.py", tmp_path / "record.json"
    script.write_text(RECORD_PROCESS)
    server = start_server(launcher=ProcessLauncher(tmp_path / "logs", command=[sys.executable, str(script), str(record)]))
    PodCaller(server.url, http=http).call("create_item", plugin_run())
    seen = json.loads(wait_for(lambda: record.exists() and record.read_text(), what="the plugin's record"))["environment"]
    assert "AWS_SECRET_ACCESS_KEY" not in seen and "POD_HOST_SECRET_TOKEN" not in seen and "https_proxy" in seen
    assert all(PLUGIN_VARIABLES.fullmatch(name) for name in seen), seen
    assert {"POD_AUTH_JSON", "POD_OWNER", "POD_FULL_ADDRESS", "POD_TARGET_ITEM", "POD_PLUGINRUN_ID", "PATH"} <= set(seen)


def test_plugin_processes_import_nothing_from_the_pods_folder(tmp_path, start_server, http, monkeypatch):
    trap = tmp_path / "pod-working-folder"
    (trap / "pymemri").mkdir(parents=True)
    marker = tmp_path / "imported-from-the-working-folder"
    (trap / "pymemri" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.chdir(trap)
    ended = []
    launcher = ProcessLauncher(tmp_path / "logs", on_exit=lambda launch, code, log: ended.append(code))
    server = start_server(launcher=launcher)
    PodCaller(server.url, http=http).call("create_item", plugin_run())
    wait_for(lambda: ended, 60, "the plugin process ending")
    assert not marker.exists()


def test_plugin_processes_stop_with_the_pod(tmp_path, start_server, http):
    launcher = ProcessLauncher(tmp_path / "logs", command=[sys.executable, "-c", "import time; time.sleep(120)"])
    server = start_server(launcher=launcher)
    PodCaller(server.url, http=http).call("bulk", {"createItems": [plugin_run(), plugin_run()]})
    processes = wait_for(lambda: len(launcher.processes) == 2 and list(launcher.processes.values()), what="two plugins")
    server.stop()
    for process in processes: assert process.poll() is not None


def token_of(launcher: RecordingLauncher, run_id: str) -> dict:
    return {"type": "PluginAuth", **launcher.for_run(run_id).auth_token}


def test_plugin_tokens_are_bound_to_their_owner(pod, pod_server, launcher, http):
    run = plugin_run()
    pod.call("create_item", run)
    token = token_of(launcher, run["id"])
    assert pod.post("search", {"id": run["id"]}, auth=token).status_code == 200
    other = PodCaller(pod_server.url, http=http)
    reply = other.post("create_item", {"type": "Note"}, auth=token)
    assert reply.status_code == 401 and "another owner's" in reply.text
    assert not list((pod_server.data_dir / "db").glob(f"{other.owner}*"))


@pytest.mark.parametrize("final", ["done", "error", "aborted"])
def test_plugin_tokens_die_when_their_run_ends(pod, launcher, final):
    pod.declare("PluginRun/status/Text")
    run = plugin_run(status="idle")
    pod.call("create_item", run)
    token = token_of(launcher, run["id"])
    assert pod.call("update_item", {"id": run["id"], "status": "started"}, auth=token) == {}
    assert pod.call("update_item", {"id": run["id"], "status": final}) == {}
    for endpoint, payload in (("search", {}), ("create_item", {"type": "Note"}), ("get_item", run["id"])):
        reply = pod.post(endpoint, payload, auth=token)
        assert reply.status_code == 401 and "run has ended" in reply.text, (endpoint, reply.text)
        assert reply.headers["X-Pod-Error"] == "run-ended", endpoint  # what clients recognise, whatever the text says
    data = b"too late"
    pod.create(type="File", sha256=hashlib.sha256(data).hexdigest())
    assert pod.upload_b(data, token).status_code == 401


def test_api_description_is_off_unless_asked_for(start_server, http):
    quiet = start_server()
    for path in ("/openapi.json", "/docs"): assert http.get(f"{quiet.url}{path}").status_code == 404
    described = start_server(api_docs=True)
    assert http.get(f"{described.url}/openapi.json").json()["info"]["title"] == "pymemri Pod"
    assert http.get(f"{described.url}/docs").status_code == 200


@pytest.mark.parametrize("name", ["_source", "_target", "_edge", "_self", "_item", "[[edges]]", "~[[edges]]", "~owner"])
def test_edge_names_cannot_be_declared(pod, name):
    reply = pod.post("create_item", {"type": "ItemPropertySchema", "itemType": "Note", "propertyName": name, "valueType": "Text"})
    assert reply.status_code == 400 and "can't be declared" in reply.text, reply.text
    assert pod.post("create_item", {"type": "Note", name: "x"}).status_code == 400


# ---------------------------------------------------------------------------------------------- slow and greedy clients

@pytest.mark.parametrize("sent", [b"", b"POST /v4/0f/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le"])
def test_slow_request_heads_are_dropped(pod_server, sent):
    host, port = pod_server.url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=20) as connection:
        connection.sendall(sent)
        try: assert connection.recv(1024) == b""  # closed by the server
        except ConnectionResetError: pass
    assert time.monotonic() - started < 15


def test_keep_alive_requests_are_not_cut_by_the_head_timer(pod_server, http):
    "Not a gap but a guard: the head timer must not drop a connection that is reused for request after request."
    caller = PodCaller(pod_server.url, http=http)
    for _ in range(3): assert caller.post("search", {"_limit": 1}).status_code == 200


class Lines(logging.Handler):
    "Keeps every record it sees, formatted, with its traceback if any."
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []
    def emit(self, record): self.records.append(record)


def test_a_client_hang_up_is_one_log_line(pod_server):
    lines = Lines()
    loggers = [logging.getLogger(name) for name in ("pymemri.pod", "uvicorn.error")]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.addHandler(lines)
        log.setLevel(logging.DEBUG)
    try:
        host, port = pod_server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(f"POST /v4/{'0f' * 32}/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                               "Content-Length: 1000\r\n\r\n".encode()
                               + b'{"auth": {')
            time.sleep(0.3)
        wait_for(lambda: any("hung up" in record.getMessage() for record in lines.records), 10, "the hang-up log line")
        time.sleep(0.3)
    finally:
        for log, level in zip(loggers, levels):
            log.removeHandler(lines)
            log.setLevel(level)
    problems = [record for record in lines.records if record.levelno >= logging.WARNING or record.exc_info]
    assert problems == [] and sum("hung up" in record.getMessage() for record in lines.records) == 1, \
        [record.getMessage() for record in lines.records]


def test_a_thousand_owners_under_256_open_files(tmp_path, pod_process):
    pod = pod_process(tmp_path / "data", "--owners", "ANY", "--log_level", "warning", nofile=256)
    with requests.Session() as http:
        callers = [PodCaller(pod.url, http=http) for _ in range(1000)]
        for caller in callers:
            reply = caller.post("create_item", {"type": "Note", "id": f"note-{caller.owner[:8]}"})
            assert reply.status_code == 200, f"{reply.status_code} {reply.text[:200]}\n{pod.output()[-1500:]}"
        for caller in random.Random(9).sample(callers, 50):  # the first owners, long closed, open again
            assert caller.call("get_item", f"note-{caller.owner[:8]}")[0]["type"] == "Note"
    assert len(os.listdir(f"/proc/{pod.process.pid}/fd")) < 256


def test_a_450_mib_file_streams_to_disk_and_back(tmp_path, pod_process):
    pod = pod_process(tmp_path / "data", "--owners", "ANY", "--log_level", "warning")
    size, piece = 450 * MiB, MiB
    def pieces():
        generator = random.Random(450)
        for _ in range(size // piece): yield generator.randbytes(piece)
    sha256 = hashlib.sha256()
    for chunk in pieces(): sha256.update(chunk)
    caller = PodCaller(pod.url)
    caller.create(type="File", sha256=sha256.hexdigest())
    time.sleep(0.5)
    pod.reset_peak_memory()
    before = pod.peak_memory()
    reply = caller.http.post(f"{caller.url}/v4/{caller.owner}/upload_file/{caller.key}/{sha256.hexdigest()}",
                             data=pieces(), timeout=300)
    grown = pod.peak_memory() - before
    assert reply.status_code == 200, reply.text
    print(f"450 MiB upload: the server's peak memory grew by {grown / MiB:.1f} MiB")
    assert grown < 64 * MiB, f"the server's peak memory grew by {grown / MiB:.0f} MiB"
    stored = tmp_path / "data" / "files" / caller.owner / "final" / sha256.hexdigest()
    assert stored.stat().st_size == size + 17 * (size // 2**16 + 1)
    assert list((tmp_path / "data" / "uploads").iterdir()) == []

    pod.reset_peak_memory()
    before, downloaded, received = pod.peak_memory(), hashlib.sha256(), 0
    with caller.raw("get_file", orjson.dumps({"auth": caller.auth, "payload": {"sha256": sha256.hexdigest()}}), stream=True) as reply:
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-length"] == str(size)
        for chunk in reply.iter_content(MiB):
            downloaded.update(chunk)
            received += len(chunk)
    grown = pod.peak_memory() - before
    print(f"450 MiB download: the server's peak memory grew by {grown / MiB:.1f} MiB")
    assert grown < 64 * MiB, f"the server's peak memory grew by {grown / MiB:.0f} MiB"
    assert (received, downloaded.hexdigest()) == (size, sha256.hexdigest())


def test_a_stored_file_that_breaks_is_refused_or_cut_short(tmp_path, pod_process):
    pod = pod_process(tmp_path / "data", "--owners", "ANY", "--log_level", "warning")
    caller, chunk, sealed_chunk = PodCaller(pod.url), 2**16, 2**16 + 17
    data = random.Random(3).randbytes(40 * chunk + 5)
    sha256 = hashlib.sha256(data).hexdigest()
    caller.create(type="File", sha256=sha256)
    assert caller.upload(data).status_code == 200
    stored = tmp_path / "data" / "files" / caller.owner / "final" / sha256
    sealed = stored.read_bytes()
    def get_file(): return caller.raw("get_file", orjson.dumps({"auth": caller.auth, "payload": {"sha256": sha256}}), stream=True)
    def altered(offset: int) -> bytes: return sealed[:offset] + bytes([sealed[offset] ^ 1]) + sealed[offset + 1:]

    for broken, message in ((altered(100), "does not decrypt with its item's key"), (sealed[:20 * sealed_chunk], "cut short"),
                            (sealed[:20 * sealed_chunk + 9], "cut short")):
        stored.write_bytes(broken)
        with get_file() as reply:
            assert reply.status_code == 500 and message in reply.text, (reply.status_code, reply.text)

    stored.write_bytes(altered(20 * sealed_chunk + 100))  # chunk 21 of 41
    received = bytearray()
    with get_file() as reply:
        assert reply.status_code == 200 and reply.headers["content-length"] == str(len(data))
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            for piece in reply.iter_content(chunk): received += piece
    assert len(received) == 20 * chunk and received == data[:len(received)]
    lines = [line for line in pod.output().splitlines() if "get_file" in line]
    assert len(lines) == 1 and lines[0].endswith(f"get_file {sha256[:12]}…: a chunk of the stored file does not decrypt "
                                                  f"after {20 * chunk} of {len(data)} bytes; the reply ends there"), lines
    first, *rest = pod.output().splitlines()  # the first line says where the data folder is
    assert first.startswith("pymemri Pod on") and "Traceback" not in pod.output() and str(tmp_path) not in "\n".join(rest)

    api = PodAPI(pod.url, caller.owner, client_auth(caller.key), retries=0)
    with pytest.raises(PodUnavailable, match="the reply was cut short"): api.get_file(sha256)
    with pytest.raises(PodUnavailable, match="the reply was cut short"): api.get_file(sha256, path=tmp_path / "download")
    assert not [path for path in tmp_path.iterdir() if "download" in path.name]

    stored.write_bytes(sealed)
    with get_file() as reply: assert reply.status_code == 200 and reply.content == data
    assert api.get_file(sha256, path=tmp_path / "download").read_bytes() == data


# ---------------------------------------------------------------------------------------------- the data folder

def test_one_pod_per_data_folder(tmp_path, start_server, pod_process, http):
    first = start_server(tmp_path / "data")
    with pytest.raises(DataFolderLocked, match="is using the data folder"): start_server(tmp_path / "data")
    second = pod_process(tmp_path / "data", "--owners", "ANY", wait=False)
    assert second.process.wait(30) == 1
    [line] = second.output().strip().splitlines()
    assert line.startswith(f"Error: another Pod (process {os.getpid()}, {first.url}) is using the data folder")
    assert PodCaller(first.url, http=http).post("search", {}).status_code == 200


def test_the_cli_never_opens_a_folder_a_live_pod_holds(tmp_path, monkeypatch, pod_process, http):
    from pymemri.plugin.cli_options import pod_for_cli
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("PYMEMRI_HOME", str(home / ".pymemri"))
    monkeypatch.delenv("POD_ADDRESS", raising=False)
    monkeypatch.setattr("pymemri.plugin.cli_options.DEFAULT_POD_ADDRESS", f"http://127.0.0.1:{free_port()}")  # nothing answers there
    live = pod_process(home / ".pymemri" / "pod", "--owners", "ANY", home=home)
    url, server = pod_for_cli(quiet=True, owner_key=secrets.token_hex(32))
    assert (url, server) == (f"http://localhost:{live.port}", None)  # the live Pod, not a second one


def test_the_data_folder_is_private(tmp_path, start_server, http):
    data_dir = tmp_path / "data"
    (data_dir / "files").mkdir(parents=True, mode=0o755)
    (data_dir / "files" / "old.txt").write_text("from before")
    os.chmod(data_dir, 0o755)
    os.chmod(data_dir / "files" / "old.txt", 0o644)
    server = start_server(data_dir, plugin_runner="process")
    caller = PodCaller(server.url, http=http)
    data = b"a file"
    caller.create(type="File", sha256=hashlib.sha256(data).hexdigest())
    assert caller.upload(data).status_code == 200
    caller.call("create_item", plugin_run())
    wait_for(lambda: list((data_dir / "logs").rglob("*.log")), what="the plugin's log")
    modes = {path.relative_to(data_dir): stat.S_IMODE(path.stat().st_mode) for path in [data_dir, *data_dir.rglob("*")]}
    wrong = {str(path): oct(mode) for path, mode in modes.items()
             if mode != (0o700 if (data_dir / path).is_dir() else 0o600)}
    assert wrong == {} and len(modes) > 8, wrong


def test_interrupted_uploads_are_cleaned_at_start(tmp_path, start_server):
    data_dir = tmp_path / "data"
    left = [data_dir / "uploads" / ".upload-0123abcd", data_dir / "files" / ("0f" * 32) / "final" / f".{'a' * 64}.tmp"]
    for path in left:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half an upload")
    start_server(data_dir)
    assert [path.exists() for path in left] == [False, False]


def test_writes_are_durable(tmp_path):
    store = Store(tmp_path)
    database = store.database("owner", "AB" * 32)
    with database.read(): assert database.connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()


def test_no_log_line_holds_a_key(tmp_path, pod_process):
    pod = pod_process(tmp_path / "data", "--owners", "ANY", "--log_level", "trace")
    caller = PodCaller(pod.url)
    data = b"logged?"
    caller.create(type="File", sha256=hashlib.sha256(data).hexdigest())
    assert caller.upload(data).status_code == 200
    other = b"logged too?"
    caller.create(type="File", sha256=hashlib.sha256(other).hexdigest())
    assert caller.upload_b(other, caller.auth).status_code == 200
    assert caller.upload(b"no item", key=caller.key.upper()).status_code == 404
    pod.stop()
    output = pod.output()
    assert caller.key not in output and caller.key.upper() not in output
    assert "upload_file/<hidden>" in output and "Started scope" in output  # trace logging was on
