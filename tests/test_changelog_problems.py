"""changelog.json against the release it describes, as verify checks it."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.release.changelog_problems import changelog_problems
from pipeline.release.verify import verify
from tests.conftest import reseal


def log(added=("4",), removed=None, unchanged=2, previous=3, release=3, name="r2") -> dict:
    return {"release": name, "previous": "r1", "added": list(added),
            "removed": {"blocklist/listed": ["1"]} if removed is None else removed,
            "unchanged": unchanged, "skipped_as_decided": 0, "totals": {"previous": previous, "release": release}}


def problems(value, kept=("2", "3", "4"), release="r2") -> list[str]:
    data = value if isinstance(value, bytes) else json.dumps(value).encode()
    return [p.message for p in changelog_problems("changelog.json", data, dict.fromkeys(kept, 1), release)]


def test_a_changelog_a_refresh_writes_has_no_problem():
    assert problems(log()) == []
    assert problems(log(added=(), removed={}, unchanged=3, previous=3)) == []


@pytest.mark.parametrize(("value", "said"), [
    (log(added=("4", "9"), release=4), ["counts 4 photos in the release, which holds 3",
                                        "1 photo ids it adds are not in the release, e.g. '9'"]),
    (log(removed={"blocklist/listed": ["1", "3"]}, previous=4), ["1 photo ids it removes are still in the release, "
                                                                 "e.g. '3'"]),
    (log(removed={"blocklist/listed": ["4"]}), ["1 photo ids both added and removed, e.g. '4'",
                                                "1 photo ids it removes are still in the release, e.g. '4'"]),
    (log(removed={"a/b": ["1"], "c/d": ["1"]}, previous=4), ["1 photo ids removed more than once, e.g. '1'"]),
    (log(previous=9), ["the previous release's 9 photos are not its 2 unchanged + 1 removed"]),
    (log(unchanged=1, previous=2), ["the release's 3 photos are not its 1 unchanged + 1 added"]),
    (log(name="r3"), ["describes release 'r3', the manifest says 'r2'"]),
])
def test_a_changelog_that_misstates_the_release_is_told(value, said):
    """A changelog leaving a removed photo out, or naming one the release holds, misleads the mirrors that delete by it
    (a takedown), and a resealed manifest makes its checksum match."""
    assert problems(value) == said


@pytest.mark.parametrize(("value", "said"), [
    (b"{", "not valid JSON"), (b"[]", "not a JSON object but list, as a refresh writes it"),
    (log(added=[1]), '"added" is not a list of photo ids'), (log(removed={"x": "1"}), '"removed" is not an object'),
    (log(unchanged=True), '"unchanged" is not a count'), (log(release=-1), '"totals" does not give'),
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
])
def test_a_changelog_of_another_shape_is_one_line(value, said):
    [message] = problems(value)
    assert said in message


def release_r2(demo_release, folder) -> list[str]:
    """A copy of the demo release in `folder` named release r2, its manifest listing a changelog.json (to be written and
    resealed); its photo ids."""
    import shutil

    shutil.copytree(demo_release, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["release"] = "r2"
    manifest["files"].append({"path": "changelog.json", "format": "changelog", "bytes": 0, "sha256": ""})
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return sorted(row["photo_id"] for path in sorted((folder / "parquet").glob("*.parquet"))
                  for row in pq.read_table(path, columns=["photo_id"]).to_pylist())


def test_verify_checks_a_releases_changelog_against_its_photos(demo_release, tmp_path):
    """Through verify: a changelog.json consistent with the demo release passes, one resealed to leave a photo the
    release holds among the removed ones (so that mirrors delete it) does not."""
    copy = tmp_path / "copy"
    kept = release_r2(demo_release, copy)

    def written(value: dict) -> set[tuple[str, str]]:
        (copy / "changelog.json").write_text(json.dumps(value))
        reseal(copy)
        return {(p.path, p.message) for p in verify(str(copy))}

    good = log(added=kept[1:], removed={"blocklist/listed": ["0"]}, unchanged=1, previous=2, release=len(kept))
    assert not [p for p in written(good) if p[0] == "changelog.json"]
    bad = {**good, "removed": {"blocklist/listed": [kept[0]]}}
    assert ("changelog.json", f"1 photo ids it removes are still in the release, e.g. {kept[0]!r}") in written(bad)


def _made_from(demo_release: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A previous release (the demo's) and one made from it whose changelog says it is unchanged, resealed."""
    import shutil

    previous, release = tmp_path / "r1", tmp_path / "r2"
    shutil.copytree(demo_release, previous)
    kept = release_r2(demo_release, release)
    (release / "changelog.json").write_text(json.dumps(log(added=(), removed={}, unchanged=len(kept),
                                                           previous=len(kept), release=len(kept))))
    reseal(release)
    return previous, release


