#!/usr/bin/env python3
"""Scrapes the coordinator's /metrics like Prometheus does and parses the answer with the
`prometheus_client` package's own OpenMetrics parser (a real client of the format).

Prints one JSON line: {"status": HTTP status, "content_type": ..., "families": [{"name",
"type", "unit", "samples": [[sample name, {labels}, value], ...]}]} (families empty when the
status is not 200).

Usage: scrape_metrics.py URL [TOKEN]   (no TOKEN: no Authorization header)
"""

import json
import sys
import urllib.error
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def main():
    url = sys.argv[1]
    token = sys.argv[2] if len(sys.argv) > 2 else ""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            status, content_type = answer.status, answer.headers.get("Content-Type", "")
            text = answer.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        print(json.dumps({"status": e.code, "content_type": "", "families": []}))
        return
    families = [
        {
            "name": f.name,
            "type": f.type,
            "unit": f.unit,
            "samples": [[s.name, s.labels, s.value] for s in f.samples],
        }
        for f in text_string_to_metric_families(text)
    ]
    print(json.dumps({"status": status, "content_type": content_type, "families": families}))


if __name__ == "__main__":
    main()
