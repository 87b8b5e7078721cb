"""Named set-ups of the RNN-LSTM baseline, sized to the features in use, for the training recipes.

    >>> from hf_fma.models import FmaASTFeatureExtractor
    >>> from hf_fma.models.lstm import build_lstm
    >>> extractor = FmaASTFeatureExtractor(max_length=500, num_mfcc=13)
    >>> model = build_lstm("study", extractor, ["Electronic", "Rock"])

`hf-fma models` prints each preset's parameters and forward cost.
"""

from __future__ import annotations

from typing import Any

from transformers import FeatureExtractionMixin

from .ast import Labels, input_shape, label_maps
from .configuration_fma_lstm import FmaLstmConfig
from .modeling_fma_lstm import FmaLstmForAudioClassification

# name -> FmaLstmConfig settings (besides num_features and the labels, which come from the data).
LSTM_PRESETS: dict[str, dict[str, Any]] = {
    # The references' RNN-LSTM on MFCC: two LSTM layers of 64 units, the last frame's output, a dense ReLU
    # layer of 64, dropout 0.3 and the classifier: FmaLstmConfig's defaults.
    "study": {},
    # Tests and the demo; the mean over frames learns faster than the last frame from few, short examples.
    "tiny": dict(hidden_size=32, num_hidden_layers=2, intermediate_size=32, classifier_dropout=0.1, pooling="mean"),
}


def build_lstm(
    preset: str,
    feature_extractor: FeatureExtractionMixin,
    id2label: Labels,
    **overrides: Any,
) -> FmaLstmForAudioClassification:
    """A randomly initialised LSTM of a preset for the feature extractor's values per frame.

    id2label: the dataset's ClassLabel, the genre names in index order, or {index: genre}.
    overrides: any FmaLstmConfig field (e.g. `bidirectional=True`).
    """
    if preset not in LSTM_PRESETS:
        raise ValueError(f"unknown LSTM preset {preset!r}; valid presets: {', '.join(LSTM_PRESETS)}")
    _, num_features = input_shape(feature_extractor)
    config = FmaLstmConfig(**{**LSTM_PRESETS[preset], **overrides}, num_features=num_features, **label_maps(id2label))
    return FmaLstmForAudioClassification(config)


__all__ = ["LSTM_PRESETS", "build_lstm"]
