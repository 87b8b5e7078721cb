#!/usr/bin/env bash
# Sets up a fresh machine for hf-fma: FFmpeg (transformers' audio pipeline decodes file paths with it;
# torchcodec, which datasets >= 4 decodes audio with, needs its shared libraries), a virtual environment,
# the CPU build of torch, and the package with its test extra.
#
#   bash scripts/setup.sh                     # .venv: datasets 3.6 (runs the loading script by name too)
#   bash scripts/setup.sh --newest-datasets   # .venv-datasets5: datasets 5.2 and torchcodec, the newest stack
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
datasets_requirement="datasets[audio]>=3.6,<4"
if [ "${1:-}" = "--newest-datasets" ]; then
  venv=.venv-datasets5
  # torchcodec is built against one torch: 0.13.0 is the CPU build for torch 2.13 (later ones on PyPI are
  # CUDA builds that fail to load without the CUDA libraries, e.g. 0.17 wants libnvrtc.so.13).
  datasets_requirement="datasets[audio]==${HF_FMA_DATASETS_VERSION:-5.2.0} torchcodec==${HF_FMA_TORCHCODEC_VERSION:-0.13.0}"
elif [ -n "${1:-}" ]; then
  echo "usage: bash scripts/setup.sh [--newest-datasets]" >&2
  exit 2
fi
if ! command -v ffmpeg >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq ffmpeg >/dev/null
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
# torch first: a bare `torch` requirement would otherwise pull a multi-GB CUDA build.
"$venv/bin/python" -m pip install -q "torch==${HF_FMA_TORCH_VERSION:-2.13.0}"
# shellcheck disable=SC2086  # datasets_requirement holds one or two requirements
"$venv/bin/python" -m pip install -q -e ".[test]" $datasets_requirement
