"""The CNN baseline: convolution blocks over the log-mel spectrogram, as a transformers `PreTrainedModel`.

It takes the same `input_values` as AST (from `ASTFeatureExtractor`), so one feature pipeline, `Trainer`
and `pipeline("audio-classification")` serve both models. This file is saved beside the weights and runs
as remote code where hf_fma is not installed: it imports only torch, transformers and its sibling
configuration file.
"""

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from .configuration_fma_cnn import FmaCnnConfig


class FmaCnnConvBlock(nn.Module):
    """Convolution ("same" padding), batch norm, ReLU, max pooling."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, pool_size: int):
        super().__init__()
        # No convolution bias: the batch norm right after it has its own.
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)
        self.activation = nn.ReLU()
        self.pool = nn.MaxPool2d(pool_size, ceil_mode=True)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.pool(self.activation(self.norm(self.conv(hidden_states))))


class FmaCnnPreTrainedModel(PreTrainedModel):
    # The library's default initialisation (normal weights, unit batch norms) suffices: batch norm follows
    # every convolution, so the convolution weights' scale does not reach the activations.
    config_class = FmaCnnConfig
    base_model_prefix = "fma_cnn"
    main_input_name = "input_values"


class FmaCnnForAudioClassification(FmaCnnPreTrainedModel):
    """CNN genre classifier on log-mel features.

    Input `input_values`: float tensor (batch, frames, mel_bins), e.g. from `ASTFeatureExtractor`.
    `labels`: class indices, LongTensor (batch,), or class probabilities (mixup), FloatTensor
    (batch, num_labels); the loss is cross-entropy in both cases.
    """

    def __init__(self, config: FmaCnnConfig):
        super().__init__(config)
        in_channels = [1, *config.hidden_sizes[:-1]]
        self.blocks = nn.ModuleList(
            FmaCnnConvBlock(n_in, n_out, kernel, pool)
            for n_in, n_out, kernel, pool in zip(
                in_channels, config.hidden_sizes, config.kernel_sizes, config.pool_sizes, strict=True
            )
        )
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_sizes[-1], config.num_labels)
        self.post_init()

    # No **kwargs on purpose: Trainer would then pass `num_items_in_batch` and stop dividing the loss by the
    # gradient-accumulation steps, expecting the model to do it.
    def forward(self, input_values: torch.Tensor, labels: torch.Tensor | None = None) -> SequenceClassifierOutput:
        if input_values.dim() != 3 or input_values.shape[-1] != self.config.num_mel_bins:
            raise ValueError(
                f"input_values must be (batch, frames, {self.config.num_mel_bins} mel bins), got shape "
                f"{tuple(input_values.shape)}: use the feature extractor saved with this model"
            )
        hidden_states = input_values.transpose(1, 2).unsqueeze(1)  # (batch, 1, mel_bins, frames)
        for block in self.blocks:
            hidden_states = block(hidden_states)  # (batch, channels, mel_bins / pool, frames / pool)
        # Global average pooling: any number of frames (5 s crops, whole tracks) maps to one vector.
        pooled = hidden_states.mean(dim=(2, 3))  # (batch, hidden_sizes[-1])
        logits = self.classifier(self.dropout(pooled))  # (batch, num_labels)

        loss = None
        if labels is not None:
            # cross_entropy takes class indices (batch,) or class probabilities (batch, num_labels).
            loss = nn.functional.cross_entropy(logits, labels.to(logits.device))
        return SequenceClassifierOutput(loss=loss, logits=logits)


__all__ = ["FmaCnnForAudioClassification", "FmaCnnPreTrainedModel"]
