"""The `hf-fma` command's conventions: both spellings of every option, --version, env, configs, and a
light `import hf_fma`."""

import importlib.metadata
import os
import subprocess
import sys

import pytest
import soundfile
import torch
import yaml

from hf_fma import cli, evaluate_run, hub, predict
from hf_fma.configs import CONFIGS_DIR
from hf_fma.run_folder import run_folder_lock


@pytest.mark.parametrize(
    "build_parser", [hub._build_parser, evaluate_run._build_evaluate_parser, predict.build_parser], ids=["push", "evaluate", "predict"]
)
def test_every_option_answers_to_both_spellings(build_parser):
    options = build_parser()._option_string_actions
    underscored = [name for name in options if name.startswith("--") and "_" in name]
    assert underscored  # the parsers have such options: --dry_run, --data_dir, --top_k, ...
    for name in underscored:
        assert options[name.replace("_", "-")] is options[name], name


def test_push_takes_dry_run_and_evaluate_takes_data_dir_dashed():
    # the dashed spellings users type for --dry_run and --data_dir
    assert hub._build_parser().parse_args(["run", "me/x", "--dry-run", "out"]).dry_run == "out"
    assert evaluate_run._build_evaluate_parser().parse_args(["run", "--data-dir", "d"]).data_dir == "d"


def test_version_is_the_installed_distributions(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"hf-fma {importlib.metadata.version('hf-fma')}"


def test_env_reports_the_versions_a_bug_report_needs(capsys):
    import datasets
    import transformers

    assert cli.main(["env"]) == 0
    report = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert report["torch"] == torch.__version__ and report["transformers"] == transformers.__version__
    assert report["datasets"] == datasets.__version__
    assert report["libsndfile"].startswith(f"{soundfile.__libsndfile_version__}; MP3: ")
    for name in ("Python", "platform", "torch CUDA", "accelerate", "torchcodec", "ffmpeg"):
        assert report[name], name


def test_configs_prints_the_path_of_a_shipped_accelerate_config(capsys):
    assert cli.main(["configs", "accelerate/cpu"]) == 0
    path = capsys.readouterr().out.strip()
    assert path == str(CONFIGS_DIR / "accelerate" / "cpu.yaml")
    assert yaml.safe_load(open(path))["use_cpu"] is True
    assert cli.main(["configs", "gpu"]) == 2
    assert "no shipped config 'gpu'" in capsys.readouterr().err


def test_import_hf_fma_and_load_fma_need_neither_torch_nor_transformers():
    script = "import sys, hf_fma; hf_fma.load_fma; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_train_without_a_config_asks_for_one_instead_of_downloading_fma(capsys):
    assert cli.main(["train"]) == 2
    assert "usage: hf-fma train CONFIG" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# `hf-fma train`: user errors end with one line and exit status 2, before any data is read
# --------------------------------------------------------------------------------------------------


def train_error_line(capsys, *argv) -> str:
    """The one stderr line `hf-fma train ARGV` ends with, having exited with status 2."""
    assert cli.main(["train", *argv]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("hf-fma train: ")
    return line


def test_train_user_errors_end_with_one_line(tmp_path, capsys):
    (tmp_path / "typo.yaml").write_text("model_family: ast\nlearning_rat: 0.1\n")
    finished = tmp_path / "finished"
    finished.mkdir()
    (finished / "all_results.json").write_text("{}")
    data_dir = str(tmp_path)  # a folder: the checks below come before the data is read
    assert "it is not the name of a shipped config (ast_demo, " in train_error_line(capsys, "ast_dem")
    assert "unknown argument(s) learning_rat" in train_error_line(capsys, str(tmp_path / "typo.yaml"))
    line = train_error_line(capsys, "ast_demo", "--data_dir", data_dir, "--output_dir", str(finished))
    assert f"output_dir {finished} already holds a" in line
    line = train_error_line(capsys, "ast_demo", "--data_dir", data_dir, "--eval_strategy", "no")
    assert "--load_best_model_at_end requires the save and eval strategy to match" in line  # TrainingArguments'
    line = train_error_line(capsys, "ast_demo", "--data_dir", data_dir, "--do_train", "--do_eval")
    assert "--do_train, --do_eval: an hf-fma run always trains, validates and tests the best model" in line
    line = train_error_line(capsys, "ast_demo", "--data_dir", data_dir, "--report_to", "mlfow")
    assert "--report_to mlfow: transformers knows no such tracker; valid: all, none, " in line
    in_use = tmp_path / "in_use"
    with run_folder_lock(in_use):  # another run trains into it
        line = train_error_line(capsys, "ast_demo", "--data_dir", data_dir, "--output_dir", str(in_use))
    assert f"output_dir {in_use} is in use by another training run (process {os.getpid()} on " in line


# Each tracker transformers' Trainer reports to, and its pip package as transformers' own callback names it.
PIP_PACKAGES = {"azure_ml": "azureml-sdk", "comet_ml": "comet-ml", "flyte": "flytekit", "mlflow": "mlflow", "wandb": "wandb"}


def test_report_to_a_tracker_that_is_not_installed_fails_at_start_with_its_pip_line(tmp_path, capsys):
    from transformers.integrations import INTEGRATION_TO_CALLBACK, get_available_reporting_integrations

    available = set(get_available_reporting_integrations())
    missing = [name for name in INTEGRATION_TO_CALLBACK if name not in available and name not in ("flyte", "kubeflow")]
    assert "mlflow" in missing  # not installed in the test environments
    for name in missing:
        line = train_error_line(capsys, "ast_demo", "--data_dir", str(tmp_path), "--report_to", name)
        assert f"--report_to {name} needs " in line, name
        if name in PIP_PACKAGES:
            assert line.endswith(f"pip install {PIP_PACKAGES[name]}"), line


def test_a_library_error_in_training_keeps_its_traceback(tmp_path, monkeypatch):
    import numpy as np

    from hf_fma import train

    monkeypatch.setattr(train, "run_training", lambda *arguments: np.zeros(2).reshape(3))  # a bug, not bad input
    with pytest.raises(ValueError, match="cannot reshape"):
        cli.main(["train", "ast_demo", "--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "run")])


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "hf_fma.train"],
        [sys.executable, "-m", "accelerate.commands.launch", "--quiet", "--config_file",
         str(CONFIGS_DIR / "accelerate" / "cpu.yaml"), "-m", "hf_fma.train"],
    ],
    ids=["python -m hf_fma.train", "accelerate launch"],  # the recipes: test_training
)  # fmt: skip
def test_every_training_entry_point_ends_a_user_error_with_one_line(command, tmp_path):
    result = subprocess.run([*command, "ast_demo", "--output_dir", str(tmp_path / "run"), "--do_predict"],
                            capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    ours = [line for line in result.stderr.splitlines() if "--do_predict: an hf-fma run always trains" in line]
    assert len(ours) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.returncode == (1 if "accelerate.commands.launch" in command else 2)  # accelerate's: 1 for any


def test_train_help_shows_the_config_in_its_usage_line(capsys):
    with pytest.raises(SystemExit) as exit_status:
        cli.main(["train", "--help"])
    assert exit_status.value.code == 0
    assert capsys.readouterr().out.splitlines()[0] == "usage: hf-fma train CONFIG [--argument value ...]"
