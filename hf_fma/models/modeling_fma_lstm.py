"""The RNN-LSTM baseline: stacked LSTM layers over the feature frames, as a transformers `PreTrainedModel`.

The references the study compares with classified MFCC with an RNN-LSTM; this one takes the same
`input_values` as AST and the CNN (from `FmaASTFeatureExtractor`, MFCC or log-mel), so one feature
pipeline, `Trainer` and `pipeline("audio-classification")` serve all three models. This file is saved
beside the weights and runs as remote code where hf_fma is not installed: it imports only torch,
transformers and its sibling configuration file.
"""

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from .configuration_fma_lstm import FmaLstmConfig


class FmaLstmPreTrainedModel(PreTrainedModel):
    # The library's default initialisation covers every module here: Xavier-uniform LSTM weights with zero
    # biases, normal linear weights of initializer_range.
    config_class = FmaLstmConfig
    base_model_prefix = "fma_lstm"
    main_input_name = "input_values"


class FmaLstmForAudioClassification(FmaLstmPreTrainedModel):
    """RNN-LSTM genre classifier on frame features.

    Input `input_values`: float tensor (batch, frames, num_features), e.g. MFCC from `FmaASTFeatureExtractor`.
    `labels`: class indices, LongTensor (batch,), or class probabilities (mixup), FloatTensor
    (batch, num_labels); the loss is cross-entropy in both cases.
    """

    def __init__(self, config: FmaLstmConfig):
        super().__init__(config)
        self.lstm = nn.LSTM(
            input_size=config.num_features,
            hidden_size=config.hidden_size,
            num_layers=config.num_hidden_layers,
            batch_first=True,
            dropout=config.lstm_dropout if config.num_hidden_layers > 1 else 0.0,
            bidirectional=config.bidirectional,
        )
        pooled_size = config.hidden_size * (2 if config.bidirectional else 1)
        if config.intermediate_size:
            self.dense = nn.Sequential(nn.Linear(pooled_size, config.intermediate_size), nn.ReLU())
            pooled_size = config.intermediate_size
        else:
            self.dense = nn.Identity()
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(pooled_size, config.num_labels)
        self.post_init()

    def pool(self, outputs: torch.Tensor) -> torch.Tensor:
        """(batch, frames, directions * hidden) LSTM outputs -> (batch, directions * hidden)."""
        if self.config.pooling == "mean":
            return outputs.mean(dim=1)
        if not self.config.bidirectional:
            return outputs[:, -1]
        # Each direction's output after it has read every frame: the forward one at the last frame, the
        # backward one at the first.
        hidden = self.config.hidden_size
        return torch.cat([outputs[:, -1, :hidden], outputs[:, 0, hidden:]], dim=-1)

    # No **kwargs on purpose: Trainer would then pass `num_items_in_batch` and stop dividing the loss by the
    # gradient-accumulation steps, expecting the model to do it.
    def forward(self, input_values: torch.Tensor, labels: torch.Tensor | None = None) -> SequenceClassifierOutput:
        if input_values.dim() != 3 or input_values.shape[-1] != self.config.num_features:
            raise ValueError(
                f"input_values must be (batch, frames, {self.config.num_features} features), got shape "
                f"{tuple(input_values.shape)}: use the feature extractor saved with this model"
            )
        outputs, _ = self.lstm(input_values)  # (batch, frames, directions * hidden_size)
        logits = self.classifier(self.dropout(self.dense(self.pool(outputs))))  # (batch, num_labels)

        loss = None
        if labels is not None:
            # cross_entropy takes class indices (batch,) or class probabilities (batch, num_labels).
            loss = nn.functional.cross_entropy(logits, labels.to(logits.device))
        return SequenceClassifierOutput(loss=loss, logits=logits)


__all__ = ["FmaLstmForAudioClassification", "FmaLstmPreTrainedModel"]
