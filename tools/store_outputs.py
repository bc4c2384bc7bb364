"""Run the notebooks in `nbs/` and store their outputs in the notebook files, as nbval will check them.

Run from the repository root after editing a notebook (then `python tools/build_docs.py` renders the docs from them):

    python tools/store_outputs.py                     # every notebook
    python tools/store_outputs.py pod.client index    # the ones named
    python tools/store_outputs.py --flags docker      # also run the cells flagged `#| docker` (a Docker daemon answers)

Each notebook runs in a fresh Jupyter kernel (nbclient, the kernel the notebook names, cwd `nbs/`, the
environment plus `KERNEL_ENV` of nbs/conftest.py), as `pytest --nbval` runs it. The cells `nbdev_test` skips
(`#| eval: false`, the `tst_flags` of settings.ini) are not run and keep the outputs they have. Streams are merged
and carriage returns applied (a tqdm bar keeps its last state), as nbval does before comparing. A cell whose new
outputs equal its stored ones once the patterns of `nbs/nbval_sanitize.cfg` mask what varies (ports, temp paths,
ids, times) keeps the stored ones, so running this twice changes nothing. The notebook is then cleaned as
`nbdev_clean` does (no execution counts, no metadata beyond settings.ini's), and its metadata records a digest of
the code the outputs come from (`pymemri.outputs_of`), so `tools/build_docs.py` can tell a notebook whose code
changed since. A notebook with a failing cell is left as it was, and the command exits 1 naming the cell.
"""
import argparse, configparser, copy, hashlib, importlib.util, json, os, re, shutil, sys, tempfile, time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from execnb.nbio import write_nb
from nbdev.clean import clean_nb
from nbdev.config import get_config
from nbdev.process import extract_directives
from traitlets.config import Config

