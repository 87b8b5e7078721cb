"""Training AST and the CNN on FMA with `Trainer`: argument dataclasses, config files, and the run itself.

The recipes (`recipes/train_ast.py`, `recipes/train_cnn.py`) are thin wrappers over this module:

    python recipes/train_ast.py --config recipes/configs/ast_demo.yaml --data_dir demo_data
    accelerate launch --config_file recipes/accelerate/cpu.yaml recipes/train_ast.py \\
        --config recipes/configs/ast_demo.yaml --data_dir demo_data
    torchrun --nproc_per_node 8 recipes/train_ast.py --config recipes/configs/ast_study_small.yaml

and so is the sample-size study, which calls `run_training` in a loop:

    >>> model_args, data_args, training_args = parse_arguments(["--config", "recipes/configs/ast_demo.yaml"])
    >>> metrics = run_training(model_args, data_args, training_args)
    >>> metrics["test_track_accuracy"]

A run's output folder holds the best model (by validation accuracy) and its feature extractor
(`save_pretrained`, loadable by `pipeline("audio-classification", model=folder)`), checkpoints,
`trainer_state.json`, `all_results.json`, `evaluation_{validation,test}.json` (clip- and track-level
metrics, see `hf_fma.evaluation`) and `run_config.yaml`, the resolved arguments, which `--config` reads
back to repeat the run.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
import transformers
import yaml
from datasets import Audio, load_dataset
from transformers import (
    EarlyStoppingCallback,
    EvalPrediction,
    HfArgumentParser,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint

from hf_fma.evaluation import (
    FRAMES_PER_SECOND,
    evaluate_model,
    labelled_tracks,
    load_genre_metric,
    with_crop_transform,
)
from hf_fma.features import (
    AUDIOSET_MEAN,
    AUDIOSET_STD,
    AudioCropTransform,
    FbankCollator,
    Mixup,
    SpecAugment,
    compute_fbank_stats,
    cross_entropy_loss,
)
from hf_fma.hf_fma import Fma
from hf_fma.models import AST_PRESETS, CNN_PRESETS, build_cnn, build_model
from hf_fma.models.feature_extraction_fma_ast import FmaASTFeatureExtractor

logger = logging.getLogger(__name__)

DATASET_SCRIPT = str(Path(__file__).resolve().parent)  # this package's folder holds the loading script
DATASET_CONFIGS = tuple(config.name for config in Fma.BUILDER_CONFIGS)
MODEL_FAMILIES = ("ast", "cnn")
RUN_CONFIG_NAME = "run_config.yaml"


@dataclass
class ModelArguments:
    """Which model to train and the features it sees."""

    model_family: str = field(
        default="ast",
        metadata={"help": "ast (recipes/train_ast.py) or cnn (recipes/train_cnn.py); the recipe sets it."},
    )
    model_name_or_path: str = field(
        default="tiny",
        metadata={
            "help": f"AST: a preset ({', '.join(AST_PRESETS)}; 'audioset' fine-tunes the AudioSet checkpoint) or "
            f"an AST checkpoint (Hub name or folder) to fine-tune. CNN: a preset ({', '.join(CNN_PRESETS)})."
        },
    )
    num_mel_bins: int = field(default=128, metadata={"help": "Mel bins of the fbank (AST: 128)."})
    frequency_downscale: int = field(default=1, metadata={"help": "Mel bins average-pooled into one (study: 4)."})
    time_downscale: int = field(default=1, metadata={"help": "10 ms frames average-pooled into one (study: 4)."})
    feature_mean: float | None = field(
        default=None,
        metadata={
            "help": "Fbank mean for normalisation; with feature_std unset, both are measured on up to "
            "stats_max_tracks training tracks, as AST normalises with the dataset's own statistics "
            "(`hf-fma stats` prints them once for a config file)."
        },
    )
    feature_std: float | None = field(default=None, metadata={"help": "Fbank standard deviation (see feature_mean)."})
    stats_max_tracks: int = field(default=500, metadata={"help": "Training tracks measured for feature_mean/std."})


@dataclass
class DataArguments:
    """Which FMA data, and how it becomes model inputs."""

    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "Folder holding the FMA archives (fma_metadata.zip, fma_small.zip, ...) or their extracted "
            "folders, e.g. the one `hf-fma make-demo DIR` writes. Unset: the builder downloads them."
        },
    )
    dataset_config_name: str = field(default="small", metadata={"help": f"One of {', '.join(DATASET_CONFIGS)}."})
    dataset_script: str = field(
        default=DATASET_SCRIPT, metadata={"help": "The hf_fma loading script's folder (default: the package's)."}
    )
    streaming: bool = field(
        default=False,
        metadata={"help": "Read the archives as streams instead of extracting them (large, full); needs max_steps."},
    )
    preprocessing_num_workers: int | None = field(
        default=None,
        metadata={"help": "Processes preparing the dataset cache (load_dataset's num_proc); not with streaming."},
    )
    shuffle_buffer_size: int = field(
        default=1000,
        metadata={"help": "Streaming: training examples held to shuffle from (each with its MP3 bytes, ~1 MB)."},
    )
    crop_seconds: float = field(default=5.0, metadata={"help": "Training and evaluation crop length (the study: 5 s)."})
    eval_crops: int = field(
        default=6, metadata={"help": "Evenly spaced crops per track for track-level metrics (logits averaged)."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Train on this many tracks, balanced per genre (the sample-size study)."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Validate and test on at most this many tracks, balanced per genre."}
    )
    train_eval_samples: int | None = field(
        default=None,
        metadata={
            "help": "Training tracks (balanced, centre crops) evaluated after each validation, logged as "
            "train_accuracy/train_loss: the training curves of `hf-fma plot curves`. Default: as many as the "
            "validation split has; 0 turns it off. Not with streaming."
        },
    )
    freq_mask: int = field(default=0, metadata={"help": "SpecAugment frequency mask in mel bins (0: off; AST: 24-48)."})
    time_mask: int = field(default=0, metadata={"help": "SpecAugment time mask in frames (0: off; AST: a fifth of them)."})
    mixup_prob: float = field(default=0.0, metadata={"help": "Share of training examples mixed (0: off; AST: 0.5)."})
    mixup_alpha: float = field(default=10.0, metadata={"help": "Mixup's Beta(alpha, alpha) (AST: 10)."})


@dataclass
class FmaTrainingArguments(TrainingArguments):
    """`TrainingArguments` with this task's defaults: evaluate and save every epoch, keep the best model by
    validation accuracy, leave the audio column to the transforms."""

    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate on the validation split."})
    save_strategy: str = field(default="epoch", metadata={"help": "When to save a checkpoint."})
    logging_strategy: str = field(default="epoch", metadata={"help": "When to log the training loss."})
    load_best_model_at_end: bool = field(default=True, metadata={"help": "Keep the best checkpoint, not the last."})
    metric_for_best_model: str = field(default="accuracy", metadata={"help": "Validation metric of the best model."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept (the best one always)."})
    # The transforms read the audio and genre columns, which the model's forward does not take.
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep False: the transforms need the audio."})
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "Stop after this many evaluations without a better validation accuracy."}
    )
    torch_num_threads: int | None = field(
        default=None,
        metadata={
            "help": "CPU threads of the training process (torch.set_num_threads); unset: torch's default, all "
            "cores. On a CPU shared with DataLoader workers, 1 thread per core left to the model avoids threads "
            "stalling each other (the demo: several times faster with 1)."
        },
    )


ARGUMENT_CLASSES = (ModelArguments, DataArguments, FmaTrainingArguments)


# --------------------------------------------------------------------------------------------------
# Arguments: a YAML/JSON config file, overridden by the command line
# --------------------------------------------------------------------------------------------------


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The flat {argument: value} mapping of a YAML or JSON config file (as `run_config.yaml` is written)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    with open(path, encoding="utf-8") as f:
        values = json.load(f) if path.suffix == ".json" else yaml.safe_load(f)
    if not isinstance(values, dict):
        raise ValueError(f"config file {path} must map argument names to values, got a {type(values).__name__}")
    return values


def parse_arguments(
    argv: Sequence[str] | None = None, defaults: Mapping[str, Any] | None = None
) -> tuple[ModelArguments, DataArguments, FmaTrainingArguments]:
    """The three argument dataclasses from `--config FILE` (YAML or JSON, or a lone FILE argument as in
    transformers' examples) and command-line flags, which override the file. `defaults` (a recipe's) sit
    under both.

    The file's values become the parser's defaults, so `HfArgumentParser` still types and checks every
    flag; keys that are no argument fail with the list of unknown ones.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml", ".json")):
        argv = ["--config", argv[0]]
    parser = HfArgumentParser(ARGUMENT_CLASSES)
    parser.add_argument("--config", help="YAML or JSON file of arguments; command-line flags override it")
    known = {action.dest for action in parser._actions}

    values = dict(defaults or {})
    config_path = _config_path(argv)
    if config_path is not None:
        values.update(read_config_file(config_path))
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"{config_path or 'defaults'}: unknown argument(s) {', '.join(unknown)}; see "
            "`python recipes/train_ast.py --help` for the valid names"
        )
    parser.set_defaults(**values)
    *arguments, _config_flag = parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    model_args, data_args, training_args = arguments
    return model_args, data_args, training_args


