"""Real plugin launches: a Docker container when a Docker daemon answers, a Kubernetes Pod when a cluster is configured.

Both skip, saying what they did not find, on a machine without them. The process launcher is tested
with a real child process in test_conformance.py (items 52 and 53).
"""
import json
import secrets
import shutil
import subprocess
import time

import pytest

from conftest import PodCaller

PLUGIN_SCRIPT = """
import json, os, urllib.request
names = ("POD_FULL_ADDRESS", "POD_TARGET_ITEM", "POD_PLUGINRUN_ID", "POD_OWNER", "POD_AUTH_JSON")
auth = {"type": "PluginAuth", **json.loads(os.environ["POD_AUTH_JSON"])}
update = {"id": json.loads(os.environ["POD_TARGET_ITEM"])["id"], "status": "done",
          "message": json.dumps(sorted(name for name in names if os.environ.get(name)))}
request = urllib.request.Request(f"{os.environ['POD_FULL_ADDRESS']}/v4/{os.environ['POD_OWNER']}/update_item",
                                 data=json.dumps({"auth": auth, "payload": update}).encode(), method="POST")
urllib.request.urlopen(request, timeout=30).read()
"""
BASE_IMAGE = "python:3.11-alpine"


def docker_daemon():
    "Skip unless the docker CLI is installed and `docker info` reaches a daemon."
    if shutil.which("docker") is None: pytest.skip("Docker: no `docker` command on PATH")
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=30)
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"Docker: the docker CLI is installed but `docker info` reaches no daemon ({reason})")


def build_plugin_image(folder) -> str:
    "A local image that runs PLUGIN_SCRIPT; its tag."
    (folder / "plugin.py").write_text(PLUGIN_SCRIPT)
    (folder / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nCOPY plugin.py /plugin.py\nCMD [\"python\", \"/plugin.py\"]\n")
    if subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True, timeout=60).returncode != 0:
        pull = subprocess.run(["docker", "pull", BASE_IMAGE], capture_output=True, text=True, timeout=600)
        if pull.returncode != 0:
            pytest.skip(f"Docker: a daemon answers, but the base image {BASE_IMAGE} is not there and could not be pulled "
                        f"({pull.stderr.strip()[-300:]})")
    tag = f"pymemri-test-plugin:{secrets.token_hex(4)}"
    build = subprocess.run(["docker", "build", "-q", "-t", tag, str(folder)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    return tag


def test_docker_plugin_run(tmp_path, start_server):
    docker_daemon()
    image = build_plugin_image(tmp_path)
    try:
        # The image exists only here, so it must not be pulled (the reference's --pull=always would fail).
        server = start_server(tmp_path / "data", plugin_runner="docker", docker_pull="never")
        pod = PodCaller(server.url)
        pod.declare("PluginRun/status/Text", "PluginRun/message/Text")
        run_id = secrets.token_hex(16)
        pod.create(type="PluginRun", id=run_id, containerImage=image, targetItemId=run_id)
        deadline = time.monotonic() + 120
        while pod.get(run_id).get("status") not in ("done", "error"):
            assert time.monotonic() < deadline, f"the container did not report; log: {list((tmp_path / 'data' / 'logs').rglob('*'))}"
            time.sleep(0.5)
        run = pod.get(run_id)
        assert run["status"] == "done", run
        assert json.loads(run["message"]) == ["POD_AUTH_JSON", "POD_FULL_ADDRESS", "POD_OWNER", "POD_PLUGINRUN_ID", "POD_TARGET_ITEM"]
    finally:
        subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True, timeout=120)


def kubernetes_cluster(namespace: str):
    "The CoreV1Api of a reachable cluster, or skip saying what is missing."
    try: from kubernetes import client, config
    except ImportError: pytest.skip("Kubernetes: the kubernetes package is not installed (pip install 'pymemri[kubernetes]')")
    try: config.load_incluster_config()
    except config.ConfigException:
        try: config.load_kube_config()
        except Exception as error:
            pytest.skip(f"Kubernetes: no in-cluster service account and no kube config loads ({type(error).__name__}: {error})")
    api = client.CoreV1Api()
    try: api.list_namespaced_pod(namespace, limit=1, _request_timeout=10)
    except Exception as error:
        pytest.skip(f"Kubernetes: a kube config loads, but its cluster does not answer ({type(error).__name__}: {str(error)[:200]})")
    return api


def test_kubernetes_plugin_run(tmp_path, start_server):
    namespace = "default"
    api = kubernetes_cluster(namespace)
    # The plugin Pod can't reach this test's Pod (it listens on this machine's loopback), so the test checks
    # what the cluster was asked to run: a Pod with the run's labels and environment, that the cluster schedules.
    server = start_server(tmp_path / "data", plugin_runner="kubernetes", kubernetes_namespace=namespace)
    pod = PodCaller(server.url)
    run_id = secrets.token_hex(16)
    pod.create(type="PluginRun", id=run_id, containerImage="busybox:1.36", targetItemId=run_id)
    found = [item for item in api.list_namespaced_pod(namespace, label_selector="type=plugin").items
             if any(env.name == "POD_PLUGINRUN_ID" and env.value == run_id for env in item.spec.containers[0].env)]
    assert len(found) == 1, f"no Kubernetes Pod for run {run_id}"
    plugin = found[0]
    try:
        assert plugin.metadata.labels == {"app": plugin.metadata.name, "type": "plugin"}
        assert plugin.spec.restart_policy == "Never" and plugin.spec.containers[0].image == "busybox:1.36"
        environment = {env.name: env.value for env in plugin.spec.containers[0].env}
        assert environment["POD_OWNER"] == pod.owner and json.loads(environment["POD_TARGET_ITEM"])["id"] == run_id
        assert set(json.loads(environment["POD_AUTH_JSON"])["data"]) == {"nonce", "encryptedPermissions"}
        deadline = time.monotonic() + 120
        while api.read_namespaced_pod(plugin.metadata.name, namespace).status.phase == "Pending":
            assert time.monotonic() < deadline, "the cluster did not start the plugin Pod within 120 s"
            time.sleep(1)
    finally:
        api.delete_namespaced_pod(plugin.metadata.name, namespace)
