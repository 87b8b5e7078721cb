"""`hf-fma push`: publish finished runs, and FMA exported as Parquet, on the Hugging Face Hub.

    hf-fma push runs/ast-demo me/ast-fma-small                 # model repository (created if needed)
    hf-fma push runs/cnn-small me/cnn-fma-small --private --dataset_id me/fma
    hf-fma push runs/ast-demo me/ast-fma-small --dry_run out/  # write the folder it would upload, no upload
    hf-fma push --dataset fma_parquet me/fma                    # an `hf-fma export` folder

A model repository gets what a user of `pipeline("audio-classification", model=REPO_ID)` needs and what
a reader of the results wants: the weights (safetensors), `config.json`, the feature extractor's
`preprocessor_config.json`, the code named by their `auto_map` (the CNN's configuration and modeling
files, the pooling feature extractor) so they load with `trust_remote_code=True`, the model card
(README.md, hf_fma.cards), learning curves and the test confusion matrix (PNG, when matplotlib is
installed), `all_results.json`, `evaluation_*.json`, `trainer_state.json` and `run_config.yaml` (local paths
removed). Checkpoints, optimizer states and the pickled `training_args.bin` stay local.

A dataset repository is an export folder of `hf-fma export` (hf_fma.export: Parquet shards per config
and split, MP3 bytes as the archives hold them, every track's licence) with its card, which `push`
renders again with the repository's id. It loads with `load_dataset(REPO_ID, "small")` on datasets 3.6,
4 and 5, without a script.

Whatever goes wrong with the Hub is one line naming the fix (`HubError` of hf_fma.hub_checks, exit status
2), and the checks that need no network (the repository id, also with `--dry_run`, offline mode, a token)
come before any work; a refused token (401, 403) stops the push at its first request, before any file is
sent. Uploads go through `huggingface_hub.HfApi` (create_repo, upload_folder). Training with
`--push_to_hub` calls `check_push(repo_id, token)` when it starts and `push_run(output_dir, repo_id,
token=...)` after training.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import CommitInfo, HfApi

from hf_fma.argparsing import ArgumentParser
from hf_fma.cards import (
    DEFAULT_LICENSE,
    hub_dataset_id,
    model_card,
    reproduce_commands,
    require_test_evaluation,
    write_run_card,
)
from hf_fma.export import dataset_card, export_files, read_export, write_dataset_card
from hf_fma.hub_checks import HubError, check_push, check_repo_id, hub_errors
from hf_fma.plots import load_trainer_state, plot_confusion_matrix, plot_learning_curves
from hf_fma.run_folder import (
    ALL_RESULTS_NAME,
    LEARNING_CURVES_NAME,
    RUN_CONFIG_NAME,
    TRAINER_STATE_NAME,
    confusion_matrix_name,
    read_json,
)
from hf_fma.runs import Run

REQUIRED_MODEL_FILES = ("config.json", "preprocessor_config.json")
# Copied when present: the numbers behind the card and what repeats the run.
RESULT_FILES = (ALL_RESULTS_NAME, TRAINER_STATE_NAME)
RESULT_PATTERNS = ("evaluation_*.json", "evaluation_*.md")
# run_config.yaml keys that hold paths of the training machine: meaningless elsewhere, and private.
LOCAL_PATH_KEYS = ("data_dir", "output_dir", "dataset_script", "logging_dir", "resume_from_checkpoint")


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


def _public_run_config(run_config: dict[str, Any], train_command: str) -> str:
    config = {key: value for key, value in run_config.items() if key not in LOCAL_PATH_KEYS}
    return (
        f"# Resolved arguments of this run, without the training machine's paths. Repeat it with:\n#   {train_command}\n"
        + yaml.safe_dump(config, sort_keys=False)
    )


def _draw_figures(run: Run, evaluation: dict[str, Any], out_dir: Path, title: str) -> dict[str, str]:
    """Learning curves and the test confusion matrix (single-label models) into out_dir; none when matplotlib
    is missing."""
    figures = {}
    try:
        if (run.path / TRAINER_STATE_NAME).is_file():
            plot_learning_curves(load_trainer_state(run.path), out_dir / LEARNING_CURVES_NAME, title=title)
            figures["learning_curves"] = LEARNING_CURVES_NAME
        if "confusion_matrix" in evaluation["track"]:  # a multi-label model's genres are not exclusive: none
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
    dataset_id: str | None = None,
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
    run_config = dict(run.run_config)
    if hub_dataset_id(run) is None:
        run_config.pop("dataset_name", None)  # a folder of the training machine, like data_dir
    train_command = reproduce_commands(run, repo_id or str(out_dir), published=True)["train"]  # the card's
    (out_dir / RUN_CONFIG_NAME).write_text(_public_run_config(run_config, train_command), encoding="utf-8")
    figures = _draw_figures(run, evaluation, out_dir, title=repo_id or run.path.name)
    model_card(run_dir, repo_id=repo_id, dataset_id=dataset_id, license=license, figures=figures).save(out_dir / "README.md")
    return out_dir


def push_run(
    run_dir: str | Path,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    dataset_id: str | None = None,
    license: str = DEFAULT_LICENSE,
    commit_message: str | None = None,
) -> CommitInfo:
    """Publish a finished run as the model repository `repo_id` (created if needed) in one commit.

    The repository id, offline mode and the token are checked first (HubError): on any of them nothing is
    prepared or sent. Once published, the run folder's README.md names the repository.
    """
    token = check_push(repo_id, token)
    with tempfile.TemporaryDirectory(prefix="hf-fma-push-") as staging:
        folder = prepare_model_repo(run_dir, Path(staging) / "repo", repo_id=repo_id, dataset_id=dataset_id, license=license)
        api = HfApi(token=token)
        with hub_errors(repo_id):
            api.create_repo(repo_id, repo_type="model", private=private or None, exist_ok=True)  # None: the account's default
            commit = api.upload_folder(
                repo_id=repo_id,
                repo_type="model",
                folder_path=folder,
                commit_message=commit_message or f"Upload {Path(run_dir).name} with hf-fma",
            )
    # The run folder's card becomes the published one: it names the repository, its dataset and licence.
    write_run_card(run_dir, repo_id=repo_id, dataset_id=dataset_id, license=license)
    return commit


# ----------------------------------------------------------------------------------------------------
# The dataset repository: an `hf-fma export` folder
# ----------------------------------------------------------------------------------------------------


def push_dataset(
    export_dir: str | Path,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
) -> CommitInfo:
    """Publish an `hf-fma export` folder as the dataset repository `repo_id` (created if needed): its card,
    rendered again for `repo_id`, and its Parquet shards, nothing else in the folder."""
    token = check_push(repo_id, token)
    configs = read_export(export_dir)  # fails, naming the folder, when it is no export
    write_dataset_card(export_dir, repo_id, configs)
    api = HfApi(token=token)
    with hub_errors(repo_id):
        api.create_repo(repo_id, repo_type="dataset", private=private or None, exist_ok=True)
        return api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=export_dir,
            allow_patterns=export_files(export_dir, configs),
            commit_message=commit_message or f"Upload FMA ({', '.join(config.name for config in configs)}) with hf-fma",
        )


# ----------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------


def _build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="hf-fma push",
        usage="hf-fma push RUN_DIR REPO_ID [options]\n       hf-fma push --dataset EXPORT_DIR REPO_ID [options]",
        description="Publish a finished run (weights, config, feature extractor, card, plots, code) as a model "
        "repository, or with --dataset an `hf-fma export` folder (Parquet shards and card) as a dataset repository.",
    )
    parser.add_argument("run_dir", help="run folder written by the training recipes; with --dataset, the export folder")
    parser.add_argument("repo_id", help="owner/name of the repository (created if it does not exist)")
    parser.add_argument("--dataset", action="store_true", help="publish an `hf-fma export` folder, not a run")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--token", help="Hugging Face token (default: HF_TOKEN or the one `hf auth login` saved)")
    parser.add_argument(
        "--dataset_id",
        help="Hub dataset the model card names as its training data (default: the run's --dataset_name when it "
        "was a Hub dataset, else FMA's own page)",
    )
    parser.add_argument(
        "--license",
        default=DEFAULT_LICENSE,
        help=f"licence of the model (default: {DEFAULT_LICENSE}, as many FMA tracks are non-commercial and share-alike; "
        "the card says why)",
    )
    parser.add_argument("--commit_message")
    parser.add_argument("--dry_run", metavar="DIR", help="write the repository's files (for --dataset: its card) into DIR and upload nothing")
    return parser


def _dry_run(args: argparse.Namespace) -> str:
    """Write what a push would upload into args.dry_run; the line to print."""
    if not args.dataset:
        folder = prepare_model_repo(args.run_dir, args.dry_run, args.repo_id, args.dataset_id, args.license)
        return f"wrote {len(list(folder.iterdir()))} files to {folder}; nothing was uploaded"
    # The shards are uploaded as they are: only the card, rendered for the repository, is new.
    configs = read_export(args.run_dir)
    files = export_files(args.run_dir, configs)
    _make_empty_folder(Path(args.dry_run))
    dataset_card(args.run_dir, args.repo_id, configs).save(Path(args.dry_run) / "README.md")
    size = sum(split.file_bytes for config in configs for split in config.splits.values())
    return (
        f"would upload {Path(args.dry_run) / 'README.md'} and {len(files) - 1} Parquet files ({size / 1e6:,.1f} MB) "
        f"from {args.run_dir}; nothing was uploaded"
    )


def main(argv: list[str] | None = None) -> int:
    """`hf-fma push RUN_DIR REPO_ID [--private] [--dry_run DIR]` or `hf-fma push --dataset EXPORT_DIR REPO_ID`."""
    args = _build_parser().parse_args(argv)
    try:
        check_repo_id(args.repo_id)
        if args.dry_run:
            print(_dry_run(args))
            return 0
        if args.dataset:
            commit = push_dataset(
                args.run_dir, args.repo_id, token=args.token, private=args.private, commit_message=args.commit_message
            )
        else:
            commit = push_run(
                args.run_dir, args.repo_id, token=args.token, private=args.private, dataset_id=args.dataset_id,
                license=args.license, commit_message=args.commit_message,
            )
    except (HubError, FileNotFoundError, FileExistsError, ValueError) as error:
        print(f"hf-fma push: {error}", file=sys.stderr)
        return 2
    print(f"pushed to {commit.repo_url}: {commit.commit_url}")
    return 0


__all__ = [
    "main",
    "prepare_model_repo",
    "push_dataset",
    "push_run",
]


if __name__ == "__main__":
    sys.exit(main())
