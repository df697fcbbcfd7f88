"""The Detect stage through RunInference on the local runner: decisions, scores, review band,
reviewer decisions, and a failing image becoming a rejection while the rest goes on."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipeline.decision_table import Decision
from pipeline.decisions_file import read_decisions
from pipeline.detectors.fusion import builtin_fusion
from pipeline.detectors.handler import RuntimeConfig, photo_scores, shared_session
from pipeline.detectors.registry import load_registry, select
from pipeline.stages.detect import Detect
from tests.conftest import local_pipeline, photo, real_jpeg, runtime

SPECS = select(load_registry(), "default")
NAMES = {"1": "astronaut.jpg", "2": "camera.jpg", "3": "chelsea.jpg", "4": "coffee.jpg", "5": "rocket.jpg",
         "6": "coins.jpg"}


def photos():
    return [photo(pid, image=real_jpeg(name)) for pid, name in NAMES.items()]


def test_people_rejected_objects_and_landscapes_kept():
    score_names = sorted(f"{s.name}.{c}" for s in SPECS for c in (*s.human_classes, *s.nsfw_classes))
    score_names = sorted({*score_names, "open_nsfw.sfw"})
    with local_pipeline() as p:
        out = p | beam.Create(photos()) | Detect(SPECS, runtime(max_batch=4))
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(["4", "5", "6"]), label="kept")
        # The cat's close-up face is a person to NanoDet (0.57 over its 0.35): a known false alarm of the
        # defaults (README, "Evaluation"; models/README.md, NanoDet), pinned so that a change in it is seen.
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.stage, r.reason)),
                    equal_to([("1", "detect", "human"), ("2", "detect", "human"), ("3", "detect", "human")]),
                    label="rejected")
        assert_that(out.kept | "names" >> beam.Map(lambda ph: sorted(dict(ph.scores))),
                    equal_to([score_names] * 3), label="every kept image stores every score")
        assert_that(out.review, equal_to([]), label="review")


def test_borderline_band_goes_to_review_and_reviewers_decide():
    # A stricter person detector: the astronaut's ~0.98 now falls inside the band [0.9, 0.995).
    person = load_registry()["ssdlite_person"]  # registered, not a default since 2026-12-02
    strict = dataclasses.replace(person, thresholds={"person": 0.995}, review_band={"person": 0.9})
    inputs = [photo("1", image=real_jpeg("astronaut.jpg")), photo("3", image=real_jpeg("chelsea.jpg"))]
    with local_pipeline() as p:
        out = p | beam.Create(inputs) | Detect([strict], runtime())
        assert_that(out.review | beam.Map(lambda ph: (ph.photo_id, bool(ph.image))), equal_to([("1", True)]),
                    label="review")
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.reason)), equal_to([("1", "needs_review")]),
                    label="rejected")
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(["3"]), label="kept")
    decisions = {"1": Decision("accept", "astronaut suit only? checked"), "3": Decision("reject_other", "blurry")}
    with local_pipeline() as p:
        out = p | beam.Create(inputs) | Detect([strict], runtime(), decisions)
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(["1"]), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.reason, r.detail)),
                    equal_to([("3", "reviewer_rejected", "blurry")]), label="rejected")
        assert_that(out.review, equal_to([]), label="review")


def test_a_broken_image_is_a_rejection_and_the_rest_goes_on():
    inputs = [photo("4", image=real_jpeg("coffee.jpg")), photo("9", image=b"not a jpeg")]
    with local_pipeline() as p:
        out = p | beam.Create(inputs) | Detect(SPECS[2:], runtime(max_batch=1))
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(["4"]), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.stage, r.reason)),
                    equal_to([("9", "detect", "internal_error")]), label="rejected")


def test_a_broken_image_in_a_batch_rejects_itself_alone_whatever_the_batching(tmp_path):
    """RunInference's dead letter takes a failed batch whole: an undecodable image batched with six good photos
    rejected them too (as internal_error, blaming its own decode), and which ones depended on the batching. A
    failed batch is now scored photo by photo: the good photos are kept, each with the scores of the same image.
    The broken photo's rejection is the same whatever its batch (alone, it went to the dead letter with another
    detail) and in every run (Pillow's message held an object's address)."""
    good = [photo(str(i), image=real_jpeg("coffee.jpg")) for i in range(1, 7)]
    inputs = [*good[:3], photo("9", image=b"not a jpeg"), *good[3:]]
    details = {}
    for batch in (1, 7):
        seen = tmp_path / f"details-{batch}.json"  # the matcher runs on a pickled copy: it reports through a file
        with local_pipeline() as p:
            out = p | beam.Create(inputs, reshuffle=False) | Detect(SPECS[2:], runtime(min_batch=batch,
                                                                                        max_batch=batch))
            assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to([ph.photo_id for ph in good]),
                        label="kept")
            assert_that(out.kept | beam.Map(lambda ph: ph.scores) | beam.Distinct() | beam.combiners.Count.Globally(),
                        equal_to([1]), label="one image, one set of scores")
            assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.stage, r.reason, "decode" in r.detail.lower()
                                                           or "identif" in r.detail.lower())),
                        equal_to([("9", "detect", "internal_error", True)]), label="rejected")
            assert_that(out.rejected | beam.Map(lambda r: r.detail),
                        lambda found, seen=seen: seen.write_text(json.dumps(found)), label="detail")
        details[batch] = json.loads(seen.read_text())
    assert details[1] == details[7] and "0x" not in details[1][0], details


def test_a_second_run_takes_scores_from_the_work_cache(tmp_path):
    from apache_beam.metrics.metric import MetricsFilter

    nsfw = [s for s in SPECS if s.name == "open_nsfw"]
    inputs = [photo(pid, image=real_jpeg(name), sha256=pid * 64) for pid, name in list(NAMES.items())[2:5]]

    def run(expect_inferences: int) -> None:
        p = local_pipeline()
        out = p | beam.Create(inputs) | Detect(nsfw, runtime(), cache=str(tmp_path / "cache"))
        assert_that(out.kept | beam.Map(lambda ph: (ph.photo_id, round(dict(ph.scores)["open_nsfw.nsfw"], 6))),
                    equal_to(want))
        result = p.run()
        result.wait_until_finish()
        counters = result.metrics().query(MetricsFilter().with_namespace("detector_open_nsfw"))["counters"]
        inferred = sum(c.committed for c in counters if c.key.metric.name == "num_inferences")
        assert inferred == expect_inferences

    session = shared_session(nsfw[0], runtime())
    want = [(ph.photo_id, round(photo_scores(nsfw[0], session, [ph], 400)[0]["nsfw"], 6)) for ph in inputs]
    run(expect_inferences=3)
    assert list((tmp_path / "cache").glob("scores-open_nsfw-*.parquet"))
    run(expect_inferences=0)  # every score from the cache, the same values


def _scored_one_by_one(kept: list[str]) -> list[tuple[str, tuple]]:
    """Every default detector's scores of each photo, straight from the handler (no Beam, no skipping)."""
    config = runtime()
    scores: dict[str, dict[str, float]] = {photo_id: {} for photo_id in kept}
    for spec in SPECS:
        session = shared_session(spec, config)
        for one in photos():
            if one.photo_id in kept:
                [classes] = photo_scores(spec, session, [one], config.tile_min_side)
                scores[one.photo_id] |= {spec.score_name(c): round(v, 6) for c, v in classes.items()}
    return [(photo_id, tuple(sorted(named.items()))) for photo_id, named in scores.items()]


