"""The notebook login, answered over the Jupyter protocol exactly as a front end answers it.

A real kernel runs the cells a person runs. The test plays the front end: it renders nothing, but reads what the
kernel publishes (widget models opened on `iopub`, the form's display, input requests on `stdin`) and answers
the way JupyterLab does: `comm_msg` updates for the fields and the button's `click` event, or `input_reply` for
an input box. It runs on the ipykernel the dev extra installs (which must take widget events while a cell awaits), and on
ipykernel 6 and 7.3 in environments of their own (made once, under ~/.cache/pymemri-tests).
"""
import html
import json
import re
import sys
import time

import pytest
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

import loginkit
from pymemri.testing.forms import PASSWORD, RUN_CELLS, LoginWorld

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class FrontEnd:
    "Plays JupyterLab for one kernel: runs cells and answers the forms and input boxes the person sees."
    def __init__(self, python: str, home):
        kernels = home / "kernels"
        (kernels / "login-test").mkdir(parents=True)
        argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        (kernels / "login-test" / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "login test", "language": "python"}))
        self.manager = KernelManager(kernel_name="login-test", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
        self.manager.start_kernel(env=loginkit.kernel_env(home), cwd=str(home))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)
        self.version = self.run("import ipykernel; print(ipykernel.__version__)")["stdout"].strip()

    def stop(self):
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)

    def send_comm(self, comm_id: str, data: dict):
        self.client.shell_channel.send(self.client.session.msg("comm_msg", {"comm_id": comm_id, "data": data}))

    def run(self, code: str, person=None, timeout: float = 90) -> dict:
        "Run `code` as a cell; `person(event, seen)` answers each form and input request. What the cell showed."
        msg_id = self.client.execute(code, allow_stdin=True)
        seen = {"stdout": "", "stderr": "", "models": {}, "forms": [], "prompts": [], "reply": None}
        deadline = time.monotonic() + timeout
        while seen["reply"] is None:
            assert time.monotonic() < deadline, f"the cell did not finish within {timeout} s; it showed {seen}"
            for message in self._drain(self.client.iopub_channel):
                self._show(message, msg_id, seen, person)
            for message in self._drain(self.client.stdin_channel):
                seen["prompts"].append(message["content"])
                self.client.input(person("input", message["content"], seen))
            for message in self._drain(self.client.shell_channel):
                if message["parent_header"].get("msg_id") == msg_id and message["msg_type"] == "execute_reply":
                    seen["reply"] = message["content"]
            time.sleep(0.02)
        time.sleep(0.2)  # the last outputs can trail the reply
        for message in self._drain(self.client.iopub_channel): self._show(message, msg_id, seen, person)
        return seen

    @staticmethod
    def _drain(channel) -> list:
        messages = []
        while channel.msg_ready(): messages.append(channel.get_msg(timeout=1))
        return messages

    def _show(self, message: dict, msg_id: str, seen: dict, person):
        kind, content = message["msg_type"], message["content"]
        if kind == "comm_open" and content.get("target_name") == "jupyter.widget":
            seen["models"][content["comm_id"]] = content["data"]["state"]
        elif kind == "comm_msg" and content["comm_id"] in seen["models"] and content["data"].get("method") == "update":
            seen["models"][content["comm_id"]].update(content["data"]["state"])
        if message["parent_header"].get("msg_id") != msg_id: return
        if kind == "stream": seen[content["name"]] += content["text"]
        elif kind == "error": seen["stderr"] += "\n".join(content["traceback"])
        elif kind == "display_data" and WIDGET_VIEW in content["data"]:
            form = content["data"][WIDGET_VIEW]["model_id"]
            seen["forms"].append(form)
            person("form", form, seen)


def children(models: dict, model_id: str) -> list:
    "The models inside box `model_id`, in order."
    return [ref.removeprefix("IPY_MODEL_") for ref in models[model_id].get("children", [])]


def fill_in(front: FrontEnd, seen: dict, form: str, values: dict):
    "Type `values` (by field description) into the form's fields and press its button, as JupyterLab sends it."
    fields = {seen["models"][part].get("description"): part for part in children(seen["models"], form)}
    for description, value in values.items():
        front.send_comm(fields[description], {"method": "update", "state": {"value": value}, "buffer_paths": []})
    front.send_comm(fields["Log in"], {"method": "custom", "content": {"event": "click"}})


