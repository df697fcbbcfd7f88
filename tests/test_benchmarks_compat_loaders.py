"""benchmarks/compat_loaders.py needs torch and TensorFlow, each in a venv of its own (see its docstring), not
installed here: what it expects from a release's Parquet shards, and that a loader that cannot run is reported as a
failure, each loader on its line and the exit status 1, rather than ending the check at the first."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks import compat_loaders


@pytest.fixture
def release(tmp_path):
    (tmp_path / "parquet").mkdir()
    for index, rows in enumerate(([("100000", 512, 384), ("100001", 384, 512)], [("100002", 512, 512)])):
        pq.write_table(pa.table({"photo_id": [row[0] for row in rows], "width": [row[1] for row in rows],
                                 "height": [row[2] for row in rows], "caption": ["x"] * len(rows)}),
                       tmp_path / "parquet" / f"pass-{index:05d}-of-00002.parquet")
    return tmp_path


def test_the_expected_images_are_every_shards_ids_and_sizes(release):
    assert compat_loaders.expected(str(release)) == {"100000": (512, 384), "100001": (384, 512),
                                                     "100002": (512, 512)}


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None or importlib.util.find_spec("tensorflow") is not None,
                    reason="the loaders can run here")
def test_a_loader_that_cannot_run_fails_its_line_and_the_others_still_run(release, capsys):
    assert compat_loaders.main([str(release)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[0] for line in lines] == [f"FAIL {name}" for name in compat_loaders.CHECKS]
    assert all("ModuleNotFoundError: No module named " in line for line in lines)


def test_the_script_imports_nothing_from_the_project():
    """It reads a release as a stranger would, in a venv without the project (its docstring)."""
    tree = ast.parse(Path(compat_loaders.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "pyarrow" in imported and "torch" in imported  # the walk sees the functions' own imports
    assert not imported & {"pipeline", "benchmarks", "tests", "models"}


@pytest.mark.parametrize("wrong", ["not there", "no release"])
def test_a_folder_holding_no_release_s_parquet_shards_is_refused_in_one_line(tmp_path, capsys, wrong):
    """A folder not there, or one without the release's parquet/ shards (a path typed wrong), ended in a
    FileNotFoundError traceback from the Parquet read: one line naming it, exit 2, before any loader runs."""
    folder = tmp_path / "release"
    if wrong == "no release":
        folder.mkdir()
    with pytest.raises(SystemExit) as exited:
        compat_loaders.main([str(folder)])
    out, err = capsys.readouterr()
    assert exited.value.code == 2 and out == ""
    assert err.startswith(f"compat_loaders: error: {folder} ") and err.count("\n") == 1, err
