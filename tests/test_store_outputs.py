"""`tools/store_outputs.py`: it stores what a notebook prints as nbval will check it, keeps what the sanitizer says
is the same, leaves flagged cells alone, and running it twice changes nothing."""
import importlib.util
import json
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("store_outputs", ROOT / "tools" / "store_outputs.py")
store_outputs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(store_outputs)
PATTERNS = store_outputs.sanitize_patterns()


def stream(text: str, name: str = "stdout"): return nbformat.v4.new_output("stream", name=name, text=text)


def test_values_that_vary_compare_equal_and_others_do_not():
    run = "Run 0a5fc850b98d440d802688df3f1e1ad8 at http://127.0.0.1:41234 in /tmp/tmpab12cd34/pod\n"
    again = "Run e40d0aa5515a45b3a42d8c881030a9ee at http://127.0.0.1:39781 in /tmp/tmpzz99yy88/pod\n"
    assert store_outputs.comparable([stream(run)], PATTERNS) == store_outputs.comparable([stream(again)], PATTERNS)
    assert store_outputs.comparable([stream(run)], PATTERNS) != store_outputs.comparable([stream(run.replace("Run", "Job"))], PATTERNS)
    assert store_outputs.comparable([stream(run)], PATTERNS) != store_outputs.comparable([stream(run, "stderr")], PATTERNS)


def test_a_progress_bar_keeps_its_last_state():
    bar = stream(" 50%|█████     | 1/2 [00:00<00:00, 10.1it/s]\r100%|██████████| 2/2 [00:00<00:00, 12.3it/s]\n", "stderr")
    (out,) = store_outputs.coalesced([bar])
    assert out.text == "100%|██████████| 2/2 [00:00<00:00, 12.3it/s]\n"
    assert store_outputs.sanitized(out.text, PATTERNS) == "PROGRESS| 2/2 [TIME]\n"


def test_stores_outputs_keeps_flagged_cells_and_changes_nothing_the_second_time(tmp_path):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "python3", "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("import tempfile; print('data in', tempfile.mkdtemp())"),
                nbformat.v4.new_code_cell("#| slow\nprint('run only when asked')", outputs=[stream("stored earlier\n")]),
                nbformat.v4.new_code_cell("1 + 1")]
    path = tmp_path / "example.ipynb"
    path.write_text(json.dumps(nb))
    assert store_outputs.run(path, {"slow"}, PATTERNS) == 2
    stored = json.loads(path.read_text())
    first, flagged, result = (cell["outputs"] for cell in stored["cells"])
    assert first[0]["text"].startswith("data in /tmp") and flagged[0]["text"] == "stored earlier\n"
    assert result[0]["data"]["text/plain"] == "2" and result[0]["execution_count"] is None
    assert all(cell["execution_count"] is None for cell in stored["cells"]) and store_outputs.outputs_current(stored)
    before = path.read_text()
    assert store_outputs.run(path, {"slow"}, PATTERNS) == 0  # a new temp folder, masked: the stored output stays
    assert path.read_text() == before
