"""Training on FMA's multi-label task (`task: multi_label`) on the offline demo FMA: the genre vocabulary of the
training split, multi-hot targets from the transforms to the model, BCE-with-logits, a demo run that learns
(validation mAP against the label prior) and saves its config fields, and a resume that repeats the
uninterrupted run.

The runs here stop before the track-level evaluation (`training.evaluate_and_stage`), which the evaluation's
own tests cover; the one test of the threshold it hands to the test split runs it for real.
Run: python -m pytest tests/test_multi_label_training.py -q
"""

import ast
import csv
import io
import json
import zipfile
from collections import Counter

import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification, PretrainedConfig, pipeline

from hf_fma import run_splits, training
from hf_fma.augment import TrainingSeeds
from hf_fma.arguments import check_arguments, parse_arguments
from hf_fma.checkpoints import resolve_checkpoint
from hf_fma.models.feature_extraction_fma_ast import FmaASTFeatureExtractor
from hf_fma.multi_label import ancestor_pairs, ancestry
from hf_fma.trainer import binary_cross_entropy_loss, classification_loss
from hf_fma.transforms import AudioCropTransform

from .test_checkpoints import _InterruptAtStep

MIN_GENRE_TRACKS = 3  # multi_label_demo's


# --------------------------------------------------------------------------------------------------
# The demo's metadata, read by hand: tracks.csv's genres_all and genres.csv's titles and parents
# --------------------------------------------------------------------------------------------------


def demo_metadata(demo_dir) -> tuple[dict[int, list[str]], dict[str, str | None]]:
    """track id -> titles of its genres_all, and genre title -> parent title, read with the csv module."""
    with zipfile.ZipFile(demo_dir / "fma_metadata.zip") as archive:
        tracks = list(csv.reader(io.StringIO(archive.read("fma_metadata/tracks.csv").decode())))
        genres = list(csv.DictReader(io.StringIO(archive.read("fma_metadata/genres.csv").decode())))
    titles = {int(row["genre_id"]): row["title"] for row in genres}
    parents = {row["title"]: titles.get(int(row["parent"])) for row in genres}
    column = next(i for i, (group, name) in enumerate(zip(tracks[0], tracks[1])) if (group, name) == ("track", "genres_all"))
    genres_all = {int(row[0]): [titles[g] for g in ast.literal_eval(row[column])] for row in tracks[3:]}
    return genres_all, parents


def multi_hot_by_hand(track_ids, genres_all, names) -> np.ndarray:
    return np.array([[float(name in genres_all[track_id]) for name in names] for track_id in track_ids])


def demo_argv(demo_dir, output_dir, *extra):
    return ["multi_label_demo", "--data_dir", str(demo_dir), "--output_dir", str(output_dir), "--disable_tqdm", "true",
            *extra]  # fmt: skip


def multi_label_run(demo_dir, output_dir, *extra, callbacks=()):
    """`train_and_evaluate` of the multi_label_demo config with the track-level evaluation held back: its
    arguments are returned for the tests to run it. Returns (metrics, staging, held-back arguments)."""
    model_args, data_args, training_args = parse_arguments(demo_argv(demo_dir, output_dir, *extra))
    check_arguments(model_args, data_args, training_args)
    held_back = {}

    def hold_back(*arguments):
        held_back["arguments"] = arguments
        return {}

    with pytest.MonkeyPatch.context() as patch, pytest.warns(UserWarning, match="left out of the label space"):
        patch.setattr(training, "evaluate_and_stage", hold_back)
        metrics, staging = training.train_and_evaluate(
            model_args, data_args, training_args, resolve_checkpoint(training_args), callbacks
        )
    return metrics, staging, held_back["arguments"]


@pytest.fixture(scope="module")
def demo_splits(demo_dir, tmp_path_factory):
    model_args, data_args, training_args = parse_arguments(demo_argv(demo_dir, tmp_path_factory.mktemp("splits")))
    with pytest.warns(UserWarning, match="left out of the label space"):
        return data_args, run_splits.prepare_splits(data_args, training_args)


