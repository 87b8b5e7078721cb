"""Nothing is lost under faults: an interrupted run resumes to exactly the uninterrupted run, a folder holds
one run at a time, a replacing run keeps the old one until it has something to replace it with, and a
checkpoint cut short (disk full, kill) is never resumed from.

Run: python -m pytest tests/test_faults.py -q
"""

import json

import pytest
from transformers import TrainerCallback

from hf_fma.training import parse_arguments, run_training

from .conftest import REPO_ROOT
from .test_checkpoints import _InterruptAtStep

AST_DEMO = REPO_ROOT / "hf_fma" / "configs" / "ast_demo.yaml"


class _LogHistory(TrainerCallback):
    """Every training log (loss, grad_norm, learning_rate) by step."""

    def __init__(self):
        self.logs = {}

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.logs[state.global_step] = {key: logs[key] for key in ("loss", "grad_norm", "learning_rate")}


def tiny_ast_argv(demo_dir, output_dir, *extra):
    # 32 tracks in batches of 8: 4 steps an epoch, a checkpoint each. Random 1 s crops, SpecAugment and mixup
    # drawn in a persistent DataLoader worker, as the demo config trains. Given fbank statistics: none measured.
    return [
        "--config", str(AST_DEMO), "--data_dir", str(demo_dir), "--output_dir", str(output_dir),
        "--crop_seconds", "1", "--eval_crops", "1", "--max_train_samples", "32", "--max_eval_samples", "16",
        "--per_device_train_batch_size", "8", "--num_train_epochs", "2", "--train_eval_samples", "0",
        "--feature_mean", "-5", "--feature_std", "4", "--freq_mask", "16", "--time_mask", "20", "--mixup_prob", "0.5",
        "--logging_strategy", "steps", "--logging_steps", "1", "--save_total_limit", "5",
        "--dataloader_num_workers", "1", "--dataloader_persistent_workers", "true", "--disable_tqdm", "true",
        *extra,
    ]  # fmt: skip


def test_a_run_killed_mid_epoch_resumes_to_exactly_the_uninterrupted_run(demo_dir, tmp_path):
    uninterrupted = _LogHistory()
    run_training(*parse_arguments(tiny_ast_argv(demo_dir, tmp_path / "uninterrupted")), callbacks=[uninterrupted])
    with pytest.raises(KeyboardInterrupt):  # in epoch 2 (steps 5 to 8), after the checkpoint of step 4
        run_training(*parse_arguments(tiny_ast_argv(demo_dir, tmp_path / "resumed")), callbacks=[_InterruptAtStep(6)])
    resumed = _LogHistory()
    argv = tiny_ast_argv(demo_dir, tmp_path / "resumed", "--resume_from_checkpoint", "last")
    run_training(*parse_arguments(argv), callbacks=[resumed])

    assert sorted(resumed.logs) == list(range(5, 9))
    # The same crops, masks and mixes in every batch after the resume: the losses, gradient norms and
    # learning rates repeat the uninterrupted run's (the README promises 1e-3; float32 sums give ~1e-6).
    for step, logs in resumed.logs.items():
        assert logs == pytest.approx(uninterrupted.logs[step], rel=1e-3), f"step {step}"
    states = [json.loads((tmp_path / name / "trainer_state.json").read_text()) for name in ("uninterrupted", "resumed")]
    assert states[0]["best_global_step"] == states[1]["best_global_step"]
