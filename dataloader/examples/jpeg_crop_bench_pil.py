"""Crops per second on one core with PIL: open the JPEG from memory, take a random
124x124 crop (which decodes the whole image with libjpeg-turbo), convert to RGB.

Usage: python jpeg_crop_bench_pil.py FILE.jpg [SECONDS_PER_RUN] [RUNS]
Prints the median of RUNS timed runs, like the Rust example `jpeg_crop_bench`.
"""

import io
import random
import statistics
import sys
import time

from PIL import Image


def rate(data: bytes, w: int, h: int, secs: float, rng: random.Random) -> float:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < secs or n < 3:
        x, y = rng.randrange(w - 123), rng.randrange(h - 123)
        with Image.open(io.BytesIO(data)) as im:
            im.crop((x, y, x + 124, y + 124)).convert("RGB").tobytes()
        n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    path = sys.argv[1]
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    data = open(path, "rb").read()
    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
    rng = random.Random(1)
    rates = [rate(data, w, h, secs, rng) for _ in range(runs)]
    runs_text = ", ".join(f"{r:.1f}" for r in rates)
    print(f"  {'PIL open + crop':32} {statistics.median(rates):9.1f} crops/s  (runs: {runs_text})")


if __name__ == "__main__":
    main()
