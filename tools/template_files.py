"""Write the plugin template's notebooks, README and exported module into `pymemri/plugin/template_files/`.

The template's notebooks are real notebooks, with `{{key}}` placeholders that `plugin_from_template` fills in.
This script is where they are written (with execnb's `write_nb`), so nothing in pymemri writes the notebook
format by hand; `{{package}}/plugin.py.tmpl` is what nbdev's own `nb_export` makes from the plugin notebook.
The template's cassette is the one the notes importer's page records, `nbs/cassettes/notes.yaml`.

Run from the repository root after changing a notebook below or the cassette:

    python tools/template_files.py           # write the files
    python tools/template_files.py --check   # fail, naming them, if the files differ from what it would write
"""
import argparse
import hashlib
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from execnb.nbio import mk_cell, new_nb, nb2str
from nbdev.export import nb_export

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "pymemri" / "plugin" / "template_files"
CASSETTE = ROOT / "nbs" / "cassettes" / "notes.yaml"
# Placeholders that appear in code: while nbdev exports the notebook, they are identifiers
SENTINELS = {"plugin_class": "TemplatePluginClassXyz", "package": "template_package_xyz", "title": "Template Title Xyz",
             "description": "Template description xyz"}

PLUGIN_NOTEBOOK = r'''
```python
#| default_exp plugin
```

# {{title}}
> {{description}}

This notebook is the plugin and its tests. The cells marked `#| export` are the plugin: `nbdev_export`
writes them to `{{package}}/plugin.py`, which is what `run_plugin` and the Pod run. The other cells are
its tests: `nbdev_test` and `pytest --nbval-lax nbs/` run every cell, against an embedded Pod that the
notebook starts in a temporary folder, and `tests/test_plugin.py` runs pymemri's standard plugin tests.

The example is pymemri's notes importer: it logs in to a notes service with OAuth, pages through its
notes with a cursor, and saves each page with a checkpoint, so a run that stops resumes where it was.
Its tests need no service and no login: they replay what the service answered once, recorded in
`tests/cassettes/notes.yaml`. Make it your plugin: change the address, `Note`, `fetch_page` and
`run` for your service, record a cassette from it, and run `nbdev_export`.

The shell commands in this notebook (`!run_plugin …`) are tests as well: with pymemri's extension
loaded, a command that fails fails the notebook, under `nbdev_test`, `pytest --nbval-lax` and Jupyter.

```python
%load_ext pymemri
```

```python
#| export
from fastcore.basics import patch
from pydantic import SecretStr

from pymemri.data.itembase import Item
from pymemri.plugin.authenticators.oauth import StandardOAuthAuthenticator
from pymemri.plugin.pluginbase import PluginBase, secret_value
```

```python
#| hide
import os, tempfile
from pathlib import Path
from fastcore.test import test_eq, test_fail
from pymemri.data.schema import Account, PluginRun
from pymemri.plugin.runner import execute, store_run
from pymemri.plugin.pluginbase import check_config, plugin_about
from pymemri.pod.client import PodClient
from pymemri.server.serve import PodServer
from pymemri.testing.cassettes import cassette

os.environ["PYMEMRI_HOME"] = tempfile.mkdtemp()  # the keys run_plugin stores go here, not to ~/.pymemri
server = PodServer(tempfile.mkdtemp()).start()
os.environ["POD_ADDRESS"] = server.url  # run_plugin, below, uses this Pod
CASSETTE = Path("../tests/cassettes/notes.yaml")
```

## The items it writes

A plugin declares the item types it writes as `Item` subclasses, one annotation per property.
`externalId` is the note's id at the service, so importing it again changes nothing.

```python
#| export
class Note(Item):
    "A note from the notes service."
    externalId: str
    title: str
    content: str
```

## The plugin and its login

A plugin subclasses `PluginBase`, lists the item types it writes in `schema_classes`, and takes its
configuration as keyword arguments with types and defaults (a secret as a `SecretStr`, which
`--about` and the logs never show). The run's Account holds the login: the authenticator uses its
access token, refreshes it, or asks the person to log in, and keeps the tokens on the Account.
`authenticator_class` names its class, so that `plugin_doctor` checks that the Account has a token.

```python
#| export
NOTES_URL = "http://127.0.0.1:38411"  # the notes service the cassette was recorded from: put your service's address here

class {{plugin_class}}(PluginBase):
    "Imports the notes of a notes service account as Note items: OAuth login, cursor pages, a checkpoint per page."
    schema_classes = [Note]
    authenticator_class = StandardOAuthAuthenticator

    def __init__(self, url: str = NOTES_URL,  # The notes service
                 page_size: int = 10,  # Notes per page (the service allows 1 to 100)
                 client_id: str = "pymemri-example",  # The plugin's OAuth client id at the service
                 client_secret: SecretStr = SecretStr("example-client-secret"),  # Its OAuth client secret
                 **kwargs):
        super().__init__(**kwargs)
        self.url, self.page_size = url.rstrip("/"), page_size
        self.authenticator = StandardOAuthAuthenticator(
            self.client, self.pluginRun, authorize_url=f"{self.url}/authorize", token_url=f"{self.url}/token",
            check_url=f"{self.url}/api/me", client_id=client_id, client_secret=secret_value(client_secret),
            redirect_uri=f"{self.url}/callback", service="notes")
```

## A page

`self.http` is a `requests` session with timeouts, retries with backoff, and waits as long as a
`429`'s `Retry-After` asks.

```python
#| export
@patch
def fetch_page(self: {{plugin_class}}, cursor: str = None) -> dict:
    "The page of notes after `cursor` (None: the first): `{'notes': [...], 'next_cursor': ...}`."
    query = {"limit": self.page_size, **({"cursor": cursor} if cursor else {})}
    reply = self.http.get(f"{self.url}/notes", params=query, headers={"Authorization": f"Bearer {self.authenticator.access_token()}"})
    reply.raise_for_status()
    return reply.json()
```

## The run

Each page is saved with `self.checkpoint(notes)`, in one request with `self.state`, the position
after it: a run that crashes or is aborted resumes there. After the last page the state is emptied,
so the next run is a full sync, which changes only what changed.

```python
#| export
@patch
def run(self: {{plugin_class}}):
    "Import every note, a page and a checkpoint at a time, from where the last run stopped."
    self.authenticator.authenticate()
    if self.state: print(f"Resuming after {self.state['imported']} notes")
    pages = 0
    while True:
        page = self.fetch_page(self.state.get("cursor"))
        notes = [Note(externalId=note["id"], title=note["title"], content=note["content"]) for note in page["notes"]]
        imported = self.state.get("imported", 0) + len(notes)
        if page["next_cursor"]: self.state.update(cursor=page["next_cursor"], imported=imported)
        else: self.state.clear()  # done: the next run starts from the first page
        self.checkpoint(notes)
        pages += 1
        self.set_progress(1.0 if not page["next_cursor"] else pages / (pages + 1), f"{imported} notes imported")
        if not page["next_cursor"]: return
```

## Running it here, from the recording

A run as `run_plugin` makes one, for an Account that holds a token, replaying the service's answers
from the cassette (requests to the Pod go through):

```python
client = PodClient(server.url)
account = Account(service="notes", identifier="alice", accessToken="any-token: the recording answers")
run = store_run(client, PluginRun(pluginModule="{{package}}.plugin", pluginName="{{plugin_class}}", containerImage="none",
                                  status="idle"), account)
with cassette(CASSETTE, mode="none", pass_through=[server.url]):
    test_eq(execute({{plugin_class}}(pluginRun=run, client=client), show_progress=False), 0)
test_eq(len(client.search(Note)), 100)
```

## Configuration

`run_plugin` checks the configuration before it makes the plugin, and `--about` describes it as JSON Schema:

```python
test_eq(plugin_about({{plugin_class}})["config"]["properties"]["page_size"], {"type": "integer", "default": 10})
test_fail(lambda: check_config({{plugin_class}}, {"page_size": "ten"}), contains="config.page_size: Input should be a valid integer")
```

```python
!run_plugin --metadata ../metadata.json --about
```

## The standard tests

`tests/test_plugin.py` runs pymemri's `plugin_test_suite` on the plugin, from the cassette: its config,
a run, a second run that stores nothing twice, an abort, no secret shown anywhere, and
`run_plugin --metadata` in a subprocess.

To record the cassette from your own service: start it, give the run's Account a token, and run the
plugin inside `cassette("../tests/cassettes/notes.yaml", mode="all", secrets=[token], pass_through=[server.url])`.
Tokens and Authorization headers are redacted before anything is written.

## Shipping it

The Pod runs plugins in containers. `docker build -t {{project}} .` makes the image from the
`Dockerfile`; push it where the Pod's machine can pull it and put its name in `metadata.json` as
`containerImage`. For each run the Pod starts a container of that image with the run's `POD_*`
variables set, and the image runs `run_plugin --read_args_from_env`, which reads them.

```python
#| hide
server.stop()
```
'''

