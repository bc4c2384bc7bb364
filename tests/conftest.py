"""Fixtures for testing the embedded Pod over HTTP.

`pod_server` is one embedded Pod for the whole session (its clock and launcher are test doubles you
can steer); `pod` is a fresh owner with a fresh key on it for every test. `start_server` starts further
Pods with other settings (an owner list, a shared server, a real plugin process) and stops them after
the test. `PodCaller.post` sends one `{auth, payload}` envelope and returns the `requests.Response`.
`smtp_relay` is a fake SMTP relay over TLS, for `send_email`. `login_world` is a Pod and an OAuth provider to
log in to, for the notebook-login tests. `pod_processes` and `pod_process` start `start_pod` in child processes
(the second with its own HOME and, if asked, a limit on open files).
"""
import base64
import hashlib
import os
import re
import resource
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
import requests

from pymemri.testing.fixtures import RecordingLauncher
from pymemri.testing.forms import LoginWorld
from pymemri.server.serve import PodServer


def now_millis() -> int:
    "The wall clock in integer milliseconds, as the Pod reads it."
    return time.time_ns() // 1_000_000


def free_port() -> int:
    "A TCP port on 127.0.0.1 that nothing listens on right now."
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ControlledClock:
    "A Pod clock for tests: the wall clock, unless `set` to a fixed millisecond."
    def __init__(self): self.fixed = None
    def __call__(self) -> int: return now_millis() if self.fixed is None else self.fixed
    def set(self, millis: int): self.fixed = millis
    def release(self): self.fixed = None



def plugin_run(run_id: str = None, image: str = "test-plugin", target: str = None, **properties) -> dict:
    "A PluginRun item as pymemri creates it: its target is the run itself unless `target` says otherwise."
    run_id = run_id or secrets.token_hex(16)
    return {"type": "PluginRun", "id": run_id, "containerImage": image, "targetItemId": target or run_id, **properties}


class PodCaller:
    "One owner (with one database key) on one Pod: sends envelopes and uploads over HTTP."
    def __init__(self, url: str, owner: str = None, key: str = None, http: requests.Session = None):
        self.url, self.http = url.rstrip("/"), http or requests.Session()
        self.owner = owner or secrets.token_hex(32)
        self.key = key or secrets.token_hex(32)

    def __repr__(self): return f"PodCaller({self.url}, owner {self.owner[:8]}…)"

    @property
    def auth(self) -> dict: return {"type": "ClientAuth", "databaseKey": self.key}

    def with_key(self, key: str) -> "PodCaller":
        "The same owner on the same Pod, with another key."
        return PodCaller(self.url, self.owner, key, self.http)

    def post(self, endpoint: str, payload=None, auth=None, **envelope) -> requests.Response:
        "POST `{auth, payload, **envelope}` to `/v4/<owner>/<endpoint>`."
        body = {"auth": self.auth if auth is None else auth, "payload": payload, **envelope}
        return self.raw(endpoint, orjson.dumps(body))

    def raw(self, endpoint: str, body: bytes, **kwargs) -> requests.Response:
        "POST the bytes `body` to `/v4/<owner>/<endpoint>`, as JSON unless it is an upload (as every pymemri client does)."
        if not endpoint.startswith("upload_file"): kwargs["headers"] = {"Content-Type": "application/json", **kwargs.get("headers", {})}
        return self.http.post(f"{self.url}/v4/{self.owner}/{endpoint}", data=body, timeout=60, **kwargs)

    def call(self, endpoint: str, payload=None, auth=None):
        "The JSON result of a request that must succeed."
        reply = self.post(endpoint, payload, auth)
        assert reply.status_code == 200, f"{endpoint} answered {reply.status_code}: {reply.text[:300]}"
        return reply.json()

    def upload(self, data: bytes, sha256: str = None, key: str = None) -> requests.Response:
        "POST `data` to `upload_file/<key>/<sha256>` (the key travels in the path)."
        sha256 = sha256 or hashlib.sha256(data).hexdigest()
        return self.raw(f"upload_file/{key or self.key}/{sha256}", data)

    def upload_b(self, data: bytes, auth: dict, sha256: str = None) -> requests.Response:
        "POST `data` to `upload_file_b/<percent-encoded auth JSON>/<sha256>`."
        sha256 = sha256 or hashlib.sha256(data).hexdigest()
        return self.raw(f"upload_file_b/{quote(orjson.dumps(auth).decode(), safe='')}/{sha256}", data)

    def declare(self, *declarations: str):
        "Declare properties given as `'Type/name/ValueType'` strings, in one bulk."
        items = [dict(zip(("itemType", "propertyName", "valueType"), text.split("/")), type="ItemPropertySchema")
                 for text in declarations]
        return self.call("bulk", {"createItems": items})["createItems"]

    def create(self, **item) -> str:
        "Create one item; its id."
        return self.call("create_item", item)

    def get(self, item_id: str) -> dict:
        "The item `item_id`, which must exist."
        found = self.call("get_item", item_id)
        assert len(found) == 1, f"no item {item_id}"
        return found[0]

    def search(self, **query) -> list: return self.call("search", query)

    def count(self) -> int:
        "How many items this owner has (of any type, deleted or not)."
        return len(self.call("search", {}))


