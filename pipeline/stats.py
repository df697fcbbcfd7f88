"""The funnel: how many input rows entered each stage, how many it rejected and why, how many
were kept, and whether every row is accounted for (kept + rejected = input)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# The order records flow through the stages; stats.json lists the funnel in this order.
STAGE_ORDER = (
    "read", "license", "unique_id", "verify_license", "blocklist", "fetch", "image", "blocklist_content",
    "decontaminate", "exact_dedup", "near_dedup", "detect", "owner_cap",
)


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
