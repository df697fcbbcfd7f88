"""Model outputs -> one score per class per batch row. The decision needs "how sure is the model
that there is at least one X in this view", which for every detector family is the best score of
class X over all its candidate boxes or map positions.

- score_maps: CenterFace / RetinaFace / SCRFD-style heat or score maps; the max over the listed
  outputs (optionally through a sigmoid, or column `column` of a [N, A, C] softmax output). With
  `"context_columns": {"bird": 14, ...}` the other classes of the same [N, A, C] outputs too (a COCO
  or Open Images detector scores every class in the pass that gives its person score): context
  classes a fusion model may read and no threshold decides on.
- ssd: TF Object Detection API boxes + scores + classes (+ count), e.g. SSDLite COCO.
- ssd_logits: raw per-anchor logits of an SSD head without NMS ([N, anchors, 1], MediaPipe's pose
  and palm detectors): sigmoid of the best logit, clipped to +-`clip` as MediaPipe does.
- yolo: YOLOv5 ([N, A, 5 + C], objectness x class) or YOLOv8 ([N, 4 + C, A]) raw heads.
- classifier: [N, C] probabilities (or logits with "softmax": true).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _valid_count(count: object, boxes: int) -> int:
    """How many of a row's boxes an SSD's detection count makes valid. A count that is no whole number from 0 to
    the number of boxes (negative, NaN, too large) reads every box: slicing by a negative count dropped the last
    boxes, and on a human-free filter a box read too many is a score, one dropped is a person missed."""
    value = float(count)  # type: ignore[arg-type]
    if not np.isfinite(value) or value < 0 or value > boxes or value != int(value):
        return boxes
    return int(value)


def _softmax(x: np.ndarray) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _ssd_logits(decoder: dict[str, Any], outputs: dict[str, np.ndarray], rows: int) -> list[dict[str, float]]:
    """Max over anchors of sigmoid(clip(logit)). The sigmoid is monotonic, so it is applied once
    to each row's best logit instead of to every anchor (the same value, 2254x fewer exps)."""
    bound = float(decoder.get("clip", 100.0))
    result: list[dict[str, float]] = [{} for _ in range(rows)]
    for cls, names in decoder["outputs"].items():
        best = np.max([outputs[name].astype(np.float64).reshape(rows, -1).max(axis=1) for name in names], axis=0)
        for row, logit in enumerate(_sigmoid(np.clip(best, -bound, bound))):
            result[row][cls] = float(logit)
    return result


def _context_columns(decoder: dict[str, Any], outputs: dict[str, np.ndarray], rows: int,
                     result: list[dict[str, float]]) -> None:
    """Each context class's best score: its column of every output the decoder reads, as the main
    class's column is read (through the sigmoid where one is applied)."""
    columns = decoder.get("context_columns") or {}
    if not columns:
        return
    indices = list(columns.values())  # whole numbers: the registry checks them at load
    for name in output_names(decoder):
        width = outputs[name].shape[-1]
        if max(indices) >= width:  # numpy would say IndexError, less clearly
            raise ValueError(f"decoder.context_columns reads a column beyond output {name}'s {width}")
        values = outputs[name].astype(np.float32).reshape(rows, -1, width)
        wanted = values[..., indices].max(axis=1)  # [rows, classes]
        if decoder.get("sigmoid"):
            wanted = _sigmoid(wanted)  # monotonic: the max of the sigmoids is the sigmoid of the max
        for row in range(rows):
            for cls, value in zip(columns, wanted[row], strict=True):
                result[row][cls] = max(result[row].get(cls, 0.0), float(value))


def output_names(decoder: dict[str, Any]) -> list[str]:
    kind = decoder["type"]
    if kind == "score_maps":
        return sorted({name for names in decoder["outputs"].values() for name in names})
    if kind == "ssd_logits":
        return sorted({name for names in decoder["outputs"].values() for name in names})
    if kind == "ssd":
        return [decoder["boxes"], decoder["scores"], decoder["classes"]] + (
            [decoder["count"]] if decoder.get("count") else [])
    return [decoder["output"]]


def decoded_classes(decoder: dict[str, Any]) -> set[str]:
    """The class names `decode` gives scores for, from the decoder's configuration alone (empty when it cannot
    say: a malformed decoder, which the registry refuses for its own reason)."""
    try:
        kind = decoder.get("type")
        if kind in ("score_maps", "ssd_logits") and isinstance(decoder["outputs"], dict):
            return {str(name) for name in decoder["outputs"]}
        if kind == "ssd":
            return {str(name) for name in decoder["class_names"].values()}
        if kind == "yolo":
            names = {str(name) for name in decoder["class_names"]}
            return names & {str(name) for name in decoder["keep_classes"]} if "keep_classes" in decoder else names
        if kind == "classifier":
            return {str(name) for name in decoder["class_names"]}
    except (AttributeError, KeyError, TypeError):
        pass
    return set()


def decode(decoder: dict[str, Any], outputs: dict[str, np.ndarray], rows: int) -> list[dict[str, float]]:
    """{class name: score in [0, 1]} for each of `rows` batch rows."""
    kind = decoder["type"]
    if kind == "score_maps":
        result: list[dict[str, float]] = [{} for _ in range(rows)]
        for cls, names in decoder["outputs"].items():
            for name in names:
                values = outputs[name].astype(np.float32)
                if "column" in decoder:
                    values = values[..., int(decoder["column"])]
                if decoder.get("sigmoid"):
                    values = _sigmoid(values)
                best = values.reshape(rows, -1).max(axis=1)
                for row in range(rows):
                    result[row][cls] = max(result[row].get(cls, 0.0), float(best[row]))
        _context_columns(decoder, outputs, rows, result)
        return result
    if kind == "ssd_logits":
        return _ssd_logits(decoder, outputs, rows)
    if kind == "ssd":
        scores = outputs[decoder["scores"]].reshape(rows, -1)
        classes = outputs[decoder["classes"]].reshape(rows, -1).round().astype(int)
        count = outputs.get(decoder.get("count", ""))
        names = {int(k): v for k, v in decoder["class_names"].items()}
        result = []
        for row in range(rows):
            valid = _valid_count(count.reshape(rows)[row], scores.shape[1]) if count is not None else scores.shape[1]
            row_scores = {name: 0.0 for name in names.values()}
            for score, cls in zip(scores[row, :valid], classes[row, :valid], strict=True):
                name = names.get(int(cls))
                if name is not None:
                    row_scores[name] = max(row_scores[name], float(score))
            result.append(row_scores)
        return result
    if kind == "yolo":
        names = list(decoder["class_names"])
        raw = outputs[decoder["output"]].astype(np.float32)
        if decoder.get("format", "v8") == "v8":  # [N, 4 + C, A]: class scores, no objectness
            per_class = raw[:, 4:4 + len(names), :].max(axis=2)
        else:  # v5: [N, A, 5 + C]: objectness x class probability
            per_class = (raw[:, :, 4:5] * raw[:, :, 5:5 + len(names)]).max(axis=1)
        wanted = set(decoder.get("keep_classes", names))
        return [{name: float(per_class[row, i]) for i, name in enumerate(names) if name in wanted}
                for row in range(rows)]
    if kind == "classifier":
        names = list(decoder["class_names"])
        probs = outputs[decoder["output"]].astype(np.float32).reshape(rows, -1)
        if decoder.get("softmax"):
            probs = _softmax(probs)
        return [{name: float(probs[row, i]) for i, name in enumerate(names)} for row in range(rows)]
    raise ValueError(f"unknown decoder {kind!r}")
