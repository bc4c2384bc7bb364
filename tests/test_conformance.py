"""The conformance checklist of the Pod HTTP API v4 (shared/pod-api.md), item by item, against the embedded Pod.

Where the embedded Pod deliberately answers differently from the reference Rust Pod (the table at the end
of nbs/server.app.ipynb), the test asserts our documented status and names the reference's in a comment.
"""
import hashlib
import json
import logging
import random
import re
import secrets
import sys
import time
from http.client import HTTPConnection

import pytest
import requests

from conftest import PodCaller, now_millis, plugin_run
from pymemri.server.launchers import ProcessLauncher

HEX32 = re.compile(r"[0-9a-f]{32}")


def assert_failure(reply: requests.Response, status: int, contains: str = ""):
    "`reply` is a refusal with `status` and a `Failure: …` text body (containing `contains`)."
    assert reply.status_code == status, f"expected {status}, got {reply.status_code}: {reply.text[:300]}"
    assert reply.headers["content-type"].startswith("text/plain"), reply.headers["content-type"]
    assert reply.text.startswith("Failure: ") and len(reply.text) > len("Failure: "), reply.text
    assert contains in reply.text, f"{contains!r} not in {reply.text!r}"


# ---------------------------------------------------------------------------------------------- Transport

def test_01_version(pod_server, http):
    reply = http.get(f"{pod_server.url}/version")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    body = json.loads(reply.text)
    assert type(body) is dict and type(body["cargo"]) is str


def test_02_unknown_routes(pod, http):
    for reply in (http.get(f"{pod.url}/"), pod.post("nope", {})):
        assert (reply.status_code, reply.text) == (404, "Endpoint not found")
    # GET on a POST route: the reference answers 404 [F]; 405 is accepted, and is what FastAPI answers.
    assert_failure(http.get(f"{pod.url}/v4/{pod.owner}/search"), 405)


def test_03_body_not_json(pod):
    assert_failure(pod.raw("search", b"not json"), 400, "not valid JSON")


def test_04_auth_missing_or_unknown(pod):
    assert_failure(pod.raw("search", b'{"payload": {}}'), 400, "no auth")
    assert_failure(pod.post("search", {}, auth={"type": "Foo"}), 400, "auth.type")


def test_05_cors(pod, http, start_server):
    # pod-api.md §12.1 supersedes checklist item 5 here, on purpose: no reply says `Access-Control-Allow-Origin: *`,
    # and a preflight from an origin the Pod was not told to allow (none by default) is refused with 403.
    assert "access-control-allow-origin" not in pod.post("search", {}).headers
    assert "access-control-allow-origin" not in pod.post("search", "not an object").headers
    assert_failure(http.options(f"{pod.url}/v4/{pod.owner}/search", headers={"Origin": "x"}), 403)
    # Item 5's preflight, from an origin the Pod allows: 200, and the reply names that origin.
    server = start_server(cors_origins="http://localhost:8080")
    page = PodCaller(server.url, http=http)
    preflight = http.options(f"{page.url}/v4/{page.owner}/search", headers={"Origin": "http://localhost:8080"})
    assert (preflight.status_code, preflight.content) == (200, b"")
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-max-age"] == "300"
    assert preflight.headers["vary"] == "origin"
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:8080"
    body = json.dumps({"auth": page.auth, "payload": {}}).encode()
    reply = page.raw("search", body, headers={"Origin": "http://localhost:8080"})
    assert reply.status_code == 200 and reply.headers["access-control-allow-origin"] == "http://localhost:8080"


def test_06_large_body(pod):
    envelope = {"auth": pod.auth, "payload": {}, "padding": ""}
    padding = int(4.9 * 2**20) - len(json.dumps(envelope))
    reply = pod.raw("search", json.dumps({**envelope, "padding": "x" * padding}).encode())
    assert reply.status_code == 200 and len(reply.json()) == 14
    # Over the 5 MiB limit: the reference answers 404 [F]; we answer 413 (documented deviation).
    over = json.dumps({**envelope, "padding": "x" * (5 * 2**20)}).encode()
    reply = pod.raw("search", over)
    assert_failure(reply, 413, "larger than 5 MiB")


def test_06_upload_limit_from_content_length(pod, pod_server):
    "§1: uploads may be 500 MiB; a larger Content-Length is refused before any of the body is read."
    connection = HTTPConnection("127.0.0.1", pod_server.port, timeout=10)
    try:
        connection.putrequest("POST", f"/v4/{pod.owner}/upload_file/{pod.key}/{'0' * 64}")
        connection.putheader("Content-Length", str(500 * 2**20 + 1))
        connection.endheaders()
        reply = connection.getresponse()
        assert (reply.status, reply.read()) == (413, b"Failure: the body is larger than 500 MiB")
    finally: connection.close()


# ---------------------------------------------------------------------------------------------- Auth, owners, keys

def test_07_database_key_characters_and_case(pod):
    assert_failure(pod.post("search", {}, auth={"type": "ClientAuth", "databaseKey": "zz!"}), 400, "databaseKey")
    key = "abcdef" + secrets.token_hex(29)
    lower, upper = pod.with_key(key.lower()), pod.with_key(key.upper())
    item_id = lower.create(type="Person")
    assert upper.get(item_id)["type"] == "Person"
    assert lower.search(type="Person") == upper.search(type="Person")


BUILTIN_SCHEMA = {  # id: (itemType, propertyName, valueType), the table of pod-api.md §4.5
    "ad61e2770eb64d81a3ddfa03fa5f887f": ("ItemPropertySchema", "itemType", "Text"),
    "7bce841921beb3295634b224bc75a990": ("ItemPropertySchema", "propertyName", "Text"),
    "791427a0571e394d1f29cb63ee77e5": ("ItemPropertySchema", "valueType", "Text"),
    "8c914705a392432381561db94da76ad9": ("PluginRun", "containerImage", "Text"),
    "5f43d3c0120c4f0cac3c98b8129c9cb7": ("PluginRun", "targetItemId", "Text"),
    "419d1188b61dfa7d0a18e20794c843": ("File", "sha256", "Text"),
    "16fa737654dc376a20976d8ec89033c2": ("File", "key", "Text"),
    "25994759432d4a636599c5e9c987eb95": ("File", "nonce", "Text"),
    "ccf9f0cba490ed58fa967f6a1136fc8": ("Item", "id", "Text"),
    "904ecd61ba00152d9ab9f235c13217": ("Item", "type", "Text"),
    "cb8b4455cdcabd25ba9d0eaabcc3786": ("Item", "dateCreated", "DateTime"),
    "d1757e7395932c32cc1dcecc03b2977": ("Item", "dateModified", "DateTime"),
    "8f492d26bd192ad53cf07f3ad36cbae7": ("Item", "dateServerModified", "DateTime"),
    "8716a96393c48255542ca6d54afe2bc6": ("Item", "deleted", "Bool"),
}


