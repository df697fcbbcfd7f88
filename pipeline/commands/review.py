"""`pass-pipeline review apply`: fold a reviewer's decisions into the cumulative store."""

from __future__ import annotations

import os

from apache_beam.io.filesystems import FileSystems

from pipeline.commands.run import UsageError
from pipeline.release.review import apply_decisions


def review_apply(decisions: str, store: str) -> int:
    if not FileSystems.exists(decisions):
        raise UsageError(f"no decisions file at {decisions}")
    for name, path in (("decisions", decisions), ("--store", store)):
        if "://" not in path and os.path.isdir(path):  # object stores have no folders to mistake
            raise UsageError(f"{name} {path} is a folder, not a CSV file")
    applied, total = apply_decisions(decisions, store)
    print(f"review: {applied} decision(s) applied; {store} now holds {total}")
    return 0
