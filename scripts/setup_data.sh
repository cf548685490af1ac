#!/usr/bin/env bash
# Install what building the real-sound data sets needs (Debian packages; run as root or through sudo):
#   tokenlm data music     FluidSynth + the FluidR3_GM SoundFont (120 MB; the train set's timbres) + TimGM6mb (5 MB;
#                          the held-out timbres); music21, pyfluidsynth and mido come with `pip install 'tokenlm[data]'`
#   tokenlm data speech    espeak-ng
#   tokenlm data recorded  Hydrogen drum kits (143 MB), LMMS samples, the freedesktop sound theme; the Asterisk prompts
#                          (a real voice) validate the speech detector
# The quick start needs none of this. `--minimal` installs only what the test suite needs (what .ci/run installs).
set -euo pipefail
cd "$(dirname "$0")/.."
MINIMAL=(fluidsynth libfluidsynth3 timgm6mb-soundfont espeak-ng sound-theme-freedesktop lmms-common
         asterisk-core-sounds-en-wav)
FULL=("${MINIMAL[@]}" fluid-soundfont-gm hydrogen-drumkits)
if [ "${1:-}" = "--minimal" ]; then PACKAGES=("${MINIMAL[@]}"); else PACKAGES=("${FULL[@]}"); fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log=$(mktemp)
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
         --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    tail -20 "$log" >&2; echo "setup_data.sh: installing ${missing[*]} failed" >&2; exit 1
  fi
  rm -f "$log"
fi
if [ -x .venv/bin/pip ]; then
  .venv/bin/python -c "import music21, fluidsynth, mido" 2>/dev/null || .venv/bin/pip install -q -e '.[data]'
fi
echo "setup_data.sh: ${PACKAGES[*]} installed"
