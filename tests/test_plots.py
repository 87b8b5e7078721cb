"""Figures: learning curves from a real-format trainer_state.json, confusion matrix, accuracy vs tracks."""

import json
import struct
import sys

import pytest
from transformers import TrainerState

from hf_fma import plots

GENRES = ["Electronic", "Folk", "Rock"]


def png_size(path) -> tuple[int, int]:
    """(width, height) of a PNG file, from its IHDR chunk; fails when the file is not a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def trainer_log_history(epochs=3, steps_per_epoch=4, logging_steps=2, evaluate_train=False):
    """The log history `Trainer` writes with eval_strategy="epoch" and logging_steps: the three entry kinds
    (training logs, evaluation logs, the end-of-training summary), keyed exactly as Trainer.log keys them."""
    history = []
    for epoch in range(1, epochs + 1):
        for step in range((epoch - 1) * steps_per_epoch + 1, epoch * steps_per_epoch + 1):
            if step % logging_steps == 0:
                history.append(
                    {"epoch": step / steps_per_epoch, "grad_norm": 1.5, "learning_rate": 1e-3, "loss": 2.0 / step, "step": step}
                )
        step = epoch * steps_per_epoch
        if evaluate_train:
            history.append(
                {"epoch": float(epoch), "step": step, "train_accuracy": 0.4 + 0.2 * epoch, "train_loss": 1.0 / epoch,
                 "train_runtime": 0.3, "train_samples_per_second": 90.0, "train_steps_per_second": 11.0}
            )
        history.append(
            {"epoch": float(epoch), "eval_accuracy": 0.3 + 0.1 * epoch, "eval_loss": 1.5 - 0.1 * epoch,
             "eval_runtime": 0.2, "eval_samples_per_second": 80.0, "eval_steps_per_second": 10.0, "step": step}
        )
    history.append(
        {"epoch": float(epochs), "step": epochs * steps_per_epoch, "total_flos": 1.0e9, "train_loss": 0.9,
         "train_runtime": 12.5, "train_samples_per_second": 30.0, "train_steps_per_second": 1.0}
    )
    return history


def write_trainer_state(folder, **history_options):
    """Write trainer_state.json through transformers' own TrainerState, as Trainer does."""
    history = trainer_log_history(**history_options)
    state = TrainerState(
        epoch=3.0, global_step=12, max_steps=12, logging_steps=2, eval_steps=4, save_steps=4,
        train_batch_size=8, num_train_epochs=3, log_history=history, best_metric=0.6, best_global_step=8,
        best_model_checkpoint=str(folder / "checkpoint-8"),
    )
    folder.mkdir(parents=True, exist_ok=True)
    state.save_to_json(str(folder / "trainer_state.json"))
    return folder


def test_learning_curves_are_per_epoch_from_the_trainer_log_history():
    curves = plots.learning_curves(trainer_log_history(), best_global_step=8)
    # Running loss of the logging steps, averaged per epoch: epoch 1 holds steps 2 and 4.
    assert curves.train_loss == [(1.0, pytest.approx((1.0 + 0.5) / 2)), (2.0, pytest.approx((2 / 6 + 2 / 8) / 2)),
                                 (3.0, pytest.approx((2 / 10 + 2 / 12) / 2))]
    assert not curves.train_loss_is_evaluated
    assert curves.eval_accuracy == [(1.0, pytest.approx(0.4)), (2.0, pytest.approx(0.5)), (3.0, pytest.approx(0.6))]
    assert [epoch for epoch, _ in curves.eval_loss] == [1.0, 2.0, 3.0]
    # The end-of-training summary (train_loss averaged over the run) is not a point of any curve.
    assert curves.train_accuracy == []
    assert curves.best_epoch == 2.0


def test_evaluation_on_the_training_split_gives_the_train_curves():
    curves = plots.learning_curves(trainer_log_history(evaluate_train=True))
    assert curves.train_accuracy == [(1.0, pytest.approx(0.6)), (2.0, pytest.approx(0.8)), (3.0, pytest.approx(1.0))]
    assert curves.train_loss == [(1.0, 1.0), (2.0, 0.5), (3.0, pytest.approx(1 / 3))]
    assert curves.train_loss_is_evaluated


