"""Shared test set-up: no network, throw-away caches, fixed seeds, and the offline FMA fixtures.

The environment is set at import time, before any test module imports `datasets` or `transformers`,
because both read their cache locations and offline flags when first imported.
"""

import csv
import io
import os
import random
import tempfile
from pathlib import Path

_CACHE_ROOT = Path(tempfile.mkdtemp(prefix="hf-fma-tests-"))
os.environ.update(
    HF_HUB_OFFLINE="1",
    HF_DATASETS_OFFLINE="1",
    HF_HOME=str(_CACHE_ROOT / "hf"),
    HF_DATASETS_CACHE=str(_CACHE_ROOT / "datasets"),
    HF_MODULES_CACHE=str(_CACHE_ROOT / "modules"),
    TOKENIZERS_PARALLELISM="false",
    WANDB_DISABLED="true",
)
# A user's token must never be read, let alone used, by the tests.
os.environ.pop("HF_TOKEN", None)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
# Real FMA files vendored in the repository (tests/data/README.md gives their source and licences).
FMA_SAMPLE = Path(__file__).resolve().parent / "data" / "fma-sample"


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency; keeps metadata tests importable
        return
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def fma_sample() -> Path:
    """Real FMA files in the official layout: tracks.csv records, genres.csv and a 10 s excerpt of track 2."""
    return FMA_SAMPLE


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """The offline demo FMA (`hf-fma make-demo`): official archive layout, synthesized genres."""
    from hf_fma.demo import make_demo

    return make_demo(tmp_path_factory.mktemp("fma-demo"))


def with_cell(tracks_csv: Path, destination: Path, track_id: int, column: tuple[str, str], value: str) -> Path:
    """tracks.csv with one cell changed, written as pandas writes it (QUOTE_MINIMAL, `\\n` line ends)."""
    rows = list(csv.reader(io.StringIO(tracks_csv.read_text(encoding="utf-8"))))
    index = next(i for i, (group, name) in enumerate(zip(rows[0], rows[1])) if (group, name) == column)
    next(row for row in rows[3:] if row[0] == str(track_id))[index] = value
    with open(destination, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return destination
