"""FmaASTFeatureExtractor: AST's log-mel features, optionally average-pooled in frequency and time, or their MFCC.

The study this package reproduces fed AST and the CNN features downscaled by 4 in frequency and in time.
`ASTFeatureExtractor` has no time pooling, and pooling inside the model would make an AST checkpoint
unusable on plain AST inputs, so the pooling lives here, in a registered subclass that `save_pretrained`
stores together with this file (`auto_map`): `pipeline("audio-classification", model=folder,
trust_remote_code=True)` then reproduces the training features where hf_fma is not installed. This file
therefore imports only transformers, numpy and torch.

The MFCC option (`num_mfcc`, `mfcc_delta_order`) serves the baselines of the references the study compares
with, which classify MFCC: `mfcc` below is its only definition, which `hf_fma.fbank.BatchedFbank` calls
for training batches, so the saved extractor reproduces the training features with this file alone.

With both factors 1 and no MFCC (the defaults) it is exactly `ASTFeatureExtractor`, and that is what gets
saved.

    >>> extractor = FmaASTFeatureExtractor(max_length=512, frequency_downscale=4, time_downscale=4)
    >>> extractor(np.zeros(80000, np.float32), sampling_rate=16000, return_tensors="pt")["input_values"].shape
    torch.Size([1, 128, 32])
    >>> extractor = FmaASTFeatureExtractor(max_length=500, num_mfcc=13, mfcc_delta_order=2)
    >>> extractor(np.zeros(80000, np.float32), sampling_rate=16000, return_tensors="pt")["input_values"].shape
    torch.Size([1, 500, 39])
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch
from transformers import ASTFeatureExtractor, BatchFeature

# Frames each side of a frame in the delta regression: width 9, librosa.feature.delta's default width.
MFCC_DELTA_HALF_WIDTH = 4


@functools.lru_cache(maxsize=16)  # built once per size, dtype and device: batches come chunk by chunk
def dct_matrix(num_inputs: int, num_outputs: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """The first `num_outputs` rows of the orthonormal DCT-II of length `num_inputs`, transposed:
    (num_inputs, num_outputs), so that `x @ dct_matrix(n, k)` is `scipy.fft.dct(x, norm="ortho")[..., :k]`.
    Shared between calls: not to be modified."""
    # A normal tensor even when first built under torch.inference_mode (evaluation): the cached one then
    # also serves training batches.
    with torch.inference_mode(False):
        inputs = torch.arange(num_inputs, dtype=torch.float64)
        outputs = torch.arange(num_outputs, dtype=torch.float64)
        basis = torch.cos(torch.pi / num_inputs * (inputs[:, None] + 0.5) * outputs[None, :])  # (inputs, outputs)
        basis *= (2.0 / num_inputs) ** 0.5
        basis[:, 0] /= 2.0**0.5
        return basis.to(device=device, dtype=dtype)


def deltas(features: torch.Tensor, half_width: int = MFCC_DELTA_HALF_WIDTH) -> torch.Tensor:
    """Delta regression along frames, (batch, frames, coefficients) -> the same shape: HTK's formula,
    d[t] = sum_{n=1..N} n (c[t+n] - c[t-n]) / (2 sum_{n=1..N} n^2), the edge frames repeated beyond the
    ends, as `torchaudio.functional.compute_deltas(win_length=2N+1)` computes it (torchaudio is no
    dependency of hf-fma, hence this one)."""
    padded = torch.cat(
        [features[:, :1].expand(-1, half_width, -1), features, features[:, -1:].expand(-1, half_width, -1)], dim=1
    )  # (batch, frames + 2N, coefficients)
    # Shifted differences summed in place: on CPU 3 to 4 times faster than the same sum as one convolution
    # or an unfold-and-multiply, whose kernels cost more than the arithmetic at 13 to 40 coefficients.
    frames = features.shape[1]
    result = torch.zeros_like(features)
    for offset in range(1, half_width + 1):
        ahead = padded[:, half_width + offset : half_width + offset + frames]
        behind = padded[:, half_width - offset : half_width - offset + frames]
        result.add_(ahead - behind, alpha=offset)
    return result.div_(half_width * (half_width + 1) * (2 * half_width + 1) / 3)


def cepstral_coefficients(features: torch.Tensor, num_mfcc: int) -> torch.Tensor:
    """(batch, frames, mel_bins) log-mel -> (batch, frames, num_mfcc): the first `num_mfcc` coefficients of
    the orthonormal DCT-II over the mel axis (as librosa's and torchaudio's MFCC)."""
    return features @ dct_matrix(features.shape[-1], num_mfcc, features.dtype, features.device)


def append_deltas(coefficients: torch.Tensor, delta_order: int) -> torch.Tensor:
    """(batch, frames, n) -> (batch, frames, n * (1 + delta_order)): the coefficients, then their deltas
    (`delta_order` 1) and delta-deltas (2, the deltas of the deltas), concatenated on the last axis."""
    stack = [coefficients]
    for _ in range(delta_order):
        stack.append(deltas(stack[-1]))
    return torch.cat(stack, dim=-1) if delta_order else coefficients


def mfcc(features: torch.Tensor, num_mfcc: int, delta_order: int = 0) -> torch.Tensor:
    """MFCC of log-mel features: (batch, frames, mel_bins) -> (batch, frames, num_mfcc * (1 + delta_order)),
    `cepstral_coefficients` then `append_deltas`, on the features' device and dtype."""
    return append_deltas(cepstral_coefficients(features, num_mfcc), delta_order)


