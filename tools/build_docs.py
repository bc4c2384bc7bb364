"""Build the documentation site (`docs/`) and `README.md` from the notebooks in `nbs/`.

Run from the repository root:

    python tools/build_docs.py                    # write docs/ and README.md
    python tools/build_docs.py --only pod.client  # one page (index also rewrites README.md)
    python tools/build_docs.py --check            # fail, naming them, if pages in docs/ differ from a fresh build

No notebook is run: each page shows the outputs its notebook stores, which `python tools/store_outputs.py`
writes (and `pytest --nbval` checks). A notebook whose code changed since its outputs were stored is an error
that names it and the command that stores them, and nothing is written.

For display, nbdev's processors drop `#| hide` cells and `#| hide_line` lines, and nbdev's `add_show_docs`
adds a `show_doc` section after each export cell for every public name it defines (plus a class's public
methods): an anchored heading in nbdev's format (`page.html#podclient.create`, as in `pymemri/_modidx.py`),
the signature, the docstring and the docments table, rendered by a subclass of nbdev's `BasicMarkdownRenderer`
from the exported module. The export cell's source follows, folded; names without a section (private helpers,
dunder methods) are anchored there. `#| echo: false` hides a cell's source, `#| output: false` its outputs,
`#| include: false` the cell. Outputs are tidied as Jupyter shows them and temp homes read `~/.pymemri`.

Every page has the sidebar (`SIDEBAR`: group title -> pages), a table of contents, and a search box
backed by `docs/search-index.js`; the layout and the script come from `tools/site/`, and nothing is loaded
from the network. Values that change from run to run
(loopback ports, hex ids, millisecond times) don't count as changes: a page whose only differences are
those is left as it is, so rebuilding changes nothing, and `--check` compares everything else.
"""
import argparse, ast, configparser, functools, html, importlib, inspect, json, re, sys, tempfile, textwrap
from pathlib import Path

import nbformat
from execnb.nbio import dict2nb, mk_cell, nb2dict
from fastcore.docments import DocmentTbl
from nbconvert import HTMLExporter, MarkdownExporter
from nbconvert.filters import markdown2html_mistune
from nbconvert.preprocessors import CoalesceStreamsPreprocessor
from nbdev.process import NBProcessor
from nbdev.processors import add_show_docs, clean_magics, filter_stream_, hide_, hide_line, rm_header_dash
from nbdev.showdoc import BasicMarkdownRenderer, showdoc_nm
from pygments.formatters import HtmlFormatter
from traitlets.config import Config

ROOT = Path(__file__).resolve().parent.parent
NBS, DOCS, ASSETS = ROOT / "nbs", ROOT / "docs", ROOT / "tools" / "site"  # ASSETS: the site's own CSS and JS
SETTINGS = configparser.ConfigParser(interpolation=None)
SETTINGS.read(ROOT / "settings.ini")
SETTINGS = SETTINGS["DEFAULT"]
sys.path.insert(0, str(ROOT))  # document the pymemri of this checkout
sys.path.insert(0, str(ROOT / "tools"))
from store_outputs import outputs_current, sanitize_patterns  # noqa: E402

