"""`pass-pipeline evaluate` (pipeline/commands/evaluate.py): the options it shares with `run` checked as `run` checks
them, a --json target refused before anything is scored, and a stop that says which of its files it wrote."""

from __future__ import annotations

import os

import pytest

from pipeline import evaluation
from pipeline.cli import main
from pipeline.photo_sets import score
from tests.test_cli import STOPS, stopped_as
from tests.test_photo_sets_heldout_record import evaluate, fusion_file, photo_dir  # noqa: F401 (photo_dir: a fixture, by name)


@pytest.mark.parametrize(("flag", "problem"), [
    ("--max_side=0", "--max_side must be positive"), ("--max_side=-3", "--max_side must be positive"),
    ("--max_side=20000", "at most 16384"), ("--detect_tile_min_side=-1", "--detect_tile_min_side must not be"),
    ("--resize_reducing_gap=0.5", "--resize_reducing_gap must be"),
])
def test_evaluate_refuses_the_values_run_refuses(flag, problem, monkeypatch, capsys):
    """--max_side=0 printed recall and keep-rate of images stored at no size (`run` refuses it)."""
    monkeypatch.setattr(evaluation, "score_set", lambda *a, **k: pytest.fail("scored despite a refused option"))
    assert main(["evaluate", "--detectors=open_nsfw", flag]) == 2
    assert problem in capsys.readouterr().err


@pytest.mark.parametrize(("signum", "said"), STOPS)
def test_a_stopped_evaluate_says_what_it_did_not_write_and_leaves_it_as_it_was(tmp_path, signum, said):
    """evaluate had no stop handling either: SIGTERM ended it with no word (exit -15), Ctrl-C spoke of publishing.
    Stopped while it scores, its --json file is as it was (no temporary beside it) and its line says so."""
    earlier = tmp_path / "result.json"
    earlier.write_text('{"an": "earlier result"}\n')
    done = stopped_as(signum, "pipeline.evaluation.normalise",
                      ["evaluate", "--detectors=none", "--fusion=none", f"--json={earlier}"])
    assert done.returncode == 128 + signum and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (f"pass-pipeline: stopped ({said}); the evaluation did not "
                                                    f"finish; --json {earlier} not written (as it was)"), done.stderr
    assert earlier.read_text() == '{"an": "earlier result"}\n' and list(tmp_path.iterdir()) == [earlier]


@pytest.mark.parametrize("kind", ["a folder", "a named pipe"])
def test_an_evaluate_json_that_is_no_file_is_refused_before_anything_is_scored(tmp_path, monkeypatch, capsys, kind):
    """A --json naming a folder or a named pipe was refused only once the photographs were scored (minutes), the
    result lost, and the held-out --record, appended after it, never written: refused first, as a --record is."""
    import pipeline.commands.evaluate as evaluate_command

    target = tmp_path / "result"
    target.mkdir() if kind == "a folder" else os.mkfifo(target)
    scored = []
    monkeypatch.setattr(evaluate_command, "evaluate", lambda *args: scored.append(args))
    assert main(["evaluate", "--detectors=none", "--fusion=none", f"--json={target}"]) == 2
    assert not scored and capsys.readouterr().err.splitlines() == [
        f"pass-pipeline: error: --json {target} is {kind}, not a file: not written"]


@pytest.mark.parametrize("leads_to", ["a file", "nothing"])
def test_an_evaluate_json_that_is_a_symbolic_link_is_refused_before_anything_is_scored(tmp_path, monkeypatch, capsys,
                                                                                      leads_to):
    """A --json naming a link was replaced by a file once the photographs were scored: the result it led to (kept
    with a model) left as it was, stale, though the command said it was written. Refused first, as --record refuses
    a link, the link and its file as they were."""
    import pipeline.commands.evaluate as evaluate_command

    kept = tmp_path / "kept.json"
    if leads_to == "a file":
        kept.write_text('{"an": "earlier result"}\n')
    target = tmp_path / "result.json"
    target.symlink_to(kept)
    scored = []
    monkeypatch.setattr(evaluate_command, "evaluate", lambda *args: scored.append(args))
    assert main(["evaluate", "--detectors=none", "--fusion=none", f"--json={target}"]) == 2
    assert not scored and capsys.readouterr().err.splitlines() == [
        f"pass-pipeline: error: --json {target} is a symbolic link (to {kept}): the file is written whole under its "
        "name, which would replace the link and leave the file it leads to as it was; give that file's own path"]
    assert target.is_symlink() and os.readlink(target) == str(kept)
    assert (kept.read_text() == '{"an": "earlier result"}\n') if leads_to == "a file" else not kept.exists()


