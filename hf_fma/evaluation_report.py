"""Reports of an `hf_fma.evaluation` result: the flat metrics of all_results.json, the Markdown report
(single- or multi-label), and the evaluation's JSON and Markdown files in a run folder.

Apart from the evaluation itself because the model card and `hf-fma push`/`export` write these reports
too: this module needs neither torch nor `evaluate`, so those commands do not load them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hf_fma.run_folder import evaluation_json_name, evaluation_markdown_name, write_json_atomic, write_text_atomic

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


def is_multi_label_evaluation(evaluation: Mapping[str, Any]) -> bool:
    """Whether an `evaluate_model` result scores a multi-label model (mAP and F1 at a threshold, no accuracy)."""
    return evaluation.get("task") == "multi_label"


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


def flat_metrics(evaluation: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """The scalar metrics of an `evaluate_model` result: {prefix}_{clip,track}_{accuracy,macro_f1}, counts;
    for a multi-label model {prefix}_{clip,track}_{map,micro_ap,...} (MULTI_LABEL_FLAT_NAMES) and
    {prefix}_threshold."""
    multi_label = is_multi_label_evaluation(evaluation)
    names = MULTI_LABEL_FLAT_NAMES if multi_label else {"accuracy": "accuracy", "macro_f1": "macro_f1"}
    flat = {}
    for level in ("clip", "track"):
        for name, key in names.items():
            flat[f"{prefix}_{level}_{name}"] = evaluation[level][key]
    if multi_label:
        flat[f"{prefix}_threshold"] = evaluation["track"]["threshold"]
    flat[f"{prefix}_tracks"] = evaluation["num_tracks"]
    flat[f"{prefix}_crops"] = evaluation["n_crops"]
    return flat


def _geometry_sentence(evaluation: Mapping[str, Any]) -> str:
    return (
        f"{evaluation['num_tracks']} tracks, {evaluation['n_crops']} evenly spaced crops of "
        f"{evaluation['crop_seconds']:g} s per track. Clip level scores every crop on its own; track level "
        "averages the logits of a track's crops."
    )


def evaluation_markdown(evaluation: Mapping[str, Any], title: str | None = None, heading: str = "##") -> str:
    """An `evaluate_model` result as Markdown: clip and track metrics, per-genre precision and recall, and
    the track-level confusion matrix; for a multi-label model, mAP, ROC-AUC and F1 at its threshold, the
    hierarchy violation rate and each genre's average precision."""
    lines = [f"{heading[:-1]} {title}", ""] if title else []
    if is_multi_label_evaluation(evaluation):
        return "\n".join(lines + multi_label_markdown(evaluation, _geometry_sentence(evaluation), heading)) + "\n"
    labels = evaluation["labels"]
    track, clip = evaluation["track"], evaluation["clip"]
    lines += [
        _geometry_sentence(evaluation),
        "",
        "| Level | Accuracy | Macro-F1 |",
        "| --- | ---: | ---: |",
        f"| clip | {100 * clip['accuracy']:.1f}% | {clip['macro_f1']:.3f} |",
        f"| track | {100 * track['accuracy']:.1f}% | {track['macro_f1']:.3f} |",
        "",
        f"{heading} Per genre (track level)",
        "",
        "| Genre | Precision | Recall (accuracy) | Tracks |",
        "| --- | ---: | ---: | ---: |",
    ]
    for index, genre in enumerate(labels):
        support = sum(track["confusion_matrix"][index])
        lines.append(
            f"| {genre} | {track['per_genre_precision'][genre]:.3f} | {track['per_genre_recall'][genre]:.3f} | {support} |"
        )
    lines += [
        "",
        f"{heading} Confusion matrix (track level; rows: true genre, columns: predicted genre)",
        "",
        "| true \\ predicted | " + " | ".join(labels) + " |",
        "| --- | " + " | ".join("---:" for _ in labels) + " |",
    ]
    for genre, row in zip(labels, track["confusion_matrix"]):
        lines.append(f"| {genre} | " + " | ".join(str(count) for count in row) + " |")
    return "\n".join(lines) + "\n"


def write_evaluation(
    evaluation: Mapping[str, Any],
    output_dir: str | Path,
    split: str,
    title: str | None = None,
    dataset_config: str | None = None,
) -> list[Path]:
    """Write `evaluation_{config}_{split}.json` and `.md` into output_dir (without a dataset_config: the
    names of a run's own evaluation, `evaluation_{split}.json`)."""
    output_dir = Path(output_dir)
    return [
        write_json_atomic(output_dir / evaluation_json_name(split, dataset_config), evaluation),
        write_text_atomic(output_dir / evaluation_markdown_name(split, dataset_config), evaluation_markdown(evaluation, title)),
    ]


__all__ = [
    "MULTI_LABEL_FLAT_NAMES",
    "THRESHOLD_SOURCES",
    "evaluation_markdown",
    "flat_metrics",
    "is_multi_label_evaluation",
    "multi_label_markdown",
    "write_evaluation",
]