INDEX = r'''# {{title}}
> {{description}}

`{{package}}` is a plugin for the Memri Pod, made with pymemri's `plugin_from_template`. It starts as
pymemri's notes importer, `{{plugin_class}}`: it logs in to a notes service with OAuth, pages
through its notes, and resumes from its last checkpoint. Make it your plugin from there.

## Try it

You need Python 3.11 and pymemri (`{{pymemri_requirement}}`). Where your package index has no
pymemri in that range, install it from its source or a wheel first (`pip install /path/to/pymemri`);
CI does that when `PYMEMRI_REQUIREMENT` names one. This installs the plugin and shows what
`run_plugin` runs: its item types and its configuration, as JSON Schema:

```sh
pip install -e . && run_plugin --metadata metadata.json --about
```

This installs the test tools, exports the package from the notebooks, and runs the tests: every
notebook in `nbs/`, twice (`nbdev_test`, then pytest with nbval), and pymemri's standard plugin tests in
`tests/`. They run the plugin end to end on embedded Pods, replaying the notes service from
`tests/cassettes/notes.yaml`, so they need neither the service nor a login:

```sh
pip install -e ".[dev]" && nbdev_export && nbdev_test && pytest --nbval-lax nbs/ tests/
```

Where pymemri and its test tools are already installed, the same runs with no network:

```sh
{{offline_command}}
```

## Where things are

- `nbs/plugin.ipynb`: the plugin and its tests. Write your plugin here.
- `{{package}}/plugin.py`: written from the notebook by `nbdev_export`; don't edit it.
- `tests/test_plugin.py`: pymemri's standard plugin tests, `plugin_test_suite`, on the plugin.
- `tests/cassettes/notes.yaml`: the service's answers to one run, recorded with secrets redacted.
- `metadata.json`: what `run_plugin` and the Pod run: `pluginModule`, `pluginName`, `containerImage`
  and `config`, whose keys are the plugin's keyword arguments (`run_plugin --metadata metadata.json --about`
  lists them).
- `settings.ini`: name, version and requirements; `setup.py` reads it. Set `user` to your GitHub
  account before you publish.
- `Dockerfile`: the image the Pod runs.
- `.github/workflows/test.yml` and `.ci/run`: CI, running the two commands above.
- `nbs/index.ipynb`: this page, the source of `README.md`.

## Shipping it

The Pod runs each plugin run in a container of the plugin's `containerImage`. Build the image and push
it where the Pod's machine can pull it (the Pod pulls it again for every run):

```sh
docker build -t {{project}} .
```

The image installs pymemri and this package, and runs `run_plugin --read_args_from_env`: the Pod
starts the container with the run's `POD_FULL_ADDRESS`, `POD_PLUGINRUN_ID`, `POD_OWNER`,
`POD_AUTH_JSON` and `POD_TARGET_ITEM`, and `run_plugin` reads them, connects to the Pod and runs the
plugin. To take pymemri from elsewhere than PyPI, pass `--build-arg PYMEMRI_REQUIREMENT=...`; the
`Dockerfile` lists its other build arguments. To try the whole path on one machine, run
`start_pod --plugin_runner docker --docker_pull missing` in one shell (`missing`: the image is on this
machine only) and `simulate_run_plugin_from_frontend --metadata metadata.json` in another.
'''


