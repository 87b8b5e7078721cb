"""Results of training runs: evaluation reports and the study's results table.

    hf-fma evaluate runs/ast-demo --dataset_config_name small --split test --data_dir demo_data
    hf-fma table runs/ast-small-seed* runs/cnn-small-seed* --output_dir results
    hf-fma table runs/study                      # a folder of run folders works too
    hf-fma table runs/ --published               # beside the study's published numbers (hf_fma.published)

`evaluate` scores a saved model (a run folder or a Hub name) on one split of the hf_fma dataset, at clip
level (every crop on its own) and track level (the logits of `--n_crops` evenly spaced crops averaged per
track), and writes `evaluation_{config}_{split}.json`, `.md` and `confusion_matrix_{config}_{split}.png`,
named by dataset config and split so that they never replace the run's own training-time
`evaluation_{split}.json` (cards and `hf-fma push` report the file of the run's own config, see
`Run.evaluation`). Code a Hub repository (or folder) carries in `auto_map` runs only with
`--trust_remote_code` (see `hf_fma.predict.load_classifier`).

`table` reads run folders written by the training recipes and puts AST and CNN runs side by side in the
study's layout (model, features, dataset, training tracks, accuracy), with the mean and standard deviation
over the runs that differ only in their seed: single runs on small data vary a lot.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from hf_fma.argparsing import ArgumentParser
from hf_fma.geometry import frames_to_seconds
# importing plots does not import matplotlib.
from hf_fma.plots import check_matplotlib, metric_title
from hf_fma.published import published_markdown
from hf_fma.run_folder import (
    ALL_RESULTS_NAME,
    RUN_CONFIG_NAME,
    confusion_matrix_name,
    evaluation_json_name,
    evaluation_markdown_name,
    read_json,
    write_json_atomic,
    write_text_atomic,
)

DEFAULT_TABLE_METRIC = "test_track_accuracy"
TABLE_JSON_NAME = "results.json"
TABLE_MARKDOWN_NAME = "results.md"
MODEL_FAMILIES = {"audio-spectrogram-transformer": "AST", "fma_cnn": "CNN", "fma_lstm": "LSTM"}


# ----------------------------------------------------------------------------------------------------
# A run folder
# ----------------------------------------------------------------------------------------------------


@dataclass
class Run:
    """What a training run left in its folder (see hf_fma.training): the saved model's `config.json` and
    `preprocessor_config.json`, the resolved arguments `run_config.yaml` and the metrics `all_results.json`."""

    path: Path
    model_config: dict[str, Any]
    feature_config: dict[str, Any]
    run_config: dict[str, Any]
    results: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> Run:
        path = Path(path)
        files = {name: path / name for name in ("config.json", "preprocessor_config.json", ALL_RESULTS_NAME, RUN_CONFIG_NAME)}
        missing = [name for name, file in files.items() if not file.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{path} is not a finished training run: it lacks {', '.join(missing)} "
                "(written by recipes/train_ast.py and recipes/train_cnn.py at the end of training)"
            )
        run_config = yaml.safe_load(files[RUN_CONFIG_NAME].read_text(encoding="utf-8")) or {}
        if not isinstance(run_config, dict):
            raise ValueError(f"{files[RUN_CONFIG_NAME]} must hold a mapping of argument names to values")
        return cls(
            path=path,
            model_config=read_json(files["config.json"]),
            feature_config=read_json(files["preprocessor_config.json"]),
            run_config=run_config,
            results=read_json(files[ALL_RESULTS_NAME]),
        )

    @property
    def family(self) -> str:
        """"AST" or "CNN"."""
        model_type = self.model_config.get("model_type")
        if model_type not in MODEL_FAMILIES:
            raise ValueError(
                f"{self.path / 'config.json'}: model_type {model_type!r} is neither of {', '.join(MODEL_FAMILIES)}"
            )
        return MODEL_FAMILIES[model_type]

    @property
    def model_name(self) -> str:
        """The recipe's preset or checkpoint, e.g. "study-scratch", "audioset" or "MIT/ast-..."."""
        return str(self.run_config.get("model_name_or_path", "?"))

    @property
    def model(self) -> str:
        """The table's model column: family and preset, e.g. "AST (study-scratch)"."""
        return f"{self.family} ({self.model_name})"

    @property
    def dataset(self) -> str:
        """The hf_fma config the run trained on: small, mini, medium, ..."""
        return str(self.run_config.get("dataset_config_name", "?"))

    @property
    def input_shape(self) -> tuple[int, int]:
        """(frames, values per frame) of the model's input, after any pooling or MFCC of the feature extractor:
        mel bins, or MFCC with their deltas."""
        frames = int(self.feature_config["max_length"]) // int(self.feature_config.get("time_downscale", 1))
        mel_bins = int(self.feature_config["num_mel_bins"]) // int(self.feature_config.get("frequency_downscale", 1))
        num_mfcc = int(self.feature_config.get("num_mfcc", 0))
        if num_mfcc:
            return frames, num_mfcc * (1 + int(self.feature_config.get("mfcc_delta_order", 0)))
        return frames, mel_bins

    @property
    def crop_seconds(self) -> float:
        return float(self.run_config.get("crop_seconds", frames_to_seconds(int(self.feature_config["max_length"]))))

    @property
    def features(self) -> str:
        """The table's features column, e.g. "log-mel 32x125 (4x4 pooled), 5 s"."""
        frames, mel_bins = self.input_shape
        frequency = int(self.feature_config.get("frequency_downscale", 1))
        time = int(self.feature_config.get("time_downscale", 1))
        pooled = f" ({frequency}x{time} pooled)" if (frequency, time) != (1, 1) else ""
        kind = "MFCC" if self.feature_config.get("num_mfcc") else "log-mel"
        # Each training track's evenly spaced segments as examples: another protocol, so another row.
        segments = int(self.run_config.get("train_segments") or 0)
        per_track = f" x {segments} per track" if segments else ""
        return f"{kind} {mel_bins}x{frames}{pooled}, {self.crop_seconds:g} s{per_track}"

    @property
    def training_tracks(self) -> int | None:
        """Tracks the model trained on: `train_samples` when the run recorded it, else `max_train_samples`."""
        tracks = self.results.get("train_samples", self.run_config.get("max_train_samples"))
        return None if tracks is None else int(tracks)

    @property
    def synthesized_demo(self) -> bool:
        """Whether the run trained on `hf-fma make-demo`'s synthesized FMA, as training recorded from the
        data itself (the demo archives' zip comment, or an export of them)."""
        return bool(self.results.get("synthesized_demo_data", False))

    @property
    def seed(self) -> int | None:
        return self.run_config.get("seed")

    def metric(self, name: str) -> float:
        if name not in self.results:
            numeric = sorted(key for key, value in self.results.items() if isinstance(value, (int, float)))
            raise KeyError(f"{self.path / ALL_RESULTS_NAME} has no metric {name!r}; it has: {', '.join(numeric)}")
        return float(self.results[name])

    def evaluation(self, split: str) -> dict[str, Any] | None:
        """The clip- and track-level evaluation of a split of the run's dataset config: the run's own
        `evaluation_{split}.json` when it was made on that config, else the one `hf-fma evaluate
        --dataset_config_name` wrote (`evaluation_{config}_{split}.json`); None when neither exists. Each
        file's recorded `dataset_config` decides (files without one are the run's own), so numbers of
        another config are never reported as this one's."""
        config = self.dataset
        for path in (self.path / evaluation_json_name(split), self.path / evaluation_json_name(split, config)):
            if path.is_file():
                evaluation = read_json(path)
                if evaluation.get("dataset_config", self.dataset) == config:
                    return evaluation
        return None


