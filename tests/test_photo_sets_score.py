"""pipeline/photo_sets/score.py and `pass-pipeline evaluate --photos`: tiny local photo sets."""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from pipeline.cli import main
from pipeline.photo_sets import score
from pipeline.photo_sets.fetch import Row
from pipeline.stages.image import STORAGE_RULE_VERSION


def row_for(data: bytes, member_path: str, label: str) -> Row:
    return Row("pkg", "1", "pypi", member_path, hashlib.sha256(data).hexdigest(), 1, 1, label, "", "heldout", "")


def jpeg(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(out, "JPEG")
    return out.getvalue()


def test_array_members_decode_without_running_pickled_code():
    grid = [[(x * y) % 256 for x in range(8)] for y in range(6)]
    ascent = pickle.dumps(grid, protocol=2)
    assert score.open_photo(ascent, row_for(ascent, "scipy/misc/ascent.dat", "person")).size == (8, 6)
    face = bz2.compress(bytes(768 * 1024 * 3))
    assert score.open_photo(face, row_for(face, "scipy/misc/face.dat", "no_person")).size == (1024, 768)
    npz = io.BytesIO()
    np.savez(npz, data=np.zeros((5, 7), dtype=np.uint8))
    assert score.open_photo(npz.getvalue(), row_for(npz.getvalue(), "pywt/data/aero.npz", "no_person")).size == (7, 5)
    hostile = pickle.dumps(os.getcwd)  # would call a function if unpickled plainly: refused
    with pytest.raises(pickle.UnpicklingError):
        score.open_photo(hostile, row_for(hostile, "scipy/misc/ascent.dat", "person"))


@pytest.fixture
def photo_dir(tmp_path, monkeypatch):
    photos = {"red.jpg": (jpeg((200, 30, 30)), "person"), "green.jpg": (jpeg((30, 200, 30)), "no_person"),
              "blue.jpg": (jpeg((30, 30, 200)), "depiction")}
    rows = [row_for(data, f"pkg/{name}", label) for name, (data, label) in photos.items()]
    for labelled, (data, _) in zip(rows, photos.values(), strict=True):
        (tmp_path / labelled.file_name).write_bytes(data)
    monkeypatch.setattr(score, "load_rows", lambda split: rows)
    return tmp_path


def test_evaluate_photos_command(photo_dir, tmp_path, capsys):
    out = tmp_path / "photos.json"
    # Threshold 0 rejects everything: full recall (exit 0), nothing kept.
    assert main(["evaluate", "--detectors=open_nsfw", "--detect_thresholds=open_nsfw.nsfw=0",
                 f"--photos={photo_dir}", "--split=heldout", f"--json={out}"]) == 0
    printed = capsys.readouterr().out
    assert "recall 100.0%" in printed and "keep-rate 0.0%" in printed and "depictions" in printed
    result = json.loads(out.read_text())
    assert result["split"] == "heldout" and result["combined"]["recall"]["n"] == 1
    assert set(result["ablation"]) == {"without open_nsfw"}
    # At its own threshold the NSFW classifier finds no person in a flat red image: exit 1, named.
    assert main(["evaluate", "--detectors=open_nsfw", f"--photos={photo_dir}"]) == 1
    assert "missed: pkg:pkg/red.jpg" in capsys.readouterr().out
    assert result["resize_reducing_gap"] == 1.0  # the record says how the scored images were stored
    assert result["stored_from"] == score.STORED_FROM  # ... and from what
    assert result["storage_rule_version"] == STORAGE_RULE_VERSION  # ... and by which version of the rule


def test_evaluate_stores_the_images_by_the_resize_rule_it_is_given(photo_dir, tmp_path, capsys, monkeypatch):
    gaps: list[float] = []
    real = score.score_set

    def spy(samples, specs, runtime, max_side=512, reducing_gap=1.0):
        gaps.append(reducing_gap)
        return real(samples, specs, runtime, max_side, reducing_gap)

    monkeypatch.setattr(score, "score_set", spy)
    out = tmp_path / "lanczos.json"
    assert main(["evaluate", "--detectors=open_nsfw", f"--photos={photo_dir}", "--resize_reducing_gap=0",
                 f"--json={out}"]) == 1
    assert gaps == [0.0] and json.loads(out.read_text())["resize_reducing_gap"] == 0.0
    # Decided again from those scores: the record keeps the rule they were made under, not this call's default
    again = tmp_path / "again.json"
    assert main(["evaluate", "--detectors=open_nsfw", f"--photos={photo_dir}", f"--scores={out}",
                 f"--json={again}"]) == 1
    assert gaps == [0.0] and json.loads(again.read_text())["resize_reducing_gap"] == 0.0
    older = json.loads(out.read_text())
    assert json.loads(again.read_text())["stored_from"] == score.STORED_FROM
    del older["resize_reducing_gap"]  # a file from before the option: Lanczos only
    del older["stored_from"]  # ... and from before evaluation stored each file's own bytes
    del older["storage_rule_version"]  # ... and from before the version of the storage rule was recorded
    out.write_text(json.dumps(older))
    assert main(["evaluate", "--detectors=open_nsfw", f"--photos={photo_dir}", f"--scores={out}",
                 f"--json={again}"]) == 1
    assert json.loads(again.read_text())["resize_reducing_gap"] == 0.0
    assert json.loads(again.read_text())["stored_from"] == score.DECODED_FIRST
    assert json.loads(again.read_text())["storage_rule_version"] == 1  # a file from before it was recorded
    out.write_text(json.dumps({**older, "storage_rule_version": "2"}))
    assert main(["evaluate", "--detectors=open_nsfw", f"--photos={photo_dir}", f"--scores={out}"]) == 2
    assert "storage_rule_version is '2', not a whole number" in capsys.readouterr().err
    out.write_text(json.dumps({**older, "resize_reducing_gap": "wide"}))
    assert main(["evaluate", "--detectors=open_nsfw", f"--photos={photo_dir}", f"--scores={out}"]) == 2
    assert "resize_reducing_gap is 'wide', not a number" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["evaluate", "--detectors=open_nsfw", f"--photos={photo_dir}", "--resize_reducing_gap=0.5"]) == 2
    assert "--resize_reducing_gap must be 0 (off) or within 1..8" in capsys.readouterr().err


