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

The splits a run trains and evaluates on come from `load_splits`, from the archives, from a Parquet
export (`hf-fma export`) or from any audio-classification dataset (`hf_fma.hub_datasets`), with their
audio undecoded; `balanced_sample` draws equal genres from one.

This module imports `datasets` and the builder only: no torch, no transformers.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import zipfile
from collections.abc import Collection
from functools import partial
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Audio, get_dataset_config_names, load_dataset

from hf_fma.hf_fma import Fma, _is_demo_archive
from hf_fma.hub_datasets import SPLITS, to_fma_columns
from hf_fma.metadata import ARCHIVES, FMA_BASE_URL, genre_parents, load_genres

logger = logging.getLogger(__name__)

# The builder's source files: their hash names the prepared Arrow cache, as `load_dataset` names it by
# the loading script's hash, so that a changed builder never reads a cache an older one wrote.
_BUILDER_SOURCES = ("hf_fma.py", "metadata.py")
DATASET_CONFIGS = tuple(config.name for config in Fma.BUILDER_CONFIGS)
# Parquet schema metadata of an export of `hf-fma make-demo`'s synthesized FMA: the fact travels with the
# shards (to the Hub too), so the dataset card and models trained on them can say what the audio is.
DEMO_SCHEMA_KEY = b"hf_fma.synthesized_demo"


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


def is_demo_schema(schema: pa.Schema) -> bool:
    """Whether a Parquet shard's schema carries the synthesized demo's mark (`DEMO_SCHEMA_KEY`)."""
    return (schema.metadata or {}).get(DEMO_SCHEMA_KEY) == b"true"


def is_demo_export(dataset_name: str | os.PathLike, config_name: str) -> bool:
    """Whether `dataset_name` is a local export folder whose config `config_name` holds the synthesized
    demo's rows (a Hub dataset id: False; its card says what it holds)."""
    shards = sorted((Path(dataset_name).expanduser() / config_name).glob("train-*.parquet"))
    return bool(shards) and is_demo_schema(pq.read_schema(shards[0]))


def is_synthesized_demo(
    config_name: str, data_dir: str | os.PathLike | None = None, dataset_name: str | os.PathLike | None = None
) -> bool:
    """Whether a run reads `hf-fma make-demo`'s synthesized FMA (its archives in `data_dir`, or a local
    export of them as `dataset_name`), as the data says of itself: a model card must not present it as
    FMA's music."""
    if dataset_name:
        return is_demo_export(dataset_name, config_name)
    return is_demo_data(data_dir)


def is_fma_source(
    dataset_name: str | os.PathLike | None,
    config_name: str,
    audio_column_name: str = "audio",
    label_column_name: str = "genre",
) -> bool:
    """Whether a run reads FMA: its archives (no `dataset_name`), or an `hf-fma export` read by one of FMA's
    config names with the builder's `audio` and `genre` columns. Any other `dataset_name` is another audio-
    classification dataset (`hf_fma.hub_datasets.to_fma_columns`), which cards and tables never call FMA.
    Decided from the arguments alone, so that a finished run's record says which it read."""
    return not dataset_name or (
        config_name in DATASET_CONFIGS and (audio_column_name, label_column_name) == ("audio", "genre")
    )


def load_splits(
    config_name: str = "small",
    data_dir: str | os.PathLike | None = None,
    dataset_name: str | os.PathLike | None = None,
    streaming: bool = False,
    num_proc: int | None = None,
    audio_column_name: str = "audio",
    label_column_name: str = "genre",
    split_seed: int = 0,
) -> dict[str, datasets.Dataset | datasets.IterableDataset]:
    """train/validation/test of FMA `config_name` through `load_fma` (any datasets version), of the export
    `dataset_name` (folder or Hub dataset id; `data_dir` is then not read), or of any other audio-
    classification dataset `dataset_name` in FMA's columns (`is_fma_source`, `hub_datasets.to_fma_columns`,
    which makes a split it lacks), audio left undecoded ({"path", "bytes"}: the transforms decode only
    their crops)."""
    if dataset_name:
        dataset_name = str(dataset_name)
        configs = get_dataset_config_names(dataset_name)
        if config_name not in configs:
            raise ValueError(
                f"--dataset_config_name {config_name}: {dataset_name} has no such config; its configs: "
                f"{', '.join(configs)}"
            )
        splits = load_dataset(dataset_name, config_name, streaming=streaming)
        if is_fma_source(dataset_name, config_name, audio_column_name, label_column_name):
            check_fma_export(splits, dataset_name, config_name)
        elif streaming:
            raise ValueError(
                f"--streaming reads hf-fma exports only, and --dataset_name {dataset_name} (config {config_name}) is "
                "another dataset, whose missing splits cannot be made from a stream: train without --streaming"
            )
        else:
            splits = to_fma_columns(splits, audio_column_name, label_column_name, seed=split_seed)
    else:
        splits = load_fma(config_name, data_dir=data_dir, streaming=streaming, num_proc=num_proc)
    return {name: splits[name].cast_column("audio", Audio(decode=False)) for name in ("train", "validation", "test")}