@pytest.mark.parametrize(("given", "written", "said"), [
    ({}, [], "the evaluation did not finish; nothing was written"),
    ({"json": "r.json"}, [], "the evaluation did not finish; --json r.json not written (as it was)"),
    ({"json": "r.json"}, ["--json r.json"], "the evaluation did not finish; --json r.json written"),
    ({"json": "r.json", "photos": "p", "record": "h.json"}, [],
     "the evaluation did not finish; --json r.json and --record h.json not written (as they were)"),
    ({"json": "r.json", "photos": "p", "record": "h.json"}, ["--json r.json"],
     "the evaluation did not finish; --json r.json written; --record h.json not written (as it was)"),
    ({"json": "r.json", "photos": "p", "record": "h.json"}, ["--json r.json", "--record h.json"],
     "the evaluation did not finish; --json r.json and --record h.json written"),
    # a --record without --photos records nothing (refused before anything is scored)
    ({"record": "h.json"}, [], "the evaluation did not finish; nothing was written"),
])
def test_a_stop_says_which_of_the_files_asked_for_were_written_and_which_left_as_they_were(given, written, said):
    import argparse

    from pipeline.commands.evaluate import _stopped

    args = argparse.Namespace(**{"json": "", "photos": "", "record": "", **given})
    assert _stopped(args, written) == said


@pytest.mark.parametrize("flag", ["--max_side=1", "--max_side=16384", "--detect_tile_min_side=0",
                                  "--resize_reducing_gap=0"])
def test_evaluate_takes_the_values_run_takes_at_their_bounds(flag, monkeypatch, capsys):
    """The bounds of the options evaluate shares with `run` are theirs: the values at them are scored."""
    monkeypatch.setattr(evaluation, "score_set", lambda *a, **k: pytest.fail(f"scored: {flag} was taken"))
    with pytest.raises(pytest.fail.Exception, match="was taken"):
        main(["evaluate", "--detectors=open_nsfw", flag])
    assert "must" not in "".join(capsys.readouterr())


@pytest.mark.parametrize("given", ["--scores=earlier.json", "--split=tuning", "--split=heldout"])
def test_scores_or_a_split_without_photographs_are_refused_before_anything_is_scored(given, monkeypatch, capsys):
    """--scores and --split say which package photographs to score (with --photos): without it, the builtin set was
    scored, a minute, and the flag ignored unsaid (a comparison of decision rules on an earlier --json was the
    builtin set's). Refused as --record without --photos is, in pass-pipeline's error line."""
    monkeypatch.setattr(evaluation, "score_set", lambda *a, **k: pytest.fail("scored despite a refused option"))
    assert main(["evaluate", "--detectors=open_nsfw", given]) == 2
    out, err = capsys.readouterr()
    flag = given.split("=")[0]
    assert out == "" and err == (f"pass-pipeline: error: {flag} names what to score of the package photographs: "
                                 "give --photos too\n")


