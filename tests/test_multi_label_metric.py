"""The shipped multi-label metric (`hf_fma/metrics/multi_label_genres`): a hand-computed example, then
scikit-learn's average_precision_score / roc_auc_score / f1_score on random data as the reference."""

from pathlib import Path

import evaluate
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

import hf_fma

METRIC_PATH = Path(hf_fma.__file__).resolve().parent / "metrics" / "multi_label_genres"


@pytest.fixture(scope="module")
def metric():
    return evaluate.load(str(METRIC_PATH), keep_in_memory=True)


def test_hand_computed_example(metric):
    # Worked on paper. Rock: scores 0.9 0.8 0.3 0.1, truth 1 0 1 0 -> precision 1, 1/2, 2/3, 2/4 at recall
    # 1/2, 1/2, 1, 1: AP = 1/2 * 1 + 1/2 * 2/3 = 5/6; ROC-AUC = 3 of 4 (positive, negative) pairs in order.
    # Punk: 0.6 is shared by a positive and a negative, one threshold: AP = 1/2 * 1/2 + 1/2 * 2/3 = 7/12;
    # ROC-AUC = (1 + 1/2 + 1 + 0) / 4 = 5/8. Jazz has no positive track: no AP, no ROC-AUC.
    scores = [[0.9, 0.2, 0.1], [0.8, 0.6, 0.1], [0.3, 0.6, 0.1], [0.1, 0.4, 0.1]]
    truth = [[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]]
    result = metric.compute(predictions=scores, references=truth, label_names=["Rock", "Punk", "Jazz"], threshold=0.5)

    assert result["per_genre_average_precision"] == pytest.approx({"Rock": 5 / 6, "Punk": 7 / 12})
    assert result["mean_average_precision"] == pytest.approx((5 / 6 + 7 / 12) / 2)
    assert result["macro_roc_auc"] == pytest.approx((3 / 4 + 5 / 8) / 2)
    assert result["genres_without_positives"] == ["Jazz"]
    assert result["genres_without_roc"] == ["Jazz"]
    # At 0.5: Rock predicted for tracks 1, 2 (TP 1, FP 1, FN 1), Punk for 2, 3 (the same), Jazz never.
    assert result["micro_f1"] == pytest.approx(0.5)
    assert result["macro_f1"] == pytest.approx(0.5)  # Jazz, neither present nor predicted, is not averaged
    assert result["threshold"] == 0.5


def _random_multi_label(seed: int, tracks: int = 60, genres: int = 7):
    rng = np.random.default_rng(seed)
    truth = (rng.random((tracks, genres)) < 0.3).astype(int)
    truth[0], truth[1] = 1, 0  # every genre has positives and negatives
    # Scores correlated with the truth and rounded to 2 decimals so that ties occur.
    scores = np.round(np.clip(0.35 * truth + rng.random((tracks, genres)) * 0.7, 0, 1), 2)
    return scores, truth


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_scikit_learn(metric, seed):
    scores, truth = _random_multi_label(seed)
    assert len(np.unique(scores)) < scores.size  # the data really has tied scores
    result = metric.compute(predictions=scores.tolist(), references=truth.tolist(), threshold=0.5)

    per_genre = average_precision_score(truth, scores, average=None)
    assert list(result["per_genre_average_precision"].values()) == pytest.approx(per_genre.tolist())
    assert result["mean_average_precision"] == pytest.approx(average_precision_score(truth, scores, average="macro"))
    assert result["micro_average_precision"] == pytest.approx(average_precision_score(truth, scores, average="micro"))
    assert result["macro_roc_auc"] == pytest.approx(roc_auc_score(truth, scores, average="macro"))
    assert result["micro_roc_auc"] == pytest.approx(roc_auc_score(truth, scores, average="micro"))
    predicted = (scores >= 0.5).astype(int)
    assert result["micro_f1"] == pytest.approx(f1_score(truth, predicted, average="micro"))
    assert result["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro"))


def test_chosen_threshold_maximises_micro_f1(metric):
    scores, truth = _random_multi_label(3)
    result = metric.compute(predictions=scores.tolist(), references=truth.tolist())

    # Brute force over every score as a threshold, with scikit-learn's F1.
    candidates = np.unique(scores)
    f1s = [f1_score(truth, (scores >= t).astype(int), average="micro") for t in candidates]
    best = max(f1s)
    assert result["micro_f1"] == pytest.approx(best)
    # The highest of the best thresholds (the module reads scores as float32, as models output them).
    assert result["threshold"] == pytest.approx(max(t for t, f1 in zip(candidates, f1s) if f1 == pytest.approx(best)))


def test_rejects_inputs_that_are_not_multi_hot(metric):
    with pytest.raises(ValueError, match="multi-hot"):
        metric.compute(predictions=[[0.1, 0.9]], references=[[0, 2]])
    with pytest.raises(ValueError, match="label_names"):
        metric.compute(predictions=[[0.1, 0.9]], references=[[0, 1]], label_names=["Rock"])
