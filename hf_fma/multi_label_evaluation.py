"""The multi-label side of `hf_fma.evaluation`: a multi-label model's crop logits scored per track (its
report is `hf_fma.evaluation_report`'s).

A multi-label model (hf_fma.multi_label) gives one independent score per genre: the sigmoid of the mean
of a track's crop logits, at track level. The package's `multi_label_genres` module (loaded by local path,
like the genre metric) ranks them (mAP, micro AP, ROC-AUC, per-genre AP) and thresholds them (micro and
macro F1), and `hierarchy_violation_rate` counts the predicted sub-genres whose parent genre is missing.
The threshold is one for both levels: the one given, else the model's saved `multi_label_threshold`, else
the best track-level micro-F1 threshold of the split scored (which only the validation split may choose).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import evaluate
import numpy as np

from hf_fma.multi_label import ancestor_pairs, hierarchy_violation_rate

MULTI_LABEL_METRIC_PATH = Path(__file__).resolve().parent / "metrics" / "multi_label_genres"
def load_multi_label_metric() -> evaluate.EvaluationModule:
    """The package's multi-label genre metric (no Hub access; kept in memory, as the genre metric)."""
    return evaluate.load(str(MULTI_LABEL_METRIC_PATH), keep_in_memory=True)


def sigmoid_scores(logits: np.ndarray) -> np.ndarray:
    """Float32 scores, as the metric module stores its predictions: a threshold it chooses is one of them
    exactly, so comparing these scores with it predicts what it counted."""
    return (1 / (1 + np.exp(-np.asarray(logits, dtype=np.float64)))).astype(np.float32)


def score_multi_label(
    config,
    clip_logits: np.ndarray,
    clip_truth: np.ndarray,
    track_ids: np.ndarray,
    first_row: np.ndarray,
    track_logits: np.ndarray,
    threshold: float | None,
    geometry: Mapping[str, Any],
) -> dict[str, Any]:
    """evaluate_model's result for a multi-label model (`config`, its PretrainedConfig): clip logits and
    multi-hot truth (clips, genres), the tracks' ids, first clip rows and mean logits (tracks, genres);
    `geometry` holds labels, n_crops, crop_seconds and num_tracks."""
    label_names = geometry["labels"]
    if threshold is not None:
        source = "given"
    elif getattr(config, "multi_label_threshold", None) is not None:
        threshold, source = config.multi_label_threshold, "model"
    else:
        source = "chosen"
    pairs = ancestor_pairs(label_names, getattr(config, "genre_parents", None) or {})
    metric = load_multi_label_metric()
    clip_truth = np.asarray(clip_truth, dtype=np.int32)
    track_truth = clip_truth[first_row]
    track_scores = sigmoid_scores(track_logits)
    levels = {}
    # The track level first: with no threshold given it chooses the one the clip level is scored at too.
    for level, scores, truth in (("track", track_scores, track_truth), ("clip", sigmoid_scores(clip_logits), clip_truth)):
        result = metric.compute(predictions=scores, references=truth, label_names=label_names, threshold=threshold)
        result.pop("label_names")
        threshold = result["threshold"]
        result["hierarchy_violation_rate"] = hierarchy_violation_rate(scores >= threshold, pairs)
        levels[level] = result
    names = np.array(label_names, dtype=object)
    return {
        "task": "multi_label",
        **geometry,
        "num_clips": len(clip_truth),
        "threshold_source": source,
        "clip": levels["clip"],
        "track": levels["track"],
        "tracks": {
            "track_id": track_ids.tolist(),
            "genres": [names[row == 1].tolist() for row in track_truth],
            "predicted": [names[row >= threshold].tolist() for row in track_scores],
        },
    }


__all__ = [
    "MULTI_LABEL_METRIC_PATH",
    "load_multi_label_metric",
    "score_multi_label",
    "sigmoid_scores",
]