def test_evaluate_s_refusals_are_pass_pipeline_s_error_line_on_stderr(monkeypatch, capsys):
    """Evaluate printed its refusals on stdout as `evaluate: …`, where every other command's usage errors are the
    error line on stderr (`pass-pipeline: error: …`): a script reading evaluate's result from stdout read the refusal
    as one, and a terminal showing stderr alone showed nothing."""
    monkeypatch.setattr(evaluation, "score_set", lambda *a, **k: pytest.fail("scored despite a refused option"))
    assert main(["evaluate", "--detectors=open_nsfw", "--max_side=0"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("pass-pipeline: error: --max_side must be positive") and err.count("\n") == 1


def test_a_record_without_photographs_is_refused_before_anything_is_scored(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(evaluation, "score_set", lambda *a, **k: pytest.fail("scored despite a refused option"))
    assert main(["evaluate", "--detectors=open_nsfw", f"--record={tmp_path / 'heldout.json'}"]) == 2
    assert capsys.readouterr().err == ("pass-pipeline: error: --record names what to score of the package "
                                       "photographs: give --photos too\n")
    assert not (tmp_path / "heldout.json").exists()


@pytest.mark.parametrize("spelt", ["same", "another spelling", "a link to it"])
def test_a_json_result_written_where_the_record_is_is_refused_before_scoring(request, tmp_path, capsys, monkeypatch,
                                                                             spelt):
    """`evaluate --json=R --record=R` (a name typed twice, a completion) wrote the result over the record, its every
    earlier measurement lost, and then refused to record into what was no record any more ("not a held-out record",
    exit 2). Refused before scoring in one line, exit 2, the record as it was."""
    photos = request.getfixturevalue("photo_dir")  # tests/test_photo_sets_heldout_record.py's five photographs
    model = fusion_file(tmp_path, 20.0)
    record = tmp_path / "model_heldout.json"
    assert evaluate(photos, model, record, "heldout3") == 0
    kept = record.read_text()
    capsys.readouterr()
    json_path = {"same": str(record), "another spelling": f"{tmp_path}/./{record.name}",
                 "a link to it": str(tmp_path / "result.json")}[spelt]
    if spelt == "a link to it":
        (tmp_path / "result.json").symlink_to(record)
    monkeypatch.setattr(score, "score_set", lambda *a, **k: pytest.fail("scored although refused"))
    assert evaluate(photos, model, record, "heldout4", f"--json={json_path}") == 2
    out = capsys.readouterr().err
    assert out.startswith(f"pass-pipeline: error: --json {json_path} is the --record file {record}"), out
    assert out.count("\n") == 1 and record.read_text() == kept, out


@pytest.mark.parametrize("flag", ["--json", "--record"])
def test_a_result_or_record_inside_a_dataset_is_refused_before_scoring(demo_release, request, tmp_path, capsys,
                                                                       monkeypatch, flag):
    """`evaluate --json` (or `--record`) into a dataset's folder (a release's evaluation kept with it) wrote a file
    its manifest does not list: verify refused the dataset from then on, and a refresh verifying it as its previous
    release. Refused before scoring in one line naming the dataset, exit 2, nothing written there."""
    import shutil

    from pipeline.commands import evaluate as evaluate_command

    dataset = tmp_path / "out"
    shutil.copytree(demo_release, dataset)
    target = dataset / "evaluation" / "result.json"
    target.parent.mkdir()
    monkeypatch.setattr(evaluate_command, "evaluate", lambda *a, **k: pytest.fail("scored although refused"))
    monkeypatch.setattr(score, "score_set", lambda *a, **k: pytest.fail("scored although refused"))
    if flag == "--json":
        code = main(["evaluate", "--detectors=open_nsfw", f"--json={target}"])
    else:
        photos = request.getfixturevalue("photo_dir")  # tests/test_photo_sets_heldout_record.py's five photographs
        code = evaluate(photos, fusion_file(tmp_path, 20.0), target, "heldout3")
    assert code == 2
    out = capsys.readouterr().err
    assert out == (f"pass-pipeline: error: {flag} {target} lies inside the dataset {dataset}, whose manifest does not "
                   "list it (verify would refuse the dataset): write it outside\n"), out
    assert not target.exists() and list(target.parent.iterdir()) == []
    target.parent.rmdir()
    assert main(["verify", str(dataset)]) == 0


def test_a_record_under_a_file_where_its_folder_should_be_is_refused_before_scoring(request, tmp_path, capsys,
                                                                                     monkeypatch):
    """`evaluate --record=FILE/heldout.json`, FILE a file (a name typed for a folder): the split was scored (minutes)
    and the record's folder then made, a FileExistsError traceback, the measurement never recorded, though
    `io/whole_file.py`'s check_output refused as much for --json. Refused before scoring in one line naming --record,
    exit 2, the file as it was."""
    photos = request.getfixturevalue("photo_dir")  # tests/test_photo_sets_heldout_record.py's five photographs
    model = fusion_file(tmp_path, 20.0)
    in_the_way = tmp_path / "records"
    in_the_way.write_text("notes\n")
    record = in_the_way / "model_heldout.json"
    monkeypatch.setattr(score, "score_set", lambda *a, **k: pytest.fail("scored although refused"))
    assert evaluate(photos, model, record, "heldout3") == 2
    assert capsys.readouterr().err.splitlines() == [
        f"pass-pipeline: error: --record {record}: {in_the_way} is a file, not a folder: not written"]
    assert in_the_way.read_text() == "notes\n"


def test_a_record_typed_with_terminal_escapes_and_a_line_break_is_named_in_one_printable_line(request, tmp_path,
                                                                                              capsys):
    """The line saying where the measurement was recorded, and the refusal of a --json that is the --record file, name
    the files as typed: a folder named with ESC c (which resets the terminal), a CSI as one C1 character, a
    right-to-left override and a line break was printed as it was, its escapes sent to the terminal and a forged
    `evaluate: OK` line of its own. Each is one line, the names escaped as Python writes them in a string."""
    photos = request.getfixturevalue("photo_dir")  # tests/test_photo_sets_heldout_record.py's five photographs
    model = fusion_file(tmp_path, 20.0)
    record = tmp_path / "r\x1bc\x9b2J\u202e\nevaluate: OK" / "model_heldout.json"
    shown = f"{tmp_path}/r\\x1bc\\x9b2J\\u202e\\nevaluate: OK/model_heldout.json"
    assert evaluate(photos, model, record, "heldout3") == 0
    recorded = capsys.readouterr().out
    assert evaluate(photos, model, record, "heldout4", f"--json={record}") == 2
    refused = capsys.readouterr().err
    for out in (recorded, refused):
        assert "\x1b" not in out and "\x9b" not in out and "\u202e" not in out, out
        assert not any(line.startswith("evaluate: OK") for line in out.splitlines()), out
    assert f"recorded in {shown}: heldout3, " in recorded, recorded
    assert refused == (f"pass-pipeline: error: --json {shown} is the --record file {shown}: the result would be "
                       "written over the record, every measurement in it lost; give --json another file\n"), refused


def test_a_registrys_detector_named_with_terminal_escapes_and_a_line_break_is_refused_in_one_printable_line(
        request, tmp_path, capsys):
    """A --model_registry file (passed around with a model) named a detector with any text: evaluate's result lines
    name each detector (its `alone` line, its ablation line) and printed it as it came, a name holding ESC [2J, a
    right-to-left override and a line break sending its escape to the terminal and printing a forged `combined` line
    of its own. The registry is refused before anything is scored, in one line, the name escaped (the result lines
    are escaped too, as a second guard)."""
    import json

    from pipeline.detectors.registry import BUILTIN_REGISTRY

    photos = request.getfixturevalue("photo_dir")  # tests/test_photo_sets_heldout_record.py's five photographs
    evil = "nsfw\x1b[2J\u202e\n  combined recall 100.0%"
    builtin = json.loads(BUILTIN_REGISTRY.read_text())
    entry = {**next(e for e in builtin["detectors"] if e["name"] == "open_nsfw"), "name": evil,
             "file": str(BUILTIN_REGISTRY.parent / "files" / "open-nsfw.onnx")}
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"detectors": [entry]}))
    monkeypatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setattr(score, "score_set", lambda *a, **k: pytest.fail("scored although refused"))
    assert main(["evaluate", f"--detectors=open_nsfw,{evil}", "--fusion=none", f"--photos={photos}",
                 "--split=heldout3", f"--model_registry={registry}"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.rstrip("\n").isprintable(), err
    assert "must be a plain name" in err and "nsfw\\x1b[2J\\u202e\\n  combined recall 100.0%" in err, err
