"""Benchmark the embedded Pod against its own baselines, all measured in one run on this machine.

Run it from the repository, in the project's environment:

    python tools/bench_pod.py                  # full size: 100,000 Dogs (a few minutes)
    python tools/bench_pod.py --items 5000     # quick check
    python tools/bench_pod.py --http httptools # serve with another uvicorn HTTP parser (needs it installed)
    python tools/bench_pod.py --old-client off # without the 2022 client (whose first run installs it, see below)

It starts the Pod as a separate process (`start_pod`, so the load generator does not share its GIL and
its memory can be read from /proc), drives it over HTTP with `requests`, and prints one JSON object.
Every ratio compares two figures measured in this same run; nothing is compared to a stored number.
Temporary folders and the server process are removed at the end, also on error or Ctrl-C.

Figures:
- `bulk_items_per_s`: Dogs stored per second through `POST /v4/{owner}/bulk`. Each Dog has 4 declared
  properties (name Text, age Integer, weight Real, bites Bool, declared first with ItemPropertySchema items)
  and one edge (`owner` → one Person). Like a client, all Dogs are sent first as `createItems` bulks of
  `--batch` items, then all edges as `createEdges` bulks; the time covers both. Request bodies are encoded
  before the clock starts, so the figure is the server's.
- `raw_one_row_items_per_s`: the engine's figure, the issue's baseline: the same Dogs written with `sqlcipher3`
  `executemany` as one row each in a bare table `items(id, type, properties)` (properties as one JSON object) and one
  row per edge in `edges(source, target, name)`, no index; same raw-key pragma, WAL, `synchronous = FULL` and
  `foreign_keys = ON` as the Pod, one transaction per `--batch` items (and per `--batch` edges). Rows are built before
  the clock starts. It runs once before and once after the Pod's import (`raw_one_row_runs_items_per_s`) and the
  mean is used, so drift cancels out.
- `bulk_ratio_to_raw` = bulk / raw one-row. Goal ≥ 0.5.
- `bulk_server_cpu_s`: the CPU seconds (user and system) the server process spent on that import: on a busy
  machine, where the rate above drifts with the load, the work itself varies far less.
- `raw_items_per_s`: the same Dogs and edges written the same way into the Pod's own tables and indexes
  (`TABLES_SQL`): one row per Dog, and per edge an edge item and an edge row, with their change numbers. It leaves
  out what only the Pod does (schema and id checks, bumping each edge source's dateServerModified). Also run before
  and after (`raw_runs_items_per_s`). `bulk_ratio_to_layout` = bulk / raw layout: how close the Pod comes to its own
  layout's limit.
- `raw_normal_items_per_s`: the raw baseline with `synchronous = NORMAL`, which WAL allows but which may
  lose the last commits on power loss, run right after the first FULL run and right before the last
  (`raw_normal_runs_items_per_s`). `full_cost` = 1 - raw layout (FULL) / raw layout (NORMAL): the share of write
  throughput that durable writes cost on this disk (noise on a busy machine can make it negative).
- `commits_per_s_full`, `commits_per_s_normal`: one-item transactions per second with each setting (the
  worst case for FULL: one sync per commit, as a stream of single `create_item` requests would cause), and
  `commit_full_cost` = 1 - full / normal.
- `get_item_p50_ms`, `version_p50_ms`: median latency of 1,000 keep-alive requests (one `requests.Session`)
  to `get_item` of random Dogs and to `GET /version`, interleaved, after a warm-up. `get_item_ratio` =
  their quotient. Goal ≤ 1.5.
- `search_prop_ms`, `search_id_ms`: median latency of a search for one Dog by its (unique) name, and of
  a search for one Dog by id, over all the items. `search_ratio` = prop / id. Goal ≤ 3.
- `paging_items_per_s`: every Dog read back over HTTP with its edges (`[[edges]]`), `--batch` per page, paged as
  pymemri's client pages (`_limit`, then `dateServerModified>=` one past the last). `raw_read_items_per_s`: the
  same rows read straight from the two raw databases, a page of items and then one query for their edges with
  both end items, without making JSON. `paging_ratio_to_raw_read` = paging / raw read. Goal ≥ 0.5.
- `old_client_paging_items_per_s`: the same paging through the 2022 client, pymemri 0.0.38, as its users page
  (`PodClient.search_paginate` of all Dogs, edges included, into item objects; tools/old_client_paging.py),
  run in a virtual environment of its own made once under ~/.cache/pymemri-bench (its dependencies clash with
  today's). `paging_ratio_to_old_client` = paging / that. Goal ≥ 10. `--old-client off` leaves it out; if the
  environment can't be made, `old_client_error` says why and the ratio to the raw read stands alone.
- `server_rss_mb`: VmRSS of the server process after the import and the reads (`server_peak_rss_mb`: its VmHWM).
  Goal ≤ 250.
- With `--million N` (off by default; N = 1000000 takes about a minute per 40,000 items/s): N more Dogs, each
  with its edge, sent as `--batch` bulks that are made one at a time, so neither side holds them all. Per tenth:
  the rate and both processes' RSS (`million_tenths`). Goals: the last tenth's rate at least 0.8 of the first's
  (`million_rate_last_to_first`), and RSS growing by at most 50 MB on each side from the first tenth to the last.
"""

