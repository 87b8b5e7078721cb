"""The entry point of `hf-fma train` and the recipes (`recipes/train_ast.py`, `train_cnn.py`,
`train_lstm.py`): arguments, training, publishing.

    hf-fma train ast_demo --data_dir demo_data
    python recipes/train_ast.py --config hf_fma/configs/ast_demo.yaml
    python recipes/train_ast.py --config hf_fma/configs/ast_study_small.yaml --data_dir /data/fma \\
        --push_to_hub --hub_model_id me/ast-fma-small

It stands above `hf_fma.training` and `hf_fma.hub` in the package's layers (training never imports the
Hub code), which is why it is a module of its own rather than part of training.py.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from hf_fma.argparsing import run_command
from hf_fma.hub import push_run
from hf_fma.hub_checks import HubError, check_push
from hf_fma.training import parse_arguments, run_training, setup_logging, summary_line


def train_main(argv: Sequence[str] | None = None, model_family: str | None = None, prog: str | None = None) -> int:
    """`python recipes/train_ast.py ...` is `train_main(argv, "ast")`; `recipes/train_cnn.py` and
    `train_lstm.py` are `train_main(argv, "cnn")` and `train_main(argv, "lstm")`; `hf-fma train CONFIG ...` is
    `train_main(argv, prog="hf-fma train")`: the config's model_family. A user error (a wrong argument, config or checkpoint, a run already in
    output_dir, a missing tracker) ends it with one line on stderr and exit status 2, on every process."""
    prog = prog or Path(sys.argv[0]).name
    return run_command(prog, lambda argv: _train(argv, model_family, prog), argv)


def _train(argv: Sequence[str] | None, model_family: str | None, prog: str) -> int:
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
    # mode and the token are checked now, so that a push that cannot happen fails before hours of
    # training, in one line (exit status 2), not after them. The token stays in this variable only:
    # run_training clears hub_token before Trainer pickles the arguments into training_args.bin.
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