def test_08_fresh_database_holds_the_builtin_schema(pod):
    items = pod.search()
    assert {item["id"]: (item["itemType"], item["propertyName"], item["valueType"]) for item in items} == BUILTIN_SCHEMA
    assert len(items) == 14
    for item in items:
        assert item["type"] == "ItemPropertySchema" and item["deleted"] is False
        assert item["dateCreated"] == item["dateModified"] == item["dateServerModified"] == 0


def test_09_wrong_key_for_existing_owner(pod):
    item_id = pod.create(type="Person")
    # The reference answers 500 (SQLCipher: "file is not a database"); we answer 401 (documented deviation).
    assert_failure(pod.with_key(secrets.token_hex(32)).post("search", {}), 401, "wrong database key")
    assert pod.get(item_id)["type"] == "Person"


def test_09_order_of_checks(pod):
    "§1: envelope and payload shape, then key, then owner, then database."
    pod.create(type="Person")
    wrong_key = pod.with_key(secrets.token_hex(32))
    assert_failure(wrong_key.raw("update_item", b"not json"), 400, "not valid JSON")
    assert_failure(wrong_key.post("update_item", {"id": "person-1"}, auth={"type": "ClientAuth", "databaseKey": "zz!"}), 400, "databaseKey")
    # A malformed payload with a wrong key: 400, the payload's shape is checked first.
    assert_failure(wrong_key.post("update_item", "not an object"), 400, "update_item takes an object")
    assert_failure(wrong_key.post("bulk", {"createItems": [{"type": "Person", "id": "x"}]}), 400, "must be 6-36 letters")
    assert_failure(wrong_key.post("search", {"type": "Person"}), 401, "wrong database key")


def test_09_malformed_request_creates_no_database(pod, pod_server):
    "A malformed first request for a new owner, with a wrong key, neither creates the database nor binds its key."
    wrong_key = pod.with_key(secrets.token_hex(32))
    for endpoint, payload in [("bulk", {"createItems": None}), ("create_item", {"type": 3}), ("search", {"_limit": -1}),
                              ("get_edges", {"item": "x"}), ("graphql", "query {"), ("get_file", {"sha256": "zz"})]:
        assert_failure(wrong_key.post(endpoint, payload), 400, "")
    assert_failure(wrong_key.upload(b"bytes", sha256=hashlib.sha256(b"other").hexdigest()), 400, "does not match")
    assert list((pod_server.data_dir / "db").glob(f"{pod.owner}*")) == []
    assert pod.search(type="Person") == []


def test_10_owner_allow_list(start_server, http):
    allowed, other = secrets.token_hex(32), secrets.token_hex(32)
    server = start_server(owners=hashlib.sha256(bytes.fromhex(allowed)).hexdigest())
    assert PodCaller(server.url, allowed, http=http).post("search", {}).status_code == 200
    assert_failure(PodCaller(server.url, other, http=http).post("search", {}), 403, "Unexpected owner")
    # A non-hex owner: the reference answers 500 [F]; we answer 400 (documented deviation).
    assert_failure(PodCaller(server.url, "xyz" + other, http=http).post("search", {}), 400, "hexadecimal")
    # A malformed payload from an owner not on the list: 400, the payload's shape is checked before the owner.
    assert_failure(PodCaller(server.url, other, http=http).post("update_item", "not an object"), 400, "update_item takes an object")


def test_11_altered_plugin_auth(pod, launcher):
    run = plugin_run()
    pod.create(**run)
    token = launcher.for_run(run["id"]).auth_token["data"]
    assert pod.post("search", {"id": run["id"]}, auth={"type": "PluginAuth", "data": token}).status_code == 200
    assert_failure(pod.post("search", {}, auth={"type": "PluginAuth", "data": {**token, "nonce": token["nonce"][:47]}}),
                   400, "nonce must be 48")
    sealed = token["encryptedPermissions"]
    altered = {**token, "encryptedPermissions": sealed[:10] + ("0" if sealed[10] != "0" else "1") + sealed[11:]}
    # The reference answers 500 (AEAD failure) [F]; we answer 401 (documented deviation).
    assert_failure(pod.post("search", {}, auth={"type": "PluginAuth", "data": altered}), 401, "not valid here")


def test_12_shared_server(start_server, http):
    server = start_server(shared_server=True)
    caller = PodCaller(server.url, http=http)
    reply = caller.post("search", {})
    assert (reply.status_code, reply.content) == (404, b"")
    assert HEX32.fullmatch(caller.call("create_item", {"type": "Person"}))
    assert "cargo" in http.get(f"{server.url}/version").json()


# ---------------------------------------------------------------------------------------------- Items

def test_13_create_item(pod):
    assert HEX32.fullmatch(pod.call("create_item", {"type": "Person"}))


def test_14_get_item(pod):
    before = now_millis()
    item_id = pod.create(type="Person")
    after = now_millis()
    [item] = pod.call("get_item", item_id)
    assert (item["id"], item["type"], item["deleted"]) == (item_id, "Person", False)
    assert item["dateCreated"] == item["dateModified"] == item["dateServerModified"]
    assert before <= item["dateCreated"] <= after
    assert pod.call("get_item", "missing-id") == []


@pytest.mark.parametrize("item_id, status", [("abc", 400), ("a b c d e", 400), ("x" * 37, 400), ("abc-_1", 200)])
def test_15_client_ids(pod, item_id, status):
    reply = pod.post("create_item", {"type": "Person", "id": item_id})
    if status == 200: assert reply.json() == item_id
    else: assert_failure(reply, status, "must be 6-36 letters")


