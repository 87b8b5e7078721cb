"""Publish finished runs, and the dataset loading script, on the Hugging Face Hub.

    hf-fma push runs/ast-demo me/ast-fma-small                 # model repository (created if needed)
    hf-fma push runs/cnn-small me/cnn-fma-small --private --dataset_id me/hf_fma
    hf-fma push runs/ast-demo me/ast-fma-small --dry_run out/  # write the folder it would upload, no upload
    hf-fma push --dataset me/hf_fma                             # the loading script and its dataset card

A model repository gets what a user of `pipeline("audio-classification", model=REPO_ID)` needs and what
a reader of the results wants: the weights (safetensors), `config.json`, the feature extractor's
`preprocessor_config.json`, the code named by their `auto_map` (the CNN's configuration and modeling
files, the pooling feature extractor) so they load with `trust_remote_code=True`, the model card
(README.md, hf_fma.cards), learning curves and the test confusion matrix (PNG, when matplotlib is
installed), `all_results.json`, `evaluation_*.json`, `trainer_state.json` and `run_config.yaml` (local paths
removed). Checkpoints, optimizer states and the pickled `training_args.bin` stay local.

The token is `--token`, else `HF_TOKEN`, else the one `hf auth login` saved; without one the command
stops before doing any work. Uploads go through `huggingface_hub.HfApi` (create_repo, upload_folder).
Recipes call `push_run(output_dir, repo_id, token=...)` after training for `--push_to_hub`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import CommitInfo, HfApi, get_token

from hf_fma.argparsing import ArgumentParser
from hf_fma.cards import DATASET_REPO_ID, DEFAULT_LICENSE, dataset_card, model_card, require_test_evaluation
from hf_fma.plots import (
    LEARNING_CURVES_NAME,
    TRAINER_STATE_NAME,
    confusion_matrix_name,
    load_trainer_state,
    plot_confusion_matrix,
    plot_learning_curves,
    read_json,
)
from hf_fma.reporting import ALL_RESULTS_NAME, RUN_CONFIG_NAME, Run

REQUIRED_MODEL_FILES = ("config.json", "preprocessor_config.json")
# Copied when present: the numbers behind the card and what repeats the run.
RESULT_FILES = (ALL_RESULTS_NAME, TRAINER_STATE_NAME)
RESULT_PATTERNS = ("evaluation_*.json", "evaluation_*.md")
# run_config.yaml keys that hold paths of the training machine: meaningless elsewhere, and private.
LOCAL_PATH_KEYS = ("data_dir", "output_dir", "dataset_script", "logging_dir", "resume_from_checkpoint")
# The loading script and the module it imports (`from .metadata import ...`), as the dataset repo holds them.
DATASET_SCRIPT = Path(__file__).resolve().parent / "hf_fma.py"
DATASET_SCRIPT_MODULES = (Path(__file__).resolve().parent / "metadata.py",)


class MissingTokenError(RuntimeError):
    """No Hugging Face token: nothing can be pushed."""


def require_token(token: str | None = None) -> str:
    """The token to push with: `token`, else `HF_TOKEN`, else the one saved by `hf auth login`.

    Recipes call it at start with `--push_to_hub`, so a missing token stops them before training.
    """
    token = token or get_token()
    if not token:
        raise MissingTokenError(
            "no Hugging Face token: pushing needs a token with write access. Run `hf auth login`, set HF_TOKEN, "
            "or pass --token (create one at https://huggingface.co/settings/tokens)"
        )
    return token


# ----------------------------------------------------------------------------------------------------
# The model repository's folder
# ----------------------------------------------------------------------------------------------------


def _weight_files(run_dir: Path) -> list[Path]:
    single = run_dir / "model.safetensors"
    if single.is_file():
        return [single]
    index = run_dir / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(read_json(index)["weight_map"].values()))
        missing = [shard for shard in shards if not (run_dir / shard).is_file()]
        if missing:
            raise FileNotFoundError(f"{index} names shards missing from {run_dir}: {', '.join(missing)}")
        return [index, *(run_dir / shard for shard in shards)]
    other = sorted(path.name for path in run_dir.glob("*.bin")) + sorted(path.name for path in run_dir.glob("*.pt"))
    raise FileNotFoundError(
        f"{run_dir} has no model.safetensors: only safetensors weights are published"
        + (f" (it holds {', '.join(other)}; re-save with model.save_pretrained(folder))" if other else "")
    )


def _remote_code_files(run_dir: Path, config_files: list[Path]) -> list[Path]:
    """The .py files named by the `auto_map` of config.json and preprocessor_config.json (save_pretrained
    copies them beside the weights; for the CNN the configuration and the modeling file)."""
    modules = set()
    for config_file in config_files:
        auto_map = read_json(config_file).get("auto_map", {})
        for reference in auto_map.values():
            for item in reference if isinstance(reference, list) else [reference]:
                if item:
                    modules.add(item.split("--")[-1].rsplit(".", 1)[0])  # "repo--module.Class" or "module.Class"
    files = []
    for module in sorted(modules):
        path = run_dir / f"{module}.py"
        if not path.is_file():
            raise FileNotFoundError(
                f"{run_dir}: auto_map names {module}.py, which is not in the folder; without it the model does not "
                "load with trust_remote_code=True (save the model with save_pretrained after importing hf_fma.models)"
            )
        files.append(path)
    return files


def _public_run_config(run_config: dict[str, Any]) -> str:
    config = {key: value for key, value in run_config.items() if key not in LOCAL_PATH_KEYS}
    return (
        "# Resolved arguments of this run, without the training machine's paths. Repeat it with:\n"
        "#   python recipes/train_{family}.py --config run_config.yaml --data_dir DIR --output_dir DIR\n".format(
            family=config.get("model_family", "ast")
        )
        + yaml.safe_dump(config, sort_keys=False)
    )


def _draw_figures(run: Run, evaluation: dict[str, Any], out_dir: Path, title: str) -> dict[str, str]:
    """Learning curves and the test confusion matrix into out_dir; none when matplotlib is missing."""
    figures = {}
    try:
        if (run.path / TRAINER_STATE_NAME).is_file():
            plot_learning_curves(load_trainer_state(run.path), out_dir / LEARNING_CURVES_NAME, title=title)
            figures["learning_curves"] = LEARNING_CURVES_NAME
        name = confusion_matrix_name("test")
        plot_confusion_matrix(
            evaluation["track"]["confusion_matrix"], evaluation["labels"], out_dir / name, title="test split, track level"
        )
        figures["confusion_matrix"] = name
    except ImportError as error:  # matplotlib is the optional `plots` extra
        print(f"hf-fma push: the repository gets no plots: {error}", file=sys.stderr)
    return figures


def _make_empty_folder(folder: Path) -> None:
    """Create folder; it must not hold anything, or the repository would get stray files."""
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty: the repository folder is written into an empty folder")


def prepare_model_repo(
    run_dir: str | Path,
    out_dir: str | Path,
    repo_id: str | None = None,
    dataset_id: str = DATASET_REPO_ID,
    license: str = DEFAULT_LICENSE,
) -> Path:
    """Write into out_dir exactly the files a model repository of this run gets (see the module docstring)
    and return out_dir. Fails, naming the file, when something a user needs is missing."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    run = Run.load(run_dir)  # checks the run is finished (config, extractor, results, run_config)
    evaluation = require_test_evaluation(run)  # before any file is written
    config_files = [run_dir / name for name in REQUIRED_MODEL_FILES]
    to_copy = [*config_files, *_weight_files(run_dir), *_remote_code_files(run_dir, config_files)]
    to_copy += [run_dir / name for name in RESULT_FILES if (run_dir / name).is_file()]
    to_copy += sorted(path for pattern in RESULT_PATTERNS for path in run_dir.glob(pattern))

    _make_empty_folder(out_dir)
    for path in to_copy:
        shutil.copy2(path, out_dir / path.name)
    (out_dir / RUN_CONFIG_NAME).write_text(_public_run_config(run.run_config), encoding="utf-8")
    figures = _draw_figures(run, evaluation, out_dir, title=repo_id or run.path.name)
    model_card(run_dir, repo_id=repo_id, dataset_id=dataset_id, license=license, figures=figures).save(out_dir / "README.md")
    return out_dir


