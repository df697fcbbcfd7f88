"""Wires the stages into one pipeline, and maps the run's options to each stage's configuration.

  Read (YFCC, a generic table or Flickr API) -> FilterLicense -> DropRepeatedIds -> [VerifyLicense] -> [Blocklist ids]
    -> Fetch -> NormaliseImages -> [Blocklist content] -> [Decontaminate] -> ExactDuplicates
    -> NearDuplicates -> Detect (people, faces, NSFW; borderline -> review/) -> CapPerOwner
    -> WriteDataset (+ ATTRIBUTION.csv)
  every stage's rejections -> WriteRejections;  counts -> stats.json;  files -> manifest.json
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import AsList

from pipeline import __version__
from pipeline.decisions_file import Decisions, stage_decisions
from pipeline.detectors.fusion import (
    Fusion,
    check_overrides,
    choose_fusion,
    figures_that_apply,
    model_summary,
    registry_fusion,
)
from pipeline.detectors.handler import RuntimeConfig
from pipeline.detectors.registry import DetectorSpec, load_registry, select, with_overrides
from pipeline.detectors.reviewer_decisions import ReviewerRejections
from pipeline.io import report, sinks
from pipeline.io.attribution import WriteAttribution
from pipeline.io.dataset_card import WriteDatasetCard
from pipeline.io.file_pins import UNCHECKED, Pins
from pipeline.io.files import ReadParquetFiles
from pipeline.io.http_client import FetchConfig, user_agent
from pipeline.io.layout import STAGED_LISTS
from pipeline.io.progress import Progress
from pipeline.io.staged_images import ReadBackImages, StageImages, drop_image, images_folder
from pipeline.io.work_cache import ThroughCache, shaping_options
from pipeline.options import DEFAULT_NEAR_DUP_DISTANCE, INPUTS, PassOptions, recorded, split_list, upload_window
from pipeline.records import BLOCKLIST_CONTENT
from pipeline.release.carry import CarriedIds, CheckRows, ReadRelease, release_name
from pipeline.release.review import WriteReview
from pipeline.sources.flickr import FlickrSourceConfig, ReadFlickr
from pipeline.sources.table import ReadTable, table_layout
from pipeline.sources.yfcc import ReadYfcc
from pipeline.stage import StageOutput, distinct, empty, flatten
from pipeline.stages.blocklist import AFTER_FETCH_KINDS, METADATA_KINDS, Blocklist, copy_blocklists, read_blocklists
from pipeline.stages.blocklist import STAGE as BLOCKLIST_STAGE
from pipeline.stages.decontaminate import Decontaminate
from pipeline.stages.detect import Detect, DetectOutput
from pipeline.stages.exact_dedup import ExactDuplicates
from pipeline.stages.fetch import Fetch, FetchSettings
from pipeline.stages.image import ImageConfig, NormaliseImages
from pipeline.stages.ledger import SkipDecided, checked_row, entry_of_kept, entry_of_rejection, merged, reopened_id
from pipeline.stages.license import FilterLicense
from pipeline.stages.near_dedup import NearDuplicates, previous_entry
from pipeline.stages.owner_cap import CapPerOwner
from pipeline.stages.unique_id import DropRepeatedIds
from pipeline.stages.verify_license import VerifyConfig, VerifyLicense


def _source(opts: PassOptions) -> beam.PTransform:
    if opts.source == "flickr":
        low, high = upload_window(opts.min_upload_date, opts.max_upload_date)
        return ReadFlickr(FlickrSourceConfig(
            rest_url=opts.flickr_rest_url, credentials_path=opts.flickr_credentials, licenses=opts.flickr_licenses,
            min_upload=low, max_upload=high,
            max_side=opts.max_side, calls_per_second=opts.flickr_calls_per_second, originals=opts.flickr_originals,
            search_depth=opts.flickr_search_depth))
    if not opts.input:  # a refresh of a YFCC release: only the carried images, re-checked
        return _NoInput()
    if opts.input_format != "yfcc":
        return ReadTable(opts.input, table_layout(opts.input_format, opts.columns))
    return ReadYfcc(opts.input)


class _NoInput(beam.PTransform):
    """PBegin -> (empty PCollection[Photo], empty PCollection[Rejection])."""

    def expand(self, pbegin: beam.pvalue.PBegin) -> StageOutput:
        return StageOutput(empty(pbegin.pipeline), empty(pbegin.pipeline))


def _maybe(photos: beam.PCollection, pipeline: beam.Pipeline, label: str, enabled: object,
           make: Callable[[], beam.PTransform]) -> StageOutput:
    """Apply an optional stage, or pass everything through with no rejections."""
    if enabled:
        return photos | label >> make()
    return StageOutput(photos, empty(pipeline))


def fetch_settings(opts: PassOptions) -> FetchSettings:
    http = FetchConfig(
        allowed_hosts=tuple(split_list(opts.allowed_hosts)), user_agent=user_agent(__version__, opts.contact),
        connect_timeout=opts.connect_timeout, read_timeout=opts.read_timeout, deadline=opts.fetch_deadline,
        max_bytes=opts.max_bytes, max_retries=opts.max_retries, backoff_base=opts.backoff_base,
        max_backoff=opts.max_backoff, per_host_concurrency=opts.per_host_concurrency, per_host_rps=opts.per_host_rps)
    return FetchSettings(http, opts.max_side, opts.fetch_threads, bool(opts.flickr_originals))


def image_config(opts: PassOptions) -> ImageConfig:
    return ImageConfig(opts.max_side, opts.min_side, opts.max_pixels, opts.min_stddev, opts.jpeg_quality,
                       opts.draft_supersample, opts.resize_reducing_gap, opts.decode_pixel_budget)


def fetch_images(opts: PassOptions) -> ThroughCache:
    """The fetch and image stages, through the work cache when --cache is given."""

    def fetch_and_normalise(photos: beam.PCollection) -> StageOutput:
        fetched = photos | "Fetch" >> Fetch(fetch_settings(opts))
        images = fetched.kept | "Images" >> NormaliseImages(image_config(opts))
        return StageOutput(images.kept, (fetched.rejected, images.rejected) | "Rejections" >> beam.Flatten())

    return ThroughCache(fetch_and_normalise, opts.cache or "", shaping_options(opts), split_list(opts.allowed_hosts),
                        max_side=opts.max_side)


def detectors_of(opts: PassOptions) -> list[DetectorSpec]:
    specs = select(load_registry(opts.model_registry or None), opts.detectors)
    return with_overrides(specs, opts.detect_thresholds, opts.review_band)


def runtime_of(opts: PassOptions) -> RuntimeConfig:
    return RuntimeConfig(device=opts.detect_device, require_gpu=bool(opts.require_gpu),
                         min_batch=opts.detect_min_batch_size, max_batch=opts.detect_batch_size,
                         tile_min_side=opts.detect_tile_min_side,
                         skip_settled=not opts.detect_every_view,
                         intra_op_threads=opts.detect_threads,
                         share_across_processes=bool(opts.detect_share_model_across_processes))


def _verify_license(opts: PassOptions) -> VerifyLicense:
    return VerifyLicense(VerifyConfig(opts.flickr_rest_url, opts.flickr_credentials, opts.flickr_licenses,
                                      opts.flickr_calls_per_second, opts.flickr_search_depth))


LOG = logging.getLogger(__name__)
# (selection, registry) pairs already warned about (fusion_of runs several times a launch)
_WARNED: set[tuple[tuple[str, ...], str]] = set()


def fusion_of(opts: PassOptions, specs: list[DetectorSpec]) -> Fusion | None:
    """The fusion model deciding the human classes (--fusion), refused when a --detect_thresholds or
    --review_band entry names a class it decides (that threshold would be silently ignored)."""
    fusion = choose_fusion(opts.fusion, specs, opts.model_registry)
    selection = tuple(spec.name for spec in specs)
    said = (selection, opts.model_registry)
    if fusion is None and specs and opts.fusion in ("", "default") and said not in _WARNED:
        default = registry_fusion(opts.model_registry)
        if default is not None:
            _WARNED.add(said)
            # Said once at launch: a selection written out by name (or inherited from an older release)
            # that lacks a detector the default model reads is decided by thresholds, a different rule.
            missing = sorted(default.detectors - set(selection))
            LOG.warning("the default fusion model (%s) reads %s, not selected: per-detector thresholds decide; "
                        "--fusion=FILE names a model for this selection (models/README.md)", default.file,
                        ", ".join(missing))
    overridden = [item.split("=", 1)[0].strip() for text in (opts.detect_thresholds, opts.review_band)
                  for item in text.split(",") if item.strip()]
    check_overrides(fusion, specs, overridden)
    return fusion


def model_entries(specs: list[DetectorSpec], fusion: Fusion | None) -> list[dict]:
    """What decided detection, as the manifest records it (and a refresh compares): each detector
    with its thresholds, and the fusion model with its two thresholds."""
    entries: list[dict[str, Any]] = [{"name": spec.name, "file": spec.file.rsplit("/", 1)[-1], "sha256": spec.sha256,
                "license": spec.license, "thresholds": spec.thresholds, "review_band": spec.review_band,
                # what a fusion model reading them sees (a refresh compares it too); only where declared
                **({"context_columns": spec.context_columns} if spec.context_columns else {}),
                **({"context_probes": {probe.cls: probe.sha256 for probe in spec.probes}} if spec.probes else {})}
               for spec in specs]
    if fusion is not None:
        entries.append({"name": "fusion", "file": fusion.file, "sha256": fusion.sha256,
                        "license": "fitted by this project (pipeline/photo_sets/fit_fusion.py)",
                        "thresholds": {"reject_at": fusion.reject_at},
                        "review_band": {"review_from": fusion.review_from},
                        "features": list(fusion.features), **model_summary(fusion),
                        "heldout": figures_that_apply(fusion, specs)})
    return entries


def models_of(opts: PassOptions) -> list[dict]:
    """The manifest's model entries a run with these options would record."""
    specs = detectors_of(opts)
    return model_entries(specs, fusion_of(opts, specs))