ROOT = Path(__file__).resolve().parent.parent
NBS, SANITIZE = ROOT / "nbs", ROOT / "nbs" / "nbval_sanitize.cfg"
SETTINGS = configparser.ConfigParser(interpolation=None)
SETTINGS.read(ROOT / "settings.ini")
SETTINGS = SETTINGS["DEFAULT"]
SKIP, WIDGET = "skip-execution", "application/vnd.jupyter.widget-view+json"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def kernel_env() -> dict:
    "`KERNEL_ENV` of nbs/conftest.py: what the environment of nbval's kernels has added."
    spec = importlib.util.spec_from_file_location("pymemri_nbs_conftest", NBS / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.KERNEL_ENV


def code_digest(nb: dict) -> str:
    "A digest of the notebook's code cells: what its outputs depend on (prose does not count)."
    sources = ["".join(cell["source"]) for cell in nb["cells"] if cell["cell_type"] == "code"]
    return hashlib.sha256("\0".join(sources).encode()).hexdigest()[:12]


def outputs_current(nb: dict) -> bool:
    "Whether the outputs stored in `nb` (a notebook as JSON) come from its code as it is now."
    return nb.get("metadata", {}).get("pymemri", {}).get("outputs_of") == code_digest(nb)


class RunError(Exception): "A notebook that failed to run; the message names it and the cell."


def sanitize_patterns(path: Path = SANITIZE) -> list:
    "The (regex, replacement) pairs of an nbval sanitize file: `regex: ...` then `replace: ...` lines."
    return [(re.compile(regex), replace) for regex, replace in
            re.findall(r"^regex: (.*)$\n^replace: (.*)$", path.read_text(), flags=re.M)]


def sanitized(text: str, patterns: list) -> str:
    for regex, replace in patterns: text = regex.sub(replace, text)
    return text


def coalesced(outputs: list) -> list:
    "Outputs with each stream's pieces merged and `\\r`-overwritten line parts dropped, as nbval compares them."
    merged, streams = [], {}
    for out in outputs:
        if out.output_type != "stream": merged.append(out); continue
        if out.name in streams: streams[out.name].text += out.text
        else: streams[out.name] = out; merged.append(out)
    for out in streams.values():
        while re.search(r"[^\n]\x08", out.text): out.text = re.sub(r"[^\n]\x08", "", out.text)
        out.text = re.sub(r"^.*\r(?=[^\n])", "", out.text, flags=re.M)
    return merged


def comparable(outputs: list, patterns: list) -> list:
    "What nbval compares of `outputs`: stream texts and data by kind, sanitized; no counts, metadata or widget ids."
    found = []
    for out in coalesced(copy.deepcopy(outputs)):
        if out.output_type == "stream": found.append((out.name, sanitized(out.text, patterns)))
        elif out.output_type == "error": found.append(("error", out.ename, sanitized(out.evalue, patterns)))
        else: found += [(mime, sanitized(value, patterns) if isinstance(value, str) else value)
                        for mime, value in sorted(out.get("data", {}).items()) if mime != WIDGET]
    return found


def skipped(cell, skip_flags: set) -> bool:
    "Whether `nbdev_test` skips the cell: `#| eval: false`, or one of the test flags not asked for."
    found = extract_directives(copy.deepcopy(cell), remove=False)
    return found.get("eval:", [""])[0].lower() == "false" or bool(skip_flags & found.keys())


def run(path: Path, skip_flags: set, patterns: list) -> int:
    "Run the notebook at `path` and store its outputs; the number of cells whose outputs changed."
    raw = json.loads(path.read_text(encoding="utf-8"))  # written back as it was read, sources and all
    nb = nbformat.reads(json.dumps(raw), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and skipped(cell, skip_flags): cell.metadata.setdefault("tags", []).append(SKIP)
    current = {}
    sockets = Path(tempfile.mkdtemp(prefix="pymemri-kernel-"))  # ipc sockets: no TCP, no warning
    client = NotebookClient(nb, timeout=900, kernel_name=nb.metadata.get("kernelspec", {}).get("name", "python3"),
                            record_timing=False, allow_errors=False,
                            config=Config({"KernelManager": {"transport": "ipc", "ip": str(sockets / "kernel")}}),
                            on_cell_execute=lambda cell, cell_index: current.update(cell=cell, index=cell_index))
    try: client.execute(cwd=str(NBS), env={**os.environ, **kernel_env()})
    except Exception as error:
        cell, reason = current.get("cell"), ANSI.sub("", str(error)).strip()
        if cell is None: raise RunError(f"{path.name}: the kernel did not start: {reason}") from None
        raise RunError(f"{path.name}: cell {current['index']} (id {cell.get('id', '?')}) failed:\n"
                       + (reason if cell.source in reason else f"{cell.source}\n{reason}")) from None
    finally: shutil.rmtree(sockets, ignore_errors=True)
    changed = 0
    for old, new in zip(raw["cells"], nb.cells):
        if new.cell_type != "code" or SKIP in new.metadata.get("tags", []): continue
        outputs = coalesced(new.outputs)
        before = [nbformat.from_dict(out) for out in old.get("outputs", [])]
        if comparable(outputs, patterns) != comparable(before, patterns):
            old["outputs"], changed = json.loads(json.dumps(outputs)), changed + 1
    raw["metadata"]["pymemri"] = {"outputs_of": code_digest(raw)}  # settings.ini's allowed_metadata_keys keeps it
    config = get_config(path=ROOT)  # as nbdev_clean cleans: no execution counts, only the metadata settings.ini allows
    clean_nb(raw, config.clear_all, config.allowed_metadata_keys.split(), config.allowed_cell_metadata_keys.split(),
             config.clean_ids)
    write_nb(raw, path)
    return changed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="the notebooks to run (e.g. pod.client); default: all")
    parser.add_argument("--flags", nargs="+", default=[], metavar="FLAG",
                        help="also run the cells with these test flags, as nbdev_test --flags does (e.g. docker)")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks run at once (default: 2)")
    args = parser.parse_args()
    names = [name.removesuffix(".ipynb").removeprefix("nbs/") for name in args.names]
    missing = [name for name in names if not (NBS / f"{name}.ipynb").exists()]
    if missing: sys.exit(f"Error: no notebook {', '.join(f'nbs/{name}.ipynb' for name in missing)}")
    names = names or [path.stem for path in sorted(NBS.glob("*.ipynb"))]
    skip_flags, patterns = set(SETTINGS.get("tst_flags", "").split()) - set(args.flags), sanitize_patterns()
    failures, started = [], time.monotonic()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(run, NBS / f"{name}.ipynb", skip_flags, patterns): name for name in names}
        for future in as_completed(futures):
            name = futures[future]
            try: print(f"ok   {name}: {future.result()} cell(s) with new outputs", file=sys.stderr)
            except RunError as error: failures.append(str(error)); print(f"FAIL {name}", file=sys.stderr)
    print(f"ran {len(names)} notebook(s) in {time.monotonic() - started:.0f} s", file=sys.stderr)
    if failures:
        sys.exit("\n\n".join(f"Error: nbs/{failure}" for failure in failures)
                 + "\n\nThe notebooks that failed were not changed.")


if __name__ == "__main__": main()
