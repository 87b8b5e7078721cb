"""AST for FMA genres: named presets, from-scratch models sized to the features, and fine-tuning from an AST
checkpoint with its position embeddings adapted to a new input length or mel resolution.

The models are plain `transformers.ASTForAudioClassification` (SDPA attention), so a saved folder loads and
runs in `pipeline("audio-classification")` with transformers alone. Presets:

    python -c "from hf_fma.models.ast import AST_PRESETS; print(*AST_PRESETS, sep='\\n')"
    hf-fma models        # parameters and forward cost of every preset

Build one the way the training recipes do:

    >>> from transformers import ASTFeatureExtractor
    >>> from hf_fma.models.ast import build_model
    >>> extractor = ASTFeatureExtractor(max_length=500)                       # 5 s crops
    >>> model = build_model("audioset", extractor, ["Electronic", "Rock"])   # or "study-scratch", "tiny", a path
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import torch
from transformers import ASTConfig, ASTForAudioClassification, ASTModel, AutoConfig, FeatureExtractionMixin

if TYPE_CHECKING:
    from datasets import ClassLabel

DEFAULT_AST_CHECKPOINT = "MIT/ast-finetuned-audioset-10-10-0.4593"

# The genres of a model: the dataset's ClassLabel, its names in index order, or {index: name}.
Labels = Union["ClassLabel", Sequence[str], Mapping[int, str]]


@dataclass(frozen=True)
class ASTPreset:
    """A named AST set-up: either `config` settings for a model trained from scratch, or a `checkpoint`."""

    description: str
    config: Mapping[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None


AST_PRESETS: dict[str, ASTPreset] = {
    # The from-scratch AST of the study that reported 40.8% on fma_small (see FMA.md). It gives no strides:
    # these keep ASTConfig's 10 x 10 (patches overlapping by 6, as in the AST paper).
    "study-scratch": ASTPreset(
        "AST from scratch as in the study: patch 16, hidden 768, intermediate 1536, 6 heads, 12 layers, dropout 0.1",
        config=dict(
            patch_size=16,
            hidden_size=768,
            intermediate_size=1536,
            num_attention_heads=6,
            num_hidden_layers=12,
            hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1,
        ),
    ),
    "audioset": ASTPreset(
        f"fine-tune {DEFAULT_AST_CHECKPOINT} (AudioSet mAP 0.459) with a fresh genre head",
        checkpoint=DEFAULT_AST_CHECKPOINT,
    ),
    "tiny": ASTPreset(
        "tiny AST for tests and the offline demo: hidden 32, 2 layers, 2 heads, intermediate 64",
        config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
    ),
}

# Genre classification is single-label; stating it keeps transformers' loss from switching to BCE (and
# the audio pipeline from sigmoid scores) the first time it sees float (mixup) labels.
_PROBLEM_TYPE = "single_label_classification"


def label_maps(id2label: Labels) -> dict[str, dict]:
    """`{"id2label": ..., "label2id": ...}` config arguments from the dataset's `ClassLabel`, its names in
    index order, or an {index: name} mapping."""
    id2label = getattr(id2label, "names", id2label)  # ClassLabel -> names
    if not isinstance(id2label, Mapping):
        id2label = dict(enumerate(id2label))
    if len(id2label) < 2:
        raise ValueError(f"a genre classifier needs at least 2 labels, got {dict(id2label)}")
    id2label = {int(index): str(name) for index, name in id2label.items()}
    return {"id2label": id2label, "label2id": {name: index for index, name in id2label.items()}}


def input_shape(feature_extractor: FeatureExtractionMixin) -> tuple[int, int]:
    """(frames, mel_bins) of the `input_values` the feature extractor produces for one clip.

    Measured by running it on one second of silence rather than read from its attributes, so extractors that
    pool their output (the study's 4 x 4 downscaled features) report the shape the model really receives.
    """
    silence = np.zeros(feature_extractor.sampling_rate, dtype=np.float32)
    features = feature_extractor(silence, sampling_rate=feature_extractor.sampling_rate, return_tensors="np")
    _, frames, mel_bins = features["input_values"].shape  # (1, frames, mel_bins)
    return frames, mel_bins


def patch_grid(config: ASTConfig) -> tuple[int, int]:
    """(frequency, time) patches AST cuts from a (max_length, num_mel_bins) input with this config."""
    if config.num_mel_bins < config.patch_size or config.max_length < config.patch_size:
        raise ValueError(
            f"AST patches of {config.patch_size} need at least {config.patch_size} mel bins and frames, "
            f"got {config.num_mel_bins} mel bins x {config.max_length} frames"
        )
    frequency = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
    time = (config.max_length - config.patch_size) // config.time_stride + 1
    return frequency, time


def adapt_position_embeddings(
    position_embeddings: torch.Tensor, source_grid: tuple[int, int], target_grid: tuple[int, int]
) -> torch.Tensor:
    """Fit AST position embeddings learnt on one patch grid to another, as the AST authors do
    (github.com/YuanGongND/ast, src/models/ast_models.py): per axis, time first, keep the centre when the
    new grid is smaller and interpolate bilinearly when it is larger. The cls and distillation tokens' two
    embeddings are kept as they are.

    position_embeddings: (1, 2 + frequency * time, hidden), patches in AST's order (frequency-major).
    """
    (source_frequency, source_time), (frequency, time) = source_grid, target_grid
    hidden = position_embeddings.shape[-1]
    if position_embeddings.shape[1] != 2 + source_frequency * source_time:
        raise ValueError(
            f"position embeddings of shape {tuple(position_embeddings.shape)} do not match a "
            f"{source_frequency} x {source_time} patch grid plus 2 tokens"
        )
    tokens, patches = position_embeddings[:, :2], position_embeddings[:, 2:]
    grid = patches.transpose(1, 2).reshape(1, hidden, source_frequency, source_time)  # (1, hidden, freq, time)
    if time <= source_time:
        start = source_time // 2 - time // 2
        grid = grid[:, :, :, start : start + time]
    else:
        grid = torch.nn.functional.interpolate(grid, size=(source_frequency, time), mode="bilinear")
    if frequency <= source_frequency:
        start = source_frequency // 2 - frequency // 2
        grid = grid[:, :, start : start + frequency, :]
    else:
        grid = torch.nn.functional.interpolate(grid, size=(frequency, time), mode="bilinear")
    patches = grid.reshape(1, hidden, frequency * time).transpose(1, 2)  # (1, freq * time, hidden)
    return torch.cat([tokens, patches], dim=1)


def _preset(name: str) -> ASTPreset:
    if name not in AST_PRESETS:
        raise ValueError(f"unknown AST preset {name!r}; valid presets: {', '.join(AST_PRESETS)}")
    return AST_PRESETS[name]


def build_ast(
    preset: str,
    num_mel_bins: int,
    max_length: int,
    id2label: Labels,
    **overrides: Any,
) -> ASTForAudioClassification:
    """A randomly initialised AST of a from-scratch preset, sized to (max_length frames, num_mel_bins).

    overrides: any ASTConfig field (e.g. `hidden_dropout_prob=0.2`, `attn_implementation="eager"`).
    """
    settings = _preset(preset)
    if settings.checkpoint is not None:
        raise ValueError(
            f"AST preset {preset!r} fine-tunes {settings.checkpoint}: use load_pretrained_ast or build_model"
        )
    config = ASTConfig(
        **{**settings.config, **overrides},
        num_mel_bins=num_mel_bins,
        max_length=max_length,
        problem_type=_PROBLEM_TYPE,
        **label_maps(id2label),
    )
    patch_grid(config)  # a clear error for inputs smaller than one patch
    return ASTForAudioClassification(config)


def load_pretrained_ast(
    checkpoint: str,
    num_mel_bins: int,
    max_length: int,
    id2label: Labels,
    **overrides: Any,
) -> ASTForAudioClassification:
    """An AST checkpoint (Hub name or folder) ready to fine-tune on (max_length frames, num_mel_bins) inputs.

    Every backbone weight comes from the checkpoint; the position embeddings are cut or interpolated to the
    new patch grid (`adapt_position_embeddings`) instead of being re-initialised; the classification head is
    new, with `id2label`'s genres. overrides: ASTConfig fields that do not change weight shapes (dropout,
    `attn_implementation`).
    """
    source_config = AutoConfig.from_pretrained(checkpoint)
    if not isinstance(source_config, ASTConfig):
        raise ValueError(f"{checkpoint} holds a {type(source_config).__name__}, not an AST checkpoint")
    backbone = ASTModel.from_pretrained(checkpoint, config=source_config)  # the checkpoint's head is dropped

    config = ASTConfig.from_dict(
        {
            **source_config.to_dict(),
            **overrides,
            "num_mel_bins": num_mel_bins,
            "max_length": max_length,
            "problem_type": _PROBLEM_TYPE,
            **label_maps(id2label),
        }
    )
    model = ASTForAudioClassification(config)

    state = backbone.state_dict()
    key = "embeddings.position_embeddings"
    state[key] = adapt_position_embeddings(state[key], patch_grid(source_config), patch_grid(config))
    model.audio_spectrogram_transformer.load_state_dict(state)  # strict: no backbone weight left random
    return model


def build_model(
    name_or_preset: str,
    feature_extractor: FeatureExtractionMixin,
    id2label: Labels,
    **overrides: Any,
) -> ASTForAudioClassification:
    """An AST for the feature extractor's inputs: a preset name from AST_PRESETS, or any AST checkpoint (Hub
    name or folder) to fine-tune. overrides go to the ASTConfig (see build_ast / load_pretrained_ast)."""
    frames, mel_bins = input_shape(feature_extractor)
    if name_or_preset in AST_PRESETS:
        preset = AST_PRESETS[name_or_preset]
        if preset.checkpoint is None:
            return build_ast(name_or_preset, mel_bins, frames, id2label, **overrides)
        name_or_preset = preset.checkpoint
    try:
        return load_pretrained_ast(name_or_preset, mel_bins, frames, id2label, **overrides)
    except OSError as error:
        raise ValueError(
            f"{name_or_preset!r} is neither an AST preset ({', '.join(AST_PRESETS)}) nor a loadable AST "
            f"checkpoint (Hub name or folder): {error}"
        ) from error


__all__ = [
    "AST_PRESETS",
    "ASTPreset",
    "DEFAULT_AST_CHECKPOINT",
    "adapt_position_embeddings",
    "build_ast",
    "build_model",
    "input_shape",
    "label_maps",
    "load_pretrained_ast",
    "patch_grid",
]
