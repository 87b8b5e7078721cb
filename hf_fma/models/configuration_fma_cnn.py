"""Configuration of the CNN baseline (`FmaCnnForAudioClassification`).

This file is saved beside the weights and runs as remote code (`trust_remote_code=True`) where hf_fma is
not installed: it may import only transformers.
"""

from transformers import PretrainedConfig


class FmaCnnConfig(PretrainedConfig):
    r"""
    Configuration of the CNN baseline: convolution blocks (convolution, batch norm, ReLU, max pooling) over the
    log-mel spectrogram, global average pooling, dropout and a linear classifier.

    Args:
        num_mel_bins (`int`, *optional*, defaults to 128):
            Mel bins of the input features (the last axis of `input_values`); 32 for the study's features
            downscaled by 4. The number of frames is free: global pooling makes the head independent of it.
        hidden_sizes (`list[int]`, *optional*, defaults to `[32, 64, 128, 256, 512]`):
            Output channels of each convolution block; its length is the number of blocks.
        kernel_sizes (`list[int]`, *optional*, defaults to `[3, 3, 3, 3, 3]`):
            Square convolution kernel of each block ("same" padding).
        pool_sizes (`list[int]`, *optional*, defaults to `[2, 2, 2, 2, 2]`):
            Square max-pooling window (and stride) of each block. Pooling rounds up, so an axis already
            pooled down to one bin stays one bin instead of failing.
        classifier_dropout (`float`, *optional*, defaults to 0.3):
            Dropout on the pooled features before the classifier.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialisation of convolution and linear weights.

    Example:

    ```python
    >>> from hf_fma.models import FmaCnnConfig, FmaCnnForAudioClassification

    >>> labels = {"id2label": {0: "Electronic", 1: "Rock"}, "label2id": {"Electronic": 0, "Rock": 1}}
    >>> config = FmaCnnConfig(num_mel_bins=32, **labels)
    >>> model = FmaCnnForAudioClassification(config)
    ```"""

    model_type = "fma_cnn"

    def __init__(
        self,
        num_mel_bins: int = 128,
        hidden_sizes: list[int] | tuple[int, ...] = (32, 64, 128, 256, 512),
        kernel_sizes: list[int] | tuple[int, ...] = (3, 3, 3, 3, 3),
        pool_sizes: list[int] | tuple[int, ...] = (2, 2, 2, 2, 2),
        classifier_dropout: float = 0.3,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        blocks = {"hidden_sizes": hidden_sizes, "kernel_sizes": kernel_sizes, "pool_sizes": pool_sizes}
        if len({len(sizes) for sizes in blocks.values()}) != 1:
            raise ValueError(f"FmaCnnConfig needs one value per convolution block in each of {blocks}")
        if not 0.0 <= classifier_dropout < 1.0:
            raise ValueError(f"classifier_dropout must be in [0, 1), got {classifier_dropout}")
        self.num_mel_bins = num_mel_bins
        # Lists, not tuples: the values round-trip through config.json.
        self.hidden_sizes = list(hidden_sizes)
        self.kernel_sizes = list(kernel_sizes)
        self.pool_sizes = list(pool_sizes)
        self.classifier_dropout = classifier_dropout
        self.initializer_range = initializer_range
        super().__init__(**kwargs)


__all__ = ["FmaCnnConfig"]
