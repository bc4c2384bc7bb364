"""A data folder written by pymemri's layout 1 (one row per property value) opens with today's Pod, upgraded in place.

tests/data/pod_v1 was written by the code of layout 1 (the release before layout 2), and expected.json holds the
replies that code gave for it. After the upgrade the same requests must give the same replies, over HTTP.
"""
import json
import shutil
from pathlib import Path

import pytest
import sqlcipher3
from fastapi.testclient import TestClient

from pymemri.server.app import create_app
from pymemri.server.db import SCHEMA_VERSION, OwnerDatabase, cipher_key

FOLDER = Path(__file__).parent / "data" / "pod_v1"
EXPECTED = json.loads((FOLDER / "expected.json").read_text())
QUERIES = {"search_all": ("search", {"[[edges]]": {}, "~[[edges]]": {}}), "search_age": ("search", {"age": 7}),
           "search_bites": ("search", {"bites": False, "type": "Dog"}), "search_name": ("search", {"name": "Rex \"the\" 🐕"}),
           "search_weight": ("search", {"weight": 1e300}), "search_Age": ("search", {"Age": "three"}),
           "edges_out": ("get_edges", {"item": "dog-000001", "direction": "Outgoing", "expandItems": True}),
           "edges_in": ("get_edges", {"item": "dog-000001", "direction": "Incoming", "expandItems": False})}


@pytest.fixture
def old_folder(tmp_path) -> Path:
    shutil.copytree(FOLDER, tmp_path / "pod", ignore=shutil.ignore_patterns("expected.json"))
    return tmp_path / "pod"


def database_file(folder: Path) -> Path: return folder / "db" / f"{EXPECTED['owner']}.p4.4.sqlite"


