"""The training loss for transformers' Trainer (`compute_loss_func`)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F


def cross_entropy_loss(
    outputs, labels: torch.Tensor, num_items_in_batch=None, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Cross-entropy for `Trainer(compute_loss_func=...)`, with class indices (batch,) or the class
    probabilities (batch, num_labels) that Mixup produces. Normalised by `num_items_in_batch` when the
    Trainer passes it (gradient accumulation), which counts probability labels once per class.

    `label_smoothing` is `TrainingArguments.label_smoothing_factor` (bind it with functools.partial):
    Trainer applies its own label smoother only when no `compute_loss_func` is given. Targets become
    (1 - label_smoothing) * target + label_smoothing / num_labels, as transformers' `LabelSmoother` does,
    for mixed labels too."""
    logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[0]
    # F.cross_entropy takes both forms; ignore_index applies to class indices only.
    total = F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum", label_smoothing=label_smoothing)
    if labels.dim() == 2:  # probabilities
        count = len(labels) if num_items_in_batch is None else num_items_in_batch / labels.shape[-1]
    else:
        count = (labels != -100).sum() if num_items_in_batch is None else num_items_in_batch
    return total / count


__all__ = ["cross_entropy_loss"]