def _config_path(argv: Sequence[str]) -> str | None:
    """The --config value; the last one wins, as for any flag given twice."""
    path = None
    for index, item in enumerate(argv):
        if item == "--config" and index + 1 < len(argv):
            path = argv[index + 1]
        elif item.startswith("--config="):
            path = item.split("=", 1)[1]
    return path


def resolved_config(
    model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments
) -> dict[str, Any]:
    """Every argument of a run, flat, in the form `--config` reads. Left out: tokens, and
    resume_from_checkpoint, which says how this invocation started, not what the run is."""
    config = {**asdict(model_args), **asdict(data_args)}
    training = training_args.to_dict()
    for item in fields(training_args):
        left_out = item.name.endswith("token") or item.name == "resume_from_checkpoint"
        if item.init and item.name in training and not left_out:
            config[item.name] = training[item.name]
    return config


def write_run_config(
    output_dir: str | os.PathLike,
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: TrainingArguments,
) -> Path:
    """Write `run_config.yaml`: the resolved arguments, to read back with `--config` and repeat the run."""
    path = Path(output_dir) / RUN_CONFIG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    config = resolved_config(model_args, data_args, training_args)
    path.write_text(
        "# Resolved arguments of this run; repeat it with: python recipes/train_"
        f"{model_args.model_family}.py --config {path}\n" + yaml.safe_dump(config, sort_keys=False)
    )
    return path