SIDEBAR = {  # group title: its pages (notebook names) in reading order; `index` is the home page
    "Client and plugin SDK": ["plugin.pluginbase", "plugin.runner", "plugin.cli", "plugin.cli_options", "plugin.entrypoint",
                              "plugin.notebooks", "plugin.states", "plugin.template", "plugin.http", "plugin.checkpoints", "plugin.doctor",
                              "plugin.authenticators.prompts", "plugin.authenticators.password",
                              "plugin.authenticators.oauth", "data.itembase", "data.schema", "data.secrecy", "pod.client", "pod.api",
                              "pod.keys"],
    "Embedded Pod": ["server.app", "server.calls", "server.routes", "server.changes", "server.runs", "server.serve", "server.store",
                     "server.db", "server.search", "server.graphql",
                     "server.auth", "server.files", "server.launchers", "server.kubernetes", "server.private"],
    "Testing": ["testing", "testing.suite", "testing.fixtures", "testing.forms", "testing.oauth_provider", "testing.cassettes",
                "testing.notes_service", "testing.notes_importer"],
}
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
WIDGET = "application/vnd.jupyter.widget-view+json"
LANGUAGE = {"name": "python", "pygments_lexer": "ipython3"}  # code is highlighted as IPython (`!cmd`, `%magic`)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TEMP_HOME = re.compile(re.escape(tempfile.gettempdir()) + r"/[\w.-]+(?=/(pod_keys|pod|plugins)\b)")  # PYMEMRI_HOME's folders
VOLATILE = [(re.compile(r"(?<=127\.0\.0\.1:)\d{2,5}|(?<=127\.0\.0\.1%3A)\d{2,5}"), "PORT"),  # values a rerun changes
            (re.compile(r"(?<![\w-])[0-9a-f]{16,64}(?![\w-])"), "HEX"), (re.compile(r"\b1[6-9]\d{11}\b"), "MILLIS"),
            (re.compile(r"(?<=state=)[\w-]{16,}"), "STATE")] + sanitize_patterns()  # and what nbval masks


class BuildError(Exception): "A notebook that failed to render; the message names it."


def title_of(nb) -> tuple:
    "The notebook's `# Title` and `> subtitle`, from its first markdown cell with a title."
    for cell in nb.cells:
        title = re.search(r"^#\s+(.+?)\s*$", cell.source, re.M) if cell.cell_type == "markdown" else None
        if title:
            subtitle = re.search(r"^>\s*(.+?)\s*$", cell.source, re.M)
            return title.group(1), subtitle.group(1) if subtitle else ""
    return "", ""


def module_of(nb) -> str:
    "The module the notebook exports to (`#| default_exp`), as an import path; '' if none."
    for cell in nb.cells:
        found = re.search(r"^#\|\s*default_exp\s+(\S+)", cell.source, re.M) if cell.cell_type == "code" else None
        if found: return f"{SETTINGS['lib_name']}.{found.group(1)}"
    return ""


# The notebooks, with the outputs tools/store_outputs.py stored in them

def load_notebooks(names: list) -> dict:
    "name: (notebook JSON, temp homes) for each of `names`, as stored; exit 1 naming those whose outputs are not current."
    results, stale_outputs = {}, []
    for name in names:
        raw = json.loads((NBS / f"{name}.ipynb").read_text(encoding="utf-8"))
        if not outputs_current(raw): stale_outputs.append(name)
        results[name] = json.dumps(raw), []
    if stale_outputs:
        sys.exit("Error: " + ", ".join(f"nbs/{name}.ipynb" for name in stale_outputs)
                 + ": code changed since the outputs were stored (or none were). Store them with: python tools/store_outputs.py "
                 + " ".join(stale_outputs) + "\nThe docs were not changed.")
    return results


