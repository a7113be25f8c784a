"""Reference values for the splice metrics of worker::eval::metrics.

Usage: forensic_metrics_ref.py CASES.json OUT.json

CASES.json:
  {"pixel": [{"width": W, "height": H, "map_bits": [u32...], "mask": [bool...]}...],
   "detection": [{"score_bits": [u64...], "spliced": [bool...], "higher_means": "spliced"|"authentic"}...]}
Scores travel as IEEE bit patterns (float32 for maps, float64 for detection scores) so
that every value, ties and signed zeros included, arrives exactly.

OUT.json:
  {"pixel": [{"ap", "ap_inverted", "ciou", "ciou_inverted"}...], "detection": [{"ap"}...]}

AP is scikit-learn's average_precision_score; the inverted map is the negated map.
cIoU is written here independently of the Rust sweep: for every candidate prediction
(nothing spliced, and `map >= t` for every distinct value t of the map) the IoU of the
spliced class and of the authentic class are counted with NumPy boolean operations on
boolean arrays, averaged, and the best is kept; the inverted cIoU does the same on -map.
"""

import json
import sys

import numpy as np
from sklearn.metrics import average_precision_score


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    union = np.logical_or(pred, truth).sum()
    return float(np.logical_and(pred, truth).sum()) / float(union)


def best_ciou(scores: np.ndarray, spliced: np.ndarray) -> float:
    authentic = np.logical_not(spliced)
    candidates = [np.zeros(scores.shape, dtype=bool)]
    candidates += [scores >= t for t in np.unique(scores)]
    return max(
        (iou(pred, spliced) + iou(np.logical_not(pred), authentic)) / 2.0
        for pred in candidates
    )


def pixel_case(case: dict) -> dict:
    scores = np.array(case["map_bits"], dtype=np.uint32).view(np.float32)
    spliced = np.array(case["mask"], dtype=bool)
    assert scores.size == case["width"] * case["height"] == spliced.size
    inverted = -scores
    return {
        "ap": float(average_precision_score(spliced, scores)),
        "ap_inverted": float(average_precision_score(spliced, inverted)),
        "ciou": best_ciou(scores, spliced),
        "ciou_inverted": best_ciou(inverted, spliced),
    }


def detection_case(case: dict) -> dict:
    scores = np.array(case["score_bits"], dtype=np.uint64).view(np.float64)
    if case["higher_means"] == "authentic":
        scores = -scores
    spliced = np.array(case["spliced"], dtype=bool)
    return {"ap": float(average_precision_score(spliced, scores))}


def main() -> None:
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    out = {
        "pixel": [pixel_case(c) for c in cases["pixel"]],
        "detection": [detection_case(c) for c in cases["detection"]],
    }
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