def _detect(specs: list[DetectorSpec], opts: PassOptions, decisions: Decisions) -> Detect:
    return Detect(specs, runtime_of(opts), decisions, opts.cache or "",
                  fusion_of(opts, specs))


def _maybe_detect(photos: beam.PCollection, pipeline: beam.Pipeline, specs: list[DetectorSpec],
                  opts: PassOptions, images: str, decisions: Decisions) -> DetectOutput:
    """Detection on the photos' pixels, read back from the staged images (`images`) just for it; the
    photos it keeps leave without their bytes again, those held for review keep them (the review
    writer shows them)."""
    if not specs:  # no detection, which applies the reviewers' decisions: their rejections still hold
        reviewed = _maybe(photos, pipeline, "ReviewerRejections", opts.review_decisions,
                          lambda: ReviewerRejections(decisions))
        return DetectOutput(reviewed.kept, reviewed.rejected, empty(pipeline))
    read_back = photos | "ReadBackImages" >> ReadBackImages(images)
    detected = read_back.kept | "Detect" >> _detect(specs, opts, decisions)
    kept = detected.kept | "DropImages" >> beam.Map(drop_image)
    rejected = (read_back.rejected, detected.rejected) | "DetectRejections" >> beam.Flatten()
    return DetectOutput(kept, rejected, detected.review)


