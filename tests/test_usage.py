"""pipeline/usage.py: a command line read wrong is one line and exit 2, for pass-pipeline (tests/test_cli.py) and the
`python -m` scripts of pipeline/photo_sets/ (here, and each script's tests)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from pipeline.usage import OneLineParser, UsageError, usage_said

SCRIPTS = {"fetch": ["photos"], "fit_fusion": ["scores.json", "fusion.json"], "fit_probe": ["photos", "probe.json"],
           "cross_validate": ["tuning.json", "--splits=tuning,heldout"]}  # each one's required arguments


def test_argparses_errors_are_a_usage_error_naming_the_commands_help_and_its_subcommands_too():
    parser = OneLineParser(prog="tool")
    parser.add_argument("--n", type=int)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("go").add_argument("target")
    for argv, said in ((["go", "x", "--bogus"], "unrecognized arguments: --bogus (see `tool --help`)"),
                       (["--n=many", "go", "x"], "argument --n: invalid int value: 'many' (see `tool --help`)"),
                       (["go"], "the following arguments are required: target (see `tool go --help`)")):
        with pytest.raises(UsageError) as refused:
            parser.parse_args(argv)
        assert str(refused.value) == said


def test_a_usage_error_in_a_script_is_its_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as ended, usage_said("tool"):
        OneLineParser(prog="python -m tool").parse_args(["--bogus"])
    assert ended.value.code == 2
    said = capsys.readouterr()
    assert said.err == "tool: error: unrecognized arguments: --bogus (see `python -m tool --help`)\n" and not said.out


def test_a_usage_error_quoting_terminal_escapes_and_a_line_break_is_one_printable_line_in_a_script(capsys):
    """argparse quotes an unknown argument as it was typed (a value pasted from a file, a scheduler's template), and
    a script's refusal can quote a file's text: its line printed the message as it came, the escapes sent to the
    terminal and a line break printing a forged line of its own. Each unprintable character is written as Python
    writes it in a string, as pass-pipeline's error line writes it (`printable.said`)."""
    with pytest.raises(SystemExit) as ended, usage_said("tool"):
        OneLineParser(prog="python -m tool").parse_args(["--bogus\x1b]52;c;cHduZWQ=\x07\x1b[2J\nfetch: OK\u202e"])
    assert ended.value.code == 2
    said = capsys.readouterr()
    assert said.err == ("tool: error: unrecognized arguments: --bogus\\x1b]52;c;cHduZWQ=\\x07\\x1b[2J\\nfetch: OK"
                        "\\u202e (see `python -m tool --help`)\n"), repr(said.err)
    assert not said.out
    with pytest.raises(SystemExit), usage_said("tool"):
        raise UsageError("photos.csv holds \x1b[8m\r\nfetch: 0 problem(s)")
    assert capsys.readouterr().err == "tool: error: photos.csv holds \\x1b[8m\\r\\nfetch: 0 problem(s)\n"


@pytest.mark.parametrize("script", SCRIPTS)
def test_an_unknown_option_of_a_script_run_as_python_m_is_one_line_and_exit_2(script, tmp_path):
    """What an operator types: argparse printed its usage (up to a dozen lines) and then the error."""
    done = subprocess.run([sys.executable, "-m", f"pipeline.photo_sets.{script}", *SCRIPTS[script], "--bogus"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert done.stderr.splitlines() == [f"{script}: error: unrecognized arguments: --bogus "
                                        f"(see `python -m pipeline.photo_sets.{script} --help`)"]
    assert done.stdout == "" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_scripts_help_is_argparses_own_under_the_name_it_is_run_by(script, capsys):
    """fetch and fit_probe named themselves `fetch.py` and `fit_probe.py`: now the command their one-line errors send
    to."""
    with pytest.raises(SystemExit) as ended:
        importlib.import_module(f"pipeline.photo_sets.{script}").main(["--help"])
    said = capsys.readouterr()
    assert ended.value.code == 0 and said.err == ""
    assert said.out.startswith(f"usage: python -m pipeline.photo_sets.{script} [-h]") and "options:" in said.out


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_module_and_the_scripts_do_not_import_beam(script):
    """Beam takes seconds to import: the parser is shared with pass-pipeline's run (which mixes Beam's parser in), and
    no script imports it. The fit scripts did, through the detectors' registry (pipeline.io.files, the probes) and
    pipeline.options: ~3.5 s before `--help` printed; they read models through pipeline/io/file_reads.py."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", f"pipeline.photo_sets.{script}", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith(f"usage: python -m pipeline.photo_sets.{script}"), done
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert "pipeline.usage" in imported  # (the listing is the one read)
    assert [name for name in imported if name.split(".")[0] == "apache_beam"] == []
