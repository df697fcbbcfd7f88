"""benchmarks/end_to_end.py on two corpus photos: the loop's baseline line, the job's three lines with every photo
kept and their ratios to the loop, and the formats' ratio. img2dataset is left out (--skip_img2dataset): the script
installs it from PyPI on first use, and these tests reach nothing but 127.0.0.1."""

from __future__ import annotations

import math
import re

from benchmarks import end_to_end
from benchmarks.corpus import distinct_photos, served


def test_the_loop_baseline_fetches_and_hashes_every_photo(tmp_path):
    with served(distinct_photos(2), str(tmp_path)) as corpus:
        seconds = end_to_end.sequential_baseline(corpus.urls)
    assert math.isfinite(seconds) and seconds > 0


def test_the_job_keeps_every_photo_and_each_line_is_a_ratio_to_the_loop(monkeypatch, capsys):
    # The two-worker runs start two worker processes each (~6 s of CPU apiece on this machine: README, "Worker
    # CPU"): run in this process here, where what is checked is what the script prints, not the runner.
    monkeypatch.setattr(end_to_end, "TWO_WORKERS", [])
    monkeypatch.setattr("sys.argv", ["end_to_end", "--images=2", "--skip_img2dataset"])
    end_to_end.main()
    lines = [line for line in capsys.readouterr().out.splitlines()
             if not line.startswith(("kept ", "  "))]  # the job's own summary of each run
    assert re.fullmatch(r"images: 2, mean size \d+ KiB; detectors off", lines[0]), lines[0]
    assert re.fullmatch(r"sequential loop \(baseline\)\s+\d+\.\d img/s\s+1\.00x loop", lines[1]), lines[1]
    job = re.compile(r"(ours, .+?)\s+(\d+\.\d) img/s\s+(\d+\.\d\d)x loop   \(kept (\d+), peak RSS ([\d,]+) MiB\)")
    runs = [job.fullmatch(line) for line in lines[2:5]]
    assert all(runs), lines[2:5]
    assert [found.group(1) for found in runs if found] == [
        "ours, 1 worker, WebDataset", "ours, 2 workers, WebDataset", "ours, 2 workers, all 3 formats"]
    for found in runs:
        assert found and float(found.group(2)) > 0 and float(found.group(3)) > 0 and found.group(4) == "2"
        assert int(found.group(5).replace(",", "")) > 0
    ratio = re.fullmatch(r"all 3 formats / WebDataset only \(2 workers\): wall ratio (\d+\.\d\d)", lines[5])
    assert ratio and float(ratio.group(1)) > 0, lines[5]
    assert len(lines) == 6  # no img2dataset line when it is skipped
