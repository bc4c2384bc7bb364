"""The three layers: the client and plugin SDK (`data`, `pod`, `plugin`), the embedded Pod (`server`) and what
tests use (`testing`). The client layer imports neither of the others, so a plain install needs none of their
dependencies; the one exception is the command-line tools' lazy import of the embedded Pod, which names the
extra when it is missing."""
import ast
import configparser
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pymemri"
CLIENT_LAYER = ("data", "pod", "plugin")
HEAVY = ("fastapi", "uvicorn", "starlette", "sqlcipher3", "graphql", "nacl", "IPython", "ipywidgets", "authlib", "vcr")
LAZY_SERVER_IMPORTS = {("plugin/cli_options.py", "pymemri.server.auth"), ("plugin/cli_options.py", "pymemri.server.serve"),
                       ("plugin/cli_options.py", "pymemri.server.private")}  # pod_for_cli starts an embedded Pod


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])


def module_from(node: ast.ImportFrom, package: str) -> str:
    "The module a `from … import` in `package` imports from, relative imports resolved."
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return (f"{base}.{node.module}" if node.level else node.module) or base


def imported_modules(path: Path):
    "(module, is_top_level) for every import in `path`, relative imports resolved."
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names: yield alias.name, id(node) in top
        elif isinstance(node, ast.ImportFrom): yield module_from(node, package_of(path)), id(node) in top


def imports_of(layer: str):
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for module, top_level in imported_modules(path):
            yield str(path.relative_to(PACKAGE)), module, top_level


def test_the_client_layer_imports_neither_server_nor_testing():
    found = {(file, module) for layer in CLIENT_LAYER for file, module, _ in imports_of(layer)
             if module.startswith(("pymemri.server", "pymemri.testing"))}
    assert found == LAZY_SERVER_IMPORTS


def test_the_client_layer_imports_no_heavy_dependency_at_module_level():
    found = [(file, module) for layer in CLIENT_LAYER for file, module, top in imports_of(layer)
             if top and module.split(".")[0] in HEAVY]
    assert found == []


def test_the_server_layer_uses_the_client_layer_only_for_wire_format_and_constants():
    found = {module for file, module, _ in imports_of("server") if module.startswith("pymemri.")}
    assert not {module for module in found if module.startswith(("pymemri.plugin", "pymemri.testing"))}, found


def private_server_imports(source: str, package: str = "pymemri.server"):
    "(module, name) for each `_private` name that `source`, a module of `package`, imports from a server module."
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and module_from(node, package).startswith("pymemri.server"):
            yield from ((module_from(node, package), alias.name) for alias in node.names if alias.name.startswith("_"))


def test_server_modules_import_no_private_name_from_each_other():
    assert list(private_server_imports("from .store import INT64_MAX, _describe\nfrom pymemri.server.db import _connect")) == \
        [("pymemri.server.store", "_describe"), ("pymemri.server.db", "_connect")]
    found = [f"{path.name} imports {name} from {module}" for path in sorted((PACKAGE / "server").glob("*.py"))
             for module, name in private_server_imports(path.read_text())]
    assert found == [], "a private helper shared between server modules (make it public, or move it): " + "; ".join(found)


RUN_SHELLS = ("plugin/cli.py", "plugin/__main__.py", "plugin/doctor.py", "testing/suite.py")  # thin shells over plugin.runner


def test_the_shells_over_a_plugin_run_import_the_runner_not_the_cli():
    for file in RUN_SHELLS:
        modules = {module for module, _ in imported_modules(PACKAGE / file)}
        assert "pymemri.plugin.runner" in modules, f"{file} does not import pymemri.plugin.runner"
        assert file == "plugin/cli.py" or "pymemri.plugin.cli" not in modules, f"{file} imports pymemri.plugin.cli"
    runner = {module for module, _ in imported_modules(PACKAGE / "plugin/runner.py")}
    assert not {module for module in runner if module.startswith("pymemri.plugin.cli") and module != "pymemri.plugin.cli_options"}
    settings = configparser.ConfigParser(delimiters=["="])
    settings.read(ROOT / "settings.ini")
    scripts = dict(line.split("=", 1) for line in settings["DEFAULT"]["console_scripts"].split())
    assert scripts["run_plugin"] == "pymemri.plugin.runner:run_plugin", scripts["run_plugin"]


