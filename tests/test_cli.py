import datetime as dt
import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import expand_month, main, pipeline_options
from pipeline.commands.run import RunRefused
from pipeline.options import PassOptions


def test_defaults_to_a_runner_that_never_reaches_out():
    options = pipeline_options(["--input=x", "--output=y"])
    assert options.view_as(PassOptions).max_side == 512
    assert options.get_all_options()["runner"] == "FnApiRunner"


@pytest.mark.parametrize("argv,message", [
    (["run", "--output=/tmp/x"], "--input is required"),
    (["run", "--input=/nonexistent/*.tsv", "--output=/tmp/x"], "matches no file"),
    (["run", "--input=x", "--output=y", "--formats=webdataset,jpeg"], "--formats"),
    (["run", "--input=x", "--output=y", "--min_side=600"], "--min_side"),
    (["run", "--input=x", "--output=y", "--detect_batch_size=0"], "--detect_batch_size"),
    (["run", "--input=x", "--output=y", "--detect_min_batch_size=100"], "--detect_min_batch_size"),
    (["run", "--input=x", "--output=y", "--max_sid=300"], "unknown flag: --max_sid (did you mean --max_side?)"),
    # was "unknown flags: --, --max_side (did you mean --max_side?)"
    (["run", "--input=x", "--output=y", "--", "--max_side=300"], "`--` ends the flags"),
    # the shell leaves '~' after '=' and in quotes: a folder named '~' was made in the working directory
    (["run", "--input=x", "--output=~/pass-out"], "--output '~/pass-out' starts with '~', which only the shell"),
    (["run", "--input=~/yfcc/*.bz2", "--output=y"], "--input '~/yfcc/*.bz2' starts with '~'"),
    (["run", "--input=x", "--output=y", "--blocklist=a.txt,~/b.txt"], "--blocklist 'a.txt,~/b.txt' starts with '~'"),
    # Beam read the scheme past the spaces, then refused "Basepath ' gs://b/out' must be GCS path"
    (["run", "--input=x", "--output= gs://b/out"], "--output ' gs://b/out' has spaces around an object store's path"),
    (["run", "--input=gs://b/in.csv ", "--output=y"], "--input 'gs://b/in.csv ' has spaces around"),
    (["refresh", "--output= gs://b/releases"], "--output ' gs://b/releases' has spaces around an object store's"),
    (["refresh", "--output=y", "--previous= gs://b/releases/r1"], "--previous ' gs://b/releases/r1' has spaces"),
    (["verify", " gs://b/out"], "the dataset's folder ' gs://b/out' has spaces around an object store's path"),
    (["review", "apply", "d.csv", "--store= gs://b/decisions.csv"], "--store ' gs://b/decisions.csv' has spaces"),
    # was "did you mean --flickr_licenses?"; the value is never echoed
    (["run", "--source=flickr", "--output=y", "--flickr_api_key=c0ffee"], "--flickr_api_key (keys are read from "
                                                                          "FLICKR_API_KEY and FLICKR_API_SECRET"),
    # a typo of a flag of the job's own holding "key": it was told keys are read from FLICKR_API_KEY
    (["run", "--input=x", "--output=y", "--near_dup_key_block=3"],
     "unknown flag: --near_dup_key_block (did you mean --near_dup_key_blocks?)"),
    (["refresh", "--output=y", "--", "--max_side=300"], "`--` ends the flags"),
    # a glob the shell expanded: Beam warned "Unparseable argument" and the run read the first file alone
    (["run", "--input", "a.tsv", "b.tsv", "c.tsv", "--output=y"], "'b.tsv', 'c.tsv': not the value of any flag"),
    (["run", "--input=x", "--output=y", "stray"], "'stray': not the value of any flag (a glob the shell expanded?"),
    # refresh's own help, not run's
    (["refresh", "--output=y", "--input", "a.tsv", "b.tsv"], "'b.tsv': not the value of any flag (a glob the shell "
                                                             "expanded? quote it: --input='data/*.tsv'); see "
                                                             "`pass-pipeline refresh --help`"),
    (["verify", "x", "--strict"], "unknown argument for verify: --strict"),
    (["refresh", "--release=r"], "refresh needs --output"),
    (["run", "--input=x", "--output=y", "--log_level=loud"], "--log_level must be one of debug, info"),
    (["run", "--input=x", "--output=y", "--log_level", "loud"], "--log_level must be one of debug, info"),
    (["run", "--input=x", "--output=y", "--log_level"], "--log_level needs a value"),
    # A value no flag can take: one line, not Beam's usage of every option (~180 lines)
    (["run", "--input=x", "--output=y", "--max_side=abc"],
     "argument --max_side: 'abc' is no whole number: ASCII digits with an optional sign, no '_' and no spaces "
     "(see `pass-pipeline run --help`)"),
    (["run", "--input=x", "--output=y", "--verify_license=maybe"], "argument --verify_license"),
    (["refresh", "--output=y", "--shards=1e3"],
     "argument --shards: '1e3' is no whole number: ASCII digits with an optional sign, no '_' and no spaces "
     "(see `pass-pipeline refresh --help`)"),  # refresh's own help, not run's
    # argparse's own errors: its usage line, then the error, two lines where every other usage error is one
    (["verify"], "the following arguments are required: release (see `pass-pipeline verify --help`)"),
    (["review", "apply", "decisions.csv"], "required: --store (see `pass-pipeline review apply --help`)"),
    ([], "the following arguments are required: COMMAND (see `pass-pipeline --help`)"),
    (["evaluate", "--split"], "argument --split: expected one argument"),
])
def test_usage_errors_are_clear_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err[:500]
    assert "c0ffee" not in err


