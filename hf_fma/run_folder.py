"""What is in a run folder, and how its files are written.

A training run (`hf_fma.train.run_training`) leaves in its `output_dir`:

    config.json, model.safetensors, preprocessor_config.json   the best model and its feature extractor
    configuration_*.py, modeling_*.py, feature_extraction_*.py the code `auto_map` names (CNN, pooled features)
    trainer_state.json                                         Trainer's log history (learning curves)
    evaluation_{split}.json                                    training-time evaluation of validation and test
    run_config.yaml                                            the resolved arguments (`--config` repeats the run)
    README.md                                                  the model card (`hf_fma.cards`)
    all_results.json                                           every metric; moved in last: the run is finished
    checkpoint-N/                                              Trainer's checkpoints (`--resume_from_checkpoint`)
    .lock                                                      locked by the run training into the folder
    .replaced-checkpoints/                                     a replacing run's predecessor's, until it is in

`hf-fma evaluate` adds `evaluation_{config}_{split}.json` / `.md` and `confusion_matrix_{config}_{split}.png`,
named by dataset config so that they never replace the run's own; `hf-fma plot` and `hf-fma push` draw
`learning_curves.png` and `confusion_matrix_{split}.png`.

Every file is written to a temporary file beside it and renamed into place (`os.replace`, atomic on one
file system), and the final files of a run, card included, are gathered in a staging folder and moved in
together with `all_results.json` last, after the previous run's `all_results.json` is removed. A crash at
any moment therefore leaves the previous finished run, the new finished run (with its card), or a folder
without final test metrics that no tool takes for a finished run (the sample-size study resumes or
retrains it).

A finished run is read back from these files by `hf_fma.runs.Run`.

This module is the lowest layer of the package's run handling: it needs only the standard library, so
results, plots, cards, the Hub code, training and the recipes all read the same names.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

ALL_RESULTS_NAME = "all_results.json"
RUN_CONFIG_NAME = "run_config.yaml"
TRAINER_STATE_NAME = "trainer_state.json"
LEARNING_CURVES_NAME = "learning_curves.png"
ACCURACY_VS_TRACKS_NAME = "accuracy_vs_tracks.png"
CHECKPOINT_PATTERN = "checkpoint-*"
# Where run_training gathers a run's final files before moving them into the run folder.
STAGING_NAME = ".incoming"
# Where a replacing run (--overwrite_output_dir) puts the previous run's checkpoints until it is finished:
# Trainer's rotation would delete them, and `--resume_from_checkpoint last` would continue them.
REPLACED_CHECKPOINTS_NAME = ".replaced-checkpoints"
# The file a training run locks (flock) for as long as it trains into the folder; it names the holder.
LOCK_NAME = ".lock"
# all_results.json holds this count once the run's final test evaluation is done, whatever the task (a
# multi-label run reports mAP, not accuracy).
FINISHED_METRIC = "test_tracks"
# Files whose presence means a folder holds (part of) a training run: training into it would replace them.
RUN_MARKERS = (ALL_RESULTS_NAME, RUN_CONFIG_NAME, TRAINER_STATE_NAME, "config.json", "model.safetensors")
# Files of a previous run that a new run's files do not necessarily replace (another model family's code, an
# evaluation of another config): removed when a new run is moved in, so nothing stale sits beside it.
REPLACED_PATTERNS = (
    "model*.safetensors", "model.safetensors.index.json", "*.py", "evaluation_*.json", "evaluation_*.md",
    "confusion_matrix*.png", LEARNING_CURVES_NAME,
)  # fmt: skip


def evaluation_stem(split: str, dataset_config: str | None = None) -> str:
    """evaluation_test for a run's own evaluation; evaluation_mini_test for `hf-fma evaluate --dataset_config_name mini`."""
    return f"evaluation_{dataset_config}_{split}" if dataset_config else f"evaluation_{split}"


def evaluation_json_name(split: str, dataset_config: str | None = None) -> str:
    return evaluation_stem(split, dataset_config) + ".json"


def evaluation_markdown_name(split: str, dataset_config: str | None = None) -> str:
    return evaluation_stem(split, dataset_config) + ".md"


