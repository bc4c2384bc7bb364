"""No web page can drive the local Pod, and a flood gets 503s, not 500s and a log full of keys (pod-api.md §12.1).

Each test makes, through real HTTP against a real Pod, one request an attacker would: a page of a foreign origin,
a `text/plain` body (a "simple" request, which a browser sends without asking first), a `Host` that DNS rebinding
would bring, 300 connections at once on a Pod with 256 file descriptors, and a trace-level log grepped for keys.
"""
import collections
import hashlib
import http.client
import json
import os
import threading
import time
from urllib.parse import quote

import orjson
import pytest
import requests

from conftest import PodCaller
from pymemri.testing.fixtures import RecordingLauncher

PAGE = "http://localhost:8080"
AS_JSON = {"Content-Type": "application/json"}


def envelope(caller: PodCaller, payload) -> bytes: return orjson.dumps({"auth": caller.auth, "payload": payload})


def databases(server) -> list:
    "The owner databases in a Pod's data folder."
    return sorted(path.name for path in (server.data_dir / "db").iterdir())


@pytest.fixture
def guarded(start_server):
    "A Pod that serves any owner (as `PodServer()` does by default), allows one web page, and records plugin launches."
    launcher = RecordingLauncher()
    server = start_server(cors_origins=PAGE, launcher=launcher)
    server.launcher = launcher
    return server


def test_a_page_of_a_foreign_origin_reads_and_writes_nothing(guarded, http):
    caller = PodCaller(guarded.url, http=http)
    run = {"type": "PluginRun", "id": "run-from-a-page", "containerImage": "pymemri", "targetItemId": "run-from-a-page"}
    for endpoint, payload in (("create_item", {"type": "Note"}), ("bulk", {"createItems": [run]}), ("search", {})):
        reply = caller.raw(endpoint, envelope(caller, payload), headers={"Origin": "https://evil.example"})
        assert (reply.status_code, reply.text[:40]) == (403, "Failure: this Pod serves no web page of "), reply.text
        assert "access-control-allow-origin" not in reply.headers
    preflight = http.options(f"{guarded.url}/v4/{caller.owner}/search",
                             headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
    assert databases(guarded) == [] and guarded.launcher.launches == []
    # The page the Pod was told to allow is served, and its replies name it, never `*`.
    reply = caller.raw("search", envelope(caller, {}), headers={"Origin": PAGE})
    assert reply.status_code == 200 and len(reply.json()) == 14
    assert (reply.headers["access-control-allow-origin"], reply.headers["vary"]) == (PAGE, "origin")
    preflight = http.options(f"{guarded.url}/v4/{caller.owner}/search", headers={"Origin": PAGE})
    assert (preflight.status_code, preflight.headers["access-control-allow-origin"]) == (200, PAGE)


def test_a_text_plain_body_is_refused_before_anything_is_written(guarded, http):
    "The attack: a page POSTs text/plain (no preflight) to create an item, and a PluginRun the Pod would launch."
    caller = PodCaller(guarded.url, http=http)
    run = {"type": "PluginRun", "id": "run-from-a-page", "containerImage": "pymemri", "targetItemId": "run-from-a-page",
           "pluginModule": "this"}
    for endpoint, payload in (("create_item", {"type": "Note"}), ("bulk", {"createItems": [run]})):
        for content_type in ("text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", None):
            headers = {"Content-Type": content_type} if content_type else {}
            reply = http.post(f"{guarded.url}/v4/{caller.owner}/{endpoint}", data=envelope(caller, payload), headers=headers)
            assert (reply.status_code, reply.text) == (415, "Failure: send the envelope as JSON, with Content-Type: application/json")
    assert databases(guarded) == [] and guarded.launcher.launches == []
    # What every pymemri client sends is served: JSON (a charset allowed), and uploads as raw bytes.
    note = caller.call("create_item", {"type": "Note"})
    reply = http.post(f"{guarded.url}/v4/{caller.owner}/get_item", data=envelope(caller, note),
                      headers={"Content-Type": "application/json; charset=utf-8"})
    assert reply.status_code == 200 and reply.json()[0]["id"] == note
    assert requests.post(f"{guarded.url}/v4/{caller.owner}/search", json={"auth": caller.auth, "payload": {}}).status_code == 200
    for data, content_type in ((b"raw", None), (b"octets", "application/octet-stream"), (b"text", "text/plain")):
        sha256 = hashlib.sha256(data).hexdigest()
        caller.create(type="File", sha256=sha256)
        headers = {"Content-Type": content_type} if content_type else {}
        reply = caller.raw(f"upload_file/{caller.key}/{sha256}", data, headers=headers)
        assert reply.status_code == (415 if content_type == "text/plain" else 200), reply.text


def test_a_rebinding_host_is_refused(start_server, http):
    "DNS rebinding points a page's own name at 127.0.0.1; its requests still name that host, and get a 4xx."
    server = start_server()
    caller = PodCaller(server.url, http=http)
    port = server.port
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}", f"localhost.evil.example:{port}"):
        reply = caller.raw("create_item", envelope(caller, {"type": "Note"}), headers={"Host": host})
        assert 400 <= reply.status_code < 500 and reply.text.startswith("Failure: this Pod answers to localhost"), (host, reply.text)
        assert http.get(f"{server.url}/version", headers={"Host": host}).status_code == 400
    assert databases(server) == []
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST"):
        reply = caller.raw("search", envelope(caller, {}), headers={"Host": host})
        assert reply.status_code == 200, (host, reply.text)
    # A name the Pod is given (start_pod --public_hosts) is served too, on any port.
    named = start_server(public_hosts="pod.example.org")
    assert http.get(f"{named.url}/version", headers={"Host": "pod.example.org:443"}).status_code == 200
    assert http.get(f"{named.url}/version", headers={"Host": "other.example.org"}).status_code == 400


