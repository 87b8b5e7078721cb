"""The `hf-fma` command: a thin dispatcher to the package's sub-commands.

Each sub-command lives in the module that owns its work and exposes `main(argv) -> int` with its own
argparse parser, so `hf-fma predict --help` imports only what prediction needs and every module stays
runnable on its own (`python -m hf_fma.demo ...`). Options are spelled with underscores, as in
transformers' scripts and the recipes (`--data_dir`); the dashed spellings are accepted too.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module, function, one-line summary)
COMMANDS = {
    "make-demo": ("hf_fma.demo", "main", "write a miniature FMA (official archive layout) for offline runs"),
    "stats": ("hf_fma.features", "stats_main", "compute fbank mean/std over a training split"),
    "models": ("hf_fma.models.summary", "main", "parameter counts and forward cost of the model presets"),
    "predict": ("hf_fma.predict", "main", "classify audio files or folders with a trained model"),
    "evaluate": ("hf_fma.reporting", "evaluate_main", "clip- and track-level metrics of a model on a split"),
    "plot": ("hf_fma.plots", "main", "learning curves, accuracy vs training tracks, confusion matrix"),
    "table": ("hf_fma.reporting", "table_main", "results table of AST and CNN runs, mean and std over seeds"),
    "export": ("hf_fma.hub", "export_main", "write FMA configs as a Hub-ready Parquet dataset with its card"),
    "push": ("hf_fma.hub", "main", "publish a finished run (weights, card, plots, code) or an export to the Hub"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: hf-fma COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, _, summary) in COMMANDS.items()]
    lines += ["", "Run `hf-fma COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"hf-fma: unknown command {name!r}; valid commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module_name, function_name, _ = COMMANDS[name]
    command = getattr(importlib.import_module(module_name), function_name)
    return int(command(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
