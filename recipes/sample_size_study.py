#!/usr/bin/env python
"""How does the number of training tracks change the results? Train one model family at several
training-set sizes (balanced per genre) and seeds, then write the table (mean and std per size) and the plot.

The study's question on fma_small, AST from scratch and the CNN (the archives in data/fma; 4 sizes x 3
seeds = 12 runs each):

    python recipes/sample_size_study.py --config hf_fma/configs/ast_study_small.yaml --data_dir data/fma \\
        --study_dir runs/sample-size-ast
    python recipes/sample_size_study.py --config hf_fma/configs/cnn_study_small.yaml --data_dir data/fma \\
        --study_dir runs/sample-size-cnn
    hf-fma table runs/sample-size-ast runs/sample-size-cnn --output_dir runs/sample-size  # both side by side
    hf-fma plot sizes runs/sample-size/results.json

On the offline demo, in a few minutes on CPU (`hf-fma make-demo demo_data` first):

    python recipes/sample_size_study.py --config hf_fma/configs/ast_demo.yaml --sizes 24 48 96 --seeds 0 1 \\
        --study_dir runs/sample-size-demo

`--sizes` (default 1000 2000 4000 6400: 6400 is all of small's training split) and `--seeds` (default 0 1 2)
are the study's; every other flag is a training argument and overrides the config file (`--num_train_epochs
5`). Each run is the training recipe with `--max_train_samples SIZE --seed SEED`; the seed also draws the
training subset, so the spread over seeds covers both the initialisation and which tracks were picked.
Runs land in STUDY_DIR/SIZE-seedSEED/. A run is finished when its final test metrics are in its
all_results.json; it is not trained again. Any other run folder is resumed from its last checkpoint, or
retrained when it has none (killed before its first checkpoint), and the study prints which: an interrupted
study continues where it stopped. The table goes to STUDY_DIR/results.md and results.json, the
plot to STUDY_DIR/accuracy_vs_tracks.png. `accelerate launch ... recipes/sample_size_study.py ...` trains
every run on all processes; only the main process writes the table and the plot.
"""

import argparse
import os
import sys
from dataclasses import asdict
from pathlib import Path

from hf_fma.argparsing import run_command
from hf_fma.arguments import parse_arguments
from hf_fma.results import DEFAULT_TABLE_METRIC, format_results_table, results_table, write_results_table
from hf_fma.run_folder import is_finished, last_checkpoint, run_files
from hf_fma.runs import find_runs
from hf_fma.train import run_training, setup_logging

STUDY_SIZES = (1000, 2000, 4000, 6400)
STUDY_SEEDS = (0, 1, 2)


def run_dir_name(size: int, seed: int) -> str:
    return f"{size}-seed{seed}"


def main(argv: list[str] | None = None) -> int:
    # A user error (a wrong training argument or config, a run folder in the way) ends the study with one
    # line and exit status 2.
    return run_command(Path(sys.argv[0]).name, study, argv)


def study(argv: list[str] | None) -> int:
    # Arguments: the study's own; everything else is the training recipe's (config file and overrides).
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=False)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(STUDY_SIZES), help="training tracks per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(STUDY_SEEDS), help="seeds per size")
    parser.add_argument("--study_dir", type=Path, required=True, help="folder of the runs, the table and the plot")
    parser.add_argument("--metric", default=DEFAULT_TABLE_METRIC, help=f"metric of the table (default: {DEFAULT_TABLE_METRIC})")
    argv = sys.argv[1:] if argv is None else list(argv)
    if {"-h", "--help"} & set(argv):
        parser.print_help()
        print("\nEvery other flag is a training argument: python recipes/train_ast.py --help")
        return 0
    study_args, training_argv = parser.parse_known_args(argv)
    if min(study_args.sizes) < 1:
        parser.error(f"--sizes must be positive numbers of tracks, got {study_args.sizes}")

    # Runs: one training run per (size, seed); finished ones are skipped, unfinished ones resumed or retrained.
    for size in sorted(set(study_args.sizes)):
        for seed in study_args.seeds:
            output_dir = study_args.study_dir / run_dir_name(size, seed)
            continuation = []
            if is_finished(output_dir):
                print(f"sample-size study: {output_dir} is finished, not training it again")
                continue
            if last_checkpoint(output_dir):  # a complete one: a checkpoint cut short is no start
                print(f"sample-size study: {output_dir} has no final test metrics: resuming it from its last checkpoint")
                continuation = ["--resume_from_checkpoint", "last"]
            elif run_files(output_dir):
                print(f"sample-size study: {output_dir} has no final test metrics and no checkpoint: retraining it")
                continuation = ["--overwrite_output_dir", "true"]
            model_args, data_args, training_args = parse_arguments([
                *training_argv, "--max_train_samples", str(size), "--seed", str(seed), "--output_dir", str(output_dir),
                *continuation,
            ])  # fmt: skip
            setup_logging(training_args)
            run_training(model_args, data_args, training_args)

    if int(os.environ.get("RANK", "0")) != 0:
        return 0

    # Table: mean and std over seeds per size, from the runs of this study only.
    wanted = {run_dir_name(size, seed) for size in study_args.sizes for seed in study_args.seeds}
    runs = [run for run in find_runs([study_args.study_dir]) if run.path.name in wanted]
    rows = results_table(runs, study_args.metric)
    print(format_results_table(rows, study_args.metric), end="")
    for path in write_results_table(rows, study_args.study_dir, study_args.metric):
        print(path)

    # Plot: accuracy against training tracks (needs the optional matplotlib).
    try:
        from hf_fma.plots import ACCURACY_VS_TRACKS_NAME, plot_accuracy_vs_tracks

        plot = plot_accuracy_vs_tracks(
            [asdict(row) for row in rows], study_args.study_dir / ACCURACY_VS_TRACKS_NAME, metric=study_args.metric
        )
        print(plot)
    except ImportError as error:
        print(f"sample-size study: no plot: {error}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
