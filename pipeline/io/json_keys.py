"""JSON objects as every reader reads them: a key given twice in one object is refused, not resolved.

Python keeps the last of a key given twice, other readers the first or refuse the object: a file a release publishes
(its manifest, its changelog, which mirrors delete by) could pass `verify` as what Python reads and be read otherwise
by whoever uses it (an entry giving one file two sha256, a changelog giving "removed" twice), and a Flickr API answer
could be read as another licence than its first copy says (flickr/client.py)."""

from __future__ import annotations

import json
from typing import Any


class KeyTwice(ValueError):
    """A key given twice in one JSON object: its JSON text (at most 200 characters)."""


def each_key_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads`'s `object_pairs_hook`: the object as a dict, `KeyTwice` for a key it gives twice. The dict is made
    first and the pairs looked through only when it came out smaller (an API page of 500 entries: no slower)."""
    found = dict(pairs)
    if len(found) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise KeyTwice(json.dumps(key)[:200])
            seen.add(key)
    return found