# TrainingArguments' schedules, each of which can be "epoch".
STRATEGIES = ("eval_strategy", "save_strategy", "logging_strategy")


def check_arguments(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments) -> None:
    """Fail at start, before any data is read, on a wrong name or a missing folder."""
    if data_args.dataset_config_name not in DATASET_CONFIGS:
        raise ValueError(
            f"unknown dataset config {data_args.dataset_config_name!r}; valid configs: {', '.join(DATASET_CONFIGS)}"
        )
    if data_args.data_dir is not None and not os.path.isdir(os.path.expanduser(data_args.data_dir)):
        raise FileNotFoundError(
            f"data_dir {data_args.data_dir!r} is not a folder: give the folder holding fma_metadata.zip and "
            f"fma_{data_args.dataset_config_name}.zip (or `hf-fma make-demo DIR` for the offline demo)"
        )
    if model_args.model_family not in MODEL_FAMILIES:
        raise ValueError(f"unknown model_family {model_args.model_family!r}; valid: {', '.join(MODEL_FAMILIES)}")
    name = model_args.model_name_or_path
    if model_args.model_family == "cnn" and name not in CNN_PRESETS:
        raise ValueError(f"unknown CNN preset {name!r}; valid presets: {', '.join(CNN_PRESETS)}")
    # A checkpoint is a folder or a Hub name ("owner/name"); any other bare word must be a preset.
    if model_args.model_family == "ast" and name not in AST_PRESETS and "/" not in name and not os.path.isdir(name):
        raise ValueError(
            f"unknown AST preset {name!r}; valid presets: {', '.join(AST_PRESETS)} (or an AST checkpoint folder "
            "or Hub name to fine-tune)"
        )
    if data_args.eval_crops < 1 or data_args.crop_seconds <= 0:
        raise ValueError(
            f"eval_crops must be >= 1 and crop_seconds > 0, got {data_args.eval_crops} and {data_args.crop_seconds}"
        )
    launched = int(os.environ.get("WORLD_SIZE", 1))
    if launched > training_args.world_size:
        # Otherwise every process trains alone on all the data and they overwrite each other's output.
        raise ValueError(
            f"launched {launched} processes but transformers runs {training_args.world_size}: without a GPU, "
            "add --use_cpu so that they train together (DDP over gloo)"
        )
    if data_args.streaming:
        if training_args.max_steps <= 0:
            raise ValueError("a streamed dataset has no length: set max_steps (e.g. epochs x tracks / global batch)")
        if data_args.max_train_samples is not None:
            raise ValueError("max_train_samples balances genres over the whole split: it needs streaming=False")
        epochal = [name for name in STRATEGIES if getattr(training_args, name) == "epoch"]
        if training_args.world_size > 1 and epochal:
            raise ValueError(
                "processes streaming their own shards reach the ends of their shares at different steps, so a "
                f"stream has no common epoch: set {' and '.join(f'--{name} steps' for name in epochal)}"
            )
    if training_args.early_stopping_patience is not None and not training_args.load_best_model_at_end:
        raise ValueError("early_stopping_patience needs load_best_model_at_end=True (and a metric_for_best_model)")


