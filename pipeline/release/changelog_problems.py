"""A release's changelog.json against the release it describes (`verify`).

A refresh writes what changed since the previous release (release/refresh.py's `changelog`): the ids added, the ids
removed by reason, the count unchanged and both totals. Mirrors use it to delete what a takedown removed, so a
changelog that leaves a removed photo out, or names one the release still holds, misleads them. Without the previous
release at hand only what the changelog says of this one can be checked: every id it adds is in the release, none it
removes is, no id is both or given twice, and its counts add up to the release's photos; `verify --previous` compares
it with the previous release's photos too. A resealed manifest makes any file's checksum match, so these are what
tells such a changelog from a refresh's.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from pipeline.io.json_keys import KeyTwice, each_key_once
from pipeline.release.id_sets import IdSet
from pipeline.release.problem import Problem

CHANGELOG_JSON = "changelog.json"


def _ids(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _shape_problem(log: Any) -> str | None:
    if not isinstance(log, dict):
        return f"not a JSON object but {type(log).__name__}"
    totals = log.get("totals")
    if not _ids(log.get("added")):
        return '"added" is not a list of photo ids'
    removed = log.get("removed")
    if not isinstance(removed, dict) or not all(_ids(ids) for ids in removed.values()):
        return '"removed" is not an object of reasons, each a list of photo ids'
    if not _count(log.get("unchanged")):
        return '"unchanged" is not a count'
    if not isinstance(totals, dict) or not (_count(totals.get("previous")) and _count(totals.get("release"))):
        return '"totals" does not give "previous" and "release" counts'
    return None


def _some(ids: Iterable[str]) -> str:
    least = heapq.nsmallest(4, ids)  # sorted(ids)[:4], without a sorted copy of a release's ids
    return ", ".join(f"{photo_id[:40]!r}" for photo_id in least[:3]) + (" …" if len(least) > 3 else "")


def changelog_problems(path: str, data: bytes, kept: Iterable[str] | None, release: Any,
                       previous: Iterable[str] | None = None) -> Iterator[Problem]:
    """The problems of changelog.json's bytes against the release's photo ids (`kept`: None where no dataset file
    could be read, reported already) and its manifest's release name; and, given the previous release's photo ids
    (`verify --previous`), against those: exactly the photos gone from it listed as removed, the new ones as added."""
    try:
        log = json.loads(data.decode("utf-8"), object_pairs_hook=each_key_once)
    except KeyTwice as err:  # read otherwise by a mirror's reader than here
        yield Problem(path, f"gives {err} twice in one object (JSON readers differ on which counts; a refresh writes "
                            "each key once)")
        return
    except (ValueError, RecursionError) as err:
        yield Problem(path, f"not valid JSON ({str(err)[:120]})")
        return
    problem = _shape_problem(log)
    if problem:
        yield Problem(path, f"{problem}, as a refresh writes it")
        return
    if isinstance(release, str) and log.get("release") != release:
        yield Problem(path, f"describes release {str(log.get('release'))[:80]!r}, the manifest says {release[:80]!r}")
    added = Counter(log["added"])
    removed = Counter(photo_id for ids in log["removed"].values() for photo_id in ids)
    for what, counted in (("added", added), ("removed", removed)):
        twice = [photo_id for photo_id, count in counted.items() if count > 1]
        if twice:
            yield Problem(path, f"{len(twice)} photo ids {what} more than once, e.g. {_some(twice)}")
    both = added.keys() & removed.keys()
    if both:
        yield Problem(path, f"{len(both)} photo ids both added and removed, e.g. {_some(both)}")
    totals, unchanged = log["totals"], log["unchanged"]
    if totals["previous"] != unchanged + sum(removed.values()):
        yield Problem(path, f"the previous release's {totals['previous']:,} photos are not its {unchanged:,} unchanged "
                            f"+ {sum(removed.values()):,} removed")
    if totals["release"] != unchanged + sum(added.values()):
        yield Problem(path, f"the release's {totals['release']:,} photos are not its {unchanged:,} unchanged + "
                            f"{sum(added.values()):,} added")
    if kept is None:
        return
    kept = IdSet.of(kept)  # verify's already: a release's ids as a set of text took 184 MiB
    if totals["release"] != len(kept):
        yield Problem(path, f"counts {totals['release']:,} photos in the release, which holds {len(kept):,}")
    absent = [photo_id for photo_id, held in zip(added, kept.holds_each(list(added)), strict=True) if not held]
    if absent:
        yield Problem(path, f"{len(absent)} photo ids it adds are not in the release, e.g. {_some(absent)}")
    held = [photo_id for photo_id, there in zip(removed, kept.holds_each(list(removed)), strict=True) if there]
    if held:
        yield Problem(path, f"{len(held)} photo ids it removes are still in the release, e.g. {_some(held)}")
    if previous is not None:
        yield from _against_previous(path, log, kept, IdSet.of(previous), IdSet.of(added), IdSet.of(removed))


def _against_previous(path: str, log: dict[str, Any], kept: IdSet, previous: IdSet, added: IdSet, removed: IdSet
                      ) -> Iterator[Problem]:
    """What a mirror of the previous release deletes and adds by the changelog, against the two releases' photos."""
    gone = previous - kept
    for what, found in (("photos of the previous release not in this one are not listed as removed", gone - removed),
                        ("photo ids it removes were not in the previous release", removed - previous),
                        ("photos new since the previous release are not listed as added", kept - previous - added),
                        ("photo ids it adds were already in the previous release", added & previous)):
        if found:
            yield Problem(path, f"{len(found)} {what}, e.g. {_some(found)}")
    if log["totals"]["previous"] != len(previous):
        yield Problem(path, f"counts {log['totals']['previous']:,} photos in the previous release, which holds "
                            f"{len(previous):,}")
    if log["unchanged"] != len(previous & kept):
        yield Problem(path, f"counts {log['unchanged']:,} photos unchanged, the two releases share "
                            f"{len(previous & kept):,}")
