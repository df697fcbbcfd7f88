"""`pass-pipeline evaluate`: recall and keep-rate of the detectors on the labelled photographs."""

from __future__ import annotations

import argparse

from pipeline.detectors.handler import RuntimeConfig
from pipeline.detectors.registry import load_registry, select, with_overrides
from pipeline.evaluation import evaluate, iter_summary, write


def evaluate_command(args: argparse.Namespace) -> int:

    specs = with_overrides(select(load_registry(args.model_registry or None), args.detectors),
                           args.detect_thresholds, "")
    result = evaluate(specs, RuntimeConfig(tile_min_side=args.detect_tile_min_side), args.max_side)
    for line in iter_summary(result):
        print(line)
    if args.json:
        write(result, args.json)
    return 0 if result["combined"]["recall"] == 1.0 else 1


