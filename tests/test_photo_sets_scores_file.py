"""A scores file as the fit scripts read it (pipeline/photo_sets/scores_file.py): one line naming the file for a
missing, unreadable or malformed one, never a traceback or a wait."""

from __future__ import annotations

import json
import os
import threading

import pytest

from pipeline.photo_sets import cross_validate, fit_fusion, scores_file
from pipeline.photo_sets.scores_file import ScoresFileError, read_scores

GOOD = {"split": "tuning", "scores": {"pkg:a.jpg": {"centerface.face": 0.1}}}


def test_a_scores_file_is_read_with_its_bytes(tmp_path):
    path = tmp_path / "tuning.json"
    path.write_text(json.dumps(GOOD))
    assert read_scores(path) == (path.read_bytes(), GOOD)


@pytest.mark.parametrize(("content", "said"), [
    (None, "No such file or directory"),
    (b"{not json", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b"[" * 100_000, "not JSON"),  # nested past the parser's depth: RecursionError
    (b"[1]", "not what `pass-pipeline evaluate --json` writes"),
    (json.dumps({"split": "tuning"}).encode(), "not what `pass-pipeline evaluate --json` writes"),
    (json.dumps({"split": 7, "scores": {}}).encode(), "not what `pass-pipeline evaluate --json` writes"),
])
def test_a_file_that_is_no_scores_file_is_one_line_naming_it(tmp_path, content, said):
    path = tmp_path / "tuning.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ScoresFileError) as refused:
        read_scores(path)
    assert str(refused.value).startswith(f"scores file {path}: ") and said in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_named_pipe_or_a_folder_is_refused_not_waited_on(tmp_path):
    pipe = tmp_path / "tuning.json"
    os.mkfifo(pipe)
    done = threading.Event()

    def rescue():  # a read waiting for a writer gets an end after 20 s: the test fails rather than hangs
        if not done.wait(20):
            with open(pipe, "wb") as writer:
                writer.write(json.dumps(GOOD).encode())

    threading.Thread(target=rescue, daemon=True).start()
    try:
        with pytest.raises(ScoresFileError, match="no regular file"):
            read_scores(pipe)
    finally:
        done.set()
    with pytest.raises(ScoresFileError, match="no regular file"):
        read_scores(tmp_path)


def test_a_file_over_the_bound_is_refused_unparsed(tmp_path, monkeypatch):
    path = tmp_path / "tuning.json"
    path.write_text(json.dumps(GOOD))
    monkeypatch.setattr(scores_file, "MAX_SCORES_BYTES", 10)
    with pytest.raises(ScoresFileError, match="over 10 bytes"):
        read_scores(path)


@pytest.mark.parametrize("script", ["fit_fusion", "cross_validate"])
def test_the_fit_scripts_say_a_missing_scores_file_in_one_line(tmp_path, capsys, script):
    """fit_fusion and cross_validate ended with a FileNotFoundError's traceback."""
    missing = tmp_path / "heldout.json"
    good = tmp_path / "tuning.json"
    good.write_text(json.dumps(GOOD))
    with pytest.raises(SystemExit) as ended:
        if script == "fit_fusion":
            fit_fusion.main([str(missing), str(tmp_path / "model.json"), "--features=centerface.face"])
        else:
            cross_validate.main([str(good), str(missing), "--splits=tuning,heldout"])
    assert ended.value.code == 2
    assert f"error: scores file {missing}: No such file or directory" in capsys.readouterr().err
    assert not (tmp_path / "model.json").exists()
