"""`hf-fma train` and the recipes: the one entry point of training, from arguments to a published run.

    hf-fma train ast_demo --data_dir demo_data                     # a shipped config, by name
    hf-fma train my_run.yaml --learning_rate 5e-4                  # any YAML/JSON file; flags override it
    hf-fma train ast_study_small --data_dir /data/fma --push_to_hub --hub_model_id me/ast-fma-small
    accelerate launch --config_file "$(hf-fma configs accelerate/multi_gpu)" -m hf_fma.train \\
        ast_study_small --data_dir /data/fma --per_device_train_batch_size 8
    python recipes/train_ast.py --config hf_fma/configs/ast_demo.yaml
    hf-fma configs                                                 # the shipped configs and their paths

The config's `model_family` picks the model (a recipe sets its own); every argument is listed by
`hf-fma train --help` (`hf_fma.arguments`). `python -m hf_fma.train` is the same command, for
`accelerate launch -m` and `torchrun -m`. The sample-size study calls `run_training` in a loop:

    >>> model_args, data_args, training_args = parse_arguments(["--config", "hf_fma/configs/ast_demo.yaml"])
    >>> metrics = run_training(model_args, data_args, training_args)
    >>> metrics["test_track_accuracy"]

A run's output folder holds the best model (by validation accuracy) and its feature extractor
(`save_pretrained`, loadable by `pipeline("audio-classification", model=folder)`), checkpoints,
`trainer_state.json`, `all_results.json`, `evaluation_{validation,test}.json` (clip- and track-level
metrics, see `hf_fma.evaluation`), `run_config.yaml`, the resolved arguments, which `--config` reads back
to repeat the run, and README.md, its model card (see `hf_fma.run_folder` for the layout and how the files
are written).

A folder that already holds a run is never trained into silently: the run stops before reading any data
unless `--overwrite_output_dir` (replace it) or `--resume_from_checkpoint last` (continue it) is given. The
final files are moved in only once the run is finished and evaluated, `all_results.json` last, so a crash
leaves the previous run or the new one, never a mix; a run locks its folder against a second one, and
resumes only complete checkpoints of its own run. No Hub token is ever written: `hub_token` is cleared from
the arguments before Trainer pickles them into `training_args.bin`, and `--push_to_hub` is hf-fma's own
push of the finished run.

torch, transformers and datasets are imported by the functions that train, not by this module: `hf-fma
configs` and `hf-fma train`'s usage line answer without them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hf_fma.argparsing import ArgumentParser, run_command
from hf_fma.cards import write_run_card
from hf_fma.configs import CONFIGS_DIR, shipped_configs
from hf_fma.hub import HubError, check_push, push_run
from hf_fma.run_folder import publish_staged, run_folder_lock

if TYPE_CHECKING:
    from transformers import TrainerCallback, TrainingArguments

    from hf_fma.arguments import DataArguments, FmaTrainingArguments, ModelArguments


def run_training(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: FmaTrainingArguments,
    callbacks: Sequence[TrainerCallback] = (),
) -> dict[str, float]:
    """Train, keep the best model by validation accuracy, evaluate it on validation and test (clip and
    track level), save everything into `training_args.output_dir` with its model card. Returns the flat
    metrics written to all_results.json (train_*, eval_* of the best model, validation_* and test_*
    track/clip metrics).

    The processes that write output_dir (Trainer's `should_save`: the main one) hold its lock
    (`run_folder_lock`) for the whole run: a second run into the folder stops at once, naming the first."""
    from hf_fma.arguments import check_arguments
    from hf_fma.checkpoints import resolve_checkpoint
    from hf_fma.training import train_and_evaluate

    check_arguments(model_args, data_args, training_args)
    checkpoint = resolve_checkpoint(training_args)  # a missing checkpoint fails here, before the data is read
    lock = run_folder_lock(training_args.output_dir) if training_args.should_save else contextlib.nullcontext()
    with lock:
        metrics, staging = train_and_evaluate(model_args, data_args, training_args, checkpoint, callbacks)
        if staging is not None:
            # Card: README.md beside the saved model, so that any upload of the folder (model.push_to_hub,
            # `hf upload`) publishes a complete one. Written among the staged files, from them, so that it
            # moves in with the run: a finished run always has its card.
            write_run_card(staging, repo_id=training_args.hub_model_id, location=training_args.output_dir)
            # The run's final files replace the folder's previous ones, all_results.json (the finished mark) last.
            publish_staged(staging, training_args.output_dir)
    return metrics


def train_main(argv: Sequence[str] | None = None, model_family: str | None = None, prog: str | None = None) -> int:
    """`python recipes/train_ast.py ...` is `train_main(argv, "ast")`; `recipes/train_cnn.py` and
    `train_lstm.py` are `train_main(argv, "cnn")` and `train_main(argv, "lstm")`; `hf-fma train CONFIG ...` is
    `train_main(argv, prog="hf-fma train")`: the config's model_family. A user error (a wrong argument, config
    or checkpoint, a run already in output_dir, a missing tracker) ends it with one line on stderr and exit
    status 2, on every process."""
    prog = prog or Path(sys.argv[0]).name
    return run_command(prog, lambda argv: _train(argv, model_family, prog), argv)


def _train(argv: Sequence[str] | None, model_family: str | None, prog: str) -> int:
    from hf_fma.arguments import parse_arguments

    # Arguments: the dataclasses from the --config file (YAML or JSON), overridden by command-line flags.
    defaults = {"model_family": model_family} if model_family else None
    model_args, data_args, training_args = parse_arguments(argv, defaults=defaults, prog=prog)
    if model_family and model_args.model_family != model_family:
        raise ValueError(
            f"this config trains the {model_args.model_family.upper()}: run recipes/train_{model_args.model_family}.py"
        )
    setup_logging(training_args)

    # Publishing: hf-fma's push (model card with the test metrics, plots, code) once the run is done,
    # instead of Trainer's own push of every checkpoint with a generic card. The repository id, offline
    # mode and the token are checked first, so that a push that cannot happen fails before hours of
    # training, in one line (exit status 2), not after them. The token stays in this variable only:
    # training clears hub_token before Trainer pickles the arguments into training_args.bin.
    push_to_hub = training_args.push_to_hub
    repo_id = training_args.hub_model_id or Path(training_args.output_dir).name
    try:
        token = check_push(repo_id, training_args.hub_token) if push_to_hub else None
    except HubError as error:
        print(f"--push_to_hub: {error}", file=sys.stderr)
        return 2
    training_args.push_to_hub = False

    # Load splits, transforms, model, Trainer, train, evaluate, save.
    metrics = run_training(model_args, data_args, training_args)

    if training_args.process_index == 0:
        if push_to_hub:
            try:
                push_run(training_args.output_dir, repo_id, token=token, private=bool(training_args.hub_private_repo))
            except HubError as error:
                print(f"--push_to_hub: {error}; the run is saved in {training_args.output_dir}", file=sys.stderr)
                return 2
            print(f"pushed {training_args.output_dir} to the Hub as {repo_id}")
        # Summary: one line with the test metrics.
        print(summary_line(metrics, training_args.output_dir))
    return 0


def setup_logging(training_args: TrainingArguments) -> None:
    """Logs as transformers' examples set them: info on the main process, warnings on the others."""
    import datasets
    import transformers

    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    if training_args.should_log:
        transformers.utils.logging.set_verbosity_info()
    log_level = training_args.get_process_log_level()
    logging.getLogger("hf_fma").setLevel(log_level)  # every module's logger, the dataset builder's too
    datasets.utils.logging.set_verbosity(log_level)
    # datasets' loggers print through their own handler and, propagating, through the root one above too:
    # every line twice. Its own handler alone prints each once.
    datasets.utils.logging.disable_propagation()
    transformers.utils.logging.set_verbosity(log_level)
    # What loading a model says about its weights (missing, unexpected, newly initialised) is never noise:
    # it stays visible when --log_level(_replica) asks for errors only.
    logging.getLogger("transformers.modeling_utils").setLevel(min(log_level, logging.WARNING))
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


