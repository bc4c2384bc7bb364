"""Plugin runs as Kubernetes Jobs, on a real one-node cluster.

`tools/kube_cluster.sh` builds Kubernetes 1.20 from Debian's source package (once per machine) and runs a cluster on
loopback whose kubelet runs pods on this machine's Docker. The `kube` fixture starts it for the session when asked
(CI=true, as `.ci/run` sets, or PYMEMRI_KUBE=1) on Debian as root, and stops it at the end; a cluster started
already is used when PYMEMRI_KUBECONFIG names its kube config (`.ci/run` does that). Elsewhere the tests skip,
saying why.

The plugin is the template project's image, built as the Docker tests build it (tests/test_launchers_integration.py):
the node has it, so the Pod runs with `kubernetes_pull="never"`, and plugins use the node's network
(`kubernetes_host_network`) to reach the Pod and the notes service on loopback.
"""
import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import PodCaller, free_port, start_pod_command, wait_for, wait_until_serving
from pymemri.plugin.cli import create_run
from pymemri.pod.client import PodClient
from pymemri.server.app import PodSettings
from pymemri.server.launchers import PluginLaunch, make_launcher, plugin_log_path
from pymemri.testing.notes_service import NotesService
from test_launchers_integration import (PLUGIN, base_image, debian_root, docker, notes_account, notes_service, on_ci,  # noqa: F401
                                        plugin_image, run_from_frontend)

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_SCRIPT = ROOT / "tools" / "kube_cluster.sh"


def cluster_wanted() -> bool: return on_ci() or os.environ.get("PYMEMRI_KUBE") == "1"


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory) -> str:
    "The kube config of a cluster: PYMEMRI_KUBECONFIG's, or one `tools/kube_cluster.sh` starts now (and stops after the session)."
    if os.environ.get("PYMEMRI_KUBECONFIG"):
        yield os.environ["PYMEMRI_KUBECONFIG"]
        return
    if not cluster_wanted():
        pytest.skip("Kubernetes: these tests start a cluster only when asked: CI=true or PYMEMRI_KUBE=1 (or PYMEMRI_KUBECONFIG names one)")
    if not debian_root():
        pytest.skip("Kubernetes: tools/kube_cluster.sh builds and runs a cluster from Debian packages, as root on Debian; this is not that")
    pytest.importorskip("kubernetes", reason="Kubernetes: the kubernetes package is not installed (pip install 'pymemri[kubernetes]')")
    state = tmp_path_factory.mktemp("kube-cluster")
    started = subprocess.run([str(CLUSTER_SCRIPT), "start", str(state)], capture_output=True, text=True, timeout=3600)
    try:
        assert started.returncode == 0, f"tools/kube_cluster.sh could not start a cluster: {started.stderr.strip()[-3000:]}"
        yield started.stdout.split()[-1]
    finally:
        stopped = subprocess.run([str(CLUSTER_SCRIPT), "stop", str(state)], capture_output=True, text=True, timeout=300)
        assert stopped.returncode == 0, stopped.stderr[-2000:]


class Cluster:
    "The cluster's API, and a namespace of its own for this session's plugin Jobs."
    def __init__(self, kubeconfig: str):
        from kubernetes import client, config
        self.kubeconfig, self.namespace = kubeconfig, f"pymemri-test-{secrets.token_hex(3)}"
        self.api_client = config.new_client_from_config(config_file=kubeconfig)
        self.batch, self.core = client.BatchV1Api(self.api_client), client.CoreV1Api(self.api_client)

    def jobs(self, run_id: str = None) -> list:
        "The Jobs in the namespace (of run `run_id`)."
        return self.batch.list_namespaced_job(self.namespace, label_selector=f"pymemri/run={run_id}" if run_id else None).items

    def pods(self, run_id: str) -> list: return self.core.list_namespaced_pod(self.namespace, label_selector=f"pymemri/run={run_id}").items

    def secrets(self, run_id: str) -> list:
        return self.core.list_namespaced_secret(self.namespace, label_selector=f"pymemri/run={run_id}").items

    def manifest(self, obj) -> str: return json.dumps(self.api_client.sanitize_for_serialization(obj))