def test_missing_or_tampered_photographs_are_named(photo_dir, capsys):
    victim = next(photo_dir.glob("*.jpg"))
    victim.write_bytes(victim.read_bytes() + b"x")
    assert main(["evaluate", "--detectors=open_nsfw", f"--photos={photo_dir}"]) == 2
    assert "not the labelled file" in capsys.readouterr().err
    victim.unlink()
    assert main(["evaluate", "--detectors=open_nsfw", f"--photos={photo_dir}"]) == 2
    assert "missing" in capsys.readouterr().err


def test_samples_keep_each_files_own_bytes_but_arrays_only_their_pixels(tmp_path, monkeypatch):
    """The bytes are what evaluation stores, as a run stores a download (tests/test_evaluation.py)."""
    data = jpeg((10, 200, 10))
    row = row_for(data, "pkg/green.jpg", "no_person")
    (tmp_path / row.file_name).write_bytes(data)
    array = io.BytesIO()
    np.savez(array, np.full((32, 32, 3), 90, dtype=np.uint8))
    array_row = row_for(array.getvalue(), "pkg/grey.npz", "no_person")
    (tmp_path / array_row.file_name).write_bytes(array.getvalue())
    decoded: list[str] = []
    real_open = score.open_photo
    monkeypatch.setattr(score, "open_photo", lambda data, row: decoded.append(row.member_path) or real_open(data, row))
    photo, pixels = score.load_samples(tmp_path, [row, array_row])
    assert photo.original == data and pixels.original is None
    assert decoded == []  # nothing decoded until the pixels are asked for
    assert pixels.image.size == (32, 32) and decoded == ["pkg/grey.npz"]