def summary_line(metrics: Mapping[str, Any], output_dir: str | os.PathLike) -> str:
    """The last line a recipe prints: the test metrics and where the model is (a multi-label run's: mAP,
    and micro-F1 at the threshold chosen on validation)."""
    if "test_track_map" in metrics:
        return (
            f"test: track mAP {metrics['test_track_map']:.4f}, micro-F1 {metrics['test_track_micro_f1']:.4f} "
            f"({metrics['test_tracks']} tracks x {metrics['test_crops']} crops); clip mAP "
            f"{metrics['test_clip_map']:.4f}; validation track mAP {metrics['validation_track_map']:.4f}; "
            f"model in {output_dir}"
        )
    return (
        f"test: track accuracy {metrics['test_track_accuracy']:.4f}, macro-F1 {metrics['test_track_macro_f1']:.4f} "
        f"({metrics['test_tracks']} tracks x {metrics['test_crops']} crops); clip accuracy "
        f"{metrics['test_clip_accuracy']:.4f}; validation track accuracy {metrics['validation_track_accuracy']:.4f}; "
        f"model in {output_dir}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`hf-fma train CONFIG [--argument value ...]`: CONFIG as the first argument is `--config CONFIG`; a
    user error ends it with one line and exit status 2, as every hf-fma command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        # Without a config every argument would take its default, which downloads fma_small (7.2 GiB).
        print(
            "usage: hf-fma train CONFIG [--argument value ...]; CONFIG is a YAML/JSON file or a shipped config "
            "(`hf-fma configs`); `hf-fma train --help` lists every argument",
            file=sys.stderr,
        )
        return 2
    return train_main(argv, prog="hf-fma train")


def configs_main(argv: Sequence[str] | None = None) -> int:
    """`hf-fma configs [NAME]`: list the shipped configs, or print the path of one (for accelerate's
    `--config_file`)."""
    parser = ArgumentParser(prog="hf-fma configs", description=configs_main.__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", help="a config's name (ast_demo, accelerate/cpu): print its path")
    args = parser.parse_args(argv)
    configs = shipped_configs()
    if args.name is not None:
        if args.name not in configs:
            print(f"hf-fma configs: no shipped config {args.name!r}; shipped: {', '.join(configs)}", file=sys.stderr)
            return 2
        print(configs[args.name])
        return 0
    width = max(map(len, configs))
    for name, path in configs.items():
        summary = path.read_text(encoding="utf-8").splitlines()[0].lstrip("# ")
        print(f"{name:<{width}}  {summary}")
    print(f"\n(in {CONFIGS_DIR}; `hf-fma configs NAME` prints one's path)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