def setup_logging(training_args: TrainingArguments) -> None:
    """Logs as transformers' examples set them: info on the main process, warnings on the others."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    if training_args.should_log:
        transformers.utils.logging.set_verbosity_info()
    log_level = training_args.get_process_log_level()
    logging.getLogger("hf_fma").setLevel(log_level)  # this module's logger and the dataset builder's
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


# --------------------------------------------------------------------------------------------------
# Data and model pieces of a run
# --------------------------------------------------------------------------------------------------


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


def load_splits(data_args: DataArguments) -> dict[str, datasets.Dataset | datasets.IterableDataset]:
    """train/validation/test through the hf_fma loading script, audio left undecoded ({"path", "bytes"}:
    the transforms decode only their crops)."""
    # datasets resolves a relative data_dir against the loading script's folder, not the working directory.
    data_dir = None if data_args.data_dir is None else os.path.abspath(os.path.expanduser(data_args.data_dir))
    splits = load_dataset(
        data_args.dataset_script,
        data_args.dataset_config_name,
        data_dir=data_dir,
        streaming=data_args.streaming,
        num_proc=None if data_args.streaming else data_args.preprocessing_num_workers,
        trust_remote_code=True,
    )
    return {name: splits[name].cast_column("audio", Audio(decode=False)) for name in ("train", "validation", "test")}


def balanced_sample(
    dataset: datasets.Dataset, num_samples: int, seed: int = 0, label_column: str = "genre"
) -> datasets.Dataset:
    """`num_samples` rows with the genres as equal as the data allows (the first genres get one more when
    it does not divide), drawn at random by `seed`, kept in the dataset's order. A genre with fewer rows
    than its share gives all it has (logged)."""
    if num_samples >= len(dataset):
        return dataset
    if num_samples < 1:
        raise ValueError(f"max samples must be >= 1, got {num_samples}")
    labels = np.asarray(dataset[label_column])
    genres = np.unique(labels)
    base, extra = divmod(num_samples, len(genres))
    rng = np.random.default_rng(seed)
    chosen = []
    names = dataset.features[label_column].names
    for position, genre in enumerate(genres):
        rows = np.flatnonzero(labels == genre)
        wanted = base + (position < extra)
        if wanted > len(rows):
            logger.warning(f"{names[genre]} has {len(rows)} tracks, fewer than its share of {wanted}: taking all")
        chosen.append(rng.permutation(rows)[:wanted])
    return dataset.select(np.sort(np.concatenate(chosen)))


def build_feature_extractor(
    model_args: ModelArguments,
    data_args: DataArguments,
    train: datasets.Dataset | datasets.IterableDataset,
    seed: int = 0,
    num_workers: int = 0,
) -> FmaASTFeatureExtractor:
    """The run's feature extractor: `crop_seconds` of frames, the model's mel bins and pooling, and the
    fbank mean/std given or measured on the training split. Saved with the model, so inference sees
    exactly the training features."""
    mean, std = model_args.feature_mean, model_args.feature_std
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
        max_length=round(data_args.crop_seconds * FRAMES_PER_SECOND),
        mean=mean,
        std=std,
        frequency_downscale=model_args.frequency_downscale,
        time_downscale=model_args.time_downscale,
    )


def build_collator(data_args: DataArguments, feature_extractor, num_labels: int) -> FbankCollator:
    """Batched fbank for every batch; SpecAugment and mixup on training batches when switched on."""
    spec_augment = None
    if data_args.freq_mask or data_args.time_mask:
        spec_augment = SpecAugment(freq_mask=data_args.freq_mask, time_mask=data_args.time_mask)
    mixup = Mixup(num_labels, prob=data_args.mixup_prob, alpha=data_args.mixup_alpha) if data_args.mixup_prob else None
    return FbankCollator(feature_extractor, spec_augment=spec_augment, mixup=mixup)


def build_classifier(model_args: ModelArguments, feature_extractor, label_names: Sequence[str]):
    """AST (preset from scratch or checkpoint fine-tuned) or the CNN, sized to the features."""
    if model_args.model_family == "cnn":
        return build_cnn(model_args.model_name_or_path, feature_extractor, label_names)
    return build_model(model_args.model_name_or_path, feature_extractor, label_names)


class GenreMetrics:
    """Trainer `compute_metrics`: clip accuracy and macro-F1 through the package's `evaluate` module."""

    def __init__(self, label_names: Sequence[str]):
        self.label_names = list(label_names)
        self.metric = load_genre_metric()

    def __call__(self, prediction: EvalPrediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        scores = self.metric.compute(
            predictions=np.argmax(logits, axis=-1), references=prediction.label_ids, label_names=self.label_names
        )
        return {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]}


