"""`plugin_test_suite` applied to the documented example importer, as a plugin project's test file applies it to its plugin."""
from pymemri.testing import plugin_test_suite
from pymemri.testing.suite import ExampleImporter

TestExampleImporter = plugin_test_suite(ExampleImporter, config={"api_token": "tok-for-the-suite", "page_size": 2},
                                        account={"service": "notes", "identifier": "ada", "secret": "hunter22"})
