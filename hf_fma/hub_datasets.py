"""Any audio-classification `DatasetDict` (a GTZAN dataset on the Hub, an `audiofolder`, Parquet files) in
the columns the rest of the package reads: `audio`, `genre` (a ClassLabel) and `track_id` (unique per
row: the track-level evaluation groups a track's crops by it and the training crops are seeded by it),
with train/validation/test splits. `hf_fma.data.load_splits` calls it for a `--dataset_name` that is no
`hf-fma export`.

This module imports `datasets` only: no torch, no transformers.
"""

from __future__ import annotations

import logging

import datasets

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
# FMA's official split is 80/10/10: a split a dataset lacks takes the same share of all its rows.
MADE_SPLIT_SHARE = 0.1


def to_fma_columns(
    splits: datasets.DatasetDict, audio_column_name: str = "audio", label_column_name: str = "genre", seed: int = 0
) -> datasets.DatasetDict:
    """`splits` with its audio and label columns renamed to `audio` and `genre` (a string label becomes a
    ClassLabel), a `track_id` (the row number across train, validation, test), and a
    validation and/or test split it lacks made from `train` with a split stratified by genre and seeded by
    `seed` (each 10% of all rows, as FMA's 80/10/10)."""
    if "train" not in splits:
        raise ValueError(f"the dataset has no train split; its splits: {', '.join(splits)}")
    columns = splits["train"].column_names
    for flag, name in (("audio_column_name", audio_column_name), ("label_column_name", label_column_name)):
        if name not in columns:
            raise ValueError(
                f"--{flag} {name!r} not found in the dataset. Make sure to set `--{flag}` to the correct "
                f"column - one of {', '.join(columns)}."
            )
    # Columns that would take the names given to the chosen ones (a dataset with `genre` names beside its
    # `label` ClassLabel), and any track_id of its own, which need not be unique across splits, go.
    chosen = (audio_column_name, label_column_name)
    replaced = [name for name in ("audio", "genre", "track_id") if name in columns and name not in chosen]
    renames = {old: new for old, new in zip(chosen, ("audio", "genre")) if old != new}
    splits = datasets.DatasetDict(
        {name: split.remove_columns(replaced).rename_columns(renames) for name, split in splits.items() if name in SPLITS}
    )
    label = splits["train"].features["genre"]
    if isinstance(label, datasets.Value) and label.dtype in ("string", "large_string"):
        # One ClassLabel of the names of all splits, sorted: DatasetDict.class_encode_column numbers each
        # split by its own names (a split lacking a genre would shift the others' numbers).
        names = sorted(set().union(*(split.unique("genre") for split in splits.values())))
        splits = splits.cast_column("genre", datasets.ClassLabel(names=names))
    elif not isinstance(label, datasets.ClassLabel):
        raise ValueError(
            f"label column {label_column_name!r} is {label}, neither a ClassLabel nor strings: its genre names "
            "are unknown; give a column of genre names or a ClassLabel"
        )
    missing = [name for name in ("validation", "test") if name not in splits]
    if missing:
        splits = _make_splits(splits, missing, seed)
    offset = 0
    for name in SPLITS:
        splits[name] = splits[name].add_column("track_id", range(offset, offset + len(splits[name])))
        offset += len(splits[name])
    return splits


def _make_splits(splits: datasets.DatasetDict, missing: list[str], seed: int) -> datasets.DatasetDict:
    train = splits["train"]
    total = len(train) + sum(len(split) for split in splits.values() if split is not train)
    made = {}
    for name in missing:
        parts = train.train_test_split(
            test_size=round(MADE_SPLIT_SHARE * total), stratify_by_column="genre", seed=seed
        )
        train, made[name] = parts["train"], parts["test"]
    logger.warning(
        f"the dataset has no {' or '.join(missing)} split: made "
        + " and ".join(f"{name} ({len(split)} rows)" for name, split in made.items())
        + f" from train with a split stratified by genre, seed {seed}; train keeps {len(train)} rows"
    )
    return datasets.DatasetDict({**splits, "train": train, **made})
