"""Figures of the study as PNG files: learning curves, accuracy against training tracks, confusion matrix.

    hf-fma plot curves RUN_DIR [--output RUN_DIR/learning_curves.png]
    hf-fma plot confusion RUN_DIR/evaluation_test.json [--output confusion_matrix.png]
    hf-fma plot sizes STUDY_DIR/results.json [--output accuracy_vs_tracks.png]

`curves` reads the `trainer_state.json` that `Trainer` writes into a run folder (the study's figures 7 and
8); `confusion` reads the JSON written by `hf-fma evaluate`; `sizes` reads the JSON written by
`hf-fma table` (figure 6). matplotlib is an optional extra (`pip install "hf-fma[plots]"`): it is imported
only when a figure is drawn, and figures are drawn on a bare `Figure` (Agg canvas), never through pyplot's
global state, so plotting works on headless machines and inside training processes.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hf_fma.argparsing import ArgumentParser
from hf_fma.run_folder import (
    ACCURACY_VS_TRACKS_NAME,
    LEARNING_CURVES_NAME,
    TRAINER_STATE_NAME,
    confusion_matrix_name,
    read_json,
)


def check_matplotlib() -> None:
    """Fail with a message naming the `plots` extra when matplotlib is missing: commands call it before
    work whose figure would otherwise fail at the end."""
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError as error:
        raise ImportError(
            'Plots need matplotlib, an optional extra of hf-fma: pip install "hf-fma[plots]"'
        ) from error


def _figure(width: float, height: float):
    """A matplotlib Figure on the Agg canvas, with a clear message when the `plots` extra is missing."""
    check_matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(figure, output: str | Path) -> Path:
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, format="png", dpi=150)
    return output


# ----------------------------------------------------------------------------------------------------
# Learning curves
# ----------------------------------------------------------------------------------------------------


@dataclass
class LearningCurves:
    """Per-epoch values read from a `Trainer` log history; each series is a list of (epoch, value)."""

    train_loss: list[tuple[float, float]] = field(default_factory=list)
    train_accuracy: list[tuple[float, float]] = field(default_factory=list)
    eval_loss: list[tuple[float, float]] = field(default_factory=list)
    eval_accuracy: list[tuple[float, float]] = field(default_factory=list)
    # A multi-label run's metric (clip mAP) in place of accuracy, which it does not measure.
    train_map: list[tuple[float, float]] = field(default_factory=list)
    eval_map: list[tuple[float, float]] = field(default_factory=list)
    best_epoch: float | None = None
    # True when train_loss is the loss of an evaluation pass over the training split, False when it is the
    # running training loss (dropout and augmentation on, averaged over the logging steps of each epoch).
    train_loss_is_evaluated: bool = False


def learning_curves(log_history: Sequence[Mapping[str, float]], best_global_step: int | None = None) -> LearningCurves:
    """Extract per-epoch train/validation accuracy and loss from `TrainerState.log_history`.

    `Trainer` logs three kinds of entries, each with `epoch` and `step`:
      - training logs `{"loss", "grad_norm", "learning_rate"}` every `logging_steps`;
      - evaluation logs `{"eval_loss", "eval_accuracy", ...}` (prefix `eval_`);
      - one summary `{"train_runtime", "train_loss", "total_flos", ...}` at the end of training.
    Accuracy on the training split exists only when the run evaluated on it with the prefix `train`
    (`trainer.evaluate(train_dataset, metric_key_prefix="train")`), which logs `train_accuracy` and
    `train_loss`; its loss is then the training curve. Otherwise the training loss is the running loss of
    the logging steps averaged per epoch (an entry at epoch 1.5 belongs to epoch 2).
    """
    curves = LearningCurves()
    running_loss: dict[int, list[float]] = defaultdict(list)
    for entry in log_history:
        epoch = entry.get("epoch")
        # The end-of-training summary (with total_flos) holds train_loss averaged over the whole run.
        if epoch is None or "total_flos" in entry:
            continue
        if "loss" in entry:
            running_loss[max(1, math.ceil(epoch - 1e-6))].append(float(entry["loss"]))
        if "eval_accuracy" in entry:
            curves.eval_accuracy.append((epoch, float(entry["eval_accuracy"])))
        if "eval_loss" in entry:
            curves.eval_loss.append((epoch, float(entry["eval_loss"])))
        if "eval_map" in entry:
            curves.eval_map.append((epoch, float(entry["eval_map"])))
        if "train_accuracy" in entry or "train_map" in entry:
            if "train_accuracy" in entry:
                curves.train_accuracy.append((epoch, float(entry["train_accuracy"])))
            if "train_map" in entry:
                curves.train_map.append((epoch, float(entry["train_map"])))
            if "train_loss" in entry:
                curves.train_loss.append((epoch, float(entry["train_loss"])))
                curves.train_loss_is_evaluated = True
        if best_global_step is not None and entry.get("step") == best_global_step and "eval_loss" in entry:
            curves.best_epoch = epoch
    if not curves.train_loss_is_evaluated:
        curves.train_loss = [(float(epoch), sum(values) / len(values)) for epoch, values in sorted(running_loss.items())]
    return curves


def load_trainer_state(run_dir_or_file: str | Path):
    """`TrainerState` of a run folder (or of a `trainer_state.json` path), read with transformers' own loader."""
    from transformers import TrainerState

    path = Path(run_dir_or_file)
    if path.is_dir():
        path = path / TRAINER_STATE_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: learning curves need the trainer_state.json that Trainer writes at the end of training"
        )
    return TrainerState.load_from_json(str(path))


