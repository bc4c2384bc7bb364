"""Build the documentation site (`docs/`) and `README.md` from the notebooks in `nbs/`.

Run from the repository root:

    python tools/build_docs.py                  # run every notebook; write docs/*.html and README.md
    python tools/build_docs.py --only pod.client  # one page (index also rewrites README.md)
    python tools/build_docs.py --check          # build into a temp dir; fail if docs/ has other pages
    python tools/build_docs.py --jobs 2         # run two notebooks at a time (default: one)
    python tools/build_docs.py --flags docker   # also run the cells flagged `#| docker` (a Docker daemon answers)

Each notebook runs in a fresh Jupyter kernel with cwd `nbs/` and `PYMEMRI_HOME` set to a new temp
dir; the notebook file itself is never written. As with `nbdev_test`, cells marked `#| eval: false`
or with a test flag from settings.ini (`tst_flags`) are not run, unless the flag is given with `--flags`. For display, nbdev's processors
drop `#| hide` cells (source and outputs) and `#| hide_line` lines and strip directives;
`#| echo: false` hides a cell's source, `#| output: false` its outputs, `#| include: false` the cell.
Outputs are tidied as Jupyter shows them (progress bars keep their last state) and the temp
PYMEMRI_HOME is shown as `~/.pymemri`; an ipywidget shows its own static HTML if it has one
(`_repr_mimebundle_`), else a short note.

Pages are nbconvert's 'basic' HTML in a page that needs nothing from the network (one local
stylesheet, docs/style.css; no JavaScript) with a
sidebar of all pages, titled from each notebook's `# Title` and `> subtitle`; nbs/index.ipynb
becomes docs/index.html and, as GitHub markdown, README.md. If a notebook fails, the script names
the notebook and the cell, exits 1, and leaves docs/ and README.md as they were.
"""
import argparse, configparser, html, json, os, re, shutil, sys, tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import nbformat
from execnb.nbio import dict2nb, nb2dict
from nbclient import NotebookClient
from nbconvert import HTMLExporter, MarkdownExporter
from nbconvert.preprocessors import CoalesceStreamsPreprocessor
from nbdev.process import NBProcessor, extract_directives
from nbdev.processors import clean_magics, filter_stream_, hide_, hide_line, rm_header_dash
from pygments.formatters import HtmlFormatter
from traitlets.config import Config

ROOT = Path(__file__).resolve().parent.parent
NBS, DOCS = ROOT / "nbs", ROOT / "docs"
SETTINGS = configparser.ConfigParser(interpolation=None)
SETTINGS.read(ROOT / "settings.ini")
SETTINGS = SETTINGS["DEFAULT"]
GROUPS = {"index": "", "plugin": "Plugins", "data": "Data", "pod": "Pod"}  # sidebar order and headings
READING_ORDER = ["plugin.pluginbase", "plugin.cli", "plugin.states", "plugin.template", "plugin.authenticators.prompts",
                 "plugin.authenticators.password", "plugin.authenticators.oauth", "data.itembase", "data.schema",
                 "pod.client", "pod.api", "pod.keys", "pod.server", "pod.serve"]  # the rest follow, by name
WIDGET = "application/vnd.jupyter.widget-view+json"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TEMP_HOME = re.compile(re.escape(tempfile.gettempdir()) + r"/[\w.-]+(?=/(pod_keys|pod|plugins)\b)")  # PYMEMRI_HOME's folders


class BuildError(Exception): "A notebook that failed to run; the message names it and the cell."


def page_order(path: Path):
    group = path.stem.split(".")[0]
    rank = READING_ORDER.index(path.stem) if path.stem in READING_ORDER else len(READING_ORDER)
    return (list(GROUPS).index(group) if group in GROUPS else len(GROUPS)), rank, path.stem


def title_of(nb) -> tuple:
    "The notebook's `# Title` and `> subtitle`, from its first markdown cell with a title."
    for cell in nb.cells:
        title = re.search(r"^#\s+(.+?)\s*$", cell.source, re.M) if cell.cell_type == "markdown" else None
        if title:
            subtitle = re.search(r"^>\s*(.+?)\s*$", cell.source, re.M)
            return title.group(1), subtitle.group(1) if subtitle else ""
    return "", ""