# --------------------------------------------------------------------------------------------------
# Arguments, vocabulary, targets, loss
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--task", "multi-label"], "unknown task 'multi-label'"),
        (["--min_genre_tracks", "0"], "min_genre_tracks must be at least 1, got 0"),
        (["--metric_for_best_model", "accuracy"], "metric_for_best_model 'accuracy' is not reported by a multi_label"),
        (["--streaming", "true", "--max_steps", "10"], "set streaming=False"),
    ],
)
def test_a_wrong_multi_label_argument_fails_at_start_naming_the_value(demo_dir, tmp_path, flags, message):
    with pytest.raises(ValueError, match=message):
        check_arguments(*parse_arguments(demo_argv(demo_dir, tmp_path, *flags)))


def test_the_vocabulary_is_the_training_splits_and_labels_every_split_over_it(demo_dir, demo_splits):
    data_args, splits = demo_splits
    genres_all, _ = demo_metadata(demo_dir)
    counts = Counter(genre for track_id in splits.whole["train"]["track_id"] for genre in genres_all[track_id])
    expected = sorted(genre for genre, count in counts.items() if count >= MIN_GENRE_TRACKS)
    assert splits.label_names == expected and len(expected) == 19  # 8 top genres and 11 sub-genres
    for name in ("train", "validation", "test"):
        labelled = splits.labelled[name].with_transform(
            AudioCropTransform(1.0, "center", **run_splits.label_source(splits.vocabulary))
        )
        rows = [labelled[index] for index in range(len(labelled))]
        track_ids = [row["track_id"] for row in rows]
        labels = np.stack([row["labels"] for row in rows])
        # Over the training split's genres in its order, whatever genres the split itself has.
        np.testing.assert_array_equal(labels, multi_hot_by_hand(track_ids, genres_all, expected), err_msg=name)
        # Every track with a genre of the vocabulary is kept, and only those.
        kept = {t for t in splits.whole[name]["track_id"] if set(genres_all[t]) & set(expected)}
        assert set(track_ids) == kept, name


def test_a_training_batch_carries_each_tracks_genres_as_multi_hot_targets(demo_dir, demo_splits):
    data_args, splits = demo_splits
    genres_all, parents = demo_metadata(demo_dir)
    train = run_splits.training_dataset(data_args, splits.labelled["train"], _extractor(), TrainingSeeds(0),
                                      splits.vocabulary)  # fmt: skip
    collator = training.build_collator(data_args, _extractor(), len(splits.label_names))
    rows = [train[index] for index in range(6)]
    batch = collator(rows)
    expected = multi_hot_by_hand([row["track_id"] for row in rows], genres_all, splits.label_names)
    assert batch["labels"].dtype == torch.float32
    np.testing.assert_array_equal(batch["labels"].numpy(), expected)
    # A sub-genre's track is a target of its parent too (genres_all holds the parents).
    assert ((expected[:, splits.label_names.index("Metal")] <= expected[:, splits.label_names.index("Rock")])).all()
    # The hierarchy saved with the model: genres.csv's parents of the vocabulary's genres (and their ancestors).
    assert splits.genre_parents == {name: parents[name] for name in splits.label_names}
    assert splits.genre_parents["Metal"] == "Rock" and splits.genre_parents["Rock"] is None


def test_the_saved_hierarchy_keeps_the_ancestors_between_a_genre_and_its_kept_grandparent(demo_dir):
    _, parents = demo_metadata(demo_dir)  # Post-Punk < Punk < Rock in the demo's genres.csv
    kept = ancestry(["Post-Punk", "Rock"], parents)
    assert kept == {"Post-Punk": "Punk", "Punk": "Rock", "Rock": None}
    assert ancestor_pairs(["Post-Punk", "Rock"], kept) == [(0, 1)]  # Post-Punk implies Rock, Punk left out


