"""`pass-pipeline review apply`: fold a reviewer's decisions into the cumulative store."""

from __future__ import annotations

from pipeline.release.review import apply_decisions


def review_apply(decisions: str, store: str) -> int:
    applied, total = apply_decisions(decisions, store)
    print(f"review: {applied} decision(s) applied; {store} now holds {total}")
    return 0
