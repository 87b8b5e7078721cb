"""The training recipes on the offline demo FMA: AST and CNN under accelerate, 2-process DDP, resume, config
files, and the errors a wrong argument gets before any data is read.

The training runs are real recipe runs (tiny models, 3 s crops).
"""

import importlib.util
import json
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from datasets import Audio, ClassLabel, Dataset
from transformers import TrainerCallback, pipeline

from hf_fma import cli, plots
from hf_fma.arguments import FmaTrainingArguments, check_arguments, parse_arguments, resolved_config
from hf_fma.data import balanced_sample, load_fma
from hf_fma.run_folder import RUN_CONFIG_NAME
from hf_fma.train import run_training
from hf_fma.trainer import FmaTrainer

from .conftest import REPO_ROOT
from .test_checkpoints import assert_same_weights
from .test_features import _smoothed_cross_entropy_by_hand

RECIPES = REPO_ROOT / "recipes"
CONFIGS = REPO_ROOT / "hf_fma" / "configs"  # shipped in the package
AST_DEMO = CONFIGS / "ast_demo.yaml"
CNN_DEMO = CONFIGS / "cnn_demo.yaml"
LSTM_DEMO = CONFIGS / "lstm_demo.yaml"


def load_recipe(name: str):
    spec = importlib.util.spec_from_file_location(name, RECIPES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stderr[-4000:]}")
    return result


def results(output_dir) -> dict:
    return json.loads((output_dir / "all_results.json").read_text())


