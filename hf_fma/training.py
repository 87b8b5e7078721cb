"""One training run of AST, the CNN or the LSTM on FMA with `Trainer`, into a staging folder of its output_dir.

    >>> metrics, staging = train_and_evaluate(model_args, data_args, training_args)

`train_and_evaluate` takes the run's splits (`hf_fma.run_splits`), builds the feature extractor (fbank
statistics of the training split), the crop transforms, the collator and the model, trains with
`FmaTrainer`, keeps the best model by validation accuracy and evaluates it on validation and test (clip and
track level, see `hf_fma.evaluation`). With `task: multi_label` the targets are each track's `genres` as
multi-hot vectors over the training split's genres (`hf_fma.multi_label.GenreVocabulary`), the loss
BCE-with-logits, the best model the one of the best validation `map`, and the saved config carries
`multi_label_threshold`, chosen on the validation split before the test split is scored with it. The model
and its feature extractor (`save_pretrained`), `trainer_state.json`, `evaluation_{validation,test}.json`,
`run_config.yaml` and `all_results.json` go into the staging folder (`run_folder.staging_dir`), which the
caller publishes into output_dir once it has added its own files: `hf_fma.train.run_training` (the lock,
the run card, the publishing) is the entry point users call.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import datasets
import torch
from transformers import EarlyStoppingCallback, TrainerCallback, TrainingArguments, set_seed

from hf_fma.arguments import BASELINES, DataArguments, FmaTrainingArguments, ModelArguments, write_run_config
from hf_fma.augment import Mixup, SpecAugment, TrainingSeeds
from hf_fma.checkpoints import check_checkpoint_matches
from hf_fma.data import balanced_sample, is_synthesized_demo
from hf_fma.evaluation import evaluate_model, with_crop_transform
from hf_fma.evaluation_report import flat_metrics
from hf_fma.fbank import AUDIOSET_MEAN, AUDIOSET_STD, EMPTY_MEL_FILTER_WARNING
from hf_fma.fbank_stats import compute_fbank_stats
from hf_fma.geometry import crop_frames
from hf_fma.models import build_model
from hf_fma.models.feature_extraction_fma_ast import FmaASTFeatureExtractor
from hf_fma.multi_label import set_multi_label_config
from hf_fma.run_folder import (
    ALL_RESULTS_NAME,
    TRAINER_STATE_NAME,
    check_output_dir,
    evaluation_json_name,
    read_json,
    set_aside_checkpoints,
    staging_dir,
    write_json_atomic,
)
from hf_fma.trainer import (
    EpochOfTrainingSeeds,
    FmaTrainer,
    GenreMetrics,
    MultiLabelGenreMetrics,
    TrainSplitEvaluation,
    WholeStream,
    classification_loss,
)
from hf_fma.run_splits import RunSplits, label_source, prepare_splits, reads_fma, training_dataset
from hf_fma.transforms import AudioCropTransform, FbankCollator

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# The pieces of a run
# --------------------------------------------------------------------------------------------------


def build_feature_extractor(
    model_args: ModelArguments,
    data_args: DataArguments,
    train: datasets.Dataset | datasets.IterableDataset,
    seed: int = 0,
    num_workers: int = 0,
    checkpoint: str | None = None,
) -> FmaASTFeatureExtractor:
    """The run's feature extractor: `crop_seconds` of frames, the model's mel bins and pooling, and the
    fbank mean/std given, else those of the `checkpoint` resumed (saved in it with the model), else
    measured on the training split. Saved with the model, so inference sees exactly the training features."""
    mean, std = model_args.feature_mean, model_args.feature_std
    if (mean is None or std is None) and checkpoint is not None:
        saved = read_json(Path(checkpoint) / "preprocessor_config.json")
        mean, std = saved["mean"], saved["std"]
        logger.info(f"fbank mean {mean:.4f}, std {std:.4f} of {checkpoint}")
    if mean is None or std is None:
        if isinstance(train, datasets.IterableDataset):
            logger.warning("streaming: fbank statistics are not measured up front; using AudioSet's (see feature_mean)")
            mean, std = AUDIOSET_MEAN, AUDIOSET_STD
        else:
            stats = compute_fbank_stats(
                train,
                num_mel_bins=model_args.num_mel_bins,
                max_tracks=model_args.stats_max_tracks,
                num_workers=num_workers,
                seed=seed,
            )
            mean, std = stats["mean"], stats["std"]
            logger.info(f"fbank mean {mean:.4f}, std {std:.4f} over {stats['num_tracks']} training tracks")
    return FmaASTFeatureExtractor(
        num_mel_bins=model_args.num_mel_bins,
        max_length=crop_frames(data_args.crop_seconds),
        mean=mean,
        std=std,
        frequency_downscale=model_args.frequency_downscale,
        time_downscale=model_args.time_downscale,
        num_mfcc=model_args.num_mfcc,
        mfcc_delta_order=model_args.mfcc_delta_order,
    )


def build_collator(
    data_args: DataArguments, feature_extractor, num_labels: int, seeds: TrainingSeeds | None = None
) -> FbankCollator:
    """Batched fbank for every batch; SpecAugment and mixup on training batches when switched on, drawn
    from `seeds` when given."""
    spec_augment = None
    if data_args.freq_mask or data_args.time_mask:
        spec_augment = SpecAugment(freq_mask=data_args.freq_mask, time_mask=data_args.time_mask)
    mixup = Mixup(num_labels, prob=data_args.mixup_prob, alpha=data_args.mixup_alpha) if data_args.mixup_prob else None
    return FbankCollator(feature_extractor, spec_augment=spec_augment, mixup=mixup, seeds=seeds)


def build_classifier(
    model_args: ModelArguments,
    feature_extractor,
    label_names: Sequence[str],
    genre_parents: Mapping[str, str | None] | None = None,
):
    """AST (preset from scratch or checkpoint fine-tuned), the CNN or the LSTM, sized to the features. With
    `genre_parents` (a multi-label run's hierarchy, {} without one), a multi-label model: see
    `hf_fma.multi_label.set_multi_label_config`."""
    if model_args.model_family in BASELINES:
        _, build_baseline = BASELINES[model_args.model_family]
        model = build_baseline(model_args.model_name_or_path, feature_extractor, label_names)
    else:
        model = build_model(model_args.model_name_or_path, feature_extractor, label_names)
    if genre_parents is not None:
        set_multi_label_config(model.config, genre_parents)
    return model


def describe_process(training_args: TrainingArguments) -> str:
    """One line on where this process trains, as transformers' examples log it at start-up."""
    precision = "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "fp32"
    return (
        f"process {training_args.process_index} of {training_args.world_size}: device {training_args.device}, "
        f"precision {precision}, {torch.get_num_threads()} torch threads, "
        f"{training_args.dataloader_num_workers} DataLoader workers"
    )


def describe_hardware(training_args: TrainingArguments) -> str:
    """What the run trained on, for the model card: "2 x NVIDIA A100-SXM4-80GB" or "CPU, 2 cores"."""
    processes = training_args.world_size
    if training_args.device.type == "cuda":
        return f"{processes} x {torch.cuda.get_device_name(training_args.device)}"
    cores = os.cpu_count()
    return f"CPU, {cores} cores" + (f", {processes} processes" if processes > 1 else "")


# --------------------------------------------------------------------------------------------------
# The run, step by step
# --------------------------------------------------------------------------------------------------


def train_and_evaluate(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: FmaTrainingArguments,
    checkpoint: str | None = None,
    callbacks: Sequence[TrainerCallback] = (),
) -> tuple[dict[str, float], Path | None]:
    """Train from `checkpoint` (a resolved one, see `checkpoints.resolve_checkpoint`) or afresh, keep the
    best model by validation accuracy, evaluate it on validation and test, and stage the run's final files.

    Returns the flat metrics that all_results.json holds (train_*, eval_* of the best model, validation_*
    and test_* track/clip metrics) and, on the main process, the staging folder to publish (None on the
    others). Run it with output_dir locked (`run_folder.run_folder_lock`), as `hf_fma.train.run_training` does."""
    prepare_output_dir(training_args, resuming=checkpoint is not None)
    # Trainer pickles the whole arguments into every training_args.bin: the token must not be among them.
    # Pushing is the caller's (hf_fma.train reads the token first and keeps it in memory).
    training_args.hub_token = None
    if training_args.torch_num_threads:
        torch.set_num_threads(training_args.torch_num_threads)
    set_seed(training_args.seed)  # before the model is built: its initialisation is part of the run

    # On every process (warning: the level other processes log at, as in transformers' examples).
    logger.warning(describe_process(training_args))
    splits = prepare_splits(data_args, training_args)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=EMPTY_MEL_FILTER_WARNING)  # AST's standard set-up
        feature_extractor = build_feature_extractor(
            model_args, data_args, splits.labelled["train"], seed=training_args.seed,
            num_workers=training_args.dataloader_num_workers, checkpoint=checkpoint,
        )  # fmt: skip
    trainer = build_trainer(model_args, data_args, training_args, splits, feature_extractor, checkpoint, callbacks)
    metrics, staging = train_and_save(trainer, data_args, training_args, splits, checkpoint)
    metrics.update(evaluate_and_stage(trainer, feature_extractor, data_args, training_args, splits, staging))
    if not trainer.is_world_process_zero():
        return metrics, None
    # The measured fbank statistics go into the resolved config: a rerun then skips measuring them.
    measured = replace(model_args, feature_mean=feature_extractor.mean, feature_std=feature_extractor.std)
    write_run_config(staging, measured, data_args, training_args)
    write_json_atomic(staging / ALL_RESULTS_NAME, metrics)
    return metrics, staging


