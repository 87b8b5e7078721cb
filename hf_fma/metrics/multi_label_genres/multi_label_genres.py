"""Multi-label genre metric for hf-fma: mAP, ROC-AUC, per-genre AP and F1 at a threshold.

FMA's second task: every track carries all genres of the hierarchy it belongs to (`track.genres_all`), and a
model scores each genre independently (sigmoid). An `evaluate` module shipped inside the package and loaded
by local path, so no Hub access is needed:

    >>> import evaluate
    >>> metric = evaluate.load("<hf_fma>/metrics/multi_label_genres", keep_in_memory=True)
    >>> result = metric.compute(predictions=[[0.9, 0.2], [0.4, 0.7]], references=[[1, 0], [1, 1]],
    ...                         label_names=["Rock", "Punk"])
    >>> result["mean_average_precision"]
    1.0

Average precision is the step-wise area under the precision-recall curve (no interpolation, the definition
of scikit-learn's `average_precision_score` and of the FMA paper's baselines); tied scores form one
threshold. ROC-AUC is the trapezoidal area under the ROC curve. A genre without positive tracks has no
average precision and a genre without both positive and negative tracks no ROC-AUC: those are left out of
the macro averages and named in `genres_without_positives` / `genres_without_roc`, never counted as 0.

F1 needs a threshold on the scores. With `threshold=None` the module picks the one that maximises micro-F1
on the data it is given (run it on the validation split) and returns it as `threshold`; pass that value
when scoring the test split, so the test set never chooses its own threshold.

Written with numpy alone: the package does not depend on scikit-learn. This file runs as an `evaluate`
script, so it imports only evaluate, datasets and numpy, never hf_fma.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """Multi-label genre classification: mean average precision over genres (mAP), micro- and
macro-averaged ROC-AUC, per-genre average precision, and micro/macro F1 at a score threshold (given, or
chosen to maximise micro-F1 on the data scored)."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): one score per genre and track (probabilities for F1; AP and
        ROC-AUC only use the order, so logits work for them too).
    references (`list` of `list` of `int`): the multi-hot truth, 1 where the track has the genre.
    label_names (`list` of `str`, *optional*): genre names in column order; the keys of the per-genre dicts.
    threshold (`float`, *optional*): a genre is predicted when its score is >= threshold. `None` (default)
        chooses the threshold that maximises micro-F1 on these examples.
Returns:
    mean_average_precision (`float`), micro_average_precision (`float`), macro_roc_auc (`float`),
    micro_roc_auc (`float`), per_genre_average_precision (`dict` name -> `float`), threshold (`float`),
    micro_f1, macro_f1 (`float`, at `threshold`), genres_without_positives, genres_without_roc (`list` of
    `str`), label_names (`list` of `str`).
"""


def _curve(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True and false positives when predicting every score >= each distinct score, and those scores (the
    thresholds), highest first."""
    order = np.argsort(-scores, kind="mergesort")
    scores, truth = scores[order], truth[order]
    # The last index of each run of equal scores: tied examples cross the threshold together.
    last_of_run = np.r_[np.flatnonzero(np.diff(scores)), truth.size - 1]
    true_positives = np.cumsum(truth)[last_of_run]
    false_positives = last_of_run + 1 - true_positives
    return true_positives.astype(np.float64), false_positives.astype(np.float64), scores[last_of_run]


def average_precision(scores: np.ndarray, truth: np.ndarray) -> float:
    """Sum over thresholds of (recall step) x precision; needs at least one positive."""
    true_positives, false_positives, _ = _curve(scores, truth)
    precision = true_positives / (true_positives + false_positives)
    recall = true_positives / true_positives[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Trapezoidal area under (false positive rate, true positive rate); needs positives and negatives."""
    true_positives, false_positives, _ = _curve(scores, truth)
    tpr = np.r_[0.0, true_positives / true_positives[-1]]
    fpr = np.r_[0.0, false_positives / false_positives[-1]]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def _f1(true_positives, false_positives, false_negatives):
    denominator = 2 * true_positives + false_positives + false_negatives
    return np.where(denominator > 0, 2 * true_positives / np.maximum(denominator, 1), 0.0)


def best_micro_f1_threshold(scores: np.ndarray, truth: np.ndarray) -> float:
    """The score threshold (one of the scores) that maximises micro-F1 over all tracks and genres; the
    highest such threshold on a tie, so fewer genres are predicted for the same F1."""
    true_positives, false_positives, thresholds = _curve(scores.ravel(), truth.ravel())
    f1 = _f1(true_positives, false_positives, truth.sum() - true_positives)
    return float(thresholds[int(np.argmax(f1))])


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MultiLabelGenres(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Sequence(datasets.Value("int32")),
                }
            ),
        )

    def _compute(self, predictions, references, label_names=None, threshold=None):
        scores = np.asarray(predictions, dtype=np.float64)  # (tracks, genres)
        truth = np.asarray(references, dtype=np.int64)  # (tracks, genres), 0/1
        if truth.size == 0:
            raise ValueError("multi_label_genres: no examples to score (predictions and references are empty)")
        if scores.ndim != 2 or scores.shape != truth.shape:
            raise ValueError(
                f"multi_label_genres: predictions {scores.shape} and references {truth.shape} must both be "
                "(tracks, genres)"
            )
        if not np.isin(truth, (0, 1)).all():
            raise ValueError("multi_label_genres: references must be multi-hot (0 or 1 per genre)")
        num_genres = truth.shape[1]
        label_names = [str(index) for index in range(num_genres)] if label_names is None else list(label_names)
        if len(label_names) != num_genres:
            raise ValueError(f"multi_label_genres: {len(label_names)} label_names for {num_genres} genre columns")

        positives = truth.sum(axis=0)
        has_ap = positives > 0
        has_roc = has_ap & (positives < truth.shape[0])
        per_genre_ap = {
            name: average_precision(scores[:, index], truth[:, index])
            for index, name in enumerate(label_names)
            if has_ap[index]
        }
        per_genre_roc = [roc_auc(scores[:, index], truth[:, index]) for index in np.flatnonzero(has_roc)]

        if threshold is None:
            threshold = best_micro_f1_threshold(scores, truth)
        predicted = scores >= threshold
        true_positives = (predicted & (truth == 1)).sum(axis=0)
        false_positives = (predicted & (truth == 0)).sum(axis=0)
        false_negatives = positives - true_positives
        per_genre_f1 = _f1(true_positives, false_positives, false_negatives)
        # A genre neither present nor predicted says nothing about the model (as in genre_classification).
        scored = (positives + false_positives) > 0

        flat_scores, flat_truth = scores.ravel(), truth.ravel()
        any_positive, any_negative = flat_truth.any(), not flat_truth.all()
        nan = float("nan")
        return {
            "mean_average_precision": float(np.mean(list(per_genre_ap.values()))) if per_genre_ap else nan,
            "micro_average_precision": average_precision(flat_scores, flat_truth) if any_positive else nan,
            "macro_roc_auc": float(np.mean(per_genre_roc)) if per_genre_roc else nan,
            "micro_roc_auc": roc_auc(flat_scores, flat_truth) if any_positive and any_negative else nan,
            "per_genre_average_precision": per_genre_ap,
            "threshold": float(threshold),
            "micro_f1": float(_f1(true_positives.sum(), false_positives.sum(), false_negatives.sum())),
            "macro_f1": float(per_genre_f1[scored].mean()) if scored.any() else nan,
            "genres_without_positives": [name for name, ok in zip(label_names, has_ap) if not ok],
            "genres_without_roc": [name for name, ok in zip(label_names, has_roc) if not ok],
            "label_names": label_names,
        }