def test_a_plain_install_requires_none_of_the_heavy_packages():
    settings = configparser.ConfigParser(delimiters=["="])
    settings.read(ROOT / "settings.ini")
    plain = settings["DEFAULT"]["requirements"].lower()
    for name in ("fastapi", "uvicorn", "starlette", "sqlcipher", "graphql-core", "pynacl", "ipython", "ipywidgets", "authlib"):
        assert name not in plain, name


BLOCK_HEAVY = f"""
import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HEAVY!r}: raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Blocker())
"""


def run_without_heavy_packages(code: str, tmp_path: Path, *args) -> subprocess.CompletedProcess:
    "Run the Python `code` with `args`, as a script for which the extras' packages are not installed."
    script = tmp_path / "script.py"
    script.write_text(BLOCK_HEAVY + code)
    env = {name: value for name, value in os.environ.items() if name != "POD_ADDRESS"}
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, cwd=ROOT,
                          env={**env, "PYMEMRI_HOME": str(tmp_path / "home")}, timeout=120)


def test_the_sdk_imports_without_the_extras(tmp_path):
    result = run_without_heavy_packages("import pymemri.plugin.pluginbase, pymemri.pod.client, pymemri.plugin.cli\n"
                                        "import pymemri.plugin.authenticators.password, pymemri.plugin.authenticators.oauth\n"
                                        "import pymemri.plugin.http, pymemri.plugin.checkpoints, pymemri.plugin.doctor\n"
                                        "import pymemri.plugin.runner\n"
                                        "from pymemri.pod.client import Dog\nprint(Dog('Rex', 3))", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Dog(name='Rex', age=3)"


def test_run_plugin_without_a_pod_or_the_pod_extra_names_the_extra(tmp_path):
    result = run_without_heavy_packages("from pymemri.plugin.cli import run_plugin\nrun_plugin()", tmp_path,
                                        "--metadata", "example_plugin.json")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith("Error: no Pod answers") and last.endswith("pip install 'pymemri[pod]'"), last


SECRET_RULE = "pymemri.data.secrecy"
HIDE_SECRETS = ("plugin/http.py", "testing/suite.py", "plugin/authenticators/prompts.py", "plugin/doctor.py", "testing/cassettes.py",
                "server/changes.py")
RULE_NAMES = {"is_secret_name", "is_secret_schema", "secret_values", "redact", "REDACTED", "SECRET_NAME", "SECRET_PROPERTIES",
              "ACCOUNT_SECRETS", "secrets_of", "redacted", "mask_secrets"}


def test_the_secret_rule_sits_in_the_data_layer_where_the_embedded_pod_may_use_it():
    ours = {module for module, _ in imported_modules(PACKAGE / "data" / "secrecy.py") if module.startswith("pymemri.")}
    assert ours and all(module.startswith("pymemri.data.") for module in ours), ours


def test_every_place_that_hides_secrets_takes_the_one_rule():
    for file in HIDE_SECRETS:
        assert SECRET_RULE in {module for module, _ in imported_modules(PACKAGE / file)}, file
    defined = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "data" / "secrecy.py": continue
        for node in ast.parse(path.read_text()).body:  # what a module defines
            names = [node.name] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else \
                [target.id for target in getattr(node, "targets", []) if isinstance(target, ast.Name)]
            defined += [(str(path.relative_to(PACKAGE)), name) for name in names if name in RULE_NAMES]
    assert defined == [], f"a second rule for what is secret: {defined}"
