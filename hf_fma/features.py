"""AST features on the fly: batched fbank, crop transforms, collator, augmentation, cache and statistics.

The pieces, in the order a batch meets them:

- `AudioCropTransform` (for `Dataset.set_transform` / `with_transform`): each row's audio is decoded only
  over the crop it needs (`hf_fma.audio.load_crop`): a random crop for training, the centre crop or N
  evenly spaced crops (`expand_crops`) for evaluation. Rows become {"waveform", "labels", "augment"}.
- `FbankCollator` (Trainer's `data_collator`): pads the waveforms into one (batch, samples) tensor and
  computes `BatchedFbank` on it, then SpecAugment and mixup on training batches only. Output:
  {"input_values": FloatTensor (batch, frames, mel_bins), "labels": LongTensor (batch,)} (mixup: soft
  labels, FloatTensor (batch, num_labels)). The same inputs serve AST and the CNN.
- `BatchedFbank` (a torch module, CPU or GPU): `ASTFeatureExtractor`'s log-mel fbank, padding, truncation,
  normalisation, plus FmaASTFeatureExtractor's pooling and MFCC, for a whole batch at once; within 1e-3 of
  the extractor (float32; `.double()` for 1e-6).
- `build_fbank_cache` + `CachedCropTransform`: the fbank of every whole track computed once and stored
  with `datasets`; crops are then cut from stored frames, for many-epoch runs.
- `compute_fbank_stats` / `hf-fma stats`: mean and std of the fbank over a training split.

Trainer wiring (audio column cast with `Audio(decode=False)`; `remove_unused_columns=False` because the
transforms read columns the model does not take):

    >>> train = ds["train"].cast_column("audio", Audio(decode=False))
    >>> train.set_transform(AudioCropTransform(crop_seconds=5.0, policy="random"))
    >>> evaluation = expand_crops(ds["validation"].cast_column("audio", Audio(decode=False)), n_crops=6)
    >>> evaluation.set_transform(AudioCropTransform(crop_seconds=5.0, policy="even", n_crops=6))
    >>> collator = FbankCollator(feature_extractor, spec_augment=SpecAugment())
    >>> Trainer(..., data_collator=collator, args=TrainingArguments(..., remove_unused_columns=False))

Command: `hf-fma stats --data_dir DIR --dataset_config_name small --output_dir runs/stats-small`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers.audio_utils import mel_filter_bank

from hf_fma.argparsing import ArgumentParser
from hf_fma.audio import CROP_POLICIES, AudioDecodeError, crop_offset, load_crop
from hf_fma.geometry import FRAME_LENGTH, HOP_LENGTH, SAMPLING_RATE, num_frames, seconds_to_samples

# AudioSet statistics of the AST authors: ASTFeatureExtractor's defaults, right for AudioSet checkpoints.
AUDIOSET_MEAN = -4.2677393
AUDIOSET_STD = 4.5689974
# What every ASTFeatureExtractor with AST's 128 Kaldi mel bins warns when it is built: its lowest filter is
# empty at 16 kHz and 512 FFT points. That is AST's standard set-up, the one its models were trained on, and
# nothing a user can act on: the commands that build extractors ignore it (warnings' `message` pattern).
EMPTY_MEL_FILTER_WARNING = "At least one mel filter has all zero values"


def _track_error(error: AudioDecodeError, batch: Mapping[str, list], row: int) -> AudioDecodeError:
    """The decode error re-labelled with the row's track id, so a failing batch names its track."""
    if "track_id" not in batch:
        return error
    return AudioDecodeError(f"track {batch['track_id'][row]} ({error.source_name})", error.reason)


# --------------------------------------------------------------------------------------------------
# Batched fbank
# --------------------------------------------------------------------------------------------------


