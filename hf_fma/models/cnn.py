"""Named set-ups of the CNN baseline, sized to the features in use, for the training recipes.

    >>> from transformers import ASTFeatureExtractor
    >>> from hf_fma.models.cnn import build_cnn
    >>> model = build_cnn("study", ASTFeatureExtractor(max_length=500), ["Electronic", "Rock"])

`hf-fma models` prints each preset's parameters and forward cost.
"""

from __future__ import annotations

from typing import Any

from transformers import FeatureExtractionMixin

from .ast import Labels, input_shape, label_maps
from .configuration_fma_cnn import FmaCnnConfig
from .modeling_fma_cnn import FmaCnnForAudioClassification

# name -> FmaCnnConfig settings (besides num_mel_bins and the labels, which come from the data).
CNN_PRESETS: dict[str, dict[str, Any]] = {
    # The study reports the CNN's structure (5 blocks of convolution, batch norm, ReLU, max pooling, then
    # dropout and a linear layer), not its widths: FmaCnnConfig's defaults, channels doubling from 32.
    "study": {},
    "tiny": dict(hidden_sizes=[4, 8, 8, 16, 32]),
}


def build_cnn(
    preset: str,
    feature_extractor: FeatureExtractionMixin,
    id2label: Labels,
    **overrides: Any,
) -> FmaCnnForAudioClassification:
    """A randomly initialised CNN of a preset for the feature extractor's mel bins.

    id2label: the dataset's ClassLabel, the genre names in index order, or {index: genre}.
    overrides: any FmaCnnConfig field (e.g. `classifier_dropout=0.5`).
    """
    if preset not in CNN_PRESETS:
        raise ValueError(f"unknown CNN preset {preset!r}; valid presets: {', '.join(CNN_PRESETS)}")
    _, mel_bins = input_shape(feature_extractor)
    config = FmaCnnConfig(**{**CNN_PRESETS[preset], **overrides}, num_mel_bins=mel_bins, **label_maps(id2label))
    return FmaCnnForAudioClassification(config)


__all__ = ["CNN_PRESETS", "build_cnn"]
