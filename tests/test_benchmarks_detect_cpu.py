"""benchmarks/detect_cpu.py on one photograph: a line per registered detector at batches 1, 8 and 32, the
exported-weights session for the export that has them, a line per compared detector set, and the peak; the photos
are the corpus or a folder's image files, stored as a run stores them."""

from __future__ import annotations

import io
import math
import re
import shutil
from pathlib import Path

from PIL import Image

from benchmarks import detect_cpu
from pipeline.detectors.registry import load_registry

PHOTOS = Path(__file__).parent / "photos"


def test_a_folders_image_files_are_taken_by_name_and_stored_at_512_px(tmp_path):
    for name in ("macaque.jpg", "dallas_sunset.jpg", "young_gorilla.jpg"):
        shutil.copyfile(PHOTOS / name, tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a photograph")
    Image.open(PHOTOS / "macaque.jpg").save(tmp_path / "a_copy.png")
    photos = detect_cpu.photos(3, str(tmp_path))
    assert [photo.photo_id for photo in photos] == ["0", "1", "2"]
    sizes = [Image.open(io.BytesIO(photo.image)).size for photo in photos]
    assert all(max(size) == 512 for size in sizes)
    # sorted by name: a_copy.png, dallas_sunset.jpg, macaque.jpg (the first three; the text file is no image)
    assert sizes[0] == sizes[2] != sizes[1]


RATE = r"(\d+\.\d) img/s \((\d+\.\d\d)x"


def test_each_detector_is_measured_at_batches_1_8_and_32_and_an_export_with_weights_as_inputs_also_so(
        monkeypatch, capsys):
    # Two of the registry (every detector's sessions are ~10 s here): CenterFace, whose export has its weights as
    # graph inputs, and one without.
    registry = load_registry()
    chosen = ("centerface", "open_nsfw")
    monkeypatch.setattr(detect_cpu, "load_registry", lambda: {name: registry[name] for name in chosen})
    detect_cpu.per_detector(detect_cpu.photos(1))
    lines = capsys.readouterr().out.splitlines()
    per_batch = re.compile(rf"(\S+)\s+batch  1:\s+{RATE}\)  batch  8:\s+{RATE}\)  batch 32:\s+{RATE}\)")
    exported = re.compile(rf"(\S+)\s+weights as graph inputs \(the session before the repair\): batch  1:\s+{RATE} "
                          r"the session a run uses\)")
    assert [found.group(1) for line in lines if (found := per_batch.fullmatch(line))] == list(chosen)
    assert [found.group(1) for line in lines if (found := exported.fullmatch(line))] == ["centerface"]
    assert len(lines) == 3
    for line in lines:
        found = per_batch.fullmatch(line) or exported.fullmatch(line)
        assert found, line
        numbers = [float(number) for number in found.groups()[1:]]
        assert all(math.isfinite(number) and number > 0 for number in numbers)
        if per_batch.fullmatch(line):
            assert numbers[1] == 1.0  # batch 1 is the baseline


def test_every_detector_set_is_measured_against_the_decode_only_pipeline(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["detect_cpu", "--images=1", "--stage_only"])
    detect_cpu.main()
    lines = capsys.readouterr().out.splitlines()
    stage = re.compile(r"Detect stage, (.+) \((.+); RunInference, batches <= \d+ photos\): (\d+\.\d) img/s; "
                       r"(\d+\.\d)x the time of a decode-only pipeline over the same 1 images")
    stages = [stage.fullmatch(line) for line in lines[:-1]]
    assert all(stages), lines
    assert [found.group(1) for found in stages if found] == [label for label, *_ in detect_cpu.DETECTOR_SETS]
    assert all(float(found.group(3)) > 0 and float(found.group(4)) > 0 for found in stages if found)
    assert stages[0] and stages[0].group(2) == "centerface, ssdlite_person, open_nsfw"  # each set names its detectors
    assert re.fullmatch(r"peak RSS of the benchmark: [\d,]+ MiB", lines[-1])
