"""The multi-label side of `hf_fma.evaluation`: a multi-label model's crop logits scored per track, and
the report of that score.

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
# The multi-label metric's fields as `flat_metrics` names them in all_results.json.
MULTI_LABEL_FLAT_NAMES = {
    "map": "mean_average_precision",
    "micro_ap": "micro_average_precision",
    "macro_roc_auc": "macro_roc_auc",
    "micro_roc_auc": "micro_roc_auc",
    "micro_f1": "micro_f1",
    "macro_f1": "macro_f1",
    "hierarchy_violation_rate": "hierarchy_violation_rate",
}
# evaluate_model's "threshold_source" -> what the report says of the threshold.
THRESHOLD_SOURCES = {
    "given": "given for this evaluation",
    "model": "the model's saved `multi_label_threshold`, which training chooses on the validation split",
    "chosen": "chosen on this split for the best track-level micro-F1",
}


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


def _score(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.3f}"


def multi_label_markdown(evaluation: Mapping[str, Any], introduction: str, heading: str = "##") -> list[str]:
    """The lines of a multi-label evaluation's report, after `introduction` (the tracks and crops scored):
    ranking and threshold metrics per level, the threshold and the hierarchy, each genre's average
    precision."""
    track, clip = evaluation["track"], evaluation["clip"]
    lines = [
        introduction + " A genre's score is the sigmoid of its logit.",
        "",
        "| Level | mAP | Micro AP | Macro ROC-AUC | Micro ROC-AUC | Micro-F1 | Macro-F1 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for level, scores in (("clip", clip), ("track", track)):
        values = [
            scores[key]
            for key in ("mean_average_precision", "micro_average_precision", "macro_roc_auc", "micro_roc_auc",
                        "micro_f1", "macro_f1")
        ]
        lines.append(f"| {level} | " + " | ".join(_score(value) for value in values) + " |")
    lines += [
        "",
        f"A genre is predicted when its score is at least {track['threshold']:.4f} "
        f"({THRESHOLD_SOURCES[evaluation['threshold_source']]}); F1 is at that threshold, mAP and ROC-AUC "
        f"need none. {100 * track['hierarchy_violation_rate']:.1f}% of the sub-genres predicted at track level "
        "come without a parent genre that the model scores too.",
        "",
        f"{heading} Average precision per genre (track level)",
        "",
        "| Genre | AP | Tracks |",
        "| --- | ---: | ---: |",
    ]
    support = dict.fromkeys(evaluation["labels"], 0)
    for genres in evaluation["tracks"]["genres"]:
        for genre in genres:
            support[genre] += 1
    for genre in evaluation["labels"]:
        precision = track["per_genre_average_precision"].get(genre, float("nan"))
        lines.append(f"| {genre} | {_score(precision)} | {support[genre]} |")
    return lines


__all__ = [
    "MULTI_LABEL_FLAT_NAMES",
    "MULTI_LABEL_METRIC_PATH",
    "load_multi_label_metric",
    "multi_label_markdown",
    "score_multi_label",
    "sigmoid_scores",
]
