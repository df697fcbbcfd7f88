"""pipeline/photo_sets/pooled.py: one figure over several held-out splits, from their evaluate --json files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.detectors.fusion import choose_fusion
from pipeline.detectors.registry import load_registry, select
from pipeline.photo_sets.fetch import load_rows
from pipeline.photo_sets.metrics import decide, package_interval, wilson
from pipeline.photo_sets.pooled import main, pooled
from pipeline.photo_sets.score import STORAGE_RULE_VERSION, STORED_FROM, PhotoSetError, probe_sources

SPECS = select(load_registry(None), "default")
WANTED = sorted({spec.score_name(cls) for spec in SPECS for cls in spec.scored_classes})


def scores_file(folder: Path, split: str, score_of, **changes) -> Path:
    """An evaluate --json of `split` as a run of today's storage rule writes it, each photograph scored
    `score_of(row)` on every score the default detectors give."""
    rows = load_rows(split)
    result = {"split": split, "resize_reducing_gap": 1.0, "stored_from": STORED_FROM,
              "storage_rule_version": STORAGE_RULE_VERSION, "context_probes": probe_sources(SPECS),
              "scores": {f"{row.package}:{row.member_path}": dict.fromkeys(WANTED, score_of(row)) for row in rows},
              **changes}
    path = folder / f"{split}.json"
    path.write_text(json.dumps(result))
    return path


def by_index(row) -> float:
    """A score that catches some photographs and not others, by the photograph's sha256: a mix in every package."""
    return 0.999 if int(row.sha256[:2], 16) % 3 else 0.001


def test_the_pooled_figure_is_every_photograph_of_the_splits_decided_again_and_counted_together(tmp_path):
    files = [scores_file(tmp_path, split, by_index) for split in ("heldout13", "heldout14")]
    result = pooled(files)
    fusion = choose_fusion("default", SPECS)
    rows = [row for split in ("heldout13", "heldout14") for row in load_rows(split)]
    decisions = [decide(SPECS, dict.fromkeys(WANTED, by_index(row)), fusion) for row in rows]
    humans = [(row.package, d != "kept") for row, d in zip(rows, decisions, strict=True) if row.has_human]
    clean = [(row.package, d == "kept") for row, d in zip(rows, decisions, strict=True) if row.label == "no_person"]
    recall, keep = result["combined"]["recall"], result["combined"]["keep_rate"]
    assert (recall["successes"], recall["n"]) == (sum(hit for _, hit in humans), len(humans)) == (
        sum(result["splits"][s]["recall"]["successes"] for s in ("heldout13", "heldout14")), 93 + 54)
    assert 0 < recall["successes"] < recall["n"] and 0 < keep["successes"] < keep["n"]  # the mix is a mix
    assert recall["ci95"] == [round(v, 4) for v in wilson(recall["successes"], recall["n"])]
    for figure, hits in ((recall, humans), (keep, clean)):
        (boot_low, boot_high), (low, high) = package_interval(hits), wilson(figure["successes"], figure["n"])
        assert figure["ci95_packages"] == [round(min(boot_low, low), 4), round(max(boot_high, high), 4)]
    assert recall["packages"] == len({package for package, _ in humans})
    assert result["splits"]["heldout14"]["images"] == 134


def test_a_file_short_of_a_photograph_a_split_given_twice_or_another_storage_rule_is_refused(tmp_path, capsys):
    whole = scores_file(tmp_path, "heldout14", by_index)
    (tmp_path / "again").mkdir()
    twice = scores_file(tmp_path / "again", "heldout14", by_index)
    with pytest.raises(PhotoSetError, match="given twice"):
        pooled([whole, twice])
    (tmp_path / "older").mkdir()
    older = scores_file(tmp_path / "older", "heldout13", by_index, storage_rule_version=3)
    with pytest.raises(PhotoSetError, match="different rules"):
        pooled([whole, older])
    short = json.loads(whole.read_text())
    short["scores"].pop(next(iter(short["scores"])))  # one photograph left out would be left out of the figure
    whole.write_text(json.dumps(short))
    with pytest.raises(PhotoSetError, match="has no scores"):
        pooled([whole])
    with pytest.raises(SystemExit) as stopped:
        main([str(whole)])
    assert stopped.value.code == 2 and "pooled: error:" in capsys.readouterr().err


def test_the_command_prints_the_pooled_figures_and_each_splits_counts(tmp_path, capsys):
    files = [scores_file(tmp_path, split, by_index) for split in ("heldout13", "heldout14")]
    assert main([str(path) for path in files]) == 0
    out = capsys.readouterr().out
    assert out.startswith("heldout13, heldout14 pooled: ") and "by package [" in out
    assert "  heldout14 " in out and "(134 photographs)" in out


def test_files_of_one_rule_version_stored_otherwise_are_refused_naming_how_each_was_stored(tmp_path):
    """Files whose images were stored by one version of the storage rule but with another resize (or from decoded
    pixels) are refused as files of two rules are: the refusal said "2 different rules (11, 11)", the one thing that
    differed left unsaid."""
    whole = scores_file(tmp_path, "heldout14", by_index)
    (tmp_path / "gap").mkdir()
    lanczos = scores_file(tmp_path / "gap", "heldout13", by_index, resize_reducing_gap=0.0)
    with pytest.raises(PhotoSetError, match="different rules") as refused:
        pooled([whole, lanczos])
    assert "reducing gap 0.0" in str(refused.value) and "reducing gap 1.0" in str(refused.value), refused.value


def a_registry_naming(tmp_path: Path, name: str) -> Path:
    """A --model_registry file whose one detector is open_nsfw's entry under `name` (the registry refuses one that is
    no plain name)."""
    from pipeline.detectors.registry import BUILTIN_REGISTRY

    builtin = json.loads(BUILTIN_REGISTRY.read_text())
    entry = {**next(e for e in builtin["detectors"] if e["name"] == "open_nsfw"), "name": name,
             "file": str(BUILTIN_REGISTRY.parent / "files" / "open-nsfw.onnx")}
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({"detectors": [entry]}))
    return path


@pytest.mark.parametrize("given", ["a registry it refuses", "a detector it does not name"])
def test_a_registry_it_refuses_is_one_line_naming_it_not_a_traceback(tmp_path, capsys, given):
    """A --model_registry the registry refuses (a detector named with a dot, a line break and ESC, as one passed
    around with a model may be), or --detectors naming one it does not have, ended pooled in RegistryError's
    traceback, exit 1, where run and evaluate say it in one line, exit 2. It is the script's one error line, escaped."""
    whole = scores_file(tmp_path, "heldout14", by_index)
    registry = a_registry_naming(tmp_path, "my.nsfw\x1b[2J\npooled: OK")
    argv = [f"--model_registry={registry}"] if given == "a registry it refuses" else ["--detectors=open_nsfw,nosuch"]
    with pytest.raises(SystemExit) as stopped:
        main([str(whole), *argv])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.count("\n") == 1 and err.rstrip("\n").isprintable(), err
    said = f"{registry}: detector " if given == "a registry it refuses" else "unknown detector(s) nosuch; known: "
    assert err.startswith(f"pooled: error: {said}"), err
