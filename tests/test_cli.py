"""The `hf-fma` command's conventions: both spellings of every option, --version, env, configs, and a
light `import hf_fma`."""

import importlib.metadata
import subprocess
import sys

import pytest
import soundfile
import torch
import yaml

from hf_fma import cli, hub, predict, reporting
from hf_fma.configs import CONFIGS_DIR


@pytest.mark.parametrize(
    "build_parser", [hub._build_parser, reporting._build_evaluate_parser, predict.build_parser], ids=["push", "evaluate", "predict"]
)
def test_every_option_answers_to_both_spellings(build_parser):
    options = build_parser()._option_string_actions
    underscored = [name for name in options if name.startswith("--") and "_" in name]
    assert underscored  # the parsers have such options: --dry_run, --data_dir, --top_k, ...
    for name in underscored:
        assert options[name.replace("_", "-")] is options[name], name


def test_push_takes_dry_run_and_evaluate_takes_data_dir_dashed():
    # the two spellings the issue found "unrecognized"
    assert hub._build_parser().parse_args(["run", "me/x", "--dry-run", "out"]).dry_run == "out"
    assert reporting._build_evaluate_parser().parse_args(["run", "--data-dir", "d"]).data_dir == "d"


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
