"""benchmarks/profile.py: section 4, a run cut into phases from the local runner's bundle start times; section 3's
shuffle sizes; the script run whole at its smallest size."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image, JpegImagePlugin

from benchmarks import profile
from benchmarks.corpus import distinct_photos, served
from benchmarks.profile import flickr_copy, short_stage, timeline_phases, with_icc_profile
from pipeline.io import jpeg_pixels

# Shapes of the stage names Beam 2.77's FnApiRunner logs (fused steps, outermost first).
NAMES = {
    "(((ref_AppliedPTransform_Read-Match-Create-Impulse_5)+(ref_AppliedPTransform_Read-Match-Create-FlatMap_6))":
        "Read-Match-Create-Impulse",
    "(((((NearDuplicates/Partitions/Read)+(ref_AppliedPTransform_NearDuplicates-Pairs_92))":
        "NearDuplicates/Partitions/Read",
    "((WriteDataset/WriteSharded/GroupShards/Read)+(ref_AppliedPTransform_WriteDataset-WriteSharded-Write_180))":
        "WriteDataset/WriteSharded/GroupShards/Read",
}


@pytest.mark.parametrize("name,short", NAMES.items())
def test_a_stage_is_named_by_its_first_step(name, short):
    assert short_stage(name) == short


def test_phases_are_the_start_the_longest_stage_what_follows_and_the_end():
    starts = [(0.4, "(ref_AppliedPTransform_Read_1)"), (1.8, "(ref_AppliedPTransform_Small_2)"),
              (2.0, "((UniqueIds/Group/Read)+(x))"), (17.0, "((After/One/Read)+(x))"),
              (17.5, "((After/Two/Read)+(x))"), (19.0, "(ref_AppliedPTransform_Report_9)")]
    phases = timeline_phases(starts, 19.25)
    assert [label.split(":")[0] for label, _ in phases] == [
        "start", "longest stage", "the 2 stages after it", "last stage and the end"]
    assert phases[1][0].endswith("UniqueIds/Group/Read")
    assert [round(seconds, 2) for _, seconds in phases] == [2.0, 15.0, 2.0, 0.25]
    assert sum(seconds for _, seconds in phases) == pytest.approx(19.25)


def test_a_run_whose_longest_stage_is_the_last_or_without_bundles_is_still_cut():
    starts = [(0.5, "(ref_AppliedPTransform_Read_1)"), (2.0, "((Long/Read)+(x))")]
    assert [(label.split(":")[0], round(seconds, 2)) for label, seconds in timeline_phases(starts, 20.0)] == [
        ("start", 2.0), ("longest stage", 18.0)]
    assert timeline_phases([], 3.0)[0][1] == 3.0


def test_the_flickr_copy_is_the_photo_at_640_px_on_its_longer_side():
    """The micro-profile's last column stores what a run fetches for --max_side 512, not the 1024 px corpus."""
    for raw in distinct_photos(6):
        source, copy = Image.open(io.BytesIO(raw)), Image.open(io.BytesIO(flickr_copy(raw)))
        assert copy.format == "JPEG" and max(copy.size) == 640
        assert abs(copy.width / copy.height - source.width / source.height) < 0.01


