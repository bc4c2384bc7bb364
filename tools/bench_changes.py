"""Benchmark the changes feed of the embedded Pod: how fast a held request hears of a change, what idle followers cost,
and how soon `simulate_run_plugin_from_frontend` sees a run end.

Run it from the repository, in the project's environment:

    python tools/bench_changes.py               # full: followers held 60 s (about 3 minutes)
    python tools/bench_changes.py --hold 10     # quick check

It starts the Pod as a separate process (`start_pod`, see benchkit.py), so that its CPU time can be read from /proc and
the load generator does not share its interpreter, and prints one JSON object. Every comparison is between figures
measured in this same run.

Figures:
- `change_to_reply_ms_p50` (and `_p90`, `_max`): from sending an `update_item` to the reply of a `changes` request
  that was held (`wait` 30, following that item's id) before the update was sent; `--changes` times over one
  keep-alive connection each. `write_ms_p50` is the update's own round trip, for comparison. Goal: p50 < 100 ms.
- `idle_cpu_percent`: the Pod process's CPU time (user + system, from /proc) over `--hold` seconds with nothing to
  do, as a share of one core. `followers_cpu_percent`: the same over `--hold` seconds while `--followers` requests
  (`wait` = `--hold`, each on its own connection, sent from one thread) are held and then time out.
  `followers_extra_cpu_points` = their difference, in percentage points of one core. Goal: < 2.
- `run_done_seen_ms` (median of `--runs` runs, and each run in `run_done_seen_runs_ms`): a real
  `simulate_run_plugin_from_frontend` process starts `ExamplePlugin` through the Pod; the figure is from the
  `dateServerModified` the Pod gave the run when the plugin wrote `done` to the moment the CLI printed the
  run's end on stderr. Goal: < 200 ms (polling every 0.1 s, and the 0.25 s listener before it, took up to 250 ms).
"""

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from benchkit import cpu_seconds, pod_process

GOALS = {"change_to_reply_ms_p50": ("<", 100), "followers_extra_cpu_points": ("<", 2), "run_done_seen_ms": ("<", 200)}


class Client:
    "Posts to one owner's endpoints over one keep-alive session."
    def __init__(self, url: str, owner: str, key: str):
        self.url, self.owner, self.session = url, owner, requests.Session()
        self.auth = {"type": "ClientAuth", "databaseKey": key}

    def call(self, endpoint: str, payload):
        reply = self.session.post(f"{self.url}/v4/{self.owner}/{endpoint}", json={"auth": self.auth, "payload": payload},
                                  timeout=90)
        if reply.status_code != 200: raise RuntimeError(f"{endpoint} answered {reply.status_code}: {reply.text[:200]}")
        return reply.json()


def bench_latency(url: str, owner: str, key: str, count: int) -> dict:
    "Milliseconds from sending a write to the reply of a changes request held before it, `count` times."
    writer, follower = Client(url, owner, key), Client(url, owner, key)
    item_id = writer.call("create_item", {"type": "Person"})
    cursor = follower.call("changes", {"since": None, "limit": 10_000})["next"]
    latencies, writes = [], []
    for _ in range(count):
        arrived = {}
        def follow():
            reply = follower.call("changes", {"since": cursor, "ids": [item_id], "wait": 30})
            arrived.update(time=time.perf_counter(), reply=reply)
        thread = threading.Thread(target=follow)
        thread.start()
        time.sleep(0.05)  # the request is held by now
        sent = time.perf_counter()
        writer.call("update_item", {"id": item_id, "dateModified": int(time.time() * 1000)})
        writes.append(time.perf_counter() - sent)
        thread.join(30)
        assert [item["id"] for item in arrived["reply"]["items"]] == [item_id], arrived
        latencies.append(arrived["time"] - sent)
        cursor = arrived["reply"]["next"]
    latencies.sort()
    return {"change_to_reply_ms_p50": round(statistics.median(latencies) * 1000, 2),
            "change_to_reply_ms_p90": round(latencies[int(len(latencies) * 0.9) - 1] * 1000, 2),
            "change_to_reply_ms_max": round(latencies[-1] * 1000, 2),
            "write_ms_p50": round(statistics.median(writes) * 1000, 2), "changes_timed": count}


