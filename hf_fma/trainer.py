"""The `Trainer` of a run and what it is given: `FmaTrainer`, the loss, the metrics and the callbacks.

    >>> trainer = FmaTrainer(
    ...     model=model, args=training_args, data_collator=collator, train_dataset=train, eval_dataset=validation,
    ...     compute_metrics=GenreMetrics(label_names), compute_loss_func=classification_loss(model.config),
    ...     callbacks=[EpochOfTrainingSeeds(seeds)],
    ... )

`FmaTrainer` reloads the best model at the end and a resumed checkpoint with exactly its weights
(`hf_fma.checkpoints.load_checkpoint_weights`: Trainer's own `load_state_dict(strict=False)` only logs the
keys it skips, and skips every AST encoder weight that transformers 5 saves under the Hub's names), names a
full disk before a checkpoint is cut short, and keeps one persistent-worker evaluation DataLoader per
dataset, so that evaluating the training split during a run reads the training split.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from transformers import EvalPrediction, PretrainedConfig, PreTrainedModel, Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from hf_fma.augment import TrainingSeeds
from hf_fma.checkpoints import CheckpointDiskFullError, CheckpointMismatchError, folder_bytes, load_checkpoint_weights
from hf_fma.evaluation import load_genre_metric
from hf_fma.multi_label_evaluation import load_multi_label_metric
from hf_fma.multi_label import is_multi_label
from hf_fma.run_folder import follow_umask, last_checkpoint

logger = logging.getLogger(__name__)


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
        # validation split again, and the training-split curves (TrainSplitEvaluation's
        # `evaluate(train_sample, metric_key_prefix="train")`) would be the validation numbers. Each dataset object
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


def cross_entropy_loss(
    outputs, labels: torch.Tensor, num_items_in_batch=None, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Cross-entropy for `Trainer(compute_loss_func=...)`, with class indices (batch,) or the class
    probabilities (batch, num_labels) that Mixup produces. Normalised by `num_items_in_batch` when the
    Trainer passes it (gradient accumulation), which counts probability labels once per class.

    `label_smoothing` is `TrainingArguments.label_smoothing_factor` (bind it with functools.partial):
    Trainer applies its own label smoother only when no `compute_loss_func` is given. Targets become
    (1 - label_smoothing) * target + label_smoothing / num_labels, as transformers' `LabelSmoother` does,
    for mixed labels too."""
    logits = _logits(outputs)
    # F.cross_entropy takes both forms; ignore_index applies to class indices only.
    total = F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum", label_smoothing=label_smoothing)
    if labels.dim() == 2:  # probabilities
        count = len(labels) if num_items_in_batch is None else num_items_in_batch / labels.shape[-1]
    else:
        count = (labels != -100).sum() if num_items_in_batch is None else num_items_in_batch
    return total / count


def binary_cross_entropy_loss(
    outputs, labels: torch.Tensor, num_items_in_batch=None, label_smoothing: float = 0.0
) -> torch.Tensor:
    """BCE-with-logits of a multi-label model for `Trainer(compute_loss_func=...)`: one sigmoid per genre
    against multi-hot (or mixed) targets (batch, num_labels), averaged over every (example, genre), or
    normalised by `num_items_in_batch`, which Trainer counts the same way (gradient accumulation).

    `label_smoothing` (TrainingArguments.label_smoothing_factor) pulls each target towards 1/2, the
    uninformed guess of a two-way decision: y * (1 - label_smoothing) + label_smoothing / 2."""
    targets = labels.float() * (1 - label_smoothing) + label_smoothing / 2
    total = F.binary_cross_entropy_with_logits(_logits(outputs).float(), targets, reduction="sum")
    return total / (labels.numel() if num_items_in_batch is None else num_items_in_batch)


def classification_loss(config: PretrainedConfig, label_smoothing: float = 0.0) -> Callable[..., torch.Tensor]:
    """The `compute_loss_func` of a model by its config's problem_type: BCE-with-logits for a multi-label
    model, else the cross-entropy that takes class indices and mixup's probabilities alike."""
    loss = binary_cross_entropy_loss if is_multi_label(config) else cross_entropy_loss
    return partial(loss, label_smoothing=label_smoothing)


def _logits(outputs) -> torch.Tensor:
    return outputs["logits"] if isinstance(outputs, Mapping) else outputs[0]


