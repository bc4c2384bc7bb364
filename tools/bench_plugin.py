"""Plugin benchmark: how long the command-line tools take to run the example plugin.

    python tools/bench_plugin.py             # 5 runs of each command
    python tools/bench_plugin.py --runs 3

Prints JSON. Each figure is the median wall time of a whole command, measured in this run, and its
ratio to a bare `python -c "import pymemri"` (the cost of starting Python and importing the package):

- run_plugin: `run_plugin --metadata example_plugin.json`, no Pod running, so the command starts the
  embedded Pod in-process, runs the plugin, and stops the Pod.
- simulate: `simulate_run_plugin_from_frontend --metadata example_plugin.json`, likewise; here the
  Pod starts the plugin as a second process and the command follows the run to its end.
- run_plugin_running_pod / simulate_running_pod: the same against a Pod that is already running
  (`start_pod` in the background), which is what a developer with a Pod open sees.
All commands use a fresh PYMEMRI_HOME, so they touch nothing of yours.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchkit import free_port, pod_process

ROOT = Path(__file__).resolve().parent.parent


def timed(command: list, environment: dict) -> float:
    "Seconds `command` takes; it must succeed."
    start = time.perf_counter()
    subprocess.run(command, env=environment, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def median_time(command: list, environment: dict, runs: int) -> float:
    return statistics.median(timed(command, environment) for _ in range(runs))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of each command (the median is reported)")
    runs = parser.parse_args().runs
    home = tempfile.mkdtemp()
    environment = {**os.environ, "PYMEMRI_HOME": home, "POD_ADDRESS": f"http://127.0.0.1:{free_port()}"}
    metadata = ["--metadata", "example_plugin.json"]
    subprocess.run(["store_keys"], env=environment, check=True, stdout=subprocess.DEVNULL)
    figures = {"import_pymemri_s": median_time(["python", "-c", "import pymemri"], environment, runs),
               "run_plugin_s": median_time(["run_plugin", *metadata], environment, runs),
               "simulate_s": median_time(["simulate_run_plugin_from_frontend", *metadata], environment, runs)}
    with pod_process(f"{home}/running", env=environment) as (url, _):
        with_pod = {**environment, "POD_ADDRESS": url}
        figures["run_plugin_running_pod_s"] = median_time(["run_plugin", *metadata], with_pod, runs)
        figures["simulate_running_pod_s"] = median_time(["simulate_run_plugin_from_frontend", *metadata], with_pod, runs)
    baseline = figures["import_pymemri_s"]
    for name in [key for key in figures if key != "import_pymemri_s"]:
        figures[name.removesuffix("_s") + "_ratio"] = round(figures[name] / baseline, 1)
    print(json.dumps({name: round(value, 3) if name.endswith("_s") else value for name, value in figures.items()}, indent=2))


if __name__ == "__main__":
    main()
