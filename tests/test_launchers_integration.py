"""Real plugin launches in Docker containers (Kubernetes Jobs are in tests/test_kubernetes.py).

Docker: whenever a Docker daemon answers, a project made by `plugin_from_template` is built into an image
with its own Dockerfile, once for the module, and an embedded Pod with the docker runner runs it: to the
end, aborted half way, and with an image that doesn't exist. The image's base is PYMEMRI_BASE_IMAGE if set;
else, as root on Debian, the image `tools/docker_base_image.sh` makes from Debian packages (kept between runs
under its tag); else python:3.11-slim. pymemri and its requirements go in from wheels made here, so the build
runs with no network. On CI (CI=true) `.ci/run` starts a daemon, and a missing one fails these tests.
"""
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import PodCaller, wait_for
from pymemri.data.schema import Account
from pymemri.plugin.cli import create_run
from pymemri.plugin.template import create_project
from pymemri.pod.client import PodClient
from pymemri.server.launchers import plugin_log_path
from pymemri.testing.notes_service import NotesService

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "DockerCheckPlugin"  # the plugin class of the project "Docker Check"


def on_ci() -> bool: return os.environ.get("CI", "").lower() in ("true", "1")


def docker_daemon():
    "Return if `docker info` reaches a daemon; otherwise skip, or fail on CI."
    if shutil.which("docker") is None: reason = "no `docker` command on PATH"
    else:
        info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=60)
        if info.returncode == 0: return
        reason = f"`docker info` reaches no daemon ({(info.stderr.strip().splitlines() or ['no output'])[-1]})"
    if on_ci(): pytest.fail(f"Docker: {reason}. CI must run the Docker tests: `.ci/run` starts a daemon when none answers")
    pytest.skip(f"Docker: {reason}")


def docker(*args, timeout: float = 120) -> str:
    "The output of `docker ARGS`, which must succeed."
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"docker {' '.join(args)} failed: {done.stderr.strip()[-2000:]}"
    return done.stdout.strip()


def debian_root() -> bool:
    "Whether this machine can make the base image: root on Debian."
    release = Path("/etc/os-release")
    return os.geteuid() == 0 and release.exists() and "ID=debian" in release.read_text().split()


@pytest.fixture(scope="module")
def base_image() -> str:
    "PYMEMRI_BASE_IMAGE; else as root on Debian the image `tools/docker_base_image.sh` makes (once, then kept); else python:3.11-slim."
    docker_daemon()
    if os.environ.get("PYMEMRI_BASE_IMAGE"): return os.environ["PYMEMRI_BASE_IMAGE"]
    if not debian_root(): return "python:3.11-slim"
    made = subprocess.run([str(ROOT / "tools" / "docker_base_image.sh")], capture_output=True, text=True, timeout=1800)
    assert made.returncode == 0, (f"tools/docker_base_image.sh could not make the base image: {made.stderr.strip()[-2000:]}\n"
                                  "Set PYMEMRI_BASE_IMAGE to an image with Python 3.11 and venv to use another.")
    return made.stdout.split()[-1]


def make_wheels(folder: Path, python_version: str):
    "pymemri's wheel and its requirements' wheels for `python_version`, and setuptools to build the plugin, in `folder`."
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(folder), str(ROOT)], check=True, timeout=600)
    subprocess.run([*pip, "download", "--quiet", "--only-binary=:all:", "--python-version", python_version, "--dest", str(folder),
                    *map(str, folder.glob("pymemri-*.whl")), "setuptools>=64"], check=True, timeout=600)