def resolve_checkpoint(training_args: TrainingArguments) -> str | None:
    """`resume_from_checkpoint`: a checkpoint folder, or "last"/"true" for the newest one in output_dir."""
    requested = training_args.resume_from_checkpoint
    if requested is None or str(requested).lower() in ("false", "none", ""):
        return None
    if str(requested).lower() in ("last", "true"):
        last = get_last_checkpoint(training_args.output_dir) if os.path.isdir(training_args.output_dir) else None
        if last is None:
            raise FileNotFoundError(
                f"resume_from_checkpoint={requested}: no checkpoint-* folder in {training_args.output_dir}"
            )
        return last
    if not os.path.isdir(requested):
        raise FileNotFoundError(f"resume_from_checkpoint: {requested} is not a checkpoint folder")
    return requested


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


def describe_hardware(training_args: TrainingArguments) -> str:
    """What the run trained on, for the model card: "2 x NVIDIA A100-SXM4-80GB" or "CPU, 2 cores"."""
    processes = training_args.world_size
    if training_args.device.type == "cuda":
        return f"{processes} x {torch.cuda.get_device_name(training_args.device)}"
    cores = os.cpu_count()
    return f"CPU, {cores} cores" + (f", {processes} processes" if processes > 1 else "")


def summary_line(metrics: Mapping[str, Any], output_dir: str | os.PathLike) -> str:
    """The last line a recipe prints: the test metrics and where the model is."""
    return (
        f"test: track accuracy {metrics['test_track_accuracy']:.4f}, macro-F1 {metrics['test_track_macro_f1']:.4f} "
        f"({metrics['test_tracks']} tracks x {metrics['test_crops']} crops); clip accuracy "
        f"{metrics['test_clip_accuracy']:.4f}; validation track accuracy {metrics['validation_track_accuracy']:.4f}; "
        f"model in {output_dir}"
    )


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------


