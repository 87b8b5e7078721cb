"""Clip- and track-level evaluation of a genre classifier on an FMA split.

A track is judged the way FMA papers that cut tracks into crops should judge it: `n_crops` evenly spaced
crops of the model's crop length are classified, each crop is a *clip* (clip-level metrics), and the
crops' logits are averaged into one prediction per *track* (track-level metrics). Crops never leave their
track's split. Metrics come from the package's `evaluate` module
(`hf_fma/metrics/genre_classification`, loaded by local path): accuracy, macro-F1, per-genre precision,
recall and accuracy, and the confusion matrix. `hf_fma.evaluation_report` reports a result as Markdown
and JSON.

A multi-label model (`config.problem_type == "multi_label_classification"`, hf_fma.multi_label) is scored
over its genres from each track's `genres` list: the sigmoid of the mean crop logits per track, by the
`multi_label_genres` module (mAP, micro AP, ROC-AUC, per-genre AP, F1 at a threshold), plus the rate of
predicted sub-genres without their parent genre (`config.genre_parents`). The threshold is the one given,
else the model's saved `multi_label_threshold`, else the best micro-F1 threshold of the split scored (run
that on validation only).

    >>> from transformers import AutoFeatureExtractor, AutoModelForAudioClassification
    >>> from hf_fma import load_fma
    >>> from hf_fma.evaluation import evaluate_model
    >>> test = load_fma("small", data_dir="demo_data", split="test")
    >>> model = AutoModelForAudioClassification.from_pretrained("runs/ast-demo")
    >>> extractor = AutoFeatureExtractor.from_pretrained("runs/ast-demo")
    >>> result = evaluate_model(model, extractor, test, n_crops=6)
    >>> result["track"]["accuracy"], result["clip"]["accuracy"]

Under `torchrun`/`accelerate launch` every process evaluates its part of the split
(`datasets.distributed.split_dataset_by_node`, whole tracks) and the results are gathered, so every
process returns the metrics of the whole split. Streamed splits (`IterableDataset`) work too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import evaluate
import numpy as np
import torch
from datasets import Audio
from datasets.distributed import split_dataset_by_node
# datasets' tqdm: off when datasets' bars are (`datasets.disable_progress_bars()`, HF_DATASETS_DISABLE_PROGRESS_BARS).
from datasets.utils.tqdm import tqdm

from hf_fma.data import tracks_with_genres
from hf_fma.geometry import extractor_crop_seconds
from hf_fma.multi_label import GenreVocabulary, is_multi_label
from hf_fma.multi_label_evaluation import score_multi_label
from hf_fma.transforms import AudioCropTransform, FbankCollator, expand_crops

GENRE_METRIC_PATH = Path(__file__).resolve().parent / "metrics" / "genre_classification"


def load_genre_metric() -> evaluate.EvaluationModule:
    """The package's genre-classification metric (no Hub access; kept in memory, so concurrent processes
    never share a cache file)."""
    return evaluate.load(str(GENRE_METRIC_PATH), keep_in_memory=True)


def with_crop_transform(dataset: datasets.Dataset | datasets.IterableDataset, transform: AudioCropTransform):
    """The dataset with `transform` applied on access: `with_transform` for a Dataset, a lazy batched `map`
    for a stream (which has no format transforms); either way rows become the transform's output only."""
    if isinstance(dataset, datasets.IterableDataset):
        return dataset.map(transform, batched=True, remove_columns=list(dataset.column_names or ()))
    return dataset.with_transform(transform)


def _has_genre(genres: list[int]) -> list[bool]:
    return [genre >= 0 for genre in genres]


def labelled_tracks(dataset: datasets.Dataset | datasets.IterableDataset):
    """The tracks with a genre: large and full keep tracks without a top genre as genre -1."""
    return dataset.filter(_has_genre, input_columns="genre", batched=True)


class _TrackBatchCollator:
    """FbankCollator's batch plus the track id of every row, so crops group into tracks whatever order
    the DataLoader workers deliver them in."""

    def __init__(self, collator: FbankCollator):
        self.collator = collator

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.collator(rows)
        batch["track_id"] = torch.tensor([row["track_id"] for row in rows], dtype=torch.long)
        return batch