def test_a_photo_rejected_as_human_by_the_cheap_detectors_skips_the_rest_with_the_same_decisions():
    """Skipping what is settled (the default): the kept photos carry every score exactly as the
    handler gives it with every view scored; the people skipped a detector and their rejection says
    which one was not run. With --detect_every_view the same person is rejected with every score."""
    expected_kept = _scored_one_by_one(["4", "5", "6"])
    # The cat is held for review (NanoDet and OIDv4 read its close-up face as a person, weakly): a held photo
    # is never settled early, it carries every score.
    for every_view, inputs, rejected in ((False, photos(), [("1", "human", True), ("2", "human", True),
                                                            ("3", "needs_review", False)]),
                                         (True, photos()[:1], [("1", "human", False)])):
        with local_pipeline() as p:
            out = p | beam.Create(inputs) | Detect(SPECS, runtime(max_batch=4, skip_settled=not every_view),
                                                   fusion=builtin_fusion())
            assert_that(out.kept | beam.Map(lambda ph: (ph.photo_id, ph.scores)),
                        equal_to([] if every_view else expected_kept), label="kept")
            assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.reason, "not run" in r.detail)),
                        equal_to(rejected), label="rejected")


def test_a_score_key_names_how_cudnn_chose_its_algorithms_on_cuda_only(monkeypatch):
    """Scores cached by a run whose CUDA sessions timed their convolution algorithms (onnxruntime's default before
    2026-12-04) are not taken by one that asks cuDNN's heuristics: other algorithms round differently, and a resumed
    run scores again rather than mix the two. A CPU key is as it was, so caches made on the CPU stay valid."""
    from pipeline.stages import detect

    one = photo("1", image=real_jpeg("coffee.jpg"), sha256="1" * 64)
    spec = SPECS[0]
    heuristic, timed = runtime(), dataclasses.replace(runtime(), cudnn_conv_algo_search="EXHAUSTIVE")
    assert detect.score_key(one, spec, heuristic) == detect.score_key(one, spec, timed)  # here: the CPU
    parts = [one.sha256, spec.sha256, dataclasses.asdict(spec.input), spec.decoder, spec.tiles,
             heuristic.tile_min_side, *detect._scoring_runtime(heuristic.device)]
    assert detect.score_key(one, spec, heuristic) == hashlib.sha256(
        json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()  # the key CPU caches were written with
    monkeypatch.setattr(detect, "_scoring_runtime", lambda device: ("1.31.1", "CUDAExecutionProvider"))
    assert detect.score_key(one, spec, heuristic) != detect.score_key(one, spec, timed)


def test_scores_of_a_photo_that_skipped_views_are_not_cached(tmp_path):
    """The work cache holds only complete scores: another run (say with --detect_every_view, or a
    different decision) must not read "centerface saw nothing" for a photo it never ran on."""
    import pyarrow.parquet as pq

    from pipeline.stages.detect import score_key

    inputs = [photo("1", image=real_jpeg("astronaut.jpg"), sha256="1" * 64),
              photo("4", image=real_jpeg("coffee.jpg"), sha256="4" * 64)]
    with local_pipeline() as p:
        out = p | beam.Create(inputs) | Detect(SPECS, runtime(), cache=str(tmp_path), fusion=builtin_fusion())
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(["4"]))
    centerface = next(spec for spec in SPECS if spec.name == "centerface")
    cached = [key for path in tmp_path.glob("scores-centerface-*.parquet") for key in pq.read_table(path)["key"]
              .to_pylist()]
    assert cached == [score_key(inputs[1], centerface, runtime())]  # the astronaut skipped it: not cached
    nsfw = next(spec for spec in SPECS if spec.name == "open_nsfw")
    assert len([path for path in tmp_path.glob("scores-open_nsfw-*.parquet") for _ in pq.read_table(path)["key"]
                .to_pylist()]) == 2  # never skipped: both cached
    assert nsfw.nsfw_classes


