"""Checkpoints come back exactly: a resumed AST or LSTM run continues where it stopped, and a checkpoint of another
model family or genre set is refused before training.

Run: .venv/bin/python -m pytest tests/test_checkpoints.py -q
(The best-model-at-end checks ride on the demo runs of tests/test_training.py.)
"""

import json

import pytest
import safetensors.torch
import torch
from transformers import AutoModelForAudioClassification, TrainerCallback

from hf_fma.checkpoints import CheckpointMismatchError, load_checkpoint_weights
from hf_fma.models import FmaASTFeatureExtractor, build_cnn, build_model
from hf_fma import training
from hf_fma.arguments import parse_arguments
from hf_fma.train import run_training

from .conftest import REPO_ROOT

AST_DEMO = REPO_ROOT / "hf_fma" / "configs" / "ast_demo.yaml"
LSTM_DEMO = REPO_ROOT / "hf_fma" / "configs" / "lstm_demo.yaml"
DEMO_GENRES = ["Electronic", "Experimental", "Folk", "Hip-Hop", "Instrumental", "International", "Pop", "Rock"]


def assert_same_weights(folder_a, folder_b, atol=0.0):
    """Every tensor of two saved models, each read back with from_pretrained, is equal (within atol)."""
    model_a = AutoModelForAudioClassification.from_pretrained(folder_a)
    model_b = AutoModelForAudioClassification.from_pretrained(folder_b)
    weights_a, weights_b = model_a.state_dict(), model_b.state_dict()
    assert weights_a.keys() == weights_b.keys()
    different = [key for key in weights_a if not torch.allclose(weights_a[key], weights_b[key], rtol=0, atol=atol)]
    assert not different, f"{len(different)} of {len(weights_a)} differ ({folder_a}, {folder_b}): {different[:3]}"


class _LossesLogged(TrainerCallback):
    """The training loss Trainer logs at each step, by step."""

    def __init__(self):
        self.losses = {}

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses[state.global_step] = logs["loss"]


class _InterruptAtStep(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"interrupted at step {state.global_step}")


def _tiny_ast_argv(demo_dir, output_dir):
    # Plain features (no pooling: 128 mel bins, 10 ms frames) of 1 s crops, 4 epochs of 6 steps, a loss
    # logged every step, a checkpoint every epoch; no worker process, so the random crops come from the
    # RNG state Trainer saves in each checkpoint.
    return [
        "--config", str(AST_DEMO), "--data_dir", str(demo_dir), "--output_dir", str(output_dir),
        "--frequency_downscale", "1", "--time_downscale", "1", "--crop_seconds", "1", "--eval_crops", "1",
        "--num_train_epochs", "4", "--logging_strategy", "steps", "--logging_steps", "1",
        "--train_eval_samples", "0", "--dataloader_num_workers", "0", "--dataloader_persistent_workers", "false",
        "--save_total_limit", "5", "--load_best_model_at_end", "false",
    ]  # fmt: skip


def _tiny_lstm_argv(demo_dir, output_dir):
    # The LSTM demo's 20 MFCC of 20 ms frames (its tiny LSTM has dropout: random draws to restore too) on
    # the AST run's schedule; config and flags last, so they override the AST demo's.
    return [*_tiny_ast_argv(demo_dir, output_dir), "--config", str(LSTM_DEMO), "--time_downscale", "2"]


