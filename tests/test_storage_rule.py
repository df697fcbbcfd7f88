"""The version of the rule that turns a downloaded image into the stored one (pipeline/io/storage_rule.py)."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.io import storage_rule
from pipeline.io.storage_rule import STORAGE_RULE_VERSION
from pipeline.stages import image


def test_the_version_is_a_whole_number_from_1():
    assert type(STORAGE_RULE_VERSION) is int and STORAGE_RULE_VERSION >= 1


def test_the_image_stage_reads_this_one_version():
    assert image.STORAGE_RULE_VERSION is STORAGE_RULE_VERSION


def test_each_version_after_the_first_says_what_it_changed_and_when():
    """The comment says what each bump changed (`N: what, YYYY-MM-DD`): a bump without its line, or a line naming a
    version never made, leaves a reader of a release's storage_rule_version with no account of its rule."""
    comment = " ".join(line.lstrip("# ") for line in Path(storage_rule.__file__).read_text(encoding="utf-8")
                       .splitlines() if line.startswith("#"))
    said = [int(number) for number in re.findall(r"(?:\(|; )([0-9]+): ", comment)]
    assert said == list(range(2, STORAGE_RULE_VERSION + 1))
    assert len(re.findall(r", 20[0-9]{2}-[0-9]{2}-[0-9]{2}[;)]", comment)) == len(said)

