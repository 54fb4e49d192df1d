#!/usr/bin/env bash
# Installs the Debian packages Cadenza needs, when missing. Needs root; without it, says
# what to install and carries on (the tests that need a package say so when it is absent).
set -euo pipefail
# fluidsynth renders the demo catalogue; TimGM6mb is a small General MIDI soundfont.
# prometheus (with promtool) backs the metrics, dashboard and alert-rule tests.
packages=(fluidsynth timgm6mb-soundfont prometheus)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: not root; please install: ${missing[*]}" >&2
  exit 0
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
