"""Genre-classification metric for hf-fma: accuracy, macro-F1 and per-genre precision/recall/accuracy.

An `evaluate` module shipped inside the package and loaded by local path, so no Hub access is needed:

    >>> from hf_fma.evaluation import load_genre_metric
    >>> metric = load_genre_metric()  # evaluate.load(<hf_fma>/metrics/genre_classification)
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0], label_names=["Folk", "Rock"])["accuracy"]
    0.6666666666666666

Per-genre accuracy is the fraction of that genre's examples predicted correctly (its recall), the number
the FMA literature reports per genre. Written with numpy alone: the package does not depend on scikit-learn.
This file runs as an `evaluate` script, so it imports only evaluate, datasets and numpy, never hf_fma.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """Single-label genre classification: accuracy, macro-averaged F1 (every genre weighs the same,
which matters on the unbalanced medium/large subsets), per-genre precision, recall and accuracy, and the
confusion matrix (rows: true genre, columns: predicted genre)."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted genre indices.
    references (`list` of `int`): true genre indices.
    label_names (`list` of `str`, *optional*): genre names in index order; sets the number of genres and
        the keys of the per-genre dicts. Defaults to "0", "1", ... up to the largest index seen.
Returns:
    accuracy (`float`), macro_f1 (`float`: mean over genres; a genre with no examples and no predictions
    is left out), per_genre_precision, per_genre_recall, per_genre_accuracy (`dict` name -> `float`),
    confusion_matrix (`list` of `list` of `int`), label_names (`list` of `str`).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class GenreClassification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, label_names=None):
        predictions = np.asarray(predictions, dtype=np.int64)
        references = np.asarray(references, dtype=np.int64)
        if len(references) == 0:
            raise ValueError("genre_classification: no examples to score (predictions and references are empty)")
        if label_names is None:
            label_names = [str(index) for index in range(int(max(predictions.max(), references.max())) + 1)]
        label_names = list(label_names)
        num_labels = len(label_names)
        for name, values in (("predictions", predictions), ("references", references)):
            if values.min() < 0 or values.max() >= num_labels:
                raise ValueError(
                    f"genre_classification: {name} hold indices outside 0..{num_labels - 1} "
                    f"({values.min()}..{values.max()}) for label_names {label_names}"
                )

        # confusion[true, predicted]: one bincount over the flattened pair index.
        confusion = np.bincount(references * num_labels + predictions, minlength=num_labels**2)
        confusion = confusion.reshape(num_labels, num_labels)  # (true genre, predicted genre)
        correct = np.diag(confusion).astype(np.float64)
        support = confusion.sum(axis=1)  # examples per true genre
        predicted = confusion.sum(axis=0)  # predictions per genre
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(predicted > 0, correct / predicted, 0.0)
            recall = np.where(support > 0, correct / support, 0.0)
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        # A genre absent from both references and predictions says nothing about the model.
        scored = (support + predicted) > 0

        return {
            "accuracy": float(correct.sum() / len(references)),
            "macro_f1": float(f1[scored].mean()),
            "per_genre_precision": dict(zip(label_names, precision.tolist())),
            "per_genre_recall": dict(zip(label_names, recall.tolist())),
            "per_genre_accuracy": dict(zip(label_names, recall.tolist())),
            "confusion_matrix": confusion.tolist(),
            "label_names": label_names,
        }