class FmaASTFeatureExtractor(ASTFeatureExtractor):
    r"""
    An `ASTFeatureExtractor` whose normalised log-mel features are average-pooled by `time_downscale`
    frames and `frequency_downscale` mel bins: (max_length, num_mel_bins) becomes
    (max_length // time_downscale, num_mel_bins // frequency_downscale), trailing frames or bins that do not
    fill a pooling window being dropped (as `torch.nn.functional.avg_pool2d` does). With `num_mfcc`, the
    (pooled) features are then replaced by their MFCC (see `mfcc`): (frames, num_mfcc * (1 + mfcc_delta_order)).

    Args:
        frequency_downscale (`int`, *optional*, defaults to 1):
            Mel bins averaged into one (the study used 4).
        time_downscale (`int`, *optional*, defaults to 1):
            10 ms frames averaged into one (the study used 4).
        num_mfcc (`int`, *optional*, defaults to 0):
            MFCC kept per frame (e.g. 13, 20, 40); 0 keeps the log-mel features.
        mfcc_delta_order (`int`, *optional*, defaults to 0):
            With MFCC: 1 appends their deltas, 2 their deltas and delta-deltas.
        kwargs:
            Everything `ASTFeatureExtractor` takes (num_mel_bins, max_length, mean, std, do_normalize, ...).
    """

    def __init__(
        self,
        frequency_downscale: int = 1,
        time_downscale: int = 1,
        num_mfcc: int = 0,
        mfcc_delta_order: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, factor in (("frequency_downscale", frequency_downscale), ("time_downscale", time_downscale)):
            if not isinstance(factor, int) or factor < 1:
                raise ValueError(f"{name} must be a positive integer, got {factor!r}")
        if frequency_downscale > self.num_mel_bins or time_downscale > self.max_length:
            raise ValueError(
                f"cannot pool {self.max_length} frames x {self.num_mel_bins} mel bins by "
                f"{time_downscale} x {frequency_downscale}"
            )
        bands = self.num_mel_bins // frequency_downscale
        if not isinstance(num_mfcc, int) or not 0 <= num_mfcc <= bands:
            raise ValueError(f"num_mfcc must be an integer from 0 (no MFCC) to the {bands} mel bands, got {num_mfcc!r}")
        if mfcc_delta_order not in (0, 1, 2) or (mfcc_delta_order and not num_mfcc):
            raise ValueError(f"mfcc_delta_order must be 0, 1 or 2, and needs num_mfcc > 0, got {mfcc_delta_order!r}")
        self.frequency_downscale = frequency_downscale
        self.time_downscale = time_downscale
        self.num_mfcc = num_mfcc
        self.mfcc_delta_order = mfcc_delta_order

    @property
    def is_plain(self) -> bool:
        """True when neither pooling nor MFCC is configured: the features are ASTFeatureExtractor's."""
        return self.frequency_downscale == 1 and self.time_downscale == 1 and self.num_mfcc == 0

    def downscale(self, features: torch.Tensor) -> torch.Tensor:
        """(batch, frames, mel_bins) -> (batch, frames // time_downscale, mel_bins // frequency_downscale)."""
        if self.frequency_downscale == 1 and self.time_downscale == 1:
            return features
        pooled = torch.nn.functional.avg_pool2d(
            features.unsqueeze(1), kernel_size=(self.time_downscale, self.frequency_downscale)
        )  # (batch, 1, frames // time_downscale, mel_bins // frequency_downscale)
        return pooled.squeeze(1)

    def cepstra(self, features: torch.Tensor) -> torch.Tensor:
        """(batch, frames, bands) pooled log-mel -> their MFCC (and deltas) when `num_mfcc` asks for them."""
        return mfcc(features, self.num_mfcc, self.mfcc_delta_order) if self.num_mfcc else features

    def __call__(self, raw_speech, sampling_rate=None, return_tensors=None, **kwargs) -> BatchFeature:
        """ASTFeatureExtractor's features (same arguments), pooled by the downscale factors, then MFCC."""
        features = super().__call__(raw_speech, sampling_rate=sampling_rate, return_tensors=None, **kwargs)
        if not self.is_plain:
            stacked = torch.from_numpy(np.stack(features["input_values"]))  # (batch, max_length, num_mel_bins)
            features["input_values"] = list(self.cepstra(self.downscale(stacked)).numpy())
        return features.convert_to_tensors(return_tensors) if return_tensors is not None else features

    def to_plain(self) -> ASTFeatureExtractor:
        """The equivalent ASTFeatureExtractor; only defined when no pooling is configured."""
        if not self.is_plain:
            raise ValueError(
                f"features pooled by {self.time_downscale} x {self.frequency_downscale}, or MFCC, have no "
                "ASTFeatureExtractor equivalent"
            )
        settings = self.to_dict()
        ours = ("frequency_downscale", "time_downscale", "num_mfcc", "mfcc_delta_order")
        for key in ("feature_extractor_type", *ours, "auto_map", "processor_class"):
            settings.pop(key, None)
        return ASTFeatureExtractor(**settings)

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs):
        # Without pooling or MFCC, save a plain ASTFeatureExtractor: Hub users then need neither hf_fma nor
        # trust_remote_code to reproduce the features.
        if self.is_plain:
            return self.to_plain().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        return super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)


# save_pretrained writes auto_map and copies this file, so AutoFeatureExtractor(trust_remote_code=True) works.
FmaASTFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")

__all__ = ["FmaASTFeatureExtractor", "append_deltas", "cepstral_coefficients", "dct_matrix", "deltas", "mfcc"]
