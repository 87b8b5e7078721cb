#!/usr/bin/env bash
# CI: the lower bounds of pyproject.toml's dependencies are versions the tests pass with. Installs exactly
# those versions (every `name>=X` pinned to `name==X`) in a fresh virtual environment and runs the tests
# of what they serve: the builder and load_fma (datasets, pyarrow), training and the Trainer
# (transformers, accelerate, torch), cards and the hub (huggingface_hub, jinja2, safetensors), the CLI.
#
#   bash scripts/check_lower_bounds.sh [VENV]      # default: a temporary folder, removed afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
venv=${1:-}
if [ -z "$venv" ]; then
  venv=$(mktemp -d "${TMPDIR:-/tmp}/hf-fma-lower-bounds.XXXXXX")
  trap 'rm -rf "$venv"' EXIT
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" - "$repo/pyproject.toml" > "$venv/lower-bounds.txt" <<'EOF'
import re, sys, tomllib
for requirement in tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]:
    name, lower = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?>=([0-9.]+)", requirement).groups()
    print(f"{name}=={lower}")
EOF
cat "$venv/lower-bounds.txt"
# torch first, from its constraint: a bare `torch` requirement would otherwise pull a multi-GB CUDA build.
"$venv/bin/python" -m pip install -q -c "$venv/lower-bounds.txt" torch
"$venv/bin/python" -m pip install -q -c "$venv/lower-bounds.txt" "$repo[test]"
"$venv/bin/python" -m pytest -q -x tests/test_install.py tests/test_dataset.py tests/test_training.py tests/test_hub.py tests/test_cards.py tests/test_cli.py
