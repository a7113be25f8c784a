#!/usr/bin/env python3
"""Reads a TensorBoard folder with the `tensorboard` package's own readers (real clients of
the event file format):
  - EventAccumulator, what TensorBoard's scalar dashboard shows: every scalar series with
    its (step, value) points;
  - EventFileLoader, file by file: the steps of every summary event each file holds (to
    see that no step was written twice).

Prints one JSON line: {"scalars": {tag: [[step, value], ...]}, "files": {name: [steps]}}.

Usage: read_tensorboard.py FOLDER
"""

import json
import os
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader


def main():
    folder = sys.argv[1]
    acc = EventAccumulator(folder, size_guidance={"scalars": 0})
    acc.Reload()
    scalars = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    files = {}
    for name in sorted(os.listdir(folder)):
        if "tfevents" not in name:
            continue
        steps = []
        for event in EventFileLoader(os.path.join(folder, name)).Load():
            if event.HasField("summary"):
                steps.append(event.step)
        files[name] = steps
    print(json.dumps({"scalars": scalars, "files": files}))


if __name__ == "__main__":
    main()
