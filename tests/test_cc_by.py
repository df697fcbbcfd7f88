"""The licences PASS admits (pipeline/cc_by.py): CC BY 2.0 and CC BY 4.0 by Flickr licence id, and nothing else."""

from __future__ import annotations

import ast
from pathlib import Path

from pipeline import cc_by
from pipeline.cc_by import CC_BY_LICENSE_IDS
from pipeline.flickr import licenses


def test_the_admitted_ids_are_cc_by_2_and_cc_by_4_and_cannot_be_changed():
    assert {4, 11} == CC_BY_LICENSE_IDS
    assert isinstance(CC_BY_LICENSE_IDS, frozenset)


def test_each_admitted_id_is_a_cc_by_licence_in_flickrs_table_and_every_cc_by_licence_there_is_admitted():
    """By the names the dataset records: an id beyond CC BY (BY-SA, BY-NC, CC0) admitted would publish a photo under
    terms the dataset does not state."""
    cc_by_ids = {license_id for license_id, (name, url) in licenses.CANONICAL.items()
                 if name.startswith("CC BY ") and name.split()[2][0].isdigit()}
    assert cc_by_ids == CC_BY_LICENSE_IDS
    assert {licenses.CANONICAL[license_id][1] for license_id in CC_BY_LICENSE_IDS} == {
        "https://creativecommons.org/licenses/by/2.0/", "https://creativecommons.org/licenses/by/4.0/"}


def test_the_stages_read_this_one_set():
    assert licenses.CC_BY_LICENSE_IDS is CC_BY_LICENSE_IDS


def test_the_module_imports_nothing():
    """The options (below the Flickr client) check --flickr_licenses against it: an import here could loop back."""
    tree = ast.parse(Path(cc_by.__file__).read_text(encoding="utf-8"))
    assert not [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
