"""A training run's data: its splits loaded and sampled as the arguments ask, the labels they carry (the
top genre, or for a multi-label run the training split's genre vocabulary and hierarchy), and the training
split as Trainer reads it (random crops, or each track's evenly spaced segments).

    >>> splits = prepare_splits(data_args, training_args)
    >>> train = training_dataset(data_args, splits.labelled["train"], feature_extractor, seeds, splits.vocabulary)
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np
from transformers import TrainingArguments

from hf_fma.arguments import DataArguments
from hf_fma.audio import audio_duration
from hf_fma.augment import TrainingSeeds
from hf_fma.data import balanced_sample, is_fma_source, load_genre_parents, load_splits, tracks_with_genres
from hf_fma.evaluation import labelled_tracks, with_crop_transform
from hf_fma.models.feature_extraction_fma_ast import FmaASTFeatureExtractor
from hf_fma.multi_label import GenreVocabulary, ancestry
from hf_fma.runs import dataset_title
from hf_fma.transforms import AudioCropTransform, expand_crops

logger = logging.getLogger(__name__)


@dataclass
class RunSplits:
    """The splits of a run. `whole`: train/validation/test as loaded (validation and test cut to
    max_eval_samples), which `evaluate_model` reads, picking the labelled tracks itself; `labelled`: their
    tracks with a genre (large and full have some without), which Trainer reads, the training split cut to
    max_train_samples and, streamed, shuffled. A multi-label run has its `vocabulary` (the training split's
    genres) and their `genre_parents`; its labelled tracks are those with a genre of the vocabulary."""

    whole: dict[str, datasets.Dataset | datasets.IterableDataset]
    labelled: dict[str, datasets.Dataset | datasets.IterableDataset]
    vocabulary: GenreVocabulary | None = None
    genre_parents: dict[str, str | None] = field(default_factory=dict)

    @property
    def label_names(self) -> list[str]:
        if self.vocabulary is not None:
            return list(self.vocabulary.names)
        return self.whole["train"].features["genre"].names


def prepare_splits(data_args: DataArguments, training_args: TrainingArguments) -> RunSplits:
    """The run's splits, sampled as the arguments ask, and a start-up summary of them in the log."""
    # The main process prepares the Arrow caches; the others then read them.
    with training_args.main_process_first(desc="loading FMA"):
        whole = load_splits(
            data_args.dataset_config_name,
            data_dir=data_args.data_dir,
            dataset_name=data_args.dataset_name,
            streaming=data_args.streaming,
            num_proc=data_args.preprocessing_num_workers,
            audio_column_name=data_args.audio_column_name,
            label_column_name=data_args.label_column_name,
            split_seed=data_args.split_seed,
        )
        if data_args.task == "multi_label":
            # Validation and test are filtered once, by the vocabulary the training tracks give below.
            labelled = {**whole, "train": tracks_with_genres(whole["train"])}
        else:
            labelled = {name: labelled_tracks(split) for name, split in whole.items()}
        if data_args.max_train_samples is not None:
            seed = training_args.data_seed or training_args.seed
            labelled["train"] = balanced_sample(labelled["train"], data_args.max_train_samples, seed=seed)
        vocabulary, parents = None, {}
        if data_args.task == "multi_label":
            # The label space is the training split's alone: validation and test are scored over the same genres.
            vocabulary = GenreVocabulary.from_genre_lists(labelled["train"]["genres"], data_args.min_genre_tracks)
            parents = ancestry(vocabulary.names, load_genre_parents(data_args.data_dir, data_args.dataset_name))
            labelled = {name: tracks_with_genres(split, vocabulary.names) for name, split in labelled.items()}
    if data_args.streaming:
        # A stream comes in archive order; Trainer reshuffles it each epoch through set_epoch.
        labelled["train"] = labelled["train"].shuffle(training_args.seed, buffer_size=data_args.shuffle_buffer_size)
    if data_args.max_eval_samples is not None and not data_args.streaming:
        for name in ("validation", "test"):
            sample = balanced_sample(labelled[name], data_args.max_eval_samples, seed=training_args.seed)
            whole[name] = labelled[name] = sample
    if not data_args.streaming:
        check_crop_fits(labelled["train"], data_args.crop_seconds)
    splits = RunSplits(whole, labelled, vocabulary, parents)
    if training_args.should_log:
        sizes = ", ".join(
            f"{name} {'streamed' if data_args.streaming else len(labelled[name])}"
            for name in ("train", "validation", "test")
        )
        task = "top genre of" if vocabulary is None else "multi-label over"
        data = dataset_title(data_args.dataset_name, data_args.dataset_config_name, reads_fma(data_args))
        logger.info(
            f"data: {data}, {task} {len(splits.label_names)} genres, tracks: {sizes}; "
            f"{data_args.crop_seconds} s crops, {data_args.eval_crops} per track for track-level metrics"
        )
    return splits


def check_crop_fits(train: datasets.Dataset, crop_seconds: float, max_tracks: int = 16) -> None:
    """Fail when crop_seconds is longer than most training tracks (their median duration, read from the
    headers of up to `max_tracks`): the crops would be mostly padding and a track's evaluation crops all
    the same one. A few shorter tracks (FMA has some) are padded as usual."""
    sample = train.select(range(min(len(train), max_tracks)))
    durations = [audio_duration(source) for source in sample["audio"]]
    median = float(np.median(durations))
    if crop_seconds > median:
        raise ValueError(
            f"crop_seconds {crop_seconds} is longer than most training tracks ({median:.2f} s, the median of "
            f"{len(durations)}; the longest {max(durations):.2f} s): crops would be mostly padding; give "
            f"--crop_seconds {math.floor(median * 100) / 100:g} or less"
        )


def reads_fma(data_args: DataArguments) -> bool:
    """Whether the run reads FMA (archives or an hf-fma export), not another dataset (`data.is_fma_source`)."""
    return is_fma_source(
        data_args.dataset_name, data_args.dataset_config_name, data_args.audio_column_name, data_args.label_column_name
    )


def label_source(vocabulary: GenreVocabulary | None) -> dict[str, Any]:
    """The crop transforms' label arguments: the `genre` class index, or for a multi-label run the
    `genres` lists as multi-hot vectors over its vocabulary."""
    return {} if vocabulary is None else {"label_column": "genres", "vocabulary": vocabulary}


def training_dataset(
    data_args: DataArguments,
    train: datasets.Dataset | datasets.IterableDataset,
    feature_extractor: FmaASTFeatureExtractor,
    seeds: TrainingSeeds,
    vocabulary: GenreVocabulary | None = None,
) -> datasets.Dataset | datasets.IterableDataset:
    """The training split as Trainer reads it: a random crop of each track per epoch, or with
    train_segments, each track's evenly spaced segments as examples of their own (the references'
    protocol), augmentable like random crops. Expanded within the training split, so no segment of a
    validation or test track is trained on. With a `vocabulary`, multi-hot labels of the `genres` lists."""
    labels = label_source(vocabulary)
    if data_args.train_segments:
        segments = AudioCropTransform(
            data_args.crop_seconds, "even", n_crops=data_args.train_segments, augment=True,
            sampling_rate=feature_extractor.sampling_rate, **labels,
        )  # fmt: skip
        return with_crop_transform(expand_crops(train, data_args.train_segments), segments)
    random_crop = AudioCropTransform(
        data_args.crop_seconds, "random", sampling_rate=feature_extractor.sampling_rate, seeds=seeds, **labels
    )
    return with_crop_transform(train, random_crop)


__all__ = ["RunSplits", "check_crop_fits", "label_source", "prepare_splits", "reads_fma", "training_dataset"]
