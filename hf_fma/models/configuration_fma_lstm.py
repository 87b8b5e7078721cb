"""Configuration of the RNN-LSTM baseline (`FmaLstmForAudioClassification`).

This file is saved beside the weights and runs as remote code (`trust_remote_code=True`) where hf_fma is
not installed: it may import only transformers.
"""

from transformers import PretrainedConfig

POOLING_MODES = ("last", "mean")


class FmaLstmConfig(PretrainedConfig):
    r"""
    Configuration of the RNN-LSTM baseline: stacked LSTM layers over the feature frames (MFCC or log-mel),
    the last layer's output pooled over time, a dense ReLU layer, dropout and a linear classifier.

    Args:
        num_features (`int`, *optional*, defaults to 13):
            Values per frame of the input features (the last axis of `input_values`): 13 for 13 MFCC, 39 with
            deltas and delta-deltas, the mel bins for log-mel features.
        hidden_size (`int`, *optional*, defaults to 64):
            Units of each LSTM layer (per direction).
        num_hidden_layers (`int`, *optional*, defaults to 2):
            Stacked LSTM layers.
        bidirectional (`bool`, *optional*, defaults to `False`):
            Whether each layer also reads the frames backwards (the pooled output then has 2 x hidden_size).
        lstm_dropout (`float`, *optional*, defaults to 0.0):
            Dropout between LSTM layers (torch's `nn.LSTM(dropout=...)`).
        pooling (`str`, *optional*, defaults to `"last"`):
            How the frames' outputs become one vector: `"last"`, the output at the last frame (for a
            bidirectional LSTM, the forward direction's last and the backward direction's first), or `"mean"`
            over all frames.
        intermediate_size (`int`, *optional*, defaults to 64):
            Units of the dense ReLU layer before the classifier; 0 leaves it out.
        classifier_dropout (`float`, *optional*, defaults to 0.3):
            Dropout before the classifier.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialisation of the linear layers (LSTM weights: Xavier
            uniform, biases zero, transformers' default for `nn.LSTM`).

    Example:

    ```python
    >>> from hf_fma.models import FmaLstmConfig, FmaLstmForAudioClassification

    >>> labels = {"id2label": {0: "Electronic", 1: "Rock"}, "label2id": {"Electronic": 0, "Rock": 1}}
    >>> config = FmaLstmConfig(num_features=13, **labels)
    >>> model = FmaLstmForAudioClassification(config)
    ```"""

    model_type = "fma_lstm"

    def __init__(
        self,
        num_features: int = 13,
        hidden_size: int = 64,
        num_hidden_layers: int = 2,
        bidirectional: bool = False,
        lstm_dropout: float = 0.0,
        pooling: str = "last",
        intermediate_size: int = 64,
        classifier_dropout: float = 0.3,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {', '.join(POOLING_MODES)}, got {pooling!r}")
        for name, value in (("lstm_dropout", lstm_dropout), ("classifier_dropout", classifier_dropout)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if num_features < 1 or hidden_size < 1 or num_hidden_layers < 1 or intermediate_size < 0:
            raise ValueError(
                "FmaLstmConfig needs num_features, hidden_size and num_hidden_layers >= 1 and intermediate_size "
                f">= 0, got {num_features}, {hidden_size}, {num_hidden_layers} and {intermediate_size}"
            )
        self.num_features = num_features
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.bidirectional = bidirectional
        self.lstm_dropout = lstm_dropout
        self.pooling = pooling
        self.intermediate_size = intermediate_size
        self.classifier_dropout = classifier_dropout
        self.initializer_range = initializer_range
        super().__init__(**kwargs)


__all__ = ["FmaLstmConfig"]