def test_scores_cached_under_another_onnxruntime_or_provider_are_scored_again(tmp_path, monkeypatch):
    """CUDA's kernels and another onnxruntime release round differently: a run resumed on another machine scores
    again rather than mix two runtimes' scores in one decision."""
    import pyarrow.parquet as pq

    from pipeline.stages import detect

    inputs = [photo("4", image=real_jpeg("coffee.jpg"), sha256="4" * 64)]

    def keys() -> set[str]:
        with local_pipeline() as p:
            out = p | beam.Create(inputs) | Detect(SPECS, runtime(), cache=str(tmp_path), fusion=builtin_fusion())
            assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(["4"]))
        return {key for path in tmp_path.glob("scores-open_nsfw-*.parquet") for key in pq.read_table(path)["key"]
                .to_pylist()}

    first = keys()
    assert keys() == first and len(first) == 1  # the same runtime reads its own entry, writes none
    monkeypatch.setattr(detect, "_scoring_runtime", lambda device: ("9.99.0", "CUDAExecutionProvider"))
    assert len(keys() - first) == 1  # another runtime: scored again, under its own key


def test_a_rejection_decided_on_cached_scores_has_the_same_reason(tmp_path):
    """A work cache filled by a run that scored every view (or one with other fusion or thresholds,
    under which the photo was not settled) holds complete scores of a photo that this run's cheaper
    detectors settle. They are used: the rejection's detail is then fuller than a fresh run's (no
    "not run"), the decision and its reason are the same (README, "Decided photos skip the rest").
    A killed run resumed on its own cache writes what it would have: partial scores are never cached."""
    inputs = [photo("1", image=real_jpeg("astronaut.jpg"), sha256="1" * 64)]

    def rejected(runtime: RuntimeConfig, cache: str) -> list[list[str]]:
        seen = tmp_path / "seen.json"  # the matcher runs on a pickled copy: it reports through a file
        with local_pipeline() as p:
            out = p | beam.Create(inputs) | Detect(SPECS, runtime, cache=cache, fusion=builtin_fusion())
            assert_that(out.rejected | beam.Map(lambda r: [r.reason, r.detail]),
                        lambda rows: seen.write_text(json.dumps(sorted(rows))))
        return json.loads(seen.read_text())

    fresh = rejected(runtime(), str(tmp_path / "empty"))
    rejected(runtime(skip_settled=False), str(tmp_path / "filled"))  # complete scores into the cache
    from_cache = rejected(runtime(), str(tmp_path / "filled"))
    assert [reason for reason, _ in fresh] == [reason for reason, _ in from_cache] == ["human"]
    assert "not run" in fresh[0][1] and "not run" not in from_cache[0][1]