def held_sockets(url: str, owner: str, key: str, cursor: str, count: int, wait: float) -> list:
    "`count` sockets, each with one `changes` request sent and held."
    body = json.dumps({"auth": {"type": "ClientAuth", "databaseKey": key}, "payload": {"since": cursor, "wait": wait}}).encode()
    host, port = url.removeprefix("http://").split(":")
    request = (b"POST /v4/%s/changes HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
               % (owner.encode(), host.encode(), len(body), body))
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((host, int(port)))
        sock.sendall(request)
        sockets.append(sock)
    return sockets


def bench_followers(url: str, pid: int, owner: str, key: str, followers: int, hold: float) -> dict:
    "CPU share of the Pod idle for `hold` seconds, then while `followers` requests are held for `hold` seconds."
    cursor = Client(url, owner, key).call("changes", {"since": None, "limit": 10_000})["next"]
    time.sleep(1)
    start_cpu, start = cpu_seconds(pid), time.monotonic()
    time.sleep(hold)
    idle = (cpu_seconds(pid) - start_cpu) / (time.monotonic() - start)
    start_cpu, start = cpu_seconds(pid), time.monotonic()
    sockets = held_sockets(url, owner, key, cursor, followers, hold)
    replies = 0
    for sock in sockets:  # each reply comes when its `wait` runs out
        sock.settimeout(hold + 30)
        if b"200 OK" in sock.recv(65536): replies += 1
        sock.close()
    held = (cpu_seconds(pid) - start_cpu) / (time.monotonic() - start)
    assert replies == followers, f"only {replies} of {followers} held requests were answered 200"
    return {"followers": followers, "hold_s": hold, "idle_cpu_percent": round(idle * 100, 3),
            "followers_cpu_percent": round(held * 100, 3), "followers_extra_cpu_points": round((held - idle) * 100, 3)}


def one_run(url: str, owner: str, key: str, home: Path) -> float:
    "Milliseconds from the plugin's `done` (the run's dateServerModified) to the CLI printing the run's end."
    command = [str(Path(sys.executable).with_name("simulate_run_plugin_from_frontend")), "--plugin_path",
               "pymemri.plugin.pluginbase.ExamplePlugin", "--pod_full_address", url, "--owner_key", owner, "--database_key", key]
    env = {**os.environ, "HOME": str(home), "PYMEMRI_HOME": str(home / ".pymemri")}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True, bufsize=1)
    seen, run_id = None, None
    for line in process.stderr:
        if found := re.match(r"Created PluginRun (\w+)", line): run_id = found[1]
        if run_id and f"Run {run_id} is done" in line: seen = time.time()
    if process.wait() != 0 or seen is None: raise RuntimeError(f"simulate_run_plugin_from_frontend failed ({process.returncode})")
    run = Client(url, owner, key).call("get_item", run_id)[0]
    assert run["status"] == "done", run
    return seen * 1000 - run["dateServerModified"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=100, help="writes whose held reply is timed (default 100)")
    parser.add_argument("--followers", type=int, default=100, help="idle followers held at once (default 100)")
    parser.add_argument("--hold", type=float, default=60, help="seconds of each CPU measurement (default 60)")
    parser.add_argument("--runs", type=int, default=5, help="plugin runs through simulate_run_plugin_from_frontend (default 5)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up on `kill` too
    folder = Path(tempfile.mkdtemp(prefix="bench_changes_"))
    owner, key = secrets.token_hex(32), secrets.token_hex(32)
    try:
        with open(folder / "server.log", "wb") as log, pod_process(folder / "pod", log=log) as (url, server):
            try:
                figures = bench_latency(url, owner, key, args.changes)
                figures.update(bench_followers(url, server.pid, secrets.token_hex(32), key, args.followers, args.hold))
                (folder / "home").mkdir()
                runs = [one_run(url, owner, key, folder / "home") for _ in range(args.runs)]
            except BaseException:
                sys.stderr.write((folder / "server.log").read_text()[-3000:])
                raise
        figures.update(run_done_seen_ms=round(statistics.median(runs), 1), run_done_seen_runs_ms=[round(ms, 1) for ms in runs])
        figures["goals"] = {name: figures[name] < limit for name, (_, limit) in GOALS.items()}
        print(json.dumps(figures, indent=1))
    finally: shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
