"""pipeline/photo_sets/metrics.py: Wilson intervals, the detect stage's decision rule, and the report
(recall over humans, keep-rate with held counted as lost, depictions apart, ablation)."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.detectors.registry import load_registry, select
from pipeline.photo_sets.fetch import Row
from pipeline.photo_sets.metrics import (
    HELD,
    KEPT,
    REJECTED,
    Z95,
    _line,
    auc,
    decide,
    evaluate_rows,
    iter_summary,
    keeping,
    package_draws,
    package_interval,
    rate,
    wilson,
)


def brute_force_wilson(k: int, n: int, steps: int = 200_000) -> tuple[float, float]:
    """The Wilson interval by its definition: every p with |k/n - p| <= z * sqrt(p(1-p)/n), on a grid."""
    inside = [i / steps for i in range(steps + 1)
              if abs(k / n - i / steps) <= Z95 * math.sqrt((i / steps) * (1 - i / steps) / n)]
    return inside[0], inside[-1]


@pytest.mark.parametrize(("k", "n"), [(0, 10), (10, 10), (5, 10), (1, 3), (31, 32), (97, 100)])
def test_wilson_matches_its_definition(k, n):
    low, high = wilson(k, n)
    ref_low, ref_high = brute_force_wilson(k, n)
    assert low == pytest.approx(ref_low, abs=2e-5) and high == pytest.approx(ref_high, abs=2e-5)


def test_wilson_closed_forms_at_the_ends():
    # All successes: lower bound n / (n + z^2); none: upper bound z^2 / (n + z^2).
    assert wilson(10, 10) == (pytest.approx(10 / (10 + Z95**2)), 1.0)
    assert wilson(0, 10) == (0.0, pytest.approx(Z95**2 / (10 + Z95**2)))
    assert wilson(5, 10) == (pytest.approx(0.236593, abs=1e-6), pytest.approx(0.763407, abs=1e-6))
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson(3, 2)


@given(st.integers(1, 400), st.data())
def test_wilson_contains_the_estimate_and_narrows_with_n(n, data):
    k = data.draw(st.integers(0, n))
    low, high = wilson(k, n)
    assert 0.0 <= low <= k / n <= high <= 1.0
    low2, high2 = wilson(2 * k, 2 * n)  # same estimate, twice the evidence
    assert high2 - low2 < high - low


# The per-detector thresholds of the defaults until heldout8 (the rule, not the selection, is under test here).
SPECS = select(load_registry(), "centerface,ssdlite_person,open_nsfw,nanodet_person")


def test_decide_is_the_detect_stages_rule():
    assert decide(SPECS, {}) == KEPT
    assert decide(SPECS, {"centerface.face": 0.5}) == REJECTED  # at the threshold
    assert decide(SPECS, {"ssdlite_person.person": 0.3}) == HELD  # at the band's start
    assert decide(SPECS, {"ssdlite_person.person": 0.29, "open_nsfw.nsfw": 0.19}) == KEPT
    assert decide(SPECS, {"open_nsfw.nsfw": 0.9, "centerface.face": 0.4}) == REJECTED


def labelled(label: str, i: int, kind: str = "") -> Row:
    return Row("pkg", "1", "npm", f"package/{label}{i}.jpg", f"{i:064x}", 1, 1, label, kind, "heldout", "")


FACE, PERSON, BORDER = {"centerface.face": 0.9}, {"ssdlite_person.person": 0.9}, {"ssdlite_person.person": 0.4}


def test_report_counts_held_as_removed_for_recall_and_lost_for_keep_rate():
    rows = [labelled("person", 0), labelled("tiny_person", 1), labelled("body_part", 2), labelled("person", 3),
            labelled("no_person", 4), labelled("no_person", 5), labelled("no_person", 6, "statue"),
            labelled("no_person", 7), labelled("depiction", 8), labelled("depiction", 9)]
    scores = [FACE, PERSON, BORDER, {}, {}, BORDER, FACE, {}, FACE, {}]
    result = evaluate_rows(rows, scores, SPECS)
    combined = result["combined"]
    assert (combined["recall"]["successes"], combined["recall"]["n"]) == (3, 4)
    assert combined["recall_rejected"]["successes"] == 2
    assert (combined["keep_rate"]["successes"], combined["keep_rate"]["n"]) == (2, 4)
    assert combined["recall"]["ci95"] == [round(v, 4) for v in wilson(3, 4)]
    assert result["missed"] == ["pkg:package/person3.jpg"]
    assert result["depictions"] == {"n": 2, "removed": 1, "policy": result["depictions"]["policy"]}
    assert result["per_label"]["no_person"] == {KEPT: 2, HELD: 1, REJECTED: 1}
    assert {label: (f["successes"], f["n"]) for label, f in result["recall_per_label"].items()} == {
        "body_part": (1, 1), "person": (1, 2), "tiny_person": (1, 1)}
    assert result["recall_per_label"]["person"]["ci95"] == [round(v, 4) for v in wilson(1, 2)]
    assert result["hard_negatives"] == {"statue": {REJECTED: 1}}
    # Without the face detector the tiny person and body part are still caught, the faces are not.
    without_face = result["ablation"]["without centerface"]
    assert without_face["recall"]["successes"] == 2 and without_face["keep_rate"]["successes"] == 3
    assert result["per_detector"]["open_nsfw"]["recall"]["successes"] == 0
    text = "\n".join(iter_summary(result))
    assert "recall 75.0%" in text and "without ssdlite_person" in text and "depictions" in text
    low, high = wilson(1, 2)
    assert "recall per human label:\n  body_part          100.0%" in text
    assert f"  person             50.0% [{low:.1%}, {high:.1%}] (1/2)" in text


def test_a_photograph_over_the_pixel_cap_is_named_apart():
    """A default run refuses it before detection: its figures come from the cap raised, and the report says so."""
    big = Row("pkg", "1", "npm", "package/huge.jpg", "f" * 64, 11993, 8988, "person", "", "heldout", "")
    at_cap = Row("pkg", "1", "npm", "package/at_cap.jpg", "e" * 64, 8000, 8000, "no_person", "", "heldout", "")
    result = evaluate_rows([big, at_cap, labelled("person", 0)], [FACE, {}, {}], SPECS)
    assert result["over_pixel_cap"] == ["pkg:package/huge.jpg"]  # 64,000,000 pixels is not over the cap
    assert result["combined"]["recall"]["successes"] == 1  # scored like any other photograph
    assert "over the default --max_pixels" in "\n".join(iter_summary(result))
    assert "over the default" not in "\n".join(iter_summary(evaluate_rows([at_cap], [{}], SPECS)))


def test_printed_rates_are_rounded_once_from_the_counts():
    """14/17 is 82.35%: printed from the stored rate (0.8235, rounded to four places) it read 82.3%."""
    low, high = wilson(14, 17)
    line = _line("all", {"recall": rate(14, 17), "keep_rate": rate(0, 0)})
    assert f"recall 82.4% [{low:.1%}, {high:.1%}] (14/17)" in line and "keep-rate n/a [0.0%, 100.0%] (0/0)" in line


def brute_force_package_interval(hits: list[tuple[str, bool]], draws: int, seed: int) -> tuple[float, float]:
    """The package bootstrap by its definition, one draw at a time: the packages in the order of their names, each
    draw's packages taken whole, and the 2.5th and 97.5th percentiles interpolated between the sorted rates."""
    packages = sorted({package for package, _ in hits})
    rates = []
    for row in package_draws(len(packages), draws, seed):
        taken = [hit for index in row for package, hit in hits if package == packages[index]]
        rates.append(sum(taken) / len(taken))
    rates.sort()

    def percentile(q: float) -> float:
        at = (len(rates) - 1) * q
        below = math.floor(at)
        return rates[below] + (rates[min(below + 1, len(rates) - 1)] - rates[below]) * (at - below)

    return percentile(0.025), percentile(0.975)


