"""The `hf-fma` command: a thin dispatcher to the package's sub-commands.

Each sub-command lives in the module that owns its work and exposes `main(argv) -> int` with its own
argparse parser, so `hf-fma predict --help` imports only what prediction needs and every module stays
runnable on its own (`python -m hf_fma.demo ...`). Every command follows transformers' convention
(`hf_fma.argparsing`): options spelled with underscores (`--data_dir`), the dashed spellings accepted
too, `--config` always a YAML/JSON file, the dataset config `--dataset_config_name`. A user error ends
any command with one line and exit status 2 (`hf_fma.argparsing.run_command`).
"""

from __future__ import annotations

import importlib
import sys

from hf_fma import __version__
from hf_fma.argparsing import run_command

# name -> (module, function, one-line summary)
COMMANDS = {
    "make-demo": ("hf_fma.demo", "main", "write a miniature FMA (official archive layout) for offline runs"),
    "train": ("hf_fma.train", "main", "train AST or the CNN from a config file or a shipped config's name"),
    "configs": ("hf_fma.train", "configs_main", "list the shipped training and accelerate configs, or print one's path"),
    "stats": ("hf_fma.fbank_stats", "stats_main", "compute fbank mean/std over a training split"),
    "models": ("hf_fma.models.summary", "main", "parameter counts and forward cost of the model presets"),
    "predict": ("hf_fma.predict", "main", "classify audio files or folders with a trained model"),
    "evaluate": ("hf_fma.evaluate_run", "evaluate_main", "clip- and track-level metrics of a model on a split"),
    "plot": ("hf_fma.plots", "main", "learning curves, accuracy vs training tracks, confusion matrix"),
    "table": ("hf_fma.results", "table_main", "results table of AST and CNN runs, mean and std over seeds"),
    "export": ("hf_fma.export", "export_main", "write FMA configs as a Hub-ready Parquet dataset with its card"),
    "push": ("hf_fma.hub", "main", "publish a finished run (weights, card, plots, code) or an export to the Hub"),
    "env": ("hf_fma.environment", "main", "versions of Python, torch, the HF libraries and audio decoders, for bug reports"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: hf-fma COMMAND [ARGS...]  |  hf-fma --version", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, _, summary) in COMMANDS.items()]
    lines += ["", "Run `hf-fma COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"hf-fma {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"hf-fma: unknown command {name!r}; valid commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module_name, function_name, _ = COMMANDS[name]
    command = getattr(importlib.import_module(module_name), function_name)
    return run_command(f"hf-fma {name}", command, rest)


if __name__ == "__main__":
    sys.exit(main())
