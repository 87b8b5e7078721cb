"""The results table of runs (mean and std over seeds), `hf-fma evaluate`, and the sample-size study end
to end on the demo FMA."""

import json
import runpy
import shutil
import statistics
import sys
from pathlib import Path

import pytest
import yaml

from hf_fma import evaluate_run, plots, results
from hf_fma.runs import Run
from hf_fma.evaluation_report import evaluation_markdown

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_TYPES = {"AST": "audio-spectrogram-transformer", "CNN": "fma_cnn"}


def write_run(folder, family, seed, tracks, accuracy, dataset="small", preset="study-scratch", downscale=4):
    """A finished run's files as hf_fma.training writes them (only the fields the table reads)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": MODEL_TYPES[family]}))
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"num_mel_bins": 128, "max_length": 500, "frequency_downscale": downscale, "time_downscale": downscale,
         "sampling_rate": 16000, "mean": -4.27, "std": 4.57}
    ))
    (folder / "all_results.json").write_text(json.dumps(
        {"epoch": 10.0, "test_track_accuracy": accuracy, "test_clip_accuracy": accuracy - 0.05, "train_runtime": 60.0}
    ))
    (folder / "run_config.yaml").write_text(yaml.safe_dump(
        {"model_family": family.lower(), "model_name_or_path": preset, "dataset_config_name": dataset,
         "crop_seconds": 5.0, "max_train_samples": tracks, "seed": seed}
    ))
    return folder


@pytest.fixture
def study_runs(tmp_path):
    """AST and CNN on small, 1,000 and 6,400 training tracks, three seeds each."""
    accuracies = {("AST", 1000): [0.25, 0.27, 0.26], ("AST", 6400): [0.40, 0.42, 0.41],
                  ("CNN", 1000): [0.21, 0.23, 0.22], ("CNN", 6400): [0.54, 0.53, 0.55]}
    root = tmp_path / "runs"
    for (family, tracks), values in accuracies.items():
        preset = "study-scratch" if family == "AST" else "study"
        for seed, accuracy in enumerate(values):
            write_run(root / f"{family}-{tracks}-{seed}", family, seed, tracks, accuracy, preset=preset)
    return root, accuracies


def test_table_puts_ast_and_cnn_side_by_side_with_mean_and_std(study_runs, tmp_path, capsys):
    root, accuracies = study_runs
    assert results.table_main([str(root), "--output_dir", str(tmp_path / "table")]) == 0

    table = json.loads((tmp_path / "table" / "results.json").read_text())
    assert table["metric"] == "test_track_accuracy"
    order = [(row["model"], row["training_tracks"]) for row in table["rows"]]
    assert order == [("AST (study-scratch)", 1000), ("CNN (study)", 1000), ("AST (study-scratch)", 6400), ("CNN (study)", 6400)]
    for row in table["rows"]:
        values = accuracies[row["model"][:3], row["training_tracks"]]
        assert row["mean"] == pytest.approx(statistics.fmean(values))
        assert row["std"] == pytest.approx(statistics.stdev(values))  # sample std over the seeds
        assert sorted(row["seeds"]) == [0, 1, 2]
        assert row["features"] == "log-mel 32x125 (4x4 pooled), 5 s" and row["dataset"] == "small"

    markdown = (tmp_path / "table" / "results.md").read_text()
    assert markdown in capsys.readouterr().out  # printed, and written
    assert "| Model | Features | Dataset | Training tracks | Accuracy (test, track level) | Runs |" in markdown
    assert "| AST (study-scratch) | log-mel 32x125 (4x4 pooled), 5 s | small | 1,000 | 26.0 ± 1.0 | 3 |" in markdown
    assert "| CNN (study) | log-mel 32x125 (4x4 pooled), 5 s | small | 6,400 | 54.0 ± 1.0 | 3 |" in markdown

    # The table's JSON is what `hf-fma plot sizes` draws (figure 6).
    assert plots.main(["sizes", str(tmp_path / "table" / "results.json")]) == 0
    assert (tmp_path / "table" / plots.ACCURACY_VS_TRACKS_NAME).read_bytes()[:4] == b"\x89PNG"


def test_table_metric_and_single_runs(study_runs, capsys):
    root, _ = study_runs
    assert results.table_main([str(root / "AST-1000-0"), "--metric", "test_clip_accuracy"]) == 0
    output = capsys.readouterr().out
    assert "Accuracy (test, clip level)" in output
    assert "| 1,000 | 20.0 | 1 |" in output  # one run: no ±


def test_table_refuses_a_run_counted_twice(study_runs, tmp_path, capsys):
    root, _ = study_runs
    write_run(tmp_path / "copy", "AST", 0, 1000, 0.3)
    assert results.table_main([str(root), str(tmp_path / "copy")]) == 2
    assert "would count twice" in capsys.readouterr().err


def test_table_errors_name_what_is_missing(study_runs, tmp_path, capsys):
    root, _ = study_runs
    assert results.table_main([str(root), "--metric", "test_accuracy"]) == 2
    error = capsys.readouterr().err
    assert "no metric 'test_accuracy'" in error and "test_track_accuracy" in error
    (tmp_path / "empty").mkdir()
    assert results.table_main([str(tmp_path / "empty")]) == 2
    assert "holds no run" in capsys.readouterr().err
    (root / "AST-1000-0" / "run_config.yaml").unlink()
    with pytest.raises(FileNotFoundError, match="lacks run_config.yaml"):
        Run.load(root / "AST-1000-0")


# ----------------------------------------------------------------------------------------------------
# The sample-size study and `hf-fma evaluate` on real runs of the demo FMA
# ----------------------------------------------------------------------------------------------------

STUDY_SIZES, STUDY_SEEDS = (8, 16), (0, 1)


def run_study(study_dir, demo_dir):
    study = runpy.run_path(str(REPO_ROOT / "recipes" / "sample_size_study.py"))
    return study["main"]([
        "--config", str(REPO_ROOT / "hf_fma" / "configs" / "ast_demo.yaml"), "--data_dir", str(demo_dir),
        "--sizes", *map(str, STUDY_SIZES), "--seeds", *map(str, STUDY_SEEDS), "--study_dir", str(study_dir),
        # Tiny on purpose: the machinery is under test, not the accuracy.
        "--num_train_epochs", "1", "--crop_seconds", "1", "--eval_crops", "2", "--max_eval_samples", "8",
        "--dataloader_num_workers", "0", "--dataloader_persistent_workers", "false", "--disable_tqdm", "true",
    ])


@pytest.fixture(scope="module")
def sample_size_study(demo_dir, tmp_path_factory):
    study_dir = tmp_path_factory.mktemp("study")
    assert run_study(study_dir, demo_dir) == 0
    return study_dir


def test_sample_size_study_writes_table_and_plot_per_size(sample_size_study):
    table = json.loads((sample_size_study / "results.json").read_text())
    assert [row["training_tracks"] for row in table["rows"]] == list(STUDY_SIZES)
    for row in table["rows"]:
        runs = [sample_size_study / f"{row['training_tracks']}-seed{seed}" for seed in STUDY_SEEDS]
        values = [json.loads((run / "all_results.json").read_text())["test_track_accuracy"] for run in runs]
        assert row["model"] == "AST (tiny)"
        assert sorted(row["seeds"]) == list(STUDY_SEEDS)
        assert row["mean"] == pytest.approx(statistics.fmean(values))
        assert row["std"] == pytest.approx(statistics.stdev(values))
    assert "| AST (tiny) | log-mel 64x50 (2x2 pooled), 1 s | small | 8 |" in (sample_size_study / "results.md").read_text()
    assert (sample_size_study / plots.ACCURACY_VS_TRACKS_NAME).read_bytes()[:4] == b"\x89PNG"


def test_sample_size_study_resumes_without_retraining(sample_size_study, demo_dir, capsys):
    weights = {path: path.stat().st_mtime_ns for path in sample_size_study.glob("*/model.safetensors")}
    assert len(weights) == len(STUDY_SIZES) * len(STUDY_SEEDS)
    assert run_study(sample_size_study, demo_dir) == 0
    assert capsys.readouterr().out.count("not training it again") == len(weights)
    assert {path: path.stat().st_mtime_ns for path in weights} == weights


def test_sample_size_study_resumes_or_retrains_a_run_without_final_test_metrics(sample_size_study, demo_dir, tmp_path, capsys):
    study_dir = tmp_path / "study"
    shutil.copytree(sample_size_study, study_dir)
    # 8-seed0 killed during its final evaluation: training done, checkpoints kept, no test metrics yet.
    killed = study_dir / "8-seed0"
    results = json.loads((killed / "all_results.json").read_text())
    (killed / "all_results.json").write_text(json.dumps({k: v for k, v in results.items() if not k.startswith("test_")}))
    (killed / "evaluation_test.json").unlink()
    # 8-seed1 killed before its first checkpoint: a model may be there, but no checkpoint and no results.
    early = study_dir / "8-seed1"
    for checkpoint in early.glob("checkpoint-*"):
        shutil.rmtree(checkpoint)
    (early / "all_results.json").unlink()
    capsys.readouterr()

    assert run_study(study_dir, demo_dir) == 0
    out = capsys.readouterr().out
    assert f"{killed} has no final test metrics: resuming it from its last checkpoint" in out
    assert f"{early} has no final test metrics and no checkpoint: retraining it" in out
    assert out.count("not training it again") == 2  # the two sizes-16 runs
    for run_dir in (killed, early):
        assert "test_track_accuracy" in json.loads((run_dir / "all_results.json").read_text())
    table = json.loads((study_dir / "results.json").read_text())
    assert [len(row["values"]) for row in table["rows"]] == [2, 2]


def test_evaluate_command_reproduces_the_runs_test_metrics(sample_size_study, demo_dir, tmp_path, capsys):
    run_dir = sample_size_study / "16-seed0"
    recorded = json.loads((run_dir / "evaluation_test.json").read_text())
    exit_code = evaluate_run.evaluate_main([
        # the dashed spellings are accepted too, as every hf-fma option's
        str(run_dir), "--dataset-config-name", "small", "--split", "test", "--data-dir", str(demo_dir), "--n_crops", "2",
        "--max_tracks", "8", "--seed", "0", "--device", "cpu", "--output_dir", str(tmp_path),
    ])
    assert exit_code == 0
    evaluation = json.loads((tmp_path / "evaluation_small_test.json").read_text())
    assert (evaluation["model"], evaluation["dataset_config"], evaluation["split"]) == (str(run_dir), "small", "test")
    for level in ("clip", "track"):
        assert evaluation[level]["accuracy"] == pytest.approx(recorded[level]["accuracy"])
        assert evaluation[level]["confusion_matrix"] == recorded[level]["confusion_matrix"]
    assert sum(map(sum, evaluation["track"]["confusion_matrix"])) == evaluation["num_tracks"] == 8

    markdown = (tmp_path / "evaluation_small_test.md").read_text()
    assert f"| track | {100 * evaluation['track']['accuracy']:.1f}% | {evaluation['track']['macro_f1']:.3f} |" in markdown
    assert "| Electronic |" in markdown and "Confusion matrix (track level" in markdown
    assert (tmp_path / "confusion_matrix_small_test.png").read_bytes()[:4] == b"\x89PNG"
    assert markdown in capsys.readouterr().out


def test_evaluation_report_puts_true_genres_on_rows():
    """9 tracks: 4 Folk (3 right, 1 taken for Pop), 2 Pop (both right), 3 Rock (1 right, 2 taken for Folk).
    The per-genre Tracks column counts true genres (4, 2, 3), not predictions (5, 3, 1)."""
    genres = ["Folk", "Pop", "Rock"]
    scores = {"accuracy": 6 / 9, "macro_f1": 0.6, "confusion_matrix": [[3, 1, 0], [0, 2, 0], [2, 0, 1]],
              "per_genre_precision": {"Folk": 0.6, "Pop": 2 / 3, "Rock": 1.0},
              "per_genre_recall": {"Folk": 0.75, "Pop": 1.0, "Rock": 1 / 3}}
    evaluation = {"labels": genres, "num_tracks": 9, "n_crops": 2, "crop_seconds": 5.0, "clip": scores, "track": scores}
    markdown = evaluation_markdown(evaluation)
    assert "| Folk | 0.600 | 0.750 | 4 |" in markdown and "| Rock | 1.000 | 0.333 | 3 |" in markdown
    assert "| Folk | 3 | 1 | 0 |" in markdown and "| Rock | 2 | 0 | 1 |" in markdown


def test_a_run_without_crop_seconds_reports_its_extractor_s_crop(tmp_path):
    """300 frames of 10 ms: 3 s crops, read from preprocessor_config.json when run_config.yaml lacks them."""
    folder = write_run(tmp_path / "run", "AST", seed=0, tracks=100, accuracy=0.5, downscale=1)
    config = json.loads((folder / "preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps({**config, "max_length": 300}))
    run_config = yaml.safe_load((folder / "run_config.yaml").read_text())
    del run_config["crop_seconds"]
    (folder / "run_config.yaml").write_text(yaml.safe_dump(run_config))
    assert Run.load(folder).features == "log-mel 128x300, 3 s"


def test_evaluate_errors_are_reported_before_loading(tmp_path, capsys):
    assert evaluate_run.evaluate_main([str(tmp_path), "--data_dir", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert evaluate_run.evaluate_main([str(tmp_path), "--dataset_config_name", "tiny"]) == 2
    assert "--dataset_config_name tiny: FMA has no such config; valid: small, " in capsys.readouterr().err


def test_evaluate_without_matplotlib_writes_the_reports_and_names_the_extra(tiny_runs, demo_dir, monkeypatch, tmp_path, capsys):
    from hf_fma.evaluate_run import evaluate_main

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import matplotlib.figure now fails
    argv = [str(tiny_runs["cnn"]), "--data_dir", str(demo_dir), "--n_crops", "2", "--max_tracks", "8", "--device", "cpu",
            "--output_dir", str(tmp_path)]  # fmt: skip
    assert evaluate_main(argv) == 0
    assert json.loads((tmp_path / "evaluation_small_test.json").read_text())["num_tracks"] == 8
    assert (tmp_path / "evaluation_small_test.md").is_file()
    assert not (tmp_path / "confusion_matrix_small_test.png").exists()
    err = capsys.readouterr().err
    assert "evaluating: 100%" in err and " 16/16 " in err  # a bar on stderr: 8 tracks x 2 crops
    notes = [line for line in err.splitlines() if "matplotlib" in line]
    assert notes == ['hf-fma evaluate: no confusion-matrix figure: Plots need matplotlib, an optional extra of hf-fma: '
                     'pip install "hf-fma[plots]"']
