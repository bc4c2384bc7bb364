"""The notebook login in a real JupyterLab, in Debian's Chromium driven by Playwright: a person opens a notebook,
runs the plugin, answers what appears under the cell (the form on the dev extra's ipykernel, input boxes on
ipykernel 6), and sees the plugin go on.

Chromium runs headless (its current headless mode paints JupyterLab's outputs while a cell runs). It needs
Debian's `chromium` package, which `.ci/run` installs; without it the test skips, saying so, except on CI.
Set `PYMEMRI_SCREENSHOTS` to a folder to keep the screenshots (the docs' picture of the form comes from here).
"""
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import requests

import loginkit
from conftest import free_port
from pymemri.testing.forms import PASSWORD, RUN_CELLS, LoginWorld

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]
KERNEL_NAMES = {"dev": "python3", "ipykernel6": "ipykernel6"}


def chromium_or_skip():
    "Skip when Debian's chromium is missing: a clear reason here, a failure on CI (where `.ci/run` installs it)."
    if CHROMIUM.exists(): return
    why = os.environ.get("PYMEMRI_NO_BROWSER")  # set by .ci/run when apt could not install chromium
    if os.environ.get("CI") and not why: pytest.fail(f"{CHROMIUM} is missing on CI: .ci/run should have installed Debian's chromium")
    pytest.skip(f"no browser test: {CHROMIUM} is missing ({why or 'install it with: apt-get install chromium'})")


class Lab:
    "A JupyterLab server of its own: a fresh root, workspaces and settings, and a kernel spec for ipykernel 6."
    def __init__(self, home: Path):
        self.root, self.token, self.port = home / "notebooks", secrets.token_hex(16), free_port()
        data = home / "jupyter-data"
        (data / "kernels" / "ipykernel6").mkdir(parents=True)
        argv = [str(loginkit.ipykernel6_python()), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        spec = {"argv": argv, "display_name": "Python 3 (ipykernel 6)", "language": "python"}
        (data / "kernels" / "ipykernel6" / "kernel.json").write_text(json.dumps(spec))
        self.root.mkdir()
        env = {**loginkit.kernel_env(home), "JUPYTER_PATH": str(data), "JUPYTER_CONFIG_DIR": str(home / "jupyter-config"),
               "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"), "JUPYTERLAB_WORKSPACES_DIR": str(home / "lab-workspaces")}
        self.log = open(home / "jupyterlab.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={self.port}",
             f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={self.root}", "--ServerApp.port_retries=0"],
            env=env, cwd=self.root, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(f"{self.url}/api/status", params={"token": self.token}, timeout=2).ok: break
            except requests.ConnectionError: pass
            assert self.process.poll() is None and time.monotonic() < deadline, (home / "jupyterlab.log").read_text()[-3000:]
            time.sleep(0.3)

    def notebook(self, name: str, kernel: str, cells: list) -> str:
        "Write a notebook of `cells` for `kernel`; the address that opens it in a fresh workspace."
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell) for cell in cells])
        notebook.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
        nbformat.write(notebook, self.root / name)
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"

    def stop(self):
        self.process.terminate()
        try: self.process.wait(timeout=20)
        except subprocess.TimeoutExpired: self.process.kill()
        self.log.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    chromium_or_skip()
    lab = Lab(tmp_path_factory.mktemp("jupyterlab"))
    yield lab
    lab.stop()


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def screenshot(locator, name: str, tmp_path: Path):
    "Keep a picture of `locator` in the test's folder, and in $PYMEMRI_SCREENSHOTS if set."
    locator.screenshot(path=tmp_path / name)
    if os.environ.get("PYMEMRI_SCREENSHOTS"): shutil.copy(tmp_path / name, Path(os.environ["PYMEMRI_SCREENSHOTS"]) / name)


def log_in_at_provider(page, link) -> str:
    "Follow the login link in a new tab, log in there as alice, and bring back the address the provider sends her to."
    with page.context.expect_page() as opened: link.click()
    provider = opened.value
    provider.get_by_label("Username").fill("alice")
    provider.get_by_label("Password").fill(PASSWORD)
    provider.get_by_role("button", name="Log in").click()
    provider.wait_for_url("**/callback?*")
    address = provider.url
    provider.close()
    return address


def answer_input_box(page, value: str) -> str:
    "Type `value` into the open input box under the cell and press Enter; the box's prompt."
    page.locator("input.jp-Stdin-input").last.wait_for(timeout=30_000)
    box = page.locator("input.jp-Stdin-input").last.element_handle()
    prompt = page.locator(".jp-Stdin-prompt").last.inner_text()
    box.fill(value)
    box.press("Enter")
    box.wait_for_element_state("hidden", timeout=30_000)  # answered: the box gives way to the next, or to the output
    return prompt


@pytest.mark.parametrize("kind", ["password", "oauth"])
@pytest.mark.parametrize("kernel", list(KERNEL_NAMES))
def test_login_in_jupyterlab(lab, browser, login_world, kernel, kind, tmp_path):
    "Run the plugin as the docs teach, answer what appears, and see the plugin go on."
    cells = [login_world.setup_cell(kind), RUN_CELLS["thread"]]
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(lab.notebook(f"login-{kernel}-{kind}.ipynb", KERNEL_NAMES[kernel], cells))
    page.get_by_text("| Idle").wait_for(timeout=90_000)  # the kernel is up
    page.locator(".jp-Cell .jp-InputArea-editor").first.click()
    page.keyboard.press("Shift+Enter")
    page.keyboard.press("Shift+Enter")
    cell = page.locator(".jp-Notebook .jp-Cell").nth(1)
    if kernel == "dev":  # the form
        cell.get_by_role("button", name="Log in").wait_for(timeout=60_000)
        if kind == "password":
            cell.get_by_role("textbox", name="Username", exact=True).fill("alice")
            cell.get_by_role("textbox", name="Password", exact=True).fill(PASSWORD)
            screenshot(cell, "notebook-login-form.png", tmp_path)
        else:
            link = cell.get_by_role("link", name="Open the login page of example-oauth")
            cell.get_by_role("textbox", name="Code", exact=True).fill(log_in_at_provider(page, link))
            screenshot(cell, "notebook-login-form-oauth.png", tmp_path)
        cell.get_by_role("button", name="Log in").click()
        cell.get_by_text("Sent. The plugin goes on.").wait_for(timeout=30_000)
    else:  # Jupyter's input boxes; never a form
        if kind == "password": prompts = [answer_input_box(page, "alice"), answer_input_box(page, PASSWORD)]
        else: prompts = [answer_input_box(page, log_in_at_provider(page, cell.locator("a[href*='/authorize']").first))]
        wanted = ("Username for example", "Password") if kind == "password" else ("Paste the code",)
        assert [prompt.startswith(start) for prompt, start in zip(prompts, wanted)] == [True] * len(wanted), prompts
    cell.get_by_text("plugin done: imported the profile of Alice").wait_for(timeout=60_000)
    screenshot(cell, f"notebook-login-done-{kernel}-{kind}.png", tmp_path)
    assert cell.locator(".widget-button").count() == (1 if kernel == "dev" else 0)
    assert PASSWORD not in cell.inner_text()
    account = login_world.account(kind)
    assert (account.displayName, account.externalId) == ("Alice", "alice")
    page.close()