def prepare_output_dir(training_args: TrainingArguments, resuming: bool) -> None:
    """A run already in output_dir is replaced only when asked (--overwrite_output_dir), else continued."""
    check_output_dir(training_args.output_dir, training_args.overwrite_output_dir, resuming=resuming)
    if training_args.overwrite_output_dir and training_args.should_save:
        set_aside_checkpoints(training_args.output_dir)  # the replaced run's, until this one is finished


def build_trainer(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: FmaTrainingArguments,
    splits: RunSplits,
    feature_extractor: FmaASTFeatureExtractor,
    checkpoint: str | None,
    callbacks: Sequence[TrainerCallback],
) -> FmaTrainer:
    """The transforms, the collator, the model and the `FmaTrainer` that trains it, with its callbacks."""
    # Their random draws are keyed by seed, epoch and track (see TrainingSeeds): a resumed run repeats them.
    seeds = TrainingSeeds(training_args.data_seed if training_args.data_seed is not None else training_args.seed)
    center_crop = AudioCropTransform(
        data_args.crop_seconds, "center", sampling_rate=feature_extractor.sampling_rate, **label_source(splits.vocabulary)
    )
    train = training_dataset(data_args, splits.labelled["train"], feature_extractor, seeds, splits.vocabulary)
    validation = with_crop_transform(splits.labelled["validation"], center_crop)
    if data_args.streaming and training_args.world_size > 1:
        validation = WholeStream(validation)
    label_names = splits.label_names
    collator = build_collator(data_args, feature_extractor, len(label_names), seeds)
    if data_args.streaming:
        # accelerate shards a stream across processes itself (IterableDataset.shard or IterableDatasetShard,
        # as split_dataset_by_node would); dispatching would make process 0 decode every process's batches.
        training_args.accelerator_config.dispatch_batches = False

    # A checkpoint to resume must be of this model family and these genres: checked before any training.
    multi_label = splits.vocabulary is not None
    model = build_classifier(model_args, feature_extractor, label_names, splits.genre_parents if multi_label else None)
    if checkpoint is not None:
        check_checkpoint_matches(checkpoint, model)

    # compute_loss_func: with mixup, training labels are class probabilities (batch, num_labels);
    # ASTForAudioClassification's own loss flattens labels to class indices and fails on them (or, without
    # a problem_type, switches to BCE for good), so the loss is the cross-entropy that takes both forms
    # (BCE-with-logits for a multi-label model, whose config says so).
    # Trainer skips its own label smoother when given a compute_loss_func: the loss smooths the labels.
    trainer = FmaTrainer(
        model=model,
        args=training_args,
        data_collator=collator,
        train_dataset=train,
        eval_dataset=validation,
        processing_class=feature_extractor,
        compute_metrics=(MultiLabelGenreMetrics if multi_label else GenreMetrics)(label_names),
        compute_loss_func=classification_loss(model.config, label_smoothing=training_args.label_smoothing_factor),
        callbacks=[EpochOfTrainingSeeds(seeds), *callbacks],
    )
    if training_args.early_stopping_patience:
        trainer.add_callback(EarlyStoppingCallback(training_args.early_stopping_patience))
    if not data_args.streaming and data_args.train_eval_samples != 0:
        size = data_args.train_eval_samples or len(splits.labelled["validation"])
        train_sample = balanced_sample(splits.labelled["train"], size, seed=training_args.seed)
        train_split_evaluation = TrainSplitEvaluation(with_crop_transform(train_sample, center_crop))
        train_split_evaluation.trainer = trainer
        trainer.add_callback(train_split_evaluation)
    return trainer