def cells_of(text: str) -> list:
    "`(kind, source)` for a notebook written as markdown with ```python fences; each H2 starts a cell."
    cells, lines, kind = [], [], "markdown"
    def close():
        source = "\n".join(lines).strip("\n")
        if source.strip(): cells.append((kind, source))
        lines.clear()
    for line in text.strip("\n").splitlines():
        if kind == "markdown" and line == "```python": close(); kind = "code"
        elif kind == "markdown" and line.startswith("## "): close(); lines.append(line)
        elif kind == "code" and line == "```": close(); kind = "markdown"
        else: lines.append(line)
    close()
    return cells


def notebook(name: str, text: str) -> str:
    "The notebook `name` written from `text`, by execnb; cell ids depend on the notebook and the cell's place only."
    cells = [mk_cell(source, kind, id=hashlib.sha1(f"{name}:{number}".encode()).hexdigest()[:8])
             for number, (kind, source) in enumerate(cells_of(text))]
    return nb2str(new_nb(cells, meta={"kernelspec": {"display_name": "python3", "language": "python", "name": "python3"}}))


def with_sentinels(text: str) -> str:
    for key, sentinel in SENTINELS.items(): text = text.replace("{{" + key + "}}", sentinel)
    return text


def without_sentinels(text: str) -> str:
    for key, sentinel in SENTINELS.items(): text = text.replace(sentinel, "{{" + key + "}}")
    return text