def find_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Runs from run folders, or from folders whose sub-folders are runs (a study's output folder)."""
    runs = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise FileNotFoundError(f"{path} is not a folder")
        if (path / ALL_RESULTS_NAME).is_file():
            runs.append(Run.load(path))
            continue
        children = sorted(child.parent for child in path.glob(f"*/{ALL_RESULTS_NAME}"))
        if not children:
            raise FileNotFoundError(f"{path} holds no run: neither it nor a sub-folder has {ALL_RESULTS_NAME}")
        runs.extend(Run.load(child) for child in children)
    return runs


# ----------------------------------------------------------------------------------------------------
# The results table
# ----------------------------------------------------------------------------------------------------


@dataclass
class TableRow:
    """One line of the study's table: runs with the same set-up, their metric's mean and std over seeds."""

    model: str
    features: str
    dataset: str
    training_tracks: int | None
    mean: float
    std: float  # sample standard deviation over the runs; 0 for a single run
    values: list[float]
    seeds: list[int | None]
    runs: list[str]

    @property
    def percent(self) -> str:
        """The metric in percent, "mean ± std" (the mean alone for one run)."""
        return f"{100 * self.mean:.1f}" + (f" ± {100 * self.std:.1f}" if len(self.values) > 1 else "")


def results_table(runs: Sequence[Run], metric: str = DEFAULT_TABLE_METRIC) -> list[TableRow]:
    """Group runs by (model, features, dataset, training tracks) and summarise `metric` over each group.

    Rows are ordered by dataset, training tracks, then model, so AST and CNN of one set-up sit together.
    """
    groups: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        groups[(run.model, run.features, run.dataset, run.training_tracks)].append(run)
    rows = []
    for (model, features, dataset, tracks), members in groups.items():
        values = [run.metric(metric) for run in members]
        seeds = [run.seed for run in members]
        repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1}, key=str)
        if repeated:
            raise ValueError(
                f"runs {', '.join(str(run.path) for run in members)} share model, features, dataset, training "
                f"tracks and seed {repeated}: a repeated run would count twice in the mean"
            )
        rows.append(
            TableRow(
                model=model,
                features=features,
                dataset=dataset,
                training_tracks=tracks,
                mean=statistics.fmean(values),
                std=statistics.stdev(values) if len(values) > 1 else 0.0,
                values=values,
                seeds=seeds,
                runs=[str(run.path) for run in members],
            )
        )
    whole_split = float("inf")  # runs on the whole training split come after every subset of it
    return sorted(
        rows,
        key=lambda row: (row.dataset, whole_split if row.training_tracks is None else row.training_tracks, row.model, row.features),
    )


