"""The documentation site in `docs/`: its links resolve, it shows no private names, it has a search index and a
table of contents on every page, and `tools/build_docs.py --check` tells a fresh page from a stale one, from the
outputs the notebooks store (`tools/store_outputs.py`), without running them."""
import functools
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupyter_client
import pytest

from pymemri._modidx import d as modidx

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
spec = importlib.util.spec_from_file_location("build_docs", ROOT / "tools" / "build_docs.py")
build_docs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_docs)
store_outputs = sys.modules["store_outputs"]  # tools/store_outputs.py, which build_docs imports
PAGES = ["index"] + [name for names in build_docs.SIDEBAR.values() for name in names]


@functools.cache
def ids(page: str) -> set:
    return set(re.findall(r'\bid="([^"]+)"', (DOCS / page).read_text()))


def search_index() -> list:
    text = (DOCS / "search-index.js").read_text()
    return json.loads(text[text.index("["):text.rindex("]") + 1])


def test_every_modidx_link_resolves():
    links = [link for symbols in modidx["syms"].values() for link, _ in symbols.values()]
    anchors = {page: ids(page) for page in {link.split("#")[0] for link in links}}
    broken = [link for link in links if link.split("#")[1] not in anchors[link.split("#")[0]]]
    assert len(links) > 400 and not broken, broken[:10]


def test_api_reference_shows_public_names_only():
    private = [full for symbols in modidx["syms"].values() for full in symbols if "._" in full and "__" not in full]
    assert private, "_modidx.py lists private helpers, which the docs must not show"
    shown = []
    for page in PAGES:
        text = (DOCS / f"{page}.html").read_text()
        shown += [build_docs.plain(title) for _, _, api, title in build_docs.HEADING.findall(text) if api]
        toc = text[text.index('<aside class="toc">'):]
        shown += re.findall(r'<a class="toc-h\d toc-api" href="#[^"]+">([^<]+)</a>', toc)
    shown += [entry["title"] for entry in search_index() if entry.get("api")]
    assert {"PodClient", "PodClient.create", "PluginBase", "Item.add_edge"} <= set(shown)
    assert not [name for name in shown if build_docs.is_private(name)]


def test_api_entries_have_signature_docstring_and_parameter_table():
    text = (DOCS / "pod.client.html").read_text()
    entry = text[text.index('id="podclient"'):text.index("</table>", text.index('id="podclient"'))]
    assert "class PodClient(" in build_docs.plain(entry) and "<em>Items in one owner" in entry
    assert "<th><strong>Details</strong></th>" in entry and "Seconds to wait for an answer" in entry


def test_search_index_covers_every_page_and_resolves():
    entries = search_index()
    assert {entry["url"] for entry in entries} >= {f"{page}.html" for page in PAGES}
    for entry in entries:
        page, _, tag = entry["url"].partition("#")
        assert (DOCS / page).exists() and (not tag or tag in ids(page)), entry


def test_every_page_has_contents_sidebar_and_search():
    for page in PAGES:
        text = (DOCS / f"{page}.html").read_text()
        groups = re.findall(r"<h4>(.*?)</h4>", text[:text.index("</nav>")])
        assert groups == list(build_docs.SIDEBAR), page
        targets = re.findall(r'<a class="toc-h\d[^"]*" href="#([^"]+)"', text)
        assert (page == "index" or targets) and set(targets) <= ids(f"{page}.html"), page
        assert '<input id="search"' in text and '<script src="search-index.js">' in text, page


# an absolute path to a module of this package, as a warning or traceback shows it (URLs don't match: their
# folders follow a host name or another slash)
LOCAL_MODULE_PATH = re.compile(r"(?<![\w.:/])/(?:[\w.-]+/)+pymemri/[\w/]+\.py")


def test_pages_and_stored_outputs_name_no_folder_of_the_machine_that_stored_them():
    assert LOCAL_MODULE_PATH.search("/home/ada/src/pymemri/pymemri/plugin/cli.py:12: UserWarning")
    assert not LOCAL_MODULE_PATH.search("https://github.com/memri/pymemri/blob/main/pymemri/plugin/cli.py")
    files = [*DOCS.glob("*.html"), *(ROOT / "nbs").glob("*.ipynb"), ROOT / "README.md"]
    found = {path.name: match.group() for path in files if (match := LOCAL_MODULE_PATH.search(path.read_text()))}
    assert not found, found


def test_volatile_values_do_not_count_as_changes(tmp_path):
    before = "Pod at http://127.0.0.1:41234, run 0a5fc850b98d440d802688df3f1e1ad8 at 1795497803784"
    after = "Pod at http://127.0.0.1:39781, run e40d0aa5515a45b3a42d8c881030a9ee at 1795657777386"
    (tmp_path / "a.html").write_text(before)
    (tmp_path / "b.html").write_text(before)
    fresh = {"a.html": after, "b.html": before.replace("Pod at", "Pod on"), "c.html": before}
    assert build_docs.stale(fresh, tmp_path) == ["b.html", "c.html"]


def test_check_compares_every_page_without_running_a_notebook(tmp_path, monkeypatch, capsys):
    "`--check` builds every page from the outputs the notebooks store: no kernel starts, and only a changed file is named."
    def no_kernel(*args, **kwargs): raise AssertionError("build_docs started a kernel")
    for manager in (jupyter_client.KernelManager, jupyter_client.AsyncKernelManager):
        monkeypatch.setattr(manager, "start_kernel", no_kernel)
    docs = shutil.copytree(DOCS, tmp_path / "docs")
    index = docs / "search-index.js"
    index.write_text(index.read_text().replace("Pod", "P0d", 1))
    monkeypatch.setattr(sys, "argv", ["build_docs.py", "--check", "--docs", str(docs)])
    with pytest.raises(SystemExit) as exited: build_docs.main()
    named = re.search(r"out of date: stale or missing: (.*)", str(exited.value))
    assert named and named[1] == "search-index.js", exited.value  # every page, README.md and the stylesheet are fresh
    (docs / "search-index.js").write_text(index.read_text().replace("P0d", "Pod", 1))
    build_docs.main()
    assert f"{docs} is up to date" in capsys.readouterr().out


def test_a_notebook_whose_code_changed_since_its_outputs_were_stored_is_refused(tmp_path, monkeypatch):
    stored = json.loads((ROOT / "nbs" / "pod.keys.ipynb").read_text())
    assert store_outputs.outputs_current(stored)
    code = next(cell for cell in stored["cells"] if cell["cell_type"] == "code" and not cell["source"].startswith("#|"))
    code["source"] += "\nprint('a new line')"
    (tmp_path / "pod.keys.ipynb").write_text(json.dumps(stored))
    monkeypatch.setattr(build_docs, "NBS", tmp_path)
    with pytest.raises(SystemExit) as exited: build_docs.load_notebooks(["pod.keys"])
    assert "nbs/pod.keys.ipynb: code changed since the outputs were stored" in str(exited.value)
    assert "python tools/store_outputs.py pod.keys" in str(exited.value)
