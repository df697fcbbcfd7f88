"""benchmarks/refresh_unchanged.py on one copy of the demo photographs: the first release downloads and normalises
each photo, the refresh of the same dump none, and keeps as many."""

from __future__ import annotations

import math
import re

from benchmarks import refresh_unchanged


def test_the_refresh_of_an_unchanged_dump_downloads_nothing_and_keeps_every_photo(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["refresh_unchanged", "--copies=1"])
    refresh_unchanged.main()  # exits with "FAILED: ..." where the refresh downloads, re-hashes or loses a photo
    lines = capsys.readouterr().out.splitlines()
    run = re.compile(r"(first|refresh)\s+rows\s+(\d+)\s+downloads\s+(\d+)\s+normalised\s+(\d+)\s+kept\s+(\d+)\s+"
                     r"(\d+\.\d) s")
    runs = {found.group(1): [int(found.group(i)) for i in range(2, 6)] + [float(found.group(6))]
            for line in lines if (found := run.fullmatch(line))}
    # rows, downloads, normalised, kept: the 10 demo photos once; the refresh reads them again beside the carried 10
    assert runs["first"][:4] == [10, 10, 10, 10]
    assert runs["refresh"][:4] == [20, 0, 0, 10]
    ratio = re.fullmatch(r"refresh / first: downloads 0/10, wall time (\d+\.\d\d)x", lines[-1])
    assert ratio, lines[-1]
    assert math.isfinite(float(ratio.group(1))) and float(ratio.group(1)) > 0
