#!/usr/bin/env python3
"""The training read path written the way the reference Python code does it, on one core.

Reads the shards of a packed dataset (a local folder with manifest.json; `.tar` directly,
`.tar.zst` through `zstandard`), and for every sample: PIL `Image.open` + a random 124x124
crop at full resolution (PIL decodes the whole photo) + `numpy` array; renders the EXIF text
(`Name: value` joined by a space, in the manifest's tag order: the paper's format, which
the Rust stream uses by default); tokenises each batch with the bert-base-uncased WordPiece tokenizer of HF
`tokenizers`, padded to 512 tokens as the reference does; stacks the batch.

It times each stage and prints one JSON object:
  patches_per_s         with padding to 512 (the reference's behaviour)
  patches_per_s_longest the same path with padding to the longest text of the batch
and the per-stage seconds. It pins itself to one CPU and turns off the tokenizer's thread
pool, so the figure is per core.

Usage: bench_reference.py DATASET_DIR --vocab VOCAB [--batch-size 32] [--batches N]
       [--seed 0] [--patch 124] [--cpu 0]
"""

import argparse
import io
import json
import os
import random
import sys
import tarfile
import time

os.environ["TOKENIZERS_PARALLELISM"] = "false"

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from tokenizers import BertWordPieceTokenizer  # noqa: E402


def samples_of_shard(path):
    """Yields (key, jpeg bytes, tags dict) of each sample of a shard, in order."""
    if path.endswith(".zst"):
        try:
            import zstandard
        except ImportError:
            sys.exit(f"{path} is zstd-compressed and the zstandard module is missing: "
                     "pip install zstandard, or pack the dataset without compression")
        raw = open(path, "rb")
        stream = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    else:
        stream = open(path, "rb")
    current, parts = None, {}
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if not member.isfile():
                continue
            key, _, ext = member.name.partition(".")
            if key != current:
                if current is not None and "jpg" in parts:
                    yield current, parts["jpg"], json.loads(parts.get("exif.json", b"{}"))
                current, parts = key, {}
            parts[ext] = tar.extractfile(member).read()
    if current is not None and "jpg" in parts:
        yield current, parts["jpg"], json.loads(parts.get("exif.json", b"{}"))


PRIVATE_EXACT = {"artist", "copyright", "camera owner name", "owner name", "user comment",
                 "unique image id", "windows xp author", "windows xp title",
                 "windows xp comment", "windows xp keywords", "windows xp subject"}


def is_private(name):
    n = name.lower()
    return (n.startswith("gps") or "serial" in n or "makernote" in n or "maker note" in n
            or n in PRIVATE_EXACT
            or ("thumbnail" in n and ("offset" in n or "length" in n or "data" in n)))


def render_text(tags, tag_list):
    """The paper's format, as `exif::render_text` writes it by default: `Name: value` for
    the listed tags present with a value, in the list's order, joined by a space."""
    return " ".join(f"{n}: {tags[n]}" for n in tag_list
                    if tags.get(n, "").strip() and not is_private(n))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset")
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=0, help="stop after N batches (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--patch", type=int, default=124)
    ap.add_argument("--cpu", type=int, default=0, help="CPU to pin to")
    args = ap.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    manifest = json.load(open(os.path.join(args.dataset, "manifest.json")))
    tag_list = manifest.get("tags", [])
    tok = BertWordPieceTokenizer(args.vocab, lowercase=True)
    tok.enable_truncation(512)
    tok_fixed = BertWordPieceTokenizer(args.vocab, lowercase=True)
    tok_fixed.enable_truncation(512)
    tok_fixed.enable_padding(length=512)
    tok.enable_padding()  # to the longest of the batch
    rng = random.Random(args.seed)
    p = args.patch

    t = dict(read=0.0, decode=0.0, tokenize_512=0.0, tokenize_longest=0.0, batch=0.0)
    n_samples = n_batches = skipped = 0
    pixels_decoded = 0
    crops, texts = [], []
    cpu0 = time.process_time()

    def flush():
        nonlocal n_batches, crops, texts
        t0 = time.perf_counter()
        enc = tok_fixed.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        t1 = time.perf_counter()
        enc_l = tok.encode_batch(texts)
        ids_l = np.array([e.ids for e in enc_l], dtype=np.int64)
        t2 = time.perf_counter()
        batch = np.stack(crops)
        t3 = time.perf_counter()
        t["tokenize_512"] += t1 - t0
        t["tokenize_longest"] += t2 - t1
        t["batch"] += t3 - t2
        assert batch.shape == (len(crops), p, p, 3) and ids.shape[1] == 512 and mask.shape == ids.shape
        assert ids_l.shape[0] == len(crops)
        n_batches += 1
        crops, texts = [], []

    done = False
    for shard in manifest["shards"]:
        path = os.path.join(args.dataset, shard["name"])
        it = samples_of_shard(path)
        while True:
            t0 = time.perf_counter()
            try:
                key, jpeg, tags = next(it)
            except StopIteration:
                t["read"] += time.perf_counter() - t0
                break
            t1 = time.perf_counter()
            img = Image.open(io.BytesIO(jpeg)).convert("RGB")
            w, h = img.size
            if w < p or h < p:
                skipped += 1
                t["decode"] += time.perf_counter() - t1
                continue
            x, y = rng.randint(0, w - p), rng.randint(0, h - p)
            crop = np.asarray(img.crop((x, y, x + p, y + p)))
            t2 = time.perf_counter()
            t["read"] += t1 - t0
            t["decode"] += t2 - t1
            pixels_decoded += w * h
            crops.append(crop)
            texts.append(render_text(tags, tag_list))
            n_samples += 1
            if len(crops) == args.batch_size:
                flush()
                if args.batches and n_batches >= args.batches:
                    done = True
                    break
        if done:
            break
    if crops and not done:
        flush()

    cpu = time.process_time() - cpu0
    common = t["read"] + t["decode"] + t["batch"]
    out = {
        "samples": n_samples,
        "batches": n_batches,
        "skipped": skipped,
        "mean_megapixels": pixels_decoded / max(n_samples, 1) / 1e6,
        "seconds": {k: round(v, 4) for k, v in t.items()},
        "cpu_seconds": round(cpu, 3),
        "patches_per_s": n_samples / (common + t["tokenize_512"]) if n_samples else 0.0,
        "patches_per_s_longest": n_samples / (common + t["tokenize_longest"]) if n_samples else 0.0,
    }
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
