"""Nothing is lost under faults: an interrupted run resumes to exactly the uninterrupted run, a folder holds
one run at a time, a replacing run keeps the old one until it has something to replace it with, a full
disk is named before a checkpoint is cut short, and a checkpoint cut short is never resumed from.

All on tiny AST runs of the demo FMA (32 tracks, 2 epochs of 4 steps, 1 s crops), a few seconds each.
Run: python -m pytest tests/test_faults.py -q
"""

import json
import shutil
import signal
import subprocess
import sys
from collections import namedtuple

import pytest
import yaml

from hf_fma import checkpoints, run_folder, run_splits, trainer, training
from hf_fma.arguments import parse_arguments
from hf_fma.audio import load_audio
from hf_fma.geometry import SAMPLING_RATE
from hf_fma.checkpoints import resolve_checkpoint
from hf_fma.train import run_training

from .conftest import REPO_ROOT
from .test_checkpoints import _InterruptAtStep

AST_DEMO = REPO_ROOT / "hf_fma" / "configs" / "ast_demo.yaml"


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


def train(demo_dir, output_dir, *extra, callbacks=()):
    return run_training(*parse_arguments(tiny_ast_argv(demo_dir, output_dir, *extra)), callbacks=list(callbacks))


def training_logs(run_dir) -> dict[int, dict]:
    """loss, grad_norm and learning_rate by step, from the run's trainer_state.json."""
    history = json.loads((run_dir / "trainer_state.json").read_text())["log_history"]
    return {
        entry["step"]: {key: entry[key] for key in ("loss", "grad_norm", "learning_rate")}
        for entry in history
        if "loss" in entry
    }


def top_level_files(run_dir) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in run_dir.iterdir() if path.is_file() and path.name != ".lock"}