class BatchedFbank(torch.nn.Module):
    """`ASTFeatureExtractor` for batches in torch: (batch, samples) -> (batch, frames, mel_bins).

    Same steps as the extractor's numpy path (Kaldi fbank): 25 ms frames every 10 ms (400/160 samples,
    no edge padding), per-frame DC removal, pre-emphasis 0.97, symmetric Hann window, 512-point power
    spectrum, Kaldi mel filters from 20 Hz, natural log floored at float32 epsilon; then padding with
    zeros or truncation to `max_length` frames, `(x - mean) / (2 * std)`, and the average pooling of
    `FmaASTFeatureExtractor` (`frequency_downscale` x `time_downscale`), then its MFCC (`num_mfcc`,
    `mfcc_delta_order`).

    Computes in `dtype`: float32 by default (within 1e-3 of the extractor on real music and on synthetic
    tones, and what a GPU wants); float64 matches it to 1e-6. Device-agnostic: `.to("cuda")` and pass
    CUDA waveforms.

    >>> fbank = BatchedFbank.from_feature_extractor(ASTFeatureExtractor(max_length=500))
    >>> fbank(torch.zeros(64, 80000)).shape
    torch.Size([64, 500, 128])
    """

    frame_length = FRAME_LENGTH
    hop_length = HOP_LENGTH
    fft_length = 512
    preemphasis = 0.97
    mel_floor = 1.192092955078125e-07  # float32 epsilon, as in ASTFeatureExtractor
    # On CPU the batch goes through the whole chain (FFT to pooling) this many frames at a time: chunks
    # that stay in cache run 3 to 4 times faster than batch-sized passes (which spend their time in page
    # faults), and the per-clip cost then stays flat as the batch grows.
    cpu_chunk_frames = 1024

    def __init__(
        self,
        num_mel_bins: int = 128,
        max_length: int = 1024,
        sampling_rate: int = SAMPLING_RATE,
        do_normalize: bool = True,
        mean: float = AUDIOSET_MEAN,
        std: float = AUDIOSET_STD,
        frequency_downscale: int = 1,
        time_downscale: int = 1,
        num_mfcc: int = 0,
        mfcc_delta_order: int = 0,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.dtype = dtype
        self.num_mel_bins = num_mel_bins
        self.max_length = max_length
        self.sampling_rate = sampling_rate
        self.do_normalize = do_normalize
        self.mean = mean
        self.std = std
        self.frequency_downscale = frequency_downscale
        self.time_downscale = time_downscale
        self.num_mfcc = num_mfcc
        self.mfcc_delta_order = mfcc_delta_order
        with warnings.catch_warnings():
            # 128 Kaldi bins leave the lowest filters empty at 512 points; ASTFeatureExtractor warns already.
            warnings.simplefilter("ignore", UserWarning)
            # The extractor's own filter bank call (numpy path): same arguments, same filters.
            mel_filters = mel_filter_bank(
                num_frequency_bins=self.fft_length // 2 + 1,
                num_mel_filters=num_mel_bins,
                min_frequency=20,
                max_frequency=sampling_rate // 2,
                sampling_rate=sampling_rate,
                norm=None,
                mel_scale="kaldi",
                triangularize_in_mel_space=True,
            )
        window = np.hanning(self.frame_length)  # symmetric Hann, window_function(400, "hann", periodic=False)
        # float64 buffers, cast to `dtype` when used: float64 computation keeps the filters' precision
        self.register_buffer("window", torch.tensor(window), persistent=False)
        self.register_buffer("mel_filters", torch.tensor(mel_filters), persistent=False)
        self._sparse_mel_filters: dict[tuple, torch.Tensor] = {}

    @classmethod
    def from_feature_extractor(cls, feature_extractor, dtype: torch.dtype = torch.float32) -> BatchedFbank:
        """The fbank of an `ASTFeatureExtractor` or `FmaASTFeatureExtractor` (its config, not its code)."""
        return cls(
            dtype=dtype,
            num_mel_bins=feature_extractor.num_mel_bins,
            max_length=feature_extractor.max_length,
            sampling_rate=feature_extractor.sampling_rate,
            do_normalize=feature_extractor.do_normalize,
            mean=feature_extractor.mean,
            std=feature_extractor.std,
            frequency_downscale=getattr(feature_extractor, "frequency_downscale", 1),
            time_downscale=getattr(feature_extractor, "time_downscale", 1),
            num_mfcc=getattr(feature_extractor, "num_mfcc", 0),
            mfcc_delta_order=getattr(feature_extractor, "mfcc_delta_order", 0),
        )

    def extra_repr(self) -> str:
        return (
            f"num_mel_bins={self.num_mel_bins}, max_length={self.max_length}, do_normalize={self.do_normalize}, "
            f"mean={self.mean}, std={self.std}, downscale={self.time_downscale}x{self.frequency_downscale}, "
            f"num_mfcc={self.num_mfcc}, mfcc_delta_order={self.mfcc_delta_order}"
        )

    @property
    def padding_value(self) -> float:
        """What padded (or masked) frames hold after normalisation: the normalised zero."""
        return self.normalize_value(0.0)

    def normalize_value(self, value):
        if not self.do_normalize:
            return value
        if isinstance(value, torch.Tensor):  # one new tensor, not two
            return torch.sub(value, self.mean).div_(self.std * 2)
        return (value - self.mean) / (self.std * 2)

    num_frames = staticmethod(num_frames)  # frames the extractor makes of `lengths` samples, element-wise

    def log_mel(
        self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Raw log-mel frames: (batch, samples) -> (batch, frames, num_mel_bins), before padding to
        max_length. With `lengths` (samples of each waveform, the rest being padding), frames that are not
        entirely inside a waveform are zeros, as the extractor pads a shorter clip's fbank; they are not
        computed. With `out` (batch, frames', num_mel_bins), the frames are written there instead: the
        first frames' only, zeros after the waveforms' ends."""
        dtype = self.dtype
        waveforms = waveforms.to(self.window.device, torch.float32).to(dtype)  # the extractor casts to float32
        if waveforms.shape[-1] < self.frame_length:
            waveforms = F.pad(waveforms, (0, self.frame_length - waveforms.shape[-1]))
        batch, total_frames = waveforms.shape[0], int(self.num_frames(torch.tensor(waveforms.shape[-1])))
        if out is None:
            out = torch.empty(batch, total_frames, self.num_mel_bins, dtype=dtype, device=waveforms.device)
        lengths = torch.full((batch,), waveforms.shape[-1]) if lengths is None else torch.as_tensor(lengths)
        valid = self.num_frames(lengths.to(out.device)).clamp_max(min(total_frames, out.shape[1]))  # (batch,)
        # One pass over the rows given: `forward` hands them over a cache-sized chunk at a time.
        frames = int(valid.max())  # frames that hold audio in some row
        out[:, frames:] = 0.0
        if frames > 0:
            samples = self.frame_length + (frames - 1) * self.hop_length
            out[:, :frames] = self._log_mel_frames(waveforms[:, :samples])
        if bool((valid < valid.max()).any()):  # rows ending before others: zero their tails
            padding = torch.arange(out.shape[1], device=out.device) >= valid[:, None]  # (batch, frames)
            out.masked_fill_(padding[..., None], 0.0)
        return out

    def _chunks(self, batch: int, frames: int, device: torch.device) -> list[slice]:
        """Row slices of about `cpu_chunk_frames` frames on CPU; the whole batch elsewhere."""
        step = max(1, self.cpu_chunk_frames // max(frames, 1)) if device.type == "cpu" else batch
        return [slice(first, first + step) for first in range(0, batch, step)]

    def _log_mel_frames(self, waveforms: torch.Tensor) -> torch.Tensor:
        frames = waveforms.unfold(-1, self.frame_length, self.hop_length)  # (batch, frames, 400), a view
        window = self.window.to(frames.dtype)
        # Per frame: y = window * preemphasis(frame - mean(frame)), with preemphasis(x)[i] = x[i] - 0.97 x[i-1]
        # and x[0] * (1 - 0.97) at i = 0. Expanded, y[i] = w[i] (x[i] - 0.97 x[i-1]) - 0.03 mean w[i] for
        # i >= 1, and y[0] = 0 since the symmetric Hann window has w[0] = 0: three passes over the frames,
        # written straight into the zero-padded FFT buffer.
        buffer = frames.new_zeros(*frames.shape[:-1], self.fft_length)  # (batch, frames, 512)
        windowed = buffer[..., : self.frame_length]
        torch.mul(frames, window, out=windowed)
        windowed[..., 1:].addcmul_(frames[..., :-1], window[1:], value=-self.preemphasis)
        windowed.addcmul_(frames.mean(dim=-1, keepdim=True), window, value=-(1 - self.preemphasis))
        spectrum = torch.fft.rfft(buffer)  # (batch, frames, 257)
        power = spectrum.real.square().addcmul_(spectrum.imag, spectrum.imag)
        mel = self._apply_mel_filters(power)  # (batch, frames, num_mel_bins)
        return mel.clamp_min_(self.mel_floor).log_()

    def _apply_mel_filters(self, power: torch.Tensor) -> torch.Tensor:
        if power.device.type != "cpu":
            return power @ self.mel_filters.to(power.dtype)
        # On CPU the filters as a sparse matrix (each FFT bin feeds at most two filters) cost a third of
        # the dense product.
        key = (power.device, power.dtype)
        if key not in self._sparse_mel_filters:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
                self._sparse_mel_filters[key] = self.mel_filters.T.contiguous().to(power.dtype).to_sparse_csr()
        rows = power.reshape(-1, power.shape[-1])  # (batch * frames, 257)
        mel = (self._sparse_mel_filters[key] @ rows.T).T  # (batch * frames, num_mel_bins)
        return mel.reshape(*power.shape[:-1], self.num_mel_bins)

    def pad_and_normalize(self, fbank: torch.Tensor) -> torch.Tensor:
        """(batch, frames, mel) raw log-mel -> (batch, max_length, mel): zero-padded or truncated, then
        normalised, exactly in the extractor's order."""
        missing = self.max_length - fbank.shape[1]
        fbank = F.pad(fbank, (0, 0, 0, missing)) if missing > 0 else fbank[:, : self.max_length]
        return self.normalize_value(fbank.float())

    def downscale(self, features: torch.Tensor) -> torch.Tensor:
        """FmaASTFeatureExtractor's average pooling (the remote-code file must stand alone, hence this
        one-line twin): (batch, frames, mel) -> (batch, frames // time_downscale, mel // frequency_downscale)."""
        if self.frequency_downscale == 1 and self.time_downscale == 1:
            return features
        kernel = (self.time_downscale, self.frequency_downscale)
        return F.avg_pool2d(features.unsqueeze(1), kernel_size=kernel).squeeze(1)  # (batch, frames', mel')

    def cepstra(self, features: torch.Tensor, with_deltas: bool = True) -> torch.Tensor:
        """FmaASTFeatureExtractor's MFCC of the pooled features when `num_mfcc` asks for them:
        (batch, frames, mel) -> (batch, frames, num_mfcc * (1 + mfcc_delta_order)); without `with_deltas`,
        the coefficients alone (batch, frames, num_mfcc), for `forward` to append the deltas once per batch
        (rather than per chunk of rows, where the small steps' overhead outweighed their arithmetic)."""
        if not self.num_mfcc:
            return features
        # The extractor file's own functions, the one definition of the MFCC (that file must run without
        # hf_fma, so the math lives there); imported here so that importing this module imports no model code.
        from hf_fma.models.feature_extraction_fma_ast import append_deltas, cepstral_coefficients

        coefficients = cepstral_coefficients(features, self.num_mfcc)
        return append_deltas(coefficients, self.mfcc_delta_order) if with_deltas else coefficients

    def forward(
        self,
        waveforms: torch.Tensor,
        lengths: torch.Tensor | None = None,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """(batch, samples) at `sampling_rate` -> model inputs (batch, frames, mel_bins), float32, chunk by
        chunk of rows, each through the whole chain while it is in cache. `augment` (e.g. SpecAugment) takes
        each chunk's normalised features before pooling and MFCC."""
        batch, device = len(waveforms), self.window.device
        result = None
        for rows in self._chunks(batch, self.max_length, device):
            # (rows, max_length, mel): a buffer small enough to stay in cache through the whole chain
            buffer = torch.empty(len(waveforms[rows]), self.max_length, self.num_mel_bins, dtype=self.dtype, device=device)
            features = self.normalize_value(self.log_mel(waveforms[rows], None if lengths is None else lengths[rows], out=buffer).float())
            features = self.downscale(features if augment is None else augment(features))
            features = self.cepstra(features, with_deltas=False)
            if result is None:
                result = features.new_empty(batch, *features.shape[1:])
            result[rows] = features
        if self.num_mfcc and self.mfcc_delta_order:
            from hf_fma.models.feature_extraction_fma_ast import append_deltas  # see cepstra

            result = append_deltas(result, self.mfcc_delta_order)
        return result


# --------------------------------------------------------------------------------------------------
# Randomness of the training transforms, keyed so that a resumed run draws what the uninterrupted one did
# --------------------------------------------------------------------------------------------------


class TrainingSeeds:
    """The random draws of the training transforms (crop offsets, SpecAugment, mixup) as a function of
    (seed, epoch, track ids) instead of a generator's running state.

    Trainer saves and restores its own RNG, its sampler's order and the batches already seen, but the
    DataLoader workers' generators are neither saved nor restored: a run resumed from a checkpoint (workers
    started afresh, the epoch's first batches skipped without being drawn) cropped and augmented other
    than the uninterrupted run. Keyed draws depend only on what Trainer restores: the epoch (set through
    `set_epoch`, see `hf_fma.training`) and which tracks a batch holds (the sampler's order). The epoch is
    a shared-memory tensor, so DataLoader workers (forked or spawned) see the value the main process sets.
    """

    def __init__(self, seed: int):
        self.seed = seed
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(epoch)

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def seed_for(self, *keys: int) -> int:
        """A 63-bit seed of (seed, epoch, *keys)."""
        entropy = [self.seed, self.epoch, *map(int, keys)]
        return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> np.uint64(1))

    def generator(self, *keys: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed_for(*keys))

    @contextlib.contextmanager
    def torch_seeded(self, *keys: int) -> Iterator[None]:
        """torch's global generator seeded by the keys inside the block, and restored after it."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed_for(*keys))
            yield


# Key spaces of TrainingSeeds: a track's crop, and a batch's augmentation.
_CROP_KEY, _BATCH_KEY = 0, 1


def _track_ids(rows: Mapping[str, list] | Sequence[Mapping[str, Any]], count: int) -> list[int]:
    ids = rows.get("track_id") if isinstance(rows, Mapping) else [row.get("track_id") for row in rows]
    if ids is None or len(ids) != count or any(track_id is None for track_id in ids):
        raise ValueError("seeded training transforms key their draws by track: the rows need a 'track_id' column")
    return list(ids)


# --------------------------------------------------------------------------------------------------
# Augmentation (training batches only) and the loss it needs
# --------------------------------------------------------------------------------------------------


@dataclass
class SpecAugment:
    """Frequency and time masks (SpecAugment), drawn independently for each example.

    Widths are uniform in [0, freq_mask) mel bins and [0, time_mask) 10 ms frames, counted before any
    pooling, positions uniform (torchaudio's `mask_along_axis_iid`). The defaults are AST's recipe for
    5 s clips (ESC-50, Speech Commands): 24 bins, 96 frames; for AudioSet's 10 s it used 48 and 192.
    Masked cells get the padding value, as AST masks the fbank with 0 before normalising.
    """

    freq_mask: int = 24
    time_mask: int = 96
    n_freq_masks: int = 1
    n_time_masks: int = 1

    def __call__(self, features: torch.Tensor, fill: float) -> torch.Tensor:
        """features (batch, frames, mel_bins) -> a masked copy."""
        features = features.clone()
        for dim, width, count in ((2, self.freq_mask, self.n_freq_masks), (1, self.time_mask, self.n_time_masks)):
            size = features.shape[dim]
            for _ in range(count):
                widths = (torch.rand(len(features)) * width).floor()  # (batch,)
                starts = (torch.rand(len(features)) * (size - widths).clamp_min(0)).floor()  # (batch,)
                positions = torch.arange(size)
                mask = (positions >= starts[:, None]) & (positions < (starts + widths)[:, None])  # (batch, size)
                mask = mask[:, None, :] if dim == 2 else mask[:, :, None]
                features.masked_fill_(mask.to(features.device), fill)
        return features


@dataclass
class Mixup:
    """Mixup within a batch: with probability `prob`, an example is mixed with a random other one of the
    batch, x = lam * x_i + (1 - lam) * x_j with lam ~ Beta(alpha, alpha), and its label becomes
    lam * onehot(y_i) + (1 - lam) * onehot(y_j). Defaults are AST's AudioSet recipe (0.5, Beta(10, 10)).

    Waveforms are mixed (as AST does) before the fbank; cached fbank rows are mixed as log-mel frames.
    Labels of every training batch then are probabilities, FloatTensor (batch, num_labels): train with
    `Trainer(compute_loss_func=cross_entropy_loss)` (transformers' classification heads would pick
    BCE for float labels and then fail on the integer labels of evaluation batches).
    """

    num_labels: int
    prob: float = 0.5
    alpha: float = 10.0

    def __call__(
        self, inputs: torch.Tensor, labels: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """inputs (batch, ...) and labels (batch,) -> mixed inputs, soft labels (batch, num_labels), lengths."""
        batch = len(inputs)
        order = torch.randperm(batch)
        partners = torch.empty_like(order)
        partners[order] = order.roll(1)  # a random pairing in which no example is its own partner
        lam = torch.distributions.Beta(self.alpha, self.alpha).sample((batch,))
        lam = torch.where(torch.rand(batch) < self.prob, lam, torch.ones(batch))
        if batch < 2:
            lam = torch.ones(batch)
        shape = (batch,) + (1,) * (inputs.dim() - 1)
        mixed = lam.view(shape) * inputs + (1 - lam).view(shape) * inputs[partners]
        one_hot = F.one_hot(labels, self.num_labels).float()  # (batch, num_labels)
        soft = lam[:, None] * one_hot + (1 - lam[:, None]) * one_hot[partners]
        lengths = torch.where(lam < 1, torch.maximum(lengths, lengths[partners]), lengths)
        return mixed, soft, lengths


def cross_entropy_loss(
    outputs, labels: torch.Tensor, num_items_in_batch=None, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Cross-entropy for `Trainer(compute_loss_func=...)`, with class indices (batch,) or the class
    probabilities (batch, num_labels) that Mixup produces. Normalised by `num_items_in_batch` when the
    Trainer passes it (gradient accumulation), which counts probability labels once per class.

    `label_smoothing` is `TrainingArguments.label_smoothing_factor` (bind it with functools.partial):
    Trainer applies its own label smoother only when no `compute_loss_func` is given. Targets become
    (1 - label_smoothing) * target + label_smoothing / num_labels, as transformers' `LabelSmoother` does,
    for mixed labels too."""
    logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[0]
    # F.cross_entropy takes both forms; ignore_index applies to class indices only.
    total = F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum", label_smoothing=label_smoothing)
    if labels.dim() == 2:  # probabilities
        count = len(labels) if num_items_in_batch is None else num_items_in_batch / labels.shape[-1]
    else:
        count = (labels != -100).sum() if num_items_in_batch is None else num_items_in_batch
    return total / count


# --------------------------------------------------------------------------------------------------
# Transforms and collator
# --------------------------------------------------------------------------------------------------


def expand_crops(dataset, n_crops: int):
    """The dataset with each track repeated `n_crops` times in a row, with a `crop_index` column 0..n-1.

    For track-level evaluation with `AudioCropTransform(policy="even", n_crops=n_crops)`: prediction i
    belongs to track `expanded["track_id"][i]`, and averaging the logits of a track's rows gives its
    track-level prediction. Crops of one track stay in the split of that track.
    """
    if n_crops < 1:
        raise ValueError(f"n_crops must be >= 1, got {n_crops}")
    from datasets import IterableDataset  # imported here, like in stats_main: inference needs no datasets

    if isinstance(dataset, IterableDataset):  # a stream has no `select`: repeat rows as they come
        return dataset.map(_repeat_rows, batched=True, fn_kwargs={"n_crops": n_crops})
    indices = np.repeat(np.arange(len(dataset)), n_crops)
    return dataset.select(indices).add_column("crop_index", np.tile(np.arange(n_crops), len(dataset)))


def _repeat_rows(batch: dict[str, list], n_crops: int) -> dict[str, list]:
    size = len(next(iter(batch.values())))
    rows = {key: [values[row] for row in range(size) for _ in range(n_crops)] for key, values in batch.items()}
    rows["crop_index"] = list(range(n_crops)) * size
    return rows


class _CropTransform:
    """Shared by the waveform and cached-frame transforms: crop policy, labels, augmentation flag."""

    def __init__(self, crop_seconds, policy, n_crops, label_column, augment, seeds=None):
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

    def _generators(self, batch: Mapping[str, list], size: int) -> list[torch.Generator | None]:
        """Random crops: each track's own generator when seeded, else torch's global one (None)."""
        if self.policy != "random" or self.seeds is None:
            return [None] * size
        return [self.seeds.generator(_CROP_KEY, track_id) for track_id in _track_ids(batch, size)]

    def _crop_indices(self, batch: Mapping[str, list], size: int) -> list[int]:
        if self.policy != "even" or self.n_crops == 1:
            return [0] * size
        if "crop_index" not in batch:
            raise ValueError(
                f"policy 'even' with n_crops={self.n_crops} needs a 'crop_index' column: "
                "expand the dataset with hf_fma.features.expand_crops(dataset, n_crops) first"
            )
        return batch["crop_index"]

    def _rows(self, batch: Mapping[str, list], key: str, values: list) -> dict[str, list]:
        rows = {key: values, "augment": [self.augment] * len(values)}
        if self.label_column and self.label_column in batch:
            rows["labels"] = batch[self.label_column]
        for passthrough in ("track_id", "crop_index"):
            if passthrough in batch:
                rows[passthrough] = batch[passthrough]
        return rows


class AudioCropTransform(_CropTransform):
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
        label_column: integer labels to return as "labels" (the dataset's "genre" ClassLabel).
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
    ):
        super().__init__(crop_seconds, policy, n_crops, label_column, augment, seeds)
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
                raise _track_error(error, batch, row) from error
        return self._rows(batch, "waveform", waveforms)


class FbankCollator:
    """Trainer `data_collator`: rows of AudioCropTransform ("waveform") or CachedCropTransform ("fbank")
    -> {"input_values": FloatTensor (batch, frames, mel_bins), "labels": LongTensor (batch,)}.

    The fbank is computed once for the whole batch (`BatchedFbank`), in the DataLoader workers. SpecAugment
    and Mixup, when given, apply only to batches whose rows all carry augment=True (training transforms),
    so one collator serves Trainer's training and evaluation loaders. With Mixup, training labels are
    probabilities (batch, num_labels): see `cross_entropy_loss`. With `seeds` (a `TrainingSeeds`), a batch's
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
            with self.seeds.torch_seeded(_BATCH_KEY, *_track_ids(rows, len(rows))):
                return self._collate(rows, augment)
        return self._collate(rows, augment)

    def _collate(self, rows: Sequence[Mapping[str, Any]], augment: bool) -> dict[str, torch.Tensor]:
        labels = torch.tensor([row["labels"] for row in rows], dtype=torch.long) if "labels" in rows[0] else None
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


# --------------------------------------------------------------------------------------------------
# Feature cache: whole-track fbank stored once, crops cut from frames
# --------------------------------------------------------------------------------------------------


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
                raise _track_error(error, batch, row) from error
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
    datasets would turn an Array2D into Python lists (500 times slower). Stored as Arrow by
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


class CachedCropTransform(_CropTransform):
    """`set_transform` callable for a `build_fbank_cache` dataset: crops cut from stored frames.

    Same arguments and policies as AudioCropTransform, with `num_mel_bins` and `dtype` of the cache.
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
    ):
        super().__init__(crop_seconds, policy, n_crops, label_column, augment, seeds)
        self.num_mel_bins = num_mel_bins
        self.dtype = np.dtype(dtype)
        self.crop_frames = None
        if crop_seconds is not None:
            self.crop_frames = num_frames(seconds_to_samples(crop_seconds, sampling_rate))

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        if "fbank" not in batch:
            return batch
        crops = []
        size = len(batch["fbank"])
        for stored, frames, crop_index, generator in zip(
            batch["fbank"], batch["fbank_frames"], self._crop_indices(batch, size), self._generators(batch, size)
        ):
            track = np.frombuffer(stored, dtype=self.dtype).reshape(frames, self.num_mel_bins)  # (frames, mel)
            if self.crop_frames is None:
                crops.append(track)
                continue
            start = crop_offset(frames, self.crop_frames, self.policy, crop_index, self.n_crops, generator)
            crops.append(track[start : start + self.crop_frames])  # shorter tracks are padded by the collator
        return self._rows(batch, "fbank", crops)


# --------------------------------------------------------------------------------------------------
# Normalisation statistics (`hf-fma stats`)
# --------------------------------------------------------------------------------------------------


class _FbankMoments:
    """DataLoader collate function: whole tracks -> (values, sum, sum of squares) of their log-mel, in
    float64, so the DataLoader workers do the decoding and the fbank."""

    def __init__(self, fbank: BatchedFbank):
        self.fbank = fbank

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        moments = torch.zeros(3, dtype=torch.float64)
        for row in rows:
            log_mel = self.fbank.log_mel(torch.from_numpy(row["waveform"])[None])[0].double()  # (frames, mel)
            moments += torch.stack([torch.tensor(log_mel.numel()), log_mel.sum(), log_mel.square().sum()])
        return moments


def compute_fbank_stats(
    dataset,
    num_mel_bins: int = 128,
    sampling_rate: int = SAMPLING_RATE,
    audio_column: str = "audio",
    max_tracks: int | None = None,
    num_workers: int = 0,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, float]:
    """Mean and standard deviation of the raw log-mel fbank over every frame of the dataset's tracks.

    The AST authors' get_norm_stats averages per-batch means and stds over padded training clips; this is
    the exact mean and (population) std over all frames of whole tracks, with no padding frames: the values
    `ASTFeatureExtractor(mean=..., std=...)` takes. `max_tracks` uses a random subset (by `seed`); the
    statistics settle within a few hundred tracks. Returns {"mean", "std", "num_tracks", "num_frames"}.
    progress: a bar of the batches measured, on stderr (off too when datasets' bars are).
    """
    from datasets import Audio
    from datasets.utils.tqdm import tqdm

    if isinstance(dataset.features.get(audio_column), Audio) and dataset.features[audio_column].decode:
        dataset = dataset.cast_column(audio_column, Audio(decode=False))
    if max_tracks is not None and max_tracks < len(dataset):
        dataset = dataset.shuffle(seed=seed).select(range(max_tracks))
    if len(dataset) == 0:
        raise ValueError("cannot compute fbank statistics of an empty dataset")
    dataset = dataset.with_transform(
        AudioCropTransform(crop_seconds=None, policy="center", sampling_rate=sampling_rate,
                           audio_column=audio_column, label_column=None)
    )
    fbank = BatchedFbank(num_mel_bins=num_mel_bins, sampling_rate=sampling_rate)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=4, num_workers=num_workers, collate_fn=_FbankMoments(fbank)
    )
    batches = tqdm(loader, desc="fbank statistics", unit="batch", disable=not progress)
    count, total, squares = sum(batches).tolist()
    mean = total / count
    return {
        "mean": mean,
        "std": max(squares / count - mean * mean, 0.0) ** 0.5,
        "num_tracks": len(dataset),
        "num_frames": int(count // num_mel_bins),
    }


def stats_main(argv: list[str] | None = None) -> int:
    """`hf-fma stats`: fbank mean/std of a training split, saved as the feature extractor training loads.

        hf-fma stats --data_dir DIR --dataset_config_name small --output_dir runs/stats-small [--max_tracks 1000]

    Writes OUTPUT_DIR/preprocessor_config.json (an ASTFeatureExtractor with the computed mean and std, or
    an FmaASTFeatureExtractor when downscaling) and OUTPUT_DIR/fbank_stats.json.
    """
    parser = ArgumentParser(prog="hf-fma stats", description=stats_main.__doc__.splitlines()[0])
    parser.add_argument("--data_dir", required=True, help="folder of the FMA archives (or their extracted folders)")
    parser.add_argument(
        "--dataset_config_name", default="small", help="dataset config: small, medium, large, full, mini (default: small)"
    )
    parser.add_argument("--split", default="train")
    parser.add_argument("--output_dir", required=True, type=Path)
    parser.add_argument("--max_tracks", type=int, default=None, help="random subset of this many tracks")
    parser.add_argument("--num_workers", type=int, default=2, help="DataLoader processes decoding tracks")
    parser.add_argument("--num_mel_bins", type=int, default=128)
    parser.add_argument("--max_length", type=int, default=1024, help="frames the extractor pads/truncates to")
    parser.add_argument("--frequency_downscale", type=int, default=1)
    parser.add_argument("--time_downscale", type=int, default=1)
    args = parser.parse_args(argv)

    from hf_fma.data import load_fma

    # The extractor lives with the models (it is saved with them); imported here so that importing
    # hf_fma.features does not import the model code.
    from hf_fma.models.feature_extraction_fma_ast import FmaASTFeatureExtractor

    extractor = FmaASTFeatureExtractor(
        num_mel_bins=args.num_mel_bins, max_length=args.max_length,
        frequency_downscale=args.frequency_downscale, time_downscale=args.time_downscale,
    )
    dataset = load_fma(args.dataset_config_name, data_dir=args.data_dir, split=args.split)
    stats = compute_fbank_stats(
        dataset, num_mel_bins=args.num_mel_bins, sampling_rate=extractor.sampling_rate,
        max_tracks=args.max_tracks, num_workers=args.num_workers, progress=True,
    )
    extractor.mean, extractor.std = stats["mean"], stats["std"]
    args.output_dir.mkdir(parents=True, exist_ok=True)
    extractor.save_pretrained(args.output_dir)
    record = {**stats, "dataset_config_name": args.dataset_config_name, "split": args.split, "num_mel_bins": args.num_mel_bins}
    (args.output_dir / "fbank_stats.json").write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"fbank mean {stats['mean']:.6f} std {stats['std']:.6f} over {stats['num_tracks']} tracks "
        f"({stats['num_frames']} frames); wrote {args.output_dir / 'preprocessor_config.json'}"
    )
    return 0


__all__ = [
    "AUDIOSET_MEAN",
    "AUDIOSET_STD",
    "AudioCropTransform",
    "BatchedFbank",
    "CachedCropTransform",
    "FbankCollator",
    "Mixup",
    "SpecAugment",
    "TrainingSeeds",
    "build_fbank_cache",
    "compute_fbank_stats",
    "cross_entropy_loss",
    "expand_crops",
    "stats_main",
]

if __name__ == "__main__":
    sys.exit(stats_main())
