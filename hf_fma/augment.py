"""Training-time randomness: augmentation of training batches (SpecAugment, Mixup) and the seeds that make
the random crops and augmentation of a resumed run repeat those of the uninterrupted one (TrainingSeeds)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


class TrainingSeeds:
    """The random draws of the training transforms (crop offsets, SpecAugment, mixup) as a function of
    (seed, epoch, track ids) instead of a generator's running state.

    Trainer saves and restores its own RNG, its sampler's order and the batches already seen, but the
    DataLoader workers' generators are neither saved nor restored: drawn from them, a run resumed from a
    checkpoint (workers started afresh, the epoch's first batches skipped without being drawn) would crop
    and augment other than the uninterrupted run. Keyed draws depend only on what Trainer restores: the
    epoch (set through `set_epoch` by a Trainer callback) and which tracks a batch holds (the sampler's
    order). The epoch is a shared-memory tensor, so DataLoader workers (forked or spawned) see the value
    the main process sets.
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
CROP_KEY, BATCH_KEY = 0, 1


def track_ids(rows: Mapping[str, list] | Sequence[Mapping[str, Any]], count: int) -> list[int]:
    """The track ids of a batch (columns) or of a list of rows, which key the draws of TrainingSeeds."""
    ids = rows.get("track_id") if isinstance(rows, Mapping) else [row.get("track_id") for row in rows]
    if ids is None or len(ids) != count or any(track_id is None for track_id in ids):
        raise ValueError("seeded training transforms key their draws by track: the rows need a 'track_id' column")
    return list(ids)


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
    lam * onehot(y_i) + (1 - lam) * onehot(y_j) (multi-hot labels, FloatTensor (batch, num_labels), are mixed
    as they are). Defaults are AST's AudioSet recipe (0.5, Beta(10, 10)).

    Waveforms are mixed (as AST does) before the fbank; cached fbank rows are mixed as log-mel frames.
    Labels of every training batch then are probabilities, FloatTensor (batch, num_labels): train with
    `Trainer(compute_loss_func=hf_fma.trainer.cross_entropy_loss)` (transformers' classification heads
    would pick BCE for float labels and then fail on the integer labels of evaluation batches).
    """

    num_labels: int
    prob: float = 0.5
    alpha: float = 10.0

    def __call__(
        self, inputs: torch.Tensor, labels: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """inputs (batch, ...) and labels (batch,) or (batch, num_labels) -> mixed inputs, soft labels
        (batch, num_labels), lengths."""
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
        targets = labels if labels.dim() == 2 else F.one_hot(labels, self.num_labels).float()  # (batch, num_labels)
        soft = lam[:, None] * targets + (1 - lam[:, None]) * targets[partners]
        lengths = torch.where(lam < 1, torch.maximum(lengths, lengths[partners]), lengths)
        return mixed, soft, lengths


__all__ = ["BATCH_KEY", "CROP_KEY", "Mixup", "SpecAugment", "TrainingSeeds", "track_ids"]