def test_against_the_previous_release_exactly_what_left_is_removed_and_what_came_is_added():
    """Given the previous release's photos (`verify --previous`), the changelog is what a mirror of that release deletes
    and adds: a photo gone from it but not listed as removed (a takedown a mirror would keep) is told, and so are the
    other ways the two can disagree."""
    def against(value, previous):
        data = json.dumps(value).encode()
        return [p.message for p in changelog_problems("changelog.json", data, dict.fromkeys(("2", "3", "4"), 1), "r2",
                                                      previous)]

    assert against(log(), {"1", "2", "3"}) == []
    assert against(log(removed={}, previous=2), {"1", "2", "3"}) == [
        "1 photos of the previous release not in this one are not listed as removed, e.g. '1'",
        "counts 2 photos in the previous release, which holds 3"]
    assert against(log(removed={"blocklist/listed": ["9"]}), {"1", "2", "3"}) == [
        "1 photos of the previous release not in this one are not listed as removed, e.g. '1'",
        "1 photo ids it removes were not in the previous release, e.g. '9'"]
    # The release holds 2, 3, 4 and the previous 2, 3, 4 and 1: 4 is no new photo
    assert against(log(), {"1", "2", "3", "4"}) == [
        "1 photo ids it adds were already in the previous release, e.g. '4'",
        "counts 3 photos in the previous release, which holds 4",
        "counts 2 photos unchanged, the two releases share 3"]
    # The previous release held 1 and 2 only: 3 came new and is not listed as added
    assert against(log(), {"1", "2"}) == [
        "1 photos new since the previous release are not listed as added, e.g. '3'",
        "counts 3 photos in the previous release, which holds 2",
        "counts 2 photos unchanged, the two releases share 1"]


def test_verify_previous_tells_a_photo_gone_from_the_previous_release_that_the_changelog_leaves_out(demo_release,
                                                                                                   tmp_path, capsys):
    """`pass-pipeline verify RELEASE --previous PREVIOUS`: the changelog against both releases' photos. A takedown
    left out of the changelog (the photo gone, not listed as removed) is what a mirror deleting by it would keep."""
    import shutil

    from pipeline.cli import main

    previous, release = _made_from(demo_release, tmp_path)
    assert main(["verify", str(release), "--previous", str(previous)]) == 0
    # The previous release held one photo more, which the changelog does not say was removed
    pq.write_table(pq.read_table(sorted((previous / "parquet").glob("*.parquet"))[0]).slice(0, 1).set_column(
        0, "photo_id", [["999999"]]), previous / "parquet" / "extra.parquet")
    capsys.readouterr()
    assert main(["verify", str(release), "--previous", str(previous)]) == 1
    out = capsys.readouterr().out
    assert ("changelog.json: 1 photos of the previous release not in this one are not listed as removed, e.g. "
            "'999999'") in out, out
    # A previous release without Parquet shards, or no release at all: one usage line
    assert main(["verify", str(release), "--previous", str(tmp_path / "nowhere")]) == 2
    shutil.rmtree(previous / "parquet")
    assert main(["verify", str(release), "--previous", str(previous)]) == 2
    assert "holds no parquet/*.parquet shards" in capsys.readouterr().err


def test_verify_previous_with_a_shard_it_cannot_read_says_which_and_still_lists_the_release_s_problems(demo_release,
                                                                                                        tmp_path,
                                                                                                        capsys):
    """--previous is read, not verified: a shard of it that is no Parquet file (truncated) ended verify as pyarrow's
    "Could not open Parquet input source '<Buffer>'", naming no file, and every problem found in the release itself
    went unsaid; a named pipe there blocked verify for good. It is one line naming the shard, beside the release's."""
    import os
    import threading

    from pipeline.cli import main

    previous, release = _made_from(demo_release, tmp_path)
    (release / "stats.json").write_text("{}")  # a problem of the release itself
    shard = sorted((previous / "parquet").glob("*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[:100])
    assert main(["verify", str(release), "--previous", str(previous)]) == 1
    out = capsys.readouterr().out
    assert "stats.json: " in out, out
    said = f"changelog.json: the previous release's {shard.relative_to(previous).as_posix()} cannot be read "
    assert said in out, out
    shard.unlink()
    os.mkfifo(shard)  # nothing ever writes it: opened as a file, it blocks
    done: list[int] = []
    checking = threading.Thread(target=lambda: done.append(main(["verify", str(release), "--previous",
                                                                 str(previous)])), daemon=True)
    checking.start()
    checking.join(timeout=60)
    assert done == [1]
    out = capsys.readouterr().out
    assert f"{said}(ValueError: {shard} is no regular file)" in out, out


def test_a_changelog_giving_a_key_twice_is_one_line_not_what_python_keeps():
    """changelog.json was parsed as Python parses JSON, the last of a key given twice kept: one giving "removed" twice,
    first a photo the release holds (what a mirror whose reader keeps the first deletes), then nothing, passed. It is
    one line naming the key, as in the manifest."""
    data = json.dumps(log()).encode()
    twice = data.replace(b'"removed": {', b'"removed": {"blocklist/listed": ["2"]}, "removed": {', 1)
    assert json.loads(twice)["removed"] == {"blocklist/listed": ["1"]}  # Python keeps the last
    assert problems(twice) == ['gives "removed" twice in one object (JSON readers differ on which counts; a refresh '
                               "writes each key once)"]
    nested = data.replace(b'"previous": 3', b'"previous": 9, "previous": 3', 1)
    assert problems(nested) == ['gives "previous" twice in one object (JSON readers differ on which counts; a refresh '
                                "writes each key once)"]
    assert problems(data) == []
