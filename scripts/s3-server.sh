#!/usr/bin/env bash
# Runs a local S3-compatible server (moto, from .venv; see scripts/setup.sh) with one bucket,
# for trying the pipeline against s3:// URLs by hand. The integration tests start their own.
#
#   scripts/s3-server.sh [BUCKET] [PORT]      (defaults: datasets, a free port)
#
# Prints the environment to use (AWS_ENDPOINT_URL and test credentials), then serves until
# Ctrl-C or SIGTERM, and stops the server on the way out.
set -euo pipefail
cd "$(dirname "$0")/.."

bucket=${1:-datasets}
port=${2:-0}
py=.venv/bin/python
[[ -x $py ]] || { echo "s3-server.sh: $py missing: run scripts/setup.sh first" >&2; exit 1; }

log=$(mktemp)
"$py" -m moto.server -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -f "$log"' EXIT INT TERM

endpoint=
for _ in $(seq 1 300); do
  endpoint=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$log" | head -n1 || true)
  [[ -n $endpoint ]] && break
  kill -0 "$server" 2>/dev/null || { cat "$log" >&2; echo "s3-server.sh: moto exited" >&2; exit 1; }
  sleep 0.1
done
[[ -n $endpoint ]] || { echo "s3-server.sh: moto did not start within 30 s" >&2; exit 1; }

"$py" - "$endpoint/$bucket" <<'EOF'
import sys, time, urllib.request
for attempt in range(50):
    try:
        urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="PUT"))
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit(f"cannot create bucket at {sys.argv[1]}")
EOF

cat <<EOF
S3 server at $endpoint with bucket '$bucket'. Use:
  export AWS_ENDPOINT_URL=$endpoint AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
  dataloader pack PHOTOS --out s3://$bucket/my-dataset
Ctrl-C stops it.
EOF
wait "$server"