def plot_learning_curves(trainer_state, output: str | Path, title: str | None = None) -> Path:
    """Draw train/validation accuracy (a multi-label run's: mAP) and loss per epoch side by side (the study's
    figures 7 and 8).

    `trainer_state` is a `transformers.TrainerState` (see `load_trainer_state`).
    """
    curves = learning_curves(trainer_state.log_history, trainer_state.best_global_step)
    if not (curves.eval_accuracy or curves.eval_map or curves.eval_loss or curves.train_loss):
        raise ValueError(
            "trainer_state.json holds no loss or accuracy per epoch: train with logging and evaluation enabled "
            '(eval_strategy="epoch", logging_strategy="epoch" or logging_steps)'
        )
    figure = _figure(10, 4)
    metric_axes, loss_axes = figure.subplots(1, 2)
    train_loss_label = "train (evaluated)" if curves.train_loss_is_evaluated else "train (running)"
    if curves.eval_map and not curves.eval_accuracy:  # a multi-label run
        metric_name, train_metric, eval_metric = "mAP", curves.train_map, curves.eval_map
    else:
        metric_name, train_metric, eval_metric = "accuracy", curves.train_accuracy, curves.eval_accuracy
    for axes, series, ylabel in (
        (metric_axes, [("train", train_metric), ("validation", eval_metric)], metric_name),
        (loss_axes, [(train_loss_label, curves.train_loss), ("validation", curves.eval_loss)], "loss"),
    ):
        for label, points in series:
            if points:
                epochs, values = zip(*points)
                axes.plot(epochs, values, marker="o", markersize=3, label=label)
        if curves.best_epoch is not None:
            axes.axvline(curves.best_epoch, color="grey", linestyle=":", label="best checkpoint")
        axes.xaxis.get_major_locator().set_params(integer=True)  # whole epochs, not 1.25
        axes.set_xlabel("epoch")
        axes.set_ylabel(ylabel)
        axes.grid(alpha=0.3)
        if axes.has_data():
            axes.legend()
    if not train_metric:
        metric_axes.set_title("validation only: the run did not evaluate on the training split", fontsize=8)
    if title:
        figure.suptitle(title)
    return _save(figure, output)


# ----------------------------------------------------------------------------------------------------
# Confusion matrix
# ----------------------------------------------------------------------------------------------------


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], output: str | Path, title: str | None = None
) -> Path:
    """Draw a confusion matrix (rows: true genre, columns: predicted genre).

    Cells are coloured by the row-normalised rate (the recall of each genre, so imbalanced genres compare)
    and annotated with the raw counts.
    """
    size = len(labels)
    if len(matrix) != size or any(len(row) != size for row in matrix):
        raise ValueError(f"confusion matrix must be {size} x {size} to match the labels {list(labels)}")
    rates = [[count / max(1, sum(row)) for count in row] for row in matrix]
    side = max(4.0, 0.6 * size + 2)
    figure = _figure(side + 1, side)
    axes = figure.subplots()
    image = axes.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, label="fraction of the true genre")
    axes.set_xticks(range(size), labels, rotation=45, ha="right")
    axes.set_yticks(range(size), labels)
    axes.set_xlabel("predicted genre")
    axes.set_ylabel("true genre")
    for row_index, row in enumerate(matrix):
        for column_index, count in enumerate(row):
            colour = "white" if rates[row_index][column_index] > 0.5 else "black"
            axes.text(column_index, row_index, str(count), ha="center", va="center", color=colour, fontsize=8)
    if title:
        axes.set_title(title)
    return _save(figure, output)


# ----------------------------------------------------------------------------------------------------
# Accuracy against the number of training tracks
# ----------------------------------------------------------------------------------------------------