def push_run(
    run_dir: str | Path,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    dataset_id: str = DATASET_REPO_ID,
    license: str = DEFAULT_LICENSE,
    commit_message: str | None = None,
) -> CommitInfo:
    """Publish a finished run as the model repository `repo_id` (created if needed) in one commit.

    The token is checked first: without one nothing is prepared or sent (MissingTokenError).
    """
    token = require_token(token)
    with tempfile.TemporaryDirectory(prefix="hf-fma-push-") as staging:
        folder = prepare_model_repo(run_dir, Path(staging) / "repo", repo_id=repo_id, dataset_id=dataset_id, license=license)
        api = HfApi(token=token)
        api.create_repo(repo_id, repo_type="model", private=private or None, exist_ok=True)  # None: the account's default
        return api.upload_folder(
            repo_id=repo_id,
            repo_type="model",
            folder_path=folder,
            commit_message=commit_message or f"Upload {Path(run_dir).name} with hf-fma",
        )


# ----------------------------------------------------------------------------------------------------
# The dataset repository: the loading script and its card
# ----------------------------------------------------------------------------------------------------


def prepare_dataset_repo(repo_id: str, out_dir: str | Path) -> Path:
    """Write the dataset repository's files into out_dir: the loading script named after the repository
    (`load_dataset("owner/NAME")` runs NAME.py), the modules it imports, and the dataset card."""

    name = repo_id.split("/")[-1]
    if not name.isidentifier():
        raise ValueError(
            f"dataset repository name {name!r} must be a Python identifier (letters, digits, underscores), "
            f"because the loading script is imported as the module {name}.py"
        )
    out_dir = Path(out_dir)
    _make_empty_folder(out_dir)
    shutil.copy2(DATASET_SCRIPT, out_dir / f"{name}.py")
    for module in DATASET_SCRIPT_MODULES:
        shutil.copy2(module, out_dir / module.name)
    dataset_card(repo_id).save(out_dir / "README.md")
    return out_dir


