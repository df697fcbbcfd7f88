"""Output decoders against hand-made outputs whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.detectors.decoders import decode, output_names


def test_score_maps_take_the_best_position_per_row():
    heat = np.zeros((2, 1, 8, 8), np.float32)
    heat[0, 0, 3, 4], heat[1, 0, 0, 0] = 0.9, 0.2
    decoder = {"type": "score_maps", "outputs": {"face": ["537"]}}
    assert decode(decoder, {"537": heat}, 2) == [{"face": pytest.approx(0.9)}, {"face": pytest.approx(0.2)}]
    logits = {"s8": np.full((1, 10, 1), -10.0), "s16": np.full((1, 5, 1), 0.0)}  # SCRFD-style, two strides
    scrfd = {"type": "score_maps", "outputs": {"face": ["s8", "s16"]}, "sigmoid": True}
    assert decode(scrfd, logits, 1)[0]["face"] == pytest.approx(0.5)
    softmax = {"type": "score_maps", "outputs": {"face": ["conf"]}, "column": 1}  # RetinaFace [N, A, 2]
    assert decode(softmax, {"conf": np.array([[[0.9, 0.1], [0.3, 0.7]]])}, 1)[0]["face"] == pytest.approx(0.7)
    assert output_names(scrfd) == ["s16", "s8"]


def test_ssd_counts_only_valid_detections_of_named_classes():
    decoder = {"type": "ssd", "boxes": "b", "scores": "s", "classes": "c", "count": "n",
               "class_names": {"1": "person"}}
    outputs = {"b": np.zeros((2, 3, 4)), "s": np.array([[0.8, 0.6, 0.99], [0.3, 0.9, 0.0]]),
               "c": np.array([[18.0, 1.0, 1.0], [1.0, 3.0, 1.0]]), "n": np.array([2.0, 2.0])}
    # Row 0: the 0.99 person is past num_detections (padding), so 0.6; row 1: the only person is 0.3.
    assert decode(decoder, outputs, 2) == [{"person": pytest.approx(0.6)}, {"person": pytest.approx(0.3)}]


@pytest.mark.parametrize("count", [-1.0, float("nan"), float("inf"), 7.0, 1.5])
def test_an_ssd_count_that_is_no_count_of_its_boxes_reads_every_box(count):
    """Slicing by a negative count dropped the row's last boxes (the person among them); NaN was a ValueError."""
    decoder = {"type": "ssd", "boxes": "b", "scores": "s", "classes": "c", "count": "n",
               "class_names": {"1": "person"}}
    outputs = {"b": np.zeros((1, 3, 4)), "s": np.array([[0.2, 0.1, 0.9]]), "c": np.array([[1.0, 1.0, 1.0]]),
               "n": np.array([count])}
    assert decode(decoder, outputs, 1) == [{"person": pytest.approx(0.9)}]


def test_yolo_v8_and_v5_heads():
    v8 = np.zeros((1, 4 + 2, 5), np.float32)  # [N, 4 + classes, anchors]
    v8[0, 4, 2], v8[0, 5, 4] = 0.7, 0.4
    assert decode({"type": "yolo", "output": "o", "class_names": ["person", "dog"]}, {"o": v8}, 1) == [
        {"person": pytest.approx(0.7), "dog": pytest.approx(0.4)}]
    v5 = np.zeros((1, 3, 5 + 2), np.float32)  # [N, anchors, 5 + classes]: objectness x class
    v5[0, 1, 4], v5[0, 1, 5] = 0.5, 0.8
    v5[0, 2, 4], v5[0, 2, 5] = 0.9, 0.3
    decoder = {"type": "yolo", "format": "v5", "output": "o", "class_names": ["person", "dog"],
               "keep_classes": ["person"]}
    assert decode(decoder, {"o": v5}, 1) == [{"person": pytest.approx(0.4)}]


def test_classifier_probabilities_or_logits():
    decoder = {"type": "classifier", "output": "p", "class_names": ["sfw", "nsfw"]}
    assert decode(decoder, {"p": np.array([[0.25, 0.75]])}, 1) == [{"sfw": 0.25, "nsfw": 0.75}]
    logits = decode({**decoder, "softmax": True}, {"p": np.array([[0.0, 0.0], [0.0, 100.0]])}, 2)
    assert logits[0]["nsfw"] == pytest.approx(0.5) and logits[1]["nsfw"] == pytest.approx(1.0)


def test_ssd_logits_equal_the_brute_force_max_sigmoid_per_row():
    # MediaPipe-style SSD heads: [N, anchors, 1] raw logits; presence = max over anchors of
    # sigmoid(clip(logit, -100, 100)), computed here anchor by anchor.
    rng = np.random.default_rng(7)
    logits = rng.normal(-4.0, 3.0, (3, 2254, 1)).astype(np.float32)
    logits[1, 100, 0], logits[2] = 1e4, -1e4  # past the clip both ways: no overflow, no NaN
    decoder = {"type": "ssd_logits", "outputs": {"person": ["Identity_1"]}, "clip": 100.0}
    got = decode(decoder, {"Identity_1": logits, "Identity": np.zeros((3, 2254, 12))}, 3)
    for row in range(3):
        brute = max(1.0 / (1.0 + np.exp(-min(100.0, max(-100.0, float(v))))) for v in logits[row].ravel())
        assert got[row] == {"person": pytest.approx(brute, rel=1e-6, abs=1e-30)}
    assert got[1]["person"] == pytest.approx(1.0) and got[2]["person"] < 1e-40
    assert output_names(decoder) == ["Identity_1"]  # the box output is never fetched


def test_context_columns_are_the_other_classes_of_the_same_outputs():
    """A COCO detector's other classes from the pass that gives its person score: each context column's best
    over anchors and over every output the decoder reads, through the sigmoid where the decoder applies one,
    equal to a brute-force max over the same cells."""
    rng = np.random.default_rng(3)
    outputs = {"s8": rng.normal(size=(2, 40, 6)).astype(np.float32),
               "s16": rng.normal(size=(2, 10, 6)).astype(np.float32)}
    for sigmoid in (False, True):
        decoder = {"type": "score_maps", "outputs": {"person": ["s8", "s16"]}, "column": 0, "sigmoid": sigmoid,
                   "context_columns": {"bird": 2, "dog": 5}}
        decoded = decode(decoder, outputs, 2)
        for row in range(2):
            assert set(decoded[row]) == {"person", "bird", "dog"}
            for cls, column in (("person", 0), ("bird", 2), ("dog", 5)):
                best = max(float(outputs[name][row, :, column].max()) for name in outputs)
                expected = 1 / (1 + np.exp(-best)) if sigmoid else best
                assert decoded[row][cls] == pytest.approx(expected, rel=1e-6)
    # Without context columns the decoder gives its deciding class only, as before.
    plain = {"type": "score_maps", "outputs": {"person": ["s8"]}, "column": 0}
    assert set(decode(plain, outputs, 2)[0]) == {"person"}
    with pytest.raises(ValueError, match="beyond output"):  # a model narrower than the entry says
        decode({**plain, "context_columns": {"x": 6}}, outputs, 2)
