"""A plugin developer's own notebooks, tested the way they test them: `nbdev_test` and `pytest --nbval-lax`.

The notebooks are built here as a reader of the Plugins page writes them: `%load_ext pymemri` at the top
(the documented way to make failing shell cells fail), the page's `ExamplePlugin` as the page prints it,
and `!run_plugin` cells. Each runs in a fresh folder with a fresh `PYMEMRI_HOME` and no `POD_ADDRESS`.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

# The Plugins page's example plugin, exactly as the page shows it.
PAGE_EXAMPLE = '''from pymemri.pod.client import Dog
class ExamplePlugin(PluginBase):
    schema_classes = [Dog]
    def __init__(self, dog_name: str = "Bob", **kwargs):
        super().__init__(**kwargs)
        self.dog_name = dog_name
    def run(self):
        print("Started plugin run...")
        dog = Dog(self.dog_name, 10)
        self.client.create(dog)
        print("Run success!")
'''

PLUGIN_MODULE = "from pymemri.plugin.pluginbase import PluginBase\n" + PAGE_EXAMPLE
METADATA = {"pluginModule": "page_plugin", "pluginName": "ExamplePlugin", "config": {"dog_name": "Rex"}}

IN_THE_NOTEBOOK = '''import tempfile
from pymemri.plugin.pluginbase import PluginBase
from pymemri.pod.client import PodClient
from pymemri.server.serve import PodServer
server = PodServer(tempfile.mkdtemp()).start()
client = PodClient(server.url)'''

RUN_IT_HERE = '''plugin = ExamplePlugin(client=client)
plugin.add_to_schema()
plugin.run()
assert [(dog.name, dog.age) for dog in client.search(Dog)] == [("Bob", 10)]
server.stop()'''


def write_notebook(path: Path, *sources: str) -> Path:
    "A notebook at `path` whose code cells are `sources`."
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    notebook.metadata["kernelspec"] = {"display_name": "python3", "language": "python", "name": "python3"}
    nbformat.write(notebook, path)
    return path


@pytest.fixture
def project(tmp_path) -> Path:
    "A folder like a plugin project's: the page's plugin as a module, and its metadata."
    (tmp_path / "page_plugin.py").write_text(PLUGIN_MODULE)
    (tmp_path / "page_plugin.json").write_text(json.dumps(METADATA))
    return tmp_path


def run_tests(tool: str, notebook: Path) -> subprocess.CompletedProcess:
    "Run `tool` (nbdev_test or nbval) on `notebook` in its folder, as the developer would, in a clean environment."
    folder = notebook.parent
    drop = ("IN_TEST", "POD_ADDRESS", "PYMEMRI_HOME", "FORCE_COLOR")
    env = {name: value for name, value in os.environ.items() if name not in drop and not name.startswith(("PYTEST_", "JPY_"))}
    env.update(PYMEMRI_HOME=str(folder / "pymemri-home"), PYTHONPATH=str(folder), PY_COLORS="0",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if tool == "nbdev_test": command = ["nbdev_test", "--path", notebook.name, "--do_print"]
    else: command = [sys.executable, "-m", "pytest", "-q", "--nbval-lax", "-p", "no:cacheprovider", notebook.name]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("tool", ["nbdev_test", "nbval"])
def test_a_failing_run_plugin_cell_fails_the_notebook(project, tool):
    notebook = write_notebook(project / "plugin.ipynb", "%load_ext pymemri", "!run_plugin --metadata no_such_metadata.json",
                              "print('a later cell')")
    result = run_tests(tool, notebook)
    assert result.returncode != 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "CalledProcessError" in result.stdout + result.stderr, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.parametrize("tool", ["nbdev_test", "nbval"])
def test_without_the_extension_the_failure_passes_silently(project, tool):
    "What `%load_ext pymemri` is for: without it, IPython lets a failing shell command pass."
    notebook = write_notebook(project / "plugin.ipynb", "!run_plugin --metadata no_such_metadata.json", "print('a later cell')")
    result = run_tests(tool, notebook)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.parametrize("tool", ["nbdev_test", "nbval"])
def test_the_page_example_in_a_notebook_and_with_run_plugin(project, tool):
    "The page's plugin, run in the notebook and by `!run_plugin`, which stores the dog in the stored owner's embedded Pod."
    stored = ("from pymemri.pod.client import Dog, PodClient\n"
              "with PodServer() as pod: dogs = PodClient.from_local_keys(pod.url).search(Dog)\n"
              "assert [(dog.name, dog.age) for dog in dogs] == [('Rex', 10)], dogs")
    notebook = write_notebook(project / "plugin.ipynb", "%load_ext pymemri", IN_THE_NOTEBOOK, PAGE_EXAMPLE, RUN_IT_HERE,
                              "!run_plugin --metadata page_plugin.json", stored)
    result = run_tests(tool, notebook)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
