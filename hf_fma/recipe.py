"""The entry point of `hf-fma train`, `recipes/train_ast.py` and `recipes/train_cnn.py`: arguments,
training, publishing.

    hf-fma train ast_demo --data_dir demo_data
    python recipes/train_ast.py --config hf_fma/configs/ast_demo.yaml
    python recipes/train_ast.py --config hf_fma/configs/ast_study_small.yaml --data_dir /data/fma \\
        --push_to_hub --hub_model_id me/ast-fma-small

It stands above `hf_fma.training` and `hf_fma.hub` in the package's layers (training never imports the
Hub code), which is why it is a module of its own rather than part of training.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hf_fma.hub import push_run, require_token
from hf_fma.training import parse_arguments, run_training, setup_logging, summary_line


def train_main(argv: Sequence[str] | None = None, model_family: str | None = None) -> int:
    """`python recipes/train_ast.py ...` is `train_main(argv, "ast")`; `recipes/train_cnn.py` is
    `train_main(argv, "cnn")`; `hf-fma train CONFIG ...` is `train_main(argv)`: the config's model_family."""
    # Arguments: the dataclasses from the --config file (YAML or JSON), overridden by command-line flags.
    defaults = {"model_family": model_family} if model_family else None
    model_args, data_args, training_args = parse_arguments(argv, defaults=defaults)
    if model_family and model_args.model_family != model_family:
        raise ValueError(
            f"this config trains the {model_args.model_family.upper()}: run recipes/train_{model_args.model_family}.py"
        )
    setup_logging(training_args)

    # Publishing: hf-fma's push (model card with the test metrics, plots, code) once the run is done,
    # instead of Trainer's own push of every checkpoint with a generic card. The token is checked now,
    # so that a missing one fails before hours of training, not after.
    push_to_hub = training_args.push_to_hub
    token = require_token(training_args.hub_token) if push_to_hub else None
    training_args.push_to_hub = False

    # Load splits, transforms, model, Trainer, train, evaluate, save.
    metrics = run_training(model_args, data_args, training_args)

    if training_args.process_index == 0:
        if push_to_hub:
            repo_id = training_args.hub_model_id or Path(training_args.output_dir).name
            push_run(training_args.output_dir, repo_id, token=token, private=bool(training_args.hub_private_repo))
            print(f"pushed {training_args.output_dir} to the Hub as {repo_id}")
        # Summary: one line with the test metrics.
        print(summary_line(metrics, training_args.output_dir))
    return 0
