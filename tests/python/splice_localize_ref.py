"""The reference code's zero-shot splice localisation, written out in Python/numpy the way
the reference implementation (EXIF as Language, `eval/image_splice/exif_sc.py`) does it,
for two uses:

- timing: everything after the embeddings (affinity, per-pair overlap voting, mean shift
  with a k-d tree, normalised cuts with scikit-learn's spectral clustering, resizing to
  the photo) on the same embeddings the Rust side analyses (`worker bench detect`);
- parity: the voted response maps, compared with the Rust voting where the reference's
  stride-sized cells are exact (the patch side a multiple of the stride).

Input: a JSON file {"height", "width", "patch", "stride", "rows", "cols", "dim",
"embeddings": path of raw little-endian float32 [rows * cols, dim] in raster order}.
Output (JSON on stdout): seconds per stage and in total, and the response maps
("pred_maps", [cells_y, cells_x, cells_y, cells_x] flattened) when --maps is given.
"""

import argparse
import json
import sys
import time

import numpy as np
import scipy.spatial
import sklearn.cluster
from PIL import Image


def voted_responses(feats, rows, cols, spread):
    """The reference's _predict_consistency_maps: 1 - cos of every patch pair, added to
    every pair of cells the two patches cover, one pair at a time."""
    gh, gw = rows + spread - 1, cols + spread - 1
    responses = np.zeros((gh, gw, gh, gw), dtype=np.float64)
    counts = np.zeros((gh, gw, gh, gw), dtype=np.float64) + 1e-4
    norm = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    idxs = np.mgrid[0:rows, 0:cols, 0:rows, 0:cols].reshape((4, -1)).T
    batch = 1024
    for start in range(0, len(idxs), batch):
        chunk = idxs[start:start + batch]
        a = np.ravel_multi_index(chunk[:, :2].T, [rows, cols])
        b = np.ravel_multi_index(chunk[:, 2:].T, [rows, cols])
        sim = 1.0 - np.sum(norm[a] * norm[b], axis=1)
        for i in range(len(sim)):
            y0, x0, y1, x1 = chunk[i]
            responses[y0:y0 + spread, x0:x0 + spread, y1:y1 + spread, x1:x1 + spread] += sim[i]
            counts[y0:y0 + spread, x0:x0 + spread, y1:y1 + spread, x1:x1 + spread] += 1
    return responses / counts


def mean_shift(points_, shape, window, iters):
    points = np.copy(points_)
    kdt = scipy.spatial.cKDTree(points)
    eps = np.percentile(scipy.spatial.distance.cdist(points, points, metric="euclidean"), window)
    for _ in range(iters):
        for i in range(points.shape[0]):
            nearest = kdt.query_ball_point(points[i], r=eps)
            points[i] = np.mean(points[nearest], axis=0)
    val = [kdt.count_neighbors(scipy.spatial.cKDTree(np.array([p])), r=eps) for p in points]
    ind = np.nonzero(val == np.max(val))
    return np.mean(points[ind[0]], axis=0).reshape(shape)


def normalized_cut(res):
    # The reference passes 1 - response as the affinity; mean cosines below zero make it
    # negative, which spectral clustering rejects: clipped at zero here.
    res = np.clip(1 - res, 0, None)
    sc = sklearn.cluster.SpectralClustering(n_clusters=2, affinity="precomputed", random_state=0)
    out = sc.fit_predict(res.reshape((res.shape[0] * res.shape[1], -1)))
    return out.reshape((res.shape[0], res.shape[1]))


def resize(m, width, height):
    img = Image.fromarray(m.astype(np.float32), mode="F")
    return np.asarray(img.resize((width, height), Image.BILINEAR))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("spec")
    ap.add_argument("--maps", action="store_true", help="print the voted response maps")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    spec = json.load(open(args.spec))
    feats = np.fromfile(spec["embeddings"], dtype="<f4").reshape(-1, spec["dim"]).astype(np.float64)
    rows, cols = spec["rows"], spec["cols"]
    if feats.shape[0] != rows * cols:
        sys.exit(f"{feats.shape[0]} embeddings for a {rows}x{cols} grid")
    spread = max(1, spec["patch"] // spec["stride"])
    times = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        maps = voted_responses(feats, rows, cols, spread)
        t1 = time.perf_counter()
        gh, gw = maps.shape[0], maps.shape[1]
        ms = mean_shift(maps.reshape((-1, gh * gw)), (gh, gw), 10, 5)
        t2 = time.perf_counter()
        nc = normalized_cut(maps)
        t3 = time.perf_counter()
        resize(ms, spec["width"], spec["height"])
        resize(nc.astype(np.float32), spec["width"], spec["height"])
        score = float(maps.mean())
        t4 = time.perf_counter()
        times.append({"vote": t1 - t0, "mean_shift": t2 - t1, "ncut": t3 - t2,
                      "resize_score": t4 - t3, "total": t4 - t0})
    out = {"times": times, "score": score, "cells": [gh, gw]}
    if args.maps:
        out["pred_maps"] = maps.reshape(-1).tolist()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