def _blocklists(lists: list[str], distance: int, output: str) -> Callable[..., Blocklist] | None:
    """Makes the job's Blocklist stages (None without lists): each list read once at launch for all of them (read by
    each, a list saved meanwhile was applied in two versions) and copied into the staging folder, where the workers
    read it (its text pickled into each stage went into the job graph, four times in a refresh)."""
    if not lists:
        return None
    texts = read_blocklists(lists)
    copies = copy_blocklists(texts, FileSystems.join(output, STAGED_LISTS))
    return functools.partial(Blocklist, lists, distance, texts=texts, copies=copies)


def _carried(pipeline: beam.Pipeline, opts: PassOptions, listed: Callable[..., Blocklist] | None,
             list_distance: int, specs: list[DetectorSpec], decisions: Decisions, pins: Pins = UNCHECKED
             ) -> tuple[beam.PCollection, beam.PCollection, list[beam.PCollection], list[beam.PCollection]]:
    """The previous release's rows (--carry_over), checked as a source's rows are (release/carry.py:
    the id, the hashes, the stored JPEG; the license filter; one row per id), then through the checks
    whose answer can change: license re-verification, the takedown blocklist, decontamination, and — with
    --redetect (a refresh sets it when the detectors or their thresholds changed) — detection. Returns
    (still publishable, every row carried in, rejections, borderline photos for review). `pins`: the versions of
    the release's files verify read (`file_pins`), which its shards must still be."""
    if not opts.carry_over:
        return empty(pipeline), empty(pipeline), [], []
    name = release_name(opts.carry_over)
    carried_in = pipeline | "CarryOver" >> ReadRelease(opts.carry_over, name, pins)
    rows = carried_in | "CarriedRows" >> CheckRows(name, opts.max_pixels)
    licensed = rows.kept | "CarriedLicense" >> FilterLicense()
    unique = licensed.kept | "CarriedUniqueIds" >> DropRepeatedIds()
    verified = _maybe(unique.kept, pipeline, "CarriedVerifyLicense", opts.verify_license,
                      lambda: _verify_license(opts))
    ids = _maybe(verified.kept, pipeline, "CarriedBlocklistIds", listed,
                 lambda: listed(METADATA_KINDS))  # type: ignore[misc]
    # the stored image's pHash too: the row's is the previous release's word (perceptual_hashes.stored_phash)
    content = _maybe(ids.kept, pipeline, "CarriedBlocklistContent", listed,
                     lambda: listed(AFTER_FETCH_KINDS, BLOCKLIST_CONTENT, rehash=True))  # type: ignore[misc]
    eval_sets = split_list(opts.decontaminate)
    clean = _maybe(content.kept, pipeline, "CarriedDecontaminate", eval_sets,
                   lambda: Decontaminate(eval_sets, list_distance, image_config(opts), rehash=True))
    rejected = [rows.rejected, licensed.rejected, unique.rejected, verified.rejected, ids.rejected, content.rejected,
                clean.rejected]
    if not (opts.redetect and specs):
        # Detection applies the reviewers' decisions; without it a photo a reviewer rejected on a second look (a later
        # decision replaces an earlier one) was carried into every later release all the same.
        reviewed = _maybe(clean.kept, pipeline, "CarriedReviewerRejections", opts.review_decisions,
                          lambda: ReviewerRejections(decisions))
        return reviewed.kept, carried_in, [*rejected, reviewed.rejected], []
    redone = clean.kept | "CarriedDetect" >> _detect(specs, opts, decisions)
    return redone.kept, carried_in, [*rejected, redone.rejected], [redone.review]