def test_version_prints_the_packages_version_and_exits_0(capsys):
    """`pass-pipeline --version` prints the version pyproject.toml declares (what a bug report names), on stdout."""
    import tomllib
    from pathlib import Path

    declared = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["version"]
    try:
        code = main(["--version"])
    except SystemExit as stop:  # argparse's version action ends the parse
        code = stop.code
    assert code == 0
    assert capsys.readouterr().out == f"pass-pipeline {declared}\n"


def test_the_log_level_is_taken_in_both_forms():
    from pipeline.cli import log_level

    assert log_level(["--log_level", "DEBUG", "--input=x"]) == (logging.DEBUG, ["--input=x"])
    assert log_level(["--input=x", "--log_level=info"]) == (logging.INFO, ["--input=x"])
    assert log_level(["--input=x"]) == (logging.WARNING, ["--input=x"])


# What a Flickr API endpoint answers for its failure (a proxy, a captive portal, a hostile --flickr_rest_url):
# terminal escapes (OSC 52 sets the clipboard of the terminal showing the error, ESC [2J clears it), a bell, a
# right-to-left override turning the rest of the line around.
HOSTILE_API_MESSAGE = "Bad\x1b]52;c;cHduZWQ=\x07\x1b[2J\x1b[1A\x9bpass-pipeline: published\u202eKO"