@pytest.fixture(scope="session")
def kube(kubeconfig) -> Cluster:
    "The cluster, with KUBECONFIG set for the launchers this session makes, and a namespace that is deleted at the end."
    saved = {name: os.environ.get(name) for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    os.environ["KUBECONFIG"] = kubeconfig
    os.environ.pop("KUBERNETES_SERVICE_HOST", None)  # not in a cluster: the kube config is used
    cluster = Cluster(kubeconfig)
    cluster.core.create_namespace({"metadata": {"name": cluster.namespace}})
    wait_for(lambda: cluster.core.list_namespaced_service_account(cluster.namespace).items, 60, "the namespace's default service account")
    yield cluster
    cluster.core.delete_namespace(cluster.namespace)
    for name, value in saved.items():
        if value is None: os.environ.pop(name, None)
        else: os.environ[name] = value


def kube_options(kube: Cluster, **options) -> dict:
    "The Pod options of these tests: Kubernetes, the session's namespace, images from the node, the node's network."
    return {"plugin_runner": "kubernetes", "kubernetes_namespace": kube.namespace, "kubernetes_pull": "never",
            "kubernetes_host_network": True, **options}


def running_containers(run_id: str) -> str:
    "The ids of the running Docker containers of run `run_id`'s Pod (the kubelet labels them with the Pod's labels)."
    return docker("ps", "--quiet", "--filter", f"label=pymemri/run={run_id}")


def slow_run(server, owner: PodCaller, project: Path, image: str, service: NotesService) -> str:
    "Start a run of the template's plugin that takes long (one note a page, of thousands); its id, once it made progress."
    client = PodClient(server.url, owner.owner, owner.key)
    account = notes_account(server, owner, service)
    run_id = create_run(client, json.loads((project / "metadata.json").read_text()), container=image,
                        config={"url": service.url, "page_size": 1}, account_id=account.id).id
    wait_for(lambda: (owner.get(run_id).get("progress") or 0) > 0, 120, "the plugin reporting progress")
    return run_id


def test_plugin_run_end_to_end(kube, plugin_image, tmp_path):
    port = free_port()
    pod = PodProcess(tmp_path / "data", port, kube)
    owner = PodCaller(pod.url)
    with pod, NotesService(n_notes=4) as service:
        ran = run_from_frontend(pod, owner, service, plugin_image, tmp_path)
        titles = sorted(note["title"] for note in service.notes)
        assert ran.returncode == 0, ran.stderr[-3000:] + pod.output()
        [run] = owner.search(type="PluginRun")
        assert f"Run {run['id']} is done" in ran.stderr and run["status"] == "done"
        assert sorted(note["title"] for note in owner.search(type="Note")) == titles
        # The plugin reports `done` before its container ends; the launcher has read all its output once it deleted the Job.
        wait_for(lambda: kube.jobs(run["id"]) == [] and kube.secrets(run["id"]) == [], 30, "the launcher deleting the finished Job")
        log = plugin_log_path(tmp_path / "data" / "logs", owner.owner, run["id"]).read_text()
        assert f"Running docker_check.plugin.{PLUGIN} on the Pod at {pod.url}" in log and f"Done: {PLUGIN} finished" in log
        assert f"Done: {PLUGIN} finished" in owner.call("get_pluginrun_log", run["id"])["logs"]


def test_no_token_in_manifests_and_the_abort_deletes_the_job(kube, plugin_image, notes_service, start_server, tmp_path):
    image, project = plugin_image
    server = start_server(tmp_path / "data", **kube_options(kube))
    owner = PodCaller(server.url)
    run_id = slow_run(server, owner, project, image, notes_service)
    [job], [pod], [secret] = kube.jobs(run_id), kube.pods(run_id), kube.secrets(run_id)
    token = server.app.state.pod.launcher.runs[job.metadata.name].launch.auth_token["data"]
    hidden = {"owner key": owner.owner, "database key": owner.key, "token nonce": token["nonce"],
              "token permissions": token["encryptedPermissions"]}
    for kind, manifest in (("Job", kube.manifest(job)), ("Pod", kube.manifest(pod))):
        assert [name for name, value in hidden.items() if value in manifest] == [], f"a secret in the {kind}'s manifest"
    environment = {env.name: env for env in pod.spec.containers[0].env}
    assert environment["POD_AUTH_JSON"].value_from.secret_key_ref.name == secret.metadata.name
    assert [(owner_.kind, owner_.uid) for owner_ in secret.metadata.owner_references] == [("Job", job.metadata.uid)]
    assert (job.spec.backoff_limit, job.spec.active_deadline_seconds) == (0, 86400)
    assert pod.spec.automount_service_account_token is False

    assert running_containers(run_id), "no container for the run"
    launcher, ends = server.app.state.pod.launcher, []
    report = launcher.on_exit
    launcher.on_exit = lambda launch, code, reason: (ends.append((launch.run_id, code, reason)), report(launch, code, reason))
    launcher.abort(run_id)
    started = time.monotonic()
    wait_for(lambda: running_containers(run_id) == "", 15, "the container stopping after the abort")
    assert time.monotonic() - started < 10
    wait_for(lambda: kube.jobs(run_id) == [] and kube.pods(run_id) == [] and kube.secrets(run_id) == [], 30,
             "the Job, Pod and Secret going")
    time.sleep(2)  # what the watches saw meanwhile (the Job failing, then deleted) must not report the end again
    assert ends == [(run_id, None, "aborted")]


def test_aborted_run_ends_its_job(kube, plugin_image, notes_service, start_server, tmp_path):
    image, project = plugin_image
    server = start_server(tmp_path / "data", **kube_options(kube))
    owner = PodCaller(server.url)
    run_id = slow_run(server, owner, project, image, notes_service)
    owner.call("update_item", {"id": run_id, "status": "aborted"})
    started = time.monotonic()
    wait_for(lambda: running_containers(run_id) == "", 15, "the container stopping after the run was aborted")
    assert time.monotonic() - started < 10
    wait_for(lambda: kube.jobs(run_id) == [] and kube.secrets(run_id) == [] and kube.pods(run_id) == [], 30,
             "the Job, its Secret and Pod going")
    assert owner.get(run_id)["status"] == "aborted"
    # the plugin saw its run aborted and said so as it stopped; the launcher kept that output before deleting the Pod
    log = plugin_log_path(tmp_path / "data" / "logs", owner.owner, run_id).read_text()
    assert f"Aborted: {PLUGIN} stopped because its run was aborted" in log


def test_image_that_does_not_exist(kube, start_server, tmp_path):
    server = start_server(tmp_path / "data", **kube_options(kube))
    owner = PodCaller(server.url)
    owner.declare("PluginRun/status/Text", "PluginRun/message/Text")
    image, run_id = "pymemri-test-no-such-image:404", secrets.token_hex(16)
    owner.create(type="PluginRun", id=run_id, containerImage=image, targetItemId=run_id)
    run = wait_for(lambda: (found := owner.get(run_id)).get("status") in ("done", "error") and found, 90, "the run ending")
    assert run["status"] == "error" and f"the image {image} could not be pulled (ErrImageNeverPull)" in run["message"], run
    wait_for(lambda: kube.jobs(run_id) == [] and kube.secrets(run_id) == [], 90, "the Job and its Secret going")  # the kubelet's pace


def test_second_run_over_the_owner_limit_waits_for_the_first_job(kube, plugin_image, notes_service, start_server, tmp_path):
    image, project = plugin_image
    server = start_server(tmp_path / "data", **kube_options(kube), max_plugin_runs_per_owner=1)
    owner = PodCaller(server.url)
    first = slow_run(server, owner, project, image, notes_service)
    client = PodClient(server.url, owner.owner, owner.key)
    second = create_run(client, json.loads((project / "metadata.json").read_text()), container=image,
                        config={"url": notes_service.url, "page_size": 1}).id
    time.sleep(3)
    assert kube.jobs(second) == [] and "waiting to start" in owner.get(second)["message"]
    owner.call("update_item", {"id": first, "status": "aborted"})
    wait_for(lambda: kube.jobs(first) == [], 30, "the first run's Job going")
    wait_for(lambda: kube.jobs(second), 30, "the second run's Job, once the first ended")
    server.app.state.pod.launcher.abort(second)
    wait_for(lambda: kube.jobs(second) == [] and kube.pods(second) == [] and running_containers(second) == "", 30,
             "the second run's Job going")


def test_deadline(kube, plugin_image, notes_service, start_server, tmp_path):
    image, project = plugin_image
    server = start_server(tmp_path / "data", **kube_options(kube, kubernetes_deadline=15))
    owner = PodCaller(server.url)
    run_id = slow_run(server, owner, project, image, notes_service)
    run = wait_for(lambda: (found := owner.get(run_id)).get("status") in ("done", "error") and found, 60, "the run ending")
    assert run["status"] == "error" and "the run passed its deadline of 15 s" in run["message"], run
    wait_for(lambda: kube.jobs(run_id) == [] and kube.pods(run_id) == [] and running_containers(run_id) == "", 30,
             "the Job and its container going")


def test_container_out_of_memory(kube, base_image, tmp_path):
    image = f"pymemri-test-memory-hog:{secrets.token_hex(4)}"
    (tmp_path / "Dockerfile").write_text(f"FROM {base_image}\nCMD " + json.dumps(
        ["python3", "-c", "print('taking memory', flush=True); hog = bytearray(400 * 2**20); print('not killed')"]))
    docker("build", "--quiet", "--tag", image, str(tmp_path))
    ends = []
    settings = PodSettings(tmp_path / "data", plugin_runner="kubernetes", kubernetes_namespace=kube.namespace, kubernetes_pull="never",
                           kubernetes_limits="memory=64Mi")
    launcher = make_launcher(settings, on_exit=lambda launch, code, reason: ends.append((code, reason)))
    launch = PluginLaunch("0f" * 32, secrets.token_hex(16), image, "http://localhost:1", {}, {"data": {}})
    try:
        launcher.launch(launch)
        wait_for(lambda: ends, 120, "the run ending")
        assert ends == [(137, "the plugin ran out of memory (OOMKilled)")]
        assert launcher.exit_message(launch, *ends[0]) == "the plugin's Kubernetes Job ended: the plugin ran out of memory (OOMKilled)"
        assert launcher.log_path(launch).read_text() == "taking memory\n"
    finally:
        launcher.stop()
        subprocess.run(["docker", "image", "rm", "--force", image], capture_output=True, timeout=120)


class PodProcess:
    "`start_pod` with the Kubernetes runner in a process of its own, on `port`, keeping its data in `data_dir`."
    def __init__(self, data_dir: Path, port: int, kube: Cluster):
        self.data_dir, self.port, self.url = data_dir, port, f"http://localhost:{port}"
        self.command = [start_pod_command(), "--owners", "ANY", "--port", str(port), "--data_dir", str(data_dir),
                        "--plugin_runner", "kubernetes", "--kubernetes_namespace", kube.namespace, "--kubernetes_pull", "never",
                        "--kubernetes_host_network", "true"]
        self.log = data_dir.parent / f"start_pod-{port}.log"
        self.process = None

    def start(self):
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env={**os.environ, "HOME": str(self.data_dir.parent)})
        wait_until_serving(self.process, self.url, self.output, 60)
        return self

    def output(self) -> str: return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self):
        "SIGTERM, as a person stopping it; wait until it ended."
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)

    def __enter__(self): return self.start()
    def __exit__(self, *exc): self.stop()


