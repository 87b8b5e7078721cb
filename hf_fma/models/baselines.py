"""Named set-ups of the baselines trained from scratch, the CNN and the RNN-LSTM, sized to the features in
use, for the training recipes.

    >>> from transformers import ASTFeatureExtractor
    >>> from hf_fma.models import FmaASTFeatureExtractor, build_cnn, build_lstm
    >>> cnn = build_cnn("study", ASTFeatureExtractor(max_length=500), ["Electronic", "Rock"])
    >>> lstm = build_lstm("study", FmaASTFeatureExtractor(max_length=500, num_mfcc=13), ["Electronic", "Rock"])

`hf-fma models` prints each preset's parameters and forward cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from transformers import FeatureExtractionMixin, PretrainedConfig, PreTrainedModel

from .ast import Labels, input_shape, label_maps
from .modeling_fma_cnn import FmaCnnForAudioClassification
from .modeling_fma_lstm import FmaLstmForAudioClassification

# name -> FmaCnnConfig settings (besides num_mel_bins and the labels, which come from the data).
CNN_PRESETS: dict[str, dict[str, Any]] = {
    # The study reports the CNN's structure (5 blocks of convolution, batch norm, ReLU, max pooling, then
    # dropout and a linear layer), not its widths: FmaCnnConfig's defaults, channels doubling from 32.
    "study": {},
    "tiny": dict(hidden_sizes=[4, 8, 8, 16, 32]),
}

# name -> FmaLstmConfig settings (besides num_features and the labels, which come from the data).
LSTM_PRESETS: dict[str, dict[str, Any]] = {
    # The references' RNN-LSTM on MFCC: two LSTM layers of 64 units, the last frame's output, a dense ReLU
    # layer of 64, dropout 0.3 and the classifier: FmaLstmConfig's defaults.
    "study": {},
    # Tests and the demo; the mean over frames learns faster than the last frame from few, short examples.
    "tiny": dict(hidden_size=32, num_hidden_layers=2, intermediate_size=32, classifier_dropout=0.1, pooling="mean"),
}


@dataclass(frozen=True)
class Baseline:
    """A baseline architecture: its model class, its presets, and the config field that takes the
    features' values per frame (the last axis of `input_values`)."""

    name: str
    model_class: type[PreTrainedModel]
    presets: Mapping[str, Mapping[str, Any]]
    input_size_field: str

    def config(self, preset: str, values_per_frame: int, id2label: Labels, **overrides: Any) -> PretrainedConfig:
        """The config of a preset for inputs of `values_per_frame`; overrides: any field of the config."""
        if preset not in self.presets:
            raise ValueError(f"unknown {self.name} preset {preset!r}; valid presets: {', '.join(self.presets)}")
        return self.model_class.config_class(
            **{**self.presets[preset], **overrides}, **{self.input_size_field: values_per_frame}, **label_maps(id2label)
        )

    def build(
        self, preset: str, feature_extractor: FeatureExtractionMixin, id2label: Labels, **overrides: Any
    ) -> PreTrainedModel:
        """A randomly initialised model of a preset for the feature extractor's values per frame.

        id2label: the dataset's ClassLabel, the genre names in index order, or {index: genre}.
        overrides: any field of the model's config (e.g. `classifier_dropout=0.5`, `bidirectional=True`).
        """
        _, values_per_frame = input_shape(feature_extractor)
        return self.model_class(self.config(preset, values_per_frame, id2label, **overrides))


CNN = Baseline("CNN", FmaCnnForAudioClassification, CNN_PRESETS, "num_mel_bins")
LSTM = Baseline("LSTM", FmaLstmForAudioClassification, LSTM_PRESETS, "num_features")
build_cnn = CNN.build
build_lstm = LSTM.build

__all__ = ["CNN", "CNN_PRESETS", "LSTM", "LSTM_PRESETS", "Baseline", "build_cnn", "build_lstm"]
