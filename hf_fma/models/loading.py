"""A trained audio classifier ready to score: the model in eval mode on a device, and its feature extractor.

Loading is model work shared by the commands that score audio: `hf-fma predict` (`hf_fma.predict`) and
`hf-fma evaluate` on a saved run.

    >>> from hf_fma.models.loading import load_classifier
    >>> model, feature_extractor = load_classifier("runs/ast-small", device="cpu")
"""

from __future__ import annotations

import os
import warnings

import torch
from transformers import (
    ASTConfig,
    ASTFeatureExtractor,
    AutoFeatureExtractor,
    AutoModelForAudioClassification,
    PreTrainedModel,
)

from hf_fma.fbank import EMPTY_MEL_FILTER_WARNING

from .ast import input_shape


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """"auto" (or None): the first GPU when there is one, else the CPU; otherwise any torch device name."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but torch sees no CUDA GPU; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} requested but MPS is not available; use --device cpu")
    return device


def load_classifier(
    model_or_path: str | os.PathLike | PreTrainedModel,
    feature_extractor: ASTFeatureExtractor | None = None,
    device: str | torch.device | None = "auto",
    trust_remote_code: bool = False,
) -> tuple[PreTrainedModel, ASTFeatureExtractor]:
    """The model in eval mode on `device`, and its feature extractor.

    model_or_path: a saved model folder (or Hub name) holding the feature extractor too, or a loaded
    audio-classification model, in which case `feature_extractor` is required.
    trust_remote_code: run the Python files the folder's `auto_map` names. Off, a model whose classes only
    that code defines is refused, whether it is a Hub repository or a local folder (a folder may be a copy
    of one); transformers' own models and the classes `import hf_fma` registers (the CNN, the pooling
    feature extractor) load from the installed packages, never from the folder's copies of their code.
    """
    device = resolve_device(device)
    if isinstance(model_or_path, PreTrainedModel):
        if feature_extractor is None:
            raise ValueError("predicting with a loaded model needs its feature_extractor too")
        model = model_or_path
    else:
        try:
            # trust_remote_code is always given: left None, transformers would prompt on a terminal.
            model = AutoModelForAudioClassification.from_pretrained(model_or_path, trust_remote_code=trust_remote_code)
            if feature_extractor is None:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=EMPTY_MEL_FILTER_WARNING)
                    feature_extractor = AutoFeatureExtractor.from_pretrained(model_or_path, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as error:
            if not trust_remote_code and "trust_remote_code" in str(error):
                raise ValueError(
                    f"{model_or_path!s} needs Python code of its own (auto_map in its config) to load; hf-fma runs it "
                    "only when asked: read the code, then pass --trust_remote_code"
                ) from error
            raise ValueError(f"cannot load an audio-classification model from {model_or_path!s}: {error}") from error
    if not isinstance(feature_extractor, ASTFeatureExtractor):
        raise ValueError(
            f"predict computes AST log-mel features (ASTFeatureExtractor or FmaASTFeatureExtractor), but the "
            f"model comes with a {type(feature_extractor).__name__}"
        )
    _check_model_takes_features(model, feature_extractor)
    return model.to(device).eval(), feature_extractor


def _check_model_takes_features(model: PreTrainedModel, feature_extractor: ASTFeatureExtractor) -> None:
    """Refuse, before any decoding, a model that does not take the extractor's (frames, mel bins) input:
    the AST and the CNN declare the mel bins they take (`num_mel_bins`), the AST also its frames
    (`max_length`); a model without them (Wav2Vec2 takes raw samples) would fail deep in its first layer."""
    model_class, extractor_class = type(model).__name__, type(feature_extractor).__name__
    config = model.config
    if getattr(config, "num_mel_bins", None) is None:
        raise ValueError(
            f"the model {model_class} does not take the log-mel features of its feature extractor "
            f"{extractor_class} (its config declares no num_mel_bins): predict needs an AST or hf-fma CNN model"
        )
    frames, mel_bins = input_shape(feature_extractor)  # pooled, for FmaASTFeatureExtractor's 4 x 4 features
    expected = {"mel bins": (config.num_mel_bins, mel_bins)}
    if isinstance(config, ASTConfig):  # position embeddings for exactly max_length frames
        expected["frames"] = (config.max_length, frames)
    wrong = [f"{takes} {name} but {extractor_class} gives {gives}" for name, (takes, gives) in expected.items() if takes != gives]
    if wrong:
        raise ValueError(f"the model {model_class} does not fit its feature extractor: it takes {'; '.join(wrong)}")


__all__ = ["load_classifier", "resolve_device"]