def _extractor():
    return FmaASTFeatureExtractor(num_mel_bins=64, max_length=100, mean=-5.0, std=4.0)


def test_the_multi_label_loss_is_torchs_bce_with_logits():
    logits = torch.randn(5, 7)
    targets = (torch.rand(5, 7) < 0.3).float()
    outputs = {"logits": logits}
    bce = torch.nn.BCEWithLogitsLoss()
    torch.testing.assert_close(binary_cross_entropy_loss(outputs, targets), bce(logits, targets))
    # Label smoothing pulls each target towards 1/2; num_items_in_batch (Trainer's count of label values
    # over accumulated batches) divides the sum.
    smoothed = bce(logits, targets * 0.8 + 0.1)
    torch.testing.assert_close(binary_cross_entropy_loss(outputs, targets, label_smoothing=0.2), smoothed)
    torch.testing.assert_close(binary_cross_entropy_loss(outputs, targets, num_items_in_batch=70), bce(logits, targets) / 2)
    # The loss follows the model's problem_type.
    multi_label = PretrainedConfig(problem_type="multi_label_classification")
    torch.testing.assert_close(classification_loss(multi_label)(outputs, targets), bce(logits, targets))
    classes = torch.tensor([0, 3, 6, 1, 2])
    single = classification_loss(PretrainedConfig())(outputs, classes)
    torch.testing.assert_close(single, torch.nn.functional.cross_entropy(logits, classes))


# --------------------------------------------------------------------------------------------------
# Demo runs: AST and CNN learn and save; a resumed run repeats the uninterrupted one
# --------------------------------------------------------------------------------------------------


def label_prior_map(labels: np.ndarray) -> float:
    """mAP of constant scores: every track tied, so each genre's AP is its positive rate (genres without
    a positive left out, as the metric leaves them out)."""
    rates = labels.mean(axis=0)
    return float(rates[rates > 0].mean())


@pytest.fixture(scope="module", params=["ast", "cnn"])
def demo_run(request, demo_dir, tmp_path_factory):
    family = request.param
    extra = ["--model_family", family, "--feature_mean", "-5", "--feature_std", "4"]
    if family == "cnn":
        extra += ["--learning_rate", "1e-2", "--num_train_epochs", "15"]  # as cnn_demo.yaml
    metrics, staging, held_back = multi_label_run(demo_dir, tmp_path_factory.mktemp(family) / "run", *extra)
    return family, metrics, staging, held_back


def test_a_multi_label_demo_run_learns_well_above_the_label_prior(demo_run, demo_dir):
    family, metrics, staging, (trainer, *_rest, splits, _staging) = demo_run
    genres_all, _ = demo_metadata(demo_dir)
    validation = splits.labelled["validation"]
    prior = label_prior_map(multi_hot_by_hand(validation["track_id"], genres_all, splits.label_names))
    best = trainer.evaluate()["eval_map"]  # the kept (best) model's validation clip mAP
    print(f"{family}: validation clip mAP {best:.4f}, label-prior mAP {prior:.4f}")
    assert prior == pytest.approx(0.109375)  # 9 genres with 2 of 16 tracks, 3 with 1 (hand-counted)
    # Random scores reach more than the prior on 16 tracks (a genre's 1 or 2 positives land high by chance):
    # 0.25 on average, 0.40 at the 99th percentile (simulated), so 0.51 takes a model that learned.
    assert best >= prior + 0.4


def test_a_multi_label_run_saves_its_task_in_the_model_config(demo_run, demo_dir):
    family, metrics, staging, (trainer, *_rest, splits, _staging) = demo_run
    _, parents = demo_metadata(demo_dir)
    config = json.loads((staging / "config.json").read_text())
    assert config["model_type"] == {"ast": "audio-spectrogram-transformer", "cnn": "fma_cnn"}[family]
    assert config["problem_type"] == "multi_label_classification"
    assert [config["id2label"][str(index)] for index in range(19)] == splits.label_names
    assert config["genre_parents"] == {name: parents[name] for name in splits.label_names}
    assert config["multi_label_threshold"] is None  # until the validation split chooses it
    best = json.loads((staging / "trainer_state.json").read_text())
    assert best["best_metric"] == pytest.approx(trainer.evaluate()["eval_map"])