def tidy_outputs(nb, homes: list):
    "Outputs as Jupyter shows them: streams merged, carriage returns applied, temp homes as ~/.pymemri."
    nb.metadata.pop("widgets", None)
    def tidy(text):
        for home in homes: text = text.replace(home, "~/.pymemri")
        text = TEMP_HOME.sub("~/.pymemri", text)  # homes a notebook made and left again
        return re.sub(r"\S*/ipykernel_\d+/\d+\.py", "<cell>", text)
    for cell in nb.cells:
        if cell.cell_type != "code": continue
        CoalesceStreamsPreprocessor().preprocess_cell(cell, {}, 0)
        for out in cell.outputs:
            if out.output_type == "stream":
                lines = out.text.replace("\r\n", "\n").split("\n")
                out.text = tidy("\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in lines))
            if out.output_type == "error": out.traceback = [tidy(line) for line in out.traceback]
            if WIDGET in out.get("data", {}):  # a widget's own static HTML if it has one, else a note
                del out.data[WIDGET]
                kind = out.data.get("text/plain", "Widget").split("(")[0]
                out.data.setdefault("text/html", f'<div class="widget-note">An interactive form ({html.escape(kind)}) '
                                                 "appears here when the notebook runs in Jupyter.</div>")
            for mime, value in out.get("data", {}).items():
                if isinstance(value, str) and mime.startswith("text/"): out.data[mime] = tidy(value)


# The API reference: nbdev's show_doc, rendered from the exported module

def anchor(name: str) -> str: return name.lower()  # nbdev's anchors, as in _modidx.py: `PodClient.create` -> podclient.create


def is_private(name: str) -> bool: return any(part.startswith("_") and not part.endswith("__") for part in name.split("."))


def defined_names(tree) -> list:
    "Every name an export cell defines, as nbdev's `_modidx.py` names them: functions, classes and their methods."
    names = []
    for node in tree.body:
        if not isinstance(node, DEFINITIONS): continue
        found = showdoc_nm(node)  # `Class.method` for a method added with @patch
        names += found if isinstance(found, list) else [found]
        if isinstance(node, ast.ClassDef):
            names += [f"{node.name}.{sub.name}" for sub in node.body if isinstance(sub, DEFINITIONS)]
    return names


def lookup(module, name: str):
    "The object `name` (e.g. `PodClient.create`) names in `module`; properties as themselves."
    owner, *rest = name.split(".")
    obj = getattr(module, owner)
    for part in rest: obj = inspect.getattr_static(obj, part)
    return obj.__func__ if isinstance(obj, (classmethod, staticmethod)) else obj


def short(annotation) -> str:
    "An annotation as it reads in code: `Optional[Item]`, not `typing.Optional[pymemri.data.itembase.Item]`."
    if isinstance(annotation, str): text = annotation
    elif inspect.isfunction(annotation): text = annotation.__name__  # e.g. fastcore's `store_true` of a CLI flag
    else: text = inspect.formatannotation(annotation)
    return re.sub(r"\b(?:[a-z_]\w*\.)+(?=[A-Za-z_])", "", text)


def written_defaults(sym) -> dict:
    "Each parameter's default as the source writes it: `Depends(pod_call)`, not the repr of what that made."
    try: tree = ast.parse(textwrap.dedent(inspect.getsource(sym.__init__ if inspect.isclass(sym) else sym)))
    except (OSError, TypeError, SyntaxError):  # a dataclass: its fields' defaults
        try: tree = ast.parse(textwrap.dedent(inspect.getsource(sym))) if inspect.isclass(sym) else None
        except (OSError, TypeError, SyntaxError): tree = None
        body = tree.body[0].body if tree and isinstance(tree.body[0], ast.ClassDef) else []
        return {node.target.id: ast.unparse(node.value) for node in body
                if isinstance(node, ast.AnnAssign) and node.value and isinstance(node.target, ast.Name)}
    node = next((node for node in ast.walk(tree) if isinstance(node, DEFINITIONS[:2])), None)
    if node is None: return {}
    positional = node.args.posonlyargs + node.args.args
    pairs = list(zip(positional[len(positional) - len(node.args.defaults):], node.args.defaults))
    pairs += [(arg, default) for arg, default in zip(node.args.kwonlyargs, node.args.kw_defaults) if default]
    return {arg.arg: ast.unparse(default) for arg, default in pairs}


def parameter(param, written: dict) -> str:
    "`name:type=default`, with `*`/`**` for variadic parameters and the default as written."
    text = {param.VAR_POSITIONAL: "*", param.VAR_KEYWORD: "**"}.get(param.kind, "") + param.name
    if param.annotation is not param.empty: text += f":{short(param.annotation)}"
    if param.default is not param.empty:
        default = getattr(param.default, "__name__", None) if callable(param.default) else None
        text += "=" + written.get(param.name, re.sub(r" at 0x[0-9a-f]+", "", default or repr(param.default)))
    return text


def signature_of(name: str, sym) -> str:
    "`name(param:type=default, ...) -> returns`, one parameter a line when that is long."
    if isinstance(sym, property):
        returns = inspect.signature(sym.fget).return_annotation
        return name + (f" -> {short(returns)}" if returns is not inspect.Signature.empty else "")
    try: sig = inspect.signature(sym)
    except (TypeError, ValueError): return name
    params, keyword_only, written = [], False, written_defaults(sym)
    for param in sig.parameters.values():
        if param.name in ("self", "cls") and not params: continue
        if param.kind == param.KEYWORD_ONLY and not keyword_only: params.append("*")
        keyword_only = keyword_only or param.kind in (param.KEYWORD_ONLY, param.VAR_POSITIONAL)
        params.append(parameter(param, written))
    shown = sig.return_annotation not in (sig.empty, None) and not inspect.isclass(sym)  # a class makes itself
    returns = f" -> {short(sig.return_annotation)}" if shown else ""
    one_line = f"{name}({', '.join(params)}){returns}"
    if len(one_line) <= 90 or not params: return one_line
    return f"{name}(\n" + "".join(f"    {param},\n" for param in params) + f"){returns}"


class ApiDoc(BasicMarkdownRenderer):
    "nbdev's show_doc for this site: an anchored heading, the signature, the docstring and the docments table."
    def __init__(self, sym, name: str, title_level: int = 3):
        self.raw = sym
        super().__init__(sym.fget if isinstance(sym, property) else sym, name=name, title_level=title_level)

    def _repr_markdown_(self):
        level, tag = self.title_level, anchor(self.nm)
        kind = "property" if isinstance(self.raw, property) else "class" if inspect.isclass(self.sym) else ""
        parts = [f'<h{level} id="{tag}" class="api">{html.escape(self.nm)}'
                 f'<a class="anchor-link" href="#{tag}">¶</a></h{level}>',
                 f"```python\n{(kind + ' ') if kind else ''}{signature_of(self.nm, self.raw)}\n```"]
        if self.docs: parts.append(re.sub(r"^(.+)$", r"*\1*", self.docs, count=1, flags=re.M))
        try: table = DocmentTbl(self.sym) if not kind == "property" else None
        except (TypeError, ValueError, OSError): table = None
        if table is not None:
            written = written_defaults(self.sym)
            for name, param in table.dm.items():  # `x=None` without an annotation has no type, not NoneType
                if param.get("anno") is type(None) and param.get("default") is None: param["anno"] = inspect.Parameter.empty
                if name in written: param["default"] = written[name]
            if table.has_docment: parts.append(str(table))
        return '<div class="api-entry">\n\n' + "\n\n".join(parts) + "\n\n</div>"


def api_cell(module, name: str, level: int):
    "A `show_doc(name)` cell whose output is its rendered section."
    try: sym = lookup(module, name)
    except AttributeError: raise BuildError(f"{module.__name__} has no {name}: run nbdev_export") from None
    cell = mk_cell(f"show_doc({name})")
    cell.metadata, cell.id = {"transient": {"remove_source": True}}, "api-" + re.sub(r"[^\w-]", "-", anchor(name))
    cell.outputs = [{"output_type": "display_data", "metadata": {},
                     "data": {"text/markdown": ApiDoc(sym, name, level)._repr_markdown_()}}]
    return cell


def only_imports(cell) -> bool:
    "Whether the cell only imports (and so has nothing to show)."
    return all(isinstance(node, (ast.Import, ast.ImportFrom)) for node in ast.parse(cell.source).body)


def folded(cell, shown: list):
    "The export cell's source, folded, with anchors for the names it defines that have no section of their own."
    tree = ast.parse(cell.source)
    targets = "".join(f'<span id="{anchor(name)}"></span>' for name in defined_names(tree) if name not in shown)
    fence = "`" * max([3] + [len(run) + 1 for run in re.findall(r"`{3,}", cell.source)])
    fold = mk_cell(f'<details class="source"><summary>{targets}Exported source</summary>\n\n'
                   f"{fence}python\n{cell.source.strip()}\n{fence}\n\n</details>", cell_type="markdown")
    fold.id = f"source-{cell.get('id') or cell.idx_}"
    return fold


def api_reference(nb, module_name: str):
    "Render the show_doc cells nbdev's `add_show_docs` added, with a class's public methods; fold the export cells."
    if not module_name: return
    module, cells, source, shown, classes = importlib.import_module(module_name), [], None, [], {}
    for cell in nb.cells:
        if getattr(cell, "has_sd", False):  # `show_doc(Name)`, right after the export cell that defines Name
            name = re.fullmatch(r"show_doc\((.+)\)", cell.source)[1]
            cells.append(api_cell(module, name, 3)); shown.append(name)
            for sub in getattr(classes.get(name), "body", []):
                if isinstance(sub, DEFINITIONS[:2]) and not sub.name.startswith("_"):
                    cells.append(api_cell(module, f"{name}.{sub.name}", 4)); shown.append(f"{name}.{sub.name}")
            continue
        if source is not None: cells.append(folded(source, shown)); source = None
        if cell.cell_type != "code" or "export" not in cell.directives_: cells.append(cell)
        elif not only_imports(cell):  # an export cell of imports only is not shown
            source, shown = cell, []
            classes = {node.name: node for node in ast.parse(cell.source).body if isinstance(node, ast.ClassDef)}
    if source is not None: cells.append(folded(source, shown))
    nb.cells = cells


# From notebook to page

def show_options(cell):
    "Quarto-style options: `echo: false` hides the source, `output: false` the outputs, `include: false` the cell."
    if cell.cell_type != "code": return
    options = {key[:-1]: args[0].lower() for key, args in cell.directives_.items() if key.endswith(":") and args}
    if options.get("include") == "false": del cell["source"]; return
    if options.get("echo") == "false": cell.metadata["transient"] = {"remove_source": True}
    if options.get("output") == "false": cell.outputs = []
    cell.source = re.sub(r"\A(\s*#\|.*\n?)*", "", cell.source)


def for_display(nb_json: str, homes: list, outputs: bool = True):
    "The notebook as it is shown: hidden cells and directives gone, outputs tidied, the API reference added."
    nb = nbformat.reads(nb_json, as_version=4)
    nb.metadata.setdefault("language_info", LANGUAGE)  # what a kernel reports, which nbdev_clean drops
    module_name = module_of(nb)
    if outputs: tidy_outputs(nb, homes)
    else:
        for cell in nb.cells:
            if cell.cell_type == "code": cell.outputs = []
    nb = dict2nb(json.loads(nbformat.writes(nb)))  # nbdev's processors work on execnb's form of a notebook
    NBProcessor(nb=nb, procs=[add_show_docs, hide_, hide_line, filter_stream_, rm_header_dash, clean_magics,
                              show_options], rm_directives=False).process()
    api_reference(nb, module_name)
    nb = nbformat.reads(json.dumps(nb2dict(nb)), as_version=4)
    nb.cells = [cell for cell in nb.cells if cell.source.strip() or cell.get("outputs")]  # e.g. `#| default_exp`
    return nb


def symbol_links() -> dict:
    "`Name` and `Class.method` of every public symbol in _modidx.py: its page and anchor (names in two modules: none)."
    index = importlib.import_module(f"{SETTINGS['lib_name']}._modidx").d["syms"]
    found = {}
    for module, symbols in index.items():
        for full, (link, _) in symbols.items():
            short = full[len(module) + 1:]
            if is_private(short) or "__" in short: continue
            found[short] = None if short in found and found[short] != link else link
            found[full] = link
    return {name: link for name, link in found.items() if link}


def link_names(markdown: str, pages: dict, symbols: dict) -> str:
    "Links to `notebook.ipynb` go to its page; a page's name (`pod.client`) or an API name (`PodClient`) in backticks links to it."
    markdown = re.sub(r"(\w[\w.-]*)\.ipynb\b", r"\1.html", markdown)
    def link(match):
        name = match[1].removesuffix("()")
        target = f"{name}.html" if name in pages and name != "index" else symbols.get(name)
        return f"[`{match[1]}`]({target})" if target else match[0]
    parts = re.split(r"(^```.*?^```)", markdown, flags=re.M | re.S)  # code blocks stay as they are
    return "".join(part if part.startswith("```") else re.sub(r"(?<![\[`])`([\w.]+(?:\(\))?)`(?![\]`])", link, part)
                   for part in parts)


def without_title(nb):
    "The notebook less its `# Title` and `> subtitle`, which the page's header shows."
    for cell in nb.cells:
        if cell.cell_type == "markdown" and re.search(r"^#\s+\S", cell.source, re.M):
            rest = re.sub(r"^#\s+.*\n?", "", cell.source, count=1, flags=re.M)
            cell.source = re.sub(r"^>.*\n?", "", rest, count=1, flags=re.M)
            return nb
    return nb


def linked(nb, pages: dict, symbols: dict):
    for cell in nb.cells:
        if cell.cell_type == "markdown": cell.source = link_names(cell.source, pages, symbols)
        for out in cell.get("outputs", []):
            if "text/markdown" in out.get("data", {}):
                out.data["text/markdown"] = link_names(out.data["text/markdown"], pages, symbols)
    return nb


HEADING = re.compile(r'<h([2-4])(?= )(?=[^>]* id="([^"]+)")([^>]* class="api")?[^>]*>(.*?)<a class="anchor-link"', re.S)


def plain(fragment: str) -> str: return html.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


def contents(body: str) -> str:
    "The page's table of contents: its sections (h2) and what they document (h3)."
    links = [f'<a class="toc-h{level}{" toc-api" if api else ""}" href="#{tag}">{html.escape(plain(text))}</a>'
             for level, tag, api, text in HEADING.findall(body) if level in "23"]
    return '<h5>On this page</h5>\n' + "\n".join(links) if links else ""


def search_entries(name: str, nb, pages: dict) -> list:
    "What the search finds on a page: the page, its sections and API entries, each with a line of text (never outputs)."
    title, subtitle = (text.replace("`", "") for text in pages[name])
    entries, parts = [{"url": f"{name}.html", "title": title, "page": title, "text": subtitle}], []
    for cell in nb.cells:
        if cell.cell_type == "markdown": parts.append(markdown2html_mistune(cell.source))
        if cell.get("id", "").startswith("api-"): parts.append(markdown2html_mistune(cell.outputs[0].data["text/markdown"]))
    body = "\n".join(parts)
    for match in HEADING.finditer(body):
        after = body[match.end():match.end() + 3000]
        text = re.search(r"<p>(.*?)</p>", after, re.S)
        if match[3]: text = re.search(r"</pre>\s*</div>\s*<p><em>(.*?)</em>", after[:after.find("api-entry")], re.S)
        entries.append({"url": f"{name}.html#{match[2]}", "title": plain(match[4]), "page": title,
                        "text": plain(text[1])[:160] if text else "", **({"api": True} if match[3] else {})})
    return entries


@functools.cache
def exporter() -> HTMLExporter:
    return HTMLExporter(template_name="basic", exclude_input_prompt=True, exclude_output_prompt=True)


def render_body(nb) -> str: return exporter().from_notebook_node(nb)[0]


def sidebar(pages: dict, current: str) -> str:
    "The project, the search box, and every page under its group's title."
    items = [f'<a class="project" href="index.html">{html.escape(SETTINGS["title"])}</a>',
             f'<p class="tagline">{html.escape(SETTINGS["description"])}</p>',
             '<input id="search" type="search" placeholder="Search (press /)" autocomplete="off" aria-label="Search">',
             '<ol id="search-results"></ol>']
    for group, names in SIDEBAR.items():
        items.append(f"<h4>{html.escape(group)}</h4>")
        for name in names:
            title, subtitle = (html.escape(text.replace("`", "")) for text in pages[name])
            current_class = " current" if name == current else ""
            items.append(f'<a class="page{current_class}" href="{name}.html" title="{subtitle}">{title or name}</a>')
    return "\n".join(items)


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{plain_title} | {project}</title>
<link rel="stylesheet" href="style.css"></head>
<body><nav>{sidebar}</nav>
<main><header><h1>{title}</h1>{subtitle}</header>
{body}
</main>
<aside class="toc">{toc}</aside>
<script src="search-index.js"></script><script src="site.js"></script></body></html>
"""


def render_page(name: str, body: str, pages: dict) -> str:
    title, subtitle = (re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text)) for text in pages[name])
    return PAGE.format(title=title or name, plain_title=html.escape(pages[name][0].replace("`", "") or name),
                       project=html.escape(SETTINGS["title"]), sidebar=sidebar(pages, name), body=body,
                       toc=contents(body), subtitle=f'<p class="subtitle">{subtitle}</p>' if subtitle else "")


def render_readme(nb) -> str:
    "README.md: the index notebook as GitHub markdown, ANSI codes stripped."
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream": out.text = ANSI.sub("", out.text)
            for mime, value in out.get("data", {}).items():
                if isinstance(value, str) and mime.startswith("text/"): out.data[mime] = ANSI.sub("", value)
    exporter = MarkdownExporter(config=Config({"ExtractOutputPreprocessor": {"enabled": False}}))
    text, _ = exporter.from_notebook_node(nb)
    note = "<!-- Generated from nbs/index.ipynb by tools/build_docs.py: edit the notebook, not this file. -->\n\n"
    return note + re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


# The site's assets

def ansi_css() -> str:
    "CSS for the classes nbconvert gives ANSI-coloured output (`ansi-red-fg`, `ansi-green-intense-bg`, …)."
    colours = dict(black="#3e424d #282c36", red="#e75c58 #b22b31", green="#00a250 #007427", yellow="#ddb62b #b27d12",
                   blue="#208ffb #0065ca", magenta="#d160c4 #a03196", cyan="#60c6c8 #258f8f", white="#c5c1b4 #a1a6b2")
    return "\n".join(f".ansi-{name}{kind}-fg{{color:{value}}} .ansi-{name}{kind}-bg{{background:{value}}}"
                     for name, values in colours.items() for kind, value in zip(("", "-intense"), values.split())
                     ) + "\n.ansi-bold{font-weight:bold} .ansi-underline{text-decoration:underline}"


def stylesheet() -> str:
    "The site's one stylesheet: layout, ANSI colours of outputs, and code highlighting."
    layout = (ASSETS / "layout.css").read_text()
    return layout + ansi_css() + "\n" + HtmlFormatter(style="default").get_style_defs(".highlight") + "\n"


def search_index(entries: list) -> str:
    lines = ",\n".join(json.dumps(entry, ensure_ascii=False, sort_keys=True) for entry in entries)
    return f"// The site's search index, written by tools/build_docs.py.\nconst SEARCH_INDEX = [\n{lines}\n];\n"


# Building, writing and checking

def volatile(text: str) -> str:
    "`text` with the values a rerun changes (ports, hex ids, times) masked, for comparing two builds."
    for pattern, mask in VOLATILE: text = pattern.sub(mask, text)
    return text


def build(names: list, pages: dict) -> dict:
    "file name: content, for the pages `names`, README.md if the index is one of them, and the shared assets."
    symbols, files, entries = symbol_links(), {}, []
    results = load_notebooks(names)
    for name in pages:  # pages not built still give their search entries, from their prose and API reference
        try:
            if name in results: nb = for_display(*results[name])
            else: nb = for_display(nbformat.writes(nbformat.read(NBS / f"{name}.ipynb", as_version=4)), [], outputs=False)
        except BuildError as error: sys.exit(f"Error: nbs/{name}.ipynb: {error}")
        nb = linked(without_title(nb), pages, symbols)
        entries += search_entries(name, nb, pages)
        if name in results: files[f"{name}.html"] = render_page(name, render_body(nb), pages)
    if "index" in results: files["README.md"] = render_readme(for_display(*results["index"]))
    files.update({"style.css": stylesheet(), "site.js": (ASSETS / "site.js").read_text(),
                  "search-index.js": search_index(entries)})
    files.update({f"images/{image.name}": image.read_bytes() for image in sorted((NBS / "images").glob("*"))})  # pictures pages show
    return files


def path_of(file: str, docs: Path) -> Path: return ROOT / file if file == "README.md" else docs / file


def stale(files: dict, docs: Path) -> list:
    "The files whose content in `docs` (or README.md) differs from the fresh build, beyond volatile values."
    def differs(file, content):
        path = path_of(file, docs)
        if isinstance(content, bytes): return not path.exists() or path.read_bytes() != content
        return not path.exists() or volatile(path.read_text()) != volatile(content)
    return [file for file, content in files.items() if differs(file, content)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", metavar="NAME", help="rebuild this page only (e.g. pod.client)")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; fail, naming them, if pages differ from a fresh build")
    parser.add_argument("--docs", type=Path, default=DOCS, help="the site's folder (default: docs/)")
    args = parser.parse_args()
    names = [path.stem for path in sorted(NBS.glob("*.ipynb"))]
    listed = [name for group in SIDEBAR.values() for name in group]
    unlisted, missing = sorted(set(names) - set(listed) - {"index"}), sorted(set(listed) - set(names))
    if unlisted or missing:
        sys.exit(f"Error: SIDEBAR in tools/build_docs.py is out of date: add {unlisted} to a group"
                 * bool(unlisted) + ("; " * bool(unlisted and missing)) + f"remove {missing} (no such notebook)" * bool(missing))
    pages = {name: title_of(nbformat.read(NBS / f"{name}.ipynb", as_version=4)) for name in ["index"] + listed}
    only = args.only and args.only.removesuffix(".ipynb")
    if only and only not in pages: sys.exit(f"Error: no notebook nbs/{only}.ipynb")
    files = build([only] if only else list(pages), pages)

    if args.check:
        present = {path.name for path in args.docs.glob("*") if path.is_file()}
        extra = [] if only else sorted(present - set(files))
        outdated = stale(files, args.docs)
        if outdated or extra:
            sys.exit(f"Error: {args.docs} is out of date: " + "; ".join(
                [f"stale or missing: {', '.join(outdated)}"] * bool(outdated) + [f"extra: {', '.join(extra)}"] * bool(extra))
                + "\nRebuild with: python tools/build_docs.py")
        return print(f"{args.docs} is up to date ({len(files)} files checked)")
    args.docs.mkdir(exist_ok=True)
    if not only:  # a full build removes the files of notebooks that are gone
        for path in args.docs.glob("*"):
            if path.is_file() and path.name not in files: path.unlink()
    changed = stale(files, args.docs)
    for file in changed:
        path = path_of(file, args.docs)
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(files[file]) if isinstance(files[file], bytes) else path.write_text(files[file])
    print(f"built {len(files)} files; wrote {len(changed)}: {', '.join(changed) or 'none changed'}")


if __name__ == "__main__": main()
