"Every command-line tool's `--help` explains every flag, and the tools that share the Pod flags keep their names."
import configparser
import importlib
import subprocess
from pathlib import Path

import pytest
from fastcore.script import anno_parser

SETTINGS = configparser.ConfigParser()
SETTINGS.read(Path(__file__).parent.parent / "settings.ini")
TOOLS = dict(line.split("=") for line in SETTINGS["DEFAULT"]["console_scripts"].split())
SHARED = ["--pod_full_address", "--owner_key", "--database_key"]
FLAGS = {  # the flags users type; these names must not change
    "run_plugin": ["--plugin_run_id", "--read_args_from_env", "--metadata", "--config_file", "--about", "--reset_state", *SHARED],
    "simulate_run_plugin_from_frontend": ["--metadata", "--plugin_path", "--container", "--config_file", "--account_id", "--timeout",
                                          *SHARED],
    "plugin_doctor": ["--pod_full_address", "--metadata", "--plugin_path", "--config_file", "--account_id", "--docker",
                      "--owner_key", "--database_key"],
    "simulate_enter_credentials": ["--plugin_run_id", "--username", "--password", "--timeout", *SHARED],
    "simulate_enter_oauth_code": ["--plugin_run_id", "--code", "--timeout", *SHARED],
    "store_keys": ["--owner_key", "--database_key", "--replace"],
}


def tool(name: str):
    module, function = TOOLS[name].split(":")
    return getattr(importlib.import_module(module), function)


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_every_flag_is_explained(name):
    parser = anno_parser(tool(name), prog=name)
    shown = [action for action in parser._actions if action.help != "==SUPPRESS=="]
    unexplained = [action.option_strings or action.dest for action in shown if not (action.help or "").strip()]
    assert not unexplained, f"{name}: flags without help: {unexplained}"
    if name in FLAGS: assert [flag for action in shown for flag in action.option_strings if flag not in ("-h", "--help")] == FLAGS[name]


@pytest.mark.parametrize("name", sorted(FLAGS))
def test_help_from_the_shell(name):
    result = subprocess.run([name, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    shown = " ".join(result.stdout.split())  # argparse wraps lines to the terminal's width
    for flag in FLAGS[name]: assert flag in shown
    if name != "store_keys": assert "Owner key (default: the stored keys, see store_keys)" in shown


def test_doctor_keeps_its_own_address_help():
    help_of = {action.dest: action.help for action in anno_parser(tool("plugin_doctor"))._actions}
    assert help_of["pod_full_address"].endswith("no Pod is started")
    assert help_of["database_key"] == "Database key (default: the stored keys, see store_keys)"