def test_16_duplicate_id(pod):
    pod.create(type="Person", id="person-1")
    count = pod.count()
    # The reference answers 500 (SQLite UNIQUE constraint) [F]; we answer 409 (documented deviation).
    assert_failure(pod.post("create_item", {"type": "Dog", "id": "person-1"}), 409, "already exists")
    assert pod.count() == count and pod.get("person-1")["type"] == "Person"


def test_17_client_dates_and_deleted(pod):
    before = now_millis()
    item = pod.get(pod.create(type="Person", dateCreated=1000, dateModified=2000))
    assert (item["dateCreated"], item["dateModified"]) == (1000, 2000)
    assert before <= item["dateServerModified"] <= now_millis()
    assert_failure(pod.post("create_item", {"type": "Person", "dateCreated": "x"}), 400, "dateCreated must be an integer")
    assert_failure(pod.post("create_item", {"type": "Person", "dateModified": 1.5}), 400, "dateModified must be an integer")
    assert pod.get(pod.create(type="Person", deleted=True))["deleted"] is True


def test_18_undeclared_property(pod):
    assert_failure(pod.post("create_item", {"type": "Person", "age": 20}), 400, "'age' is not defined in the schema")
    assert pod.search(type="Person") == []


# ---------------------------------------------------------------------------------------------- Schema and types

def test_19_declare_then_use(pod):
    assert HEX32.fullmatch(pod.create(type="ItemPropertySchema", itemType="Person", propertyName="age", valueType="Integer"))
    assert pod.get(pod.create(type="Person", age=20))["age"] == 20


def declaration(item_type, name, value_type) -> dict:
    return {"type": "ItemPropertySchema", "itemType": item_type, "propertyName": name, "valueType": value_type}


def test_20_duplicate_and_conflicting_declarations(pod):
    pod.call("create_item", declaration("Person", "age", "Integer"))
    again = pod.post("create_item", declaration("Person", "age", "Integer"))
    assert reply_is_id(again)
    count = pod.count()
    for declared, message in [(declaration("Dog", "age", "Text"), "already declared as Integer"),
                              (declaration("Person", "dateCreated", "Bool"), "already declared as DateTime"),
                              (declaration("Person", "nick", "String"), "is not one of"),
                              ({"type": "ItemPropertySchema", "itemType": "Person", "valueType": "Text"}, "propertyName")]:
        assert_failure(pod.post("create_item", declared), 400, message)
    assert pod.count() == count


def reply_is_id(reply) -> bool:
    return reply.status_code == 200 and type(reply.json()) is str and len(reply.json()) >= 6


def test_21_schema_is_global(pod):
    pod.declare("Person/age/Integer")
    assert pod.get(pod.create(type="Dog", age=3))["age"] == 3


@pytest.mark.parametrize("name, value, expected", [
    ("age", "20", 400), ("age", 20.5, 400), ("age", True, 400), ("age", 2**63, 400), ("tall", 1, 400),
    ("tall", True, True), ("w", 3, 3.0), ("nick", 5, 400), ("born", 1.6, 2), ("born", -1.5, -2),
    ("nick", [1], 400), ("nick", {}, 400), ("nick", "Bo", "Bo")])
def test_22_value_types(pod, name, value, expected):
    pod.declare("Person/age/Integer", "Person/tall/Bool", "Person/w/Real", "Person/born/DateTime", "Person/nick/Text")
    reply = pod.post("create_item", {"type": "Person", name: value})
    if expected == 400: return assert_failure(reply, 400, f"property {name!r} is")
    stored = pod.get(reply.json())[name]
    assert (stored, type(stored)) == (expected, type(expected))


def test_23_names_are_case_sensitive(pod):
    pod.declare("Person/age/Integer")
    pod.call("create_item", declaration("Person", "Age", "Text"))
    item = pod.get(pod.create(type="Person", age=1, Age="one"))
    assert (item["age"], item["Age"]) == (1, "one")


def test_24_declaration_effective_in_same_bulk(pod):
    result = pod.call("bulk", {"createItems": [declaration("Dog", "weight", "Real"), {"type": "Dog", "weight": 1.5}]})
    assert pod.get(result["createItems"][1])["weight"] == 1.5


def test_25_pymemri_2022_02_constructor_schema(pod):
    # pymemri 2022-02 is not installed here (its package name is ours), so this sends what its PodClient()
    # constructor sends: one bulk declaring the properties of PluginRun, CVUStoredDefinition, Account and
    # Photo, including duplicates of the built-ins (id, type, itemType, deleted) — all must succeed.
    properties = {
        "PluginRun": {"id": "Text", "type": "Text", "deleted": "Bool", "containerImage": "Text", "targetItemId": "Text",
                      "pluginModule": "Text", "pluginName": "Text", "config": "Text", "status": "Text", "progress": "Real"},
        "CVUStoredDefinition": {"id": "Text", "type": "Text", "itemType": "Text", "definition": "Text", "domain": "Text",
                                "name": "Text", "query": "Text", "renderer": "Text", "selector": "Text"},
        "Account": {"id": "Text", "type": "Text", "deleted": "Bool", "starred": "Bool", "isMe": "Bool", "service": "Text",
                    "identifier": "Text", "secret": "Text", "code": "Text", "accessToken": "Text", "refreshToken": "Text",
                    "errorMessage": "Text", "handle": "Text", "displayName": "Text"},
        "Photo": {"id": "Text", "type": "Text", "deleted": "Bool", "starred": "Bool", "width": "Integer", "height": "Integer",
                  "channels": "Integer", "encoding": "Text"},
    }
    declarations = [declaration(item_type, name, value_type)
                    for item_type, names in properties.items() for name, value_type in names.items()]
    result = pod.call("bulk", {"createItems": declarations})
    assert len(result["createItems"]) == len(declarations) and all(type(item_id) is str for item_id in result["createItems"])
    count = pod.count()
    assert pod.call("bulk", {"createItems": declarations})["createItems"] == result["createItems"]  # a second client
    assert pod.count() == count
    account = pod.get(pod.create(type="Account", service="x", isMe=True, starred=False))
    assert (account["service"], account["isMe"], account["starred"]) == ("x", True, False)


# ---------------------------------------------------------------------------------------------- Update / delete

@pytest.fixture
def person(pod):
    "The id of a Person aged 20 on `pod`, with `age`, `tall` and `x` declared."
    pod.declare("Person/age/Integer", "Person/tall/Bool", "Person/x/Text")
    return pod.create(type="Person", age=20)


