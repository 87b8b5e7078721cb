"""The study's comparison: a shipped config for each row hf-fma can run, the published numbers (as the study
and its reference paper report them) and `hf-fma table --published` printing them beside our runs.
"""

import json

import pytest
import yaml
from datasets import Audio

from hf_fma import cli, published, results
from hf_fma.runs import Run
from hf_fma.arguments import parse_arguments, resolved_config
from hf_fma.configs import config_file
from hf_fma.data import load_fma
from hf_fma.train import run_training

from .test_training import _TrainingRows

# Each published row as the issue and FMA.md state it: (system, dataset, accuracy in %, the config
# that runs it). The study's group: AST and CNN from 5 s crops; its reference paper: MFCC over six 5 s
# segments per track.
STUDY_GROUP_ROWS = {
    ("AST from scratch", "fma_small", 40.8, "ast_study_small"),
    ("CNN", "fma_small", 54.2, "cnn_study_small"),
    ("AST from scratch", "mini", 26.5, "ast_study_mini"),
    ("CNN", "mini", 21.9, "cnn_study_mini"),
}
REFERENCE_ROWS = {
    ("RNN-LSTM", "fma_small", 57.1, "lstm_mfcc_small"),
    ("CNN", "fma_small", 51.6, "cnn_mfcc_small"),
    ("ViT", "fma_small", 56.9, "ast_mfcc_small"),
    ("ViT", "GTZAN", 78.0, "ast_gtzan"),  # on a GTZAN dataset of the Hub
}

# What each config must train, read off the rows: model family and preset, hf_fma dataset config, pooling
# (frequency, time) of the 128-bin log-mel, MFCC (count, delta order) or log-mel (0, 0), crop seconds, and
# training segments per track (0: a random crop).
CONFIG_SET_UPS = {
    "ast_study_small": ("ast", "study-scratch", "small", (4, 4), 0, 0, 5.0, 0),  # "downscaled by 4"
    "cnn_study_small": ("cnn", "study", "small", (4, 4), 0, 0, 5.0, 0),
    "ast_study_mini": ("ast", "study-scratch", "mini", (4, 4), 0, 0, 5.0, 0),
    "cnn_study_mini": ("cnn", "study", "mini", (4, 4), 0, 0, 5.0, 0),
    "lstm_mfcc_small": ("lstm", "study", "small", (1, 2), 13, 0, 5.0, 6),
    "cnn_mfcc_small": ("cnn", "study", "small", (1, 2), 13, 0, 5.0, 6),
    # AST's 16 x 16 patches need 16 values per frame: 13 MFCC + deltas + delta-deltas.
    "ast_mfcc_small": ("ast", "study-scratch", "small", (1, 2), 13, 2, 5.0, 6),
    # The study's AST settings on GTZAN (the row states no features): a Hub dataset without configs.
    "ast_gtzan": ("ast", "study-scratch", "default", (4, 4), 0, 0, 5.0, 0),
}


def test_the_published_rows_are_the_study_s_numbers():
    rows = {
        (result.system, result.dataset.split(":")[0].split(" ")[0], result.value, result.config): result
        for result in published.PUBLISHED_RESULTS
    }
    assert set(rows) == STUDY_GROUP_ROWS | REFERENCE_ROWS
    for key, result in rows.items():
        assert result.metric == "accuracy"
        assert ("study's group" if key in STUDY_GROUP_ROWS else "reference paper") in result.source
        if key in REFERENCE_ROWS and key[1] == "fma_small":
            assert result.features == "MFCC" and "six 5 s segments per track" in result.protocol
        if key in STUDY_GROUP_ROWS:
            assert result.protocol == "5 s crops"


@pytest.mark.parametrize("name", sorted(CONFIG_SET_UPS))
def test_each_study_config_parses_to_the_set_up_of_its_row(name):
    model_args, data_args, training_args = parse_arguments(["--config", str(config_file(name))])
    parsed = (
        model_args.model_family, model_args.model_name_or_path, data_args.dataset_config_name,
        (model_args.frequency_downscale, model_args.time_downscale), model_args.num_mfcc, model_args.mfcc_delta_order, data_args.crop_seconds, data_args.train_segments,
    )  # fmt: skip
    assert parsed == CONFIG_SET_UPS[name] and model_args.num_mel_bins == 128
    assert data_args.eval_crops == 6 and data_args.max_train_samples is None  # six crops per track, all tracks
    assert training_args.per_device_train_batch_size == 64 and training_args.learning_rate == 1e-3  # the study's
    # What a run of it records is what `--published` matches it on.
    run_config = resolved_config(model_args, data_args, training_args)
    setup = published.config_setup(name)  # and the dataset_name of a config on another dataset
    assert set(setup) == {*published.SETUP_KEYS, *(["dataset_name"] if run_config["dataset_name"] else [])}
    assert setup == {key: run_config[key] for key in setup}


