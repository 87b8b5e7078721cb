"""The FMA dataset on every `datasets` version: `load_fma`, the one entry point of the package's code.

    >>> from hf_fma import load_fma
    >>> ds = load_fma("small", data_dir="/data/fma")          # DatasetDict: train / validation / test
    >>> ds = load_fma("mini", data_dir="/data/fma", streaming=True)   # IterableDatasetDict, no extraction
    >>> test = load_fma("small", data_dir="/data/fma", split="test", min_duration=5.0)  # FmaConfig fields

datasets 4 removed loading scripts (`load_dataset("hf_fma", ..., trust_remote_code=True)` fails there
with "Dataset scripts are no longer supported"), but the builder class itself still works. So
`load_fma` drives `hf_fma.hf_fma.Fma` directly, on datasets 3.6 as on 4.x/5.x: one code path, tested on
both, and the same `DatasetDict`/`IterableDatasetDict` that `load_dataset` returns. On 3.6 the
loading script keeps working by name, for users who prefer it.

The builder runs as `load_dataset` runs it: `download_and_prepare()` then `as_dataset()`, or
`as_streaming_dataset()`. Two differences, both on purpose: the builder class is this package's own
module, not a copy in the modules cache (`BadAudioWarning` is `hf_fma.hf_fma.BadAudioWarning`), and a
relative `data_dir` is read from the working directory, not from the script's folder.

This module imports `datasets` and the builder only: no torch, no transformers.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import datasets

from hf_fma.hf_fma import Fma, _is_demo_archive
from hf_fma.metadata import ARCHIVES

# The builder's source files: their hash names the prepared Arrow cache, as `load_dataset` names it by
# the loading script's hash, so that a changed builder never reads a cache an older one wrote.
_BUILDER_SOURCES = ("hf_fma.py", "metadata.py")
DATASET_CONFIGS = tuple(config.name for config in Fma.BUILDER_CONFIGS)


def _builder_hash() -> str:
    """The builder's sources and datasets' major version: each major version writes feature types the
    others may not read (a cache prepared by datasets 5 fails on 3.6 with "Feature type 'List' not found"),
    and two of them can share one cache (two environments, an upgrade, a downgrade), so each prepares its own."""
    digest = hashlib.sha256()
    for name in _BUILDER_SOURCES:
        digest.update((Path(__file__).parent / name).read_bytes())
    digest.update(f"datasets {datasets.__version__.split('.')[0]}".encode())
    return digest.hexdigest()


def load_fma(
    config_name: str = "small",
    data_dir: str | os.PathLike | None = None,
    split: str | None = None,
    streaming: bool = False,
    cache_dir: str | os.PathLike | None = None,
    download_mode: str | datasets.DownloadMode | None = None,
    num_proc: int | None = None,
    **config_kwargs,
) -> datasets.DatasetDict | datasets.IterableDatasetDict | datasets.Dataset | datasets.IterableDataset:
    """FMA `config_name` (small, medium, large, full, mini) as `load_dataset` would return it.

    Args:
        config_name: the builder config (see `hf_fma.hf_fma.Fma.BUILDER_CONFIGS`).
        data_dir: folder holding the official zips or their extracted folders; relative paths are read
            from the working directory. `None` downloads the official archives (or `mirror_url`'s).
        split: "train", "validation" or "test" for one split; `None` for all three.
        streaming: read the archives as they come, without extracting or preparing anything.
        cache_dir: the `datasets` cache (default: `HF_DATASETS_CACHE`).
        download_mode: e.g. "force_redownload" to prepare again.
        num_proc: processes preparing the split's shards (one per archive folder) in parallel; the rows
            and the bad-audio report are the same whatever the number. Ignored when streaming.
        **config_kwargs: fields of `FmaConfig`: `tracks_per_genre`, `mirror_url`, `verify_sha1`, `min_duration`.
    """
    if config_name not in DATASET_CONFIGS:
        raise ValueError(f"unknown FMA config {config_name!r}; valid configs: {', '.join(DATASET_CONFIGS)}")
    if data_dir is not None:
        data_dir = os.path.abspath(os.path.expanduser(data_dir))
    builder = Fma(
        config_name=config_name,
        data_dir=data_dir,
        cache_dir=None if cache_dir is None else str(cache_dir),
        hash=_builder_hash(),
        **config_kwargs,
    )
    if streaming:
        return builder.as_streaming_dataset(split=split)
    builder.download_and_prepare(download_mode=download_mode, num_proc=num_proc)
    # A split whose audio is all missing (an archive extracted in part; the builder warns loudly) has no
    # examples, which `as_dataset` refuses to read ("corresponds to no data"): it is an empty Dataset.
    empty = [name for name, info in builder.info.splits.items() if info.num_examples == 0]
    if not empty or (split is not None and split not in empty):
        return builder.as_dataset(split=split)

    def read(name: str) -> datasets.Dataset:
        if name not in empty:
            return builder.as_dataset(split=name)
        features = builder.info.features
        return datasets.Dataset.from_dict({column: [] for column in features}, features=features, split=name)

    return read(split) if split is not None else datasets.DatasetDict({name: read(name) for name in builder.info.splits})


def is_demo_data(data_dir: str | os.PathLike | None) -> bool:
    """Whether `data_dir` holds `hf-fma make-demo`'s synthesized FMA rather than the official archives:
    the demo's fma_metadata.zip, which every config reads, says so in its zip comment. An extracted
    fma_metadata/ folder (which the builder reads first) keeps no comment and counts as official."""
    if data_dir is None:
        return False
    data_dir = Path(data_dir).expanduser()
    metadata = ARCHIVES["metadata"]
    return not (data_dir / metadata.name).is_dir() and _is_demo_archive(str(data_dir / metadata.filename))


__all__ = ["DATASET_CONFIGS", "is_demo_data", "load_fma"]