def format_results_table(rows: Sequence[TableRow], metric: str = DEFAULT_TABLE_METRIC, published: str = "") -> str:
    """The table as Markdown; accuracy in percent, "mean ± std (n runs)"; then `published`, the published
    rows beside ours (`hf_fma.published.published_markdown`), when given."""
    lines = [
        f"| Model | Features | Dataset | Training tracks | {metric_title(metric)} | Runs |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        # No count recorded and no max_train_samples: the whole training split.
        tracks = f"{row.training_tracks:,}" if row.training_tracks is not None else "all"
        lines.append(f"| {row.model} | {row.features} | {row.dataset} | {tracks} | {row.percent} | {len(row.values)} |")
    return "\n".join(lines) + "\n" + (f"\n{published}" if published else "")


def write_results_table(
    rows: Sequence[TableRow], output_dir: str | Path, metric: str = DEFAULT_TABLE_METRIC, published: str = ""
) -> tuple[Path, Path]:
    """Write `results.md` (with `published`, see format_results_table) and `results.json` (the rows, read
    by `hf-fma plot sizes`) into output_dir."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    markdown = output_dir / TABLE_MARKDOWN_NAME
    markdown.write_text(format_results_table(rows, metric, published), encoding="utf-8")
    table_json = output_dir / TABLE_JSON_NAME
    table_json.write_text(json.dumps({"metric": metric, "rows": [asdict(row) for row in rows]}, indent=2), encoding="utf-8")
    return markdown, table_json


def _message(error: Exception) -> str:
    return str(error.args[0]) if isinstance(error, KeyError) else str(error)


def table_main(argv: list[str] | None = None) -> int:
    """`hf-fma table RUN_DIRS... [--metric test_track_accuracy] [--output_dir DIR]`: print the results table
    (and write results.md and results.json into DIR)."""
    parser = ArgumentParser(
        prog="hf-fma table", description="Results table of AST and CNN runs, mean and std over seeds."
    )
    parser.add_argument("run_dirs", nargs="+", help="run folders, or folders of run folders")
    parser.add_argument(
        "--metric",
        default=DEFAULT_TABLE_METRIC,
        help=f"key of all_results.json to report (default: {DEFAULT_TABLE_METRIC}; e.g. test_clip_accuracy, test_track_macro_f1)",
    )
    parser.add_argument("--output_dir", help="also write results.md and results.json (for `hf-fma plot sizes`) here")
    parser.add_argument(
        "--published",
        action="store_true",
        help="also print the study's published results, labelled with their source, beside the runs that repeat them",
    )
    args = parser.parse_args(argv)
    try:
        runs = find_runs(args.run_dirs)
        rows = results_table(runs, args.metric)
        published = published_markdown(rows, runs, args.metric, metric_title(args.metric)) if args.published else ""
    except (FileNotFoundError, ValueError, KeyError) as error:
        print(f"hf-fma table: {_message(error)}", file=sys.stderr)
        return 2
    print(format_results_table(rows, args.metric, published), end="")
    if args.output_dir:
        for path in write_results_table(rows, args.output_dir, args.metric, published):
            print(path)
    return 0


# ----------------------------------------------------------------------------------------------------
# Evaluation reports
# ----------------------------------------------------------------------------------------------------


def evaluation_markdown(evaluation: Mapping[str, Any], title: str | None = None, heading: str = "##") -> str:
    """An `evaluate_model` result as Markdown: clip and track metrics, per-genre precision and recall, and
    the track-level confusion matrix."""
    labels = evaluation["labels"]
    track, clip = evaluation["track"], evaluation["clip"]
    lines = [f"{heading[:-1]} {title}", ""] if title else []
    lines += [
        f"{evaluation['num_tracks']} tracks, {evaluation['n_crops']} evenly spaced crops of "
        f"{evaluation['crop_seconds']:g} s per track. Clip level scores every crop on its own; track level "
        "averages the logits of a track's crops.",
        "",
        "| Level | Accuracy | Macro-F1 |",
        "| --- | ---: | ---: |",
        f"| clip | {100 * clip['accuracy']:.1f}% | {clip['macro_f1']:.3f} |",
        f"| track | {100 * track['accuracy']:.1f}% | {track['macro_f1']:.3f} |",
        "",
        f"{heading} Per genre (track level)",
        "",
        "| Genre | Precision | Recall (accuracy) | Tracks |",
        "| --- | ---: | ---: | ---: |",
    ]
    for index, genre in enumerate(labels):
        support = sum(track["confusion_matrix"][index])
        lines.append(
            f"| {genre} | {track['per_genre_precision'][genre]:.3f} | {track['per_genre_recall'][genre]:.3f} | {support} |"
        )
    lines += [
        "",
        f"{heading} Confusion matrix (track level; rows: true genre, columns: predicted genre)",
        "",
        "| true \\ predicted | " + " | ".join(labels) + " |",
        "| --- | " + " | ".join("---:" for _ in labels) + " |",
    ]
    for genre, row in zip(labels, track["confusion_matrix"]):
        lines.append(f"| {genre} | " + " | ".join(str(count) for count in row) + " |")
    return "\n".join(lines) + "\n"


def write_evaluation(
    evaluation: Mapping[str, Any],
    output_dir: str | Path,
    split: str,
    title: str | None = None,
    plot: bool = True,
    dataset_config: str | None = None,
) -> list[Path]:
    """Write `evaluation_{config}_{split}.json`, `.md` and, with matplotlib and `plot`, the track-level
    `confusion_matrix_{config}_{split}.png` into output_dir (without a dataset_config: the names of a run's
    own evaluation, `evaluation_{split}.json`)."""
    output_dir = Path(output_dir)
    written = [
        write_json_atomic(output_dir / evaluation_json_name(split, dataset_config), evaluation),
        write_text_atomic(output_dir / evaluation_markdown_name(split, dataset_config), evaluation_markdown(evaluation, title)),
    ]
    if plot:
        from hf_fma.plots import plot_confusion_matrix

        written.append(
            plot_confusion_matrix(
                evaluation["track"]["confusion_matrix"],
                evaluation["labels"],
                output_dir / confusion_matrix_name(split, dataset_config),
                title=title,
            )
        )
    return written


def _refresh_run_card(folder: str | Path) -> list[Path]:
    """Rewrite a run folder's README.md model card from its files, now with the new evaluation; nothing
    for a folder that is no finished run (a model saved elsewhere) or has no test evaluation yet."""
    from hf_fma.cards import write_run_card  # imported here: cards builds on this module

    try:
        return [write_run_card(folder)]
    except FileNotFoundError:
        return []


def _build_evaluate_parser() -> argparse.ArgumentParser:
    from hf_fma.data import DATASET_CONFIGS

    parser = ArgumentParser(
        prog="hf-fma evaluate", description="Clip- and track-level metrics of a saved model on an FMA split."
    )
    parser.add_argument("model", help="a saved model folder (a run folder) or a Hub name")
    parser.add_argument(
        "--dataset_config_name", default="small", choices=DATASET_CONFIGS, help="FMA dataset config (default: small)"
    )
    parser.add_argument("--split", default="test", choices=("train", "validation", "test"), help="(default: test)")
    parser.add_argument("--data_dir", help="folder with the FMA archives or their extracted folders (default: download)")
    parser.add_argument("--n_crops", type=int, default=6, help="evenly spaced crops per track (default: 6)")
    parser.add_argument("--crop_seconds", type=float, help="crop length (default: the feature extractor's max_length)")
    parser.add_argument("--max_tracks", type=int, help="evaluate on this many tracks, balanced per genre")
    parser.add_argument(
        "--seed", type=int, default=0, help="draws the --max_tracks tracks, as a run's seed draws max_eval_samples (default: 0)"
    )
    parser.add_argument("--batch_size", type=int, default=32, help="(default: 32)")
    parser.add_argument("--num_workers", type=int, default=0, help="DataLoader workers (default: 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument(
        "--output_dir",
        help="where the reports go (default: the model folder; for a Hub name ./evaluation/NAME); the files are "
        "named evaluation_CONFIG_SPLIT.*, beside and never over a run's own evaluation_SPLIT.json",
    )
    parser.add_argument(
        "--trust_remote_code",
        action="store_true",
        help="run the Python code a Hub repository or folder names in its auto_map (off: such a model is refused; "
        "hf-fma's own CNN and feature extractor need no code from the folder)",
    )
    parser.add_argument("--no_plot", action="store_true", help="skip the confusion-matrix PNG (no matplotlib needed)")
    return parser


def evaluate_main(argv: list[str] | None = None) -> int:
    """`hf-fma evaluate MODEL --dataset_config_name small --split test [--data_dir DIR] [--n_crops 6]`: write
    evaluation_{config}_{split}.json/.md and confusion_matrix_{config}_{split}.png and print the Markdown
    report."""
    args = _build_evaluate_parser().parse_args(argv)
    try:
        return _evaluate(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"hf-fma evaluate: {error}", file=sys.stderr)
        return 2


def _evaluate(args: argparse.Namespace) -> int:
    if args.n_crops < 1:
        raise ValueError(f"--n_crops must be >= 1, got {args.n_crops}")
    if args.data_dir is not None and not Path(args.data_dir).expanduser().is_dir():
        raise FileNotFoundError(
            f"--data_dir {args.data_dir} is not a folder (it should hold fma_metadata.zip and "
            f"fma_{args.dataset_config_name}.zip)"
        )
    plot = not args.no_plot
    if plot:
        try:
            check_matplotlib()  # now, not after the evaluation: the reports are written either way
        except ImportError as error:
            print(f"hf-fma evaluate: no confusion-matrix figure: {error}", file=sys.stderr)
            plot = False
    # Imported here: `hf-fma table` and `--help` need neither torch nor transformers.
    from hf_fma.evaluation import evaluate_model
    from hf_fma.predict import load_classifier
    from hf_fma.training import DataArguments, balanced_sample, load_splits

    model, feature_extractor = load_classifier(args.model, device=args.device, trust_remote_code=args.trust_remote_code)
    split = load_splits(DataArguments(data_dir=args.data_dir, dataset_config_name=args.dataset_config_name))[args.split]
    if args.max_tracks is not None:
        split = balanced_sample(split, args.max_tracks, seed=args.seed)
    evaluation = evaluate_model(
        model,
        feature_extractor,
        split,
        n_crops=args.n_crops,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        crop_seconds=args.crop_seconds,
        progress=True,
    )
    evaluation = {"model": str(args.model), "dataset_config": args.dataset_config_name, "split": args.split, **evaluation}
    output_dir = args.output_dir or (args.model if Path(args.model).is_dir() else Path("evaluation") / Path(args.model).name)
    title = f"{Path(args.model).name} on FMA {args.dataset_config_name}, {args.split} split"
    written = write_evaluation(
        evaluation, output_dir, args.split, title=title, plot=plot, dataset_config=args.dataset_config_name
    )
    if Path(output_dir) == Path(args.model):
        written += _refresh_run_card(output_dir)
    print(evaluation_markdown(evaluation, title), end="")
    for path in written:
        print(path)
    return 0