@pytest.fixture(scope="session")
def http():
    "One HTTP session for the whole run (connection reuse keeps the tests quick)."
    with requests.Session() as session: yield session


@pytest.fixture(scope="session")
def clock():
    "The clock of `pod_server`: real time unless a test sets it (use `fixed_clock`)."
    return ControlledClock()


@pytest.fixture(scope="session")
def launcher():
    "The launcher of `pod_server`: records plugin launches, starts nothing."
    return RecordingLauncher()


@pytest.fixture(scope="session")
def pod_server(tmp_path_factory, clock, launcher):
    "One embedded Pod for the session, with owners ANY, no SMTP, a controlled clock and a recording launcher."
    with PodServer(tmp_path_factory.mktemp("pod"), clock=clock, launcher=launcher) as server: yield server


@pytest.fixture
def pod(pod_server, http) -> PodCaller:
    "A fresh owner with a fresh key on the session's Pod."
    return PodCaller(pod_server.url, http=http)


@pytest.fixture
def fixed_clock(clock):
    "The session Pod's clock, for a test to set; back to real time afterwards."
    yield clock
    clock.release()


@pytest.fixture
def start_server(tmp_path):
    "Start an embedded Pod: `start_server(data_dir=None, **create_app_options)`; all are stopped after the test."
    servers = []
    def start(data_dir: Path = None, **options) -> PodServer:
        server = PodServer(data_dir or tmp_path / f"pod{len(servers)}", **options).start()
        servers.append(server)
        return server
    yield start
    for server in servers: server.stop()


class FakeSmtpRelay:
    "An SMTP relay over TLS on 127.0.0.1 that accepts any login and keeps what it is sent (a test double)."
    def __init__(self, certificate: Path, private_key: Path):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, private_key)
        self.listener = context.wrap_socket(socket.create_server(("127.0.0.1", 0)), server_side=True)
        self.port, self.logins, self.messages = self.listener.getsockname()[1], [], []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try: connection, _ = self.listener.accept()
            except ssl.SSLError: continue  # a client that does not trust the certificate
            except OSError: return  # closed
            with connection, connection.makefile("rb") as lines:
                self._talk(connection, lines)

    def _talk(self, connection, lines):
        say = lambda text: connection.sendall(text.encode() + b"\r\n")
        say("220 fake relay")
        while line := lines.readline().decode().rstrip("\r\n"):
            verb = line.split(" ")[0].upper()
            if verb == "EHLO": say("250-fake relay\r\n250 AUTH PLAIN")
            elif verb == "AUTH":
                self.logins.append(base64.b64decode(line.split(" ")[2]).split(b"\0")[1:])
                say("235 welcome")
            elif verb == "DATA":
                say("354 go on")
                message = b"".join(iter(lambda: lines.readline(), b".\r\n"))
                self.messages.append(message.decode())
                say("250 kept")
            elif verb == "QUIT": return say("221 bye")
            else: say("250 ok")

    def close(self): self.listener.close()


