"""The only licenses PASS admits, by Flickr license id: CC BY 2.0 (4) and CC BY 4.0 (11).

flickr/licenses.py holds Flickr's whole table and the stages read this set there; it is here, on its own and importing
nothing, because the options (options.py, below the Flickr client) check --flickr_licenses against it too: a subset,
never more.
"""

CC_BY_LICENSE_IDS = frozenset({4, 11})