def _ledger_entries(kept: beam.PCollection, rejections: beam.PCollection, previous: beam.PCollection | None,
                    release: str) -> beam.PCollection:
    """This run's decisions for good (stages/ledger.py), over the previous ledger's for the same ids."""
    new = (
        (kept | "LedgerKept" >> beam.Map(entry_of_kept, release),
         rejections | "LedgerRejected" >> beam.Map(entry_of_rejection, release))
        | "LedgerNew" >> beam.Flatten()
        | "LedgerDecided" >> beam.Filter(lambda entry: entry is not None)
    )
    joined = {"new": new}
    if previous is not None:
        # checked again here, uncounted (SkipDecided counts them): a refused row is not carried into the new ledger
        joined["old"] = previous | "LedgerOld" >> beam.FlatMap(lambda row: filter(None, [checked_row(row)]))
        joined["reopened"] = (rejections | "LedgerReopened" >> beam.Map(reopened_id)
                              | "LedgerReopenedIds" >> beam.Filter(lambda photo_id: photo_id is not None)
                              | "LedgerReopenedKeys" >> beam.Map(lambda photo_id: (photo_id, True)))
    return joined | "LedgerJoin" >> beam.CoGroupByKey() | "LedgerMerge" >> beam.FlatMap(merged)


def build(pipeline: beam.Pipeline, opts: PassOptions, output: str = "", pins: Pins = UNCHECKED
          ) -> dict[str, beam.PCollection]:
    """Adds the whole job to `pipeline`, writing into `output` (default --output; a run writes into
    its staging folder); returns the kept photos and all rejections (for tests). `pins`: the versions of the files
    checked before the job (`file_pins`: the --ledger and --previous_index files at launch, the previous release
    verify read), which the job reads or refuses."""
    output = output or opts.output
    # The carried release is held to what verify read where verify read it (a refresh); --carry_over is internal
    carried_pins = pins if opts.carry_over and pins.covers(opts.carry_over) else UNCHECKED
    read = pipeline | "Read" >> _source(opts)
    licensed = read.kept | "License" >> FilterLicense()
    lists = split_list(opts.blocklist)
    # The radius of --decontaminate and of pHash takedowns without their own distance. With the near-duplicate stage
    # off (-1) it was 0: both matched identical pHashes alone, and a re-encoded copy of a test or taken-down image
    # was kept without a word. Turning that stage off turns off that stage only.
    list_distance = opts.near_dup_distance if opts.near_dup_distance >= 0 else DEFAULT_NEAR_DUP_DISTANCE
    listed = _blocklists(lists, list_distance, output)
    specs = detectors_of(opts)
    # once, for the new photos and the carried ones: read by each, a `review apply` in between was applied to them in
    # two versions; copied for the workers, as the lists are
    decisions = stage_decisions(opts.review_decisions or None, FileSystems.join(output, STAGED_LISTS))
    carried, carried_in, carried_rejected, carried_review = _carried(pipeline, opts, listed, list_distance, specs,
                                                                     decisions, carried_pins)
    # The license stage's rejections take part: a photo's first row refused for its licence is not overruled by a
    # later row calling the photo CC BY.
    unique = licensed.kept | "UniqueIds" >> DropRepeatedIds(refused=licensed.rejected)
    ledger = None
    if opts.ledger:
        ledger = pipeline | "ReadLedger" >> ReadParquetFiles(split_list(opts.ledger), pins)
    # A new row for an id the previous release holds is a repeat of that photo: without the ledger, which skips it
    # as decided, it was fetched and written twice. Its ids are read apart (CarriedIds), so that the downloads do not
    # wait for the carried rows' re-checks. A new copy of a carried photo's bytes likewise (below).
    carried_ids = pipeline | "CarriedIds" >> CarriedIds(opts.carry_over, release_name(opts.carry_over),
                                                        carried_pins) if opts.carry_over else None
    # A takedown list given to this run, read as it is now, decides again the ids it took down by id, owner or URL (a
    # takedown struck off the list). Not those taken down by content (sha256, pHash) or an evaluation set's overlap:
    # re-deciding them means fetching the image again every refresh, flagged material included, and a re-encoding (a
    # Pillow upgrade, another --jpeg_quality or --max_side) could make it slip past its sha256 entry and be published.
    rechecked = frozenset({BLOCKLIST_STAGE} if listed else ())
    # _maybe spelt out: the ledger is given to SkipDecided where it is known to be there
    undecided = (unique.kept | "SkipDecided" >> SkipDecided(ledger, carried_ids, rechecked) if ledger is not None
                 else StageOutput(unique.kept, empty(pipeline)))
    not_carried = _maybe(undecided.kept, pipeline, "UniqueIdsWithCarried", opts.carry_over,
                         lambda: DropRepeatedIds(carried_ids))
    verified = _maybe(not_carried.kept, pipeline, "VerifyLicense", opts.verify_license, lambda: _verify_license(opts))
    listed_ids = _maybe(verified.kept, pipeline, "BlocklistIds", listed,
                        lambda: listed(METADATA_KINDS))  # type: ignore[misc]
    images = listed_ids.kept | "FetchImages" >> fetch_images(opts)
    # Each stored image is written once to the staging folder here; the shuffles up to the writers
    # carry photos without their bytes (io/staged_images.py). After the work cache, which keeps them.
    staged_images = images_folder(output)
    staged = images.kept | "StageImages" >> StageImages(staged_images)
    listed_content = _maybe(staged, pipeline, "BlocklistContent", listed,
                            lambda: listed(AFTER_FETCH_KINDS, BLOCKLIST_CONTENT))  # type: ignore[misc]
    eval_sets = split_list(opts.decontaminate)
    clean = _maybe(listed_content.kept, pipeline, "Decontaminate", eval_sets,
                   lambda: Decontaminate(eval_sets, list_distance, image_config(opts)))
    distinct_images = clean.kept | "ExactDuplicates" >> ExactDuplicates(carried if opts.carry_over else None)
    previous = None
    if opts.carry_over:
        # A refresh compares new images with the carried images that stay in the new release, not
        # with the previous index: a near copy of a photo removed in this refresh (taken down,
        # relicensed, deleted) is a new image, not a duplicate of one no release holds any more.
        previous = carried | "CarriedEntries" >> beam.Map(lambda photo: (photo.phash, photo.photo_id, photo.dhash))
    elif opts.previous_index:
        previous = (
            pipeline
            # Every column: an index written before the dHash has none, and naming it would fail the read.
            | "ReadPreviousIndex" >> ReadParquetFiles(split_list(opts.previous_index), pins)
            | "PreviousEntries" >> beam.FlatMap(previous_entry)
        )
    near = _maybe(distinct_images.kept, pipeline, "NearDuplicates", opts.near_dup_distance >= 0,
                  lambda: NearDuplicates(opts.near_dup_distance, opts.near_dup_key_blocks, opts.near_dup_bucket_cap,
                                         previous, opts.near_dup_dhash_distance))
    detected = _maybe_detect(near.kept, pipeline, specs, opts, staged_images, decisions)
    candidates = detected.kept
    if opts.carry_over:
        carried_staged = carried | "StageCarriedImages" >> StageImages(staged_images)
        candidates = (detected.kept, carried_staged) | "WithCarried" >> beam.Flatten()
    capped = candidates | "CapPerOwner" >> CapPerOwner(opts.per_owner_cap)
    # The writers read the bytes back after their shuffle: a photo whose staged image is gone is
    # rejected here, before it is counted, attributed or indexed as kept.
    present = capped.kept | "CheckStagedImages" >> ReadBackImages(staged_images, check_only=True)
    release = opts.release_name or ""
    kept = present.kept | "FirstRelease" >> beam.Map(
        lambda photo: photo if photo.first_release or not release else photo.replace(first_release=release))

    read_rows = [read.kept, read.rejected, *([carried_in] if opts.carry_over else [])]
    # Counted where they are made, not after a Flatten: a runner may run a Flatten's consumer only
    # once every input is done, and the read count would stay 0 while downloads are still going.
    timed = [*(("read", rows) for rows in read_rows), ("fetched", images.kept), ("deduplicated", near.kept)]
    timed += [("detected", detected.kept), ("detected", detected.rejected)] if specs else []
    every = opts.progress_seconds
    _ = [pcoll | f"Progress.{step}.{i}" >> Progress(step, every) for i, (step, pcoll) in enumerate(timed)]
    rejected_by_stage = distinct((
        read.rejected, licensed.rejected, unique.rejected, undecided.rejected, not_carried.rejected, verified.rejected,
        listed_ids.rejected, images.rejected, listed_content.rejected, clean.rejected,
        distinct_images.rejected, near.rejected, detected.rejected, capped.rejected, present.rejected,
        *carried_rejected,
    ))
    rejections = flatten(rejected_by_stage, "AllRejections")
    _ = kept | "Progress.kept" >> Progress("kept", every)
    # Each stage's rejections counted where it makes them, as the rows read are: counted after the Flatten, they
    # waited for the last stage's and the line said "rejected 0" through most of a run. Each PCollection once.
    _ = [pcoll | f"Progress.rejected.{i}" >> Progress("rejected", every) for i, pcoll in enumerate(rejected_by_stage)]

    ledger_entries = _ledger_entries(kept, rejections, ledger, opts.release_name or "an earlier run")
    index_entries = None
    if opts.near_dup_distance >= 0:
        index = [kept | "IndexEntries" >> beam.Map(lambda photo: (photo.phash, photo.photo_id, photo.dhash))]
        # A refresh's kept images include the carried ones: its index is exactly its images. Without
        # carry-over, the new index adds this run's images to the previous one.
        index += [previous] if previous is not None and not opts.carry_over else []
        index_entries = index | "AllIndexEntries" >> beam.Flatten()

    # One count of everything the job counts: stats.json's figures (input rows, kept, rejections by
    # stage and reason) and the records each sharded file set is sized by. One combine instead of
    # one per figure, each a dozen transforms that Beam builds, translates and runs. The price: every
    # writer waits for the whole tally (the ledger join included), which carries metadata only.
    tallied = [
        flatten(read_rows, "InputRows") | "TallyInput" >> beam.Map(lambda _: report.INPUT_ROW),
        kept | "TallyKept" >> beam.Map(lambda _: report.KEPT_ROW),
        rejections | "TallyRejections" >> beam.Map(lambda rejection: (rejection.stage, rejection.reason)),
        ledger_entries | "TallyLedger" >> beam.Map(lambda _: report.LEDGER_ENTRY),
    ]
    if index_entries is not None:
        tallied.append(index_entries | "TallyIndex" >> beam.Map(lambda _: report.INDEX_ENTRY))
    tally = tallied | "Tallies" >> beam.Flatten() | "Tally" >> beam.CombineGlobally(report.Tally())

    def count(name: str) -> beam.PCollection:  # one of the tally's counts, as a one-element PCollection
        return tally | f"Count.{name}" >> beam.Map(lambda counts: counts[name])

    outputs = [
        kept | "WriteDataset" >> sinks.WriteDataset(output, split_list(opts.formats), opts.shards,
                                                    opts.images_per_shard, staged_images, count(report.KEPT_ROW)),
        rejections | "WriteRejections" >> sinks.WriteRejections(output, count(report.REJECTED)),
        kept | "WriteAttribution" >> WriteAttribution(output),
        pipeline | "WriteDatasetCard" >> WriteDatasetCard(output, split_list(opts.formats),
                                                          opts.near_dup_distance >= 0),
        ledger_entries | "WriteLedger" >> sinks.WriteLedger(output, count(report.LEDGER_ENTRY)),
    ]
    if specs:
        outputs.append((detected.review, *carried_review) | "AllReview" >> beam.Flatten()
                       | "WriteReview" >> WriteReview(output, specs, fusion_of(opts, specs)))
    if index_entries is not None:
        outputs.append(index_entries | "WriteIndex" >> sinks.WriteNearDupIndex(output, count(report.INDEX_ENTRY)))
    files = outputs | "AllFiles" >> beam.Flatten()

    models = model_entries(specs, fusion_of(opts, specs))
    _ = tally | "Report" >> beam.Map(report.write_report, output=output, options=recorded(opts), inputs=INPUTS,
                                     models=models, files=AsList(files))
    return {"kept": kept, "rejections": rejections}
