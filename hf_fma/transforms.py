"""Rows to model inputs on the fly: crop transforms for `Dataset.set_transform` and the batch collator.

The pieces, in the order a batch meets them:

- `AudioCropTransform` (for `Dataset.set_transform` / `with_transform`): each row's audio is decoded only
  over the crop it needs (`hf_fma.audio.load_crop`): a random crop for training, the centre crop or N
  evenly spaced crops (`expand_crops`) for evaluation. Rows become {"waveform", "labels", "augment"}; with
  a `GenreVocabulary` (the multi-label task), "labels" are each row's `genres` as a multi-hot vector.
  `hf_fma.fbank_cache.CachedCropTransform` cuts the same crops from stored fbank frames instead.
- `FbankCollator` (Trainer's `data_collator`): pads the waveforms into one (batch, samples) tensor and
  computes `BatchedFbank` on it, then SpecAugment and mixup on training batches only. Output:
  {"input_values": FloatTensor (batch, frames, mel_bins), "labels": LongTensor (batch,)} (mixup: soft
  labels, FloatTensor (batch, num_labels); multi-label: multi-hot FloatTensor (batch, num_labels), mixed
  likewise). The same inputs serve AST and the CNN.

Trainer wiring (audio column cast with `Audio(decode=False)`; `remove_unused_columns=False` because the
transforms read columns the model does not take):

    >>> train = ds["train"].cast_column("audio", Audio(decode=False))
    >>> train.set_transform(AudioCropTransform(crop_seconds=5.0, policy="random"))
    >>> evaluation = expand_crops(ds["validation"].cast_column("audio", Audio(decode=False)), n_crops=6)
    >>> evaluation.set_transform(AudioCropTransform(crop_seconds=5.0, policy="even", n_crops=6))
    >>> collator = FbankCollator(feature_extractor, spec_augment=SpecAugment())
    >>> Trainer(..., data_collator=collator, args=TrainingArguments(..., remove_unused_columns=False))
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from hf_fma.audio import CROP_POLICIES, AudioDecodeError, load_crop
from hf_fma.augment import BATCH_KEY, CROP_KEY, Mixup, SpecAugment, TrainingSeeds, track_ids
from hf_fma.fbank import BatchedFbank
from hf_fma.geometry import SAMPLING_RATE
from hf_fma.multi_label import GenreVocabulary


def track_decode_error(error: AudioDecodeError, batch: Mapping[str, list], row: int) -> AudioDecodeError:
    """The decode error re-labelled with the row's track id, so a failing batch names its track."""
    if "track_id" not in batch:
        return error
    return AudioDecodeError(f"track {batch['track_id'][row]} ({error.source_name})", error.reason)


def expand_crops(dataset, n_crops: int):
    """The dataset with each track repeated `n_crops` times in a row, with a `crop_index` column 0..n-1.

    For track-level evaluation with `AudioCropTransform(policy="even", n_crops=n_crops)`: prediction i
    belongs to track `expanded["track_id"][i]`, and averaging the logits of a track's rows gives its
    track-level prediction. Crops of one track stay in the split of that track.
    """
    if n_crops < 1:
        raise ValueError(f"n_crops must be >= 1, got {n_crops}")
    from datasets import IterableDataset  # imported here: inference needs no datasets

    if isinstance(dataset, IterableDataset):  # a stream has no `select`: repeat rows as they come
        return dataset.map(_repeat_rows, batched=True, fn_kwargs={"n_crops": n_crops})
    indices = np.repeat(np.arange(len(dataset)), n_crops)
    return dataset.select(indices).add_column("crop_index", np.tile(np.arange(n_crops), len(dataset)))


def _repeat_rows(batch: dict[str, list], n_crops: int) -> dict[str, list]:
    size = len(next(iter(batch.values())))
    rows = {key: [values[row] for row in range(size) for _ in range(n_crops)] for key, values in batch.items()}
    rows["crop_index"] = list(range(n_crops)) * size
    return rows