def test_26_update_item(pod, person):
    before = pod.get(person)
    time.sleep(0.002)
    assert pod.call("update_item", {"id": person, "age": 21, "type": "Other", "dateCreated": 5}) == {}
    after = pod.get(person)
    assert (after["age"], after["type"], after["dateCreated"]) == (21, "Person", before["dateCreated"])
    assert after["dateModified"] > before["dateModified"] and after["dateServerModified"] > before["dateServerModified"]


def test_27_update_null_erases(pod, person):
    assert pod.call("update_item", {"id": person, "age": None}) == {}
    assert "age" not in pod.get(person)


def test_28_update_date_modified(pod, person):
    before = now_millis()
    pod.call("update_item", {"id": person, "dateModified": 5})
    item = pod.get(person)
    assert item["dateModified"] == 5 and before <= item["dateServerModified"] <= now_millis()
    assert_failure(pod.post("update_item", {"id": person, "dateModified": None}), 400, "dateModified must be an integer")


@pytest.mark.parametrize("change, status, message", [
    ({"x": "y"}, 400, "must be 2-32 letters"), ({"order": 1}, 400, "'order' is reserved"),
    ({"Key": 1}, 400, "'Key' is reserved"), ({"Id": "y"}, 400, "'Id' is reserved"), ({"rowid": 1}, 400, "'rowid' is reserved"),
    ({"deleted": "yes"}, 400, "deleted must be true or false"), ({"zzz": 1}, 400, "'zzz' is not defined"),
    ({"age": "21"}, 400, "'age' is Integer"), ({"age": 1}, 404, "no item with id")])
def test_29_update_refusals(pod, person, change, status, message):
    before = pod.get(person)
    target = "missing-1" if status == 404 else person
    assert_failure(pod.post("update_item", {"id": target, **change}), status, message)
    assert pod.get(person) == before


def test_29_update_deleted_false(pod, person):
    pod.call("delete_item", person)
    assert pod.call("update_item", {"id": person, "deleted": False}) == {}
    assert pod.get(person)["deleted"] is False


def test_30_delete_item(pod, person):
    before = pod.get(person)
    time.sleep(0.002)
    assert pod.call("delete_item", person) == {}
    after = pod.get(person)
    assert after["deleted"] is True and after["age"] == 20
    assert after["dateModified"] > before["dateModified"] and after["dateServerModified"] > before["dateServerModified"]
    assert_failure(pod.post("delete_item", "missing-1"), 404, "no item with id")


# ---------------------------------------------------------------------------------------------- Search

@pytest.fixture
def three_persons(pod, fixed_clock):
    "p1, p2, p3: Persons created in separate requests at 1000, 2000 and 3000 ms."
    ids = []
    for moment in (1000, 2000, 3000):
        fixed_clock.set(moment)
        ids.append(pod.create(type="Person"))
    fixed_clock.release()
    return ids


def ids_of(items): return [item["id"] for item in items]


def test_31_sort_order(pod, three_persons):
    assert ids_of(pod.search(type="Person")) == three_persons
    assert ids_of(pod.search(type="Person", _sortOrder="Asc")) == three_persons
    assert ids_of(pod.search(type="Person", _sortOrder="Desc")) == three_persons[::-1]
    assert_failure(pod.post("search", {"type": "Person", "_sortOrder": "desc"}), 400, "_sortOrder")


def test_32_date_range(pod, three_persons):
    p1, p2, p3 = three_persons
    assert ids_of(pod.search(type="Person", **{"dateServerModified>=": 2000})) == [p2, p3]
    assert ids_of(pod.search(type="Person", **{"dateServerModified<": 2000})) == [p1]
    assert ids_of(pod.search(type="Person", **{"dateServerModified>=": 1001, "dateServerModified<": 3000})) == [p2]


def test_33_limit(pod, three_persons):
    assert ids_of(pod.search(type="Person", _limit=2)) == three_persons[:2]
    assert pod.search(type="Person", _limit=0) == []
    assert_failure(pod.post("search", {"type": "Person", "_limit": -1}), 400, "_limit")
    assert_failure(pod.post("search", {"type": "Person", "_limit": 1.5}), 400, "_limit")


def test_34_limit_includes_ties(pod, fixed_clock):
    ids = []
    for moment in (1000, 2000, 2000):
        fixed_clock.set(moment)
        ids.append(pod.create(type="Person"))
    assert ids_of(pod.search(type="Person", _limit=2)) == ids
    assert ids_of(pod.search(type="Person", _limit=1)) == ids[:1]


def test_34_paging_by_date_sees_every_item_once(pod, fixed_clock):
    "§5.6: pymemri pages with `_limit` and `dateServerModified>=` one past the last; ties must not be lost."
    moments = sorted(random.Random(7).choices(range(1000, 1015), k=40))
    ids = []
    for moment in moments:
        fixed_clock.set(moment)
        ids.append(pod.create(type="Person"))
    for limit in (1, 2, 3, 7, 40):
        seen, since = [], 0
        while page := pod.search(type="Person", _limit=limit, **{"dateServerModified>=": since}):
            seen += ids_of(page)
            since = page[-1]["dateServerModified"] + 1
        assert seen == ids, f"_limit {limit}"


def test_35_deleted_filter(pod):
    kept, gone = pod.create(type="Person"), pod.create(type="Person")
    pod.call("delete_item", gone)
    assert ids_of(pod.search(type="Person", deleted=False)) == [kept]
    assert ids_of(pod.search(type="Person", deleted=True)) == [gone]
    assert ids_of(pod.search(type="Person", deleted=None)) == [kept, gone]


def test_36_property_filters(pod):
    pod.declare("Person/age/Integer", "Person/tall/Bool")
    aged_21 = pod.create(type="Person", age=21, tall=True)
    pod.create(type="Person", age=22)
    short = pod.create(type="Person", age=21, tall=False)
    assert ids_of(pod.search(type="Person", age=21)) == [aged_21, short]
    assert ids_of(pod.search(type="Person", tall=False)) == [short]
    assert_failure(pod.post("search", {"zzz": 1}), 400, "'zzz' is not defined")
    assert_failure(pod.post("search", {"age": None}), 400, "can't be null")
    assert_failure(pod.post("search", {"age": "21"}), 400, "'age' is Integer")


