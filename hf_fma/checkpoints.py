"""Loading a run's checkpoints back into its model: exactly the checkpoint's weights, or an error.

`Trainer` reloads its own checkpoints (`load_best_model_at_end`, `resume_from_checkpoint`) with a raw
`model.load_state_dict(state_dict, strict=False)` and only logs the keys that did not match. Checkpoints
are written by `save_pretrained`, which in transformers 5 stores some models under other key names than
the module tree has (AST: the Hub's `encoder.layer.N.attention.attention.key` for the module's
`layers.N.attention.k_proj`); only `from_pretrained` maps them back. So with transformers 5.x every AST
encoder weight was skipped, with a warning, when the best model was reloaded or a run resumed
(transformers issues #43701 and #48805). `FmaTrainer` reloads checkpoints through `from_pretrained`, the
path that reads what `save_pretrained` wrote on every transformers version (and still will once Trainer
itself is fixed), and turns any missing, unexpected or mismatched key into an error. It also keeps one
persistent-worker evaluation DataLoader per dataset, so that evaluating the training split during a run
reads the training split (see `FmaTrainer.get_eval_dataloader`).

    >>> trainer = FmaTrainer(model=model, args=training_args, ...)   # a drop-in for Trainer
    >>> check_checkpoint_matches("runs/ast-demo/checkpoint-42", model)   # before resuming: family and genres
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from torch.utils.data import DataLoader
from transformers import PreTrainedModel, Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from hf_fma.run_folder import follow_umask, last_checkpoint

logger = logging.getLogger(__name__)


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


class FmaTrainer(Trainer):
    """`Trainer` whose best model at the end and resumed model hold exactly their checkpoint's weights, and
    whose evaluations with persistent DataLoader workers each read their own dataset.

    Only the loading of model weights on a single device or DDP changes (the cases this package runs);
    DeepSpeed and FSDP keep Trainer's own loaders, whose key mismatches are errors too.
    """

    def __init__(self, *args, **kwargs):
        # id(dataset) -> (dataset, its evaluation DataLoader); the dataset is kept so that its id stays its own.
        self._persistent_eval_dataloaders: dict[int, tuple[object, DataLoader]] = {}
        super().__init__(*args, **kwargs)

    def get_eval_dataloader(self, eval_dataset=None) -> DataLoader:
        # With dataloader_persistent_workers, Trainer keeps each evaluation DataLoader (and its workers) for
        # the next evaluation, but transformers 5.x files it under the dataset's name only when eval_dataset is
        # a name, and under one key "eval" for every Dataset object: evaluate(other_dataset) then reads the
        # validation split again. That made the training-split curves (TrainSplitEvaluation's
        # `evaluate(train_sample, metric_key_prefix="train")`) the validation numbers. Each dataset object
        # gets its own persistent loader here, built by Trainer (column removal, sampler, accelerate) but
        # kept out of Trainer's cache, so it stays right whatever that cache does in later versions.
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        if isinstance(eval_dataset, str) or dataset is None or not self.args.dataloader_persistent_workers:
            return super().get_eval_dataloader(eval_dataset)
        if id(dataset) not in self._persistent_eval_dataloaders:
            dataloader = self._get_dataloader(
                dataset=dataset,
                description="Evaluation",
                batch_size=self.args.eval_batch_size,
                sampler_fn=self._get_eval_sampler,
            )
            self._persistent_eval_dataloaders[id(dataset)] = (dataset, dataloader)
        return self._persistent_eval_dataloaders[id(dataset)][1]

    def _checkpoint_bytes(self) -> tuple[int, str]:
        """About what the next checkpoint takes on disk: the last one's size, else (the first) the model's
        weights and Adam's two moments of each."""
        last = last_checkpoint(self.args.output_dir)
        if last is not None:
            return folder_bytes(last), f"the size of {last.name}"
        weights = sum(tensor.numel() * tensor.element_size() for tensor in self.model.state_dict().values())
        return 3 * weights, "the model's weights and its optimizer state"

    def _disk_full_error(self, free: int, needed: int, measure: str) -> CheckpointDiskFullError:
        return CheckpointDiskFullError(
            f"output_dir {self.args.output_dir}: {free / 1e6:.2f} MB free, the checkpoint of step "
            f"{self.state.global_step} needs about {needed / 1e6:.2f} MB ({measure}); free at least "
            f"{(needed - free) / 1e6:.2f} MB there and continue with --resume_from_checkpoint last (it resumes "
            "from the last complete checkpoint)"
        )

    def _save_checkpoint(self, model, trial) -> None:
        # A checkpoint cut short by a full disk fails deep in torch ("basic_ios::clear: iostream error"):
        # the free space is checked first, against the last checkpoint's size, and a failure that comes
        # with a full disk anyway is reported as such. An incomplete checkpoint is never resumed from
        # (run_folder.last_checkpoint), so the run continues from the last complete one.
        if not self.args.should_save:
            return super()._save_checkpoint(model, trial)
        needed, measure = self._checkpoint_bytes()
        free = shutil.disk_usage(self.args.output_dir).free
        if free < needed:
            raise self._disk_full_error(free, needed, measure)
        try:
            super()._save_checkpoint(model, trial)
        except (OSError, RuntimeError) as error:
            free = shutil.disk_usage(self.args.output_dir).free
            if free >= needed:
                raise
            raise self._disk_full_error(free, needed, measure) from error
        follow_umask(Path(self.args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")

    def _loads_with_from_pretrained(self, model) -> bool:
        return (
            (model is None or model is self.model)
            and isinstance(self.model, PreTrainedModel)
            and not (self.is_deepspeed_enabled or self.is_fsdp_enabled)
        )

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        if not self._loads_with_from_pretrained(model):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        logger.info(f"Loading model from {resume_from_checkpoint}")
        load_checkpoint_weights(self.model, resume_from_checkpoint)

    def _load_best_model(self):
        if not self._loads_with_from_pretrained(None):
            return super()._load_best_model()
        logger.info(f"Loading best model from {self.state.best_model_checkpoint} (score: {self.state.best_metric})")
        load_checkpoint_weights(self.model, self.state.best_model_checkpoint)

    def _issue_warnings_after_load(self, load_result):
        # Trainer's other loaders report key mismatches here, as a warning; a checkpoint of this run has none.
        tied_only = set(load_result.missing_keys) == set(self.model._keys_to_ignore_on_save or ())
        if load_result.unexpected_keys or (load_result.missing_keys and not tied_only):
            raise CheckpointMismatchError(
                f"the checkpoint does not fit the model: missing keys {list(load_result.missing_keys)}, "
                f"unexpected keys {list(load_result.unexpected_keys)}"
            )
        super()._issue_warnings_after_load(load_result)


__all__ = [
    "CheckpointDiskFullError",
    "CheckpointMismatchError",
    "FmaTrainer",
    "check_checkpoint_matches",
    "folder_bytes",
    "load_checkpoint_weights",
]