def assert_saved_model_is_the_best_checkpoint(output_dir) -> None:
    """load_best_model_at_end: the model saved in the run folder holds every weight of the best checkpoint."""
    best = json.loads((output_dir / "trainer_state.json").read_text())["best_model_checkpoint"]
    last = max(output_dir.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    # With the best checkpoint also the last, a model reloaded wrongly (or not at all) would pass too.
    assert Path(best).name != last.name, f"the best checkpoint is the last one, {last.name}: the check is void"
    assert_same_weights(output_dir, best)


# --------------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------------


def test_command_line_flags_override_the_config_file():
    model_args, data_args, training_args = parse_arguments(
        ["--config", str(AST_DEMO), "--learning_rate", "0.5", "--crop_seconds", "2", "--output_dir", "elsewhere"]
    )
    assert training_args.learning_rate == 0.5 and data_args.crop_seconds == 2.0
    assert training_args.output_dir == "elsewhere"
    # the rest comes from the file, and the task's defaults from FmaTrainingArguments
    assert training_args.per_device_train_batch_size == 16 and model_args.model_name_or_path == "tiny"
    assert training_args.load_best_model_at_end and training_args.metric_for_best_model == "accuracy"
    assert training_args.remove_unused_columns is False


def test_a_json_config_given_alone_reads_like_a_yaml_one(tmp_path):
    from_yaml = parse_arguments(["--config", str(AST_DEMO)])
    as_json = tmp_path / "demo.json"
    as_json.write_text(json.dumps(yaml.safe_load(AST_DEMO.read_text())))
    from_json = parse_arguments([str(as_json)])  # transformers' examples take a lone JSON file
    assert resolved_config(*from_json) == resolved_config(*from_yaml)


def test_help_lists_every_argument_group(capsys):
    with pytest.raises(SystemExit) as exit_status:
        parse_arguments(["--help"])
    assert exit_status.value.code == 0
    shown = capsys.readouterr().out
    for flag in ("--model_name_or_path", "--crop_seconds", "--max_train_samples", "--early_stopping_patience", "--config"):
        assert flag in shown


def test_a_config_key_that_is_no_argument_is_named(tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text("learning_rat: 0.1\nmodel_name_or_path: tiny\n")
    with pytest.raises(ValueError, match="unknown argument.*learning_rat"):
        parse_arguments(["--config", str(config)])


def test_balanced_sample_takes_genres_equally_and_repeatably():
    genres = [0] * 10 + [1] * 10 + [2] * 3  # genre 2 has fewer tracks than its share
    dataset = Dataset.from_dict(
        {"track_id": list(range(23)), "genre": genres}
    ).cast_column("genre", ClassLabel(names=["Folk", "Pop", "Rock"]))
    sample = balanced_sample(dataset, 9, seed=1)
    assert sorted(sample["genre"]) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert balanced_sample(dataset, 9, seed=1)["track_id"] == sample["track_id"]
    assert balanced_sample(dataset, 9, seed=2)["track_id"] != sample["track_id"]
    uneven = balanced_sample(dataset, 20, seed=0)  # 7/7/6 asked, genre 2 gives its 3
    assert [uneven["genre"].count(genre) for genre in range(3)] == [7, 7, 3]


# --------------------------------------------------------------------------------------------------
# Errors at start: before any data is read or any file written
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "recipe, flags, message",
    [
        ("train_ast", ["--dataset_config_name", "smal"],
         "unknown dataset config 'smal'; valid configs: small, medium, large, full, mini"),
        ("train_ast", ["--model_name_or_path", "huge"], "unknown AST preset 'huge'; valid presets: "),
        ("train_cnn", ["--config", str(CNN_DEMO), "--model_name_or_path", "study-scratch"],
         "unknown CNN preset 'study-scratch'; valid presets: study, tiny"),
        ("train_cnn", [], "this config trains the AST: run recipes/train_ast.py"),
        ("train_ast", ["--resume_from_checkpoint", "last"], "no complete checkpoint-* folder in"),
        ("train_ast", ["--do_predict"], "--do_predict: an hf-fma run always trains, validates and tests"),
        ("train_ast", ["--do-eval", "true"], "--do_eval: an hf-fma run always trains, validates and tests"),
    ],
)  # fmt: skip
def test_a_wrong_name_fails_at_start_naming_the_valid_ones(demo_dir, tmp_path, capsys, recipe, flags, message):
    output_dir = tmp_path / "run"
    argv = ["--config", str(AST_DEMO), "--data_dir", str(demo_dir), "--output_dir", str(output_dir), *flags]
    assert load_recipe(recipe).main(argv) == 2
    [line] = capsys.readouterr().err.splitlines()  # one line, no traceback
    assert message in line
    assert not output_dir.exists()


def test_a_missing_data_folder_fails_at_start(tmp_path, capsys):
    output_dir = tmp_path / "run"
    argv = ["--config", str(AST_DEMO), "--data_dir", str(tmp_path / "no-fma"), "--output_dir", str(output_dir)]
    assert load_recipe("train_ast").main(argv) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "no-fma' is not a folder" in line
    assert not output_dir.exists()


class _StopBeforeTraining(Exception):
    pass


def test_label_smoothing_factor_smooths_the_loss_trainer_trains_on(demo_dir, tmp_path, monkeypatch):
    trainers = []

    def stop_before_training(trainer, *args, **kwargs):
        trainers.append(trainer)
        raise _StopBeforeTraining

    monkeypatch.setattr(FmaTrainer, "train", stop_before_training)
    arguments = parse_arguments([
        "--config", str(AST_DEMO), "--data_dir", str(demo_dir), "--output_dir", str(tmp_path / "run"),
        "--label_smoothing_factor", "0.2", "--mixup_prob", "1", "--feature_mean", "-5", "--feature_std", "4",
        "--train_eval_samples", "0", "--dataloader_num_workers", "0", "--dataloader_persistent_workers", "false",
    ])  # fmt: skip
    with pytest.raises(_StopBeforeTraining):
        run_training(*arguments)
    [trainer] = trainers
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["labels"].shape == (16, 8)  # mixup's class probabilities
    trainer.model.eval()  # the same forward twice
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch)).item()
        logits = trainer.model(**{key: value for key, value in batch.items() if key != "labels"}).logits
    by_hand = _smoothed_cross_entropy_by_hand(logits.double().numpy(), batch["labels"].double().numpy(), 0.2)
    assert loss == pytest.approx(by_hand, rel=1e-5)


# --------------------------------------------------------------------------------------------------
# Training runs
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ast_run(demo_dir, tmp_path_factory):
    """The README's main job: the shipped AST demo config by name, `accelerate launch -m hf_fma.train`, one
    CPU process (the shipped accelerate config)."""
    output_dir = tmp_path_factory.mktemp("ast-demo")
    result = run([
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / "accelerate" / "cpu.yaml"),
        "-m", "hf_fma.train", "ast_demo", "--data_dir", str(demo_dir), "--output_dir", str(output_dir),
    ])  # fmt: skip
    return output_dir, result.stdout