def test_earlier_scores_keep_the_context_classes_a_registry_declares(tmp_path):
    """`evaluate --scores` with a candidate's registry: its context classes come back from the file (left out,
    a fusion model reading them would see 0 in every photo), and a file without them is refused."""
    from pathlib import Path

    from pipeline.detectors.registry import load_registry

    registry = Path(__file__).parents[1] / "models" / "candidate_columns_registry.json"
    spec = load_registry(str(registry))["nanodet_person"]
    row = Row("pkg", "1", "pypi", "pkg/a.jpg", "0" * 64, 10, 10, "person", "", "heldout3", "")
    full = {"nanodet_person.person": 0.2, "nanodet_person.boat": 0.9, "nanodet_person.bus": 0.1,
            "nanodet_person.truck": 0.3, "other.x": 1.0}
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"scores": {"pkg:pkg/a.jpg": full}}))
    (scores,), _ = score.earlier_scores(path, [row], [spec])
    assert scores == {k: v for k, v in full.items() if k.startswith("nanodet_person.")}
    path.write_text(json.dumps({"scores": {"pkg:pkg/a.jpg": {"nanodet_person.person": 0.2}}}))
    with pytest.raises(score.PhotoSetError, match=r"nanodet_person\.boat"):
        score.earlier_scores(path, [row], [spec])


def test_an_earlier_scores_file_that_is_no_result_or_holds_no_number_is_refused(tmp_path):
    """`evaluate --scores`: a score of NaN read as a kept photograph (a run rejects such a photo), and a file of
    another shape ended in a bare AttributeError or JSONDecodeError."""
    from pipeline.detectors.registry import load_registry

    spec = load_registry()["open_nsfw"]
    row = Row("pkg", "1", "pypi", "pkg/a.jpg", "0" * 64, 10, 10, "clean", "", "heldout3", "")
    path = tmp_path / "s.json"
    for text, problem in (("{not json", "JSONDecodeError"), ("[1, 2]", "not an evaluate --json result"),
                          ('{"scores": {"pkg:pkg/a.jpg": {"open_nsfw.nsfw": NaN}}}', "no finite number"),
                          ('{"scores": {"pkg:pkg/a.jpg": {"open_nsfw.nsfw": "0.1"}}}', "no finite number"),
                          ('{"scores": {"pkg:pkg/a.jpg": [0.1]}}', "has no scores")):
        path.write_text(text)
        with pytest.raises(score.PhotoSetError, match=problem):
            score.earlier_scores(path, [row], [spec])
    path.write_text('{"scores": {"pkg:pkg/a.jpg": {"open_nsfw.nsfw": 0.1}}}')
    assert score.earlier_scores(path, [row], [spec])[0] == [{"open_nsfw.nsfw": 0.1}]


def test_a_file_over_any_photographs_size_is_refused_before_it_is_read(tmp_path, monkeypatch):
    data = jpeg((10, 20, 30))
    (tmp_path / "pkg").mkdir()
    row = row_for(data, "a.jpg", "clean")
    (tmp_path / row.file_name).write_bytes(data)
    monkeypatch.setattr(score, "MAX_PHOTO_BYTES", len(data) - 1)
    with pytest.raises(score.PhotoSetError, match="over"):
        score.load_samples(tmp_path, [row])


