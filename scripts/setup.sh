#!/usr/bin/env bash
# Sets up a fresh machine for hf-fma: FFmpeg (transformers' audio pipeline decodes file paths with it),
# a virtual environment in .venv, the CPU build of torch, and the package with its test extra.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v ffmpeg >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq ffmpeg >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# torch first: a bare `torch` requirement would otherwise pull a multi-GB CUDA build.
.venv/bin/pip install -q "torch==${HF_FMA_TORCH_VERSION:-2.13.0}"
.venv/bin/pip install -q -e ".[test]"
