"""`hf-fma evaluate`: a saved model (a run folder or a Hub name) on one split of FMA or of another dataset.

    hf-fma evaluate runs/ast-demo --dataset_config_name small --split test --data_dir demo_data
    hf-fma evaluate runs/ast-gtzan --dataset_name sanchit-gandhi/gtzan --dataset_config_name default --split test

It scores the model at clip level (every crop on its own) and track level (the logits of `--n_crops` evenly
spaced crops averaged per track, hf_fma.evaluation), and writes `evaluation_{config}_{split}.json`, `.md` and
`confusion_matrix_{config}_{split}.png`, named by dataset config and split so that they never replace the
run's own training-time `evaluation_{split}.json` (cards and `hf-fma push` report the file of the run's own
config, see `hf_fma.runs.Run.evaluation`). Into a run folder, it then rewrites the run's model card.
Code a Hub repository (or folder) carries in `auto_map` runs only with `--trust_remote_code` (see
`hf_fma.models.loading.load_classifier`).

A multi-label model is scored over its genres (mAP, ROC-AUC, F1; see hf_fma.multi_label_evaluation) at
its saved `multi_label_threshold`, the one training chose on the validation split, which the report names;
it has no confusion matrix to draw.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hf_fma.argparsing import ArgumentParser
# importing plots does not import matplotlib.
from hf_fma.plots import check_matplotlib, plot_confusion_matrix
from hf_fma.run_folder import confusion_matrix_name
from hf_fma.runs import dataset_title


def _refresh_run_card(folder: str | Path) -> list[Path]:
    """Rewrite a run folder's README.md model card from its files, with the new evaluation; nothing for a
    folder that is no finished run (a model saved elsewhere) or has no test evaluation yet."""
    from hf_fma.cards import write_run_card  # imported here, as torch: see _evaluate

    try:
        return [write_run_card(folder)]
    except FileNotFoundError:
        return []


def _build_evaluate_parser() -> argparse.ArgumentParser:
    from hf_fma.data import DATASET_CONFIGS

    parser = ArgumentParser(
        prog="hf-fma evaluate",
        description="Clip- and track-level metrics of a saved model on a split of FMA or of another dataset.",
    )
    parser.add_argument("model", help="a saved model folder (a run folder) or a Hub name")
    parser.add_argument(
        "--dataset_config_name",
        default="small",
        help=f"FMA dataset config, one of {', '.join(DATASET_CONFIGS)} (default: small); with --dataset_name of "
        "another dataset, one of its configs (`default` for one without configs)",
    )
    parser.add_argument(
        "--dataset_name",
        help="an `hf-fma export` or any audio-classification dataset: its folder or Hub id (as in training)",
    )
    parser.add_argument("--audio_column_name", default="audio", help="(default: audio)")
    parser.add_argument("--label_column_name", default="genre", help="(default: genre)")
    parser.add_argument(
        "--split_seed",
        type=int,
        default=0,
        help="seed of the stratified split making a split the dataset lacks, as in training (default: 0)",
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
    from hf_fma.data import DATASET_CONFIGS, is_fma_source

    if args.n_crops < 1:
        raise ValueError(f"--n_crops must be >= 1, got {args.n_crops}")
    if args.dataset_name is None and args.dataset_config_name not in DATASET_CONFIGS:
        raise ValueError(
            f"--dataset_config_name {args.dataset_config_name}: FMA has no such config; valid: "
            f"{', '.join(DATASET_CONFIGS)} (another dataset's config goes with its --dataset_name)"
        )
    if args.data_dir is not None and not Path(args.data_dir).expanduser().is_dir():
        raise FileNotFoundError(
            f"--data_dir {args.data_dir} is not a folder (it should hold fma_metadata.zip and "
            f"fma_{args.dataset_config_name}.zip)"
        )
    plot = not args.no_plot
    if plot:
        try:
            check_matplotlib()  # before the evaluation, not after it: the reports are written either way
        except ImportError as error:
            print(f"hf-fma evaluate: no confusion-matrix figure: {error}", file=sys.stderr)
            plot = False
    # Imported here: `hf-fma evaluate --help` needs neither torch nor transformers.
    from hf_fma.data import balanced_sample, load_splits
    from hf_fma.evaluation import evaluate_model
    from hf_fma.evaluation_report import evaluation_markdown, write_evaluation
    from hf_fma.models.loading import load_classifier
    from hf_fma.multi_label import is_multi_label

    model, feature_extractor = load_classifier(args.model, device=args.device, trust_remote_code=args.trust_remote_code)
    plot = plot and not is_multi_label(model.config)  # genres are not exclusive: no confusion matrix
    split = load_splits(
        args.dataset_config_name, data_dir=args.data_dir, dataset_name=args.dataset_name,
        audio_column_name=args.audio_column_name, label_column_name=args.label_column_name, split_seed=args.split_seed,
    )[args.split]  # fmt: skip
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
    evaluation = {
        "model": str(args.model), "dataset_name": args.dataset_name, "dataset_config": args.dataset_config_name,
        "split": args.split, **evaluation,
    }  # fmt: skip
    output_dir = args.output_dir or (args.model if Path(args.model).is_dir() else Path("evaluation") / Path(args.model).name)
    fma = is_fma_source(args.dataset_name, args.dataset_config_name, args.audio_column_name, args.label_column_name)
    data = dataset_title(args.dataset_name, args.dataset_config_name, fma)
    title = f"{Path(args.model).name} on {data}, {args.split} split"
    written = write_evaluation(evaluation, output_dir, args.split, title=title, dataset_config=args.dataset_config_name)
    if plot:
        written.append(
            plot_confusion_matrix(
                evaluation["track"]["confusion_matrix"],
                evaluation["labels"],
                Path(output_dir) / confusion_matrix_name(args.split, args.dataset_config_name),
                title=title,
            )
        )
    if Path(output_dir) == Path(args.model):
        written += _refresh_run_card(output_dir)
    print(evaluation_markdown(evaluation, title), end="")
    for path in written:
        print(path)
    return 0


__all__ = ["evaluate_main"]
