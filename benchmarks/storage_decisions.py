"""What a change to how images are stored does to the detectors' decisions, on the labelled package
photographs.

Each photograph is stored from its own bytes (as a run stores a download: `evaluation.stored_as_a_run`)
under two rules, A and B, given as the image options `run` takes (`draft_supersample`,
`resize_reducing_gap`); the photographs the two rules store differently are scored under both with the
default detectors and decision (or `--detectors`, `--fusion`), and printed per split: how many are
stored differently, the largest change of a score, and every decision that changed, with its label.
A measurement of a storage rule's side effects, not a held-out figure: it uses every split it is given.

    python -m pipeline.photo_sets.fetch DIR --split all
    .venv/bin/python -m benchmarks.storage_decisions --photos DIR --b draft_supersample=1
        [--a draft_supersample=2] [--splits tuning,heldout,heldout2,heldout3,heldout4]

The comparison of the draft rules in docs/normalisation.md ("Decoding at the stored size") is this
command's output of 2026-12-01, run then with heldout4 named as well (no decision changed there).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from pipeline.detectors.decision import rule_for
from pipeline.detectors.fusion import choose_fusion
from pipeline.detectors.handler import RuntimeConfig
from pipeline.detectors.registry import load_registry, select
from pipeline.evaluation import score_stored, stored_as_a_run
from pipeline.options import DRAFT_SUPERSAMPLE_RANGE, REDUCING_GAP_RANGE, valid_draft_supersample, valid_reducing_gap
from pipeline.photo_sets.fetch import SPLITS as KNOWN_SPLITS
from pipeline.photo_sets.fetch import load_rows
from pipeline.photo_sets.score import PhotoSetError, load_samples
from pipeline.stages.image import ImageConfig
from pipeline.usage import OneLineParser, usage_said

RULE_OPTIONS = {"draft_supersample": int, "resize_reducing_gap": float}
# The newest split (frozen unscored until it is scored once) is left out unless named: it is kept for measuring the next
# decision, and a storage rule chosen on it would make it the rule's tuning data too.
SPLITS = ",".join(KNOWN_SPLITS[:-1])


@dataclass(frozen=True)
class Rule:
    draft_supersample: int = ImageConfig.draft_supersample
    resize_reducing_gap: float = ImageConfig.resize_reducing_gap

    def __str__(self) -> str:
        return ", ".join(f"{field.name}={getattr(self, field.name)}" for field in fields(self))


def parse_rule(text: str) -> Rule:
    """"draft_supersample=1,resize_reducing_gap=0" -> Rule; the defaults for what is not named."""
    values: dict[str, int | float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        if name not in RULE_OPTIONS or not value:
            raise ValueError(f"{item!r}: expected NAME=VALUE with NAME one of {sorted(RULE_OPTIONS)}")
        try:
            values[name] = RULE_OPTIONS[name](value)
        except ValueError:
            raise ValueError(f"{item!r}: {value!r} is not a number") from None
    rule = Rule(**values)  # type: ignore[arg-type]
    # The limits `run` applies to the same options (pipeline/options.py).
    if not valid_draft_supersample(rule.draft_supersample):
        raise ValueError(DRAFT_SUPERSAMPLE_RANGE.replace("--", ""))
    if not valid_reducing_gap(rule.resize_reducing_gap):
        raise ValueError(REDUCING_GAP_RANGE.replace("--", ""))
    return rule


@dataclass(frozen=True)
class Change:
    name: str
    label: str
    before: str
    after: str


def compare_split(photos: Path, split: str, a: Rule, b: Rule, detectors: str, fusion_name: str,
                  max_side: int = 512) -> tuple[int, int, float, list[Change]]:
    """(photographs, stored differently, largest score change, decisions changed) of one split."""
    rows = load_rows(split)
    samples = load_samples(photos, rows)
    specs = select(load_registry(None), detectors)
    rule = rule_for(specs, choose_fusion(fusion_name, specs))
    runtime = RuntimeConfig()
    pairs = [(row, stored_as_a_run(sample, max_side, a.resize_reducing_gap, a.draft_supersample),
              stored_as_a_run(sample, max_side, b.resize_reducing_gap, b.draft_supersample))
             for row, sample in zip(rows, samples, strict=True)]
    differ = [(row, one, two) for row, one, two in pairs if one != two]
    scores = score_stored([jpeg for _, one, two in differ for jpeg in (one, two)], specs, runtime)
    largest, changes = 0.0, []
    for index, (row, _, _) in enumerate(differ):
        under_a, under_b = scores[2 * index], scores[2 * index + 1]
        largest = max([largest, *(abs(under_a[name] - under_b[name]) for name in under_a)])
        before, after = rule.decide(under_a).decision, rule.decide(under_b).decision
        if before != after:
            changes.append(Change(f"{row.package}:{row.member_path}", row.label, before, after))
    return len(rows), len(differ), largest, changes


@usage_said("storage_decisions")
def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="python -m benchmarks.storage_decisions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", required=True, help="photographs fetched by pipeline.photo_sets.fetch")
    parser.add_argument("--a", default="", help="rule A, e.g. draft_supersample=2 (default: the defaults)")
    parser.add_argument("--b", required=True, help="rule B, e.g. draft_supersample=1")
    parser.add_argument("--splits", default=SPLITS)
    parser.add_argument("--detectors", default="default")
    parser.add_argument("--fusion", default="default")
    args = parser.parse_args(argv)
    try:
        a, b = parse_rule(args.a), parse_rule(args.b)
    except ValueError as err:
        parser.error(str(err))
    splits = args.splits.split(",")
    unknown = [split for split in splits if split not in KNOWN_SPLITS]
    if unknown:
        parser.error(f"unknown split(s) {', '.join(unknown)}: choose from {', '.join(KNOWN_SPLITS)}")
    for split in splits:  # fetched a split at a time: one missing was refused only after the splits before it (minutes)
        try:
            load_samples(Path(args.photos), load_rows(split))  # seconds: each photograph read and its sha256 checked
        except PhotoSetError as err:
            parser.error(str(err))
    print(f"A: {a}\nB: {b}")
    total = stored_differently = 0
    every_change: list[Change] = []
    for split in splits:
        try:
            count, differ, largest, changes = compare_split(Path(args.photos), split, a, b, args.detectors,
                                                            args.fusion)
        except PhotoSetError as err:  # changed since they were checked above: a traceback
            parser.error(str(err))
        total, stored_differently = total + count, stored_differently + differ
        every_change += changes
        print(f"{split}: {count} photographs, {differ} stored differently, largest score change "
              f"{largest:.3f}, {len(changes)} decision(s) changed")
        for change in changes:
            print(f"   {change.label:12s} {change.before:>8s} -> {change.after:8s} {change.name}")
    print(f"total: {stored_differently} of {total} stored differently, {len(every_change)} decision(s) changed")


if __name__ == "__main__":
    main()