def test_the_threshold_chosen_on_validation_is_saved_and_scores_the_test_split(demo_run):
    family, metrics, staging, held_back = demo_run
    results = training.evaluate_and_stage(*held_back)
    config = json.loads((staging / "config.json").read_text())
    validation, test = (json.loads((staging / f"evaluation_{name}.json").read_text()) for name in ("validation", "test"))
    assert config["multi_label_threshold"] == validation["track"]["threshold"]
    assert test["track"]["threshold"] == validation["track"]["threshold"]
    assert results["test_track_map"] == test["track"]["mean_average_precision"]


def test_a_saved_multi_label_run_reloads_in_the_pipeline_with_a_sigmoid_per_genre(demo_run):
    family, metrics, staging, held_back = demo_run
    model = AutoModelForAudioClassification.from_pretrained(staging, trust_remote_code=True)
    extractor = AutoFeatureExtractor.from_pretrained(staging, trust_remote_code=True)
    waveform = np.random.default_rng(0).normal(0, 0.1, 16_000).astype(np.float32)
    with torch.no_grad():
        logits = model(**extractor(waveform, sampling_rate=16_000, return_tensors="pt")).logits[0]
    by_hand = {model.config.id2label[index]: score for index, score in enumerate(torch.sigmoid(logits).tolist())}

    classifier = pipeline("audio-classification", model=str(staging), trust_remote_code=True, top_k=None)
    scores = {result["label"]: result["score"] for result in classifier({"raw": waveform, "sampling_rate": 16_000})}
    assert scores == pytest.approx(by_hand, abs=1e-5)  # each genre on its own, not a softmax over them


def test_a_resumed_multi_label_run_repeats_the_uninterrupted_one(demo_dir, tmp_path):
    # 32 tracks in batches of 8, 2 epochs of 4 steps, a checkpoint each; random crops, SpecAugment and mixup of
    # the multi-hot targets drawn in a persistent DataLoader worker.
    tiny = [
        "--crop_seconds", "1", "--eval_crops", "1", "--max_train_samples", "32", "--max_eval_samples", "16",
        "--per_device_train_batch_size", "8", "--num_train_epochs", "2", "--train_eval_samples", "0",
        "--feature_mean", "-5", "--feature_std", "4", "--freq_mask", "16", "--time_mask", "20", "--mixup_prob", "0.5",
        "--logging_strategy", "steps", "--logging_steps", "1", "--save_total_limit", "5", "--min_genre_tracks", "2",
    ]  # fmt: skip
    _, uninterrupted, _ = multi_label_run(demo_dir, tmp_path / "uninterrupted", *tiny)
    with pytest.raises(KeyboardInterrupt):  # in epoch 2 (steps 5 to 8), after the checkpoint of step 4
        multi_label_run(demo_dir, tmp_path / "resumed", *tiny, callbacks=[_InterruptAtStep(6)])
    _, resumed, _ = multi_label_run(demo_dir, tmp_path / "resumed", *tiny, "--resume_from_checkpoint", "last")

    def losses(staging):
        history = json.loads((staging / "trainer_state.json").read_text())["log_history"]
        return {entry["step"]: (entry["loss"], entry["grad_norm"]) for entry in history if "loss" in entry}

    assert sorted(losses(resumed)) == sorted(losses(uninterrupted)) == list(range(1, 9))
    for step in range(5, 9):
        assert losses(resumed)[step] == pytest.approx(losses(uninterrupted)[step], rel=1e-3), f"step {step}"
