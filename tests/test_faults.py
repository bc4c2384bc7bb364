"""The embedded Pod under abuse: fuzzed requests, kill -9 during writes, concurrent writers, refused access.

(a) Every endpoint gets generated garbage: wrong JSON types, odd and huge strings, lone surrogates,
    invalid UTF-8, SQL fragments as names and values, deep nesting. It must never answer 500, must name
    the problem in a `Failure: …` text for every 4xx, and must keep answering.
(b) A `start_pod` process is killed with SIGKILL in the middle of a stream of bulk writes: after a
    restart every acknowledged bulk is there in full, no bulk is there in part, and SQLite finds the
    database intact.
(c) Eight clients write 2,000 items each to one owner at the same time: all 16,000 arrive.
(d) Other owners, wrong keys, PluginAuth tokens from before a restart and uploads with a wrong
    sha256 are refused, and change nothing.
"""
import copy
import hashlib
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
import sqlcipher3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import PodCaller, free_port
from pymemri.testing.fixtures import RecordingLauncher
from pymemri.server.db import cipher_key, normalise_key
from pymemri.server.serve import PodServer

# ---------------------------------------------------------------------------------------------- (a) fuzzing

SQL_FRAGMENTS = ["'; DROP TABLE items; --", "\" OR 1=1 --", "x' UNION SELECT id, 1, 1 FROM items --", "items", "rowid",
                 "name = 'age'", "%", "_", "*", "?", "?1", ":name", "NULL", "value", "strings", "integers",
                 "sqlite_master", ") OR (1=1", "age; PRAGMA key='x'", "1; ATTACH DATABASE '/tmp/x' AS x"]
KEYS = ["type", "id", "_source", "_target", "_name", "_self", "item", "direction", "expandItems", "sha256", "to",
        "subject", "body", "item_id", "trigger_id", "status", "createItems", "updateItems", "deleteItems",
        "createEdges", "search", "_limit", "_sortOrder", "[[edges]]", "~[[edges]]", "deleted", "dateCreated",
        "dateModified", "dateServerModified", "dateServerModified>=", "dateServerModified<", "itemType",
        "propertyName", "valueType", "containerImage", "targetItemId", "age", "nick", "rowid", "key", "nonce"]
KNOWN_IDS = ["fuzz-item-1", "fuzz-item-2", "fuzz-file-1"]
KNOWN_STRINGS = [*KNOWN_IDS, "Person", "Edge", "File", "PluginRun", "ItemPropertySchema", "ItemEdgeSchema",
                 "Outgoing", "Incoming", "Asc", "Desc", "Text", "Integer", "Real", "Bool", "DateTime", "a@b.c"]

lone_surrogates = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3)
huge_strings = st.builds(lambda text, times: text * times, st.text(min_size=1, max_size=3), st.integers(1_000, 300_000))
short_strings = st.one_of(st.text(max_size=40), st.sampled_from(SQL_FRAGMENTS + KNOWN_STRINGS), lone_surrogates,
                          st.text(st.characters(codec="utf-8"), max_size=20).map(lambda text: text + "\x00\u202e\ufeff"))
odd_strings = st.one_of(short_strings, huge_strings)
numbers = st.one_of(st.integers(-2**63 - 5, 2**64 + 5), st.integers(-2**200, 2**200),
                    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([2**31, 2**63 - 1, 2**63, -2**63]))
scalars = st.one_of(st.none(), st.booleans(), numbers, odd_strings)
names = st.one_of(st.sampled_from(KEYS), st.sampled_from(SQL_FRAGMENTS), st.text(max_size=40), lone_surrogates)
json_values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(names, children, max_size=4)), max_leaves=12)
# Objects shaped like the endpoints' payloads, so that the checks past the first one get exercised too.
shaped = st.recursive(st.dictionaries(names, scalars, max_size=6), lambda children: st.dictionaries(
    names, st.one_of(scalars, children, st.lists(children, max_size=3)), max_size=6), max_leaves=10)
payloads = st.one_of(json_values, shaped, st.lists(shaped, max_size=3))
BOUNDARY_VALUES = [None, True, False, 0, -1, 1, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, -2**63, -2**63 - 1,
                   2**64 - 1, 2**64, 10**30, 0.5, 1.5, -0.0, 1e308, 5e-324, "", "0", "x" * 100_000, "\ud800", "\x00",
                   SQL_FRAGMENTS[0], [], {}, [None], {"": None}]