def test_37_search_returns_edge_items(pod):
    source, target = pod.create(type="Person"), pod.create(type="Person")
    edge = pod.call("create_edge", {"_source": source, "_target": target, "_name": "friend"})
    [edge_item] = [item for item in pod.search() if item["type"] == "Edge"]
    assert (edge_item["id"], edge_item["_source"], edge_item["_target"], edge_item["_edge"]) == (edge, source, target, "friend")


# ---------------------------------------------------------------------------------------------- Edges

@pytest.fixture
def friends(pod, fixed_clock):
    "`(a, b, edge)`: two Persons made at 1000 ms, and an edge a -friend-> b made at 2000 ms."
    fixed_clock.set(1000)
    a, b = pod.create(type="Person"), pod.create(type="Person")
    fixed_clock.set(2000)
    edge = pod.call("create_edge", {"_source": a, "_target": b, "_name": "friend"})
    fixed_clock.release()
    return a, b, edge


def test_38_create_edge(pod, friends):
    a, b, edge = friends
    assert HEX32.fullmatch(edge)
    assert (pod.get(a)["dateServerModified"], pod.get(b)["dateServerModified"]) == (2000, 1000)
    edge_item = pod.get(edge)
    assert (edge_item["type"], edge_item["_source"], edge_item["_target"], edge_item["_edge"]) == ("Edge", a, b, "friend")
    assert edge_item["dateCreated"] == edge_item["dateModified"] == edge_item["dateServerModified"] == 2000


def test_39_duplicate_edges_allowed(pod, friends):
    a, b, edge = friends
    again = pod.call("create_edge", {"_source": a, "_target": b, "_name": "friend"})
    assert HEX32.fullmatch(again) and again != edge


def test_40_edge_refusals(pod, friends):
    a, b, edge = friends
    assert_failure(pod.post("create_edge", {"_source": "missing-1", "_target": b, "_name": "f"}), 404, "_source")
    assert_failure(pod.post("create_edge", {"_source": a, "_target": "missing-1", "_name": "f"}), 404, "_target")
    assert_failure(pod.post("create_edge", {"_source": a, "_target": b, "_name": "f", "_self": "missing-1"}), 400, "_self")
    # `_self` already the self item of an edge: the reference answers 500 [F]; we answer 409 (documented deviation).
    assert_failure(pod.post("create_edge", {"_source": a, "_target": b, "_name": "f", "_self": edge}), 409, "already an edge")
    c = pod.create(type="Link")
    assert pod.call("create_edge", {"_source": a, "_target": b, "_name": "f", "_self": c}) == c
    assert pod.get(c)["_edge"] == "f"


def test_41_search_with_edges(pod, friends):
    a, b, edge = friends
    [found] = pod.search(id=a, **{"[[edges]]": {}})
    [entry] = found["[[edges]]"]
    assert (entry["_edge"], entry["type"], entry["id"], entry["_item"]["id"]) == ("friend", "Edge", edge, b)
    [found] = pod.search(id=b, **{"~[[edges]]": {}})
    assert found["~[[edges]]"][0]["_item"]["id"] == a and "[[edges]]" not in found
    assert not {"[[edges]]", "~[[edges]]"} & set(pod.search(id=a)[0])


def test_42_get_edges(pod, friends):
    a, b, edge = friends
    [outgoing] = pod.call("get_edges", {"item": a, "direction": "Outgoing", "expandItems": True})
    assert outgoing["name"] == "friend" and outgoing["item"] == pod.get(b)
    assert pod.call("get_edges", {"item": a, "direction": "Outgoing", "expandItems": False}) == [{"name": "friend", "item": {"id": b}}]
    [incoming] = pod.call("get_edges", {"item": b, "direction": "Incoming", "expandItems": True})
    assert incoming["item"]["id"] == a
    assert_failure(pod.post("get_edges", {"item": a, "expandItems": True}), 400, "direction")
    # The reference answers 404 for an unknown item; pod-api §5.7 and §11 (amended) ask for [], as get_item answers.
    assert pod.call("get_edges", {"item": "missing-1", "direction": "Outgoing", "expandItems": True}) == []


# ---------------------------------------------------------------------------------------------- Bulk

def test_43_bulk(pod):
    pod.declare("Person/age/Integer")
    result = pod.call("bulk", {
        "createItems": [{"type": "Person", "id": "person-1"}, {"type": "Person", "id": "person-2"}],
        "updateItems": [{"id": "person-1", "age": 30}], "deleteItems": ["person-2"],
        "createEdges": [{"_source": "person-1", "_target": "person-2", "_name": "f"}],
        "search": [{"id": "person-1"}, {"id": "person-2"}]})
    assert set(result) == {"createItems", "createEdges", "search"}
    assert result["createItems"] == ["person-1", "person-2"]
    assert len(result["createEdges"]) == 1 and HEX32.fullmatch(result["createEdges"][0])
    [[p1], [p2]] = result["search"]
    assert (p1["id"], p1["age"], p2["id"], p2["deleted"]) == ("person-1", 30, "person-2", True)


def test_44_empty_and_null_bulk(pod):
    assert pod.call("bulk", {}) == {"createItems": [], "createEdges": [], "search": []}
    for part in ("createItems", "updateItems", "deleteItems", "createEdges", "search"):
        assert_failure(pod.post("bulk", {part: None}), 400, f"bulk {part} must be an array")


@pytest.mark.parametrize("failing, status", [
    ({"updateItems": [{"id": "missing-1", "age": 1}]}, 404),
    ({"createEdges": [{"_source": "new-item-1", "_target": "missing-1", "_name": "f"}]}, 404),
    ({"updateItems": [{"id": "new-item-1", "age": "one"}]}, 400),
    ({"search": [{"zzz": 1}]}, 400)])
def test_45_bulk_is_atomic(pod, failing, status):
    pod.declare("Person/age/Integer")
    count = pod.count()
    reply = pod.post("bulk", {"createItems": [{"type": "Person", "id": "new-item-1"},
                                              declaration("Person", "nick", "Text")], **failing})
    assert_failure(reply, status)
    assert pod.count() == count and pod.call("get_item", "new-item-1") == []
    assert_failure(pod.post("create_item", {"type": "Person", "nick": "x"}), 400, "'nick' is not defined")


# ---------------------------------------------------------------------------------------------- Files