def execute(path: Path, skip_flags: set) -> tuple:
    "Run the notebook at `path` in a new kernel: the executed notebook (JSON) and the PYMEMRI_HOMEs it used."
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        found = extract_directives(cell, remove=False) if cell.cell_type == "code" else {}
        if found.get("eval:", [""])[0].lower() == "false" or skip_flags & found.keys():
            cell.metadata.setdefault("tags", []).append("skip-execution")
    nb.cells.append(nbformat.v4.new_code_cell('import os; print(os.environ.get("PYMEMRI_HOME", ""), end="")'))
    work, current = tempfile.mkdtemp(prefix="pymemri-docs-"), {}
    home, sockets = os.path.join(work, "home"), os.path.join(work, "kernel")  # ipc sockets: no TCP, no warning
    client = NotebookClient(nb, timeout=600, kernel_name="python3", record_timing=False,
                            config=Config({"KernelManager": {"transport": "ipc", "ip": sockets}}),
                            on_cell_execute=lambda cell, cell_index: current.update(cell=cell, index=cell_index))
    try: os.mkdir(home); client.execute(cwd=str(NBS), env={**os.environ, "PYMEMRI_HOME": home})
    except Exception as error:
        cell, reason = current.get("cell"), ANSI.sub("", str(error)).strip()
        if cell is None: raise BuildError(f"{path.name}: the kernel did not start: {reason}") from None
        raise BuildError(f"{path.name}: cell {current['index']} (id {cell.get('id', '?')}) failed:\n"
                         + (reason if cell.source in reason else f"{cell.source}\n{reason}")) from None
    finally: shutil.rmtree(work, ignore_errors=True)
    probe = nb.cells.pop()
    homes = [home] + [out.text for out in probe.outputs if out.get("name") == "stdout" and out.text.strip()]
    return nbformat.writes(nb), homes


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


def show_options(cell):
    "Quarto-style options: `echo: false` hides the source, `output: false` the outputs, `include: false` the cell."
    if cell.cell_type != "code": return
    options = {key[:-1]: args[0].lower() for key, args in cell.directives_.items() if key.endswith(":") and args}
    if options.get("include") == "false": del cell["source"]; return
    if options.get("echo") == "false": cell.metadata["transient"] = {"remove_source": True}
    if options.get("output") == "false": cell.outputs = []
    cell.source = re.sub(r"\A(\s*#\|.*\n?)*", "", cell.source)


def for_display(nb_json: str, homes: list):
    "The executed notebook as it is shown: hidden cells and directives gone, outputs tidied."
    nb = nbformat.reads(nb_json, as_version=4)
    tidy_outputs(nb, homes)
    nb = dict2nb(json.loads(nbformat.writes(nb)))  # nbdev's processors work on execnb's form of a notebook
    NBProcessor(nb=nb, procs=[hide_, hide_line, filter_stream_, rm_header_dash, clean_magics, show_options]).process()
    nb = nbformat.reads(json.dumps(nb2dict(nb)), as_version=4)
    nb.cells = [cell for cell in nb.cells if cell.source.strip() or cell.get("outputs")]  # e.g. `#| default_exp`
    return nb


def ansi_css() -> str:
    "CSS for the classes nbconvert gives ANSI-coloured output (`ansi-red-fg`, `ansi-green-intense-bg`, …)."
    colours = dict(black="#3e424d #282c36", red="#e75c58 #b22b31", green="#00a250 #007427", yellow="#ddb62b #b27d12",
                   blue="#208ffb #0065ca", magenta="#d160c4 #a03196", cyan="#60c6c8 #258f8f", white="#c5c1b4 #a1a6b2")
    return "\n".join(f".ansi-{name}{kind}-fg{{color:{value}}} .ansi-{name}{kind}-bg{{background:{value}}}"
                     for name, values in colours.items() for kind, value in zip(("", "-intense"), values.split())
                     ) + "\n.ansi-bold{font-weight:bold} .ansi-underline{text-decoration:underline}"


