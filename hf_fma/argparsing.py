"""The command-line convention of every hf-fma command: transformers' (`HfArgumentParser`).

Options are spelled with underscores (`--data_dir`, `--dry_run`), and the dashed spelling of each is
accepted too (`--data-dir`, `--dry-run`), as `HfArgumentParser` accepts both for the training
arguments. `ArgumentParser` adds the second spelling to every long option itself, so no command can
forget one. The dataset config is `--dataset_config_name`; `--config` is always a YAML/JSON file.

This module imports the standard library only: every command's `--help` stays fast.
"""

from __future__ import annotations

import argparse


def both_spellings(names) -> list[str]:
    """Option names plus the underscore and dashed spelling of each long one: `--data_dir` ->
    [`--data_dir`, `--data-dir`]."""
    spellings = list(names)
    for name in names:
        if name.startswith("--"):
            for other in ("--" + name[2:].replace("-", "_"), "--" + name[2:].replace("_", "-")):
                if other not in spellings:
                    spellings.append(other)
    return spellings


class ArgumentParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose long options answer to both `--some_name` and `--some-name`
    (sub-command parsers made by `add_subparsers().add_parser` are of this class too)."""

    def add_argument(self, *names, **kwargs):
        return super().add_argument(*both_spellings(names), **kwargs)


__all__ = ["ArgumentParser", "both_spellings"]