@pytest.fixture(scope="module")
def plugin_image(base_image, tmp_path_factory) -> tuple:
    "`(tag, project)`: a template project, built into an image by its own Dockerfile on `base_image`, with no network."
    project = create_project("Docker Check", dest=tmp_path_factory.mktemp("docker"))
    python_version = docker("run", "--rm", "--network=none", base_image,
                            "python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])")
    assert python_version == "3.11", f"the base image {base_image} has Python {python_version}; pymemri needs 3.11"
    make_wheels(project / "wheels", python_version)
    tag = f"pymemri-test-plugin:{secrets.token_hex(4)}"
    docker("build", "--network=none", "--quiet", "--build-arg", f"BASE_IMAGE={base_image}",
           "--build-arg", "PIP_OPTIONS=--no-index --find-links wheels", "--tag", tag, str(project), timeout=1200)
    yield tag, project
    subprocess.run(["docker", "image", "rm", "--force", tag], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def notes_service():
    "The notes service the template's example plugin imports from, on loopback (the plugin's container shares the host's network)."
    with NotesService(n_notes=5000) as service: yield service


def notes_account(server, owner, service: NotesService) -> Account:
    "An Account in the owner's Pod with a token the notes service takes, for the example plugin's runs."
    account = Account(service="notes", identifier="alice", accessToken=service.issue_token())
    return PodClient(server.url, owner.owner, owner.key).create(account)


def docker_pod(start_server, tmp_path) -> tuple:
    "`(server, owner)`: an embedded Pod with the docker runner (local images only), and a new owner on it."
    server = start_server(tmp_path / "data", plugin_runner="docker", docker_pull="never")
    return server, PodCaller(server.url)


def run_from_frontend(server, owner: PodCaller, service: NotesService, plugin_image: tuple, home: Path) -> subprocess.CompletedProcess:
    "`simulate_run_plugin_from_frontend` of the plugin image on `server`, as the app starts it: it imports `service`'s notes."
    image, project = plugin_image
    account = notes_account(server, owner, service)
    (home / "config.json").write_text(json.dumps({"url": service.url, "page_size": 2}))
    command = ["simulate_run_plugin_from_frontend", "--pod_full_address", server.url, "--owner_key", owner.owner,
               "--database_key", owner.key, "--metadata", str(project / "metadata.json"), "--container", image,
               "--config_file", str(home / "config.json"), "--account_id", account.id, "--timeout", "180"]
    return subprocess.run(command, capture_output=True, text=True, timeout=240, env={**os.environ, "HOME": str(home)})


def test_docker_run_end_to_end(plugin_image, start_server, tmp_path):
    server, owner = docker_pod(start_server, tmp_path)
    with NotesService(n_notes=4) as service:
        ran = run_from_frontend(server, owner, service, plugin_image, tmp_path)
        titles = sorted(note["title"] for note in service.notes)
    assert ran.returncode == 0, ran.stderr[-3000:]
    [run] = owner.search(type="PluginRun")
    assert f"Run {run['id']} is done" in ran.stderr and run["status"] == "done"
    assert sorted(note["title"] for note in owner.search(type="Note")) == titles
    log = plugin_log_path(server.data_dir / "logs", owner.owner, run["id"]).read_text()
    assert f"Running docker_check.plugin.{PLUGIN} on the Pod at {server.url}" in log and f"Done: {PLUGIN} finished" in log
    gone = lambda: docker("ps", "--all", "--quiet", "--filter", f"name={run['id']}") == ""
    wait_for(gone, 30, "the container being removed after the run")


def command_lines() -> dict:
    "`{pid: command line}` of every process this user can see."
    found = {}
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try: found[path.parent.name] = path.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError: pass  # ended meanwhile
    return found


def test_docker_run_aborted_with_secrets_off_command_lines(plugin_image, notes_service, start_server, tmp_path):
    image, project = plugin_image
    server, owner = docker_pod(start_server, tmp_path)
    client = PodClient(server.url, owner.owner, owner.key)
    metadata = json.loads((project / "metadata.json").read_text())
    account = notes_account(server, owner, notes_service)
    run_id = create_run(client, metadata, container=image, config={"url": notes_service.url, "page_size": 1}, account_id=account.id).id
    wait_for(lambda: (owner.get(run_id).get("progress") or 0) > 0, 120, "the plugin reporting progress")
    container = docker("ps", "--quiet", "--filter", f"name={run_id}")
    assert container, "no running container for the run"

    environment = dict(line.split("=", 1) for line in json.loads(docker("inspect", "--format", "{{json .Config.Env}}", container)))
    token = json.loads(environment["POD_AUTH_JSON"])["data"]
    assert (environment["POD_OWNER"], environment["POD_PLUGINRUN_ID"]) == (owner.owner, run_id)
    secrets_ = {"owner key": owner.owner, "database key": owner.key, "token nonce": token["nonce"],
                "token permissions": token["encryptedPermissions"]}
    lines = command_lines()
    assert any("docker run" in line and "--env=POD_AUTH_JSON" in line for line in lines.values()), "the launcher's docker run was not seen"
    leaks = [f"{name} in the command line of process {pid}"
             for pid, line in lines.items() for name, value in secrets_.items() if value in line]
    assert leaks == []

    owner.call("update_item", {"id": run_id, "status": "aborted"})
    started = time.monotonic()
    wait_for(lambda: docker("ps", "--all", "--quiet", "--filter", f"id={container}") == "", 15, "the container stopping after the abort")
    assert time.monotonic() - started < 10
    assert owner.get(run_id)["status"] == "aborted"
    log = plugin_log_path(server.data_dir / "logs", owner.owner, run_id).read_text()
    assert f"Aborted: {PLUGIN} stopped because its run was aborted" in log


def test_docker_container_stops_with_its_docker_run(plugin_image, notes_service, start_server, tmp_path):
    image, project = plugin_image
    server, owner = docker_pod(start_server, tmp_path)
    client = PodClient(server.url, owner.owner, owner.key)
    account = notes_account(server, owner, notes_service)
    run_id = create_run(client, json.loads((project / "metadata.json").read_text()), container=image,
                        config={"url": notes_service.url, "page_size": 1}, account_id=account.id).id
    wait_for(lambda: (owner.get(run_id).get("progress") or 0) > 0, 120, "the plugin reporting progress")
    container = docker("ps", "--quiet", "--filter", f"name={run_id}")
    server.app.state.pod.launcher.processes[run_id].kill()  # `docker run` itself dies: the container must not outlive it
    started = time.monotonic()
    wait_for(lambda: docker("ps", "--all", "--quiet", "--filter", f"id={container}") == "", 15, "the container ending with docker run")
    assert time.monotonic() - started < 10
    run = wait_for(lambda: (found := owner.get(run_id))["status"] != "started" and found, 15, "the run's end")
    assert run["status"] == "error" and run["message"].startswith(f"the container of {image} "), run


SLEEPER = ["python3", "-c", "import time; print('working', flush=True); time.sleep(300)"]
QUITTER = ["python3", "-c", "print('leaving without a word')"]


@pytest.fixture(scope="module")
def small_images(base_image) -> dict:
    "Two images that stand in for plugins, on `base_image`: `sleeper` works until stopped, `quitter` exits 0 at once."
    tags = {}
    for name, command in (("sleeper", SLEEPER), ("quitter", QUITTER)):
        tags[name] = f"pymemri-test-{name}:{secrets.token_hex(4)}"
        built = subprocess.run(["docker", "build", "--network=none", "--quiet", "--tag", tags[name], "-"], text=True,
                               input=f"FROM {base_image}\nCMD {json.dumps(command)}\n", capture_output=True, timeout=300)
        assert built.returncode == 0, built.stderr[-2000:]
    yield tags
    subprocess.run(["docker", "image", "rm", "--force", *tags.values()], capture_output=True, timeout=120)


def start_container_run(owner: PodCaller, image: str) -> str:
    "A PluginRun of `image` (the Pod starts a container of it); its id."
    owner.declare("PluginRun/status/Text", "PluginRun/message/Text")
    run_id = secrets.token_hex(16)
    owner.create(type="PluginRun", id=run_id, containerImage=image, targetItemId=run_id)
    return run_id


def container_of(run_id: str, timeout: float = 60) -> str:
    "The id of the running container of run `run_id`, once there is one."
    return wait_for(lambda: docker("ps", "--quiet", "--filter", f"name={run_id}"), timeout, f"a running container for {run_id}")


def token_in(container: str) -> dict:
    environment = dict(line.split("=", 1) for line in json.loads(docker("inspect", "--format", "{{json .Config.Env}}", container)))
    return {"type": "PluginAuth", **json.loads(environment["POD_AUTH_JSON"])}


def test_docker_container_that_exits_without_a_final_status(small_images, start_server, tmp_path):
    server, owner = docker_pod(start_server, tmp_path)
    run_id = start_container_run(owner, small_images["quitter"])
    run = wait_for(lambda: (found := owner.get(run_id)).get("status") == "error" and found, 60, "the run's end")
    assert run["message"] == f"the container of {small_images['quitter']} exited with code 0 without reporting how its run ended"
    assert docker("ps", "--all", "--quiet", "--filter", f"name={run_id}") == ""
    assert server.app.state.pod.runs.live == {}
    log = plugin_log_path(server.data_dir / "logs", owner.owner, run_id).read_text()
    assert "leaving without a word" in log


def test_docker_abort_stops_the_container_and_kills_the_token(small_images, start_server, tmp_path):
    server, owner = docker_pod(start_server, tmp_path)
    run_id = start_container_run(owner, small_images["sleeper"])
    container = container_of(run_id)
    token = token_in(container)
    assert owner.post("search", {"id": run_id}, auth=token).status_code == 200
    owner.call("update_item", {"id": run_id, "status": "aborted"})
    assert owner.post("search", {"id": run_id}, auth=token).status_code == 401
    started = time.monotonic()
    wait_for(lambda: docker("ps", "--all", "--quiet", "--filter", f"id={container}") == "", 20, "the container stopping")
    assert time.monotonic() - started < 15
    wait_for(lambda: server.app.state.pod.launcher.processes == {}, 15, "docker run ending")
    assert owner.get(run_id)["status"] == "aborted"


def test_docker_pod_stop_stops_its_containers(small_images, start_server, tmp_path):
    server, owner = docker_pod(start_server, tmp_path)
    runs = [start_container_run(owner, small_images["sleeper"]) for _ in range(2)]
    containers = [container_of(run_id) for run_id in runs]
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 20
    for container in containers: assert docker("ps", "--all", "--quiet", "--filter", f"id={container}") == ""
    again = PodCaller(start_server(server.data_dir).url, owner.owner, owner.key)
    for run_id in runs: assert (again.get(run_id)["status"], again.get(run_id)["message"]) == ("aborted", "the Pod stopped")


def test_docker_pod_killed_with_9_is_cleaned_up_by_the_next(small_images, pod_processes, tmp_path):
    docker_daemon()
    options = ("--plugin_runner", "docker", "--docker_pull", "never")
    process, url = pod_processes(tmp_path / "data", *options)
    owner = PodCaller(url)
    run_id = start_container_run(owner, small_images["sleeper"])
    container = container_of(run_id)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(10) == -signal.SIGKILL
    assert docker("ps", "--quiet", "--filter", f"id={container}"), "the container should outlive a Pod killed with -9"
    process, url = pod_processes(tmp_path / "data", *options)
    wait_for(lambda: docker("ps", "--all", "--quiet", "--filter", f"id={container}") == "", 30, "the next Pod removing the container")
    run = PodCaller(url, owner.owner, owner.key).get(run_id)
    assert (run["status"], run["message"]) == ("error", "the Pod stopped unexpectedly (killed or crashed) while this run was going")


def test_docker_image_that_does_not_exist(start_server, tmp_path):
    docker_daemon()
    server, owner = docker_pod(start_server, tmp_path)
    owner.declare("PluginRun/status/Text", "PluginRun/message/Text")
    image, run_id = "pymemri-test-no-such-image:404", secrets.token_hex(16)
    reply = owner.post("create_item", {"type": "PluginRun", "id": run_id, "containerImage": image, "targetItemId": run_id})
    assert reply.status_code == 200, reply.text
    run = wait_for(lambda: (found := owner.get(run_id)).get("status") in ("done", "error") and found, 60, "the run ending")
    assert run["status"] == "error"
    assert run["message"] == f"docker could not start a container of {image}: No such image: {image}", run["message"]
    assert str(server.data_dir) not in run["message"] and str(tmp_path) not in run["message"]