@pytest.fixture
def smtp_relay(tmp_path):
    "A `FakeSmtpRelay` with a self-signed certificate for localhost; the certificate file is `relay.certificate`."
    if shutil.which("openssl") is None: pytest.skip("openssl is needed to make the fake relay's certificate")
    certificate, private_key = tmp_path / "relay.crt", tmp_path / "relay.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(private_key), "-out", str(certificate)], check=True, capture_output=True)
    relay = FakeSmtpRelay(certificate, private_key)
    relay.certificate = certificate
    yield relay
    relay.close()


@pytest.fixture
def login_world(tmp_path):
    "A Pod and an OAuth provider to log in to, for the notebook-login tests (see `pymemri.testing.forms`)."
    with LoginWorld(tmp_path) as world: yield world


def wait_for(condition, timeout: float = 30, what: str = "the condition", interval: float = 0.05):
    "Poll `condition()` until it returns something true; that value. Fails after `timeout` seconds."
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(interval)
    return value


def start_pod_command() -> str:
    "The `start_pod` console script of this Python (else the one on the PATH)."
    command = shutil.which("start_pod", path=str(Path(sys.executable).parent)) or shutil.which("start_pod")
    assert command, "the start_pod console script is not installed (pip install -e .)"
    return command


def wait_until_serving(process: subprocess.Popen, url: str, output, timeout: float = 30):
    "Wait until the `start_pod` `process` answers at `url`; fail at once, with the end of `output()`, if it exits."
    def answers():
        assert process.poll() is None, f"start_pod exited: {output()[-2000:]}"
        try: return requests.get(f"{url}/version", timeout=2).status_code == 200
        except requests.ConnectionError: return False
    wait_for(answers, timeout, "start_pod answering")


def start_pod_process(data_dir: Path, port: int, *options: str) -> subprocess.Popen:
    "The `start_pod` console script on `port`, serving every owner (and given `options`), once it answers."
    process = subprocess.Popen([start_pod_command(), "--port", str(port), "--data_dir", str(data_dir), "--owners", "ANY",
                                "--log_level", "warning", *options],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_until_serving(process, f"http://127.0.0.1:{port}", process.stderr.read)
    return process


@pytest.fixture
def pod_processes():
    "Start `start_pod` processes with `start(data_dir, *options)` -> (process, url); any still running are killed after the test."
    processes = []
    def start(data_dir: Path, *options: str) -> tuple:
        port = free_port()
        processes.append(start_pod_process(data_dir, port, *options))
        return processes[-1], f"http://127.0.0.1:{port}"
    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


class PodProcess:
    "`start_pod` in a child process (own HOME, own limits), stopped at the end of the test."
    def __init__(self, data_dir: Path, home: Path, *flags: str, nofile: int = None):
        self.port, self.home = free_port(), home
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / f"pod-{self.port}.log"
        environment = {**os.environ, "HOME": str(home), "PYMEMRI_HOME": str(home / ".pymemri")}
        limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))) if nofile else None
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([start_pod_command(), "--port", str(self.port), "--data_dir", str(data_dir), *flags],
                                            stdout=log, stderr=subprocess.STDOUT, env=environment, preexec_fn=limit)

    def wait_until_serving(self) -> "PodProcess":
        wait_until_serving(self.process, self.url, self.output)
        return self

    def output(self) -> str: return self.log.read_text(errors="replace")

    def peak_memory(self) -> int:
        "VmHWM of the server process, in bytes."
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024

    def reset_peak_memory(self):
        "Make VmHWM start again from the current resident size."
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try: self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def pod_process(tmp_path):
    "Start `start_pod` processes: `pod_process(data_dir, *flags, home=None, nofile=None)`; stopped after the test."
    processes = []
    def start(data_dir: Path, *flags: str, home: Path = None, nofile: int = None, wait: bool = True) -> PodProcess:
        home = home or tmp_path / f"home{len(processes)}"
        home.mkdir(exist_ok=True)
        processes.append(PodProcess(data_dir, home, *flags, nofile=nofile))
        return processes[-1].wait_until_serving() if wait else processes[-1]
    yield start
    for process in processes: process.stop()
