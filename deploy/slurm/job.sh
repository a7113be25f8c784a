# The body of the batch scripts (sourced by train.sbatch and train-hetjob.sbatch): starts
# the coordinator and one `worker join` per node as job steps, waits for the job, and
# handles the end:
#   - finished: the coordinator exits 0 once the job (and its evaluations) are done;
#   - USR1 (sent ahead of the time limit by `--signal=B:USR1@SECONDS`) or TERM
#     (preemption): the workers checkpoint and leave, the coordinator exits leaving the job
#     resumable in its database, and the batch job is requeued; the next run continues
#     from the newest registered checkpoint;
#   - a worker fails (a node died, a bad config): `--kill-on-bad-exit` ends the workers'
#     step at once, the failing node is named, the coordinator exits, the batch job fails
#     (not requeued: the cause needs fixing first; resubmitting with the same JOB_DIR
#     continues the job).
#
# Settings (environment at submission; sbatch passes it on):
#   JOB_CONFIG        the training config (TOML) on storage every node reads (required)
#   JOB_DIR           the coordinator's folder on shared storage: database, tokens, logs;
#                     keep it across requeues and resubmissions of one job
#                     (default: $EXIFLANG_ROOT/work/slurm/$SLURM_JOB_NAME)
#   EXIFLANG_ROOT     the project checkout (default: the submission folder)
#   BIN_DIR           where `coordinator` and `worker` are (default: $EXIFLANG_ROOT/target/release)
#   COORDINATOR_PORT  the coordinator's port on its node (default 50051)
#   HEALTH_PORT       also serve grpc.health.v1 there (default: none)
#   METRICS_PORT      serve the dashboard and Prometheus /metrics there (default 9464;
#                     empty: not served)
#   PROCS_PER_NODE    training processes per node: a number or auto (one per GPU; default auto)
#   EVAL_AGENTS       evaluation agents to run beside the coordinator (default 0)
#   HEARTBEAT_TIMEOUT_MS  silence after which a node is declared dead (default 30000)
#   COORDINATOR_ARGS, WORKER_ARGS  more arguments for `coordinator launch` / `worker join`

set -uo pipefail

