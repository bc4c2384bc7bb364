"""`plugin_test_suite` applied to the documented example importers, as a plugin project's test file applies it to its plugin."""
from pathlib import Path

from pymemri.testing import plugin_test_suite
from pymemri.testing.notes_importer import NotesImporter
from pymemri.testing.suite import ExampleImporter

NOTES_CASSETTE = Path(__file__).resolve().parents[1] / "nbs" / "cassettes" / "notes.yaml"  # recorded on the notes importer's page

TestExampleImporter = plugin_test_suite(ExampleImporter, config={"api_token": "tok-for-the-suite", "page_size": 2},
                                        account={"service": "notes", "identifier": "ada", "secret": "hunter22"})

TestNotesImporter = plugin_test_suite(NotesImporter,
                                      account={"service": "notes", "identifier": "alice", "accessToken": "token-for-the-tests"},
                                      cassette=NOTES_CASSETTE)