@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.booleans()), min_size=1, max_size=30),
       st.integers(0, 2**32 - 1))
def test_the_package_interval_is_the_bootstrap_over_whole_packages(hits, seed):
    low, high = package_interval(hits, draws=200, seed=seed)
    if len({package for package, _ in hits}) < 2:
        assert (low, high) == (0.0, 1.0)  # one package tells nothing of how packages differ
        return
    assert (low, high) == pytest.approx(brute_force_package_interval(hits, 200, seed), abs=1e-12)
    assert 0.0 <= low <= high <= 1.0
    assert package_interval(hits[::-1], draws=200, seed=seed) == (low, high)  # the photographs' order: nothing


def test_packages_alike_give_no_spread_and_packages_unlike_a_wider_interval_than_wilson():
    """Photographs of one package are no independent draws: ten packages each all caught or all missed say less than
    100 photographs caught or missed each on its own, and the package interval says so where Wilson's cannot."""
    alike = [(f"p{i}", j < 3) for i in range(8) for j in range(4)]  # every package 3 of 4
    assert package_interval(alike) == (pytest.approx(0.75), pytest.approx(0.75))
    clustered = [(f"p{i}", i % 2 == 0) for i in range(10) for _ in range(10)]
    independent = [(f"q{i}", i % 2 == 0) for i in range(100)]
    wide, narrow = package_interval(clustered), package_interval(independent)
    low, high = wilson(50, 100)
    assert wide[1] - wide[0] > 2 * (narrow[1] - narrow[0]) and wide[1] - wide[0] > 2 * (high - low)
    assert narrow[0] == pytest.approx(low, abs=0.03) and narrow[1] == pytest.approx(high, abs=0.03)
    assert package_interval(clustered) == wide  # one set of decisions, one interval


