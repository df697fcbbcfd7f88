"""benchmarks/arguments.py: counts and seconds the benchmarks take, refused in one line when they are no number or too
small (a size of 0 ran the measurement, then divided by it: a traceback after its minutes); and every benchmark's
command line read wrong is that one line, as pass-pipeline's and the photo_sets scripts' are."""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

import pytest

from benchmarks import arguments

# Every script under benchmarks/ with a command line (corpus.py and this module have none)
BENCHMARKS = sorted(path.stem for path in Path(arguments.__file__).parent.glob("*.py")
                    if "\ndef main(" in path.read_text())
# The arguments each cannot do without (without them, the line says those are missing and quotes nothing typed)
REQUIRED = {"compare_outputs": ["before", "after"], "compat_loaders": ["release"], "working_copy": ["--photos", "p"],
            "storage_decisions": ["--photos", "p", "--b", "draft_supersample=1"]}


def test_a_count_is_a_whole_number_of_at_least_its_least():
    assert arguments.count()("3") == 3 and arguments.count(0)("0") == 0
    for text, least in (("0", 1), ("-1", 0), ("-7", 1)):
        with pytest.raises(argparse.ArgumentTypeError, match=f"must be at least {least}, not {int(text)}"):
            arguments.count(least)(text)
    for text in ("1.5", "1_000", " 5"):  # spelled as the job's own flags are (int() took the last two)
        with pytest.raises(argparse.ArgumentTypeError, match="is no whole number"):
            arguments.count()(text)


def test_counts_are_read_in_their_order_each_checked():
    assert arguments.counts()("8, 1,32,") == [8, 1, 32]
    with pytest.raises(argparse.ArgumentTypeError, match="not 0"):
        arguments.counts()("1,0,4")
    with pytest.raises(argparse.ArgumentTypeError, match="at least one"):
        arguments.counts()(" , ")


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf"])
def test_seconds_are_positive_and_finite(text):
    with pytest.raises(argparse.ArgumentTypeError, match=r"positive number of seconds|is no number"):
        arguments.seconds(text)
    assert arguments.seconds("0.5") == 0.5


@pytest.mark.parametrize(("module", "argv"), [
    ("detect_cpu", ["--images", "0"]), ("draft_quality", ["--images", "-2"]),
    ("end_to_end", ["--images", "0", "--skip_img2dataset"]), ("profile", ["--images", "0"]),
    ("profile", ["--top", "0"]), ("pins_size", ["--shards", "0"]), ("pins_size", ["--ledger", "-1"]),
    ("refresh_unchanged", ["--copies", "0"]), ("verify_license_calls", ["--photos", "0"]),
    ("detect_gpu", ["--seconds", "0"]), ("detect_gpu", ["--stage_batch", "0"]), ("detect_gpu", ["--batches", "8,0"]),
    ("memory", ["--rows", "100,0"]), ("scaling", ["--sizes", "abc"]), ("near_dup_scale", ["--dense", "0"]),
])
def test_each_benchmark_refuses_a_count_it_cannot_measure_before_it_starts(monkeypatch, capsys, module, argv):
    """Each ran (a corpus made, a job or a dataset built) and then raised a ZeroDivisionError, IndexError,
    AssertionError or ValueError traceback; or, for a list of sizes, a ValueError traceback on a word."""
    monkeypatch.setattr("sys.argv", [module, *argv])
    with pytest.raises(SystemExit) as stopped:
        importlib.import_module(f"benchmarks.{module}").main()
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.fullmatch(rf"{module}: error: argument {argv[0]}: (must be|'.*' is no whole number).* \(see "
                        rf"`python -m benchmarks\.{module} --help`\)\n", err), err


def test_the_benchmarks_with_a_command_line_are_all_found():
    assert len(BENCHMARKS) == 16 and {"compat_loaders", "near_dup_radius", "storage_decisions"} <= set(BENCHMARKS)


@pytest.mark.parametrize("module", BENCHMARKS)
def test_every_benchmark_says_a_command_line_it_cannot_read_in_one_printable_line_before_it_runs(
        monkeypatch, capsys, module):
    """argparse printed its usage (one to four lines) and then the error, quoting an unknown argument as typed: its
    escapes reached the terminal and its line break printed a forged line of its own. Now one line, as pass-pipeline
    and the photo_sets scripts say theirs (pipeline/usage.py; compat_loaders, which imports nothing of the project,
    writes the same line itself), exit 2, nothing measured or printed before it."""
    monkeypatch.setattr("sys.argv", [module, *REQUIRED.get(module, []), "--nope\x1b[2J\nbenchmark:OK"])
    with pytest.raises(SystemExit) as stopped:
        importlib.import_module(f"benchmarks.{module}").main()
    assert stopped.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert re.fullmatch(rf"{module}: error: unrecognized arguments: --nope\\x1b\[2J\\nbenchmark:OK \(see `python "
                        rf"(-m benchmarks\.{module}|benchmarks/{module}\.py) --help`\)\n", err), err


@pytest.mark.parametrize("module", BENCHMARKS)
def test_every_benchmarks_help_is_argparses_own(monkeypatch, capsys, module):
    monkeypatch.setattr("sys.argv", [module, "--help"])
    with pytest.raises(SystemExit) as stopped:
        importlib.import_module(f"benchmarks.{module}").main()
    out, err = capsys.readouterr()
    assert stopped.value.code == 0 and err == "" and out.startswith("usage: ") and "--help" in out, out