@pytest.mark.parametrize("tiny_argv", [_tiny_ast_argv, _tiny_lstm_argv], ids=["ast", "lstm on mfcc"])
def test_an_interrupted_run_resumes_with_its_trained_weights(demo_dir, tmp_path, monkeypatch, tiny_argv):
    uninterrupted_dir, interrupted_dir = tmp_path / "uninterrupted", tmp_path / "interrupted"
    uninterrupted = _LossesLogged()
    run_training(*parse_arguments(tiny_argv(demo_dir, uninterrupted_dir)), callbacks=[uninterrupted])

    # Stopped in the middle of epoch 3 (steps 13 to 18), after the checkpoint of epoch 2 (step 12).
    before = _LossesLogged()
    with pytest.raises(KeyboardInterrupt):
        argv = tiny_argv(demo_dir, interrupted_dir)
        run_training(*parse_arguments(argv), callbacks=[before, _InterruptAtStep(15)])
    assert sorted(path.name for path in interrupted_dir.glob("checkpoint-*")) == ["checkpoint-12", "checkpoint-6"]
    after = _LossesLogged()
    argv = [*tiny_argv(demo_dir, interrupted_dir), "--resume_from_checkpoint", "last"]
    # The fbank statistics come from the checkpoint (saved with its model), not measured again.
    monkeypatch.setattr(training, "compute_fbank_stats", lambda *args, **kwargs: pytest.fail("measured again"))
    metrics = run_training(*parse_arguments(argv), callbacks=[after])

    # Resumed from step 12: the first loss after resuming is the one the interrupted run logged at step 13
    # (an encoder restarted from random weights logs about twice the loss here), and every later step
    # repeats the uninterrupted run: same batches, crops and weights. The tolerance only allows for
    # float32 summation order.
    assert min(after.losses) == 13
    assert after.losses[13] == pytest.approx(before.losses[13], rel=1e-3)
    assert after.losses == pytest.approx({step: uninterrupted.losses[step] for step in after.losses}, rel=1e-3)
    assert_same_weights(interrupted_dir, uninterrupted_dir, atol=1e-5)
    finished = json.loads((uninterrupted_dir / "all_results.json").read_text())
    for key in ("test_track_accuracy", "test_clip_accuracy", "validation_track_accuracy"):
        assert metrics[key] == finished[key]


def _features():
    # The demo's 3 s crops pooled 2 x 2, as in ast_demo.yaml
    return FmaASTFeatureExtractor(
        num_mel_bins=128, max_length=300, frequency_downscale=2, time_downscale=2, mean=0.0, std=1.0
    )


@pytest.mark.parametrize(
    "saved_model, message",
    [
        (
            lambda: build_cnn("tiny", _features(), DEMO_GENRES),
            "holds a 'fma_cnn' model, but this run trains a 'audio-spectrogram-transformer' one",
        ),
        (lambda: build_model("tiny", _features(), [*DEMO_GENRES[:7], "Jazz"]), "was trained on the genres"),
    ],
    ids=["another model family", "other genres"],
)
def test_resuming_from_a_checkpoint_that_does_not_fit_fails_before_training(demo_dir, tmp_path, saved_model, message):
    checkpoint = tmp_path / "elsewhere" / "checkpoint-6"
    saved_model().save_pretrained(checkpoint)
    output_dir = tmp_path / "run"
    argv = [
        "--config", str(AST_DEMO), "--data_dir", str(demo_dir), "--output_dir", str(output_dir),
        "--resume_from_checkpoint", str(checkpoint), "--feature_mean", "0", "--feature_std", "1",
    ]  # fmt: skip
    with pytest.raises(CheckpointMismatchError, match=message):
        run_training(*parse_arguments(argv))
    assert not list(output_dir.glob("checkpoint-*")) and not (output_dir / "trainer_state.json").exists()


def test_a_checkpoint_of_other_features_is_an_error_naming_the_keys(tmp_path):
    saved = build_model("tiny", _features(), DEMO_GENRES)
    saved.save_pretrained(tmp_path)
    longer_crops = FmaASTFeatureExtractor(num_mel_bins=128, max_length=500, frequency_downscale=2, time_downscale=2)
    model = build_model("tiny", longer_crops, DEMO_GENRES)
    with pytest.raises(CheckpointMismatchError, match=r"position_embeddings \(1, \d+, 32\) in the checkpoint"):
        load_checkpoint_weights(model, tmp_path)


def test_a_checkpoint_missing_a_weight_is_an_error_naming_it(tmp_path):
    # from_pretrained would fill the missing weight with a fresh random one, and the strict copy after it
    # then passes: only the loading info tells.
    saved = build_model("tiny", _features(), DEMO_GENRES)
    saved.save_pretrained(tmp_path)
    stored = safetensors.torch.load_file(tmp_path / "model.safetensors")
    dropped = next(key for key in stored if key.endswith("layernorm.weight"))
    del stored[dropped]
    safetensors.torch.save_file(stored, tmp_path / "model.safetensors", metadata={"format": "pt"})
    model = build_model("tiny", _features(), DEMO_GENRES)
    with pytest.raises(CheckpointMismatchError, match=f"missing keys: .*{dropped.split('.')[-2]}"):
        load_checkpoint_weights(model, tmp_path)