def test_orphaned_job_after_kill_9_is_stopped_by_the_next_pod(kube, plugin_image, notes_service, tmp_path):
    image, project = plugin_image
    pod = PodProcess(tmp_path / "data", free_port(), kube).start()
    owner = PodCaller(pod.url)
    try: run_id = slow_run(pod, owner, project, image, notes_service)
    except BaseException:
        pod.stop()
        raise
    pod.process.kill()
    pod.process.wait(timeout=30)
    assert kube.jobs(run_id), "the run's Job should outlive the Pod killed with SIGKILL"  # (its plugin may end, losing its Pod)
    with pod:
        wait_for(lambda: kube.jobs(run_id) == [] and kube.pods(run_id) == [] and running_containers(run_id) == "", 60,
                 "the next Pod stopping the orphaned Job")
        assert kube.secrets(run_id) == []
        assert owner.get(run_id)["status"] == "error", "the run that was live when the Pod died should be marked error"


def test_start_pod_stops_its_jobs_when_it_stops(kube, plugin_image, notes_service, tmp_path):
    image, project = plugin_image
    pod = PodProcess(tmp_path / "data", free_port(), kube).start()
    owner = PodCaller(pod.url)
    try: run_id = slow_run(pod, owner, project, image, notes_service)
    finally: pod.stop()
    assert pod.process.returncode is not None
    assert kube.jobs(run_id) == [] and kube.pods(run_id) == [] and kube.secrets(run_id) == []
    # the kubelet removes the Pod's sandbox (pause) container a moment after the Pod object goes
    wait_for(lambda: running_containers(run_id) == "", 15, "the Pod's containers stopping")


def test_launcher_options():
    launcher = make_launcher(PodSettings("/nowhere", plugin_runner="kubernetes", kubernetes_namespace="plugins", kubernetes_pull="missing",
                                         kubernetes_requests="cpu=100m", kubernetes_limits="memory=1Gi", kubernetes_deadline=600,
                                         kubernetes_service_account="plugins", kubernetes_host_network=True))
    assert (launcher.namespace, launcher.pull, launcher.requests, launcher.limits, launcher.deadline, launcher.service_account,
            launcher.host_network) == ("plugins", "missing", {"cpu": "100m"}, {"memory": "1Gi"}, 600, "plugins", True)
    refused = subprocess.run(["start_pod", "--owners", "ANY", "--port", str(free_port()), "--kubernetes_pull", "sometimes"],
                             capture_output=True, text=True, timeout=60)
    assert (refused.returncode, refused.stderr.strip()) == (1, "Error: --kubernetes_pull must be always, missing or never")