def test_tiny_ast_learns_the_demo_genres_under_accelerate(ast_run):
    output_dir, stdout = ast_run
    metrics = results(output_dir)
    assert metrics["eval_accuracy"] >= 0.8  # validation accuracy of the kept (best) model; chance is 0.125
    assert metrics["validation_track_accuracy"] >= 0.8
    assert metrics["test_tracks"] == 16 and metrics["test_crops"] == 3
    summary = stdout.strip().splitlines()[-1]
    assert summary.startswith(f"test: track accuracy {metrics['test_track_accuracy']:.4f}")
    evaluation = json.loads((output_dir / "evaluation_test.json").read_text())
    assert evaluation["track"]["accuracy"] == metrics["test_track_accuracy"]
    assert len(evaluation["track"]["confusion_matrix"]) == 8


def test_the_run_records_training_curves_tracks_and_hardware(ast_run):
    output_dir, _ = ast_run
    metrics = results(output_dir)
    assert metrics["train_samples"] == 96  # the demo's small training split
    assert metrics["hardware"].startswith("CPU, ")
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    validation_epochs = [entry["epoch"] for entry in history if "eval_accuracy" in entry]
    train_entries = [entry for entry in history if "train_accuracy" in entry]
    # One training-split evaluation after every validation, on 16 tracks (as many as validation has).
    assert [entry["epoch"] for entry in train_entries] == validation_epochs
    assert all(0 <= entry["train_accuracy"] <= 1 and entry["train_loss"] > 0 for entry in train_entries)
    assert train_entries[-1]["train_accuracy"] > train_entries[0]["train_accuracy"]


def test_the_run_config_repeats_the_run(ast_run):
    output_dir, _ = ast_run
    model_args, data_args, training_args = parse_arguments(["--config", str(output_dir / RUN_CONFIG_NAME)])
    assert training_args.output_dir == str(output_dir) and data_args.crop_seconds == 3.0
    saved = json.loads((output_dir / "preprocessor_config.json").read_text())
    # the measured fbank statistics are recorded, so the rerun does not measure them again
    assert (model_args.feature_mean, model_args.feature_std) == (saved["mean"], saved["std"])
    # The command its first line gives trains into a new folder: the run's own one would be refused.
    command = (output_dir / RUN_CONFIG_NAME).read_text().splitlines()[0].split("repeat it with: ")[1]
    argv = shlex.split(command)
    assert argv[:3] == ["hf-fma", "train", str(output_dir / RUN_CONFIG_NAME)]
    _, _, rerun_args = parse_arguments(argv[2:])
    assert Path(rerun_args.output_dir) != output_dir


def test_the_saved_ast_is_its_best_checkpoint(ast_run):
    output_dir, _ = ast_run
    assert_saved_model_is_the_best_checkpoint(output_dir)


def test_the_saved_model_classifies_a_file_through_pipeline(ast_run, demo_dir):
    output_dir, _ = ast_run
    test = load_fma("small", data_dir=demo_dir, split="test")
    track = test.cast_column("audio", Audio(sampling_rate=16000))[0]
    classifier = pipeline("audio-classification", model=str(output_dir), trust_remote_code=True)
    predictions = classifier(track["audio"]["array"], top_k=8)
    assert {prediction["label"] for prediction in predictions} == set(test.features["genre"].names)
    assert sum(prediction["score"] for prediction in predictions) == pytest.approx(1.0, abs=1e-4)


def test_predict_files_results_read_like_the_pipelines_dicts(ast_run, fma_sample):
    from hf_fma.predict import predict_files

    output_dir, _ = ast_run
    path = fma_sample / "fma_small" / "000" / "000002.mp3"  # a real FMA MP3, 10 s: 4 windows of 3 s, the last to its end
    [result] = predict_files(output_dir, [path], top_k=3, device="cpu")
    top = result["predictions"]
    assert [sorted(prediction) for prediction in top] == [["label", "score"]] * 3  # the pipeline's keys
    assert [prediction["score"] for prediction in top] == sorted((p["score"] for p in top), reverse=True)
    assert dict(result) == {"file": str(path), "predictions": top, "duration": pytest.approx(10, abs=0.1),
                            "windows": 4, "error": None, "warning": None}  # fmt: skip
    assert result["predictions"] is result.predictions  # attribute access, as before


