"""stats.json and manifest.json: the one module that writes them.

stats.json is the funnel: how many input rows entered each stage, how many it rejected and why,
how many were kept, and whether every row is accounted for (kept + rejected = input). The
manifest lists every file of a run with its size and sha256; what is learnt after the job (API
call counts, a release's changelog and datasheet) is added through `update_manifest`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline import __version__
from pipeline.io.files import read_bytes, write_json
from pipeline.io.storage_rule import STORAGE_RULE_VERSION
from pipeline.records import STAGES

STAGE_ORDER = STAGES  # the funnel's order


def build_stats(input_rows: int, kept: int, reason_counts: Iterable[tuple[tuple[str, str], int]]) -> dict[str, Any]:
    by_stage: dict[str, dict[str, int]] = {}
    for (stage, reason), count in reason_counts:
        by_stage.setdefault(stage, {})[reason] = by_stage.get(stage, {}).get(reason, 0) + count
    stages = list(STAGE_ORDER) + sorted(set(by_stage) - set(STAGE_ORDER))
    funnel, remaining = [], input_rows
    for stage in stages:
        rejected = sum(by_stage.get(stage, {}).values())
        funnel.append({"stage": stage, "in": remaining, "rejected": rejected, "out": remaining - rejected})
        remaining -= rejected
    total_rejected = sum(sum(reasons.values()) for reasons in by_stage.values())
    return {
        "input_rows": input_rows,
        "kept": kept,
        "rejected": total_rejected,
        "accounted": input_rows == kept + total_rejected,
        "funnel": funnel,
        "rejections_by_stage": {stage: dict(sorted(reasons.items())) for stage, reasons in sorted(by_stage.items())},
    }

MANIFEST = "manifest.json"
# What the job tallies (`Tally`): an input row, a kept photo, an entry of the ledger and of the
# near-duplicate index; a rejection is tallied as (stage, reason).
INPUT_ROW, KEPT_ROW, LEDGER_ENTRY, INDEX_ENTRY = "input_row", "kept", "ledger_entries", "index_entries"
REJECTED = "rejected"  # the tally's count of rejections (their sum over stage and reason)


class Tally(beam.CombineFn):
    """INPUT_ROW, KEPT_ROW, LEDGER_ENTRY, INDEX_ENTRY and (stage, reason) elements -> {"input_rows":
    n, "kept": n, "rejected": n, "ledger_entries": n, "index_entries": n, "reasons": [((stage,
    reason), n), ...]}: the counts `build_stats` takes and those the sharded writers are sized by,
    in one combine."""

    def create_accumulator(self) -> Counter:
        return Counter()

    def add_input(self, counts: Counter, element: str | tuple[str, str]) -> Counter:
        counts[element] += 1
        return counts

    def merge_accumulators(self, accumulators: Iterable[Counter]) -> Counter:
        merged: Counter = Counter()
        for counts in accumulators:
            merged.update(counts)
        return merged

    def extract_output(self, counts: Counter) -> dict[str, Any]:
        reasons = sorted((key, n) for key, n in counts.items() if isinstance(key, tuple))
        # Keyed by the tags themselves where the writers look a count up (build.py's `count(report.X)`).
        return {"input_rows": counts[INPUT_ROW], KEPT_ROW: counts[KEPT_ROW], REJECTED: sum(n for _, n in reasons),
                LEDGER_ENTRY: counts[LEDGER_ENTRY], INDEX_ENTRY: counts[INDEX_ENTRY], "reasons": reasons}


def write_report(tally: dict[str, Any], output: str, options: dict[str, Any], inputs: Sequence[str],
                 models: list[dict[str, Any]], files: list[dict[str, Any]]) -> dict[str, Any]:
    """stats.json and manifest.json, written last: the manifest lists every file of the run.
    `tally` is `Tally`'s output."""
    input_rows, kept = tally["input_rows"], tally[KEPT_ROW]
    stats = build_stats(input_rows, kept, tally["reasons"])
    stats_entry = write_json(output, "stats.json", stats)
    ordered = sorted(files, key=lambda entry: entry["path"])
    manifest = {
        "name": "pass-pipeline dataset",
        "code_version": __version__,
        # which version of the storage code's rule made the stored images added by this run (carried-over
        # images keep the bytes their own release stored)
        "storage_rule_version": STORAGE_RULE_VERSION,
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "inputs": {name: options.get(name) for name in inputs},
        "options": options,
        "models": models,
        "totals": {"input_rows": input_rows, "kept": kept, "rejected": stats["rejected"]},
        "files": [*ordered, {"path": "stats.json", "format": "stats", **stats_entry}],
    }
    write_json(output, MANIFEST, manifest)
    return stats


def read_manifest(folder: str) -> dict[str, Any]:
    return _read_json(FileSystems.join(folder, MANIFEST))


def read_stats(folder: str) -> dict[str, Any]:
    return _read_json(FileSystems.join(folder, "stats.json"))


def _read_json(path: str) -> Any:
    """A dataset's JSON file; one that is no JSON (or no UTF-8) is a ValueError naming it: json's own named no file
    ("Expecting value: line 1 column 1 (char 0)", the whole error line where a finished publish was read)."""
    try:
        return json.loads(read_bytes(path))
    except (ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError, nesting past the stack
        raise ValueError(f"{path}: not JSON ({err})") from None


def update_manifest(folder: str, entries: Sequence[dict[str, Any]] = (), **fields: Any) -> dict[str, Any]:
    """Adds or replaces file entries (by path) and top-level fields of a finished run's manifest."""
    manifest = read_manifest(folder)
    manifest.update(fields)
    replaced = {entry["path"] for entry in entries}
    manifest["files"] = sorted([f for f in manifest["files"] if f["path"] not in replaced] + list(entries),
                               key=lambda entry: entry["path"])
    write_json(folder, MANIFEST, manifest)
    return manifest


def add_to_stats(output: str, **facts: Any) -> dict[str, Any]:
    """Adds what is known only once the job is done (Flickr API calls, per-step timing, peak
    memory: Beam's counters are final only then) to stats.json and updates stats.json's entry in
    the manifest. Returns the stats."""
    stats = read_stats(output)
    stats.update(facts)
    entry = write_json(output, "stats.json", stats)
    update_manifest(output, [{**_entry_of(output, "stats.json"), **entry}])
    return stats


def _entry_of(folder: str, path: str) -> dict[str, Any]:
    return next(f for f in read_manifest(folder)["files"] if f["path"] == path)