import argparse
import json
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import requests
import sqlcipher3

from pymemri.server.db import INSERT_ITEM, ITEM_COLUMNS, TABLES_SQL, sql_statements
from pymemri.pod.api import fresh_item_ids

from benchkit import cpu_seconds, memory_mb, pod_process

PROPERTIES = {"name": "Text", "age": "Integer", "weight": "Real", "bites": "Bool"}
OLD_CLIENT = "pymemri==0.0.38"
GOALS = {"bulk_ratio_to_raw": (">=", 0.5), "paging_ratio_to_raw_read": (">=", 0.5), "paging_ratio_to_old_client": (">=", 10.0),
         "get_item_ratio": ("<=", 1.5), "search_ratio": ("<=", 3.0), "server_rss_mb": ("<=", 250.0),
         "million_rate_last_to_first": (">=", 0.8), "million_client_rss_growth_mb": ("<=", 50.0),
         "million_server_rss_growth_mb": ("<=", 50.0)}


def make_dogs(count: int) -> list:
    "`count` Dog items as pymemri's client sends them (ids it made with `fresh_item_ids`)."
    ids = fresh_item_ids(count)
    return [{"id": ids[number], "type": "Dog", "name": f"dog-{number}", "age": number % 20,
             "weight": 5.0 + (number % 500) / 10, "bites": number % 3 == 0} for number in range(count)]


def declarations() -> list:
    "The ItemPropertySchema items declaring the Dogs' properties."
    return [{"type": "ItemPropertySchema", "itemType": "Dog", "propertyName": name, "valueType": value_type}
            for name, value_type in PROPERTIES.items()]


def batches(values: list, size: int):
    for start in range(0, len(values), size): yield values[start:start + size]


# --- raw SQLCipher baseline ----------------------------------------------------------------------

def raw_connect_existing(path: Path, key: str):
    "A SQLCipher connection to the database at `path`, opened with the raw `key`."
    connection = sqlcipher3.connect(str(path), isolation_level=None)
    connection.execute(f"PRAGMA key = \"x'{key}'\"")
    return connection


def raw_connect(path: Path, key: str, synchronous: str = "FULL", tables: str = TABLES_SQL):
    "A SQLCipher connection set up as the Pod sets up its owner databases (`synchronous` FULL, as the Pod)."
    connection = raw_connect_existing(path, key)
    for pragma in ("journal_mode = WAL", f"synchronous = {synchronous}", "foreign_keys = ON"):
        connection.execute(f"PRAGMA {pragma}")
    for statement in sql_statements(tables): connection.execute(statement)
    return connection


