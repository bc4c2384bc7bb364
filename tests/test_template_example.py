"""The template's example plugin is the notes importer of `nbs/testing.notes_importer.ipynb`, written out a second time
in `tools/template_files.py` (a new project's notebook must stand alone). This keeps the two copies from drifting."""
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def exported_code(notebook: Path, class_name: str) -> list:
    "The `#| export` cells of `notebook` that aren't imports, with the plugin class named `{{plugin_class}}` and comments dropped."
    cells = ["".join(cell["source"]) for cell in json.loads(notebook.read_text())["cells"] if cell["cell_type"] == "code"]
    code = [source for source in cells if source.startswith("#| export\n") and not re.match(r"(from|import) ", source.split("\n")[1])]
    return [re.sub(r"  # .*$", "", source.replace(class_name, "{{plugin_class}}"), flags=re.MULTILINE) for source in code]


def test_the_template_example_is_the_notes_importer_page():
    page = exported_code(ROOT / "nbs" / "testing.notes_importer.ipynb", "NotesImporter")
    template = exported_code(ROOT / "pymemri" / "plugin" / "template_files" / "nbs" / "plugin.ipynb", "{{plugin_class}}")
    assert len(page) >= 4 and page == template, "edit both: nbs/testing.notes_importer.ipynb and tools/template_files.py"
