"""The changes feed over HTTP, where a notebook page can't hold it well: a database written before change numbers
existed, many requests held at once, clients that hang up, a Pod that stops while it holds requests, and a
follower that must miss nothing while another client writes.

tests/data/pod_before_changes is a data folder written by the embedded Pod before items had change numbers (layout 1,
so opening it upgrades it to layout 2 and then 3 in one transaction):
owner OWNER, database key KEY, a declaration of Dog.name, three Dogs (dog-000, dog-001, dog-002), an edge
dog-000 -> dog-001, dog-001 renamed, dog-002 deleted.
"""
import json
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import wait_for
from pymemri.pod.api import PodAPI, PodUnavailable, client_auth
from pymemri.server.serve import PodServer
from pymemri.testing.fixtures import RecordingLauncher

OWNER, KEY = "a1" * 32, "b2" * 32
BEFORE = Path(__file__).parent / "data" / "pod_before_changes"


def held_request(url: str, owner: str, key: str, payload: dict) -> socket.socket:
    "A socket that has sent one `changes` request and not read its reply."
    body = json.dumps({"auth": {"type": "ClientAuth", "databaseKey": key}, "payload": payload}).encode()
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(b"POST /v4/%s/changes HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                 % (owner.encode(), host.encode(), len(body), body))
    return sock


def reply_of(sock: socket.socket, timeout: float = 5) -> tuple:
    "`(status, JSON body)` of the reply on `sock`."
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data: data += sock.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length: body += sock.recv(65536)
    sock.close()
    return int(head.split()[1]), json.loads(body)


def test_database_from_before_change_numbers(tmp_path):
    "A folder written before change numbers: its items are numbered in the order they last changed, and new writes follow."
    shutil.copytree(BEFORE, tmp_path / "pod")
    with PodServer(tmp_path / "pod") as server:
        api = PodAPI(server.url, OWNER, client_auth(KEY))
        everything = api.changes(limit=10_000)
        items = everything["items"]
        assert len(items) == 19 and everything["next"] == "19"
        assert sorted(item["dateServerModified"] for item in items) == [item["dateServerModified"] for item in items]
        assert [item["id"] for item in items if item["type"] == "Dog"] == ["dog-000", "dog-001", "dog-002"]
        assert {item["id"]: item["name"] for item in items if item["type"] == "Dog"}["dog-001"] == "renamed"
        threading.Timer(0.2, lambda: api.update_item({"id": "dog-002", "name": "back"})).start()
        held = api.changes(everything["next"], wait=10)
        assert [(item["id"], item["name"]) for item in held["items"]] == [("dog-002", "back")] and held["next"] == "20"
    with PodServer(tmp_path / "pod") as server:  # opened again: the numbers stay
        assert PodAPI(server.url, OWNER, client_auth(KEY)).changes("19")["items"][0]["id"] == "dog-002"


def test_held_requests_take_no_threads_and_wake_together(tmp_path):
    "Sixty held requests of one owner, more than the 40 threads of sync routes: others are answered at once, one write wakes all."
    owner, key = "c3" * 32, "d4" * 32
    with PodServer(tmp_path / "pod") as server:
        api = PodAPI(server.url, owner, client_auth(key))
        cursor = api.changes(limit=10_000)["next"]
        sockets = [held_request(server.url, owner, key, {"since": cursor, "wait": 30}) for _ in range(60)]
        wait_for(lambda: server.app.state.pod.feed.held(owner) == 60, 5, "60 held requests")
        started = time.monotonic()
        assert api.search({"type": "Person"}) == [] and time.monotonic() - started < 1
        item_id = api.create_item({"type": "Person"})
        replies = [reply_of(sock) for sock in sockets]
        assert all(status == 200 and [item["id"] for item in body["items"]] == [item_id] for status, body in replies)
        assert time.monotonic() - started < 5
        assert server.app.state.pod.feed.held(owner) == 0


def test_held_requests_leave_room_for_others(tmp_path):
    "Held requests wait idle, so they don't count among the requests served at once: with room for 6, 8 are held and more are served."
    owner, key = "a7" * 32, "b8" * 32
    with PodServer(tmp_path / "pod", max_connections=12) as server:  # serves 12 // 2 = 6 requests at once
        api = PodAPI(server.url, owner, client_auth(key))
        cursor = api.changes(limit=10_000)["next"]
        sockets = []
        for count in range(1, 9):  # followers come one after another (a burst beyond 6 at once may get 503s to retry)
            sockets.append(held_request(server.url, owner, key, {"since": cursor, "wait": 30}))
            wait_for(lambda: server.app.state.pod.feed.held(owner) == count, 5, f"{count} held requests")
        assert requests.get(f"{server.url}/version", timeout=5).status_code == 200
        item_id = api.create_item({"type": "Person"})
        assert all(status == 200 and [item["id"] for item in body["items"]] == [item_id]
                   for status, body in (reply_of(sock) for sock in sockets))


def test_bound_and_hang_up(tmp_path):
    "Beyond the bound a request is refused with 429; a client that hangs up frees its place."
    owner, key = "e5" * 32, "f6" * 32
    with PodServer(tmp_path / "pod", max_held_changes=2) as server:
        api = PodAPI(server.url, owner, client_auth(key))
        cursor = api.changes(limit=10_000)["next"]
        sockets = [held_request(server.url, owner, key, {"since": cursor, "wait": 30}) for _ in range(2)]
        wait_for(lambda: server.app.state.pod.feed.held(owner) == 2, 5, "2 held requests")
        with pytest.raises(PodUnavailable, match=r"\(429\): this owner has 2 changes requests waiting already"):
            api.changes(cursor, wait=5)
        for sock in sockets: sock.close()
        wait_for(lambda: server.app.state.pod.feed.held(owner) == 0, 3, "no held requests")
        threading.Timer(0.2, lambda: PodAPI(server.url, owner, client_auth(key)).create_item({"type": "Person"})).start()
        assert len(api.changes(cursor, wait=10)["items"]) == 1


def test_stopping_releases_held_requests(tmp_path):
    "A Pod that stops answers its held requests at once instead of waiting for them."
    owner, key = "a7" * 32, "b8" * 32
    server = PodServer(tmp_path / "pod").start()
    cursor = PodAPI(server.url, owner, client_auth(key)).changes(limit=10_000)["next"]
    sock = held_request(server.url, owner, key, {"since": cursor, "wait": 60})
    wait_for(lambda: server.app.state.pod.feed.held(owner) == 1, 5, "1 held request")
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 3
    assert reply_of(sock) == (200, {"items": [], "next": cursor})


def test_follower_misses_nothing(tmp_path):
    "A follower holding requests while another client writes 200 items in 200 requests sees each exactly once, in order."
    owner, key = "c9" * 32, "d0" * 32
    with PodServer(tmp_path / "pod") as server:
        api, writer = PodAPI(server.url, owner, client_auth(key)), PodAPI(server.url, owner, client_auth(key))
        cursor = api.changes(limit=10_000)["next"]
        created = []
        def write():
            for _ in range(200): created.append(writer.create_item({"type": "Person"}))
        thread = threading.Thread(target=write)
        thread.start()
        seen = []
        for item in api.follow(types=["Person"], since=cursor, wait=5):
            seen.append(item["id"])
            if len(seen) == 200: break
        thread.join()
        assert seen == created


def test_plugin_token_and_shapes(tmp_path):
    "Any auth of the owner may follow; a malformed request is a 400 naming what is wrong."
    owner, key = "e1" * 32, "f2" * 32
    launcher = RecordingLauncher()
    with PodServer(tmp_path / "pod", launcher=launcher) as server:
        url = f"{server.url}/v4/{owner}/changes"
        auth = {"type": "ClientAuth", "databaseKey": key}
        api = PodAPI(server.url, owner, client_auth(key))
        run_id = "0123456789abcdef0123456789abcdef"
        api.create_item({"type": "PluginRun", "id": run_id, "containerImage": "test-plugin", "targetItemId": run_id})
        token = launcher.for_run(run_id).auth_token  # the token of a live run: the Pod launched it
        reply = requests.post(url, json={"auth": {"type": "PluginAuth", **token}, "payload": {"ids": [run_id]}})
        assert reply.status_code == 200 and [item["id"] for item in reply.json()["items"]] == [run_id]
        for payload, message in (({"since": 3}, "since must be null or a cursor"), ({"wait": -1}, "wait must be 0 to 60"),
                                 ({"limit": 10_001}, "limit must be an integer from 1 to 10000"), ("x", "changes takes {since")):
            reply = requests.post(url, json={"auth": auth, "payload": payload})
            assert reply.status_code == 400 and message in reply.text, reply.text
