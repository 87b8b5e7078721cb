"""A run folder's files: a finished run is never replaced unasked nor left half-replaced, writes are atomic
and readable by other users as the umask allows, and the evaluations of other dataset configs never pass for
the run's own.

All on one real finished run of the CNN recipe on the demo FMA (conftest's `cnn_run`).
"""

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from transformers import TrainerCallback

from hf_fma import run_folder, run_splits, train
from hf_fma.arguments import parse_arguments, resolved_config
from hf_fma.cards import model_card
from hf_fma.evaluate_run import evaluate_main
from hf_fma.hub import prepare_model_repo

from .conftest import cnn_argv, copy_run


def file_hashes(folder) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# ----------------------------------------------------------------------------------------------------
# A finished run is never replaced unasked
# ----------------------------------------------------------------------------------------------------


def test_training_into_a_finished_run_stops_before_reading_data_and_changes_no_file(cnn_run, demo_dir, monkeypatch):
    run_dir = cnn_run[0]
    before = file_hashes(run_dir)
    before.pop(run_folder.LOCK_NAME)  # the lock file names the last process that held the folder: this one
    loaded = []
    monkeypatch.setattr(run_splits, "load_splits", lambda *arguments, **options: loaded.append(arguments))
    with pytest.raises(FileExistsError) as error:
        train.run_training(*parse_arguments(cnn_argv(demo_dir, run_dir, "--learning_rate", "1e-2"),
                                                        defaults={"model_family": "cnn"}))  # fmt: skip
    message = str(error.value)
    assert str(run_dir) in message and "--overwrite_output_dir" in message and "--resume_from_checkpoint last" in message
    assert loaded == []  # stopped before any data was prepared
    after = file_hashes(run_dir)
    assert after.pop(run_folder.LOCK_NAME) and after == before


