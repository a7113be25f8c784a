#!/usr/bin/env bash
# One node's worker, started by srun on each node of the job (see job.sh): `worker join`
# with the node's address for the collective; names this node when it fails.
set -uo pipefail
host=$(scontrol show node "$SLURMD_NODENAME" -o | sed -n 's/.*NodeAddr=\([^ ]*\).*/\1/p')
# shellcheck disable=SC2086
"$BIN_DIR/worker" join --coordinator "$COORDINATOR_URL" --config "$JOB_CONFIG" \
  --token-file "$NODE_TOKEN_FILE" --procs "$PROCS_PER_NODE" --host "${host:-$(hostname)}" \
  --wait-for-coordinator-s 300 ${WORKER_ARGS:-} &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT
rc=0
while kill -0 "$child" 2>/dev/null; do
  wait "$child"
  rc=$?
done
# 75: the node left on a signal after its processes checkpointed (a requeue follows).
if [[ $rc -ne 0 && $rc -ne 75 ]]; then
  echo "[exiflang] node $SLURMD_NODENAME (SLURM_NODEID $SLURM_NODEID, address ${host:-?}) failed: worker join exited with $rc" >&2
fi
exit "$rc"
