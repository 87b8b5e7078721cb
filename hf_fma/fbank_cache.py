"""A feature cache for many-epoch runs: the raw log-mel fbank of every whole track computed once and
stored with `datasets` (`build_fbank_cache`), and crops cut from the stored frames (`CachedCropTransform`)
for `hf_fma.transforms.FbankCollator`."""

from __future__ import annotations

import numpy as np
import torch

from hf_fma.audio import AudioDecodeError, crop_offset, load_crop
from hf_fma.augment import TrainingSeeds
from hf_fma.fbank import BatchedFbank
from hf_fma.geometry import SAMPLING_RATE, num_frames, seconds_to_samples
from hf_fma.multi_label import GenreVocabulary
from hf_fma.transforms import CropTransform, track_decode_error


class _CacheTrackFbank:
    """`Dataset.map` function of build_fbank_cache (a class so datasets can fingerprint it)."""

    def __init__(self, audio_column: str, sampling_rate: int, num_mel_bins: int, dtype: str):
        self.audio_column = audio_column
        self.sampling_rate = sampling_rate
        self.num_mel_bins = num_mel_bins
        self.dtype = dtype

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        fbank = BatchedFbank(num_mel_bins=self.num_mel_bins, sampling_rate=self.sampling_rate)
        stored, frames = [], []
        for row, source in enumerate(batch[self.audio_column]):
            try:
                waveform = load_crop(source, None, sampling_rate=self.sampling_rate)
            except AudioDecodeError as error:
                raise track_decode_error(error, batch, row) from error
            log_mel = fbank.log_mel(torch.from_numpy(waveform)[None])[0]  # (frames, mel)
            stored.append(log_mel.numpy().astype(self.dtype).tobytes())
            frames.append(len(log_mel))
        return {"fbank": stored, "fbank_frames": frames}


def build_fbank_cache(
    dataset,
    num_mel_bins: int = 128,
    sampling_rate: int = SAMPLING_RATE,
    dtype: str = "float16",
    audio_column: str = "audio",
    num_proc: int | None = None,
    cache_file_name: str | None = None,
):
    """The dataset with its audio replaced by the raw log-mel fbank of each whole track, for many epochs.

    Columns added: "fbank" (large_binary: (frames, num_mel_bins) little-endian `dtype`, row-major) and
    "fbank_frames" (int32). Binary rather than Array2D because crops are cut in a transform, where
    datasets would turn an Array2D into Python lists (a float object per value; a binary row is read as
    one NumPy view). Stored as Arrow by
    `Dataset.map` (in its cache, or `cache_file_name`). Raw log-mel, before normalisation: any mean/std
    and pooling apply at training time.

    Disk: (frames per track) x num_mel_bins x bytes; fma_small: 8,000 tracks x 2,996 frames x 128 x 2 B =
    6.1 GB (5.7 GiB) in float16, 12.3 GB (11.4 GiB) in float32. float16 rounds a log-mel value by at most
    0.008 (<= 0.0009 after AudioSet normalisation).
    """
    from datasets import Audio, Value

    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be 'float16' or 'float32', got {dtype!r}")
    if isinstance(dataset.features.get(audio_column), Audio) and dataset.features[audio_column].decode:
        dataset = dataset.cast_column(audio_column, Audio(decode=False))
    features = dataset.features.copy()
    del features[audio_column]
    features["fbank"] = Value("large_binary")
    features["fbank_frames"] = Value("int32")
    return dataset.map(
        _CacheTrackFbank(audio_column, sampling_rate, num_mel_bins, dtype),
        batched=True,
        batch_size=8,
        writer_batch_size=64,  # 64 x 30 s x 1.5 MB stays far below Arrow's 2 GiB buffers
        remove_columns=[audio_column],
        features=features,
        num_proc=num_proc,
        cache_file_name=cache_file_name,
        desc="fbank cache",
    )


class CachedCropTransform(CropTransform):
    """`set_transform` callable for a `build_fbank_cache` dataset: crops cut from stored frames.

    Same arguments and policies as AudioCropTransform (multi-hot labels with a `vocabulary` too), with
    `num_mel_bins` and `dtype` of the cache.
    A crop of `crop_seconds` holds the frames a waveform crop of that length would give (498 for 5 s),
    starting on a 10 ms frame boundary. Rows: {"fbank", "labels", "augment", ...} for FbankCollator.
    """

    def __init__(
        self,
        crop_seconds: float | None = 5.0,
        policy: str = "random",
        n_crops: int = 1,
        num_mel_bins: int = 128,
        dtype: str = "float16",
        sampling_rate: int = SAMPLING_RATE,
        label_column: str | None = "genre",
        augment: bool | None = None,
        seeds: TrainingSeeds | None = None,
        vocabulary: GenreVocabulary | None = None,
    ):
        super().__init__(crop_seconds, policy, n_crops, label_column, augment, seeds, vocabulary)
        self.num_mel_bins = num_mel_bins
        self.dtype = np.dtype(dtype)
        # fewer than the extractor's max_length (geometry.crop_frames, 500 for 5 s): the collator pads them
        self.crop_fbank_frames = None
        if crop_seconds is not None:
            self.crop_fbank_frames = num_frames(seconds_to_samples(crop_seconds, sampling_rate))

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        if "fbank" not in batch:
            return batch
        crops = []
        size = len(batch["fbank"])
        for stored, frames, crop_index, generator in zip(
            batch["fbank"], batch["fbank_frames"], self._crop_indices(batch, size), self._generators(batch, size)
        ):
            track = np.frombuffer(stored, dtype=self.dtype).reshape(frames, self.num_mel_bins)  # (frames, mel)
            if self.crop_fbank_frames is None:
                crops.append(track)
                continue
            start = crop_offset(frames, self.crop_fbank_frames, self.policy, crop_index, self.n_crops, generator)
            crops.append(track[start : start + self.crop_fbank_frames])  # shorter tracks are padded by the collator
        return self._rows(batch, "fbank", crops)


__all__ = ["CachedCropTransform", "build_fbank_cache"]