def file_item(pod, data: bytes) -> str:
    "Create the File item for `data`; its sha256."
    sha256 = hashlib.sha256(data).hexdigest()
    pod.create(type="File", sha256=sha256)
    return sha256


def test_46_upload_and_get_file(pod):
    data = secrets.token_bytes(1000)
    sha256 = file_item(pod, data)
    reply = pod.upload(data)
    assert (reply.status_code, reply.json()) == (200, {})
    [item] = pod.search(type="File")
    assert re.fullmatch(r"[0-9a-f]{64}", item["key"]) and re.fullmatch(r"[0-9a-f]{48}", item["nonce"])
    reply = pod.post("get_file", {"sha256": sha256})
    assert (reply.status_code, reply.content, reply.headers["content-type"]) == (200, data, "application/octet-stream")
    assert_failure(pod.upload(data), 409, "already stored")


def test_47_upload_refusals(pod):
    data = b"some bytes"
    file_item(pod, data)
    assert_failure(pod.upload(data, sha256=hashlib.sha256(b"other").hexdigest()), 400, "does not match")
    assert_failure(pod.upload(b"no item", sha256=hashlib.sha256(b"no item").hexdigest()), 404, "create the File item first")
    # Wrong key in the path: the reference answers 500 [F]; we answer 401 (documented deviation).
    assert_failure(pod.upload(data, key=secrets.token_hex(32)), 401, "wrong database key")
    # Not hexadecimal: the reference answers 500 [F]; we answer 400 (documented deviation).
    assert_failure(pod.upload(data, sha256="z" * 64), 400, "sha256 must be 64 hexadecimal")
    assert "key" not in pod.search(type="File")[0]


def test_48_upload_file_b(pod):
    data = secrets.token_bytes(100)
    sha256 = file_item(pod, data)
    reply = pod.upload_b(data, pod.auth)
    assert (reply.status_code, reply.json()) == (200, {})
    assert pod.post("get_file", {"sha256": sha256}).content == data
    assert_failure(pod.upload_b(data, pod.auth), 409, "already stored")


def test_49_get_file_never_uploaded(pod):
    # The reference answers 500 for bytes not on disk; the documentation (and we) answer 404.
    assert_failure(pod.post("get_file", {"sha256": hashlib.sha256(b"never").hexdigest()}), 404, "no file")
    sha256 = file_item(pod, b"never uploaded")
    assert_failure(pod.post("get_file", {"sha256": sha256}), 404, "no file")


def test_50_blob_on_disk_is_encrypted(pod, pod_server):
    data = b"plain text that must not be on disk " * 10
    sha256 = file_item(pod, data)
    assert pod.upload(data).status_code == 200
    blob = (pod_server.data_dir / "files" / pod.owner / "final" / sha256).read_bytes()
    assert len(blob) == len(data) + 17 and blob != data and b"plain text" not in blob  # one sealed chunk


# ---------------------------------------------------------------------------------------------- Plugins and email

def test_51_plugin_run_refusals(pod, launcher):
    launched = len(launcher.launches)
    assert_failure(pod.post("create_item", plugin_run(target="missing-1")), 400, "is not an item")
    assert pod.search(type="PluginRun") == [] and len(launcher.launches) == launched


@pytest.mark.parametrize("image", ["none", "", None])
def test_51_plugin_run_not_started(pod, launcher, image):
    "§7.1 (amended): a PluginRun whose containerImage is 'none', empty or absent is stored, never launched, target unchecked."
    launched = len(launcher.launches)
    run = {**plugin_run("run-000002", target="missing-1"), "containerImage": image}
    if image is None: del run["containerImage"]
    assert pod.call("create_item", run) == "run-000002"
    assert pod.call("bulk", {"createItems": [{**run, "id": "run-000003"}]})["createItems"] == ["run-000003"]
    assert len(pod.search(type="PluginRun")) == 2 and len(launcher.launches) == launched


@pytest.mark.parametrize("later", [{"updateItems": [{"id": "run-000001", "targetItemId": "missing-1"}]},
                                   {"updateItems": [{"id": "run-000001", "targetItemId": None}]}])
def test_51_plugin_run_spoiled_later_in_the_bulk(pod, launcher, later):
    # The reference launches right after creating the run, so it would start the plugin and then answer 200; we
    # read what to launch when the request ends, so a run with an image must still name an existing target.
    launched = len(launcher.launches)
    assert_failure(pod.post("bulk", {"createItems": [plugin_run("run-000001")], **later}), 400, "PluginRun run-000001")
    assert pod.call("get_item", "run-000001") == [] and len(launcher.launches) == launched


RECORD_ENVIRONMENT = """
import json, os, time, urllib.request
names = ("POD_FULL_ADDRESS", "POD_TARGET_ITEM", "POD_PLUGINRUN_ID", "POD_OWNER", "POD_AUTH_JSON", "EMAIL_SMTP_PASSWORD")
record = {name: os.environ.get(name) for name in names}
with urllib.request.urlopen(record["POD_FULL_ADDRESS"] + "/version", timeout=10) as reply:
    record["version_status"] = reply.status
with open(RECORD + ".part", "w") as file: json.dump(record, file)
os.rename(RECORD + ".part", RECORD)
time.sleep(60)  # a plugin at work: its token works while it runs, and the Pod stops it when the Pod stops
"""


def run_recording_plugin(tmp_path, start_server, http) -> tuple:
    "`(server, caller, environment)`: a Pod that ran a real plugin process, and what that process saw."
    record = tmp_path / "environment.json"
    script = tmp_path / "plugin.py"
    script.write_text(f"RECORD = {str(record)!r}\n" + RECORD_ENVIRONMENT)
    launcher = ProcessLauncher(tmp_path / "logs", command=[sys.executable, str(script)])
    server = start_server(tmp_path / "data", launcher=launcher)
    caller = PodCaller(server.url, http=http)
    run = plugin_run()
    assert caller.call("bulk", {"createItems": [run]})["createItems"] == [run["id"]]
    deadline = time.monotonic() + 30
    while not record.exists():
        assert time.monotonic() < deadline, f"the plugin wrote nothing; its log: {list((tmp_path / 'logs').rglob('*.log'))}"
        time.sleep(0.05)
    return server, caller, {**json.loads(record.read_text()), "run_id": run["id"]}