class CropTransform:
    """Shared by the waveform and cached-frame transforms: crop policy, labels, augmentation flag."""

    def __init__(self, crop_seconds, policy, n_crops, label_column, augment, seeds=None, vocabulary=None):
        if policy not in CROP_POLICIES:
            raise ValueError(f"unknown crop policy {policy!r}; valid policies: {', '.join(CROP_POLICIES)}")
        if crop_seconds is not None and crop_seconds <= 0:
            raise ValueError(f"crop_seconds must be positive or None (whole tracks), got {crop_seconds}")
        self.crop_seconds = crop_seconds
        self.policy = policy
        self.n_crops = n_crops
        self.label_column = label_column
        self.augment = policy == "random" if augment is None else augment
        self.seeds = seeds
        self.vocabulary = vocabulary

    def _generators(self, batch: Mapping[str, list], size: int) -> list[torch.Generator | None]:
        """Random crops: each track's own generator when seeded, else torch's global one (None)."""
        if self.policy != "random" or self.seeds is None:
            return [None] * size
        return [self.seeds.generator(CROP_KEY, track_id) for track_id in track_ids(batch, size)]

    def _crop_indices(self, batch: Mapping[str, list], size: int) -> list[int]:
        if self.policy != "even" or self.n_crops == 1:
            return [0] * size
        if "crop_index" not in batch:
            raise ValueError(
                f"policy 'even' with n_crops={self.n_crops} needs a 'crop_index' column: "
                "expand the dataset with hf_fma.transforms.expand_crops(dataset, n_crops) first"
            )
        return batch["crop_index"]

    def _rows(self, batch: Mapping[str, list], key: str, values: list) -> dict[str, list]:
        rows = {key: values, "augment": [self.augment] * len(values)}
        if self.label_column and self.label_column in batch:
            labels = batch[self.label_column]
            rows["labels"] = labels if self.vocabulary is None else list(self.vocabulary.multi_hot(labels))
        for passthrough in ("track_id", "crop_index"):
            if passthrough in batch:
                rows[passthrough] = batch[passthrough]
        return rows


class AudioCropTransform(CropTransform):
    """`set_transform` callable: rows with an audio column -> {"waveform", "labels", "augment", ...}.

    Args:
        crop_seconds: crop length (the study: 5 s); None keeps whole tracks.
        policy: "random" (training), "center" (evaluation) or "even" (crop `crop_index` of `n_crops`
            evenly spaced crops; see `expand_crops`).
        n_crops: crops per track for policy "even".
        sampling_rate: rate of the returned waveforms (the feature extractor's).
        audio_column: a column cast with `Audio(decode=False)` ({"path", "bytes"}); decoded rows
            ({"array", "sampling_rate"} on datasets 3.x, torchcodec's `AudioDecoder` on datasets 4+) work
            too but pay for a full decode.
        label_column: integer labels to return as "labels" (the dataset's "genre" ClassLabel), or with
            `vocabulary`, genre lists (the "genres" column).
        vocabulary: a `GenreVocabulary`: "labels" become the label_column's genre lists as float32 multi-hot
            vectors over it (the multi-label task).
        augment: whether FbankCollator may augment these rows; default: only for policy "random".
        seeds: a `TrainingSeeds` that draws each random crop from (seed, epoch, track id), so that a
            resumed run crops as the uninterrupted one (needs a "track_id" column); None: torch's generator.

    Only the crop is decoded (seek, mono, soxr). A file that fails raises AudioDecodeError naming the
    track id (when a "track_id" column exists) and the file. Columns other than the audio pass through
    unchanged on column access (`dataset["track_id"]`).
    """

    def __init__(
        self,
        crop_seconds: float | None = 5.0,
        policy: str = "random",
        n_crops: int = 1,
        sampling_rate: int = SAMPLING_RATE,
        audio_column: str = "audio",
        label_column: str | None = "genre",
        augment: bool | None = None,
        seeds: TrainingSeeds | None = None,
        vocabulary: GenreVocabulary | None = None,
    ):
        super().__init__(crop_seconds, policy, n_crops, label_column, augment, seeds, vocabulary)
        self.sampling_rate = sampling_rate
        self.audio_column = audio_column

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        if self.audio_column not in batch:
            return batch
        sources = batch[self.audio_column]
        waveforms = []
        crops = zip(sources, self._crop_indices(batch, len(sources)), self._generators(batch, len(sources)))
        for row, (source, crop_index, generator) in enumerate(crops):
            try:
                waveforms.append(
                    load_crop(
                        source, self.crop_seconds, self.policy, crop_index, self.n_crops, self.sampling_rate, generator
                    )
                )
            except AudioDecodeError as error:
                raise track_decode_error(error, batch, row) from error
        return self._rows(batch, "waveform", waveforms)