class _InterruptAtFirstCheckpoint(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        raise KeyboardInterrupt("killed during training")


def test_a_replacing_run_killed_during_training_leaves_the_previous_run_whole(cnn_run, demo_dir, tmp_path):
    run_dir = copy_run(cnn_run[0], tmp_path / "run")
    finished = file_hashes(run_dir)
    finished.pop(run_folder.LOCK_NAME)
    argv = cnn_argv(demo_dir, run_dir, "--overwrite_output_dir", "true", "--learning_rate", "1e-2")
    with pytest.raises(KeyboardInterrupt):
        train.run_training(*parse_arguments(argv, defaults={"model_family": "cnn"}),
                              callbacks=[_InterruptAtFirstCheckpoint()])  # fmt: skip
    # The old model, config, results and evaluations untouched, its checkpoints whole, set aside until the
    # new run is finished; beside them only the new run's first checkpoint and the lock file.
    aside = run_folder.REPLACED_CHECKPOINTS_NAME + "/"
    after = file_hashes(run_dir)
    after.pop(run_folder.LOCK_NAME)
    run_files = {name: digest for name, digest in after.items() if not name.startswith(("checkpoint-", aside))}
    assert run_files == {name: digest for name, digest in finished.items() if not name.startswith("checkpoint-")}
    set_aside = {name.removeprefix(aside): digest for name, digest in after.items() if name.startswith(aside)}
    assert set_aside == {name: digest for name, digest in finished.items() if name.startswith("checkpoint-")}
    assert {name.split("/")[0] for name in after if name.startswith("checkpoint-")} == {"checkpoint-3"}


def test_a_crash_while_the_new_files_move_in_leaves_no_finished_looking_mix(tmp_path, monkeypatch):
    run_dir, staging = tmp_path / "run", tmp_path / "run" / ".incoming"
    staging.mkdir(parents=True)
    for name, text in {"all_results.json": '{"test_track_accuracy": 0.5}', "run_config.yaml": "seed: 0\n",
                       "config.json": "{}", "evaluation_mini_test.json": "{}"}.items():  # fmt: skip
        (run_dir / name).write_text(text)
    for name in ("config.json", "run_config.yaml"):
        (staging / name).write_text("new")
    (staging / "all_results.json").write_text('{"test_track_accuracy": 0.9}')
    moved = []

    def replace_then_crash(source, destination):
        if moved:
            raise OSError("disk full")
        moved.append(destination)
        os.rename(source, destination)

    monkeypatch.setattr(run_folder.os, "replace", replace_then_crash)
    with pytest.raises(OSError, match="disk full"):
        run_folder.publish_staged(staging, run_dir)
    # one new file is in, another is not: the folder no longer claims to be a finished run
    assert not run_folder.is_finished(run_dir) and not (run_dir / "all_results.json").exists()
    assert not (run_dir / "evaluation_mini_test.json").exists()  # an evaluation of the replaced model

    monkeypatch.undo()
    run_folder.publish_staged(staging, run_dir)
    assert json.loads((run_dir / "all_results.json").read_text()) == {"test_track_accuracy": 0.9}
    assert (run_dir / "config.json").read_text() == (run_dir / "run_config.yaml").read_text() == "new"


def test_the_finished_mark_moves_in_last_whatever_order_the_folder_lists(tmp_path, monkeypatch):
    run_dir, staging = tmp_path / "run", tmp_path / "run" / ".incoming"
    staging.mkdir(parents=True)
    for name in ("all_results.json", "README.md", "config.json", "model.safetensors"):
        (staging / name).write_text(name)
    listed = Path.iterdir
    monkeypatch.setattr(Path, "iterdir", lambda folder: iter(sorted(listed(folder))))  # all_results.json first
    moved, replace = [], os.replace

    def replace_noting_the_order(source, destination):
        moved.append(Path(destination).name)
        replace(source, destination)

    monkeypatch.setattr(run_folder.os, "replace", replace_noting_the_order)
    run_folder.publish_staged(staging, run_dir)
    assert moved[-1] == "all_results.json" and sorted(moved) == ["README.md", "all_results.json", "config.json", "model.safetensors"]
    with pytest.raises(FileNotFoundError, match="holds no all_results.json"):  # nothing finished to move in
        run_folder.publish_staged(run_folder.staging_dir(run_dir), run_dir)


def test_other_users_can_read_a_run_folder_as_the_umask_allows(cnn_run, tmp_path):
    """Every file of a finished run (the weights safetensors writes, the atomic writes of the card, config
    and results) has the mode a plain `open` gives: 0o644 under the usual umask 022, not mkstemp's 0o600."""
    umask = os.umask(0o022)
    os.umask(umask)
    run_dir = cnn_run[0]
    files = [path for path in run_dir.rglob("*") if path.is_file()]  # checkpoints too: resuming reads them
    names = {str(path.relative_to(run_dir)) for path in files}
    assert {"model.safetensors", "README.md", "all_results.json", "run_config.yaml"} <= names
    assert any(name.startswith("checkpoint-") and name.endswith("/model.safetensors") for name in names)
    modes = {str(path.relative_to(run_dir)): oct(stat.S_IMODE(path.stat().st_mode)) for path in files}
    assert modes == {name: oct(0o666 & ~umask) for name in modes}
    os.umask(0o027)  # a stricter umask is followed too
    try:
        written = run_folder.write_text_atomic(tmp_path / "evaluation_test.md", "text")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(written.stat().st_mode) == 0o640


def test_a_write_cut_short_leaves_the_previous_content_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "all_results.json"
    path.write_text('{"test_track_accuracy": 0.5}\n')

    def disk_full(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run_folder.os, "fsync", disk_full)  # the new content written, not yet on disk
    with pytest.raises(OSError, match="No space left"):
        run_folder.write_json_atomic(path, {"test_track_accuracy": 0.9})
    assert path.read_text() == '{"test_track_accuracy": 0.5}\n'
    assert [child.name for child in tmp_path.iterdir()] == ["all_results.json"]


def test_a_folder_with_checkpoints_only_is_refused_too(cnn_run, demo_dir, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(next(cnn_run[0].glob("checkpoint-*")), run_dir / "checkpoint-3")
    with pytest.raises(FileExistsError, match="checkpoint-3"):
        train.run_training(*parse_arguments(cnn_argv(demo_dir, run_dir), defaults={"model_family": "cnn"}))


def test_overwrite_output_dir_is_not_recorded_in_the_run_config(demo_dir, tmp_path):
    # A rerun from run_config.yaml must stop at a finished run again, not replace it.
    arguments = parse_arguments(cnn_argv(demo_dir, tmp_path, "--overwrite_output_dir", "true"),
                                         defaults={"model_family": "cnn"})  # fmt: skip
    assert arguments[2].overwrite_output_dir is True
    assert "overwrite_output_dir" not in resolved_config(*arguments)


# ----------------------------------------------------------------------------------------------------
# `hf-fma evaluate` on another config, and what cards and push report
# ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluated_on_mini(cnn_run, demo_dir, tmp_path_factory):
    """A copy of the run, its own evaluation files' hashes, then `hf-fma evaluate RUN --dataset_config_name mini` on 8 tracks."""
    run_dir = copy_run(cnn_run[0], tmp_path_factory.mktemp("evaluated") / "run")
    own = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in run_dir.glob("evaluation_*")}
    exit_code = evaluate_main([
        str(run_dir), "--dataset_config_name", "mini", "--split", "test", "--data_dir", str(demo_dir), "--n_crops", "2",
        "--max_tracks", "8", "--device", "cpu", "--no_plot",
    ])  # fmt: skip
    assert exit_code == 0
    return run_dir, own


def test_evaluate_on_another_config_leaves_the_runs_evaluations_and_writes_its_own(evaluated_on_mini):
    run_dir, own = evaluated_on_mini
    assert sorted(own) == ["evaluation_test.json", "evaluation_validation.json"]
    after = {name: hashlib.sha256((run_dir / name).read_bytes()).hexdigest() for name in own}
    assert after == own
    mini = json.loads((run_dir / "evaluation_mini_test.json").read_text())
    assert (mini["dataset_config"], mini["split"], mini["num_tracks"]) == ("mini", "test", 8)
    assert (run_dir / "evaluation_mini_test.md").is_file()


def test_card_and_push_report_the_runs_own_config_not_the_later_evaluation(evaluated_on_mini, tmp_path):
    run_dir, _ = evaluated_on_mini
    own = json.loads((run_dir / "evaluation_test.json").read_text())
    assert own["num_tracks"] == 16  # the mini evaluation above has 8: the two are told apart
    expected = {
        ("accuracy", "track"): round(own["track"]["accuracy"], 4),
        ("f1", "track"): round(own["track"]["macro_f1"], 4),
        ("accuracy", "clip"): round(own["clip"]["accuracy"], 4),
        ("f1", "clip"): round(own["clip"]["macro_f1"], 4),
    }
    for card_text in (str(model_card(run_dir)), (prepare_model_repo(run_dir, tmp_path / "repo") / "README.md").read_text()):
        card = ModelCard(card_text)
        reported = {(r.metric_type, "track" if "track level" in r.metric_name else "clip"): r.metric_value
                    for r in card.data.eval_results}  # fmt: skip
        assert reported == expected
        assert {r.dataset_config for r in card.data.eval_results} == {"small"}
        assert "| test | 16 |" in card_text


def test_card_refuses_a_test_evaluation_of_another_config(evaluated_on_mini, tmp_path):
    # What `hf-fma evaluate --config mini` wrote before it named its files by config: the run's own
    # evaluation_test.json replaced by mini's numbers. The card must not publish them as small's.
    run_dir = copy_run(evaluated_on_mini[0], tmp_path / "run")
    shutil.copy(run_dir / "evaluation_mini_test.json", run_dir / "evaluation_test.json")
    with pytest.raises(FileNotFoundError, match="no test evaluation on FMA small"):
        model_card(run_dir)


@pytest.mark.parametrize(
    "results, finished",
    [
        ({"test_track_accuracy": 0.5, "test_tracks": 16}, True),
        ({"test_track_map": 0.4, "test_threshold": 0.3, "test_tracks": 16}, True),  # a multi-label run
        ({"train_loss": 1.2, "eval_accuracy": 0.5}, False),  # trained, never tested
    ],
)
def test_a_run_is_finished_once_its_test_evaluation_is_in_whatever_its_task(tmp_path, results, finished):
    (tmp_path / "all_results.json").write_text(json.dumps(results))
    assert run_folder.is_finished(tmp_path) is finished