log() { printf '[exiflang %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 2; }

: "${SLURM_JOB_ID:?run this through sbatch}"
: "${JOB_CONFIG:?set JOB_CONFIG to the training config (TOML) every node can read}"
EXIFLANG_ROOT=${EXIFLANG_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}
BIN_DIR=${BIN_DIR:-$EXIFLANG_ROOT/target/release}
JOB_DIR=${JOB_DIR:-$EXIFLANG_ROOT/work/slurm/${SLURM_JOB_NAME:-exiflang}}
COORDINATOR_PORT=${COORDINATOR_PORT:-50051}
PROCS_PER_NODE=${PROCS_PER_NODE:-auto}
EVAL_AGENTS=${EVAL_AGENTS:-0}
HEARTBEAT_TIMEOUT_MS=${HEARTBEAT_TIMEOUT_MS:-30000}
SLURM_DIR=$EXIFLANG_ROOT/deploy/slurm
for bin in coordinator worker; do
  [[ -x $BIN_DIR/$bin ]] || die "$BIN_DIR/$bin not found: build it (cargo build --release -p $bin) or set BIN_DIR"
done
[[ -f $JOB_CONFIG ]] || die "JOB_CONFIG $JOB_CONFIG does not exist"
mkdir -p "$JOB_DIR" || die "cannot create JOB_DIR $JOB_DIR"

# The tokens, one per role, made once per job folder (0600 in a 0700 folder): nodes get
# only node.token, evaluation agents only agent.token; operator.token is for
# `coordinator status`/`stop` (COORDINATOR_TOKEN=$(cat $JOB_DIR/tokens/operator.token)).
TOKENS_DIR=$JOB_DIR/tokens
(umask 077 && mkdir -p "$TOKENS_DIR") || die "cannot create $TOKENS_DIR"
for role in node agent operator; do
  if [[ ! -s $TOKENS_DIR/$role.token ]]; then
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$TOKENS_DIR/$role.token") \
      || die "cannot write the token $TOKENS_DIR/$role.token"
  fi
done
NODE_TOKEN_FILE=$TOKENS_DIR/node.token

# A node's address as Slurm knows it (NodeAddr; names need not resolve).
node_addr() { scontrol show node "$1" -o | sed -n 's/.*NodeAddr=\([^ ]*\).*/\1/p'; }

# The id of this job's step named $1 (steps are named so they can be signalled); the steps
# of a heterogeneous job's components are listed under each component's own job id.
step_id() {
  local ids=$SLURM_JOB_ID var
  for var in ${!SLURM_JOB_ID_HET_GROUP_@}; do ids+=",${!var}"; done
  squeue -h -s -j "$ids" -o '%i %j' | awk -v n="$1" '$2 == n { print $1; exit }'
}

# Signals a step's tasks (and their children) without cancelling the step.
signal_step() {
  local id
  id=$(step_id "$1")
  [[ -n $id ]] && scancel --signal="$2" "$id" 2>/dev/null
}

# run_job COORDINATOR_NODE WORKER_NODES [SRUN_ARGS_FOR_COORDINATOR...] -- [SRUN_ARGS_FOR_WORKERS...]
run_job() {
  local coord_node=$1 nodes=$2
  shift 2
  local coord_srun=() worker_srun=()
  while [[ $# -gt 0 && $1 != -- ]]; do coord_srun+=("$1"); shift; done
  [[ ${1:-} == -- ]] && shift
  worker_srun=("$@")

  local addr
  addr=$(node_addr "$coord_node")
  [[ -n $addr ]] || die "no address for node $coord_node (scontrol show node $coord_node)"
  export COORDINATOR_URL=http://$addr:$COORDINATOR_PORT
  export NODE_TOKEN_FILE JOB_CONFIG BIN_DIR PROCS_PER_NODE
  log "job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}): coordinator on $coord_node at $COORDINATOR_URL, $nodes worker node(s), folder $JOB_DIR"

  COORD_PID='' WORKERS_PID=''
  trap on_signal USR1 TERM
  local launch=("$BIN_DIR/coordinator" launch --nodes "$nodes" --config "$JOB_CONFIG"
    --work-dir "$JOB_DIR" --listen "0.0.0.0:$COORDINATOR_PORT" --tokens-dir "$TOKENS_DIR"
    --heartbeat-timeout-ms "$HEARTBEAT_TIMEOUT_MS" --on-signal suspend --suspend-grace-s 120)
  [[ -n ${HEALTH_PORT:-} ]] && launch+=(--health-listen "0.0.0.0:$HEALTH_PORT")
  if [[ -n ${METRICS_PORT-9464} ]]; then
    launch+=(--metrics-listen "0.0.0.0:${METRICS_PORT-9464}")
    log "dashboard: http://$addr:${METRICS_PORT-9464}/ (sign in with $TOKENS_DIR/operator.token); Prometheus: http://$addr:${METRICS_PORT-9464}/metrics (Authorization: Bearer, any of the job's tokens)"
  fi
  [[ $EVAL_AGENTS -gt 0 ]] && launch+=(--wait-for-evals)
  # shellcheck disable=SC2206
  launch+=(${COORDINATOR_ARGS:-})
  srun "${coord_srun[@]}" -J exiflang-coordinator --nodes=1 --ntasks=1 --nodelist="$coord_node" \
    --overlap "${launch[@]}" &
  COORD_PID=$!

  if [[ $EVAL_AGENTS -gt 0 ]]; then
    srun "${coord_srun[@]}" -J exiflang-eval --nodes=1 --ntasks="$EVAL_AGENTS" --nodelist="$coord_node" \
      --overlap "$BIN_DIR/worker" eval agent --coordinator "$COORDINATOR_URL" --config "$JOB_CONFIG" \
      --token-file "$TOKENS_DIR/agent.token" --until-over --wait-for-coordinator-s 300 &
  fi

  srun "${worker_srun[@]}" -J exiflang-workers --nodes="$nodes" --ntasks-per-node=1 \
    --kill-on-bad-exit=1 --label --overlap "$SLURM_DIR/node.sh" &
  WORKERS_PID=$!

  local ended rc
  wait -n -p ended "$COORD_PID" "$WORKERS_PID"
  rc=$?
  if [[ ${ended:-} == "$WORKERS_PID" && $rc -ne 0 ]]; then
    log "the workers' step failed (exit $rc; the failing node is named above): stopping the coordinator"
    signal_step exiflang-coordinator TERM
    wait "$COORD_PID"
    log "job $SLURM_JOB_ID failed; the job is left resumable in $JOB_DIR: fix the cause, then resubmit with the same JOB_DIR"
    exit 1
  fi
  if [[ ${ended:-} == "$COORD_PID" && $rc -ne 0 ]]; then
    log "the coordinator failed (exit $rc): stopping the workers"
    signal_step exiflang-workers TERM
    wait "$WORKERS_PID"
    exit 1
  fi
  # One ended well: the job is over; wait for the other.
  wait "$COORD_PID"; rc=$?
  wait "$WORKERS_PID"
  wait
  log "job $SLURM_JOB_ID ended (coordinator exit $rc)"
  exit "$rc"
}

# USR1 ahead of the time limit, or TERM on preemption: workers checkpoint and leave first,
# then the coordinator suspends the job, then the batch job goes back to the queue.
on_signal() {
  trap '' USR1 TERM
  log "signal received: workers checkpoint and leave, then the job is requeued"
  if [[ -n $WORKERS_PID ]]; then
    signal_step exiflang-workers TERM
    wait "$WORKERS_PID"
  fi
  if [[ -n $COORD_PID ]]; then
    signal_step exiflang-coordinator TERM
    wait "$COORD_PID"
  fi
  signal_step exiflang-eval TERM
  wait
  log "requeueing job $SLURM_JOB_ID; it continues from its newest checkpoint"
  scontrol requeue "$SLURM_JOB_ID" || log "scontrol requeue failed: resubmit with the same JOB_DIR to continue"
  exit 0
}