def bench_raw(folder: Path, key: str, dogs: list, batch: int, synchronous: str = "FULL") -> float:
    "Items per second for writing `dogs` (one row each, properties as JSON) and their edges, one transaction per batch."
    folder.mkdir()
    connection = raw_connect(folder / "raw.sqlite", key, synchronous)
    now = int(time.time() * 1000)
    connection.execute(INSERT_ITEM, (1, uuid.uuid4().hex, "Person", now, now, now, 0, "{}", 1))
    item_batches, edge_batches, rowid = [], [], 2
    for group in batches(dogs, batch):
        items = []
        for dog in group:
            properties = orjson.dumps({name: dog[name] for name in PROPERTIES}).decode()
            items.append((rowid, dog["id"], "Dog", now, now, now, 0, properties, rowid))  # change number: as the Pod, from Python
            rowid += 1
        item_batches.append(items)
    dog_rowid = 2
    for group in batches(dogs, batch):
        edge_items, edges = [], []
        for edge_id in fresh_item_ids(len(group)):  # ids as the Pod makes them
            edge_items.append((rowid, edge_id, "Edge", now, now, now, 0, "{}", rowid))
            edges.append((rowid, dog_rowid, "owner", 1))
            rowid, dog_rowid = rowid + 1, dog_rowid + 1
        edge_batches.append((edge_items, edges))
    start = time.perf_counter()
    for items in item_batches:
        connection.execute("BEGIN")
        connection.executemany(INSERT_ITEM, items)
        connection.execute("COMMIT")
    for edge_items, edges in edge_batches:
        connection.execute("BEGIN")
        connection.executemany(INSERT_ITEM, edge_items)
        connection.executemany("INSERT INTO edges VALUES (?, ?, ?, ?)", edges)
        connection.execute("COMMIT")
    seconds = time.perf_counter() - start
    connection.close()
    return len(dogs) / seconds


ONE_ROW_SQL = """CREATE TABLE items (id TEXT NOT NULL, type TEXT NOT NULL, properties TEXT NOT NULL);
CREATE TABLE edges (source INTEGER NOT NULL, target INTEGER NOT NULL, name TEXT NOT NULL);
"""


def bench_one_row(folder: Path, key: str, dogs: list, batch: int) -> float:
    "Items per second for writing `dogs` as one bare row each (properties as JSON) and one row per edge, one transaction per batch."
    folder.mkdir()
    connection = raw_connect(folder / "one_row.sqlite", key, tables=ONE_ROW_SQL)
    connection.execute("INSERT INTO items VALUES (?, 'Person', '{}')", (uuid.uuid4().hex,))
    item_batches = [[(dog["id"], "Dog", orjson.dumps({name: dog[name] for name in PROPERTIES}).decode()) for dog in group]
                    for group in batches(dogs, batch)]
    edge_batches = [[(start + offset + 2, 1, "owner") for offset in range(len(group))]
                    for start, group in zip(range(0, len(dogs), batch), batches(dogs, batch))]
    start = time.perf_counter()
    for statement, groups in (("INSERT INTO items VALUES (?, ?, ?)", item_batches), ("INSERT INTO edges VALUES (?, ?, ?)", edge_batches)):
        for rows in groups:
            connection.execute("BEGIN")
            connection.executemany(statement, rows)
            connection.execute("COMMIT")
    seconds = time.perf_counter() - start
    connection.close()
    return len(dogs) / seconds


def bench_raw_read(folder: Path, key: str, page: int) -> float:
    "Items per second for reading the Dogs written by `bench_raw` back with their edges and the items at their ends, `page` at a time."
    connection = raw_connect_existing(folder / "raw.sqlite", key)
    start, count, after = time.perf_counter(), 0, 0
    while True:
        items = connection.execute(f"SELECT {ITEM_COLUMNS} FROM items WHERE type = 'Dog' AND rowid > ? ORDER BY rowid LIMIT ?",
                                   (after, page)).fetchall()
        if not items: break
        connection.execute(f"SELECT e.source, e.name, s.*, o.* FROM edges e JOIN items s ON s.rowid = e.self "
                           f"JOIN items o ON o.rowid = e.target WHERE e.source BETWEEN ? AND ? ORDER BY e.source, e.name",
                           (items[0][0], items[-1][0])).fetchall()
        count, after = count + len(items), items[-1][0]
    seconds = time.perf_counter() - start
    connection.close()
    return count / seconds


def bench_commits(folder: Path, key: str, synchronous: str, count: int = 2000) -> float:
    "Transactions per second when each writes one item: where `synchronous` costs most, one sync per commit."
    folder.mkdir()
    connection = raw_connect(folder / "commits.sqlite", key, synchronous)
    now = int(time.time() * 1000)
    start = time.perf_counter()
    for rowid in range(1, count + 1):
        connection.execute("BEGIN")
        connection.execute(INSERT_ITEM, (rowid, uuid.uuid4().hex, "Dog", now, now, now, 0, "{}", rowid))
        connection.execute("COMMIT")
    seconds = time.perf_counter() - start
    connection.close()
    return count / seconds


