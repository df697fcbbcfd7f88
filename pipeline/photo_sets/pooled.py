"""One figure over several held-out splits: recall and keep-rate of the default decision (or of a given registry
and fusion model) over every photograph of the splits together, with its Wilson interval and its interval by package
(`metrics.package_interval`), from each split's earlier `evaluate --json`:

    pass-pipeline evaluate --photos DIR --split heldout8 --json heldout8.json      # each split, once
    python -m pipeline.photo_sets.pooled heldout8.json heldout9.json ... heldout15.json

A pooled Wilson interval takes the photographs of all splits for independent draws. The splits were drawn by
package, and a package's photographs are alike (a photographer, a subject, a style), so the figure that says how
far the rate could be from the next package's is the one by package: it draws whole packages from all the splits
(the same whatever the order the files are given in).

Every file must score each photograph of its split (`score.earlier_scores`: a missing one is refused, never left
out) with images stored by one rule (files stored otherwise are refused: their figures differ by the rule), and each
split may be given once. The decision is made again from the scores, by the rule `evaluate` uses, so that a file's
recorded decisions (another model's) are not what is pooled. Prints the pooled figures, then each split's counts.
"""

from __future__ import annotations

if __name__ == "__main__":  # its stops handled from before its imports on (io/starting.py)
    from pipeline.io.starting import script

    raise SystemExit(script("pooled", "pipeline.photo_sets.pooled"))

import argparse
from collections.abc import Sequence
from pathlib import Path

from pipeline.detectors.fusion import choose_fusion
from pipeline.detectors.registry import RegistryError, load_registry, select
from pipeline.io.stopping import stops_saying
from pipeline.photo_sets.fetch import Row, load_rows
from pipeline.photo_sets.metrics import KEPT, decide, evaluate_rows, iter_summary
from pipeline.photo_sets.metrics import rates as split_rates
from pipeline.photo_sets.score import PhotoSetError, earlier_scores
from pipeline.photo_sets.scores_file import ScoresFileError, read_scores
from pipeline.printable import log_printably
from pipeline.usage import OneLineParser, usage_said


def pooled(files: Sequence[Path], detectors: str = "default", fusion_name: str = "default",
           registry: str = "") -> dict:
    """The evaluation of every photograph of the files' splits together (`metrics.evaluate_rows`' result), with
    `splits`: each split's own counts. PhotoSetError for a file that is not a whole split's scores, a split given
    twice, or files whose images were stored by different rules."""
    specs = select(load_registry(registry or None), detectors)
    fusion = choose_fusion(fusion_name, specs, registry)
    rows: list[Row] = []
    scores: list[dict[str, float]] = []
    splits: dict[str, dict] = {}
    storages = set()
    for path in files:
        try:
            split = read_scores(path)[1]["split"]
        except ScoresFileError as err:
            raise PhotoSetError(str(err)) from None
        if split in splits:
            raise PhotoSetError(f"{path}: split {split[:40]!r} given twice")
        split_rows = load_rows(split)
        if not split_rows:
            raise PhotoSetError(f"{path}: {split[:40]!r} is no split of the labelled photographs")
        split_scores, storage = earlier_scores(path, split_rows, specs)
        storages.add(storage)
        decisions = [decide(specs, s, fusion) for s in split_scores]
        splits[split] = {"images": len(split_rows), **split_rates(split_rows, decisions),
                         "missed": sum(row.has_human and d == KEPT for row, d in zip(split_rows, decisions,
                                                                                       strict=True))}
        rows += split_rows
        scores += split_scores
    if len(storages) > 1:
        # each whole: files of one rule version stored with another resize, or from decoded pixels, differ there
        shown = "; ".join(sorted(f"rule {s.storage_rule_version}, reducing gap {s.resize_reducing_gap}, from "
                                 f"{s.stored_from[:60]!r}" for s in storages))
        raise PhotoSetError(f"the files' images were stored by {len(storages)} different rules ({shown}): pool one "
                            "rule's")
    result = evaluate_rows(rows, scores, specs, fusion)
    result["splits"] = splits
    return result


def main(argv: Sequence[str] | None = None) -> int:
    log_printably()  # a library's record one escaped line, as in pass-pipeline's log (printable.py)
    with stops_saying(lambda: "nothing was written"), usage_said("pooled"):
        parser = OneLineParser(prog="python -m pipeline.photo_sets.pooled", description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("scores", nargs="+", type=Path, help="evaluate --json output, one file per split")
        parser.add_argument("--detectors", default="default", help="as for run (default: default)")
        parser.add_argument("--fusion", default="default", help="as for run (default: default)")
        parser.add_argument("--model_registry", default="", help="as for run")
        args = parser.parse_args(argv)
        try:
            result = pooled(args.scores, args.detectors, args.fusion, args.model_registry)
        except (PhotoSetError, RegistryError) as err:  # a registry refused was RegistryError's traceback
            parser.error(str(err))
        lines = list(iter_summary(result))
        print(f"{', '.join(result['splits'])} pooled: " + lines[0])
        print(lines[1])
        for split, figure in result["splits"].items():
            recall, keep = figure["recall"], figure["keep_rate"]
            print(f"  {split:28s} recall {recall['successes']}/{recall['n']}  keep-rate "
                  f"{keep['successes']}/{keep['n']}  ({figure['images']} photographs)")
        return 0