def auth_url_seen(world: LoginWorld, seen: dict, form: str = None) -> str:
    "The login page's address, read from what the person sees: the form's link, or the text above the input box."
    if form is not None:
        text = " ".join(seen["models"][part].get("value") or "" for part in children(seen["models"], form))
        return html.unescape(re.search(r'href="([^"]+)"', text).group(1))
    return re.search(rf"({re.escape(world.provider.url)}/authorize\S+)", seen["stderr"]).group(1)


def person_for(front: FrontEnd, world: LoginWorld, kind: str):
    "Alice at the notebook: she answers whatever she is shown, a form or input boxes."
    def person(event: str, detail, seen: dict):
        if kind == "password":
            if event == "form": return fill_in(front, seen, detail, {"Username": "alice", "Password": PASSWORD})
            return "alice" if detail["prompt"].startswith("Username") else PASSWORD
        address = world.provider.log_in(auth_url_seen(world, seen, detail if event == "form" else None), "alice", PASSWORD)
        if event == "form": return fill_in(front, seen, detail, {"Code": address})
        return address  # she pastes the whole address she was sent to
    return person


KERNELS = {"dev": None, "ipykernel6": loginkit.IPYKERNEL6, "ipykernel7.3": loginkit.IPYKERNEL73}


@pytest.fixture(scope="module", params=list(KERNELS))
def front(request, tmp_path_factory):
    requirement = KERNELS[request.param]
    front = FrontEnd(loginkit.kernel_python(requirement) if requirement else sys.executable, tmp_path_factory.mktemp("kernel"))
    front.kind = request.param
    front.takes_widget_events = tuple(int(part) for part in front.version.split(".")[:2]) >= (7, 4)
    yield front
    front.stop()


def test_kernel_generations(front):
    "The two environments really hold the two kernel generations."
    requirement = KERNELS[front.kind]
    assert front.version == requirement.split("==")[1] if requirement else front.takes_widget_events, front.version


@pytest.mark.parametrize("pattern", list(RUN_CELLS))
@pytest.mark.parametrize("kind", ["password", "oauth"])
def test_login_in_a_notebook(front, login_world, kind, pattern):
    "The person logs in with what the notebook shows, and the plugin goes on; a form appears only where it works."
    setup = front.run(login_world.setup_cell(kind))
    assert setup["reply"]["status"] == "ok", setup
    started = time.monotonic()
    seen = front.run(RUN_CELLS[pattern], person_for(front, login_world, kind))
    assert seen["reply"]["status"] == "ok", seen["stderr"]
    assert "plugin done: imported the profile of Alice" in seen["stdout"], seen
    account = login_world.account(kind)
    assert (account.displayName, account.externalId) == ("Alice", "alice")
    form_works = front.takes_widget_events and pattern == "thread"
    if form_works: assert (len(seen["forms"]), seen["prompts"]) == (1, []), seen
    else: assert seen["forms"] == [] and seen["prompts"], seen
    secret_prompts = [prompt["password"] for prompt in seen["prompts"]]
    assert secret_prompts == ([False, True] if kind == "password" and not form_works else [True] * len(secret_prompts))
    assert PASSWORD not in seen["stdout"] + seen["stderr"]
    print(f"{front.kind} ipykernel {front.version}, {kind}, {pattern}: {'form' if seen['forms'] else 'input boxes'}, "
          f"logged in after {time.monotonic() - started:.1f} s")


def test_why_ipykernel6_gets_input_boxes(front, login_world):
    "The control: a form forced onto the kernel shows and is filled in, but only ipykernel 7.4 and later hear it in time."
    front.run(login_world.setup_cell("password").replace("timeout=60", "timeout=5"))
    front.run("import pymemri.plugin.authenticators.prompts as prompts; prompts.WIDGET_EVENTS_WHILE_WAITING = (0, 0)")
    try: seen = front.run(RUN_CELLS["thread"], person_for(front, login_world, "password"))
    finally: front.run("prompts.WIDGET_EVENTS_WHILE_WAITING = (7, 4)")
    assert len(seen["forms"]) == 1, seen
    if front.takes_widget_events: assert seen["reply"]["status"] == "ok", seen["stderr"]
    else:
        assert seen["reply"]["status"] == "error", seen
        assert "nobody answered the login to example within 5 s" in seen["stderr"], seen["stderr"]