def test_52_plugin_process_environment(tmp_path, start_server, http, monkeypatch):
    monkeypatch.setenv("EMAIL_SMTP_PASSWORD", "the Pod's own secret")
    server, caller, environment = run_recording_plugin(tmp_path, start_server, http)
    assert environment["EMAIL_SMTP_PASSWORD"] is None  # the plugin gets the Pod's environment, less its secrets
    run_id = environment["run_id"]
    assert (environment["POD_PLUGINRUN_ID"], environment["POD_OWNER"]) == (run_id, caller.owner)
    target = json.loads(environment["POD_TARGET_ITEM"])
    assert (target["id"], target["type"], target["targetItemId"]) == (run_id, "PluginRun", run_id)
    assert environment["POD_FULL_ADDRESS"] == server.url and environment["version_status"] == 200
    token = json.loads(environment["POD_AUTH_JSON"])
    assert list(token) == ["data"] and sorted(token["data"]) == ["encryptedPermissions", "nonce"]
    assert re.fullmatch(r"[0-9a-f]{48}", token["data"]["nonce"])
    assert re.fullmatch(r"[0-9a-f]{96}", token["data"]["encryptedPermissions"])


def test_53_plugin_auth_works_until_restart(tmp_path, start_server, http):
    server, caller, environment = run_recording_plugin(tmp_path, start_server, http)
    plugin_auth = {"type": "PluginAuth", **json.loads(environment["POD_AUTH_JSON"])}
    run_id = environment["run_id"]
    assert caller.call("search", {"id": run_id}, auth=plugin_auth)[0]["type"] == "PluginRun"
    data = b"uploaded by a plugin"
    caller.create(type="File", sha256=hashlib.sha256(data).hexdigest())
    assert caller.upload_b(data, plugin_auth).status_code == 200
    caller.declare("PluginRun/status/Text")
    assert caller.call("update_item", {"id": run_id, "status": "started"}, auth=plugin_auth) == {}
    server.stop()
    restarted = start_server(server.data_dir)
    again = PodCaller(restarted.url, caller.owner, caller.key, http)
    # After a restart the token no longer opens: the reference answers 500 [F]; we answer 401 (documented deviation).
    assert_failure(again.post("search", {}, auth=plugin_auth), 401, "not valid here")
    assert again.get(run_id)["status"] == "aborted"  # the Pod stopped its plugin when it stopped (§12.2)


def test_54_send_email_without_smtp(pod, caplog):
    with caplog.at_level(logging.INFO, logger="pymemri.pod"):
        assert pod.call("send_email", {"to": "a@b.c", "subject": "s", "body": "secret body"}) == {}
    assert any("a@b.c" in record.getMessage() for record in caplog.records)
    assert not any("secret body" in record.getMessage() for record in caplog.records)
    assert_failure(pod.post("send_email", {"subject": "s", "body": "b"}), 400, "send_email takes")


def test_54_send_email_through_a_relay(start_server, smtp_relay):
    smtp = {"smtp_relay": "localhost", "smtp_port": smtp_relay.port, "smtp_user": "pod@example.org", "smtp_password": "relay password"}
    pod = PodCaller(start_server(**smtp, smtp_cafile=str(smtp_relay.certificate)).url)
    assert pod.call("send_email", {"to": "owner@example.org", "subject": "done", "body": "Your import finished."}) == {}
    assert smtp_relay.logins == [[b"pod@example.org", b"relay password"]]
    [message] = smtp_relay.messages
    assert "From: Memri plugin <pod@example.org>" in message and "To: owner@example.org" in message
    assert "Subject: Memri plugin message: done" in message
    assert "Please do not reply." in message and message.rstrip().endswith("Your import finished.")
    assert_failure(pod.post("send_email", {"to": "owner@example.org", "subject": "a\nBcc: x@y.z", "body": "b"}),
                   400, "line")
    # A relay whose certificate the Pod can't verify never sees the password.
    untrusting = PodCaller(start_server(**smtp).url)
    assert_failure(untrusting.post("send_email", {"to": "owner@example.org", "subject": "s", "body": "b"}), 400, "SSL")
    assert len(smtp_relay.logins) == 1 and len(smtp_relay.messages) == 1


# ---------------------------------------------------------------------------------------------- pymemri 2022-08 (§10)

def test_55_item_edge_schema(pod):
    edge_schema = {"type": "ItemEdgeSchema", "edgeName": "owner", "sourceType": "Account", "targetType": "Person"}
    first = pod.call("create_item", edge_schema)
    assert HEX32.fullmatch(first) and reply_is_id(pod.post("create_item", edge_schema))
    # The 2022-08 client itself is not installed here; its PodClient() constructor sends one bulk of
    # ItemEdgeSchema items ahead of the property declarations, with the properties new in 2022-08 (§10.5).
    bulk = [edge_schema, {**edge_schema, "edgeName": "account", "sourceType": "PluginRun", "targetType": "Account"},
            *(declaration(item_type, name, value_type) for item_type, name, value_type in [
                ("PluginRun", "isMock", "Bool"), ("PluginRun", "webserverPort", "Integer"),
                ("PluginRun", "containerId", "Text"), ("PluginRun", "authImage", "Text"), ("Account", "isMock", "Bool")])]
    assert len(pod.call("bulk", {"createItems": bulk})["createItems"]) == len(bulk)
    assert len(pod.search(type="ItemEdgeSchema")) >= 1
    # Edges never need a declaration (2022-02 clients declare none).
    a, b = pod.create(type="Account"), pod.create(type="Person")
    assert HEX32.fullmatch(pod.call("create_edge", {"_source": a, "_target": b, "_name": "undeclaredEdge"}))


def test_56_graphql(pod, fixed_clock):
    "Top-level order is search's: dateServerModified, ties by insertion; an update moves an item to the end."
    ids = []
    for moment in (3000, 1000, 2000, 2000):
        fixed_clock.set(moment)
        ids.append(pod.create(type="Person"))
    fixed_clock.set(4000)
    pod.call("update_item", {"id": ids[1]})
    fixed_clock.release()
    pod.create(type="Dog")
    expected = ids_of(pod.search(type="Person"))
    assert expected == [ids[2], ids[3], ids[0], ids[1]]
    reply = pod.post("graphql", "query { Person { id } }")
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    data = reply.json()["data"]
    assert ids_of(data) == expected
    assert all(item["type"] == "Person" and type(item["dateCreated"]) is int for item in data)
    assert data[3]["dateServerModified"] == 4000 and data[3]["deleted"] is False
    for text in ("{ Person { id } }", "Person { id }", "query people {\n  Person { id } # all of them\n}"):
        assert pod.call("graphql", text) == {"data": data}
    assert "id" not in pod.call("graphql", "{ Person { dateCreated } }")["data"][0]