values = st.one_of(st.sampled_from(BOUNDARY_VALUES), scalars, json_values)

SHA_X = hashlib.sha256(b"x").hexdigest()
ITEM_TEMPLATES = [{"type": "Person", "age": 3, "nick": "x"}, {"type": "Person", "id": "fuzz-new-1", "dateCreated": 5},
                  {"type": "ItemPropertySchema", "itemType": "Person", "propertyName": "fuzzed", "valueType": "Text"},
                  {"type": "PluginRun", "containerImage": "test-plugin", "targetItemId": "fuzz-item-1"},
                  {"type": "File", "sha256": SHA_X}, {"type": "ItemEdgeSchema", "edgeName": "e", "sourceType": "A", "targetType": "B"}]
UPDATE = {"id": "fuzz-item-1", "age": 4, "nick": "y", "deleted": False, "dateModified": 5}
QUERY = {"type": "Person", "age": 1, "_limit": 5, "_sortOrder": "Asc", "[[edges]]": {}, "~[[edges]]": {}, "deleted": False,
         "dateServerModified>=": 0, "dateServerModified<": 2**40, "id": "fuzz-item-1", "nick": "two"}
EDGE = {"_source": "fuzz-item-1", "_target": "fuzz-item-2", "_name": "f"}
TEMPLATES = {  # valid payloads of each endpoint, for the fuzzer to spoil
    "create_item": ITEM_TEMPLATES, "update_item": [UPDATE], "get_item": ["fuzz-item-1"], "delete_item": ["fuzz-item-2"],
    "search": [QUERY, {}], "get_edges": [{"item": "fuzz-item-1", "direction": "Outgoing", "expandItems": True}],
    "create_edge": [EDGE, {**EDGE, "_self": "fuzz-item-2"}], "get_file": [{"sha256": SHA_X}],
    "bulk": [{"createItems": ITEM_TEMPLATES[:3], "updateItems": [UPDATE], "deleteItems": ["fuzz-item-2"],
              "createEdges": [EDGE], "search": [QUERY, {}]}],
    "send_email": [{"to": "a@b.c", "subject": "s", "body": "b"}],
    "trigger/status": [{"item_id": "fuzz-item-1", "trigger_id": "t", "status": "OK"}],
    "graphql": ["query { Person { id age nick } }", '{ Person(filter: {dateCreated: {gte: 0}, eq: {nick: "two"}}) { id } }',
                'Person(filter: {age: {lt: 5}}, limit: 5) { id f(limit: 1) { nick } ~f(filter: {eq: {nick: "two"}}) { id } }']}


def objects_in(value) -> list:
    "Every JSON object in `value`, itself included."
    if type(value) is dict: return [value, *(inner for item in value.values() for inner in objects_in(item))]
    if type(value) is list: return [inner for item in value for inner in objects_in(item)]
    return []


@st.composite
def spoiled(draw, endpoint: str):
    "A valid payload of `endpoint` with one to three of its values replaced, keys removed or keys added."
    payload = copy.deepcopy(draw(st.sampled_from(TEMPLATES[endpoint])))
    for _ in range(draw(st.integers(1, 3))):
        objects = objects_in(payload)
        if not objects: return draw(values)
        target = draw(st.sampled_from(objects))
        key = draw(st.sampled_from(sorted(target) or KEYS) if draw(st.integers(0, 3)) else names)
        if key in target and draw(st.booleans()): del target[key]
        else: target[key] = draw(values)
    return payload