def train_and_save(
    trainer: FmaTrainer,
    data_args: DataArguments,
    training_args: TrainingArguments,
    splits: RunSplits,
    checkpoint: str | None,
) -> tuple[dict[str, Any], Path]:
    """Train, then save the best model and its feature extractor in the staging folder, the same folder for
    every process (see hf_fma.run_folder): the training metrics and the staging folder."""
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    is_main = trainer.is_world_process_zero()
    staging = staging_dir(training_args.output_dir, empty=is_main)
    trainer.save_model(str(staging))
    metrics = dict(train_result.metrics)
    # What the results table and the model card need to know about the run.
    if not data_args.streaming:
        metrics["train_samples"] = len(splits.labelled["train"])
    metrics["hardware"] = describe_hardware(training_args)
    metrics["synthesized_demo_data"] = is_synthesized_demo(
        data_args.dataset_config_name, data_dir=data_args.data_dir, dataset_name=data_args.dataset_name
    )
    metrics["fma_data"] = reads_fma(data_args)
    trainer.log_metrics("train", metrics)
    # A split made from train (hub_datasets) keeps datasets' record of the split its rows were loaded from.
    # (A list, which log_metrics cannot print.)
    metrics["splits_made_from_train"] = [
        name for name in ("validation", "test") if str(splits.whole[name].split) == "train"
    ]
    if is_main:
        trainer.state.save_to_json(str(staging / TRAINER_STATE_NAME))
    return metrics, staging


