"""Client benchmark: PodClient.bulk_action and search_paginate against the embedded Pod.

    python tools/bench_client.py            # 100,000 Dog items, each with one edge
    python tools/bench_client.py --items 5000   # a quick run

Prints JSON. Everything is measured in this run, against an embedded Pod started as a separate
process (`start_pod`), so the client and the server do not share one interpreter:

- client_items_per_s: Dog objects (4 properties, one edge each) uploaded with PodClient.bulk_action.
- raw_items_per_s: the same items and edges, posted as bulk requests whose JSON was built before the
  clock started, with the same batching; the Pod's own speed, with no client work at all.
- client_ratio_to_raw: client / raw, the share of the Pod's speed the client keeps (goal >= 0.8).
- paginate_items_per_s, paginate_peak_rss_mb: reading every Dog back with search_paginate in a fresh
  process, and that process's peak resident memory (goal < 200 MB).
Each upload goes to a fresh owner, so every run writes into an equally empty database; the upload
figures are the best of two rounds.
"""
import argparse
import inspect
import json
import subprocess
import sys
import tempfile
import time

import orjson
import requests

from pymemri.pod.api import client_auth
from pymemri.pod.client import Dog, PodClient, _batches, _bulk_edges, _bulk_json, _bulk_operations
from pymemri.pod.keys import generate_random_key

from benchkit import pod_process


BULK_BYTES = inspect.signature(PodClient.bulk_action).parameters["max_bytes"].default  # the client's own batching


def make_dogs(count: int) -> list:
    "`count` Dogs, each with a `friend` edge to the one before it (the first to itself)."
    dogs = [Dog(name=f"dog {number}", age=number % 20, bites=number % 3 == 0, weight=5 + number % 40 / 2) for number in range(count)]
    for number, dog in enumerate(dogs): dog.add_edge("friend", dogs[number - 1] if number else dog)
    return dogs


def client_upload(url: str, count: int) -> float:
    "Items per second through PodClient.bulk_action."
    client = PodClient(url)
    client.add_to_schema(Dog)
    dogs = make_dogs(count)
    start = time.perf_counter()
    client.bulk_action(create_items=dogs, show_progress=False)
    return count / (time.perf_counter() - start)


def raw_upload(url: str, count: int) -> float:
    "Items per second for the same bulk requests, built before timing and posted as bytes."
    owner, key = generate_random_key(), generate_random_key()
    PodClient(url, owner, key).add_to_schema(Dog)
    auth = orjson.dumps(client_auth(key))
    dogs = make_dogs(count)
    bodies = [b'{"auth":' + auth + b',"payload":' + _bulk_json(batch) + b"}"
              for batch in _batches(_bulk_operations(dogs, [], [], _bulk_edges(dogs, [], [])), BULK_BYTES)]
    session = requests.Session()
    start = time.perf_counter()
    for body in bodies:
        response = session.post(f"{url}/v4/{owner}/bulk", data=body, headers={"Content-Type": "application/json"})
        response.raise_for_status()
    return count / (time.perf_counter() - start)


PAGINATE = """
import json, sys, time
from pymemri.pod.client import Dog, PodClient
client = PodClient(sys.argv[1], sys.argv[2], sys.argv[3], register_base_schema=False)
start, seen = time.perf_counter(), 0
for page in client.search_paginate(Dog, page_size=1000):
    seen += len(page)
elapsed = time.perf_counter() - start
# VmHWM, not ru_maxrss: on Linux ru_maxrss survives exec and would count the parent's memory too
peak_kb = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
print(json.dumps({"items": seen, "seconds": elapsed, "peak_rss_mb": peak_kb / 1024}))
"""


def paginate(url: str, count: int) -> dict:
    "Read `count` Dogs back page by page in a fresh process; its speed and peak memory."
    client = PodClient(url)
    client.add_to_schema(Dog)
    client.bulk_action(create_items=make_dogs(count), show_progress=False)
    result = subprocess.run([sys.executable, "-c", PAGINATE, url, client.owner_key, client.database_key],
                            capture_output=True, text=True, check=True)
    figures = json.loads(result.stdout)
    assert figures["items"] == count, figures
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000, help="how many Dog items to upload and read")
    count = parser.parse_args().items
    with tempfile.TemporaryDirectory() as data_dir, pod_process(data_dir) as (url, _):
        rounds = [(raw_upload(url, count), client_upload(url, count)) for _ in range(2)]
        raw, client = max(r for r, _ in rounds), max(c for _, c in rounds)
        read = paginate(url, count)
    figures = {"items": count, "client_items_per_s": round(client), "raw_items_per_s": round(raw),
               "client_ratio_to_raw": round(client / raw, 3),
               "paginate_items_per_s": round(read["items"] / read["seconds"]), "paginate_peak_rss_mb": round(read["peak_rss_mb"], 1)}
    figures["goals"] = {"client_ratio_to_raw >= 0.8": figures["client_ratio_to_raw"] >= 0.8,
                        "paginate_peak_rss_mb < 200": figures["paginate_peak_rss_mb"] < 200}
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
