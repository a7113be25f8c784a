#!/usr/bin/env bash
# A real Slurm (slurmctld + one slurmd per emulated node, with its own munge daemon) on
# this one machine, for testing the batch scripts. Every node runs on 127.0.0.1 with its
# own port; names do not resolve, so nodes are reached by their NodeAddr.
#
#   emulated-cluster.sh start DIR NODES [CPUS_PER_NODE]   prints `export SLURM_CONF=...`
#   emulated-cluster.sh stop DIR
#
# Needs Debian's slurm-wlm and munge (scripts/setup-cluster-tools.sh) and root (the
# daemons run as root). Everything it writes is under DIR.
set -euo pipefail

die() { echo "emulated-cluster.sh: $*" >&2; exit 1; }
# N distinct free ports: every socket is held until all are bound, so none comes twice
# (ports picked one at a time may, and a slurmd on slurmctld's port never comes up).
free_ports() {
  python3 -c 'import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

stop() {
  local dir=$1
  for pidfile in "$dir"/run/*.pid; do
    [[ -f $pidfile ]] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  # slurmd and slurmctld remove their pid files on the way out; wait for them.
  for _ in $(seq 1 50); do
    local alive=0
    for pidfile in "$dir"/run/*.pid; do
      [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null && alive=1
    done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
}

start() {
  local dir=$1 nodes=$2 cpus=${3:-1}
  for cmd in slurmctld slurmd munged sinfo; do
    command -v "$cmd" >/dev/null || die "$cmd not found: run scripts/setup-cluster-tools.sh (Debian packages slurm-wlm and munge)"
  done
  [[ $(id -u) == 0 ]] || die "the Slurm daemons of an emulated cluster run as root"
  mkdir -p "$dir"/{run,log,state,spool,munge}
  dir=$(cd "$dir" && pwd)
  chmod 700 "$dir/munge"
  head -c 1024 /dev/urandom > "$dir/munge/munge.key"
  chmod 600 "$dir/munge/munge.key"
  munged --force --num-threads=4 --socket="$dir/munge/munge.sock" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed"

  local ports node_list="" i
  read -r -a ports <<<"$(free_ports $((nodes + 2)))"
  {
    echo "ClusterName=emulated"
    echo "SlurmctldHost=localhost(127.0.0.1)"
    echo "SlurmctldPort=${ports[0]}"
    echo "SlurmdPort=${ports[1]}"
    echo "SlurmUser=root"
    echo "SlurmdUser=root"
    echo "AuthType=auth/munge"
    echo "AuthInfo=socket=$dir/munge/munge.sock"
    echo "CredType=cred/munge"
    echo "StateSaveLocation=$dir/state"
    echo "SlurmdSpoolDir=$dir/spool/%n"
    echo "SlurmctldPidFile=$dir/run/slurmctld.pid"
    echo "SlurmdPidFile=$dir/run/slurmd-%n.pid"
    echo "SlurmctldLogFile=$dir/log/slurmctld.log"
    echo "SlurmdLogFile=$dir/log/slurmd-%n.log"
    echo "ProctrackType=proctrack/linuxproc"
    echo "TaskPlugin=task/none"
    echo "SchedulerType=sched/backfill"
    # Heterogeneous jobs are placed by the backfill scheduler: every second, not every 30.
    echo "SchedulerParameters=bf_interval=1"
    echo "SelectType=select/cons_tres"
    echo "ReturnToService=2"
    echo "MpiDefault=none"
    echo "JobRequeue=1"
    echo "KillWait=10"
    for i in $(seq 1 "$nodes"); do
      echo "NodeName=n$i NodeHostname=localhost NodeAddr=127.0.0.1 Port=${ports[$((i + 1))]} CPUs=$cpus RealMemory=1000"
      node_list+="${node_list:+,}n$i"
    done
    echo "PartitionName=debug Nodes=$node_list Default=YES MaxTime=INFINITE State=UP"
  } > "$dir/slurm.conf"
  export SLURM_CONF=$dir/slurm.conf
  slurmctld
  for i in $(seq 1 "$nodes"); do
    mkdir -p "$dir/spool/n$i"
    slurmd -N "n$i"
  done
  for _ in $(seq 1 100); do
    if [[ $(sinfo -h -N -t idle -o '%N' 2>/dev/null | sort -u | wc -l) == "$nodes" ]]; then
      echo "export SLURM_CONF=$SLURM_CONF"
      return 0
    fi
    sleep 0.1
  done
  sinfo -N >&2 || true
  tail -n 20 "$dir"/log/*.log >&2 || true
  die "the $nodes nodes did not come up within 10 s (logs above, in $dir/log)"
}

case ${1:-} in
  start) [[ $# -ge 3 ]] || die "usage: $0 start DIR NODES [CPUS_PER_NODE]"; start "$2" "$3" "${4:-1}" ;;
  stop) [[ $# -ge 2 ]] || die "usage: $0 stop DIR"; stop "$2" ;;
  *) die "usage: $0 start DIR NODES [CPUS_PER_NODE] | stop DIR" ;;
esac