@contextmanager
def working_dir(path: Path):
    old = Path.cwd()
    os.chdir(path)
    try: yield
    finally: os.chdir(old)


def exported_module(plugin_notebook: str) -> str:
    "What nbdev's `nb_export` writes from the plugin notebook in a project, placeholders kept."
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        (project / "nbs").mkdir()
        (project / "nbs/plugin.ipynb").write_text(with_sentinels(plugin_notebook))
        (project / "settings.ini").write_text(with_sentinels((TEMPLATE / "settings.ini").read_text()).replace("{{", "x").replace("}}", "x"))
        with working_dir(project): nb_export("nbs/plugin.ipynb", lib_path=SENTINELS["package"])
        return without_sentinels((project / SENTINELS["package"] / "plugin.py").read_text())


def files() -> dict:
    "`{path under template_files: text}` of the files this script writes."
    plugin = notebook("plugin", PLUGIN_NOTEBOOK)
    return {"nbs/plugin.ipynb": plugin, "nbs/index.ipynb": notebook("index", INDEX), "README.md": INDEX.lstrip("\n"),
            "{{package}}/plugin.py.tmpl": exported_module(plugin), "tests/cassettes/notes.yaml": CASSETTE.read_text()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the files differ from what this script writes")
    args = parser.parse_args()
    stale = []
    for path, text in files().items():
        target = TEMPLATE / path
        if target.exists() and target.read_text() == text: continue
        stale.append(path)
        if not args.check:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    if args.check and stale:
        sys.exit(f"Error: template files out of date: {', '.join(stale)}; run python tools/template_files.py")
    print(f"{'stale' if args.check else 'wrote'}: {', '.join(stale) or 'nothing'}")


if __name__ == "__main__":
    main()