def deep(depth: int) -> bytes:
    "JSON text nested `depth` levels deep, alternating objects and arrays."
    opening, closing = b'{"search": [' * (depth // 2) + b"[" * (depth % 2), b"]" * (depth % 2) + b"]}" * (depth // 2)
    return opening + b'"bottom"' + closing


def to_json(value) -> bytes:
    "`value` as JSON text, with lone surrogates as `\\udxxx` escapes and integers of any size."
    return json.dumps(value).encode()


def check_reply(reply: requests.Response):
    "The Pod answered as it must: never 5xx, and every refusal names its problem in a `Failure: …` text."
    assert reply.status_code < 500, f"{reply.status_code}: {reply.text[:300]}"
    if reply.status_code == 200: return
    assert 400 <= reply.status_code < 500, reply.status_code
    if reply.text == "Endpoint not found": return  # a path no route matches, as the reference answers
    assert reply.headers["content-type"].startswith("text/plain"), reply.headers["content-type"]
    assert reply.text.startswith("Failure: "), reply.text[:300]
    message = reply.text[len("Failure: "):]
    assert len(message) >= 10 and "internal error" not in message, message


@pytest.fixture(scope="module")
def fuzz_pod(tmp_path_factory):
    "A Pod and an owner with `age` and `nick` declared, two items, and a File item."
    with PodServer(tmp_path_factory.mktemp("fuzz"), launcher=RecordingLauncher()) as server, requests.Session() as http:
        pod = PodCaller(server.url, http=http)
        pod.declare("Person/age/Integer", "Person/nick/Text")
        pod.call("bulk", {"createItems": [{"type": "Person", "id": "fuzz-item-1", "age": 1},
                                          {"type": "Person", "id": "fuzz-item-2", "nick": "two"},
                                          {"type": "File", "id": "fuzz-file-1", "sha256": hashlib.sha256(b"x").hexdigest()}]})
        yield pod
        assert http.get(f"{server.url}/version").status_code == 200
        assert pod.call("get_item", "fuzz-item-1")[0]["type"] == "Person"


JSON_ENDPOINTS = ["create_item", "get_item", "update_item", "delete_item", "search", "get_edges", "create_edge", "bulk",
                  "get_file", "send_email", "trigger/status", "graphql"]
FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])


@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS)
def test_fuzz_payloads(fuzz_pod, endpoint):
    "Valid payloads spoiled in one to three places, and arbitrary JSON."
    @FUZZ
    @given(payload=st.one_of(spoiled(endpoint), spoiled(endpoint), payloads))
    def fuzz(payload):
        check_reply(fuzz_pod.raw(endpoint, to_json({"auth": fuzz_pod.auth, "payload": payload})))
    fuzz()
    assert fuzz_pod.post("search", {"id": "fuzz-item-1"}).status_code == 200


@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS)
def test_boundary_sweep(fuzz_pod, endpoint):
    "Every value of every valid payload, in turn replaced by each boundary value, or removed; and one undeclared key added."
    for template in TEMPLATES[endpoint]:
        spoilt = [value for value in BOUNDARY_VALUES] if not objects_in(template) else []
        for index, target in enumerate(objects_in(template)):
            for key in [*target, SQL_FRAGMENTS[1]]:
                for value in [*BOUNDARY_VALUES, "removed"]:
                    payload = copy.deepcopy(template)
                    spot = objects_in(payload)[index]
                    if value == "removed": spot.pop(key, None)
                    else: spot[key] = value
                    spoilt.append(payload)
        for payload in spoilt:
            check_reply(fuzz_pod.raw(endpoint, to_json({"auth": fuzz_pod.auth, "payload": payload})))


@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS)
def test_fuzz_envelopes(fuzz_pod, endpoint):
    "Bodies that are not envelopes, envelopes with odd auth, and raw bytes (invalid UTF-8 among them)."
    hex_text = lambda size: st.text("0123456789abcdefABCDEFg", min_size=size - 1, max_size=size + 1)
    tokens = st.fixed_dictionaries({}, optional={"nonce": st.one_of(hex_text(48), json_values),
                                                 "encryptedPermissions": st.one_of(hex_text(96), st.just(""), json_values)})
    auths = st.one_of(json_values, st.fixed_dictionaries({"type": st.sampled_from(["ClientAuth", "PluginAuth"])},
                                                         optional={"databaseKey": json_values, "data": json_values}),
                      st.fixed_dictionaries({"type": st.just("PluginAuth"), "data": tokens}))
    bodies = st.one_of(
        st.builds(lambda auth, payload: to_json({"auth": auth, "payload": payload}), auths, payloads),
        st.builds(to_json, json_values), st.binary(max_size=200),
        st.builds(lambda junk: b'{"auth": {"type": "ClientAuth", "databaseKey": "' + fuzz_pod.key.encode() +
                  b'"}, "payload": {"type": "' + junk + b'"}}', st.binary(min_size=1, max_size=20)),
        st.sampled_from([b"", b"null", b"{}", b"[]", b'{"auth": null, "payload": null}', b"\xff\xfe\x00",
                         b'{"auth": {"type": "ClientAuth", "databaseKey": "\\ud800"}, "payload": {}}', b"NaN", b"1e999"]))

    @FUZZ
    @given(body=bodies)
    def fuzz(body):
        check_reply(fuzz_pod.raw(endpoint, body))
    fuzz()