def test_classify_with_pipeline_reports_a_bad_file_and_classifies_the_others(ast_run, demo_dir, tmp_path):
    output_dir, _ = ast_run
    not_audio = tmp_path / "notes.mp3"
    not_audio.write_text("not audio")
    missing = tmp_path / "missing.mp3"
    (rock,) = (demo_dir / "examples").glob("rock_*.mp3")
    result = subprocess.run(
        [sys.executable, str(RECIPES / "classify_with_pipeline.py"), str(output_dir), str(not_audio), str(rock), str(missing)],
        capture_output=True, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    assert result.returncode == 1
    assert [line.split()[0] for line in result.stdout.splitlines()] == [str(rock)]  # after the bad first file
    assert f"{not_audio}: cannot classify" in result.stderr and f"{missing}: cannot classify" in result.stderr
    assert "2 of 3 file(s) could not be classified" in result.stderr


def test_hf_fma_train_takes_a_shipped_config_by_name_and_logs_to_tensorboard(demo_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    exit_code = cli.main([
        "train", "cnn_demo", "--data-dir", str(demo_dir), "--output-dir", str(tmp_path), "--num_train_epochs", "2",
        "--crop_seconds", "1", "--eval_crops", "1", "--train_eval_samples", "0", "--report_to", "tensorboard",
        "--dataloader_num_workers", "0", "--dataloader_persistent_workers", "false",
    ])  # fmt: skip
    assert exit_code == 0
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "fma_cnn"  # the config's model_family
    # one event file per writer: training's, then the final evaluation's
    steps = set()
    for events in tmp_path.glob("runs/*/events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events)).Reload()
        if "eval/accuracy" in accumulator.Tags()["scalars"]:
            steps |= {event.step for event in accumulator.Scalars("eval/accuracy")}
    assert steps == {6, 12}  # each epoch's validation: 96 tracks / 16 per step


def test_tiny_cnn_learns_the_demo_genres_under_accelerate(demo_dir, tmp_path):
    output_dir = tmp_path / "cnn-demo"
    run([
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / "accelerate" / "cpu.yaml"),
        str(RECIPES / "train_cnn.py"), "--config", str(CNN_DEMO),
        "--data_dir", str(demo_dir), "--output_dir", str(output_dir),
    ])  # fmt: skip
    metrics = results(output_dir)
    assert metrics["eval_accuracy"] >= 0.8 and metrics["validation_track_accuracy"] >= 0.8
    assert json.loads((output_dir / "config.json").read_text())["model_type"] == "fma_cnn"
    assert_saved_model_is_the_best_checkpoint(output_dir)


def test_tiny_lstm_learns_the_demo_genres_from_mfcc_and_ships_as_a_model_repository(demo_dir, tmp_path):
    from hf_fma.hub import prepare_model_repo
    from hf_fma.runs import Run

    output_dir = tmp_path / "lstm-demo"
    argv = ["--config", str(LSTM_DEMO), "--data_dir", str(demo_dir), "--output_dir", str(output_dir)]
    assert load_recipe("train_lstm").main(argv) == 0
    metrics = results(output_dir)
    # 16 validation tracks of 8 genres: chance is 1/8. Measured: 0.875 (seed 0, 2-core CPU).
    assert metrics["validation_track_accuracy"] >= 0.75 and metrics["test_track_accuracy"] >= 0.6
    assert json.loads((output_dir / "config.json").read_text())["model_type"] == "fma_lstm"
    features = json.loads((output_dir / "preprocessor_config.json").read_text())
    assert (features["num_mfcc"], features["time_downscale"]) == (20, 2)  # what pipeline and predict recompute
    assert Run.load(output_dir).features == "MFCC 20x150 (1x2 pooled), 3 s"
    card = (output_dir / "README.md").read_text()
    assert "RNN-LSTM baseline" in card and "the first 20 coefficients of the orthonormal DCT-II" in card

    repository = prepare_model_repo(output_dir, tmp_path / "repository", repo_id="me/lstm-fma-demo")
    expected = {"configuration_fma_lstm.py", "modeling_fma_lstm.py", "feature_extraction_fma_ast.py", "README.md"}
    assert expected <= {path.name for path in repository.iterdir()}
    test = load_fma("small", data_dir=demo_dir, split="test")
    track = test.cast_column("audio", Audio(sampling_rate=16000))[0]
    classifier = pipeline("audio-classification", model=str(repository), trust_remote_code=True)
    predictions = classifier(track["audio"]["array"], top_k=8)
    assert {prediction["label"] for prediction in predictions} == set(test.features["genre"].names)


class _TrainingRows(TrainerCallback):
    """The rows of the training DataLoader, read once training starts."""

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        self.dataset = train_dataloader.dataset


def test_train_segments_make_every_evenly_spaced_crop_of_a_training_track_an_example(demo_dir, tmp_path):
    from hf_fma.audio import load_crop

    argv = [
        "--config", str(CNN_DEMO), "--data_dir", str(demo_dir), "--output_dir", str(tmp_path),
        "--train_segments", "3", "--crop_seconds", "1", "--num_train_epochs", "1", "--eval_crops", "1",
        "--train_eval_samples", "0", "--dataloader_num_workers", "0", "--dataloader_persistent_workers", "false",
    ]  # fmt: skip
    rows = _TrainingRows()
    run_training(*parse_arguments(argv), callbacks=[rows])
    tracks = load_fma("small", data_dir=demo_dir, split="train").cast_column("audio", Audio(decode=False))
    assert len(rows.dataset) == 3 * len(tracks)  # 96 tracks x 3 segments
    assert json.loads((tmp_path / "trainer_state.json").read_text())["global_step"] == 18  # 288 / 16 per step
    first = rows.dataset[:3]
    assert first["crop_index"] == [0, 1, 2] and all(first["augment"])  # SpecAugment/mixup may apply
    assert set(rows.dataset["track_id"]) == set(tracks["track_id"])  # the training split's tracks only
    source = tracks.with_format(None)[0]["audio"]
    for index in range(3):  # the track's first, middle and last seconds: evenly spaced, decoded independently
        np.testing.assert_array_equal(first["waveform"][index], load_crop(source, 1.0, "even", index, 3))


class _BatchesPerEvaluation(TrainerCallback):
    """How many batches each evaluation ran over, by the metric prefix it logged (eval, train)."""

    def __init__(self):
        self.batches, self.counted = [], 0

    def on_prediction_step(self, args, state, control, **kwargs):
        self.counted += 1

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        prefix = "train" if "train_loss" in metrics else "eval"
        self.batches.append((prefix, self.counted))
        self.counted = 0


def test_the_training_curves_evaluate_the_training_sample_with_persistent_workers(demo_dir, tmp_path):
    # The demo config's persistent DataLoader workers: Trainer keeps one eval loader per dataset, and the
    # training sample must not get validation's loader back (train_* were once the eval_* numbers).
    argv = [
        "--config", str(CNN_DEMO), "--data_dir", str(demo_dir), "--output_dir", str(tmp_path),
        "--num_train_epochs", "2", "--crop_seconds", "1", "--eval_crops", "1", "--train_eval_samples", "24",
        "--per_device_eval_batch_size", "4", "--dataloader_num_workers", "1", "--dataloader_persistent_workers", "true",
    ]  # fmt: skip
    batches = _BatchesPerEvaluation()
    run_training(*parse_arguments(argv), callbacks=[batches])
    # Each validation runs over its 16 tracks in batches of 4, each training-split one over the 24 sampled;
    # the best model's final validation (after training) is followed by none.
    assert batches.batches == [("eval", 4), ("train", 6), ("eval", 4), ("train", 6), ("eval", 4)]
    state = plots.load_trainer_state(tmp_path)
    curves = plots.learning_curves(state.log_history)  # what `hf-fma plot curves` draws
    assert [epoch for epoch, _ in curves.train_loss] == [epoch for epoch, _ in curves.eval_loss] == [1, 2]
    assert all(train != validation for (_, train), (_, validation) in zip(curves.train_loss, curves.eval_loss))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_process_data_parallel_run_matches_one_process(ast_run, demo_dir, tmp_path):
    single_dir, _ = ast_run
    output_dir = tmp_path / "ddp"
    run([
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
        str(RECIPES / "train_ast.py"), "--config", str(AST_DEMO), "--data_dir", str(demo_dir),
        "--output_dir", str(output_dir),
        "--use_cpu",  # gloo: without it accelerate sees no accelerator and runs each process alone
        "--per_device_train_batch_size", "8",  # 2 x 8: the single run's batch of 16
    ])  # fmt: skip
    single, parallel = results(single_dir), results(output_dir)
    single_state = json.loads((single_dir / "trainer_state.json").read_text())
    parallel_state = json.loads((output_dir / "trainer_state.json").read_text())
    assert parallel_state["global_step"] == single_state["global_step"]  # same batches per epoch, not twice as many
    # Different random crops and dropout draws per process: the same learning, not the same numbers.
    assert parallel["eval_accuracy"] >= 0.8
    assert parallel["test_track_accuracy"] == pytest.approx(single["test_track_accuracy"], abs=0.2)
    assert parallel_state["log_history"][0]["loss"] == pytest.approx(single_state["log_history"][0]["loss"], rel=0.1)
    # evaluation split tracks across the processes and gathered them back: every test track, once
    assert json.loads((output_dir / "evaluation_test.json").read_text())["num_tracks"] == 16


class _StepsTaken(TrainerCallback):
    def __init__(self):
        self.taken = []

    def on_step_end(self, args, state, control, **kwargs):
        self.taken.append(state.global_step)


class _InterruptAfterFirstCheckpoint(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        raise KeyboardInterrupt(f"interrupted after the checkpoint of step {state.global_step}")


def test_an_interrupted_run_resumes_from_its_checkpoint_to_the_same_step_count(demo_dir, tmp_path):
    argv = [
        "--config", str(CNN_DEMO), "--data_dir", str(demo_dir), "--output_dir", str(tmp_path),
        "--num_train_epochs", "3", "--crop_seconds", "1", "--eval_crops", "1", "--dataloader_num_workers", "0",
        "--dataloader_persistent_workers", "false", "--save_total_limit", "5",
    ]  # fmt: skip
    model_args, data_args, training_args = parse_arguments(argv, defaults={"model_family": "cnn"})
    with pytest.raises(KeyboardInterrupt):
        run_training(model_args, data_args, training_args, callbacks=[_InterruptAfterFirstCheckpoint()])
    assert sorted(path.name for path in tmp_path.glob("checkpoint-*")) == ["checkpoint-6"]  # 96 tracks / 16

    model_args, data_args, training_args = parse_arguments(
        [*argv, "--resume_from_checkpoint", "last"], defaults={"model_family": "cnn"}
    )
    steps = _StepsTaken()
    metrics = run_training(model_args, data_args, training_args, callbacks=[steps])
    assert steps.taken == list(range(7, 19))  # continued after the checkpoint's step 6
    state = json.loads((tmp_path / "trainer_state.json").read_text())
    assert state["global_step"] == 18 and metrics["epoch"] == 3  # 3 epochs x 6 steps, as uninterrupted
    assert [entry["epoch"] for entry in state["log_history"] if "eval_accuracy" in entry] == [1, 2, 3]


def test_a_streamed_dataset_trains_and_is_evaluated_on_whole_tracks(demo_dir, tmp_path):
    argv = [
        "--config", str(CNN_DEMO), "--data_dir", str(demo_dir), "--output_dir", str(tmp_path), "--streaming",
        "--max_steps", "12", "--eval_strategy", "steps", "--eval_steps", "6", "--save_strategy", "steps",
        "--save_steps", "6", "--crop_seconds", "1", "--eval_crops", "2", "--shuffle_buffer_size", "32",
        "--dataloader_num_workers", "0", "--dataloader_persistent_workers", "false",
    ]  # fmt: skip
    metrics = run_training(*parse_arguments(argv))
    assert json.loads((tmp_path / "trainer_state.json").read_text())["global_step"] == 12
    assert metrics["test_tracks"] == 16 and metrics["test_crops"] == 2
    # every test track of the stream, each as its 2 crops
    assert json.loads((tmp_path / "evaluation_test.json").read_text())["num_clips"] == 32


def test_processes_streaming_their_shares_refuse_epoch_schedules(demo_dir, tmp_path, monkeypatch):
    """Two processes streaming their own shards reach the ends of their shares at different steps: an epoch
    schedule is refused at start, naming each flag to change; step schedules are accepted. (The world size
    is set here; tests/test_sharding.py runs 2 real processes on step schedules.)"""
    monkeypatch.setattr(FmaTrainingArguments, "world_size", property(lambda self: 2))
    argv = ["--config", str(CNN_DEMO), "--data_dir", str(demo_dir), "--output_dir", str(tmp_path), "--streaming",
            "--max_steps", "10", "--logging_strategy", "steps"]
    with pytest.raises(ValueError, match=r"no common epoch: set --eval_strategy steps and --save_strategy steps$"):
        check_arguments(*parse_arguments(argv))
    check_arguments(*parse_arguments(argv + ["--eval_strategy", "steps", "--save_strategy", "steps"]))


def test_streaming_without_max_steps_fails_at_start(demo_dir, tmp_path):
    argv = ["--config", str(CNN_DEMO), "--data_dir", str(demo_dir), "--output_dir", str(tmp_path), "--streaming"]
    with pytest.raises(ValueError, match="set max_steps"):
        run_training(*parse_arguments(argv))
