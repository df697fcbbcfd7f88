"""Publishing a staged run into its output folder, killed at every step (io/layout.py).

A kill is simulated by raising from the N-th filesystem operation of `publish` (a delete, a rename, a
file created, a folder removed): whatever it leaves must never be taken for a dataset it is not, and the
next run (`finish_interrupted_publish`, then `remove_staging`) must leave exactly one complete run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from apache_beam.io.filesystems import FileSystems

from pipeline.io import layout
from pipeline.io.layout import MANIFEST, PUBLISHING, finish_interrupted_publish, publish, remove_staging

OLD = ["manifest.json", "stats.json", "README.md", "parquet/pass-00000-of-00003.parquet",
       "parquet/pass-00001-of-00003.parquet", "parquet/pass-00002-of-00003.parquet",
       "webdataset/pass-00000-of-00001.tar"]
NEW = ["manifest.json", "stats.json", "README.md", "ATTRIBUTION.csv", "parquet/pass-00000-of-00002.parquet",
       "parquet/pass-00001-of-00002.parquet"]


class Killed(BaseException):
    """Not an Exception: nothing in the code under test may catch it, as nothing catches a SIGKILL."""


def _write(folder: Path, names: list[str], run: str) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(f"{run}:{name}")


def _folder(tmp_path: Path) -> tuple[Path, Path]:
    output = tmp_path / "out"
    _write(output, OLD, "old")
    (output / "notes.txt").write_text("the user's own file")  # not a run file: never touched
    staging = output / "_staging" / "run-2"
    _write(staging, NEW, "new")
    _write(staging, ["_images/ab/cd.jpg", "_parts/a.jsonl"], "new")  # writers' scratch, never published
    return output, staging


def _dataset(output: Path) -> dict[str, str]:
    return {str(path.relative_to(output)): path.read_text() for path in sorted(output.rglob("*"))
            if path.is_file() and not str(path.relative_to(output)).startswith("_staging")}


def _operations(monkeypatch, kill_at: int | None) -> list[str]:
    """Counts (and at `kill_at` stops) every filesystem operation publish makes."""
    done: list[str] = []

    def counted(name, real):
        def operation(*args, **kwargs):
            if kill_at is not None and len(done) == kill_at:
                raise Killed(name)
            done.append(name)
            return real(*args, **kwargs)
        return operation

    for name in ("delete", "rename", "create"):
        monkeypatch.setattr(FileSystems, name, staticmethod(counted(name, getattr(FileSystems, name))))
    monkeypatch.setattr(layout.shutil, "rmtree", counted("rmtree", shutil.rmtree))
    return done


def _expected(run: str, names: list[str]) -> dict[str, str]:
    return dict(sorted({**{name: f"{run}:{name}" for name in names}, "notes.txt": "the user's own file"}.items()))


def test_an_uninterrupted_publish_replaces_the_old_run_with_the_new(tmp_path, monkeypatch):
    output, staging = _folder(tmp_path)
    operations = _operations(monkeypatch, None)
    assert publish(str(staging), str(output)) == sorted(NEW, key=lambda name: (name == MANIFEST, name))
    assert _dataset(output) == _expected("new", NEW) and not staging.exists()
    assert len(operations) > 10  # the kill points the next test walks through


def test_a_format_folder_the_new_run_does_not_write_goes_with_its_files(tmp_path, monkeypatch):
    """An old run's webdataset/ (a run with --formats=parquet over one with every format) stayed behind, empty: a
    reader globbing OUTPUT/webdataset/*.tar found a format the dataset seemed to have and no shard of it."""
    output, staging = _folder(tmp_path)
    finished = _operations(monkeypatch, 3)
    with pytest.raises(Killed):
        publish(str(staging), str(output))
    assert finished and (output / "webdataset").is_dir()  # killed before the folder went: the next run finishes it
    monkeypatch.undo()
    assert finish_interrupted_publish(str(output)) == "run-2"
    assert not (output / "webdataset").exists() and (output / "parquet").is_dir()
    assert _dataset(output) == _expected("new", NEW)


def test_a_publish_killed_at_any_step_is_never_a_wrong_dataset_and_the_next_run_finishes_it(tmp_path, monkeypatch):
    with pytest.MonkeyPatch.context() as counting:  # the steps of a publish, counted on a folder of its own
        output, staging = _folder(tmp_path / "count")
        done = _operations(counting, None)
        publish(str(staging), str(output))
        steps = len(done)
    outcomes = set()
    for kill_at in range(steps):
        case = tmp_path / f"kill-{kill_at}"
        output, staging = _folder(case)
        with pytest.MonkeyPatch.context() as killing:
            _operations(killing, kill_at)
            with pytest.raises(Killed):
                publish(str(staging), str(output))
        left = _dataset(output)
        if "manifest.json" in left:  # a manifest is only ever over the complete run it belongs to
            run = left["manifest.json"].split(":")[0]
            assert left == _expected(run, OLD if run == "old" else NEW), (kill_at, left)
        planned = (staging / PUBLISHING).exists()
        finished = finish_interrupted_publish(str(output))
        remove_staging(str(output))
        assert finished == ("run-2" if planned else None), kill_at
        after = _dataset(output)
        # Killed before the plan was written: the old run is untouched; after it: the new run is published.
        assert after == (_expected("new", NEW) if planned else _expected("old", OLD)), (kill_at, after)
        assert not (output / "_staging").exists()
        outcomes.add("new" if planned else "old")
    assert outcomes == {"old", "new"}


def test_a_plan_naming_a_path_outside_the_folder_is_not_followed(tmp_path):
    """The plan is the staging folder's own file; still, a name with '..' (or anything a run never writes)
    makes it no plan: the folder is left to remove_staging, the old run untouched."""
    output, staging = _folder(tmp_path)
    (output / "_staging" / "escape.txt").write_text("moved out?")  # what staging/../escape.txt names
    (staging / PUBLISHING).write_text(json.dumps({"files": ["../escape.txt", "manifest.json"]}))
    assert finish_interrupted_publish(str(output)) is None
    assert not (tmp_path / "escape.txt").exists() and _dataset(output) == _expected("old", OLD)


def test_a_run_stopped_while_publishing_keeps_its_planned_staging_for_the_next(tmp_path, monkeypatch):
    """Ctrl-C runs the run's cleanup (a kill does not): it must not remove the staged files of a publish
    that began, or the old run's deleted files and the new run's would both be gone."""
    output, staging = _folder(tmp_path)
    killed_earlier = output / "_staging" / "run-1"
    _write(killed_earlier, ["parquet/pass-00000-of-00009.parquet"], "killed")
    with pytest.MonkeyPatch.context() as stopping:
        _operations(stopping, 6)
        with pytest.raises(Killed):
            publish(str(staging), str(output))
    remove_staging(str(output), keep_planned=True)  # the run's own cleanup, on its way out
    assert (staging / PUBLISHING).exists() and not killed_earlier.exists()
    assert finish_interrupted_publish(str(output)) == "run-2" and _dataset(output) == _expected("new", NEW)


def test_the_temporary_a_failed_and_retried_write_left_is_not_published(tmp_path):
    """atomic_file keeps its temporary when the write fails; the retried write succeeds under the final name.
    Published, the temporary was a file no manifest lists, and verify refused the release."""
    output, staging = _folder(tmp_path)
    _write(staging, ["parquet/pass-00000-of-00002.parquet.tmp-" + "0123456789abcdef" * 2], "failed")
    assert publish(str(staging), str(output)) == sorted(NEW, key=lambda name: (name == MANIFEST, name))
    assert _dataset(output) == _expected("new", NEW) and not staging.exists()


def test_links_among_the_run_folders_and_a_release_above_are_found(tmp_path):
    from pipeline.io.layout import linked_run_paths, published_folder_above

    output = tmp_path / "out"
    output.mkdir()
    (tmp_path / "thesis").mkdir()
    (output / "review").symlink_to(tmp_path / "thesis")
    (output / "notes").symlink_to(tmp_path / "thesis")  # not a run folder: the run never touches it
    assert linked_run_paths(str(output)) == [str(output / "review")]
    assert linked_run_paths("gs://b/out") == []
    release = tmp_path / "releases" / "r1"
    (release / "parquet").mkdir(parents=True)
    (release / "manifest.json").write_text(json.dumps({"release": "r1"}))
    assert published_folder_above(str(release / "parquet" / "more")) == str(release.resolve())
    assert published_folder_above(str(release)) == str(release.resolve())
    assert published_folder_above(str(tmp_path / "releases" / "r2")) is None


def test_a_release_whose_manifest_is_a_pipe_or_endless_is_no_release_and_never_waited_on(tmp_path):
    """Every release's manifest is read to find `--previous=latest`: one that was a named pipe (a release folder is
    outside input) hung the refresh for good, one linked to /dev/zero read until memory ran out. Neither is a
    published release; the others are found."""
    import os
    import threading

    from pipeline.io.layout import manifest_of, published_releases

    for name in ("r1", "r2", "r3"):
        (tmp_path / "releases" / name).mkdir(parents=True)
    (tmp_path / "releases" / "r1" / "manifest.json").write_text(json.dumps({"release": "r1"}))
    os.mkfifo(tmp_path / "releases" / "r2" / "manifest.json")
    (tmp_path / "releases" / "r3" / "manifest.json").symlink_to("/dev/zero")
    found: list = []
    reader = threading.Thread(target=lambda: found.append(published_releases(str(tmp_path))), daemon=True)
    reader.start()
    reader.join(timeout=30)
    assert found == [[str(tmp_path / "releases" / "r1")]]
    assert manifest_of(str(tmp_path / "releases" / "r3")) is None


def test_a_manifest_over_its_bound_is_no_release(tmp_path, monkeypatch):
    from pipeline.io import layout

    (tmp_path / "manifest.json").write_text(json.dumps({"release": "r1", "files": []}))
    assert layout.manifest_of(str(tmp_path)) == {"release": "r1", "files": []}
    monkeypatch.setattr(layout, "MAX_MANIFEST_BYTES", (tmp_path / "manifest.json").stat().st_size - 1)
    assert layout.manifest_of(str(tmp_path)) is None


def test_a_plan_that_is_a_link_over_the_bound_or_nested_past_json_s_depth_is_no_plan(tmp_path, monkeypatch):
    """What the next run reads first, under the lock: a plan a run never writes (a link to a plan elsewhere, a file
    of gigabytes, read whole before, the run ending out of memory; brackets nested past the parser's depth) is left
    to remove_staging, the old run untouched, as verify reads it (`staged_runs`, bounded, never through a link)."""
    output, staging = _folder(tmp_path)
    elsewhere = tmp_path / "plan.json"
    elsewhere.write_text(json.dumps({"files": NEW}))
    (staging / PUBLISHING).symlink_to(elsewhere)
    assert finish_interrupted_publish(str(output)) is None and _dataset(output) == _expected("old", OLD)
    (staging / PUBLISHING).unlink()
    (staging / PUBLISHING).write_text("[" * 100_000)
    assert finish_interrupted_publish(str(output)) is None and _dataset(output) == _expected("old", OLD)
    plan = json.dumps({"files": NEW})
    (staging / PUBLISHING).write_text(plan)
    monkeypatch.setattr(layout, "MAX_MANIFEST_BYTES", len(plan) - 1)
    assert finish_interrupted_publish(str(output)) is None and _dataset(output) == _expected("old", OLD)
    monkeypatch.setattr(layout, "MAX_MANIFEST_BYTES", len(plan))
    assert finish_interrupted_publish(str(output)) == "run-2" and _dataset(output) == _expected("new", NEW)


def test_the_cleanup_that_keeps_planned_folders_reads_a_plan_as_the_next_run_does(tmp_path, monkeypatch):
    """`remove_staging(keep_planned=True)` (a run's own cleanup, a refresh finishing a publish cut after its manifest
    moved in) read each plan whole and through a link: brackets nested past JSON's depth ended the refresh with a
    RecursionError's traceback, gigabytes put there ended it out of memory. Now it reads a plan as
    `finish_interrupted_publish` does: a link, one over the bound or one nested too deep is a plan of its own, kept."""
    output = tmp_path / "out"
    _write(output, OLD, "old")
    staging = output / "_staging" / "run-2"
    staging.mkdir(parents=True)
    plan = json.dumps({"files": OLD})  # its manifest moved in: only the folder's removal was left
    elsewhere = tmp_path / "plan.json"
    elsewhere.write_text(plan)
    (staging / PUBLISHING).symlink_to(elsewhere)
    remove_staging(str(output), keep_planned=True)
    assert (staging / PUBLISHING).is_symlink()
    (staging / PUBLISHING).unlink()
    (staging / PUBLISHING).write_text("[" * 100_000)
    remove_staging(str(output), keep_planned=True)
    assert (staging / PUBLISHING).exists()
    (staging / PUBLISHING).write_text(plan)
    monkeypatch.setattr(layout, "MAX_MANIFEST_BYTES", len(plan) - 1)
    remove_staging(str(output), keep_planned=True)
    assert (staging / PUBLISHING).exists()
    monkeypatch.setattr(layout, "MAX_MANIFEST_BYTES", len(plan))
    remove_staging(str(output), keep_planned=True)  # the plan a run wrote: its publish finished, the folder removed
    assert not (output / "_staging").exists() and _dataset(output) == {name: f"old:{name}" for name in sorted(OLD)}
