"""What the benchmarks in tools/ share: a free port, the embedded Pod as a separate process, and its CPU time and memory.

A benchmark measures the Pod in a process of its own, so that the Pod and the load generator do not
share one interpreter, and so that the Pod's memory can be read from /proc.
"""
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests


def free_port() -> int:
    "A TCP port on 127.0.0.1 that nothing listens on right now."
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pod_command(data_dir: Path, port: int, http: str) -> list:
    if http == "auto":
        script = Path(sys.executable).with_name("start_pod")
        return [str(script) if script.exists() else "start_pod", "--port", str(port), "--data_dir", str(data_dir),
                "--log_level", "warning", "--owners", "ANY"]
    code = ("import sys, uvicorn; from pymemri.server.app import create_app; "
            "uvicorn.run(create_app(sys.argv[1], port=int(sys.argv[2])), host='127.0.0.1', "
            "port=int(sys.argv[2]), http=sys.argv[3], log_level='warning', access_log=False)")
    return [sys.executable, "-c", code, str(data_dir), str(port), http]


@contextmanager
def pod_process(data_dir, http: str = "auto", log=subprocess.DEVNULL, env: dict = None):
    """`(url, process)` of an embedded Pod serving `data_dir` in a child process, once it answers; stopped at the end.
    `http` "auto" runs `start_pod`; "h11" or "httptools" runs uvicorn with that HTTP parser."""
    port = free_port()
    process = subprocess.Popen(_pod_command(Path(data_dir), port, http), stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if process.poll() is not None: raise RuntimeError(f"the Pod exited with code {process.returncode}")
            try:
                if requests.get(f"{url}/version", timeout=1).ok: break
            except requests.ConnectionError: pass
            time.sleep(0.1)
        else: raise RuntimeError("the Pod did not answer within 30 s")
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
            try: process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def cpu_seconds(pid: int) -> float:
    "User plus system CPU time of process `pid`, in seconds."
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> dict:
    "VmRSS and VmHWM of process `pid`, in MB."
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {name: int(fields[name].split()[0]) / 1024 for name in ("VmRSS", "VmHWM")}
