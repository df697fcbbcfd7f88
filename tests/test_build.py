"""The whole job on the local runner over a local image server: real photographs and every kind of
bad input, the accounting invariant, the outputs read back, and byte-identical reruns."""

from __future__ import annotations

import csv
import hashlib
import json
import tarfile
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipeline.build import build
from pipeline.cli import pipeline_options, run
from pipeline.fixtures.demo_world import DEMO_PHOTOS, demo_image
from pipeline.fixtures.static_server import PLACEHOLDER_URL, Response, StaticServer, image, redirect, status
from pipeline.fixtures.yfcc_rows import CC_BY_NC_2, yfcc_line
from pipeline.options import PassOptions
from tests import bad_images
from tests.conftest import LOCAL, local_pipeline

FAST = ["--backoff_base=0.01", "--read_timeout=0.3", "--max_retries=2", "--shards=3", "--per_owner_cap=3"]


def world(server: StaticServer, directory: Path) -> tuple[Path, dict[str, tuple[str, str] | None]]:
    """Writes the metadata files; returns them with the expected fate of every row:
    None = kept, else (stage, reason)."""
    lines: list[str] = []
    expected: dict[str, tuple[str, str] | None] = {}

    def row(photo_id, fate, *responses, **fields):
        url = server.add(f"/7/{photo_id}_abcdef0123.jpg", *responses) if responses else fields.pop("url")
        lines.append(yfcc_line(len(lines) + 1, photo_id, url, **fields))
        expected.setdefault(photo_id, fate)  # a repeated id keeps the fate of its first row

    for photo_id, name, title, credit, owner in DEMO_PHOTOS:
        fate: str | tuple[str, str] | None = "capped" if owner == "10000001@N01" else None  # NASA's: capped below
        if name in ("astronaut.jpg", "camera.jpg"):
            fate = ("detect", "human")  # photographs of people never reach the dataset
        if name == "chelsea.jpg":
            fate = ("detect", "needs_review")  # the cat's close-up: NanoDet and OIDv4 half see a person (README)
        if name == "hubble_deep_field.jpg":
            fate = ("detect", "needs_review")  # specks NanoDet half takes for distant people: held
        row(photo_id, fate, image(demo_image(name)), title=title, owner_name=credit, owner_nsid=owner)
    chelsea = demo_image("chelsea.jpg")
    rotated, _ = bad_images.exif_rotated_jpeg()
    row("2001", ("exact_dedup", "duplicate"), image(chelsea), owner_nsid="dup@N00")
    row("2002", ("image", "truncated"), image(bad_images.truncated_jpeg()))
    row("2003", ("image", "not_an_image"), image(bad_images.HTML))
    row("2004", ("image", "empty"), image(b""))
    row("2005", ("image", "too_many_pixels"), image(bad_images.png_bomb(), "image/png"))
    row("2006", ("image", "too_small"), image(bad_images.one_by_one(), "image/png"))
    row("2007", ("image", "blank"), image(bad_images.single_colour(), "image/png"))
    # Converted copies of demo photos: decoded fine, then caught as near duplicates of the originals.
    row("2008", ("near_dedup", "near_duplicate"), image(bad_images.cmyk_jpeg()), owner_nsid="cmyk@N00")
    row("2009", ("near_dedup", "near_duplicate"), image(bad_images.png16(), "image/png"), owner_nsid="png16@N00")
    row("2010", ("near_dedup", "near_duplicate"), image(bad_images.animated_gif(), "image/gif"), owner_nsid="gif@N00")
    row("2011", None, image(rotated), owner_nsid="rotated@N00")
    row("2012", ("fetch", "not_found"), status(404))
    row("2013", ("fetch", "gone"), status(410))
    row("2014", None, status(500), image(bad_images.crop_variant("grass.jpg", 0)), owner_nsid="retry@N00")
    row("2015", None, status(429, Retry_After="1"), image(bad_images.crop_variant("coins.jpg", 3)),
        owner_nsid="slow@N00")
    row("2016", ("fetch", "timeout"), Response(200, chelsea, delay=1.0))
    row("2017", ("fetch", "redirect_not_allowed"), redirect("http://elsewhere.example.org/x.jpg"))
    row("2018", ("fetch", "deleted"), redirect(PLACEHOLDER_URL))
    row("2019", ("fetch", "host_not_allowed"), url="http://not-allowed.example.org/1/2019_ab.jpg")
    row("2020", ("license", "not_cc_by"), image(chelsea), license=CC_BY_NC_2)
    row("2021", ("license", "video"), image(chelsea), marker=1)
    # Four more photos of NASA's account (whose astronaut is rejected and deep field held) trip the cap
    # of 3: the four quadrants of the rocket launch, distinct enough not to be near duplicates.
    for i in range(4):
        photo_id = str(3001 + i)
        row(photo_id, "capped", image(bad_images.crop_variant("rocket.jpg", i)), owner_nsid="10000001@N01")
    row("1003", None, image(chelsea))  # the same id listed twice: the second row is a repeated_id
    # Listed first as CC BY-NC, then as CC BY: the first row wins (the second was published as CC BY).
    row("2024", ("license", "not_cc_by"), image(chelsea), license=CC_BY_NC_2)
    row("2024", None, image(chelsea))
    row("2025", ("license", "license_conflict"), image(chelsea),
        license=("All Rights Reserved", "http://creativecommons.org/licenses/by/2.0/"))
    row("2026", ("read", "bad_field"), url=server.add("/7/9999_abcdef0123.jpg", image(chelsea)))  # another's file
    lines.append("2022\tshort\trow")
    expected["metadata.tsv:" + str(len(lines))] = ("read", "wrong_column_count")
    lines.append(yfcc_line(len(lines) + 1, "2023", "u").replace("demo+owner", "d\udcffmo"))
    expected["metadata.tsv:" + str(len(lines))] = ("read", "bad_encoding")
    path = directory / "metadata.tsv"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape") + b"\n")
    (directory / "empty.tsv").write_bytes(b"")
    return directory / "*.tsv", expected


