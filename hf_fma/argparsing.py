"""The command-line convention of every hf-fma command: transformers' (`HfArgumentParser`).

Options are spelled with underscores (`--data_dir`, `--dry_run`), and the dashed spelling of each is
accepted too (`--data-dir`, `--dry-run`), as `HfArgumentParser` accepts both for the training
arguments. `ArgumentParser` adds the second spelling to every long option itself, so no command can
forget one. The dataset config is `--dataset_config_name`; `--config` is always a YAML/JSON file.

A user error ends every command with one line on stderr and exit status 2 (`run_command`); a bug keeps
its traceback, which a report needs.

This module imports the standard library only: every command's `--help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent

# What hf-fma raises for bad input: a wrong value or name (ValueError, and so the package's
# AudioDecodeError and CheckpointMismatchError), a missing or an existing file or folder (OSError), an
# optional package that is not installed (ImportError).
USER_ERRORS = (ValueError, OSError, ImportError)


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


def is_user_error(error: BaseException) -> bool:
    """Whether `error` is bad input that hf-fma found and described itself: one of USER_ERRORS raised by
    the package's own code, whose message names the value or file. The same types raised inside a
    library (torch, datasets, transformers), and every other exception, are bugs: their traceback stays."""
    if not isinstance(error, USER_ERRORS) or error.__traceback__ is None:
        return False
    frame = error.__traceback__
    while frame.tb_next is not None:
        frame = frame.tb_next
    return Path(frame.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE_DIR)


def run_command(prog: str, command: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None) -> int:
    """`command(argv)`'s exit status; a user error (`is_user_error`) becomes one line on stderr, "PROG:
    message", and exit status 2, as argparse ends a bad option."""
    try:
        return int(command(argv) or 0)
    except USER_ERRORS as error:
        if not is_user_error(error):
            raise
        print(f"{prog}: {' '.join(str(error).splitlines())}", file=sys.stderr)
        return 2


__all__ = ["USER_ERRORS", "ArgumentParser", "both_spellings", "is_user_error", "run_command"]