GRAPHQL_TOKENS = ["{", "}", "(", ")", "[", "]", ":", ",", "~", "...", "@skip", "$x", "#", "\n", "query", "mutation", "fragment",
                  "on", "Person", "Edge", "id", "age", "nick", "f", "~f", "~age", "filter", "limit", "eq", "gt", "gte", "lt",
                  "lte", "dateCreated", "dateServerModified", "deleted", "type", "_limit", '"two"', '"', '"""', '"\\u0000"',
                  "1", "-1", "0", "1.5", "1e999", "9" * 40, "9" * 5000, "true", "null", "ENUM", "\\", "\u00e9", "\x00", "\ufeff"]


@st.composite
def graphql_texts(draw):
    "A valid query of the fuzz owner's, with one to four tokens put in or stretches taken out."
    text = draw(st.sampled_from(TEMPLATES["graphql"]))
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text)))
        if draw(st.booleans()): text = text[:start] + draw(st.sampled_from(GRAPHQL_TOKENS)) + text[start:]
        else: text = text[:start] + text[start + draw(st.integers(1, 8)):]
    return text


# Well-formed queries with odd names, filters and values, to reach the checks past the parser.
graphql_names = st.sampled_from(["id", "age", "nick", "f", "~f", "type", "deleted", "dateCreated", "dateServerModified",
                                 "eq", "gt", "gte", "lt", "lte", "zzz", "_limit", "Person"])
graphql_scalars = st.one_of(st.none(), st.booleans(), numbers.filter(lambda number: abs(number) < 1e300), st.text(max_size=10),
                            st.sampled_from(["two", 1, 0])).map(json.dumps)