def test_a_config_that_leaves_its_set_up_unstated_cannot_stand_for_a_published_row():
    with pytest.raises(ValueError, match=r"ast_demo.yaml must state num_mel_bins, num_mfcc, mfcc_delta_order, train_segments:"):
        published.config_setup("ast_demo")


# --------------------------------------------------------------------------------------------------
# The reference paper's MFCC rows, a few steps each on the demo FMA
# --------------------------------------------------------------------------------------------------


MFCC_CONFIGS = ("ast_mfcc_small", "cnn_mfcc_small", "lstm_mfcc_small")


@pytest.fixture(scope="module")
def mfcc_runs(demo_dir, tmp_path_factory):
    """Each MFCC config as shipped but for 2 steps, 8 evaluation tracks and no workers, and a tiny AST and
    CNN (the LSTM's study preset is small already: its run has exactly the set-up of lstm_mfcc_small)."""
    root = tmp_path_factory.mktemp("mfcc-runs")
    runs = {}
    for name in MFCC_CONFIGS:
        model = [] if name == "lstm_mfcc_small" else ["--model_name_or_path", "tiny"]
        argv = [
            "--config", str(config_file(name)), "--data_dir", str(demo_dir), "--output_dir", str(root / name), *model,
            "--max_steps", "2", "--per_device_train_batch_size", "8",
            "--per_device_eval_batch_size", "32", "--max_eval_samples", "8", "--train_eval_samples", "0",
            "--stats_max_tracks", "8", "--dataloader_num_workers", "0", "--dataloader_persistent_workers", "false",
            "--dataloader_pin_memory", "false",
        ]  # fmt: skip
        rows = _TrainingRows()
        run_training(*parse_arguments(argv), callbacks=[rows])
        runs[name] = (root / name, len(rows.dataset))
    return root, runs


# name -> (model_type, the table's features column): 128 mel bins, 5 s = 500 frames of 10 ms pooled by 2.
MFCC_RUNS = {
    "ast_mfcc_small": ("audio-spectrogram-transformer", "MFCC 39x250 (1x2 pooled), 5 s x 6 per track"),
    "cnn_mfcc_small": ("fma_cnn", "MFCC 13x250 (1x2 pooled), 5 s x 6 per track"),
    "lstm_mfcc_small": ("fma_lstm", "MFCC 13x250 (1x2 pooled), 5 s x 6 per track"),
}


@pytest.mark.parametrize("name", MFCC_CONFIGS)
def test_each_mfcc_config_trains_six_segments_of_every_track_on_the_demo(mfcc_runs, demo_dir, name):
    _, runs = mfcc_runs
    folder, examples = runs[name]
    tracks = load_fma("small", data_dir=demo_dir, split="train").cast_column("audio", Audio(decode=False))
    assert examples == 6 * len(tracks)
    assert json.loads((folder / "trainer_state.json").read_text())["global_step"] == 2
    model_type, features = MFCC_RUNS[name]
    assert json.loads((folder / "config.json").read_text())["model_type"] == model_type
    assert Run.load(folder).features == features
    assert "test_track_accuracy" in json.loads((folder / "all_results.json").read_text())


def test_runs_on_demo_data_are_never_set_beside_published_numbers(mfcc_runs, capsys):
    root, _ = mfcc_runs
    assert results.table_main([str(root), "--published"]) == 0
    output = capsys.readouterr().out
    ours, theirs = output.split("Published results")
    # lstm_mfcc_small's own set-up, but on the synthesized demo: beside 57.1 it would pass for a repetition.
    assert "| LSTM (study) | MFCC 13x250 (1x2 pooled), 5 s x 6 per track | small | 96 |" in ours
    for line in theirs.splitlines()[4:]:
        assert line.startswith("| published (") and line.endswith("| not run | 0 |")


# --------------------------------------------------------------------------------------------------
# `hf-fma table --published` on runs of the study's configs
# --------------------------------------------------------------------------------------------------

MODEL_TYPES = {"ast": "audio-spectrogram-transformer", "cnn": "fma_cnn", "lstm": "fma_lstm"}


def fake_run(folder, config, seed, accuracy, *flags, demo=False):
    """The files `hf-fma train CONFIG --seed SEED FLAGS` leaves (those the table reads), test accuracy given."""
    model_args, data_args, training_args = parse_arguments(
        ["--config", str(config_file(config)), "--seed", str(seed), *flags]
    )
    run_config = resolved_config(model_args, data_args, training_args)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": MODEL_TYPES[model_args.model_family]}))
    features = {key: run_config[key] for key in ("num_mel_bins", "frequency_downscale", "time_downscale", "num_mfcc", "mfcc_delta_order")}
    (folder / "preprocessor_config.json").write_text(json.dumps({**features, "max_length": 500}))
    tracks = data_args.max_train_samples or (96 if demo else 6400)  # the demo's or fma_small's training split
    results = {"test_track_accuracy": accuracy, "train_samples": tracks, "synthesized_demo_data": demo,
               "fma_data": not data_args.dataset_name}
    (folder / "all_results.json").write_text(json.dumps(results))
    (folder / "run_config.yaml").write_text(yaml.safe_dump(run_config))
    return folder