def names(path: Path, key: str, kind: str) -> tuple:
    "The user_version of the database at `path` and the names of its `kind` (table, trigger) in sqlite_master."
    connection = sqlcipher3.connect(str(path))
    connection.execute(f"PRAGMA key = \"x'{cipher_key(key)}'\"")
    try: return (connection.execute("PRAGMA user_version").fetchone()[0],
                 sorted(name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = ?", (kind,))))
    finally: connection.close()


def layout(path: Path) -> tuple: return names(path, EXPECTED["key"], "table")


def break_step(monkeypatch, version: int, statement: str, message: str):
    "Make the upgrade from `version` run `statement` and then fail with `message`."
    def broken(connection):
        connection.execute(statement)
        raise RuntimeError(message)
    monkeypatch.setitem(OwnerDatabase._migrate.__globals__["UPGRADES"], version, broken)


def test_old_folder_is_layout_1(old_folder):
    assert layout(database_file(old_folder)) == (1, ["edges", "integers", "items", "reals", "strings"])


def test_upgraded_folder_answers_as_before(old_folder):
    with TestClient(create_app(old_folder), base_url="http://localhost") as pod:
        auth = {"type": "ClientAuth", "databaseKey": EXPECTED["key"]}
        for name, (endpoint, payload) in QUERIES.items():
            reply = pod.post(f"/v4/{EXPECTED['owner']}/{endpoint}", json={"auth": auth, "payload": payload})
            assert reply.status_code == 200, reply.text
            assert reply.json() == EXPECTED["replies"][name], name
        # written after the upgrade: a new value, an erased one, and a file's key on the old File item
        for payload in ({"id": "dog-000002", "age": 8, "name": None}, {"id": "file-00001", "nonce": "00" * 24}):
            assert pod.post(f"/v4/{EXPECTED['owner']}/update_item", json={"auth": auth, "payload": payload}).status_code == 200
        dog = pod.post(f"/v4/{EXPECTED['owner']}/get_item", json={"auth": auth, "payload": "dog-000002"}).json()[0]
        assert (dog["age"], "name" in dog, dog["bites"]) == (8, False, False)
        # layout 3: the old items are numbered in the order they last changed, the two writes since come after them
        feed = pod.post(f"/v4/{EXPECTED['owner']}/changes", json={"auth": auth, "payload": {"limit": 10_000}}).json()["items"]
        assert [item["id"] for item in feed[-2:]] == ["dog-000002", "file-00001"]
        assert [item["dateServerModified"] for item in feed[:-2]] == sorted(item["dateServerModified"] for item in feed[:-2])
    assert layout(database_file(old_folder)) == (SCHEMA_VERSION, ["edges", "items"])


def test_failed_upgrade_changes_nothing(old_folder, monkeypatch):
    path = database_file(old_folder)
    before = path.read_bytes()
    break_step(monkeypatch, 1, "ALTER TABLE items ADD COLUMN properties TEXT NOT NULL DEFAULT '{}'", "the upgrade broke half way")
    with pytest.raises(RuntimeError, match="half way"): OwnerDatabase(path, EXPECTED["key"].upper())
    assert layout(path)[0] == 1 and "properties" not in str(layout(path))
    monkeypatch.undo()
    database = OwnerDatabase(path, EXPECTED["key"].upper())
    assert database.schema["weight"] == "Real"
    database.close()
    assert before != path.read_bytes()


def test_failed_later_step_undoes_the_earlier_ones(old_folder, monkeypatch):
    "Layout 1 goes to 2 and then to 3 in the one transaction that opens it: a failure in the second step leaves layout 1."
    path = database_file(old_folder)
    break_step(monkeypatch, 2, "ALTER TABLE items ADD COLUMN changeSeq INTEGER", "the second step broke")
    with pytest.raises(RuntimeError, match="second step"): OwnerDatabase(path, EXPECTED["key"].upper())
    assert layout(path) == (1, ["edges", "integers", "items", "reals", "strings"])


# tests/data/pod_v3 was written by the code of layout 3 (which numbered writes with triggers on items), and its
# expected.json holds the replies that code gave; layout 4 drops the triggers and numbers each write in the writer.
V3 = Path(__file__).parent / "data" / "pod_v3"
V3_EXPECTED = json.loads((V3 / "expected.json").read_text())
V3_QUERIES = {"search_all": ("search", {"[[edges]]": {}, "~[[edges]]": {}}), "search_age": ("search", {"age": 7}),
              "search_dogs": ("search", {"type": "Dog", "_limit": 2, "[[edges]]": {}}),
              "edges_out": ("get_edges", {"item": "dog-000001", "direction": "Outgoing", "expandItems": True}),
              "changes": ("changes", {"limit": 100})}


@pytest.fixture
def v3_folder(tmp_path) -> Path:
    shutil.copytree(V3, tmp_path / "pod", ignore=shutil.ignore_patterns("expected.json"))
    return tmp_path / "pod"


def triggers(path: Path, key: str) -> tuple: return names(path, key, "trigger")


def v3_file(folder: Path) -> Path: return folder / "db" / f"{V3_EXPECTED['owner']}.p4.4.sqlite"


def test_layout_3_folder_answers_as_before_and_numbers_new_writes(v3_folder):
    assert triggers(v3_file(v3_folder), V3_EXPECTED["key"]) == (3, ["items_changed_changeSeq", "items_created_changeSeq"])
    with TestClient(create_app(v3_folder), base_url="http://localhost") as pod:
        auth = {"type": "ClientAuth", "databaseKey": V3_EXPECTED["key"]}
        call = lambda endpoint, payload: pod.post(f"/v4/{V3_EXPECTED['owner']}/{endpoint}", json={"auth": auth, "payload": payload})
        for name, (endpoint, payload) in V3_QUERIES.items():
            reply = call(endpoint, payload)
            assert reply.status_code == 200, reply.text
            assert reply.json() == V3_EXPECTED["replies"][name], name
        last = int(V3_EXPECTED["replies"]["changes"]["next"])
        # each kind of write takes the next number, without the triggers
        assert call("update_item", {"id": "dog-000001", "age": 11}).status_code == 200
        assert call("delete_item", "dog-000002").status_code == 200
        assert call("bulk", {"createItems": [{"id": "dog-000009", "type": "Dog"}],
                             "createEdges": [{"_source": "dog-000005", "_target": "dog-000009", "_name": "friend"}]}).status_code == 200
        feed = call("changes", {"since": str(last)}).json()
        assert [item["type"] if item["type"] == "Edge" else item["id"] for item in feed["items"]] == \
            ["dog-000001", "dog-000002", "dog-000009", "Edge", "dog-000005"]
        assert int(feed["next"]) == last + 5
    assert triggers(v3_file(v3_folder), V3_EXPECTED["key"]) == (SCHEMA_VERSION, [])


def test_failed_step_to_4_leaves_layout_3(v3_folder, monkeypatch):
    path = v3_file(v3_folder)
    break_step(monkeypatch, 3, "DROP TRIGGER items_created_changeSeq", "the step to 4 broke")
    with pytest.raises(RuntimeError, match="step to 4"): OwnerDatabase(path, V3_EXPECTED["key"].upper())
    assert triggers(path, V3_EXPECTED["key"]) == (3, ["items_changed_changeSeq", "items_created_changeSeq"])
