"""A run's checkpoints: which one to resume, whether it fits the run, and loading exactly its weights.

Checkpoints are written by `save_pretrained`, which in transformers 5 stores some models under other key
names than the module tree has (AST: the Hub's `encoder.layer.N.attention.attention.key` for the module's
`layers.N.attention.k_proj`); only `from_pretrained` maps them back, and Trainer's own reload
(`load_state_dict(strict=False)`) skips them with a mere log line. `load_checkpoint_weights` therefore
reads a checkpoint with `from_pretrained` of the model's own class, the path that reads what
`save_pretrained` wrote on every transformers version, and turns any missing, unexpected or mismatched key
into an error; `hf_fma.trainer.FmaTrainer` reloads its checkpoints with it.

    >>> checkpoint = resolve_checkpoint(training_args)            # "last" -> the newest complete one
    >>> check_checkpoint_matches("runs/ast-demo/checkpoint-42", model)   # before resuming: family and genres
    >>> load_checkpoint_weights(model, "runs/ast-demo/checkpoint-42")
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from transformers import PreTrainedModel, TrainingArguments

from hf_fma.run_folder import last_checkpoint


class CheckpointMismatchError(ValueError):
    """A checkpoint does not hold exactly the weights of the model it is loaded into."""


class CheckpointDiskFullError(OSError):
    """The run folder's disk has too little free space for the next checkpoint."""


def folder_bytes(folder: str | os.PathLike) -> int:
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())


def load_checkpoint_weights(model: PreTrainedModel, checkpoint: str | os.PathLike) -> None:
    """Copy the weights of `checkpoint` (a `save_pretrained` folder) into `model`, in place.

    The folder is read by `from_pretrained` of the model's own class, which applies the key renaming of
    the installed transformers version, and the result is copied with a strict `load_state_dict`, so every
    parameter and buffer of `model` comes from the checkpoint. Raises CheckpointMismatchError naming the
    keys when the checkpoint misses some, has others, or holds other shapes.
    """
    loaded, loading_info = type(model).from_pretrained(checkpoint, output_loading_info=True)
    problems = {
        kind: sorted(map(str, loading_info.get(kind) or ()))
        for kind in ("missing_keys", "unexpected_keys", "mismatched_keys")
    }
    problems.update(_shape_differences(loaded, model))
    problems = {kind: keys for kind, keys in problems.items() if keys}
    if problems:
        listing = "; ".join(f"{kind.replace('_', ' ')}: {', '.join(keys)}" for kind, keys in problems.items())
        raise CheckpointMismatchError(
            f"checkpoint {checkpoint} does not fit the {type(model).__name__} of this run ({listing}): the "
            "model arguments (preset, crop_seconds, mel bins, downscaling) must be those of the checkpoint's "
            "run: the arguments it was started with (a finished run's run_config.yaml holds them)"
        )
    model.load_state_dict(loaded.state_dict(), strict=True)


def _shape_differences(loaded: PreTrainedModel, model: PreTrainedModel) -> dict[str, list[str]]:
    """Tensors that both models have with different shapes (built from different configs)."""
    ours = model.state_dict()
    different = [
        f"{key} {tuple(tensor.shape)} in the checkpoint, {tuple(ours[key].shape)} in the model"
        for key, tensor in loaded.state_dict().items()
        if key in ours and tensor.shape != ours[key].shape
    ]
    return {"different shapes": different}


def check_checkpoint_matches(checkpoint: str | os.PathLike, model: PreTrainedModel) -> None:
    """Fail before training when `checkpoint` was saved by another model family or for other genres than
    `model` (resuming one would fail deep inside the optimizer, or silently train on wrong labels)."""
    config_path = Path(checkpoint) / "config.json"
    try:
        saved = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"resume_from_checkpoint: {checkpoint} has no config.json, so it is no checkpoint of a training run"
        ) from None
    except json.JSONDecodeError as error:
        raise ValueError(f"resume_from_checkpoint: {config_path} is not valid JSON ({error})") from None
    family = model.config.model_type
    if saved.get("model_type") != family:
        raise CheckpointMismatchError(
            f"resume_from_checkpoint: {checkpoint} holds a {saved.get('model_type')!r} model, but this run trains "
            f"a {family!r} one: resume it with the recipe and config it was started with, or give a checkpoint "
            "of this run"
        )
    saved_labels = [label for _, label in sorted(saved.get("id2label", {}).items(), key=lambda item: int(item[0]))]
    labels = [model.config.id2label[index] for index in sorted(model.config.id2label)]
    if saved_labels != labels:
        raise CheckpointMismatchError(
            f"resume_from_checkpoint: {checkpoint} was trained on the genres {saved_labels}, but this run's "
            f"dataset has {labels}: resume with the dataset config the checkpoint's run was started with"
        )


def resolve_checkpoint(training_args: TrainingArguments) -> str | None:
    """`resume_from_checkpoint`: a checkpoint folder, or "last"/"true" for the newest complete one in
    output_dir (`run_folder.last_checkpoint`); refused with overwrite_output_dir."""
    requested = training_args.resume_from_checkpoint
    if requested is None or str(requested).lower() in ("false", "none", ""):
        return None
    if getattr(training_args, "overwrite_output_dir", False):
        # A resumed run continues a run; a replacing one starts afresh beside the run it replaces: both at
        # once would mix two runs in one folder.
        raise ValueError(
            f"resume_from_checkpoint={requested} continues a run and --overwrite_output_dir replaces the one in "
            f"{training_args.output_dir}: give one of them"
        )
    if str(requested).lower() in ("last", "true"):
        last = last_checkpoint(training_args.output_dir)
        if last is None:
            raise FileNotFoundError(
                f"resume_from_checkpoint={requested}: no complete checkpoint-* folder in {training_args.output_dir}"
                " (a replacing run's checkpoints start with its first save; the run it replaces is not continued)"
            )
        return str(last)
    if not os.path.isdir(requested):
        raise FileNotFoundError(f"resume_from_checkpoint: {requested} is not a checkpoint folder")
    return requested


__all__ = [
    "CheckpointDiskFullError",
    "CheckpointMismatchError",
    "check_checkpoint_matches",
    "folder_bytes",
    "load_checkpoint_weights",
    "resolve_checkpoint",
]
