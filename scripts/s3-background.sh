# Sourced by the benchmark scripts: starts scripts/s3-server.sh (moto) with bucket
# $S3_BUCKET in the background, exports the AWS_* variables that point the project's
# commands at it, makes a scratch folder $work, and stops the server and removes $work
# when the calling script exits.
#
#   S3_BUCKET=datasets source scripts/s3-background.sh
work=$(mktemp -d)
s3_log=$work/s3.log
scripts/s3-server.sh "${S3_BUCKET:?}" >"$s3_log" 2>&1 &
s3_server=$!
trap 'kill "$s3_server" 2>/dev/null || true; wait "$s3_server" 2>/dev/null || true; rm -rf "$work"' EXIT INT TERM
for _ in $(seq 1 300); do
  grep -q '^S3 server at' "$s3_log" && break
  kill -0 "$s3_server" 2>/dev/null || { cat "$s3_log" >&2; exit 1; }
  sleep 0.1
done
s3_endpoint=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$s3_log" | head -n1)
[[ -n $s3_endpoint ]] || { cat "$s3_log" >&2; echo "s3-background.sh: the S3 server did not start" >&2; exit 1; }
export AWS_ENDPOINT_URL=$s3_endpoint AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
export RUST_LOG=${RUST_LOG:-warn}