CSS = """
body{margin:0;font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#212529;display:flex}
nav{position:sticky;top:0;height:100vh;overflow-y:auto;box-sizing:border-box;width:260px;flex:none;
 padding:1.5rem 1rem;background:#f7f7f9;border-right:1px solid #e3e3e8;font-size:.92rem}
nav .project{display:block;font-size:1.3rem;font-weight:600;color:#212529;text-decoration:none}
nav .tagline{color:#6c757d;margin:.2rem 0 1rem}
nav h4{margin:1.1rem 0 .3rem;font-size:.75rem;text-transform:uppercase;letter-spacing:.05em;color:#6c757d}
nav a.page{display:block;padding:.15rem .5rem;border-radius:4px;color:#343a40;text-decoration:none}
nav a.page:hover{background:#e9ecef} nav a.current{background:#dde7f7;font-weight:600}
main{flex:1;min-width:0;max-width:1100px;padding:1.5rem 2.5rem 4rem}
header h1{margin-bottom:.2rem} header .subtitle{color:#6c757d;font-size:1.15rem;margin-top:0}
a{color:#0b61c4} .anchor-link{visibility:hidden;margin-left:.3rem;text-decoration:none}
h2:hover .anchor-link,h3:hover .anchor-link,h4:hover .anchor-link{visibility:visible}
pre{margin:0;padding:.6rem .8rem;overflow-x:auto;font:13.5px/1.45 ui-monospace,Menlo,Consolas,monospace;white-space:pre}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em;background:#f1f3f5;padding:.05em .25em}
pre code{background:none;padding:0;font-size:inherit}
.text_cell_render pre{background:#f6f8fa;border-radius:4px}
.code_cell{margin:1rem 0} .input_area{background:#f6f8fa;border:1px solid #e3e6ea;border-radius:4px}
.output_area{border-left:3px solid #dfe3e8;margin-top:.25rem}
.output_area pre{background:none;white-space:pre-wrap;word-break:break-word}
.output_stderr{background:#fff5f5} .output_area img{max-width:100%}
.output_html{padding:.3rem .8rem} .widget-note{color:#6c757d;font-style:italic}
table{border-collapse:collapse} th,td{border:1px solid #dee2e6;padding:.25rem .6rem}
blockquote{margin:0;padding-left:1rem;border-left:3px solid #dee2e6;color:#495057}
@media (max-width:800px){body{display:block} nav{position:static;width:auto;height:auto}}
"""
def stylesheet() -> str:
    "The site's one stylesheet: layout, ANSI colours of outputs, and code highlighting."
    return CSS + ansi_css() + "\n" + HtmlFormatter(style="default").get_style_defs(".highlight") + "\n"


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{plain_title} | {project}</title>
<link rel="stylesheet" href="style.css"></head>
<body><nav><!-- sidebar -->{sidebar}<!-- /sidebar --></nav>
<main><header><h1>{title}</h1>{subtitle}</header>
{body}
</main></body></html>
"""


def sidebar(pages: dict, current: str) -> str:
    "Links to every page, under their group's heading; the index is the project's name at the top."
    items = [f'<a class="project" href="index.html">{html.escape(SETTINGS["title"])}</a>',
             f'<p class="tagline">{html.escape(SETTINGS["description"])}</p>']
    heading = ""
    for name, (title, subtitle) in pages.items():
        if name == "index": continue
        group = GROUPS.get(name.split(".")[0], "More")
        if group != heading: items.append(f"<h4>{group}</h4>"); heading = group
        current_class = " current" if name == current else ""
        title, subtitle = (html.escape(text.replace("`", "")) for text in (title or name, subtitle))
        items.append(f'<a class="page{current_class}" href="{name}.html" title="{subtitle}">{title}</a>')
    return "\n".join(items)


def link_pages(markdown: str, pages: dict) -> str:
    "Links to `notebook.ipynb` go to its page, and a page's name in backticks (`pod.client`) links to it."
    markdown = re.sub(r"(\w[\w.-]*)\.ipynb\b", r"\1.html", markdown)
    link = lambda m: f"[`{m[1]}`]({m[1]}.html)" if m[1] in pages and m[1] != "index" else m[0]
    return re.sub(r"(?<!\[)`([\w.]+)`(?!\])", link, markdown)


def render_page(name: str, nb, pages: dict) -> str:
    "One page of the site: the notebook, less its title and subtitle, which the header shows."
    for cell in nb.cells:
        if cell.cell_type == "markdown": cell.source = link_pages(cell.source, pages)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and re.search(r"^#\s+\S", cell.source, re.M):
            without_title = re.sub(r"^#\s+.*\n?", "", cell.source, count=1, flags=re.M)
            cell.source = re.sub(r"^>.*\n?", "", without_title, count=1, flags=re.M)
            break
    exporter = HTMLExporter(template_name="basic", exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    title, subtitle = (re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text)) for text in pages[name])
    return PAGE.format(title=title or name, plain_title=html.escape(pages[name][0] or name),
                       project=html.escape(SETTINGS["title"]), sidebar=sidebar(pages, name), body=body,
                       subtitle=f'<p class="subtitle">{subtitle}</p>' if subtitle else "")


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


def run_notebooks(names: list, jobs: int, flags: list = ()) -> dict:
    "Execute the notebooks `names`, `jobs` at a time, running the cells flagged with `flags`; exit 1 naming every one that failed."
    skip_flags, results, failures = set(SETTINGS.get("tst_flags", "").split()) - set(flags), {}, []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(execute, NBS / f"{name}.ipynb", skip_flags): name for name in names}
        for future in as_completed(futures):
            try: results[futures[future]] = future.result()
            except BuildError as error: failures.append(str(error))
            print(f"{'ok  ' if futures[future] in results else 'FAIL'} {futures[future]}", file=sys.stderr)
    if failures:
        sys.exit("\n\n".join(f"Error: nbs/{failure}" for failure in failures) + "\n\nThe docs were not changed.")
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", metavar="NAME", help="rebuild this page only (e.g. pod.client)")
    parser.add_argument("--check", action="store_true", help="fail if docs/ does not have exactly these pages")
    parser.add_argument("--jobs", type=int, default=1,
                        help="notebooks run at once (faster, but cells sensitive to timing may fail)")
    parser.add_argument("--flags", nargs="+", default=[], metavar="FLAG",
                        help="also run the cells with these test flags, as nbdev_test --flags does (e.g. docker)")
    args = parser.parse_args()
    paths = sorted(NBS.glob("*.ipynb"), key=page_order)
    pages = {path.stem: title_of(nbformat.read(path, as_version=4)) for path in paths}  # name: (title, subtitle)
    only = args.only and args.only.removesuffix(".ipynb")
    if only and only not in pages: sys.exit(f"Error: no notebook nbs/{only}.ipynb")
    names = [only] if only and not args.check else list(pages)
    results = run_notebooks(names, args.jobs, args.flags)

    build = Path(tempfile.mkdtemp(prefix="pymemri-site-"))
    try:
        for name in names:
            (build / f"{name}.html").write_text(render_page(name, for_display(*results[name]), pages))
        readme = render_readme(for_display(*results["index"])) if "index" in names else None
        if args.check:
            built, present = {p.name for p in build.glob("*.html")}, {p.name for p in DOCS.glob("*.html")}
            if built != present:
                sys.exit(f"Error: docs/ is out of date: pages missing {sorted(built - present)}, "
                         f"pages extra {sorted(present - built)}")
            return print(f"docs/ has the right {len(built)} pages")
        DOCS.mkdir(exist_ok=True)
        if not only:  # a full build removes the pages of notebooks that are gone
            for page in DOCS.glob("*.html"):
                if page.stem not in pages: page.unlink()
        for page in build.glob("*.html"): shutil.move(page, DOCS / page.name)
        (DOCS / "style.css").write_text(stylesheet())
        for page in DOCS.glob("*.html"):  # keep every sidebar up to date, also after --only
            text = page.read_text()
            nav = f"<!-- sidebar -->{sidebar(pages, page.stem)}<!-- /sidebar -->"
            fresh = re.sub(r"<!-- sidebar -->.*?<!-- /sidebar -->", lambda m: nav, text, flags=re.S)
            if fresh != text: page.write_text(fresh)
        if readme is not None: (ROOT / "README.md").write_text(readme)
        print(f"wrote {len(names)} page(s) to docs/" + (" and README.md" if readme else ""))
    finally: shutil.rmtree(build, ignore_errors=True)


if __name__ == "__main__": main()