def confusion_matrix_name(split: str | None = None, dataset_config: str | None = None) -> str:
    """confusion_matrix_test.png for the test split's matrix, confusion_matrix_mini_test.png for an
    evaluation on another config, confusion_matrix.png for a matrix of no split."""
    if not split:
        return "confusion_matrix.png"
    return f"confusion_matrix_{dataset_config}_{split}.png" if dataset_config else f"confusion_matrix_{split}.png"


# ----------------------------------------------------------------------------------------------------
# Reading and writing
# ----------------------------------------------------------------------------------------------------


def read_json(path: str | Path) -> dict:
    """A JSON file's content; a missing or malformed file fails naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error


def new_file_mode() -> int:
    """The mode `open` gives a new file: 0o666 less the process's umask (0o644 by default). POSIX reads
    the umask only by setting it, so it is set and put back at once."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def follow_umask(folder: str | Path) -> None:
    """Give every file in folder the mode a plain `open` would (`new_file_mode`): safetensors writes
    model.safetensors 0o600, which other users cannot read (nor resume from, for a checkpoint)."""
    mode = new_file_mode()
    for path in Path(folder).iterdir():
        if path.is_file():
            path.chmod(mode)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write text to path through a temporary file in the same folder renamed over it: a reader (or a
    crash) sees the old content or the new, never a truncated file. The file gets the mode a plain `open`
    would give it (mkstemp's is 0o600: other users could not read the run)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(descriptor, new_file_mode())
        with os.fdopen(descriptor, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | Path, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2) + "\n")


# ----------------------------------------------------------------------------------------------------
# The state of a run folder
# ----------------------------------------------------------------------------------------------------


def checkpoints(run_dir: str | Path) -> list[Path]:
    run_dir = Path(run_dir)
    return sorted(path for path in run_dir.glob(CHECKPOINT_PATTERN) if path.is_dir()) if run_dir.is_dir() else []


def run_files(run_dir: str | Path) -> list[str]:
    """The names of the run files and checkpoints in run_dir (empty for a missing or fresh folder)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [name for name in RUN_MARKERS if (run_dir / name).exists()]
    return found + [path.name for path in checkpoints(run_dir)]


def is_finished(run_dir: str | Path) -> bool:
    """True when the run's final test metrics are in its all_results.json (written last by run_training)."""
    path = Path(run_dir) / ALL_RESULTS_NAME
    try:
        return FINISHED_METRIC in read_json(path)
    except (FileNotFoundError, ValueError):
        return False


def is_complete_checkpoint(checkpoint: str | Path) -> bool:
    """True when Trainer finished writing the checkpoint: it writes trainer_state.json after the model,
    optimizer and RNG states, so a checkpoint cut short (killed, disk full) has none or a truncated one."""
    try:
        return "global_step" in read_json(Path(checkpoint) / TRAINER_STATE_NAME)
    except (FileNotFoundError, ValueError):
        return False


def last_checkpoint(run_dir: str | Path) -> Path | None:
    """The complete checkpoint of the highest step in run_dir; incomplete ones are skipped, with a warning."""
    by_step = sorted(
        (path for path in checkpoints(run_dir) if path.name.split("-")[-1].isdigit()),
        key=lambda path: int(path.name.split("-")[-1]),
    )
    for checkpoint in reversed(by_step):
        if is_complete_checkpoint(checkpoint):
            return checkpoint
        logger.warning(f"{checkpoint} is incomplete (no readable {TRAINER_STATE_NAME}: cut short while saved): skipped")
    return None


@contextlib.contextmanager
def run_folder_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold run_dir for one training run: a second run into it stops at once, naming the first.

    An OS lock (`flock`) on run_dir/.lock, released when the block ends or the process dies however it
    dies, so a killed run leaves no stale lock. The file says who holds it (process, host, start time).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text(encoding="utf-8").strip() or "another process"
            raise RunFolderLockedError(
                f"output_dir {run_dir} is in use by another training run ({holder}): wait for it to end, or give "
                "another --output_dir"
            ) from None
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"process {os.getpid()} on {socket.gethostname()}, started {started}\n".encode())
        yield
    finally:
        os.close(descriptor)  # releases the lock


class RunFolderLockedError(OSError):
    """Another training run holds the run folder (an OSError, as the lock's own BlockingIOError: the CLI ends
    it with one line)."""