def metric_title(metric: str) -> str:
    """"test_track_accuracy" -> "Accuracy (test, track level)"."""
    parts = metric.split("_")
    split = parts[0] if parts[0] in ("test", "validation", "eval") else None
    level = next((part for part in parts if part in ("clip", "track")), None)
    titles = {"macro_f1": "Macro-F1", "accuracy": "Accuracy", "_map": "mAP"}
    name = next((title for ending, title in titles.items() if metric.endswith(ending)), None)
    if name is None:
        return f"{metric[0].upper()}{metric[1:]}"
    details = ", ".join(filter(None, [split, f"{level} level" if level else None]))
    return name + (f" ({details})" if details else "")


def plot_accuracy_vs_tracks(rows: Iterable[Mapping], output: str | Path, metric: str = "test_track_accuracy") -> Path:
    """Draw mean accuracy (error bars: std over seeds) against training tracks, one line per model (figure 6).

    `rows` are the rows of `hf-fma table`'s JSON: mappings with `model`, `features`, `training_tracks`,
    `mean` and `std`; `metric` is the all_results.json key they summarise.
    """
    series: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    for row in rows:
        if row["training_tracks"] is None:  # a whole-split run that recorded no count has no x position
            continue
        label = f"{row['model']}, {row['features']}" if row.get("features") else str(row["model"])
        series[label].append((int(row["training_tracks"]), float(row["mean"]), float(row["std"])))
    if not series:
        raise ValueError("no results to plot: the table has no rows with a number of training tracks")
    figure = _figure(6, 4)
    axes = figure.subplots()
    for label, points in sorted(series.items()):
        tracks, means, stds = zip(*sorted(points))
        axes.errorbar(tracks, means, yerr=stds, marker="o", capsize=3, label=label)
    all_tracks = sorted({tracks for points in series.values() for tracks, _, _ in points})
    axes.set_xticks(all_tracks, [str(tracks) for tracks in all_tracks])
    axes.set_xlabel("training tracks")
    axes.set_ylabel(metric_title(metric))
    axes.grid(alpha=0.3)
    axes.legend()
    return _save(figure, output)


# ----------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------


def _confusion_matrix_path(evaluation_json: Path) -> Path:
    """evaluation_test.json -> confusion_matrix_test.png beside it (the names `hf-fma evaluate` writes)."""
    stem = evaluation_json.stem
    split = stem.removeprefix("evaluation_") if stem.startswith("evaluation_") else None
    return evaluation_json.with_name(confusion_matrix_name(split))


def _build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="hf-fma plot", description=__doc__.split("\n\n")[0])
    figures = parser.add_subparsers(dest="figure", required=True, metavar="FIGURE")
    curves = figures.add_parser("curves", help="train/validation accuracy and loss per epoch of a run")
    curves.add_argument("run_dir", help="run folder holding trainer_state.json (or the file itself)")
    curves.add_argument("--output", help=f"PNG path (default: RUN_DIR/{LEARNING_CURVES_NAME})")
    confusion = figures.add_parser("confusion", help="confusion matrix from `hf-fma evaluate`'s JSON")
    confusion.add_argument("evaluation_json")
    confusion.add_argument("--level", choices=("track", "clip"), default="track", help="(default: track)")
    confusion.add_argument(
        "--output", help="PNG path (default: beside the JSON, evaluation_SPLIT.json -> confusion_matrix_SPLIT.png)"
    )
    sizes = figures.add_parser("sizes", help="accuracy against training tracks from `hf-fma table`'s JSON")
    sizes.add_argument("table_json")
    sizes.add_argument("--output", help=f"PNG path (default: beside the JSON, {ACCURACY_VS_TRACKS_NAME})")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`hf-fma plot {curves,confusion,sizes} ...` (see the module docstring)."""
    args = _build_parser().parse_args(argv)
    try:
        written = _draw(args)
    except (FileNotFoundError, ValueError, ImportError) as error:
        print(f"hf-fma plot: {error}", file=sys.stderr)
        return 2
    print(written)
    return 0


def _draw(args: argparse.Namespace) -> Path:
    if args.figure == "curves":
        run_path = Path(args.run_dir)
        output = args.output or (run_path if run_path.is_dir() else run_path.parent) / LEARNING_CURVES_NAME
        return plot_learning_curves(load_trainer_state(run_path), output, title=run_path.resolve().name)
    if args.figure == "confusion":
        evaluation = read_json(args.evaluation_json)
        level = evaluation.get(args.level)
        if not level or "confusion_matrix" not in level:
            raise ValueError(f"{args.evaluation_json} has no {args.level}-level confusion matrix")
        output = args.output or _confusion_matrix_path(Path(args.evaluation_json))
        return plot_confusion_matrix(level["confusion_matrix"], evaluation["labels"], output)
    table = read_json(args.table_json)
    output = args.output or Path(args.table_json).with_name(ACCURACY_VS_TRACKS_NAME)
    return plot_accuracy_vs_tracks(table["rows"], output, metric=table["metric"])


if __name__ == "__main__":
    raise SystemExit(main())