@pytest.fixture(scope="module")
def finished_run(demo_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    train(demo_dir, run_dir)
    return run_dir


# --------------------------------------------------------------------------------------------------
# Resume equals the uninterrupted run
# --------------------------------------------------------------------------------------------------


def test_a_run_killed_mid_epoch_resumes_to_exactly_the_uninterrupted_run(finished_run, demo_dir, tmp_path):
    with pytest.raises(KeyboardInterrupt):  # in epoch 2 (steps 5 to 8), after the checkpoint of step 4
        train(demo_dir, tmp_path, callbacks=[_InterruptAtStep(6)])
    train(demo_dir, tmp_path, "--resume_from_checkpoint", "last")

    uninterrupted, resumed = training_logs(finished_run), training_logs(tmp_path)
    assert sorted(resumed) == sorted(uninterrupted) == list(range(1, 9))
    # The same crops, masks and mixes in every batch after the resume (steps 5 to 8): the losses, gradient
    # norms and learning rates repeat the uninterrupted run's (the README promises 1e-3).
    for step in range(5, 9):
        assert resumed[step] == pytest.approx(uninterrupted[step], rel=1e-3), f"step {step}"
    finished = [json.loads((run_dir / "all_results.json").read_text()) for run_dir in (finished_run, tmp_path)]
    assert finished[0]["test_clip_accuracy"] == finished[1]["test_clip_accuracy"]


# --------------------------------------------------------------------------------------------------
# One run in a folder at a time, and a replacing run never mixed with the one it replaces
# --------------------------------------------------------------------------------------------------


def test_a_second_run_into_a_folder_in_use_stops_at_once_naming_the_first(demo_dir, tmp_path, monkeypatch):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from hf_fma.run_folder import run_folder_lock\n"
         "with run_folder_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(600)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        loaded = []
        monkeypatch.setattr(run_splits, "load_splits", lambda *arguments, **options: loaded.append(arguments))
        with pytest.raises(run_folder.RunFolderLockedError, match=f"in use by another training run \\(process {holder.pid} on "):
            train(demo_dir, tmp_path)
        assert loaded == []  # stopped before reading any data
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # A killed run leaves no stale lock: the OS released it with the process.
    with run_folder.run_folder_lock(tmp_path):
        pass


def test_a_replacing_run_killed_after_its_first_checkpoint_resumes_itself_not_the_run_it_replaces(
    finished_run, demo_dir, tmp_path
):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    before = top_level_files(run_dir)
    old_checkpoints = sorted(path.name for path in run_dir.glob("checkpoint-*"))
    with pytest.raises(KeyboardInterrupt):  # after the replacing run's checkpoint of step 4
        train(demo_dir, run_dir, "--overwrite_output_dir", "true", "--learning_rate", "1e-4",
              callbacks=[_InterruptAtStep(6)])  # fmt: skip
    # The finished run is whole: its files untouched, its checkpoints set aside (Trainer's rotation
    # deleted the old best one, and resume took the old last one).
    assert top_level_files(run_dir) == before and run_folder.is_finished(run_dir)
    aside = run_dir / run_folder.REPLACED_CHECKPOINTS_NAME
    assert sorted(path.name for path in aside.iterdir()) == old_checkpoints
    assert [path.name for path in run_dir.glob("checkpoint-*")] == ["checkpoint-4"]

    train(demo_dir, run_dir, "--resume_from_checkpoint", "last", "--learning_rate", "1e-4")
    # The replacing run continued from its own step 4 at its own learning rate, and is all that is left.
    logs = training_logs(run_dir)
    assert sorted(logs) == list(range(1, 9)) and max(entry["learning_rate"] for entry in logs.values()) <= 1e-4
    assert yaml.safe_load((run_dir / "run_config.yaml").read_text())["learning_rate"] == 1e-4
    assert not aside.exists()
    for checkpoint in run_dir.glob("checkpoint-*"):
        assert max(training_logs(checkpoint)[step]["learning_rate"] for step in training_logs(checkpoint)) <= 1e-4


def test_a_replacing_run_killed_before_any_checkpoint_leaves_nothing_to_resume(finished_run, demo_dir, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    with pytest.raises(KeyboardInterrupt):
        train(demo_dir, run_dir, "--overwrite_output_dir", "true", "--learning_rate", "1e-4",
              callbacks=[_InterruptAtStep(1)])  # fmt: skip
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        train(demo_dir, run_dir, "--resume_from_checkpoint", "last", "--learning_rate", "1e-4")
    with pytest.raises(ValueError, match="give one of them"):
        train(demo_dir, run_dir, "--resume_from_checkpoint", "last", "--overwrite_output_dir", "true")
    assert run_folder.is_finished(run_dir)


# --------------------------------------------------------------------------------------------------
# Disk full, and checkpoints cut short
# --------------------------------------------------------------------------------------------------


def test_a_disk_too_full_for_the_next_checkpoint_is_named_before_it_is_written(demo_dir, tmp_path, monkeypatch):
    disk = shutil.disk_usage(tmp_path)
    DiskUsage = namedtuple("DiskUsage", "total used free")

    def checkpoint_size(folder):
        return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())

    def half_a_checkpoint_free_after_the_first(path):
        first = tmp_path / "checkpoint-4"
        return DiskUsage(disk.total, disk.used, checkpoint_size(first) // 2 if first.exists() else disk.free)

    monkeypatch.setattr(trainer.shutil, "disk_usage", half_a_checkpoint_free_after_the_first)
    with pytest.raises(checkpoints.CheckpointDiskFullError) as error:
        train(demo_dir, tmp_path)
    first_size = checkpoint_size(tmp_path / "checkpoint-4")
    message = str(error.value)
    assert str(tmp_path) in message and "checkpoint of step 8" in message
    assert f"{first_size // 2 / 1e6:.2f} MB free" in message and f"needs about {first_size / 1e6:.2f} MB" in message
    assert [path.name for path in tmp_path.glob("checkpoint-*")] == ["checkpoint-4"]  # step 8's never started


def test_resume_last_skips_a_checkpoint_cut_short(finished_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    # A save killed (or out of space) while writing checkpoint-12: the model half written, no trainer_state.json.
    cut = run_dir / "checkpoint-12"
    shutil.copytree(run_dir / "checkpoint-8", cut)
    (cut / "trainer_state.json").unlink()
    model = cut / "model.safetensors"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    arguments = parse_arguments(tiny_ast_argv(tmp_path, run_dir, "--resume_from_checkpoint", "last"))
    assert resolve_checkpoint(arguments[2]) == str(run_dir / "checkpoint-8")
    (cut / "trainer_state.json").write_text('{"global_st')  # cut while trainer_state.json was written
    assert resolve_checkpoint(arguments[2]) == str(run_dir / "checkpoint-8")


# --------------------------------------------------------------------------------------------------
# Arguments that would train on padding
# --------------------------------------------------------------------------------------------------


def test_crops_longer_than_the_tracks_fail_before_training(demo_dir, tmp_path):
    # The demo's clips are 10 s (hf_fma.demo): 12 s crops would be one sixth padding, all alike.
    with pytest.raises(ValueError, match=r"crop_seconds 12.0 is longer than most training tracks \(10.00 s"):
        train(demo_dir, tmp_path, "--crop_seconds", "12")
    assert not list(tmp_path.glob("checkpoint-*"))


class _TrainerBuilt(Exception):
    pass


def test_validation_during_training_sees_the_centre_crop_of_each_track(demo_dir, tmp_path, monkeypatch):
    built = {}

    def record_the_datasets(**kwargs):
        built.update(kwargs)
        raise _TrainerBuilt

    monkeypatch.setattr(training, "FmaTrainer", record_the_datasets)
    with pytest.raises(_TrainerBuilt):
        train(demo_dir, tmp_path, "--crop_seconds", "3")
    # The middle 3 s of each 10 s clip, decoded independently: the whole clip, then the window at its centre.
    validation = built["eval_dataset"]
    for index in range(3):
        path = validation.with_format(None)[index]["audio"]["path"]
        total = len(load_audio(path))
        start = (total - 3 * SAMPLING_RATE) // 2
        centre = load_audio(path, offset=start / SAMPLING_RATE, duration=3.0)
        assert validation[index]["waveform"] == pytest.approx(centre, abs=1e-5)
