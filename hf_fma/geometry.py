"""AST's audio geometry: the sampling rate, the fbank's frames, and seconds <-> samples <-> frames.

`ASTFeatureExtractor` computes a Kaldi fbank of 16 kHz audio with 25 ms frames (400 samples) every 10 ms
(160 samples), none padded at the edges (Kaldi's `snip_edges`), then pads or truncates to `max_length`
frames. A model trained on crops of `crop_seconds` has a feature extractor of `crop_frames(crop_seconds)`
frames (one per 10 ms: 500 for 5 s), and every part of the package (training, evaluation, `hf-fma
predict`, reports) cuts the same `crop_samples(max_length)` samples for it (80,000 for 5 s). Such a crop
makes `num_frames(80_000) = 498` fbank frames; the extractor pads the other 2, in training as everywhere.

    >>> from hf_fma.geometry import crop_frames, crop_samples, num_frames
    >>> crop_frames(3.0), crop_samples(300), num_frames(48_000)
    (300, 48000, 298)

The crop length of a trained model is read back only here: from its feature extractor (or the extractor's
saved `preprocessor_config.json`, read as a dict) with `extractor_crop_frames`, `extractor_crop_seconds` and
`extractor_crop_samples`, and from a run's saved arguments with `run_crop_seconds`.

This module imports nothing of the package, so every other module can use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SAMPLING_RATE = 16_000  # AST's input rate (ASTFeatureExtractor.sampling_rate)
FRAME_LENGTH = 400  # samples: 25 ms Kaldi frames at 16 kHz
HOP_LENGTH = 160  # samples: 10 ms between frames
FRAMES_PER_SECOND = SAMPLING_RATE // HOP_LENGTH  # 100: what a feature extractor's max_length counts


def seconds_to_samples(seconds: float, sampling_rate: int = SAMPLING_RATE) -> int:
    """Samples in `seconds` of audio at `sampling_rate`, rounded to the nearest one."""
    return round(seconds * sampling_rate)


def num_frames(num_samples):
    """Fbank frames of `num_samples` samples at 16 kHz, as ASTFeatureExtractor (Kaldi, snip_edges) makes
    them: 1 + (num_samples - 400) // 160, 0 below one frame. Element-wise for an integer tensor or array."""
    frames = 1 + (num_samples - FRAME_LENGTH) // HOP_LENGTH
    return frames * (frames > 0)  # int * bool stays an int; element-wise for tensors and arrays


def crop_frames(crop_seconds: float) -> int:
    """The feature extractor's `max_length` for crops of `crop_seconds`: one frame per 10 ms hop.
    Raises ValueError unless `crop_seconds` is a positive whole number of hops, so that the crop length
    in samples can be read back from `max_length` (`crop_samples`) by evaluation and predict."""
    frames = crop_seconds * FRAMES_PER_SECOND
    if not frames >= 1 or abs(frames - round(frames)) > 1e-6:
        raise ValueError(
            f"crop_seconds must be a positive multiple of {1 / FRAMES_PER_SECOND} s (the fbank's 10 ms hop), "
            f"got {crop_seconds!r}: round it, e.g. to {max(round(frames), 1) / FRAMES_PER_SECOND}"
        )
    return round(frames)


def frames_to_seconds(frames: int) -> float:
    """Seconds that `frames` 10 ms hops span: the crop length of a model whose feature extractor has
    `max_length = frames` (the inverse of crop_frames)."""
    return frames / FRAMES_PER_SECOND


def crop_samples(max_length: int, sampling_rate: int = SAMPLING_RATE) -> int:
    """Samples of the crops a model whose feature extractor has `max_length` frames was trained on (its
    windows in `hf-fma predict`): `max_length * 160` at 16 kHz, 48,000 for 300 frames."""
    return seconds_to_samples(frames_to_seconds(max_length), sampling_rate)


def _extractor_setting(feature_extractor: Any, name: str, default: Any = None) -> Any:
    """A setting of a feature extractor object, or of its saved config read as a dict (run folders are
    read without building the extractor)."""
    if isinstance(feature_extractor, Mapping):
        return feature_extractor.get(name, default)
    return getattr(feature_extractor, name, default)


def extractor_crop_frames(feature_extractor: Any) -> int:
    """Frames of the crops the extractor's model was trained on: its `max_length`."""
    return int(_extractor_setting(feature_extractor, "max_length"))


def extractor_crop_seconds(feature_extractor: Any) -> float:
    """Seconds of audio the extractor's `max_length` frames hold: the crop length its model was trained on."""
    return frames_to_seconds(extractor_crop_frames(feature_extractor))


def extractor_crop_samples(feature_extractor: Any) -> int:
    """Samples, at the extractor's sampling rate, of the crops its model was trained on: `hf-fma predict`'s
    windows."""
    sampling_rate = int(_extractor_setting(feature_extractor, "sampling_rate", SAMPLING_RATE))
    return crop_samples(extractor_crop_frames(feature_extractor), sampling_rate)


def run_crop_seconds(run_config: Mapping[str, Any], feature_config: Mapping[str, Any]) -> float:
    """The crop length of a saved run: the `crop_seconds` its arguments recorded, else (arguments saved
    without it) its feature extractor's."""
    if "crop_seconds" in run_config:
        return float(run_config["crop_seconds"])
    return extractor_crop_seconds(feature_config)


__all__ = [
    "FRAMES_PER_SECOND",
    "FRAME_LENGTH",
    "HOP_LENGTH",
    "SAMPLING_RATE",
    "crop_frames",
    "crop_samples",
    "extractor_crop_frames",
    "extractor_crop_samples",
    "extractor_crop_seconds",
    "frames_to_seconds",
    "num_frames",
    "run_crop_seconds",
    "seconds_to_samples",
]