def set_aside_checkpoints(run_dir: str | Path) -> None:
    """Before a replacing run trains: move the folder's checkpoints into .replaced-checkpoints/, out of the
    reach of Trainer's rotation and of `--resume_from_checkpoint last`; `publish_staged` removes them once
    the new run is in. When the folder holds some already (an earlier replacing run was killed), they still
    belong to the finished run in the folder and stay; the checkpoints beside them, the killed run's, go."""
    run_dir = Path(run_dir)
    if not checkpoints(run_dir):
        return
    aside = run_dir / REPLACED_CHECKPOINTS_NAME
    earlier = aside.is_dir()
    aside.mkdir(exist_ok=True)
    for checkpoint in checkpoints(run_dir):
        if earlier:
            shutil.rmtree(checkpoint)
        else:
            os.replace(checkpoint, aside / checkpoint.name)


def check_output_dir(output_dir: str | Path, overwrite: bool, resuming: bool) -> None:
    """Refuse, before any work, to train into a folder that holds a run, unless asked to replace it
    (`--overwrite_output_dir`) or to continue it (`--resume_from_checkpoint`)."""
    found = run_files(output_dir)
    if found and not overwrite and not resuming:
        listed = ", ".join(found[:6]) + (", ..." if len(found) > 6 else "")
        state = "a finished training run" if is_finished(output_dir) else "an unfinished training run"
        raise FileExistsError(
            f"output_dir {output_dir} already holds {state} ({listed}). Pass --overwrite_output_dir to replace "
            "it, --resume_from_checkpoint last to continue it from its last checkpoint, or another --output_dir"
        )


def staging_dir(run_dir: str | Path, empty: bool = True) -> Path:
    """The folder inside run_dir where the final files of a run are gathered; with `empty` (the main
    process), created empty (what an earlier crash left in it is removed)."""
    staging = Path(run_dir) / STAGING_NAME
    if empty:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    return staging


def publish_staged(staging: str | Path, run_dir: str | Path) -> Path:
    """Move the staged final files of a run into run_dir, its all_results.json (staged too) last.

    The previous run's all_results.json goes first, so from then on no tool takes the folder for a finished
    run until the new one is complete; its other files are replaced (os.replace) or, when the new run has no
    counterpart (REPLACED_PATTERNS), removed. Checkpoints are Trainer's and stay. Every file gets the
    mode a plain `open` gives (`follow_umask`).
    """
    staging, run_dir = Path(staging), Path(run_dir)
    if not (staging / ALL_RESULTS_NAME).is_file():
        raise FileNotFoundError(f"{staging} holds no {ALL_RESULTS_NAME}: it is not a finished run to move in")
    (run_dir / ALL_RESULTS_NAME).unlink(missing_ok=True)
    staged = {path.name for path in staging.iterdir()}
    for pattern in REPLACED_PATTERNS:
        for stale in run_dir.glob(pattern):
            if stale.is_file() and stale.name not in staged:
                stale.unlink()
    follow_umask(staging)
    for path in sorted(staging.iterdir(), key=lambda path: path.name == ALL_RESULTS_NAME):  # the mark last
        os.replace(path, run_dir / path.name)
    staging.rmdir()
    shutil.rmtree(run_dir / REPLACED_CHECKPOINTS_NAME, ignore_errors=True)  # the replaced run's
    return run_dir / ALL_RESULTS_NAME


__all__ = [
    "ACCURACY_VS_TRACKS_NAME",
    "ALL_RESULTS_NAME",
    "FINISHED_METRIC",
    "LEARNING_CURVES_NAME",
    "LOCK_NAME",
    "REPLACED_CHECKPOINTS_NAME",
    "RUN_CONFIG_NAME",
    "RunFolderLockedError",
    "TRAINER_STATE_NAME",
    "check_output_dir",
    "checkpoints",
    "confusion_matrix_name",
    "evaluation_json_name",
    "evaluation_markdown_name",
    "evaluation_stem",
    "follow_umask",
    "is_complete_checkpoint",
    "is_finished",
    "last_checkpoint",
    "new_file_mode",
    "publish_staged",
    "read_json",
    "run_files",
    "run_folder_lock",
    "set_aside_checkpoints",
    "staging_dir",
    "write_json_atomic",
    "write_text_atomic",
]