@pytest.fixture
def study_runs(tmp_path):
    root = tmp_path / "runs"
    for seed, accuracy in enumerate([0.40, 0.41, 0.42]):
        fake_run(root / f"ast-{seed}", "ast_study_small", seed, accuracy, "--learning_rate", "5e-4")  # lr is free
    for seed, accuracy in enumerate([0.50, 0.52]):
        fake_run(root / f"cnn-mfcc-{seed}", "cnn_mfcc_small", seed, accuracy)
    # Not the published set-ups: a random crop per track instead of six segments, a tiny model, a sample
    # of the training split, and the study's config on the synthesized demo FMA.
    fake_run(root / "cnn-mfcc-random-crops", "cnn_mfcc_small", 0, 0.45, "--train_segments", "0")
    fake_run(root / "ast-tiny", "ast_study_small", 0, 0.30, "--model_name_or_path", "tiny")
    fake_run(root / "ast-1000", "ast_study_small", 0, 0.20, "--max_train_samples", "1000")
    fake_run(root / "lstm-demo", "lstm_mfcc_small", 0, 0.90, demo=True)
    # GTZAN's row: its config's Hub dataset, and the same set-up on another copy of GTZAN, which is not that data.
    fake_run(root / "ast-gtzan", "ast_gtzan", 0, 0.70)
    fake_run(root / "ast-gtzan-elsewhere", "ast_gtzan", 0, 0.95, "--dataset_name", "my_gtzan/")
    return root


def test_table_prints_published_rows_labelled_as_theirs_beside_our_runs_of_their_set_up(study_runs, tmp_path, capsys):
    assert results.table_main([str(study_runs), "--published", "--output_dir", str(tmp_path / "table")]) == 0
    output = capsys.readouterr().out
    markdown = (tmp_path / "table" / "results.md").read_text()
    assert markdown in output
    ours, theirs = markdown.split("Published results")
    # Six segments per track are another protocol than a random crop: two rows of our table.
    assert "| CNN (study) | MFCC 13x250 (1x2 pooled), 5 s x 6 per track | small | 6,400 | 51.0 ± 1.4 | 2 |" in ours
    assert "| CNN (study) | MFCC 13x250 (1x2 pooled), 5 s | small | 6,400 | 45.0 | 1 |" in ours
    assert "| AST (study-scratch) | log-mel 32x125 (4x4 pooled), 5 s | small | 6,400 | 41.0 ± 1.0 | 3 |" in ours

    assert "| Published (source) | System | Features | Dataset | Protocol | Published accuracy | hf-fma config " \
           "| hf-fma: Accuracy (test, track level) | Runs |" in theirs  # fmt: skip
    lines = theirs.splitlines()[4:]
    assert len(lines) == 8 and all(line.startswith("| published (") for line in lines)  # one per published row
    study, reference = "| published (the study's group) |", "| published (the study's reference paper) |"
    assert f"{study} AST from scratch | log-mel, downscaled 4 x 4 | fma_small | 5 s crops | 40.8 | ast_study_small | 41.0 ± 1.0 | 3 |" in lines
    assert f"{study} CNN | log-mel | fma_small | 5 s crops | 54.2 | cnn_study_small | not run | 0 |" in lines
    assert f"{study} CNN | log-mel | mini: 1,000 tracks of fma_small | 5 s crops | 21.9 | cnn_study_mini | not run | 0 |" in lines
    split_by_segment = "six 5 s segments per track, split by segment"
    assert f"{reference} CNN | MFCC | fma_small | {split_by_segment} | 51.6 | cnn_mfcc_small | 51.0 ± 1.4 | 2 |" in lines
    assert f"{reference} RNN-LSTM | MFCC | fma_small | {split_by_segment} | 57.1 | lstm_mfcc_small | not run | 0 |" in lines
    assert f"{reference} ViT | not stated | GTZAN: 1,000 clips | not stated | 78.0 | ast_gtzan | 70.0 | 1 |" in lines
    assert "| AST (study-scratch) | log-mel 32x125 (4x4 pooled), 5 s | my_gtzan/ | 6,400 | 95.0 | 1 |" in ours

    assert results.table_main([str(study_runs)]) == 0
    assert "published" not in capsys.readouterr().out.lower()  # only when asked for


def test_published_numbers_are_accuracies_and_are_not_set_beside_another_metric(study_runs, capsys):
    assert results.table_main([str(study_runs), "--published", "--metric", "test_track_accuracy"]) == 0
    capsys.readouterr()
    assert cli.main(["table", str(study_runs), "--published", "--metric", "train_samples"]) == 2
    assert "needs an accuracy --metric, not 'train_samples'" in capsys.readouterr().err