@pytest.fixture(scope="module")
def server():
    with StaticServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def first_run(server, tmp_path_factory):
    directory = tmp_path_factory.mktemp("input")
    pattern, expected = world(server, directory)
    output = tmp_path_factory.mktemp("out") / "dataset"
    argv = [f"--input={pattern}", f"--output={output}", f"--allowed_hosts={server.host}", *FAST, *LOCAL]
    stats = run(argv)
    return argv, output, stats, expected


def rejections(output: Path) -> list[dict]:
    return pq.read_table(output / "rejections").to_pylist()


def kept_ids(output: Path) -> list[str]:
    return pq.read_table(output / "parquet").column("photo_id").to_pylist()


def test_every_row_ends_exactly_once(first_run):
    _, output, stats, expected = first_run
    rejected = [r["photo_id"] for r in rejections(output)]
    kept = kept_ids(output)
    assert len(rejected) + len(kept) == stats["input_rows"] == len(expected) + 2  # 1003 and 2024 listed twice
    assert len(set(kept)) == len(kept) and not set(kept) & {r["photo_id"] for r in rejections(output)
                                                            if r["reason"] != "repeated_id"}
    assert stats["accounted"] and stats["kept"] == len(kept)
    # The whole process tree's peak, sampled while the job ran (detectors loaded: hundreds of MiB).
    assert stats["peak_memory_mb"] > 100
    # Per-step timing covers the Detect stage: every photo it decided, kept or not.
    after_detect = [r for r in rejections(output) if r["stage"] in ("detect", "owner_cap")]
    assert stats["steps"]["detected"]["records"] == len(kept) + len(after_detect) > 0


