"""FmaASTFeatureExtractor: AST's log-mel features, optionally average-pooled in frequency and time.

The study this package reproduces fed AST and the CNN features downscaled by 4 in frequency and in time.
`ASTFeatureExtractor` has no time pooling, and pooling inside the model would make an AST checkpoint
unusable on plain AST inputs, so the pooling lives here, in a registered subclass that `save_pretrained`
stores together with this file (`auto_map`): `pipeline("audio-classification", model=folder,
trust_remote_code=True)` then reproduces the training features where hf_fma is not installed. This file
therefore imports only transformers, numpy and torch.

With both factors 1 (the default) it is exactly `ASTFeatureExtractor`, and that is what gets saved.

    >>> extractor = FmaASTFeatureExtractor(max_length=512, frequency_downscale=4, time_downscale=4)
    >>> extractor(np.zeros(80000, np.float32), sampling_rate=16000, return_tensors="pt")["input_values"].shape
    torch.Size([1, 128, 32])
"""

from __future__ import annotations

import os

import numpy as np
import torch
from transformers import ASTFeatureExtractor, BatchFeature


class FmaASTFeatureExtractor(ASTFeatureExtractor):
    r"""
    An `ASTFeatureExtractor` whose normalised log-mel features are average-pooled by `time_downscale`
    frames and `frequency_downscale` mel bins: (max_length, num_mel_bins) becomes
    (max_length // time_downscale, num_mel_bins // frequency_downscale), trailing frames or bins that do not
    fill a pooling window being dropped (as `torch.nn.functional.avg_pool2d` does).

    Args:
        frequency_downscale (`int`, *optional*, defaults to 1):
            Mel bins averaged into one (the study used 4).
        time_downscale (`int`, *optional*, defaults to 1):
            10 ms frames averaged into one (the study used 4).
        kwargs:
            Everything `ASTFeatureExtractor` takes (num_mel_bins, max_length, mean, std, do_normalize, ...).
    """

    def __init__(self, frequency_downscale: int = 1, time_downscale: int = 1, **kwargs):
        super().__init__(**kwargs)
        for name, factor in (("frequency_downscale", frequency_downscale), ("time_downscale", time_downscale)):
            if not isinstance(factor, int) or factor < 1:
                raise ValueError(f"{name} must be a positive integer, got {factor!r}")
        if frequency_downscale > self.num_mel_bins or time_downscale > self.max_length:
            raise ValueError(
                f"cannot pool {self.max_length} frames x {self.num_mel_bins} mel bins by "
                f"{time_downscale} x {frequency_downscale}"
            )
        self.frequency_downscale = frequency_downscale
        self.time_downscale = time_downscale

    @property
    def is_plain(self) -> bool:
        """True when no pooling is configured: the features are ASTFeatureExtractor's."""
        return self.frequency_downscale == 1 and self.time_downscale == 1

    def downscale(self, features: torch.Tensor) -> torch.Tensor:
        """(batch, frames, mel_bins) -> (batch, frames // time_downscale, mel_bins // frequency_downscale)."""
        if self.is_plain:
            return features
        pooled = torch.nn.functional.avg_pool2d(
            features.unsqueeze(1), kernel_size=(self.time_downscale, self.frequency_downscale)
        )  # (batch, 1, frames // time_downscale, mel_bins // frequency_downscale)
        return pooled.squeeze(1)

    def __call__(self, raw_speech, sampling_rate=None, return_tensors=None, **kwargs) -> BatchFeature:
        """ASTFeatureExtractor's features (same arguments), pooled by the downscale factors."""
        features = super().__call__(raw_speech, sampling_rate=sampling_rate, return_tensors=None, **kwargs)
        if not self.is_plain:
            stacked = torch.from_numpy(np.stack(features["input_values"]))  # (batch, max_length, num_mel_bins)
            features["input_values"] = list(self.downscale(stacked).numpy())
        return features.convert_to_tensors(return_tensors) if return_tensors is not None else features

    def to_plain(self) -> ASTFeatureExtractor:
        """The equivalent ASTFeatureExtractor; only defined when no pooling is configured."""
        if not self.is_plain:
            raise ValueError(
                f"features pooled by {self.time_downscale} x {self.frequency_downscale} have no "
                "ASTFeatureExtractor equivalent"
            )
        settings = self.to_dict()
        for key in ("feature_extractor_type", "frequency_downscale", "time_downscale", "auto_map", "processor_class"):
            settings.pop(key, None)
        return ASTFeatureExtractor(**settings)

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs):
        # Without pooling, save a plain ASTFeatureExtractor: Hub users then need neither hf_fma nor
        # trust_remote_code to reproduce the features.
        if self.is_plain:
            return self.to_plain().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        return super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)


# save_pretrained writes auto_map and copies this file, so AutoFeatureExtractor(trust_remote_code=True) works.
FmaASTFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")

__all__ = ["FmaASTFeatureExtractor"]