def test_scores_a_carried_photo_brings_from_its_release_do_not_settle_it():
    """A refresh with --redetect sends the previous release's kept photos through Detect with the
    scores stored in that release (release/carry.py): other models, thresholds or tiles. Scoring
    every view overwrites them all; skipping must not take them for this run's scores and skip the
    detectors that would have replaced them. The coffee cup, stale person score 0.99, is kept by a full
    scoring; it was rejected as human on the stale score, no detector but open_nsfw run."""
    stale = photo("4", image=real_jpeg("coffee.jpg"), scores=(("oidv4_person.person", 0.99),))
    for every_view in (False, True):
        with local_pipeline() as p:
            out = p | beam.Create([stale]) | Detect(SPECS, runtime(skip_settled=not every_view),
                                                    fusion=builtin_fusion())
            assert_that(out.kept | beam.Map(lambda ph: (ph.photo_id, dict(ph.scores)["oidv4_person.person"] < 0.5)),
                        equal_to([("4", True)]), label="kept")
            assert_that(out.rejected, equal_to([]), label="rejected")


def test_a_score_cache_entry_no_run_writes_is_scored_again(tmp_path):
    """A changed score entry could set any score of the photo (another detector's too, letting a person through):
    an entry with a score name the detector does not give, without one it gives, or a score that is no finite
    number, is a miss."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    nsfw = [s for s in SPECS if s.name == "open_nsfw"]
    inputs = [photo("3", image=real_jpeg("chelsea.jpg"), sha256="3" * 64)]
    cache = tmp_path / "cache"
    truth = round(photo_scores(nsfw[0], shared_session(nsfw[0], runtime()), inputs, 400)[0]["nsfw"], 6)
    with local_pipeline() as p:
        _ = p | beam.Create(inputs) | Detect(nsfw, runtime(), cache=str(cache))
    [path] = cache.glob("scores-open_nsfw-*.parquet")
    table = pq.read_table(path)
    for forged in ({"open_nsfw.nsfw": 0.0, "open_nsfw.sfw": 1.0, "centerface.face": 0.0},
                   {"open_nsfw.nsfw": "0.0"}, {"open_nsfw.nsfw": float("nan")}, {"open_nsfw.nsfw": 10 ** 400},
                   # without the class it decides on: the photo was kept with no nsfw score (read as 0)
                   {}, {"open_nsfw.sfw": 1.0}):
        # 10**400: an int no float holds (math.isfinite raised OverflowError and failed the job)
        rows = [{**row, "scores": json.dumps(forged)} for row in table.to_pylist()]
        for written in cache.glob("scores-open_nsfw-*.parquet"):  # the true entry a miss wrote would be chosen first
            written.unlink()
        pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
        with local_pipeline() as p:
            out = p | beam.Create(inputs) | Detect(nsfw, runtime(), cache=str(cache))
            assert_that(out.kept | beam.Map(lambda ph: dict(ph.scores)), equal_to([
                {"open_nsfw.nsfw": truth, "open_nsfw.sfw": round(1 - truth, 6)}]))


def test_a_staged_decisions_store_decides_as_read_and_travels_as_its_path(tmp_path):
    """The decisions store was pickled into each detector's handler and the decision step: 100,000 decisions were
    416 kB a step, several a Detect stage, two stages in a refresh (Dataflow refuses a job graph over its request
    limit). Staged (`stage_decisions`), a stage carries the copy's path and hash, and decides as before; a copy
    changed after launch fails the worker, never applies."""
    import pickle

    from pipeline import decisions_file
    from pipeline.decisions_file import stage_decisions
    from pipeline.detectors.decision import rule_for
    from pipeline.detectors.handler import FailedInference, OnnxDetectorHandler
    from pipeline.stages import detect

    person = load_registry()["ssdlite_person"]
    strict = dataclasses.replace(person, thresholds={"person": 0.995}, review_band={"person": 0.9})
    store = tmp_path / "reviews.csv"
    store.write_text("photo_id,decision,note,sha256\n1,accept,astronaut suit only? checked,\n3,reject_other,blurry,\n"
                     + "".join(f"{pid},reject_human,,\n" for pid in range(1_000, 101_000)))
    staged = stage_decisions(str(store), str(tmp_path / "staging" / "_lists"))
    in_memory = read_decisions(str(store))
    sizes = {name: len(pickle.dumps(Detect([strict], runtime(), decisions)))
             for name, decisions in (("none", {}), ("staged", staged), ("in memory", in_memory))}
    assert sizes["staged"] - sizes["none"] < 1024 < 1_000_000 < sizes["in memory"] - sizes["none"], sizes
    store.write_text("photo_id,decision,note,sha256\n")  # what the job applies is what it read at launch
    inputs = [photo("1", image=real_jpeg("astronaut.jpg")), photo("3", image=real_jpeg("chelsea.jpg")),
              photo("1500", image=real_jpeg("coffee.jpg"))]
    with local_pipeline() as p:
        out = p | beam.Create(inputs) | Detect([strict], runtime(), staged)
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(["1"]), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.reason, r.detail)),
                    equal_to([("3", "reviewer_rejected", "blurry"), ("1500", "human", "reviewer")]),
                    label="rejected")
    with open(staged.path, "a") as handle:
        handle.write("5,accept,,\n")
    # A worker process starting afresh: the detectors' handlers read the copy as they load their model, where the
    # error fails the bundle for a retry (inside the inference it was every photo's internal_error rejection); the
    # decision step as it is set up.
    decisions_file._staged_decisions.cache_clear()
    handler = OnnxDetectorHandler(strict, runtime(), detect._Settled(rule_for([strict], None), staged))
    with pytest.raises(RuntimeError, match=r"reviews\.csv the job made at launch .* has changed"):
        pickle.loads(pickle.dumps(handler)).load_model()
    with pytest.raises(RuntimeError, match="has changed"):
        pickle.loads(pickle.dumps(detect._Decide(rule_for([strict], None), staged, True))).setup()
    # A process that never loads the model (one process loads it for all with --detect_share_model_across_processes)
    # meets the changed copy inside the inference: the photo is scored in full, not rejected (the decision step's
    # setup above is where the job stops).
    decisions_file._staged_decisions.cache_clear()
    unloaded = pickle.loads(pickle.dumps(handler))
    [result] = unloaded.run_inference([inputs[2]], shared_session(strict, runtime()))
    assert not isinstance(result.inference, FailedInference)
    [alone] = photo_scores(strict, shared_session(strict, runtime()), [inputs[2]], 400)
    assert result.inference == {f"{strict.name}.{cls}": pytest.approx(score, abs=1e-6) for cls, score in alone.items()}