graphql_literals = st.recursive(graphql_scalars, lambda children: st.one_of(
    st.lists(children, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
    st.dictionaries(graphql_names, children, max_size=3).map(
        lambda fields: "{" + ", ".join(f"{name}: {value}" for name, value in fields.items()) + "}")), max_leaves=8)
graphql_tests = st.sampled_from(["eq", "eq", "gt", "gte", "lt", "lte", "age", "nick", "dateCreated", "zzz"])
graphql_filters = st.dictionaries(graphql_names, st.one_of(st.dictionaries(graphql_tests, graphql_scalars, min_size=1, max_size=2).map(
    lambda tests: "{" + ", ".join(f"{name}: {value}" for name, value in tests.items()) + "}"), graphql_literals), max_size=3).map(
    lambda tests: "{" + ", ".join(f"{name}: {value}" for name, value in tests.items()) + "}")
graphql_arguments = st.fixed_dictionaries({}, optional={"filter": graphql_filters,
                                                        "limit": st.one_of(st.integers(-1, 3).map(str), graphql_scalars)}).map(
    lambda arguments: "(" + ", ".join(f"{name}: {value}" for name, value in arguments.items()) + ")" if arguments else "")
graphql_selections = st.deferred(lambda: st.lists(st.one_of(graphql_names, graphql_names, st.builds(
    "{}{} {{ {} }}".format, st.sampled_from(["f", "~f", "g", "~g", "age"]), graphql_arguments, graphql_selections)),
    min_size=1, max_size=4, unique=True).map(" ".join))
graphql_queries = st.builds("{}{{ {}{} {{ {} }} }}".format, st.sampled_from(["", "query ", "query Q "]),
                            st.sampled_from(["Person"] * 6 + ["Edge", "~f"]), graphql_arguments, graphql_selections)


def test_fuzz_graphql_text(fuzz_pod):
    "Query texts, spoiled queries, random runs of GraphQL tokens and odd well-formed queries: a 200 or a 400 naming the problem."
    @FUZZ
    @given(text=st.one_of(st.text(max_size=200), graphql_texts(), graphql_queries, graphql_queries,
                          st.lists(st.sampled_from(GRAPHQL_TOKENS), max_size=40).map(" ".join)))
    def fuzz(text):
        reply = fuzz_pod.post("graphql", text)
        check_reply(reply)
        assert reply.status_code in (200, 400), reply.status_code
    fuzz()
    for depth in (30, 41, 1000, 100_000):
        for text in ("{ Person " + "{ f " * depth + "{ id }" + " }" * depth + " }", "{ Person(filter: " + "[" * depth + ") { id } }",
                     "Person(filter: {eq: " + "{a: " * depth + "1" + "}" * depth + "}) { id }"):
            check_reply(fuzz_pod.post("graphql", text))


@pytest.mark.parametrize("depth", [100, 900, 1100, 5000])
@pytest.mark.parametrize("endpoint", ["create_item", "search", "bulk", "update_item"])
def test_deep_nesting(fuzz_pod, endpoint, depth):
    auth = to_json(fuzz_pod.auth)
    check_reply(fuzz_pod.raw(endpoint, b'{"auth": ' + auth + b', "payload": ' + deep(depth) + b"}"))
    check_reply(fuzz_pod.raw(endpoint, b'{"auth": ' + auth + b', "payload": {"type": "Person", "nick": ' + deep(depth) + b"}}"))
    check_reply(fuzz_pod.raw(endpoint, b'{"auth": ' + auth + b', "payload": {"createItems": [{"type": "Person", "nick": '
                             + deep(depth) + b"}], \"search\": [{\"nick\": " + deep(depth) + b"}]}}"))


def test_fuzz_uploads(fuzz_pod):
    "Odd keys, auths and hashes in the upload paths, odd bodies, and the wrong sha256."
    segments = st.one_of(short_strings, st.sampled_from([fuzz_pod.key, "0" * 64]))

    @FUZZ
    @given(route=st.sampled_from(["upload_file", "upload_file_b"]), middle=st.one_of(segments, json_values.map(json.dumps)),
           sha256=st.one_of(segments, st.just(hashlib.sha256(b"x").hexdigest())), body=st.binary(max_size=100))
    def fuzz(route, middle, sha256, body):
        path = f"{route}/{quote(middle, safe='', errors='surrogatepass')}/{quote(sha256, safe='', errors='surrogatepass')}"
        check_reply(fuzz_pod.raw(path, body))
    fuzz()
    [file_item] = fuzz_pod.search(id="fuzz-file-1")
    stored = fuzz_pod.post("get_file", {"sha256": file_item["sha256"]})
    assert (stored.status_code, stored.content) == (200, b"x") if "key" in file_item else stored.status_code == 404


def test_fuzz_owner_paths(fuzz_pod):
    @FUZZ
    @given(owner=short_strings.filter(len), endpoint=st.sampled_from(JSON_ENDPOINTS))
    def fuzz(owner, endpoint):
        url = f"{fuzz_pod.url}/v4/{quote(owner, safe='', errors='surrogatepass')}/{endpoint}"
        check_reply(fuzz_pod.http.post(url, data=to_json({"auth": fuzz_pod.auth, "payload": {}}), timeout=60,
                                       headers={"Content-Type": "application/json"}))
    fuzz()


def test_unexpected_error_closes_the_connection(start_server):
    "After an internal error the server drops the connection; the 500 says so, and the client's next request works."
    server = start_server()
    @server.app.post("/v4/{owner}/explode")
    def explode(owner: str): raise RuntimeError("details stay in the server log")
    caller = PodCaller(server.url)
    reply = caller.post("explode", {})
    assert (reply.status_code, reply.text) == (500, "Failure: internal error (RuntimeError)")
    assert reply.headers["connection"] == "close"
    assert caller.post("search", {}).status_code == 200


# ---------------------------------------------------------------------------------------------- (b) kill -9

BULK_SIZE = 200


def row_bulk(batch: int) -> dict:
    "Bulk number `batch`: 200 items whose ids name the batch."
    return {"createItems": [{"type": "Row", "id": f"b{batch:05d}-{index:04d}", "text": f"row {index} " * 20}
                            for index in range(BULK_SIZE)]}


def write_until_refused(caller: PodCaller, first_batch: int, acknowledged: list, refused: list):
    "Send bulks numbered from `first_batch`, noting each acknowledged (or refused) one, until the Pod stops answering."
    batch = first_batch
    with requests.Session() as http:
        while True:
            try: reply = http.post(f"{caller.url}/v4/{caller.owner}/bulk", timeout=30,
                                   data=json.dumps({"auth": caller.auth, "payload": row_bulk(batch)}),
                                   headers={"Content-Type": "application/json"})
            except requests.RequestException: return
            (acknowledged if reply.status_code == 200 else refused).append((batch, reply.status_code))
            batch += 1


def stored_batches(caller: PodCaller) -> dict:
    "Number of stored items of each bulk."
    batches = {}
    for item in caller.search(type="Row"):
        if item["id"].startswith("b"): batches[int(item["id"][1:6])] = batches.get(int(item["id"][1:6]), 0) + 1
    return batches


def integrity_check(data_dir: Path, caller: PodCaller) -> list:
    "SQLite's `PRAGMA integrity_check` of the owner's database file, opened with its key."
    connection = sqlcipher3.connect(str(data_dir / "db" / f"{caller.owner}.p4.4.sqlite"))
    try:
        connection.execute(f"PRAGMA key = \"x'{cipher_key(normalise_key(caller.key))}'\"")
        return connection.execute("PRAGMA integrity_check").fetchall()
    finally: connection.close()


def test_kill_9_during_bulk_writes(tmp_path, pod_processes):
    data_dir = tmp_path / "data"
    process, url = pod_processes(data_dir)
    caller = PodCaller(url)
    caller.declare("Row/text/Text")
    acknowledged, in_flight, next_batch, random_pause = set(), set(), 0, random.Random(4)
    for round_ in range(3):
        writer_acknowledged, refused = [], []
        writer = threading.Thread(target=write_until_refused, args=(caller, next_batch, writer_acknowledged, refused))
        writer.start()
        deadline = time.monotonic() + 60
        while len(writer_acknowledged) < 5 and time.monotonic() < deadline and writer.is_alive(): time.sleep(0.01)
        time.sleep(random_pause.uniform(0, 0.2))  # land somewhere inside a bulk
        os.kill(process.pid, signal.SIGKILL)
        writer.join(30)
        assert process.wait(10) == -signal.SIGKILL and not writer.is_alive()
        assert refused == [] and len(writer_acknowledged) >= 5, (refused, len(writer_acknowledged))
        acknowledged |= {batch for batch, status in writer_acknowledged}
        last = writer_acknowledged[-1][0]
        in_flight.add(last + 1)  # sent, never answered: may be stored, but only in full
        next_batch = last + 2
        process, url = pod_processes(data_dir)
        caller = PodCaller(url, caller.owner, caller.key)
        batches = stored_batches(caller)
        assert all(count == BULK_SIZE for count in batches.values()), f"partial bulks: {batches}"
        assert acknowledged <= set(batches), f"lost acknowledged bulks: {acknowledged - set(batches)}"
        assert set(batches) <= acknowledged | in_flight, f"bulks stored that were never sent: {set(batches) - acknowledged - in_flight}"
        assert integrity_check(data_dir, caller) == [("ok",)]
        assert caller.call("bulk", {"createItems": [{"type": "Row", "id": f"after-kill-{round_}"}]})["createItems"]


CRASHING_POD = """
import os, signal, sys
import uvicorn
import pymemri.server.files as files
from pymemri.server.app import create_app

data_dir, port, moment = sys.argv[1], int(sys.argv[2]), sys.argv[3]
link_blob = files._link_once
def crash_around_the_blob(temporary, path):
    if moment == "before": os.kill(os.getpid(), signal.SIGKILL)
    link_blob(temporary, path)
    os.kill(os.getpid(), signal.SIGKILL)
files._link_once = crash_around_the_blob
uvicorn.run(create_app(data_dir), host="127.0.0.1", port=port, log_level="warning")
"""


@pytest.mark.parametrize("moment", ["before", "after"])
def test_kill_9_during_upload(tmp_path, start_server, moment):
    "A Pod killed just before or just after it writes an uploaded file's bytes: afterwards the owner can read the file."
    script, data_dir, port = tmp_path / "crashing_pod.py", tmp_path / "data", free_port()
    script.write_text(CRASHING_POD)
    process = subprocess.Popen([sys.executable, str(script), str(data_dir), str(port), moment], stderr=subprocess.PIPE)
    try:
        caller = PodCaller(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        while True:
            try:
                caller.http.get(f"{caller.url}/version", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()
                time.sleep(0.05)
        data = secrets.token_bytes(10_000)
        sha256 = hashlib.sha256(data).hexdigest()
        caller.create(type="File", sha256=sha256)
        with pytest.raises(requests.ConnectionError): caller.upload(data)
        assert process.wait(10) == -signal.SIGKILL
    finally:
        if process.poll() is None: process.kill()
    restarted = PodCaller(start_server(data_dir).url, caller.owner, caller.key)
    stored = restarted.post("get_file", {"sha256": sha256})
    if stored.status_code == 404:  # the bytes never arrived: uploading again must work
        assert restarted.upload(data).status_code == 200
        stored = restarted.post("get_file", {"sha256": sha256})
    else: assert_refused(restarted.upload(data), 409)
    assert (stored.status_code, stored.content) == (200, data)


# ---------------------------------------------------------------------------------------------- (c) concurrency

def test_concurrent_writers(tmp_path, pod_processes):
    process, url = pod_processes(tmp_path / "data")
    owner = PodCaller(url)
    owner.declare("Load/client/Integer", "Load/index/Integer")

    def write(client: int) -> list:
        statuses = []
        with requests.Session() as http:
            caller = PodCaller(url, owner.owner, owner.key, http)
            for start in range(0, 2000, 250):
                items = [{"type": "Load", "id": f"c{client}-{index:05d}", "client": client, "index": index}
                         for index in range(start, start + 250)]
                statuses.append(caller.post("bulk", {"createItems": items}).status_code)
        return statuses

    with ThreadPoolExecutor(8) as pool: statuses = [status for result in pool.map(write, range(8)) for status in result]
    assert statuses == [200] * 64
    stored = owner.search(type="Load")
    assert len(stored) == 16_000 == len({item["id"] for item in stored})
    assert {(item["client"], item["index"]) for item in stored} == {(c, i) for c in range(8) for i in range(2000)}
    assert process.poll() is None


# ---------------------------------------------------------------------------------------------- (d) refusals

def assert_refused(reply: requests.Response, status: int):
    assert reply.status_code == status and reply.text.startswith("Failure: "), (reply.status_code, reply.text)


def snapshot(caller: PodCaller, data_dir: Path) -> tuple:
    "What an owner has: every item, and the stored file blobs."
    files = data_dir / "files" / caller.owner / "final"
    blobs = {path.name: path.read_bytes() for path in files.iterdir()} if files.exists() else {}
    return caller.search(), blobs


def attempts(caller: PodCaller, auth: dict, file_key: str) -> list:
    "A write to every endpoint (and reads) with `auth`; the replies."
    data = b"an attacker's bytes"
    return [caller.post("create_item", {"type": "Person"}, auth=auth),
            caller.post("update_item", {"id": "victim-001", "nick": "changed"}, auth=auth),
            caller.post("delete_item", "victim-001", auth=auth),
            caller.post("create_edge", {"_source": "victim-001", "_target": "victim-001", "_name": "x"}, auth=auth),
            caller.post("bulk", {"createItems": [{"type": "Person"}], "deleteItems": ["victim-001"]}, auth=auth),
            caller.post("search", {}, auth=auth), caller.post("get_item", "victim-001", auth=auth),
            caller.post("get_edges", {"item": "victim-001", "direction": "Outgoing", "expandItems": True}, auth=auth),
            caller.post("get_file", {"sha256": hashlib.sha256(b"victim's bytes").hexdigest()}, auth=auth),
            caller.upload(data, key=file_key), caller.upload_b(data, auth)]


def victim(caller: PodCaller):
    "Give `caller` items, an edge and an uploaded file, and a File item waiting for its bytes."
    caller.declare("Person/nick/Text")
    caller.call("bulk", {"createItems": [{"type": "Person", "id": "victim-001", "nick": "v"},
                                         {"type": "File", "sha256": hashlib.sha256(b"victim's bytes").hexdigest()},
                                         {"type": "File", "sha256": hashlib.sha256(b"an attacker's bytes").hexdigest()}],
                         "createEdges": [{"_source": "victim-001", "_target": "victim-001", "_name": "self"}]})
    assert caller.upload(b"victim's bytes").status_code == 200


def test_wrong_keys_change_nothing(start_server, http):
    server = start_server()
    owner = PodCaller(server.url, http=http)
    victim(owner)
    before = snapshot(owner, server.data_dir)
    intruder = owner.with_key(secrets.token_hex(32))
    for reply in attempts(intruder, intruder.auth, intruder.key):
        assert reply.status_code == 401 and reply.text == "Failure: wrong database key for this owner", reply.text
    for key in ("", "not a key!", owner.key + "0"):
        auth = {"type": "ClientAuth", "databaseKey": key}
        assert all(400 <= reply.status_code < 500 for reply in attempts(owner, auth, quote(key, safe="") or "x"))
    assert snapshot(owner, server.data_dir) == before


def test_owners_are_isolated(start_server, http):
    server = start_server()
    alice, bob, carol = (PodCaller(server.url, http=http) for _ in range(3))
    victim(alice)
    before = snapshot(alice, server.data_dir)
    assert len(bob.search()) == 14 and bob.call("get_item", "victim-001") == []
    # Carol with Alice's key is still Carol: a database of her own, and none of Alice's files.
    carol = carol.with_key(alice.key)
    assert len(carol.search()) == 14 and carol.call("get_item", "victim-001") == []
    shared = hashlib.sha256(b"victim's bytes").hexdigest()
    carol.create(type="File", sha256=shared)
    assert_refused(carol.post("get_file", {"sha256": shared}), 404)
    assert carol.upload(b"victim's bytes").status_code == 200  # her own copy, under her own key
    # Alice's key does not open Bob's database, nor Bob's Alice's.
    assert_refused(bob.with_key(alice.key).post("search", {}), 401)
    assert_refused(alice.with_key(bob.key).post("search", {}), 401)
    assert snapshot(alice, server.data_dir) == before
    assert alice.post("get_file", {"sha256": shared}).content == b"victim's bytes"
    assert (server.data_dir / "files" / carol.owner / "final" / shared).read_bytes() != \
           (server.data_dir / "files" / alice.owner / "final" / shared).read_bytes()


def test_plugin_auth_from_before_a_restart_changes_nothing(start_server, http):
    launcher = RecordingLauncher()
    server = start_server(launcher=launcher)
    owner = PodCaller(server.url, http=http)
    victim(owner)
    owner.create(type="PluginRun", id="run-000001", containerImage="test-plugin", targetItemId="run-000001")
    plugin_auth = {"type": "PluginAuth", **launcher.for_run("run-000001").auth_token}
    assert owner.post("search", {"id": "victim-001"}, auth=plugin_auth).status_code == 200
    server.stop()
    restarted = start_server(server.data_dir, launcher=launcher)
    owner = PodCaller(restarted.url, owner.owner, owner.key, http)
    before = snapshot(owner, restarted.data_dir)
    for reply in attempts(owner, plugin_auth, "0" * 64):
        assert reply.status_code == 401, reply.text
        assert "not valid here" in reply.text or reply.text == "Failure: wrong database key for this owner", reply.text
    assert snapshot(owner, restarted.data_dir) == before


def test_uploads_with_wrong_sha256_change_nothing(start_server, http):
    server = start_server()
    owner = PodCaller(server.url, http=http)
    victim(owner)
    before = snapshot(owner, server.data_dir)
    expected = hashlib.sha256(b"an attacker's bytes").hexdigest()
    one_digit_off = expected[:-1] + ("0" if expected[-1] != "0" else "1")
    for data, sha256, status in [(b"other bytes", expected, 400), (b"", expected, 400),
                                 (b"an attacker's bytes", one_digit_off, 400),
                                 (b"an attacker's bytes", expected[:-2], 400),
                                 (b"victim's bytes", hashlib.sha256(b"victim's bytes").hexdigest(), 409)]:
        for reply in (owner.upload(data, sha256=sha256), owner.upload_b(data, owner.auth, sha256=sha256)):
            assert reply.status_code == status and reply.text.startswith("Failure: "), (data, sha256, reply.text)
    assert snapshot(owner, server.data_dir) == before
    assert not [path for path in (server.data_dir / "files" / owner.owner / "final").iterdir() if path.name.startswith(".")]