class FbankCollator:
    """Trainer `data_collator`: rows of AudioCropTransform ("waveform") or CachedCropTransform ("fbank")
    -> {"input_values": FloatTensor (batch, frames, mel_bins), "labels": LongTensor (batch,)}, or with
    multi-hot rows (multi-label), "labels": FloatTensor (batch, num_labels).

    The fbank is computed once for the whole batch (`BatchedFbank`), in the DataLoader workers. SpecAugment
    and Mixup, when given, apply only to batches whose rows all carry augment=True (training transforms),
    so one collator serves Trainer's training and evaluation loaders. With Mixup, training labels are
    probabilities (batch, num_labels): see `hf_fma.trainer.cross_entropy_loss`. With `seeds` (a `TrainingSeeds`), a batch's
    augmentation is drawn from (seed, epoch, its track ids), else from torch's generator.
    """

    def __init__(
        self,
        feature_extractor,
        spec_augment: SpecAugment | None = None,
        mixup: Mixup | None = None,
        seeds: TrainingSeeds | None = None,
    ):
        self.fbank = (
            feature_extractor
            if isinstance(feature_extractor, BatchedFbank)
            else BatchedFbank.from_feature_extractor(feature_extractor)
        )
        self.spec_augment = spec_augment
        self.mixup = mixup
        self.seeds = seeds

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not rows:
            raise ValueError("FbankCollator got an empty batch")
        augment = all(row.get("augment", False) for row in rows)
        if augment and self.seeds is not None and (self.mixup or self.spec_augment):
            with self.seeds.torch_seeded(BATCH_KEY, *track_ids(rows, len(rows))):
                return self._collate(rows, augment)
        return self._collate(rows, augment)

    def _collate(self, rows: Sequence[Mapping[str, Any]], augment: bool) -> dict[str, torch.Tensor]:
        labels = _stack_labels([row["labels"] for row in rows]) if "labels" in rows[0] else None
        key = "waveform" if "waveform" in rows[0] else "fbank"
        if key not in rows[0]:
            raise ValueError(
                f"rows need a 'waveform' (AudioCropTransform) or 'fbank' (CachedCropTransform); got {sorted(rows[0])}"
            )
        # cached frames are read-only views on Arrow buffers: copy them (float16 rows are converted anyway)
        inputs = [torch.from_numpy(np.array(row[key], dtype=np.float32, copy=key == "fbank" or None)) for row in rows]
        lengths = torch.tensor([len(values) for values in inputs])
        padded = torch.nn.utils.rnn.pad_sequence(inputs, batch_first=True)  # (batch, samples) or (batch, frames, mel)
        if augment and self.mixup is not None and labels is not None:
            padded, labels, lengths = self.mixup(padded, labels, lengths)
        spec_augment = None
        if augment and self.spec_augment is not None:
            spec_augment = functools.partial(self.spec_augment, fill=self.fbank.padding_value)
        if key == "waveform":
            input_values = self.fbank(padded, lengths, augment=spec_augment)  # (batch, frames, mel)
        else:  # cached frames are already log-mel, zero-padded like the frames log_mel leaves beyond a clip
            features = self.fbank.pad_and_normalize(padded)  # (batch, max_length, mel)
            features = self.fbank.downscale(features if spec_augment is None else spec_augment(features))
            input_values = self.fbank.cepstra(features)
        batch = {"input_values": input_values}
        if labels is not None:
            batch["labels"] = labels
        return batch


def _stack_labels(labels: list) -> torch.Tensor:
    """Class indices -> LongTensor (batch,); multi-hot vectors -> FloatTensor (batch, num_labels)."""
    if np.ndim(labels[0]):
        return torch.from_numpy(np.stack(labels).astype(np.float32))
    return torch.tensor(labels, dtype=torch.long)


__all__ = ["AudioCropTransform", "CropTransform", "FbankCollator", "expand_crops", "track_decode_error"]