def run_training(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: FmaTrainingArguments,
    callbacks: Sequence[TrainerCallback] = (),
) -> dict[str, float]:
    """Train, keep the best model by validation accuracy, evaluate it on validation and test (clip and
    track level), save everything into `training_args.output_dir`. Returns the flat metrics written to
    all_results.json (train_*, eval_* of the best model, validation_* and test_* track/clip metrics)."""
    check_arguments(model_args, data_args, training_args)
    checkpoint = resolve_checkpoint(training_args)  # a missing checkpoint fails here, before the data is read
    if training_args.torch_num_threads:
        torch.set_num_threads(training_args.torch_num_threads)
    set_seed(training_args.seed)  # before the model is built: its initialisation is part of the run

    # Load splits: the hf_fma loading script, audio cast to Audio(decode=False). Trainer gets the tracks
    # with a genre (large and full have some without); evaluate_model picks them from whole splits itself.
    # The main process prepares the Arrow caches; the others then read them.
    with training_args.main_process_first(desc="loading FMA"):
        splits = load_splits(data_args)
        labelled = {name: labelled_tracks(split) for name, split in splits.items()}
    label_names = splits["train"].features["genre"].names
    if data_args.max_train_samples is not None:
        seed = training_args.data_seed or training_args.seed
        labelled["train"] = balanced_sample(labelled["train"], data_args.max_train_samples, seed=seed)
    if data_args.streaming:
        # A stream comes in archive order; Trainer reshuffles it each epoch through set_epoch.
        labelled["train"] = labelled["train"].shuffle(training_args.seed, buffer_size=data_args.shuffle_buffer_size)
    if data_args.max_eval_samples is not None and not data_args.streaming:
        for name in ("validation", "test"):
            sample = balanced_sample(labelled[name], data_args.max_eval_samples, seed=training_args.seed)
            splits[name] = labelled[name] = sample

    # Features: a crop_seconds feature extractor normalised with the training split's statistics.
    workers = training_args.dataloader_num_workers
    feature_extractor = build_feature_extractor(
        model_args, data_args, labelled["train"], seed=training_args.seed, num_workers=workers
    )
    crop_seconds = data_args.crop_seconds

    # Transforms: decode a random crop per track for training, the centre crop for validation; the
    # collator computes the fbank of whole batches in the DataLoader workers.
    random_crop = AudioCropTransform(crop_seconds, "random", sampling_rate=feature_extractor.sampling_rate)
    center_crop = AudioCropTransform(crop_seconds, "center", sampling_rate=feature_extractor.sampling_rate)
    train = with_crop_transform(labelled["train"], random_crop)
    validation = with_crop_transform(labelled["validation"], center_crop)
    if data_args.streaming and training_args.world_size > 1:
        validation = WholeStream(validation)
    collator = build_collator(data_args, feature_extractor, len(label_names))
    if data_args.streaming:
        # accelerate shards a stream across processes itself (IterableDataset.shard or IterableDatasetShard,
        # as split_dataset_by_node would); dispatching would make process 0 decode every process's batches.
        training_args.accelerator_config.dispatch_batches = False

    # Model: the genre labels, then AST or the CNN sized to the features.
    model = build_classifier(model_args, feature_extractor, label_names)

    # Trainer. compute_loss_func: with mixup, training labels are class probabilities (batch, num_labels);
    # ASTForAudioClassification's own loss flattens labels to class indices and fails on them (or, without
    # a problem_type, switches to BCE for good), so the loss is the cross-entropy that takes both forms.
    trainer = Trainer(
        model=model,
        args=training_args,
        data_collator=collator,
        train_dataset=train,
        eval_dataset=validation,
        processing_class=feature_extractor,
        compute_metrics=GenreMetrics(label_names),
        compute_loss_func=cross_entropy_loss,
        callbacks=list(callbacks),
    )
    if training_args.early_stopping_patience:
        trainer.add_callback(EarlyStoppingCallback(training_args.early_stopping_patience))
    if not data_args.streaming and data_args.train_eval_samples != 0:
        size = data_args.train_eval_samples or len(labelled["validation"])
        train_sample = balanced_sample(labelled["train"], size, seed=training_args.seed)
        train_split_evaluation = TrainSplitEvaluation(with_crop_transform(train_sample, center_crop))
        train_split_evaluation.trainer = trainer
        trainer.add_callback(train_split_evaluation)
    if trainer.is_world_process_zero():
        # The measured fbank statistics go into the resolved config: a rerun then skips measuring them.
        measured = replace(model_args, feature_mean=feature_extractor.mean, feature_std=feature_extractor.std)
        write_run_config(training_args.output_dir, measured, data_args, training_args)

    # Train, then save the best model and its feature extractor.
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model()
    metrics = dict(train_result.metrics)
    # What the results table and the model card need to know about the run.
    if not data_args.streaming:
        metrics["train_samples"] = len(labelled["train"])
    metrics["hardware"] = describe_hardware(training_args)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()

    # Evaluate the best model: clip accuracy on validation centre crops (as during training), then clip-
    # and track-level metrics from eval_crops crops per track on validation and test.
    eval_metrics = trainer.evaluate()
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)
    metrics.update(eval_metrics)
    for name in ("validation", "test"):
        evaluation = evaluate_model(
            trainer.model,
            feature_extractor,
            splits[name],
            n_crops=data_args.eval_crops,
            batch_size=training_args.per_device_eval_batch_size,
            num_workers=workers,
            crop_seconds=crop_seconds,
        )
        split_metrics = flat_metrics(evaluation, prefix=name)
        metrics.update(split_metrics)
        if trainer.is_world_process_zero():
            trainer.log_metrics(name, split_metrics)
            trainer.save_metrics(name, split_metrics)
            with open(Path(training_args.output_dir) / f"evaluation_{name}.json", "w", encoding="utf-8") as f:
                json.dump(evaluation, f, indent=2)
    return metrics


def flat_metrics(evaluation: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """The scalar metrics of an `evaluate_model` result: {prefix}_{clip,track}_{accuracy,macro_f1}, counts."""
    flat = {}
    for level in ("clip", "track"):
        for key in ("accuracy", "macro_f1"):
            flat[f"{prefix}_{level}_{key}"] = evaluation[level][key]
    flat[f"{prefix}_tracks"] = evaluation["num_tracks"]
    flat[f"{prefix}_crops"] = evaluation["n_crops"]
    return flat


__all__ = [
    "DATASET_CONFIGS",
    "DataArguments",
    "FmaTrainingArguments",
    "GenreMetrics",
    "TrainSplitEvaluation",
    "describe_hardware",
    "ModelArguments",
    "balanced_sample",
    "build_classifier",
    "build_collator",
    "build_feature_extractor",
    "check_arguments",
    "flat_metrics",
    "load_splits",
    "parse_arguments",
    "read_config_file",
    "resolve_checkpoint",
    "resolved_config",
    "run_training",
    "setup_logging",
    "summary_line",
    "write_run_config",
]