# --- the Pod over HTTP ----------------------------------------------------------------------------

class Client:
    "Posts pre-encoded envelopes to one owner over one keep-alive session."
    def __init__(self, url: str, owner: str, key: str):
        self.url, self.owner, self.session = url, owner, requests.Session()
        self.auth = {"type": "ClientAuth", "databaseKey": key}

    def body(self, payload) -> bytes: return orjson.dumps({"auth": self.auth, "payload": payload})

    def post(self, endpoint: str, body: bytes):
        reply = self.session.post(f"{self.url}/v4/{self.owner}/{endpoint}", data=body,
                                  headers={"Content-Type": "application/json"}, timeout=300)
        if reply.status_code != 200: raise RuntimeError(f"{endpoint} answered {reply.status_code}: {reply.text[:200]}")
        return reply

    def call(self, endpoint: str, payload): return self.post(endpoint, self.body(payload)).json()


def timed_ms(call) -> float:
    start = time.perf_counter_ns()
    call()
    return (time.perf_counter_ns() - start) / 1e6


def bench_bulk(client: Client, dogs: list, batch: int) -> float:
    "Items per second for creating `dogs` and then their edges in bulks of `batch`."
    owner_id = uuid.uuid4().hex
    client.call("bulk", {"createItems": declarations() + [{"id": owner_id, "type": "Person"}]})
    item_bodies = [client.body({"createItems": group}) for group in batches(dogs, batch)]
    edge_bodies = [client.body({"createEdges": [{"_source": dog["id"], "_target": owner_id, "_name": "owner"}
                                                for dog in group]}) for group in batches(dogs, batch)]
    start = time.perf_counter()
    for body in item_bodies + edge_bodies: client.post("bulk", body)
    return len(dogs) / (time.perf_counter() - start)


def bench_get_item(client: Client, dogs: list, count: int = 1000) -> tuple:
    "Median ms of `get_item` and of `GET /version`, `count` of each, interleaved."
    bodies = [client.body(random.choice(dogs)["id"]) for _ in range(count)]
    version = f"{client.url}/version"
    for body in bodies[:50]:
        client.post("get_item", body)
        client.session.get(version)
    item_times, version_times = [], []
    for body in bodies:
        item_times.append(timed_ms(lambda: client.post("get_item", body)))
        version_times.append(timed_ms(lambda: client.session.get(version).raise_for_status()))
    assert client.post("get_item", bodies[0]).json()[0]["type"] == "Dog"
    return statistics.median(item_times), statistics.median(version_times)