def push_dataset(
    repo_id: str, token: str | None = None, private: bool = False, commit_message: str | None = None
) -> CommitInfo:
    """Publish the hf_fma loading script and its card as the dataset repository `repo_id`."""
    token = require_token(token)
    with tempfile.TemporaryDirectory(prefix="hf-fma-push-") as staging:
        folder = prepare_dataset_repo(repo_id, Path(staging) / "repo")
        api = HfApi(token=token)
        api.create_repo(repo_id, repo_type="dataset", private=private or None, exist_ok=True)
        return api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=folder,
            commit_message=commit_message or "Upload the hf_fma loading script with hf-fma",
        )


# ----------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------


def _build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="hf-fma push",
        usage="hf-fma push RUN_DIR REPO_ID [options]\n       hf-fma push --dataset REPO_ID [options]",
        description="Publish a finished run (weights, config, feature extractor, card, plots, code) as a model "
        "repository, or with --dataset the loading script and its card as a dataset repository.",
    )
    parser.add_argument("run_dir", nargs="?", help="run folder written by recipes/train_ast.py or train_cnn.py")
    parser.add_argument("repo_id", help="owner/name of the repository (created if it does not exist)")
    parser.add_argument("--dataset", action="store_true", help="publish the hf_fma loading script, not a run")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--token", help="Hugging Face token (default: HF_TOKEN or the one `hf auth login` saved)")
    parser.add_argument(
        "--dataset_id", default=DATASET_REPO_ID, help=f"dataset repository the model card links to (default: {DATASET_REPO_ID})"
    )
    parser.add_argument("--license", default=DEFAULT_LICENSE, help=f"licence of the model (default: {DEFAULT_LICENSE})")
    parser.add_argument("--commit_message")
    parser.add_argument("--dry_run", metavar="DIR", help="write the repository's files into DIR and upload nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`hf-fma push RUN_DIR REPO_ID [--private] [--dry_run DIR]` or `hf-fma push --dataset REPO_ID`."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.dataset == (args.run_dir is not None):
        parser.error("give RUN_DIR and REPO_ID to push a run, or --dataset and REPO_ID to push the loading script")
    try:
        if args.dry_run:
            folder = (
                prepare_dataset_repo(args.repo_id, args.dry_run)
                if args.dataset
                else prepare_model_repo(args.run_dir, args.dry_run, args.repo_id, args.dataset_id, args.license)
            )
            print(f"wrote {len(list(folder.iterdir()))} files to {folder}; nothing was uploaded")
            return 0
        if args.dataset:
            commit = push_dataset(args.repo_id, token=args.token, private=args.private, commit_message=args.commit_message)
        else:
            commit = push_run(
                args.run_dir, args.repo_id, token=args.token, private=args.private, dataset_id=args.dataset_id,
                license=args.license, commit_message=args.commit_message,
            )
    except (MissingTokenError, FileNotFoundError, FileExistsError, ValueError) as error:
        print(f"hf-fma push: {error}", file=sys.stderr)
        return 2
    print(f"pushed to {commit.repo_url}: {commit.commit_url}")
    return 0


__all__ = [
    "MissingTokenError",
    "main",
    "prepare_dataset_repo",
    "prepare_model_repo",
    "push_dataset",
    "push_run",
    "require_token",
]


if __name__ == "__main__":
    sys.exit(main())