def test_the_micro_profile_steps_store_what_normalise_stores(monkeypatch):
    """The steps are timed one by one, so they are a copy of normalise's calls: they must make the same JPEG with
    the same pixel copies, reductions, resizes and encodes (a step measuring other code, as the encode step's
    tobytes/frombytes round trip did after normalise dropped it, misstates the per-image work). Sources stored
    reduced, resized, at their own size, and converted from greyscale at their own size."""
    from collections import Counter, defaultdict

    import imagehash

    from benchmarks.profile import _normalise_in_steps
    from pipeline.stages.image import ImageConfig, normalise

    calls: Counter[str] = Counter()
    counting = [True]  # off inside imagehash, which the steps also run as a comparison (not summed)

    def count(name: str) -> None:
        if counting[0]:
            calls.update([name])

    for name in ("copy", "tobytes", "reduce", "resize", "crop", "save"):
        original = getattr(Image.Image, name)
        monkeypatch.setattr(Image.Image, name, lambda self, *a, _o=original, _n=name, **k: (
            count(_n), _o(self, *a, **k))[1])
    # Which decoder ran: Pillow's, or the decode straight into its layout.
    load = JpegImagePlugin.JpegImageFile.load
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", lambda self: (
        count("load" if self.tile else "load again"), load(self))[1])
    mapped = jpeg_pixels.rgb

    def counted_rgb(*a):
        image = mapped(*a)
        count("mapped" if image is not None else "not mapped")
        return image

    monkeypatch.setattr(jpeg_pixels, "rgb", counted_rgb)
    frombytes = Image.frombytes
    monkeypatch.setattr(Image, "frombytes", lambda *a, **k: (count("frombytes"), frombytes(*a, **k))[1])
    for name in ("phash", "dhash"):
        original = getattr(imagehash, name)

        def uncounted(image, _o=original):
            counting[0] = False
            try:
                return _o(image)
            finally:
                counting[0] = True

        monkeypatch.setattr(imagehash, name, uncounted)
    photos = distinct_photos(3)
    normalise(photos[0], ImageConfig())  # the hashes' and the decoder's checks against Pillow, once per process
    grey = io.BytesIO()
    Image.open(io.BytesIO(photos[0])).convert("L").resize((400, 300)).save(grey, "JPEG")
    own_size = io.BytesIO()
    Image.open(io.BytesIO(photos[0])).resize((480, 320)).save(own_size, "JPEG")
    for raw in [*photos, flickr_copy(photos[0]), with_icc_profile(photos[1]), grey.getvalue(), own_size.getvalue()]:
        totals: dict[str, float] = defaultdict(float)
        calls.clear()
        stored = normalise(raw, ImageConfig()).jpeg
        by_normalise = dict(calls)
        calls.clear()
        assert _normalise_in_steps(raw, ImageConfig(), totals) == stored
        assert dict(calls) == by_normalise
        assert calls["load"] + calls["mapped"] == 1  # one decode
        assert all(seconds >= 0 for seconds in totals.values()) and len(totals) >= 12


def test_the_profile_segment_adds_a_profile_and_nothing_else():
    """The profile column's photos: the same pixels, the profile read back, and a profile normalise applies
    (swapped primaries change every colour)."""
    from pipeline.stages.image import ImageConfig, normalise
    from tests.conftest import swapped_primaries_profile

    raw = distinct_photos(1)[0]
    with_profile = with_icc_profile(raw)
    opened, plain = Image.open(io.BytesIO(with_profile)), Image.open(io.BytesIO(raw))
    assert opened.info["icc_profile"] and "icc_profile" not in plain.info
    assert opened.tobytes() == plain.tobytes()
    swapped = with_icc_profile(raw, swapped_primaries_profile())
    assert normalise(swapped, ImageConfig()).jpeg != normalise(raw, ImageConfig()).jpeg


def test_every_shuffle_of_photos_in_the_job_is_sized_by_the_coder_beam_gives_it(tmp_path):
    """Section 3 encodes a photo as each shuffle's own coder does. UniqueIds' grouping carries the license stage's
    refused rows beside the photos as (tag, Photo) values, and the profile encoded a bare Photo with that coder: a
    TypeError ('Photo' object is not iterable) ended every run of the script before it printed its sections."""
    from pipeline.records import Photo

    with served(distinct_photos(2), str(tmp_path)) as corpus:
        shuffles = profile.photo_shuffles(corpus)
    assert any(label.startswith("UniqueIds/") for label in shuffles)
    stats = {"funnel": [{"stage": stage, "in": 2} for _, stage, _ in profile.PHOTO_SHUFFLES], "kept": 2}
    sample = Photo(photo_id="100000", title="a title", image=b"\xff" * 1000, sha256="0" * 64)
    rows = profile.shuffle_bytes(stats, sample, shuffles)
    assert [label for label, *_ in rows] == list(shuffles)
    for label, records, pickled, now, coder in rows:
        assert records == 2 and now > 0 and coder
        assert now < pickled, label  # the stored JPEG no longer rides along, and the typed coder does not pickle


def test_the_script_runs_at_its_smallest_size_and_prints_its_four_sections(monkeypatch, capsys):
    """No test ran the script itself, and every run of it ended in section 3's TypeError (above) unseen."""
    monkeypatch.setattr("sys.argv", ["profile", "--images=2", "--top=1"])
    profile.main()
    out = capsys.readouterr().out
    for heading in ("\n1. micro-profile", "\n2. whole job in one process", "3. shuffles that carry photos",
                    "\n4. the job with 2 worker processes"):
        assert heading in out, heading
    assert "UniqueIds/Group" in out.split("3. shuffles", 1)[1]
    last = json.loads(out.strip().splitlines()[-1])
    assert set(last) == {"per_image_ms", "job_seconds", "two_workers"} and last["job_seconds"] > 0