def test_each_row_has_its_expected_fate(first_run):
    _, output, _, expected = first_run
    fate = {r["photo_id"]: (r["stage"], r["reason"]) for r in rejections(output) if r["reason"] != "repeated_id"}
    repeated = [r for r in rejections(output) if r["reason"] == "repeated_id"]
    assert sorted((r["photo_id"], r["duplicate_of"]) for r in repeated) == [("1003", "1003"), ("2024", "2024")]
    kept = set(kept_ids(output))
    capped = [photo_id for photo_id, want in expected.items() if want == "capped"]
    for photo_id, want in expected.items():
        if want is None:
            assert photo_id in kept, photo_id
        elif want != "capped":
            assert fate.get(photo_id) == want, photo_id
    nasa = set(capped)
    assert len(nasa) == 4 and len(nasa & kept) == 3, fate
    assert all(fate[i] == ("owner_cap", "owner_cap") for i in nasa - kept), {i: fate[i] for i in nasa - kept}
    survivors = {r["photo_id"]: r["duplicate_of"] for r in rejections(output)}
    assert survivors["2001"] == "1003"  # identical bytes
    assert (survivors["2008"], survivors["2009"], survivors["2010"]) == ("1004", "1004", "1003")


def test_outputs_agree_with_each_other_and_the_manifest(first_run):
    _, output, stats, _ = first_run
    kept = sorted(kept_ids(output), key=int)
    tar_keys = []
    for shard in sorted((output / "webdataset").glob("*.tar")):
        with tarfile.open(shard) as tar:
            tar_keys += [name.removesuffix(".jpg") for name in tar.getnames() if name.endswith(".jpg")]
    assert sorted(tar_keys, key=int) == kept
    records = sum(1 for shard in (output / "tfrecord").glob("*.tfrecord")
                  for _ in __import__("tfrecord").reader.tfrecord_iterator(str(shard)))
    assert records == len(kept)
    with open(output / "ATTRIBUTION.csv", newline="", encoding="utf-8") as handle:
        attribution = list(csv.DictReader(handle))
    assert [row["photo_id"] for row in attribution] == kept
    assert all(row["page_url"] and row["license_url"] and row["creator"] for row in attribution)
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["totals"]["kept"] == stats["kept"]
    shards = [f for f in manifest["files"] if f["format"] in ("webdataset", "parquet", "tfrecord")]
    assert len(shards) == 9 and sum(f["records"] for f in shards) == 3 * len(kept)
    for entry in manifest["files"]:
        data = (output / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"]
    assert not list(output.rglob("*.tmp-*"))


def test_stored_images_carry_no_metadata(first_run):
    _, output, _, _ = first_run
    rows = pq.read_table(output / "parquet", columns=["photo_id", "image", "width", "height"]).to_pylist()
    assert "2011" in {row["photo_id"] for row in rows}  # no rows, or no EXIF-rotated one, would check nothing here
    for row in rows:
        stored = row["image"]["bytes"]
        assert stored[:2] == b"\xff\xd8" and b"Exif\x00\x00" not in stored and b"CameraMaker" not in stored
        assert max(row["width"], row["height"]) <= 512
        if row["photo_id"] == "2011":  # EXIF-rotated: stored upright
            assert row["height"] > row["width"]


def shard_bytes(output: Path) -> dict[str, str]:
    return {str(path.relative_to(output)): hashlib.sha256(path.read_bytes()).hexdigest()
            for folder in ("webdataset", "parquet", "tfrecord", "rejections") for path in (output / folder).iterdir()}


@pytest.mark.slow
def test_rerun_with_two_worker_processes_gives_identical_shards(first_run, tmp_path):
    argv, output, _, _ = first_run
    again = tmp_path / "again"
    argv = [a if not a.startswith("--output=") else f"--output={again}" for a in argv]
    run([*argv, "--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    assert shard_bytes(again) == shard_bytes(output)
    assert (again / "ATTRIBUTION.csv").read_bytes() == (output / "ATTRIBUTION.csv").read_bytes()
    def outcome(folder: Path) -> dict:  # stats.json less what measures the run itself (time, memory)
        stats = json.loads((folder / "stats.json").read_text())
        return {key: value for key, value in stats.items() if key not in ("steps", "peak_rss_mb", "peak_memory_mb")}

    assert outcome(again) == outcome(output) and outcome(output)["funnel"]

    def manifest(folder: Path) -> dict:  # less its date and stats.json's entry (which holds the timings)
        listed = json.loads((folder / "manifest.json").read_text())
        listed["files"] = [entry for entry in listed.pop("files") if entry["path"] != "stats.json"]
        return {key: value for key, value in listed.items() if key != "created"}

    def every_file(folder: Path) -> dict[str, str]:  # the ledger, index, review page and dataset card too
        return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
                for path in folder.rglob("*") if path.is_file() and path.name not in ("manifest.json", "stats.json")}

    assert manifest(again) == manifest(output) and every_file(again) == every_file(output)
    assert {"ledger", "near_dup_index", "review", "README.md"} <= {path.split("/")[0] for path in every_file(output)}


def test_the_same_rows_in_files_named_ordered_and_split_otherwise_give_the_same_dataset(server, tmp_path):
    """The demo world's rows as one file, then reversed and split over two files of other names: every file of the
    dataset is the same byte for byte (the WebDataset tars named each row's FILE:LINE, so theirs differed); only the
    rejections' source_ref (and the id of the row that has none), stats.json's timings and the manifest's record of
    the input and its date say where and when the rows were read."""
    from pipeline.fixtures.demo_world import build_demo_world

    metadata = build_demo_world(server, tmp_path / "one")
    lines = metadata.read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "split").mkdir()
    (tmp_path / "split" / "z-first.tsv").write_text("".join(reversed(lines[:9])), encoding="utf-8")
    (tmp_path / "split" / "a-second.tsv").write_text("".join(reversed(lines[9:])), encoding="utf-8")
    outputs = []
    for name, pattern in (("one", metadata), ("split", tmp_path / "split" / "*.tsv")):
        outputs.append(tmp_path / f"out-{name}")
        run([f"--input={pattern}", f"--output={outputs[-1]}", f"--allowed_hosts={server.host}", "--shards=2",
             "--detectors=none", *LOCAL])

    def dataset_files(output: Path) -> dict[str, str]:
        return {str(path.relative_to(output)): hashlib.sha256(path.read_bytes()).hexdigest()
                for path in output.rglob("*") if path.is_file()
                and path.relative_to(output).parts[0] not in ("manifest.json", "stats.json", "rejections")}

    def why(output: Path) -> list[tuple]:
        return sorted(("" if row["photo_id"] == row["source_ref"] else row["photo_id"], row["stage"], row["reason"],
                       row["detail"], row["duplicate_of"]) for row in rejections(output))

    one, split = map(dataset_files, outputs)
    assert {"webdataset/pass-00000-of-00002.tar", "parquet/pass-00001-of-00002.parquet", "ATTRIBUTION.csv"} <= set(one)
    assert sorted(path for path in one.keys() | split.keys() if one.get(path) != split.get(path)) == []
    assert why(outputs[0]) == why(outputs[1]) and len(why(outputs[0])) == 8


def test_build_wiring_with_assert_that(server, tmp_path):
    """The same accounting checked inside the pipeline, on the demo world (detection off: not its subject)."""
    from pipeline.fixtures.demo_world import build_demo_world

    metadata = build_demo_world(server, tmp_path)
    options = pipeline_options([f"--input={metadata}", f"--output={tmp_path / 'out'}",
                                f"--allowed_hosts={server.host}", "--detectors=none", *LOCAL])
    with local_pipeline() as p:
        result = build(p, options.view_as(PassOptions))
        ids = ((result["kept"] | "K" >> beam.Map(lambda ph: ph.photo_id)),
               (result["rejections"] | "R" >> beam.Map(lambda r: r.photo_id))) | beam.Flatten()
        assert_that(ids | beam.combiners.Count.Globally(), equal_to([18]), label="count")
        assert_that(ids | "Distinct" >> beam.Distinct() | "N" >> beam.combiners.Count.Globally(), equal_to([18]),
                    label="distinct")


def test_no_shuffle_carries_the_stored_images(server, tmp_path):
    """The stored JPEGs are staged once and read back by the writers: every GroupByKey of the job
    (duplicates, near duplicates, owner cap, shards) sees photos without their bytes."""
    from pipeline.fixtures.demo_world import build_demo_world
    from pipeline.stage import _photos_in

    metadata = build_demo_world(server, tmp_path)
    options = pipeline_options([f"--input={metadata}", f"--output={tmp_path / 'out'}",
                                f"--allowed_hosts={server.host}", "--per_owner_cap=1", *LOCAL, "--detectors=none"])
    shuffled: list[beam.PCollection] = []

    class Shuffles(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node: beam.pipeline.AppliedPTransform) -> None:
            if isinstance(node.transform, beam.GroupByKey):
                shuffled.append(next(iter(node.inputs)))

    with local_pipeline() as p:
        result = build(p, options.view_as(PassOptions))
        p.visit(Shuffles())
        assert len(shuffled) > 10
        heavy = [pcoll | f"Heavy{i}" >> beam.FlatMap(lambda element: [
            photo.photo_id for photo in _photos_in(element) if photo.image or photo.raw]) for i, pcoll in
            enumerate(shuffled)] | "AllHeavy" >> beam.Flatten()
        assert_that(heavy, equal_to([]), label="no_bytes")
        assert_that(result["kept"] | beam.combiners.Count.Globally(), equal_to([8]), label="kept")
    written = {path.relative_to(tmp_path / "out").parts[0] for path in (tmp_path / "out").rglob("*.tar")}
    assert written == {"webdataset"}


def test_photo_shuffles_encode_photos_with_photo_coder(server, tmp_path):
    """The keyed steps before each shuffle of Photos declare their types, so Beam encodes the records
    with the registered PhotoCoder (field values, ~45% smaller) rather than pickling them."""
    from apache_beam import coders

    options = pipeline_options([f"--input={tmp_path / 'm.tsv'}", f"--output={tmp_path / 'out'}",
                                "--per_owner_cap=1", *LOCAL, "--detectors=none"])
    found: dict[str, str] = {}

    class Shuffles(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node: beam.pipeline.AppliedPTransform) -> None:
            if isinstance(node.transform, beam.GroupByKey):
                found[node.full_label] = repr(coders.registry.get_coder(next(iter(node.inputs)).element_type))

    pipeline = beam.Pipeline(options=options)
    build(pipeline, options.view_as(PassOptions))
    pipeline.visit(Shuffles())
    # NearDuplicates/JoinPhotos is a CoGroupByKey, whose inner shuffle of tagged unions Beam pickles.
    photo_shuffles = {label: found[label] for label in ("UniqueIds/Group", "ExactDuplicates/exact_dedup.group",
                                                        "CapPerOwner/owner_cap.group",
                                                        "WriteDataset/WriteSharded/GroupShards")}
    assert all("PhotoCoder" in coder for coder in photo_shuffles.values()), photo_shuffles


def test_every_sharded_file_set_is_sized_by_its_own_record_count(server, tmp_path, monkeypatch):
    """The writers are sized by the job's one tally: with small shards, a writer handed another
    set's count (kept for the rejections, say) would write another number of files."""
    from pipeline.fixtures.demo_world import build_demo_world
    from pipeline.io import sinks

    monkeypatch.setattr(sinks, "REJECTIONS_PER_SHARD", 2)
    monkeypatch.setattr(sinks, "INDEX_ROWS_PER_SHARD", 3)
    metadata = build_demo_world(server, tmp_path / "in")
    run([f"--input={metadata}", f"--output={tmp_path / 'out'}", f"--allowed_hosts={server.host}",
         "--images_per_shard=2", "--detectors=none", *LOCAL])
    files = json.loads((tmp_path / "out" / "manifest.json").read_text())["files"]
    sized = {folder: (len([f for f in files if f["path"].startswith(folder + "/")]),
                      sum(f["records"] for f in files if f["path"].startswith(folder + "/")))
             for folder in ("parquet", "rejections", "ledger", "near_dup_index")}
    # (files, records): 10 kept in 8 shards at least, 8 rejections by 2, 15 ledger rows (one per decided
    # photo id) and 10 index rows by 3.
    assert sized == {"parquet": (8, 10), "rejections": (4, 8), "ledger": (5, 15), "near_dup_index": (4, 10)}


@pytest.mark.parametrize("detectors", ["none", "default"])
def test_the_review_decisions_reach_the_workers_as_a_copy_not_in_the_job_graph(server, tmp_path, detectors):
    """With 100,000 decisions in the store, each step applying them (each detector's handler, the decision step,
    the reviewer rejections of photos no detector sees) carried their ~400 kB pickled in the job graph, which
    Dataflow refuses past its request limit. The job reads the store once at launch and its steps name its copy."""
    from pipeline.fixtures.demo_world import build_demo_world

    metadata = build_demo_world(server, tmp_path)
    store = tmp_path / "reviews.csv"
    store.write_text("photo_id,decision,note,sha256\n" + "".join(f"{pid},reject_human,,\n"
                                                                  for pid in range(1, 100_001)))

    def graph_bytes(*flags: str) -> int:
        options = pipeline_options([f"--input={metadata}", f"--output={tmp_path / 'out'}", *flags,
                                    f"--allowed_hosts={server.host}", f"--detectors={detectors}", *LOCAL])
        p = beam.Pipeline(options=options)
        build(p, options.view_as(PassOptions))
        return len(p.to_runner_api().SerializeToString())

    without, with_store = graph_bytes(), graph_bytes(f"--review_decisions={store}")
    assert with_store - without < 20_000, (without, with_store)
    assert [path.suffix for path in (tmp_path / "out" / "_lists").iterdir()] == [".csv"]


def test_a_capped_survivor_takes_its_copies_with_it(server, tmp_path):
    """Duplicates are resolved before the owner cap and the cap does not reopen them (README, "What the job
    does"): the copy another account uploaded later stays the capped original's duplicate, crediting no one
    with the original's photograph."""
    from pipeline.stages.owner_cap import cap_rank
    from tests.conftest import photo as a_photo

    coffee, grass = demo_image("coffee.jpg"), demo_image("grass.jpg")
    lines = []
    for photo_id, data, owner in (("5001", coffee, "a@N00"), ("5002", grass, "a@N00"), ("5009", coffee, "b@N00")):
        url = server.add(f"/7/{photo_id}_abcdef0123.jpg", image(data))
        lines.append(yfcc_line(len(lines) + 1, photo_id, url, owner_nsid=owner))
    # The account's cap of one keeps 5002, whose rank comes first; 5001 was uploaded before 5009.
    assert cap_rank(a_photo("5002")) < cap_rank(a_photo("5001"))
    (tmp_path / "rows.tsv").write_text("\n".join(lines) + "\n")
    output = tmp_path / "out"
    run([f"--input={tmp_path / 'rows.tsv'}", f"--output={output}", f"--allowed_hosts={server.host}",
         "--per_owner_cap=1", *LOCAL, "--detectors=none"])
    fates = {r["photo_id"]: (r["stage"], r["reason"], r["duplicate_of"]) for r in rejections(output)}
    assert kept_ids(output) == ["5002"]
    assert fates == {"5001": ("owner_cap", "owner_cap", ""), "5009": ("exact_dedup", "duplicate", "5001")}