def test_the_report_gives_the_combined_rates_by_package_too():
    rows = [Row(f"pkg{i % 3}", "1", "npm", f"package/{i}.jpg", f"{i:064x}", 1, 1,
                "person" if i < 6 else "no_person", "", "heldout", "") for i in range(12)]
    scores = [FACE, FACE, {}, FACE, FACE, FACE, {}, {}, FACE, {}, {}, {}]
    result = evaluate_rows(rows, scores, SPECS)
    recall = result["combined"]["recall"]
    assert (recall["successes"], recall["n"], recall["packages"]) == (5, 6, 3)
    hits = [(row.package, s == FACE) for row, s in zip(rows[:6], scores[:6], strict=True)]
    (boot_low, boot_high), (low, high) = package_interval(hits), wilson(5, 6)
    assert recall["ci95_packages"] == [round(min(boot_low, low), 4), round(max(boot_high, high), 4)]
    keep = result["combined"]["keep_rate"]
    assert (keep["successes"], keep["n"], keep["packages"]) == (5, 6, 3)
    by_low, by_high = recall["ci95_packages"]
    assert f"(5/6, by package [{by_low:.1%}, {by_high:.1%}] (3 packages))" in "\n".join(iter_summary(result))


def test_the_interval_by_package_of_a_rate_of_100_percent_is_never_narrower_than_wilsons():
    """Every draw of packages all caught is all caught: the bootstrap alone gave heldout14's 54 of 54 "100% [100, 100]
    by package", a certainty 54 photographs cannot give. Widened to hold the Wilson interval, it is Wilson's there."""
    rows = [Row(f"pkg{i % 5}", "1", "npm", f"package/{i}.jpg", f"{i:064x}", 1, 1, "person", "", "heldout", "")
            for i in range(20)]
    recall = evaluate_rows(rows, [FACE] * 20, SPECS)["combined"]["recall"]
    assert package_interval([(row.package, True) for row in rows]) == (1.0, 1.0)
    assert recall["ci95_packages"] == recall["ci95"] == [round(v, 4) for v in wilson(20, 20)]


@given(st.lists(st.integers(0, 5), min_size=1, max_size=12), st.lists(st.integers(0, 5), min_size=1, max_size=12))
def test_the_area_under_the_curve_is_the_share_of_pairs_ordered_ties_half(positive, negative):
    pairs = [1.0 if p > n else 0.5 if p == n else 0.0 for p in positive for n in negative]
    assert auc(positive, negative) == pytest.approx(sum(pairs) / len(pairs))
    assert math.isnan(auc(positive, [])) and math.isnan(auc([], negative))


@given(st.lists(st.integers(0, 20), max_size=40), st.sampled_from([0.5, 0.9, 0.95]))
def test_the_value_keeping_a_share_of_clean_photos_is_the_lowest_that_keeps_at_least_that_share(scores, share):
    """Against the brute force, in exact fractions: of the clean scores, the lowest that as a threshold (a score above
    it flagged) keeps at least `share` of them; 15 photographs at 90% keep 14 (13.5 asked), not 13; none where there
    are none (inf: nothing is flagged)."""
    clean = sorted(scores)
    kept_enough = [value for value in clean
                   if Fraction(sum(score <= value for score in clean), len(clean)) >= Fraction(str(share))]
    assert keeping(clean, share) == min(kept_enough, default=math.inf)


@pytest.mark.parametrize("share", [0, -0.1, 1.01, math.nan])
def test_a_share_kept_outside_zero_to_one_is_refused(share):
    """A share of 0 gave the largest score (clean[-1]), as if every photograph were to be kept; one over 1 an index
    past the end. No caller passes one; one that did is refused."""
    with pytest.raises(ValueError, match="share"):
        keeping([0.1, 0.5, 0.9], share)