@pytest.mark.parametrize("kind", ["a named pipe", "a link to a device", "over the bound"])
@pytest.mark.parametrize("record", [False, True])
def test_an_earlier_scores_file_that_is_no_regular_file_or_over_any_result_is_refused_not_read(
        photo_dir, tmp_path, capsys, monkeypatch, kind, record):
    """`evaluate --scores` read its file whole with no bound, as whatever it was: a named pipe (`--scores=<(cmd)`, a
    file replaced by one) was waited on for a writer for good, a link to /dev/zero read until memory ran out. One
    line, exit 2, before any detector runs, as the fit scripts refuse a scores file (`scores_file.read_scores`)."""
    import threading

    scores = tmp_path / "earlier.json"
    good = json.dumps({"split": "heldout", "scores": {}})
    done = threading.Event()
    if kind == "a named pipe":
        os.mkfifo(scores)

        def rescue():  # a read waiting for a writer gets an end after 20 s: the test fails rather than hangs
            if not done.wait(20):
                with open(scores, "w") as writer:
                    writer.write(good)

        threading.Thread(target=rescue, daemon=True).start()
    elif kind == "a link to a device":
        scores.symlink_to("/dev/zero")
    else:
        scores.write_text(good)
        monkeypatch.setattr(score, "MAX_SCORES_BYTES", len(good) - 1)
    monkeypatch.setattr(score, "score_set", lambda *args, **kwargs: pytest.fail("scored"))
    record_args = [f"--record={tmp_path / 'record.json'}"] if record else []
    try:
        assert main(["evaluate", "--detectors=open_nsfw", f"--photos={photo_dir}", f"--scores={scores}",
                     *record_args]) == 2
    finally:
        done.set()
    said = capsys.readouterr().err
    expected = f"over {len(good) - 1:,} bytes" if kind == "over the bound" else "no regular file"
    assert said.startswith(f"pass-pipeline: error: {scores}: {expected}"), said
    assert said.count("\n") == 1 and not (tmp_path / "record.json").exists(), said


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="a file whose size stat gives as 0 (Linux's /proc)")
def test_a_photograph_whose_size_its_stat_hides_is_read_no_further_than_the_bound(tmp_path, monkeypatch):
    """A labelled photograph's file was checked against the bound by the size its stat gave, then read whole: a link
    to a file whose stat says 0 bytes and whose reads go on (Linux's /proc/self/pagemap: 256 GiB of reads) was read
    until memory ran out before its sha256 could say it is not ours. Its reads stop at the bound."""
    data = jpeg((10, 20, 30))
    (tmp_path / "pkg").mkdir()
    row = row_for(data, "a.jpg", "clean")
    (tmp_path / row.file_name).symlink_to("/proc/self/maps")  # stat: 0 bytes; read: a few kB
    assert (tmp_path / row.file_name).stat().st_size == 0
    monkeypatch.setattr(score, "MAX_PHOTO_BYTES", 100)
    with pytest.raises(score.PhotoSetError, match=r"\.jpg is over 100 bytes: not the labelled file"):
        score.load_samples(tmp_path, [row])


@pytest.mark.parametrize("probes", ["open_nsfw.scene_person", ["open_nsfw.scene_person"], 5, None])
def test_an_earlier_scores_file_naming_its_probe_files_in_another_shape_is_refused_in_words(tmp_path, probes):
    """`evaluate --scores` with a registry naming probe files: a file whose `context_probes` was no object (a text, a
    list) ended in a bare AttributeError ("the job failed", exit 1); it is refused as a file of another shape."""
    from pipeline.detectors.registry import BUILTIN_REGISTRY, load_registry, select

    specs = [spec for spec in select(load_registry(str(BUILTIN_REGISTRY.parent / "candidate_probe_registry.json")),
                                     "default") if spec.name == "open_nsfw"]
    assert specs[0].probes  # the registry names a probe file
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"split": "heldout", "scores": {}, "context_probes": probes}))
    with pytest.raises(score.PhotoSetError, match=r"context_probes is .*, not an object|were not made by") as refused:
        score.earlier_scores(path, [], specs)
    if probes is not None:  # a file from before the key was written names no probe file: made by none
        assert "not an object" in str(refused.value), refused.value