@pytest.fixture
def messages(pod):
    "People, their accounts (edge `owner`) and messages sent from the accounts (edge `sender`), as in §10.1."
    pod.declare("Person/displayName/Text", "Account/service/Text", "Message/subject/Text")
    alice, bob = pod.create(type="Person", displayName="Alice"), pod.create(type="Person", displayName="Bob")
    x_alice, mail_alice, x_bob = (pod.create(type="Account", service=service, displayName=f"{service} account")
                                  for service in ("x", "mail", "x"))
    sent = [pod.create(type="Message", subject=subject) for subject in ("hello", "lunch?", "minutes", "unsent")]
    edges = [(x_alice, alice, "owner"), (mail_alice, alice, "owner"), (x_bob, bob, "owner"),
             (sent[0], x_alice, "sender"), (sent[1], mail_alice, "sender"), (sent[2], x_bob, "sender")]
    pod.call("bulk", {"createEdges": [{"_source": source, "_target": target, "_name": name} for source, target, name in edges]})
    return {"alice": alice, "bob": bob, "accounts": [x_alice, mail_alice, x_bob], "messages": sent}


def test_56_graphql_edges(pod, messages):
    query = "query { Message { subject sender { displayName owner { displayName } } } }"
    data = pod.call("graphql", query)["data"]
    # Creating an edge bumps its source's dateServerModified, so the unsent message comes first (search's order).
    assert [message["subject"] for message in data] == ["unsent", "hello", "lunch?", "minutes"] and "id" not in data[0]
    assert [[[owner["displayName"] for owner in account["owner"]] for account in message["sender"]] for message in data] == \
        [[], [["Alice"]], [["Alice"]], [["Bob"]]]
    account = data[1]["sender"][0]
    assert set(account) == {"type", "dateCreated", "dateModified", "dateServerModified", "deleted", "displayName", "owner"}
    assert account["type"] == "Account" and account["owner"][0]["type"] == "Person"
    # Reverse edges, with a filter on the edge's items (§10.1's second example, in the bare form).
    query = 'Person { id ~owner (filter: {service: {eq: "x"}}) { service ~sender { subject } } }'
    data = pod.call("graphql", query)["data"]
    assert [(person["id"], [(account["service"], [message["subject"] for message in account["~sender"]])
                            for account in person["~owner"]]) for person in data] == \
        [(messages["alice"], [("x", ["hello"])]), (messages["bob"], [("x", ["minutes"])])]
    # Edges come in the order they were made; limit applies per item.
    data = pod.call("graphql", "{ Person { ~owner { id } } }")["data"]
    assert [ids_of(person["~owner"]) for person in data] == [messages["accounts"][:2], messages["accounts"][2:]]
    data = pod.call("graphql", "{ Person { ~owner(limit: 1) { id } } }")["data"]
    assert [ids_of(person["~owner"]) for person in data] == [messages["accounts"][:1], messages["accounts"][2:]]


def test_56_graphql_filters(pod, messages, fixed_clock):
    x_accounts = [messages["accounts"][0], messages["accounts"][2]]
    assert ids_of(pod.call("graphql", 'Account(filter: {eq: {service: "x"}}) { id }')["data"]) == x_accounts
    assert ids_of(pod.call("graphql", '{ Account(filter: {service: {eq: "x"}}) { id } }')["data"]) == x_accounts
    assert pod.call("graphql", '{ Account(filter: {service: {eq: "none"}}) { id } }')["data"] == []
    fixed_clock.set(10**13)
    late = pod.create(type="Message", subject="late", dateCreated=10**13)
    fixed_clock.release()
    pod.call("delete_item", messages["messages"][3])
    query = "{ Message(filter: {dateCreated: {gte: %d}}) { id } }"
    assert ids_of(pod.call("graphql", query % 10**13)["data"]) == [late]
    assert ids_of(pod.call("graphql", "{ Message(filter: {dateServerModified: {lt: %d}}, limit: 2) { id } }" % 10**13)["data"]) \
        == messages["messages"][:2]
    assert ids_of(pod.call("graphql", "{ Message(filter: {eq: {deleted: true}}) { id } }")["data"]) == [messages["messages"][3]]
    assert pod.call("graphql", "{ Message(limit: 0) { id } }")["data"] == []


@pytest.mark.parametrize("query, message", [
    ("{ Person { id nickname ~owner { srvice } } }", "unknown fields Person.nickname, Person.~owner.srvice"),
    ("{ Person { id ]", "Syntax Error"),
    ("{ Person { id } Account { id } }", "one item type"),
    ('{ Person(filter: {displayName: {eq: 3}}) { id } }', "'displayName' is Text, got an integer"),
    ('{ Person(filter: {displayName: {gt: "a"}}) { id } }', "gt compares dates and numbers"),
    ("{ Person(filter: {dateCreated: {gte: \"1\"}}) { id } }", "dateCreated must be int"),
    ("{ Person(filter: {zzz: {eq: 1}}) { id } }", "'zzz' is not defined in the schema"),
    ("{ Person(first: 1) { id } }", "not first"),
    ("{ Person(limit: -1) { id } }", "limit must be a non-negative integer"),
    ("{ Person { ~ owner { id } } }", "~ must come right before an edge name"),
    ("query ($n: Int) { Person(limit: $n) { id } }", "not variables"),
    ("", "the query is empty"),
    ("{" * 100, "nests brackets more than"),
])
def test_56_graphql_refusals(pod, messages, query, message):
    assert_failure(pod.post("graphql", query), 400, message)


def test_56_graphql_payload_must_be_a_string(pod):
    assert_failure(pod.post("graphql", {"query": "{ Person { id } }"}), 400, "JSON string")


def test_57_trigger_status(pod):
    assert pod.call("trigger/status", {"item_id": "x", "trigger_id": "y", "status": "OK"}) == {}
    assert_failure(pod.post("trigger/status", {"item_id": "x", "status": "OK"}), 400, "trigger_id")