def test_a_flickr_failure_at_start_holding_terminal_escapes_is_said_in_one_printable_line(tmp_path, capsys):
    """The start's key check took a failure the API answered (its message, Flickr's own words) and the line saying
    the job failed printed it as it came: its escapes reached the terminal. Each unprintable character is now
    written as Python writes it in a string, the message still read."""
    from pipeline.fixtures.flickr_server import FlickrServer, World

    credentials = tmp_path / "flickr.json"
    credentials.write_text(json.dumps({"key": "fixture-key-123", "secret": "fixture-secret-456"}))
    with FlickrServer(World(), api_keys={"fixture-key-123"}) as server:
        server.inject_api_error(1, HOSTILE_API_MESSAGE, method="flickr.photos.licenses.getInfo")
        assert main(["run", "--source=flickr", f"--flickr_rest_url={server.rest_url}",
                     f"--flickr_credentials={credentials}", "--min_upload_date=2020-09-13",
                     "--max_upload_date=2020-09-14", f"--allowed_hosts={server.host}",
                     f"--output={tmp_path / 'out'}"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.strip().isprintable(), repr(err)
    assert "Error: 1: Bad\\x1b]52;c;cHduZWQ=\\x07\\x1b[2J\\x1b[1A\\x9bpass-pipeline: published\\u202eKO" in err, err


@pytest.mark.parametrize("raised, said", [
    (ValueError, "pass-pipeline: error: x\\x1b[2J\\u202e\\rverify: OK"),
    (RunRefused, "pass-pipeline: refused: x\\x1b[2J\\u202e\\rverify: OK"),
    # a failed job's line is the last line of its message naming an error (Beam's holds a traceback): the rest goes
    (RuntimeError, "pass-pipeline: error: the job failed: RuntimeError: x\\x1b[2J\\u202e (--log_level"),
])
def test_a_commands_error_quoting_outside_text_is_one_printable_line(raised, said, monkeypatch, capsys):
    """Whichever line a command's error ends in (a refusal, exit 2 or 4; a failed job, exit 1), a line break or a
    terminal escape in its message (quoting a file's, a release's or an endpoint's text) is written escaped: a forged
    line such as "verify: OK" never stands on its own, and no escape reaches the terminal."""
    import pipeline.cli

    def failing(*_args: object) -> int:
        raise raised("x\x1b[2J\u202e\rverify: OK")

    monkeypatch.setattr(pipeline.cli, "verify_command", failing)
    main(["verify", "somewhere"])
    err = capsys.readouterr().err
    assert err.startswith(said), repr(err)
    assert len(err.strip().splitlines()) == 1 and err.strip().isprintable(), repr(err)


def test_a_librarys_log_line_quoting_outside_text_is_one_printable_line_in_a_commands_log(monkeypatch, capsys):
    """A library logs outside text with %s itself (urllib3's "Failed to parse headers (url=%s)" names the photo's
    URL, whose check refuses control characters but not a right-to-left override; Beam's or Flickr's lines quote what
    an endpoint answered): the command's log wrote it as it came, its escapes sent to the terminal and its line break
    a forged log line of its own. Every record's message is now escaped as the command's own lines are, the format
    and a printable line (the progress line's) unchanged, and a traceback still the lines it is."""
    import pipeline.cli

    # the command's own handler, as on a terminal: pytest's capture on the root logger would stop basicConfig
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    monkeypatch.setattr(logging.getLogger(), "level", logging.WARNING)
    url = "http://photos.example/\u202egpj.exe\x1b]52;c;cHduZWQ=\x07\x1b[2J\nINFO pipeline: verify: OK"

    def logging_verify(*_args: object) -> int:
        logging.getLogger("urllib3.connectionpool").warning("Failed to parse headers (url=%s): %s", url, "x")
        logging.getLogger("pipeline.progress").info("12 read, 3 kept — café")
        try:
            raise ValueError("broken\x1b[2J")
        except ValueError:
            logging.getLogger("pipeline").warning("as it failed", exc_info=True)
        return 0

    monkeypatch.setattr(pipeline.cli, "verify_command", logging_verify)
    assert main(["verify", "somewhere"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == ("WARNING urllib3.connectionpool: Failed to parse headers (url=http://photos.example/"
                        "\\u202egpj.exe\\x1b]52;c;cHduZWQ=\\x07\\x1b[2J\\nINFO pipeline: verify: OK): x"), lines
    assert lines[1] == "INFO pipeline.progress: 12 read, 3 kept — café", lines
    assert lines[2:4] == ["WARNING pipeline: as it failed", "Traceback (most recent call last):"], lines
    assert lines[-1] == "ValueError: broken\\x1b[2J", lines
    assert all(line.isprintable() for line in lines), lines


@pytest.mark.parametrize("escape", ["\x1b", "\x9b", "\u202e", "\U000e0001"])
def test_a_failed_jobs_line_cut_to_its_length_never_cuts_an_escape_in_half(escape):
    """The line was escaped and then cut at 300 characters: an unprintable character near the cut was shown as half
    of its escape (`\\x1` for ESC, `\\u20` for a right-to-left override), which reads as other text. The line is
    cut where no escape is split, however near the cut the character falls, and is no longer than 300 characters."""
    from pipeline.cli import last_line
    from pipeline.printable import printable

    for before in range(270, 300):
        text = "x" * before + escape + "y" * 400
        shown = last_line(RuntimeError(text))
        cuts = {printable(f"RuntimeError: {text}"[:end]) for end in range(len(text) + 15)}
        assert shown in cuts and 290 <= len(shown) <= 300, (before, shown[-12:])


def test_refuses_to_mix_with_an_existing_dataset(tmp_path, capsys):
    (tmp_path / "in.tsv").write_text("")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "manifest.json").write_text("{}")
    assert main(["run", f"--input={tmp_path / 'in.tsv'}", f"--output={tmp_path / 'out'}"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_detector_problems_fail_at_launch(tmp_path, capsys):
    (tmp_path / "in.tsv").write_text("")
    base = ["run", f"--input={tmp_path / 'in.tsv'}", f"--output={tmp_path / 'out'}"]
    assert main([*base, "--detectors=centerface,yolo_people"]) == 2
    assert "unknown detector(s) yolo_people" in capsys.readouterr().err
    registry = tmp_path / "mine.json"
    registry.write_text(json.dumps({"detectors": [{"name": "x", "file": "x.onnx", "sha256": "0" * 64,
                                                   "input": {"size": 32}, "decoder": {"type": "classifier",
                                                   "output": "o", "class_names": ["a", "b"]},
                                                   "nsfw_classes": ["b"], "thresholds": {"b": 0.5}}]}))
    assert main([*base, f"--model_registry={registry}", "--detectors=x"]) == 2
    assert "cannot read" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_require_gpu_fails_at_start_without_cuda(tmp_path, capsys):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a CUDA build is installed here")
    (tmp_path / "in.tsv").write_text("")
    assert main(["run", f"--input={tmp_path / 'in.tsv'}", f"--output={tmp_path / 'out'}", "--require_gpu"]) == 2
    assert "a GPU was required" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_month_token_in_output_is_the_launch_month():
    now = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)
    assert expand_month(["--output=gs://b/releases/{YYYY-MM}", "--x=1"], now) == ["--output=gs://b/releases/2026-12",
                                                                                  "--x=1"]


@pytest.mark.parametrize("argv", [["run", "--help"], ["refresh", "--help"], ["evaluate", "--help"], ["--help"],
                                  ["verify", "--help"], ["demo", "--help"], ["review", "apply", "--help"]])
def test_every_help_works(argv, capsys):
    try:
        assert main(argv) == 0
    except SystemExit as done:  # argparse's own --help exits
        assert done.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: pass-pipeline {' '.join(a for a in argv if a != '--help')}".rstrip())


def test_run_help_has_sections_defaults_and_no_internal_flags(capsys):
    main(["run", "--help"])
    text = capsys.readouterr().out
    for section in ("source and output:", "fetch (per worker process):", "decode and normalise:",
                    "duplicates and lists:", "detection and review:", "selection:"):
        assert f"\n{section}\n" in text
    assert "--overwrite" in text and "(default: 512)" in text and "(default: 4,11)" in text
    assert "--carry_over" not in text and "--release_name" not in text  # set by refresh itself


def test_demo_help_says_the_run_flags_apply(capsys, monkeypatch):
    """`demo --help` listed --output alone, though the demo's run takes every run flag: the review loop's next step on
    the demo (--review_decisions with the decisions on its review/ folder) looked impossible."""
    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit) as done:
        main(["demo", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "Every other flag of `pass-pipeline run` applies to the demo's run too" in text
    assert "--review_decisions" in text


def test_beam_options_still_pass_through():
    options = pipeline_options(["--input=x", "--output=y", "--direct_num_workers=2", "--project=p"])
    assert options.get_all_options()["direct_num_workers"] == 2


def test_evaluate_help_says_what_it_scores_prints_and_exits_with(capsys, monkeypatch):
    """`evaluate --help` listed the flags alone: not what is scored without --photos, what is printed, how long it
    takes or what exit status 1 means (a newcomer's first `evaluate` ran minutes and exited 1 or 0 unexplained)."""
    monkeypatch.setenv("COLUMNS", "400")  # argparse wraps at the terminal's width, and may break "keep-rate" there
    with pytest.raises(SystemExit) as done:
        main(["evaluate", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for said in ("With no flag: the builtin set", "recall on the images with people and keep-rate on the others",
                 "not held out", "Exit status: 0 when recall is 100%, 1 when an image with people would be kept"):
        assert said in text, said


# `pass-pipeline ARGV...` with a stop (the signal named first) sent to itself as the function named second begins:
# `signal module.function argv...`.
STOPPED_AS = """
import importlib, os, signal, sys
signum, target = int(sys.argv.pop(1)), sys.argv.pop(1)
owner, _, name = target.rpartition(".")
module = importlib.import_module(owner)
original = getattr(module, name)
def stopped(*args, **kwargs):
    os.kill(os.getpid(), signum)
    return original(*args, **kwargs)
setattr(module, name, stopped)
from pipeline.launch import entry
sys.exit(entry())
"""

STOPS = [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl-C")]


def stopped_as(signum: int, target: str, argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", STOPPED_AS, str(int(signum)), target, *argv], capture_output=True,
                          text=True, timeout=300)


def _listing(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize(("signum", "said"), STOPS)
def test_a_stopped_verify_is_one_line_saying_it_did_not_finish_and_changed_nothing(demo_release, signum, said):
    """verify had no stop handling: SIGTERM ended it by the signal's default (exit -15, no word), and Ctrl-C printed
    a run's line ('nothing was published unless publishing had begun, which the next run into the output
    finishes'), of a command that publishes nothing and whose dataset was left half checked."""
    release = demo_release
    before = _listing(release)
    done = stopped_as(signum, "pipeline.release.verify._check_file", ["verify", str(release)])
    assert done.returncode == 128 + signum and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (f"pass-pipeline: stopped ({said}); {release} was not (fully) "
                                                    "checked; nothing was changed"), done.stderr[-2000:]
    assert "OK" not in done.stdout and _listing(release) == before


def test_a_refresh_stopped_while_it_checks_the_previous_release_is_a_stop(demo_release, tmp_path):
    """A refresh verifies its previous release before its run takes the lock (minutes for a large release), and a run
    reads its models and runs its canaries: SIGTERM there ended the command by the signal's default (exit -15, no
    word). Every command is a stop from the start now: exit 143, one line, nothing made under the root."""
    root = tmp_path / "root"
    done = stopped_as(signal.SIGTERM, "pipeline.commands.refresh.verify",
                      ["refresh", f"--output={root}", "--release=r2", f"--previous={demo_release}",
                       f"--input={demo_release.parent / 'in' / '*'}"])
    assert done.returncode == 128 + signal.SIGTERM and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith("pass-pipeline: stopped (SIGTERM); "), done.stderr[-2000:]
    assert not (root / "releases" / "r2").exists()


@pytest.mark.parametrize("command", ["verify", "review"])
def test_a_stop_line_naming_a_path_typed_with_terminal_escapes_and_a_line_break_is_one_printable_line(tmp_path,
                                                                                                     command):
    """A stopped verify's line names its dataset's folder, a stopped `review apply`'s its store and decisions file, as
    typed: one named with an OSC 52, ESC [2J, a right-to-left override and a line break was written as it was, its
    escapes sent to the terminal and a forged `pass-pipeline: OK` line of its own. The line is one line, each
    unprintable character escaped as Python writes it in a string."""
    evil = "x\x1b]52;c;cm0gLXJmIH4K\x07\x1b[2J\u202e\npass-pipeline: OK"
    decisions = tmp_path / "d.csv"
    decisions.write_text("photo_id,decision,note\n5,accept,\n")
    target, argv = {"verify": ("pipeline.commands.verify._verify", ["verify", str(tmp_path / evil)]),
                    "review": ("pipeline.commands.review.apply_decisions",
                               ["review", "apply", str(decisions), "--store", str(tmp_path / f"{evil}.csv")])}[command]
    done = stopped_as(signal.SIGTERM, target, argv)
    assert done.returncode == 128 + signal.SIGTERM and "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].isprintable(), done.stderr
    assert lines[0].startswith("pass-pipeline: stopped (SIGTERM); "), lines[0]
    assert "x\\x1b]52;c;cm0gLXJmIH4K\\x07\\x1b[2J\\u202e\\npass-pipeline: OK" in lines[0], lines[0]