def evaluate_and_stage(
    trainer: FmaTrainer,
    feature_extractor: FmaASTFeatureExtractor,
    data_args: DataArguments,
    training_args: TrainingArguments,
    splits: RunSplits,
    staging: Path,
) -> dict[str, float]:
    """Evaluate the best model: clip accuracy on validation centre crops (as during training), then clip-
    and track-level metrics from eval_crops crops per track on validation and test, each split's written to
    the staging folder as evaluation_{split}.json. Returns their flat metrics.

    A multi-label model has no threshold yet: the validation evaluation chooses it (best track-level
    micro-F1), it goes into the staged config.json, and the test split is scored at it, never choosing its own."""
    metrics = trainer.evaluate()
    trainer.log_metrics("eval", metrics)
    is_main = trainer.is_world_process_zero()
    config = trainer.model.config
    for name in ("validation", "test"):
        # None on validation (chosen there), the validation's choice on test.
        threshold = {"threshold": config.multi_label_threshold} if splits.vocabulary is not None else {}
        evaluation = evaluate_model(
            trainer.model,
            feature_extractor,
            splits.whole[name],
            n_crops=data_args.eval_crops,
            batch_size=training_args.per_device_eval_batch_size,
            num_workers=training_args.dataloader_num_workers,
            crop_seconds=data_args.crop_seconds,
            progress=not training_args.disable_tqdm and trainer.is_local_process_zero(),
            **threshold,
        )
        if threshold and name == "validation":
            config.multi_label_threshold = evaluation["track"]["threshold"]
            if is_main:
                config.save_pretrained(staging)  # the staged config.json, saved with the model, gains it
        split_metrics = flat_metrics(evaluation, prefix=name)
        metrics.update(split_metrics)
        if is_main:
            trainer.log_metrics(name, split_metrics)
            evaluation = {
                "dataset_name": data_args.dataset_name, "dataset_config": data_args.dataset_config_name, "split": name,
                **evaluation,
            }  # fmt: skip
            write_json_atomic(staging / evaluation_json_name(name), evaluation)
    return metrics


__all__ = [
    "build_classifier",
    "build_collator",
    "build_feature_extractor",
    "describe_hardware",
    "describe_process",
    "train_and_evaluate",
]
