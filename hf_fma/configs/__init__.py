"""The configs shipped in the package: training configs (`ast_demo.yaml`, ...) and accelerate's
(`accelerate/cpu.yaml`, ...), so that a pip install trains without a clone of the repository.

    hf-fma train ast_demo --data_dir demo_data
    accelerate launch --config_file "$(hf-fma configs accelerate/cpu)" -m hf_fma.train ast_demo --data_dir demo_data
"""

from __future__ import annotations

import os
from pathlib import Path

CONFIGS_DIR = Path(__file__).resolve().parent


def shipped_configs() -> dict[str, Path]:
    """Every shipped config by name: training configs (`ast_demo`) and accelerate's (`accelerate/cpu`)."""
    return {
        path.relative_to(CONFIGS_DIR).with_suffix("").as_posix(): path for path in sorted(CONFIGS_DIR.rglob("*.yaml"))
    }


def training_configs() -> dict[str, Path]:
    """The shipped training configs by name: {"ast_demo": .../hf_fma/configs/ast_demo.yaml, ...}."""
    return {path.stem: path for path in sorted(CONFIGS_DIR.glob("*.yaml"))}


def config_file(name_or_path: str | os.PathLike) -> Path:
    """A training config file: the path given, or else the shipped config of that name (`ast_demo`); a
    file of that path in the working directory wins."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = training_configs()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    raise FileNotFoundError(
        f"config file {path} does not exist, and it is not the name of a shipped config ({', '.join(shipped)})"
    )


__all__ = ["CONFIGS_DIR", "config_file", "shipped_configs", "training_configs"]