def _label_map(dataset, model) -> np.ndarray:
    """dataset genre index -> model label index, matched by name: a model trained on medium (16 genres)
    numbers genres differently from small's 8."""
    dataset_names = dataset.features["genre"].names
    label2id = {name: int(index) for name, index in model.config.label2id.items()}
    missing = [name for name in dataset_names if name not in label2id]
    if missing:
        raise ValueError(
            f"the split's genres {missing} are not labels of the model (its labels: {', '.join(label2id)}): "
            "evaluate on a dataset config with the model's genres"
        )
    return np.array([label2id[name] for name in dataset_names])


@torch.inference_mode()
def predict_crops(
    model,
    feature_extractor,
    dataset: datasets.Dataset | datasets.IterableDataset,
    n_crops: int = 6,
    batch_size: int = 32,
    num_workers: int = 0,
    crop_seconds: float | None = None,
    progress: bool = False,
    genre_names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Logits of `n_crops` evenly spaced crops of every track of this process's share of the dataset:
    {"track_id": (clips,), "label": (clips,) dataset genre indices, "logits": (clips, num_labels)}; with
    `genre_names` (a multi-label model's genres), "label" is (clips, genres), each row's `genres` list
    multi-hot over them. progress: a bar of the crops scored, on stderr."""
    crop_seconds = extractor_crop_seconds(feature_extractor) if crop_seconds is None else crop_seconds
    crops = expand_crops(dataset, n_crops)
    # A multi-label model's labels: each row's `genres` as multi-hot vectors over its genres, as in training.
    vocabulary = GenreVocabulary(names=tuple(genre_names)) if genre_names else None
    transform = AudioCropTransform(
        crop_seconds, "even", n_crops=n_crops, sampling_rate=feature_extractor.sampling_rate,
        label_column="genres" if genre_names else "genre", vocabulary=vocabulary,
    )
    crops = with_crop_transform(crops, transform)
    collator = _TrackBatchCollator(FbankCollator(feature_extractor))
    loader = torch.utils.data.DataLoader(crops, batch_size=batch_size, num_workers=num_workers, collate_fn=collator)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    track_ids, labels, logits = [], [], []
    total = len(crops) if isinstance(crops, datasets.Dataset) else None  # a stream has no length
    with tqdm(total=total, desc="evaluating", unit="crop", disable=not progress) as bar:
        for batch in loader:
            track_ids.append(batch["track_id"].numpy())
            labels.append(batch["labels"].numpy())
            outputs = model(input_values=batch["input_values"].to(device))
            logits.append(outputs.logits.float().cpu().numpy())  # (batch, num_labels)
            bar.update(len(batch["track_id"]))
    model.train(was_training)
    num_labels = model.config.num_labels
    no_labels = np.zeros((0, num_labels), dtype=np.float32) if genre_names else np.zeros(0, dtype=np.int64)
    return {
        "track_id": np.concatenate(track_ids) if track_ids else np.zeros(0, dtype=np.int64),
        "label": np.concatenate(labels) if labels else no_labels,
        "logits": np.concatenate(logits) if logits else np.zeros((0, num_labels), dtype=np.float32),
    }


def _process_share(dataset, rank: int, world_size: int):
    """This process's tracks. A stream with enough shards is split by shard, as accelerate splits training
    streams, so each process reads only its own files (`split_dataset_by_node` does that only when the
    shard count divides by the process count, and otherwise has every process read every file)."""
    if isinstance(dataset, datasets.IterableDataset) and dataset.n_shards >= world_size:
        return dataset.shard(num_shards=world_size, index=rank)
    return split_dataset_by_node(dataset, rank, world_size)


def _gather(predictions: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every process's predictions, concatenated, on every process."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return predictions
    parts = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, predictions)
    return {key: np.concatenate([part[key] for part in parts]) for key in predictions}


def evaluate_model(
    model,
    feature_extractor,
    dataset: datasets.Dataset | datasets.IterableDataset,
    n_crops: int = 6,
    batch_size: int = 32,
    num_workers: int = 0,
    crop_seconds: float | None = None,
    progress: bool = False,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Clip- and track-level metrics of `model` on an FMA split (tracks without a genre are left out).

    model: an `AutoModelForAudioClassification` model (AST or the CNN) on any device; feature_extractor:
    its extractor (`FmaASTFeatureExtractor` or `ASTFeatureExtractor`); dataset: a split of the hf_fma
    dataset, audio decoded or not. crop_seconds defaults to the extractor's `max_length` frames. progress:
    a bar of the crops scored, on stderr.

    Returns {"labels": genre names in model label order, "n_crops", "crop_seconds", "num_tracks",
    "num_clips", "clip": {...}, "track": {...}, "tracks": {"track_id", "label", "predicted"} lists}, each
    level holding accuracy, macro_f1, per_genre_precision, per_genre_recall, per_genre_accuracy and
    confusion_matrix (rows: true genre, columns: predicted genre; model label order).

    A multi-label model returns {"task": "multi_label", "labels", "n_crops", "crop_seconds", "num_tracks",
    "num_clips", "threshold_source", "clip": {...}, "track": {...}, "tracks": {"track_id", "genres",
    "predicted"}}, each level holding the `multi_label_genres` metric's fields and
    `hierarchy_violation_rate`, all at one threshold: `threshold`, else the model's
    `multi_label_threshold`, else the one that maximises track-level micro-F1 on this split
    ("threshold_source" says which).
    """
    if n_crops < 1:
        raise ValueError(f"n_crops must be >= 1, got {n_crops}")
    crop_seconds = extractor_crop_seconds(feature_extractor) if crop_seconds is None else crop_seconds
    label_names = [model.config.id2label[index] for index in range(model.config.num_labels)]
    multi_label = is_multi_label(model.config)
    label_map = None if multi_label else _label_map(dataset, model)
    if isinstance(dataset.features["audio"], Audio) and dataset.features["audio"].decode:
        dataset = dataset.cast_column("audio", Audio(decode=False))  # the transform decodes only the crops
    dataset = tracks_with_genres(dataset, label_names) if multi_label else labelled_tracks(dataset)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # Whole tracks per process: a track's crops are averaged where they were predicted.
        dataset = _process_share(dataset, torch.distributed.get_rank(), torch.distributed.get_world_size())
    crops = _gather(
        predict_crops(
            model, feature_extractor, dataset, n_crops, batch_size, num_workers, crop_seconds, progress,
            genre_names=label_names if multi_label else None,
        )
    )
    if len(crops["label"]) == 0:
        raise ValueError("the split holds no track with a genre to evaluate on")

    # Track level: the mean of each track's crop logits.
    track_ids, first_row, track_index = np.unique(crops["track_id"], return_index=True, return_inverse=True)
    track_logits = np.zeros((len(track_ids), crops["logits"].shape[1]), dtype=np.float64)
    np.add.at(track_logits, track_index, crops["logits"])
    track_logits /= np.bincount(track_index)[:, None]
    geometry = {"labels": label_names, "n_crops": n_crops, "crop_seconds": crop_seconds, "num_tracks": len(track_ids)}
    if multi_label:
        return score_multi_label(
            model.config, crops["logits"], crops["label"], track_ids, first_row, track_logits, threshold, geometry
        )

    clip_labels = label_map[crops["label"]]
    clip_predictions = crops["logits"].argmax(axis=-1)
    track_labels = clip_labels[first_row]
    track_predictions = track_logits.argmax(axis=-1)

    metric = load_genre_metric()
    levels = {}
    for level, predictions, references in (
        ("clip", clip_predictions, clip_labels),
        ("track", track_predictions, track_labels),
    ):
        scores = metric.compute(predictions=predictions, references=references, label_names=label_names)
        scores.pop("label_names")
        levels[level] = scores
    return {
        **geometry,
        "num_clips": len(clip_labels),
        **levels,
        "tracks": {
            "track_id": track_ids.tolist(),
            "label": track_labels.tolist(),
            "predicted": track_predictions.tolist(),
        },
    }


__all__ = [
    "GENRE_METRIC_PATH",
    "evaluate_model",
    "labelled_tracks",
    "load_genre_metric",
    "predict_crops",
    "with_crop_transform",
]