def test_a_multi_label_run_s_curves_are_its_map(tmp_path, monkeypatch):
    """A multi-label run logs eval_map and train_map (clip mAP), never an accuracy: its metric curves are
    those, on an axis that says mAP."""
    history = [
        {key.replace("accuracy", "map"): value for key, value in entry.items()}
        for entry in trainer_log_history(evaluate_train=True)
    ]
    curves = plots.learning_curves(history)
    assert curves.eval_map == [(1.0, pytest.approx(0.4)), (2.0, pytest.approx(0.5)), (3.0, pytest.approx(0.6))]
    assert curves.train_map == [(1.0, pytest.approx(0.6)), (2.0, pytest.approx(0.8)), (3.0, pytest.approx(1.0))]
    assert curves.eval_accuracy == curves.train_accuracy == []
    assert curves.train_loss_is_evaluated

    drawn = {}
    monkeypatch.setattr(plots, "_save", lambda figure, output: drawn.setdefault("figure", figure) and output)
    plots.plot_learning_curves(TrainerState(log_history=history), tmp_path / "curves.png")
    metric_axes = drawn["figure"].axes[0]
    assert metric_axes.get_ylabel() == "mAP"
    assert [list(line.get_ydata()) for line in metric_axes.get_lines()] == [
        pytest.approx([0.6, 0.8, 1.0]), pytest.approx([0.4, 0.5, 0.6])
    ]


def test_plot_curves_command_writes_a_png_into_the_run_folder(tmp_path):
    run_dir = write_trainer_state(tmp_path / "run")
    assert plots.main(["curves", str(run_dir)]) == 0
    width, height = png_size(run_dir / plots.LEARNING_CURVES_NAME)
    assert (width, height) == (1500, 600)  # 10 x 4 inches at 150 dpi


def test_learning_curves_need_a_trainer_state(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="trainer_state.json"):
        plots.load_trainer_state(tmp_path)
    assert plots.main(["curves", str(tmp_path)]) == 2
    assert "trainer_state.json" in capsys.readouterr().err
    state = TrainerState(log_history=[{"epoch": 1.0, "step": 4, "train_runtime": 1.0, "train_loss": 1.0}])
    with pytest.raises(ValueError, match="no loss or accuracy per epoch"):
        plots.plot_learning_curves(state, tmp_path / "curves.png")


def test_confusion_matrix_png_and_shape_check(tmp_path):
    matrix = [[5, 1, 0], [2, 3, 1], [0, 0, 6]]
    evaluation = {"labels": GENRES, "track": {"confusion_matrix": matrix}, "clip": {"confusion_matrix": matrix}}
    evaluation_json = tmp_path / "evaluation_test.json"
    evaluation_json.write_text(json.dumps(evaluation))
    assert plots.main(["confusion", str(evaluation_json)]) == 0
    width, height = png_size(tmp_path / "confusion_matrix_test.png")  # named after the evaluation's split
    assert width > height > 0
    with pytest.raises(ValueError, match="3 x 3"):
        plots.plot_confusion_matrix([[1, 2], [3, 4]], GENRES, tmp_path / "bad.png")


def test_accuracy_vs_tracks_from_the_table_json(tmp_path):
    rows = [
        {"model": model, "features": "log-mel", "training_tracks": tracks, "mean": mean, "std": 0.02}
        for model, offset in (("AST", 0.0), ("CNN", 0.05))
        for tracks, mean in ((1000, 0.25 + offset), (2000, 0.3 + offset), (6400, 0.4 + offset))
    ]
    table_json = tmp_path / "results.json"
    table_json.write_text(json.dumps({"metric": "test_accuracy", "rows": rows}))
    assert plots.main(["sizes", str(table_json), "--output", str(tmp_path / "sizes.png")]) == 0
    assert png_size(tmp_path / "sizes.png") == (900, 600)
    with pytest.raises(ValueError, match="no rows"):
        plots.plot_accuracy_vs_tracks([], tmp_path / "empty.png")


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import matplotlib.figure now fails
    with pytest.raises(ImportError, match=r"hf-fma\[plots\]"):
        plots.plot_confusion_matrix([[1]], ["Rock"], tmp_path / "cm.png")