def _prediction_logits(prediction: EvalPrediction) -> np.ndarray:
    return prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions


class GenreMetrics:
    """Trainer `compute_metrics`: clip accuracy and macro-F1 through the package's `evaluate` module."""

    def __init__(self, label_names: Sequence[str]):
        self.label_names = list(label_names)
        self.metric = load_genre_metric()

    def __call__(self, prediction: EvalPrediction) -> dict[str, float]:
        scores = self.metric.compute(
            predictions=np.argmax(_prediction_logits(prediction), axis=-1),
            references=prediction.label_ids,
            label_names=self.label_names,
        )
        return {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]}


class MultiLabelGenreMetrics:
    """Trainer `compute_metrics` of a multi-label model: clip `map`, the mean over genres of their average
    precision (genres without a positive clip left out), through the package's `multi_label_genres` module.
    AP needs only the order of the scores, so the logits are scored as they are."""

    def __init__(self, label_names: Sequence[str]):
        self.label_names = list(label_names)
        self.metric = load_multi_label_metric()

    def __call__(self, prediction: EvalPrediction) -> dict[str, float]:
        scores = self.metric.compute(
            predictions=_prediction_logits(prediction),
            references=np.asarray(prediction.label_ids).round().astype(np.int64),
            label_names=self.label_names,
            threshold=0.0,  # F1 is not reported here: a fixed threshold spares the module its search
        )
        return {"map": scores["mean_average_precision"]}


class EpochOfTrainingSeeds(TrainerCallback):
    """Tells the training transforms' `TrainingSeeds` which epoch begins, from Trainer's state: after a
    resume that is the checkpoint's epoch, so the draws continue as in the uninterrupted run."""

    def __init__(self, seeds: TrainingSeeds):
        self.seeds = seeds

    def on_epoch_begin(self, args, state, control, **kwargs):
        # state.epoch is fractional after a mid-epoch resume (4.17 at step 25 of 6-step epochs): its epoch is 4.
        self.seeds.set_epoch(math.floor((state.epoch or 0) + 1e-6))


class TrainSplitEvaluation(TrainerCallback):
    """After each validation, the same evaluation on a fixed sample of the training split, logged as
    `train_accuracy` / `train_loss`: the train-vs-validation learning curves of the study's figures.

    Trainer only logs the running training loss, on randomly cropped (and maybe augmented) batches while
    the weights change; this evaluates the model as it stands, exactly as validation does, through
    Trainer's own `evaluate(metric_key_prefix="train")`, so the curves compare like with like."""

    def __init__(self, dataset: datasets.Dataset):
        self.dataset = dataset
        self.trainer: Trainer | None = None  # set once the Trainer exists: it evaluates
        self._evaluating = False

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        # trainer.evaluate fires on_evaluate again: the guard keeps that from recursing; and only
        # validation (eval_*) runs, not e.g. the test split, are followed by a training-split one.
        if self._evaluating or self.trainer is None or not metrics or "eval_loss" not in metrics:
            return
        self._evaluating = True
        try:
            self.trainer.evaluate(self.dataset, metric_key_prefix="train")
        finally:
            self._evaluating = False

    def on_train_end(self, args, state, control, **kwargs):
        # The curves end with training: run_training's final validation of the best model is no point of
        # them, and a training-split evaluation after it would reach the trackers (TensorBoard) as one.
        self.trainer = None


class WholeStream(torch.utils.data.IterableDataset):
    """A stream that accelerate does not split by shard: Trainer's evaluation gathers equal batches from every
    process, which unequal shards cannot give, so each process reads the whole (validation) stream and
    accelerate's IterableDatasetShard hands it its slice of each batch. DataLoader workers still share the
    stream's shards (datasets splits them per worker inside `iter`)."""

    def __init__(self, dataset: datasets.IterableDataset):
        self.dataset = dataset

    def __iter__(self):
        return iter(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)


__all__ = [
    "EpochOfTrainingSeeds",
    "FmaTrainer",
    "GenreMetrics",
    "MultiLabelGenreMetrics",
    "TrainSplitEvaluation",
    "WholeStream",
    "binary_cross_entropy_loss",
    "classification_loss",
    "cross_entropy_loss",
]