def flood(url: str, callers: list, seconds: float) -> list:
    "Each caller's first request (create_item, its own connection), all sent at once; each result or the exception it raised."
    host, port = url.removeprefix("http://").split(":")
    results, start = [None] * len(callers), threading.Barrier(len(callers))
    def send(number: int, caller: PodCaller):
        connection = http.client.HTTPConnection(host, int(port), timeout=seconds)
        try:
            connection.connect()
            start.wait(seconds)
            body = envelope(caller, {"type": "Note", "id": f"note-{number}"})
            connection.request("POST", f"/v4/{caller.owner}/create_item", body, AS_JSON)
            reply = connection.getresponse()
            results[number] = (reply.status, reply.getheader("retry-after"), reply.read().decode())
        except Exception as error: results[number] = error
        finally: connection.close()
    threads = [threading.Thread(target=send, args=(number, caller), daemon=True) for number, caller in enumerate(callers)]
    for thread in threads: thread.start()
    deadline = time.monotonic() + seconds
    for thread in threads: thread.join(max(0.1, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), f"the flood was not answered within {seconds} s"
    return results


def until_served(caller: PodCaller, endpoint: str, payload, seconds: float = 30) -> requests.Response:
    "The reply to a request, sent again after each 503 as its Retry-After says."
    deadline = time.monotonic() + seconds
    while (reply := caller.post(endpoint, payload)).status_code == 503 and time.monotonic() < deadline:
        time.sleep(float(reply.headers["retry-after"]))
    return reply


def test_300_connections_under_256_open_files_get_503s_not_500s(tmp_path, pod_process):
    pod = pod_process(tmp_path / "data", "--owners", "ANY", nofile=256)
    callers = [PodCaller(pod.url) for _ in range(300)]
    results = flood(pod.url, callers, seconds=90)
    errors = [result for result in results if isinstance(result, Exception)]
    assert errors == [], f"{len(errors)} connections failed, e.g. {errors[:3]}"
    kinds = collections.Counter((status, retry_after) for status, retry_after, _ in results)
    assert set(kinds) <= {(200, None), (503, "1")}, kinds
    assert kinds[(200, None)] > 0, kinds
    # Every owner can use its database afterwards, with its own key: made whole by its first request, or not at all.
    with requests.Session() as http:
        for number, (caller, (status, _, _)) in enumerate(zip(callers, results)):
            caller.http = http
            found = until_served(caller, "get_item", f"note-{number}")
            assert found.status_code == 200, f"owner {number} (first reply {status}): {found.status_code} {found.text[:200]}"
            assert len(found.json()) == (status == 200)
            assert until_served(caller, "create_item", {"type": "Note"}).status_code == 200
        assert len(os.listdir(f"/proc/{pod.process.pid}/fd")) < 256
    pod.stop()
    log = pod.output()
    assert "Traceback" not in log and "Too many open files" not in log and "internal error" not in log, log[-3000:]
    assert log.count("\n") < 40, f"{log.count(chr(10))} log lines:\n{log[-3000:]}"
    assert not any(caller.owner in log or caller.key.upper() in log for caller in callers)


def test_a_trace_level_log_holds_no_key(tmp_path, pod_process):
    "Every log line of a trace-level run, tracebacks and request lines included, grepped for the keys that went by."
    data_dir = tmp_path / "data"
    pod = pod_process(data_dir, "--owners", "ANY", "--log_level", "trace")
    caller, other = PodCaller(pod.url), PodCaller(pod.url)
    caller.create(type="Note")
    data = b"sealed"
    caller.create(type="File", sha256=hashlib.sha256(data).hexdigest())
    assert caller.upload(data).status_code == 200
    assert caller.upload_b(b"no item", caller.auth).status_code == 404
    assert caller.with_key(other.key).post("search", {}).status_code == 401  # a wrong key
    assert caller.raw("search", b"not json").status_code == 400
    assert caller.post("search", {}, auth={"type": "ClientAuth", "databaseKey": "zz!"}).status_code == 400
    # An internal error whose traceback names the owner's folder: its files folder is a file.
    other.create(type="File", sha256=hashlib.sha256(data).hexdigest())
    (data_dir / "files").mkdir(exist_ok=True)
    (data_dir / "files" / other.owner).write_bytes(b"in the way")
    assert other.upload(data).status_code == 500
    pod.stop()
    log = pod.output()
    assert "Traceback" in log and "Started scope" in log, log[-2000:]  # a traceback, and trace logging, were there to check
    for key in (caller.owner, caller.key, other.owner, other.key, quote(json.dumps(caller.auth), safe="")):
        for form in (key, key.upper(), key[:24], key.upper()[:24]):
            assert form not in log, f"{form[:8]}… is in the log"
    assert f"{caller.owner[:8]}…" in log  # an owner shows as a short prefix
