#!/usr/bin/env bash
# CI: what a user gets from a plain `pip install .` on a CPU machine. In a fresh virtual environment: the
# CPU torch, then the package alone (pip takes the newest datasets and torchcodec, whatever build that
# torchcodec is), then, from another folder and a fresh HF cache, the demo the README gives pip users:
# make-demo, train, predict. Fails when any step fails.
#
#   bash scripts/check_plain_install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=$(mktemp -d "${TMPDIR:-/tmp}/hf-fma-plain-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip
# torch first, as README says for a CPU machine: a bare `torch` requirement would pull a multi-GB CUDA build.
"$work/venv/bin/python" -m pip install -q "torch==${HF_FMA_TORCH_VERSION:-2.13.0}"
"$work/venv/bin/python" -m pip install -q "$repo"
cd "$work"
export PATH="$work/venv/bin:$PATH" HF_HOME="$work/hf" HF_HUB_OFFLINE=1
set -x
hf-fma env
hf-fma make-demo d
hf-fma train ast_demo --data_dir d
hf-fma predict runs/ast-demo d/examples
