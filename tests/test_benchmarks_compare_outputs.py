"""benchmarks/compare_outputs.py: two output folders are the same dataset up to the local server's port (in tar
members and Parquet rows), timings files aside; any other difference, or a file only one has, is named."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks import compare_outputs


def _tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _output(folder: Path, port: int, caption: str = "a bird", timing: float = 1.0) -> Path:
    """A run's output as the job lays it out, its URLs on 127.0.0.1:`port`."""
    (folder / "webdataset").mkdir(parents=True)
    (folder / "parquet").mkdir()
    url = f"http://127.0.0.1:{port}/1/100000_abcdef0123.jpg"
    _tar(folder / "webdataset" / "pass-00000-of-00001.tar",
         {"100000.jpg": b"\xff\xd8jpeg", "100000.json": f'{{"url": "{url}", "caption": "{caption}"}}'.encode()})
    pq.write_table(pa.table({"photo_id": ["100000"], "url": [url]}), folder / "parquet" / "pass-00000-of-00001.parquet")
    (folder / "ATTRIBUTION.csv").write_text("photo_id,creator\n100000,Owner\n")
    (folder / "stats.json").write_text(f'{{"seconds": {timing}}}')
    (folder / "manifest.json").write_text(f'{{"port": {port}}}')
    return folder


def _compare(monkeypatch, capsys, before: Path, after: Path) -> tuple[int, list[str]]:
    monkeypatch.setattr("sys.argv", ["compare_outputs", str(before), str(after)])
    with pytest.raises(SystemExit) as exited:
        compare_outputs.main()
    code = exited.value.code
    assert isinstance(code, int)
    return code, capsys.readouterr().out.splitlines()


def test_runs_that_differ_only_in_port_and_timings_are_identical(tmp_path, monkeypatch, capsys):
    before = _output(tmp_path / "before", 40001, timing=1.0)
    after = _output(tmp_path / "after", 40002, timing=2.5)
    code, lines = _compare(monkeypatch, capsys, before, after)
    assert code == 0 and lines[-1] == "identical, up to the server port"
    # one line per compared file, the timings files not among them
    assert sorted(lines[:-1]) == ["same ATTRIBUTION.csv", "same parquet/pass-00000-of-00001.parquet",
                                  "same webdataset/pass-00000-of-00001.tar"]


def test_a_changed_member_and_a_file_only_one_run_wrote_are_named(tmp_path, monkeypatch, capsys):
    before = _output(tmp_path / "before", 40001)
    after = _output(tmp_path / "after", 40001, caption="a cat")
    (after / "extra.txt").write_text("only here")
    code, lines = _compare(monkeypatch, capsys, before, after)
    assert code == 1 and lines[-1] == "different"
    assert "DIFF webdataset/pass-00000-of-00001.tar" in lines and "DIFF extra.txt" in lines
    assert "same parquet/pass-00000-of-00001.parquet" in lines and "same ATTRIBUTION.csv" in lines


def test_parquet_rows_are_compared_without_the_port_and_not_byte_for_byte(tmp_path):
    first, second, third = (tmp_path / name for name in ("a.parquet", "b.parquet", "c.parquet"))
    pq.write_table(pa.table({"url": ["http://127.0.0.1:1/x"]}), first)
    pq.write_table(pa.table({"url": ["http://127.0.0.1:65000/x"]}), second, compression="gzip")  # other bytes
    pq.write_table(pa.table({"url": ["http://127.0.0.2:1/x"]}), third)
    assert first.read_bytes() != second.read_bytes()
    assert compare_outputs.same_file(first, second)
    assert not compare_outputs.same_file(first, third)


@pytest.mark.parametrize("wrong", ["missing", "a file", "empty"])
def test_a_folder_that_is_missing_no_folder_or_empty_is_refused_not_called_identical(tmp_path, monkeypatch, capsys,
                                                                                    wrong):
    """Two folders that do not exist (a path typed wrong, a run that wrote elsewhere) held no file either side, and
    nothing differing was "identical, up to the server port", exit 0: the check of a port's change passed on
    nothing. Each folder must be one holding a dataset's files: one line naming it, exit 2."""
    before = _output(tmp_path / "before", 40001)
    after = tmp_path / "after"
    if wrong == "a file":
        after.write_text("notes\n")
    elif wrong == "empty":
        after.mkdir()
    for pair in ((before, after), (after, before)):
        monkeypatch.setattr("sys.argv", ["compare_outputs", *map(str, pair)])
        with pytest.raises(SystemExit) as exited:
            compare_outputs.main()
        out, err = capsys.readouterr()
        assert exited.value.code == 2 and out == "", out
        assert err.startswith(f"compare_outputs: error: {after} ") and err.count("\n") == 1, err