def bench_search(client: Client, dogs: list, repeats: int = 30) -> tuple:
    "Median ms of a search by a property (name) and of a search by id, each finding one Dog."
    dog = dogs[len(dogs) // 2]
    by_name, by_id = client.body({"name": dog["name"]}), client.body({"id": dog["id"]})
    for body in (by_name, by_id): assert [item["id"] for item in client.post("search", body).json()] == [dog["id"]]
    name_times, id_times = [], []
    for _ in range(repeats):
        name_times.append(timed_ms(lambda: client.post("search", by_name)))
        id_times.append(timed_ms(lambda: client.post("search", by_id)))
    return statistics.median(name_times), statistics.median(id_times)


def bench_paging(client: Client, page: int) -> tuple:
    "Items per second for paging every Dog back with its edges, as pymemri's client pages (`_limit` and `dateServerModified>=`)."
    start, count, since = time.perf_counter(), 0, 0
    while True:
        found = orjson.loads(client.post("search", client.body({"type": "Dog", "_limit": page, "[[edges]]": {},
                                                                  "dateServerModified>=": since})).content)
        if not found: break
        assert all(len(item["[[edges]]"]) == 1 for item in found)
        count, since = count + len(found), found[-1]["dateServerModified"] + 1
    return count / (time.perf_counter() - start), count


def old_client_python() -> Path:
    "The Python of a virtual environment holding the 2022 client, made on first use under the user's cache folder."
    venv = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pymemri-bench" / OLD_CLIENT.replace("==", "-")
    python, installed = venv / "bin" / "python", venv / "installed"
    if installed.exists(): return python
    shutil.rmtree(venv, ignore_errors=True)  # what an interrupted install left
    for command in ([sys.executable, "-m", "venv", str(venv)], [str(python), "-m", "pip", "install", "-q", OLD_CLIENT]):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            raise RuntimeError(f"{' '.join(command[-3:])} failed: {(done.stderr or done.stdout)[-500:]}")
    installed.touch()
    return python


def bench_old_client(python: Path, client: Client, page: int) -> tuple:
    "Items per second for paging every Dog back with its edges through the 2022 client, and how many it read."
    script = Path(__file__).with_name("old_client_paging.py")
    done = subprocess.run([str(python), str(script), client.url, client.owner, client.auth["databaseKey"], str(page)],
                          capture_output=True, text=True, timeout=3600)
    if done.returncode != 0: raise RuntimeError(f"the 2022 client failed: {done.stderr[-2000:]}")
    found = json.loads(done.stdout.splitlines()[-1])
    return found["items_per_s"], found["items"]


def old_client_figures(python, client: Client, page: int, expected: int, paging_per_s: float) -> dict:
    "The 2022 client's paging figures, or why there are none (`python` is then the reason its environment is missing)."
    if not isinstance(python, Path): return {"old_client_error": python}
    old_per_s, paged = bench_old_client(python, client, page)
    assert paged == expected, (paged, expected)
    return {"old_client_paging_items_per_s": round(old_per_s), "paging_ratio_to_old_client": round(paging_per_s / old_per_s, 3)}


def own_rss_mb() -> float: return memory_mb(os.getpid())["VmRSS"]


def bench_million(client: Client, total: int, batch: int, server_pid: int) -> dict:
    "Send `total` Dogs (each with an edge) as bulks of `batch`, each made just before it is sent; rate and memory per tenth."
    owner_id = uuid.uuid4().hex
    client.call("bulk", {"createItems": declarations() + [{"id": owner_id, "type": "Person"}]})
    tenths, sent, start = [], 0, time.perf_counter()
    mark = start
    while sent < total:
        group = make_dogs(min(batch, total - sent))
        edges = [{"_source": dog["id"], "_target": owner_id, "_name": "owner"} for dog in group]
        client.post("bulk", client.body({"createItems": group, "createEdges": edges}))
        sent += len(group)
        if sent * 10 // total > len(tenths):
            now = time.perf_counter()
            done = tenths[-1]["items"] if tenths else 0
            tenths.append({"items": sent, "items_per_s": round((sent - done) / (now - mark)),
                           "client_rss_mb": round(own_rss_mb(), 1), "server_rss_mb": round(memory_mb(server_pid)["VmRSS"], 1)})
            mark = now
    return {"million_items": total, "million_items_per_s": round(total / (time.perf_counter() - start)), "million_tenths": tenths,
            "million_rate_last_to_first": round(tenths[-1]["items_per_s"] / tenths[0]["items_per_s"], 3),
            "million_client_rss_growth_mb": round(tenths[-1]["client_rss_mb"] - tenths[0]["client_rss_mb"], 1),
            "million_server_rss_growth_mb": round(tenths[-1]["server_rss_mb"] - tenths[0]["server_rss_mb"], 1)}


def run(items: int, batch: int, http: str, folder: Path, million: int = 0, old_client: bool = True) -> dict:
    key, owner = secrets.token_hex(32).upper(), secrets.token_hex(32)
    dogs = make_dogs(items)
    try: old_python = old_client_python() if old_client else None
    except (OSError, RuntimeError) as error: old_python = str(error)
    one_row_runs = [bench_one_row(folder / "one-row-before", key, dogs, batch)]
    raw_runs = [bench_raw(folder / "raw-before", key, dogs, batch)]
    normal_runs = [bench_raw(folder / "raw-normal-before", key, dogs, batch, "NORMAL")]
    with open(folder / "server.log", "wb") as log, pod_process(folder / "pod", http, log) as (url, server):
        try:
            client = Client(url, owner, key)
            cpu_before = cpu_seconds(server.pid)
            bulk_per_s = bench_bulk(client, dogs, batch)
            bulk_cpu = cpu_seconds(server.pid) - cpu_before
            memory = memory_mb(server.pid)
            item_ms, version_ms = bench_get_item(client, dogs)
            prop_ms, id_ms = bench_search(client, dogs)
            paging_per_s, paged = bench_paging(client, batch)
            assert paged == len(dogs), (paged, len(dogs))
            old = old_client_figures(old_python, client, batch, len(dogs), paging_per_s) if old_client else {}
            memory = {name: max(memory[name], value) for name, value in memory_mb(server.pid).items()}
            big = bench_million(Client(url, secrets.token_hex(32), key), million, batch, server.pid) if million else {}
        except BaseException:
            sys.stderr.write((folder / "server.log").read_text()[-3000:])
            raise
    normal_runs.append(bench_raw(folder / "raw-normal-after", key, dogs, batch, "NORMAL"))
    raw_runs.append(bench_raw(folder / "raw-after", key, dogs, batch))
    one_row_runs.append(bench_one_row(folder / "one-row-after", key, dogs, batch))
    raw_per_s, normal_per_s, one_row_per_s = (statistics.mean(runs) for runs in (raw_runs, normal_runs, one_row_runs))
    raw_read_per_s = statistics.mean(bench_raw_read(folder / name, key, batch) for name in ("raw-before", "raw-after"))
    commits = {mode: statistics.mean(bench_commits(folder / f"commits-{mode}-{run}", key, mode) for run in range(2))
               for mode in ("FULL", "NORMAL")}
    figures = {"items": items, "batch": batch, "http": http,
               "bulk_items_per_s": round(bulk_per_s), "raw_one_row_items_per_s": round(one_row_per_s),
               "raw_one_row_runs_items_per_s": [round(value) for value in one_row_runs],
               "bulk_ratio_to_raw": round(bulk_per_s / one_row_per_s, 3), "bulk_server_cpu_s": round(bulk_cpu, 2),
               "raw_items_per_s": round(raw_per_s), "raw_runs_items_per_s": [round(value) for value in raw_runs],
               "bulk_ratio_to_layout": round(bulk_per_s / raw_per_s, 3),
               "raw_normal_items_per_s": round(normal_per_s),
               "raw_normal_runs_items_per_s": [round(value) for value in normal_runs],
               "full_cost": round(1 - raw_per_s / normal_per_s, 3),
               "commits_per_s_full": round(commits["FULL"]), "commits_per_s_normal": round(commits["NORMAL"]),
               "commit_full_cost": round(1 - commits["FULL"] / commits["NORMAL"], 3),
               "get_item_p50_ms": round(item_ms, 3), "version_p50_ms": round(version_ms, 3),
               "get_item_ratio": round(item_ms / version_ms, 3),
               "search_prop_ms": round(prop_ms, 3), "search_id_ms": round(id_ms, 3),
               "search_ratio": round(prop_ms / id_ms, 3),
               "paging_items_per_s": round(paging_per_s), "raw_read_items_per_s": round(raw_read_per_s),
               "paging_ratio_to_raw_read": round(paging_per_s / raw_read_per_s, 3), **old,
               "server_rss_mb": round(memory["VmRSS"], 1), "server_peak_rss_mb": round(memory["VmHWM"], 1), **big}
    figures["goals"] = {name: figures[name] >= limit if sign == ">=" else figures[name] <= limit
                        for name, (sign, limit) in GOALS.items() if name in figures}
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000, help="how many Dogs to create (default 100000)")
    parser.add_argument("--batch", type=int, default=1000, help="items (and edges) per bulk request (default 1000)")
    parser.add_argument("--http", default="auto", choices=("auto", "h11", "httptools"),
                        help="auto: the start_pod script as is; else uvicorn with that HTTP parser")
    parser.add_argument("--million", type=int, default=0, metavar="N",
                        help="also send N Dogs (1000000 for the big-data check) in cut bulks, watching rate and memory (off by default)")
    parser.add_argument("--old-client", default="on", choices=("on", "off"),
                        help=f"on: also page through the 2022 client ({OLD_CLIENT}, installed once into ~/.cache/pymemri-bench)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up on `kill` too
    folder = Path(tempfile.mkdtemp(prefix="bench_pod_"))
    try: print(json.dumps(run(args.items, args.batch, args.http, folder, args.million, args.old_client == "on"), indent=1))
    finally: shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