def _has_genre_of(genre_lists: list[list[str]], names: frozenset[str] | None) -> list[bool]:
    return [any(names is None or genre in names for genre in genres) for genres in genre_lists]


def tracks_with_genres(
    dataset: datasets.Dataset | datasets.IterableDataset, names: Collection[str] | None = None
) -> datasets.Dataset | datasets.IterableDataset:
    """The tracks a multi-label run keeps: those whose `genres` list holds one of `names` (the run's genre
    vocabulary; None: any genre). A track with none has no target to learn or to be scored on."""
    if "genres" not in (dataset.column_names or ()):
        raise ValueError(
            "multi-label genres are each track's `genres` list, and the dataset has no `genres` column (its "
            f"columns: {', '.join(dataset.column_names or ())})"
        )
    wanted = None if names is None else frozenset(names)
    return dataset.filter(partial(_has_genre_of, names=wanted), input_columns="genres", batched=True)


def load_genre_parents(
    data_dir: str | os.PathLike | None = None, dataset_name: str | os.PathLike | None = None
) -> dict[str, str | None]:
    """FMA's genre hierarchy, title -> parent title (`metadata.genre_parents`), from the genres.csv of the
    metadata archive the builder reads: `data_dir`'s fma_metadata/ folder or fma_metadata.zip, else the
    official archive in datasets' download cache (fetched if missing). A dataset read by `dataset_name`
    (Parquet export, Hub dataset) carries no genres.csv: {} (no hierarchy)."""
    if dataset_name:
        return {}
    metadata = ARCHIVES["metadata"]
    member = f"{metadata.name}/genres.csv"
    if data_dir is not None and (Path(data_dir).expanduser() / member).is_file():
        return genre_parents(load_genres(Path(data_dir).expanduser() / member))
    if data_dir is not None:
        archive = Path(data_dir).expanduser() / metadata.filename
    else:
        archive = Path(datasets.DownloadManager().download(FMA_BASE_URL + metadata.filename))
    with zipfile.ZipFile(archive) as opened:
        text = opened.read(member).decode("utf-8")
    return genre_parents(load_genres(io.StringIO(text)))


def check_fma_export(
    splits: datasets.DatasetDict | datasets.IterableDatasetDict, dataset_name: str, config_name: str
) -> None:
    """An FMA config read by name must be an `hf-fma export`: its three splits, with track_id, audio and genre."""
    missing = [name for name in SPLITS if name not in splits]
    features = splits["train"].features if "train" in splits else {}
    if features is not None:  # a stream may not know its features before reading
        missing += sorted({"track_id", "audio", "genre"} - set(features))
    if missing:
        raise ValueError(
            f"--dataset_name {dataset_name} with FMA's config name {config_name!r} and columns audio and genre is "
            f"read as an hf-fma export, but it lacks {', '.join(missing)}; for another dataset give its own "
            "--dataset_config_name, --audio_column_name and --label_column_name"
        )


def balanced_sample(
    dataset: datasets.Dataset, num_samples: int, seed: int = 0, label_column: str = "genre"
) -> datasets.Dataset:
    """`num_samples` rows with the genres as equal as the data allows (the first genres get one more when
    it does not divide), drawn at random by `seed`, kept in the dataset's order. A genre with fewer rows
    than its share gives all it has (logged)."""
    if num_samples >= len(dataset):
        return dataset
    if num_samples < 1:
        raise ValueError(f"max samples must be >= 1, got {num_samples}")
    labels = np.asarray(dataset[label_column])
    genres = np.unique(labels)
    base, extra = divmod(num_samples, len(genres))
    rng = np.random.default_rng(seed)
    chosen = []
    names = dataset.features[label_column].names
    for position, genre in enumerate(genres):
        rows = np.flatnonzero(labels == genre)
        wanted = base + (position < extra)
        if wanted > len(rows):
            name = names[genre] if genre >= 0 else "tracks without a top genre"  # large and full have some
            logger.warning(f"{name} has {len(rows)} tracks, fewer than its share of {wanted}: taking all")
        chosen.append(rng.permutation(rows)[:wanted])
    return dataset.select(np.sort(np.concatenate(chosen)))


__all__ = [
    "DATASET_CONFIGS",
    "DEMO_SCHEMA_KEY",
    "balanced_sample",
    "check_fma_export",
    "is_demo_data",
    "is_demo_export",
    "is_demo_schema",
    "is_fma_source",
    "is_synthesized_demo",
    "load_fma",
    "load_genre_parents",
    "load_splits",
    "tracks_with_genres",
]
