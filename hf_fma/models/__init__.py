"""The models of hf-fma: AST presets (`hf_fma.models.ast`), the CNN and RNN-LSTM baselines
(`hf_fma.models.baselines`), and loading a trained classifier (`hf_fma.models.loading`).

Importing this package registers the CNN and the LSTM with transformers twice over:
- `AutoConfig` / `AutoModelForAudioClassification` know `model_type="fma_cnn"` and `"fma_lstm"`, so the
  Auto classes and `pipeline("audio-classification")` load such a folder wherever hf_fma is installed;
- `register_for_auto_class` makes `save_pretrained` copy the configuration and modeling files beside the
  weights and write `auto_map`, so the folder also loads with `trust_remote_code=True` where hf_fma is not.
"""

from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification

from .ast import (
    AST_PRESETS,
    DEFAULT_AST_CHECKPOINT,
    adapt_position_embeddings,
    build_ast,
    build_model,
    load_pretrained_ast,
)
from .baselines import CNN_PRESETS, LSTM_PRESETS, build_cnn, build_lstm
from .configuration_fma_cnn import FmaCnnConfig
from .configuration_fma_lstm import FmaLstmConfig
from .feature_extraction_fma_ast import FmaASTFeatureExtractor  # registers itself for auto-class saving
from .modeling_fma_cnn import FmaCnnForAudioClassification
from .modeling_fma_lstm import FmaLstmForAudioClassification

for config_class, model_class in (
    (FmaCnnConfig, FmaCnnForAudioClassification),
    (FmaLstmConfig, FmaLstmForAudioClassification),
):
    AutoConfig.register(config_class.model_type, config_class)
    AutoModelForAudioClassification.register(config_class, model_class)
    config_class.register_for_auto_class()
    model_class.register_for_auto_class("AutoModelForAudioClassification")
# AutoFeatureExtractor resolves a non-transformers `feature_extractor_type` only through its registry, which
# is keyed by a config class: any of ours does; this makes downscaled-feature folders load without
# trust_remote_code wherever hf_fma is imported.
AutoFeatureExtractor.register(FmaCnnConfig, FmaASTFeatureExtractor)

__all__ = [
    "AST_PRESETS",
    "CNN_PRESETS",
    "DEFAULT_AST_CHECKPOINT",
    "FmaASTFeatureExtractor",
    "FmaCnnConfig",
    "FmaCnnForAudioClassification",
    "FmaLstmConfig",
    "FmaLstmForAudioClassification",
    "LSTM_PRESETS",
    "adapt_position_embeddings",
    "build_ast",
    "build_cnn",
    "build_lstm",
    "build_model",
    "load_pretrained_ast",
]
