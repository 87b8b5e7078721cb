"""Training AST and the CNN on FMA with `Trainer`: argument dataclasses, config files, and the run itself.

`hf-fma train` (`hf_fma.train`) and the recipes (`recipes/train_ast.py`, `recipes/train_cnn.py`) are thin
wrappers over this module; `--config` takes a file or the name of a config shipped in hf_fma/configs/:

    hf-fma train ast_demo --data_dir demo_data
    accelerate launch --config_file hf_fma/configs/accelerate/cpu.yaml -m hf_fma.train ast_demo --data_dir demo_data
    python recipes/train_ast.py --config hf_fma/configs/ast_demo.yaml --data_dir demo_data
    accelerate launch --config_file hf_fma/configs/accelerate/cpu.yaml recipes/train_ast.py \\
        --config hf_fma/configs/ast_demo.yaml --data_dir demo_data
    torchrun --nproc_per_node 8 recipes/train_ast.py --config hf_fma/configs/ast_study_small.yaml

and so is the sample-size study, which calls `run_training` in a loop:

    >>> model_args, data_args, training_args = parse_arguments(["--config", "hf_fma/configs/ast_demo.yaml"])
    >>> metrics = run_training(model_args, data_args, training_args)
    >>> metrics["test_track_accuracy"]

A run's output folder holds the best model (by validation accuracy) and its feature extractor
(`save_pretrained`, loadable by `pipeline("audio-classification", model=folder)`), checkpoints,
`trainer_state.json`, `all_results.json`, `evaluation_{validation,test}.json` (clip- and track-level
metrics, see `hf_fma.evaluation`) and `run_config.yaml`, the resolved arguments, which `--config` reads
back to repeat the run (see `hf_fma.run_folder` for the layout and how the files are written).

A folder that already holds a run is never trained into silently: the run stops before reading any data
unless `--overwrite_output_dir` (replace it) or `--resume_from_checkpoint last` (continue it) is given. The
final files are moved in only once the run is finished and evaluated, `all_results.json` last, so a crash
leaves the previous run or the new one, never a mix; a run locks its folder against a second one, and
resumes only complete checkpoints of its own run (see `hf_fma.run_folder`). No Hub token is ever written: `hub_token` is cleared
from the arguments before Trainer pickles them into `training_args.bin`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from functools import partial
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
from transformers.integrations import (
    INTEGRATION_TO_CALLBACK,
    is_azureml_available,
    is_clearml_available,
    is_codecarbon_available,
    is_comet_available,
    is_dagshub_available,
    is_dvclive_available,
    is_flytekit_available,
    is_kubeflow_available,
    is_mlflow_available,
    is_neptune_available,
    is_swanlab_available,
    is_tensorboard_available,
    is_trackio_available,
    is_wandb_available,
)

from hf_fma.audio import audio_duration
from hf_fma.checkpoints import FmaTrainer, check_checkpoint_matches
from hf_fma.evaluation import (
    evaluate_model,
    labelled_tracks,
    load_genre_metric,
    with_crop_transform,
)
from hf_fma.augment import Mixup, SpecAugment, TrainingSeeds
from hf_fma.fbank import AUDIOSET_MEAN, AUDIOSET_STD, EMPTY_MEL_FILTER_WARNING
from hf_fma.fbank_stats import compute_fbank_stats
from hf_fma.trainer import cross_entropy_loss
from hf_fma.transforms import AudioCropTransform, FbankCollator, expand_crops
from hf_fma.configs import config_file, training_configs
from hf_fma.data import DATASET_CONFIGS, is_demo_data, load_fma
from hf_fma.export import is_demo_export
from hf_fma.geometry import crop_frames
from hf_fma.models import AST_PRESETS, CNN_PRESETS, LSTM_PRESETS, build_cnn, build_lstm, build_model
from hf_fma.models.feature_extraction_fma_ast import FmaASTFeatureExtractor
from hf_fma.run_folder import (
    ALL_RESULTS_NAME,
    RUN_CONFIG_NAME,
    TRAINER_STATE_NAME,
    check_output_dir,
    evaluation_json_name,
    last_checkpoint,
    publish_staged,
    read_json,
    run_folder_lock,
    set_aside_checkpoints,
    staging_dir,
    write_json_atomic,
    write_text_atomic,
)

logger = logging.getLogger(__name__)

# model_family -> (presets, their builder) of the baselines trained from scratch; AST is built by build_model.
BASELINES = {"cnn": (CNN_PRESETS, build_cnn), "lstm": (LSTM_PRESETS, build_lstm)}
MODEL_FAMILIES = ("ast", *BASELINES)
# Every tracker `--report_to` takes (transformers' INTEGRATION_TO_CALLBACK): transformers' own test that it
# can report, and what it needs. Trainer runs the test only when it is built, after the data is prepared,
# and some callbacks then fail in their own cleanup (mlflow's): check_arguments runs it at start instead.
TRACKERS = {
    "azure_ml": (is_azureml_available, "the azureml-sdk package: pip install azureml-sdk"),
    "clearml": (is_clearml_available, "the clearml package: pip install clearml"),
    "codecarbon": (is_codecarbon_available, "the codecarbon package: pip install codecarbon"),
    "comet_ml": (is_comet_available, "the comet-ml package and COMET_API_KEY set: pip install comet-ml"),
    "dagshub": (is_dagshub_available, "the dagshub and mlflow packages: pip install dagshub mlflow"),
    "dvclive": (is_dvclive_available, "the dvclive package: pip install dvclive"),
    "flyte": (is_flytekit_available, "the flytekit package: pip install flytekit"),
    "kubeflow": (is_kubeflow_available, "a Kubeflow TrainJob, which sets KUBEFLOW_TRAINER_SERVER_URL"),
    "mlflow": (is_mlflow_available, "the mlflow package: pip install mlflow"),
    "neptune": (is_neptune_available, "the neptune package: pip install neptune"),
    "swanlab": (is_swanlab_available, "the swanlab package: pip install swanlab"),
    "tensorboard": (is_tensorboard_available, "the tensorboard package: pip install tensorboard"),
    "trackio": (is_trackio_available, "the trackio package: pip install trackio"),
    "wandb": (is_wandb_available, "the wandb package: pip install wandb"),
}


@dataclass
class ModelArguments:
    """Which model to train and the features it sees."""

    model_family: str = field(
        default="ast",
        metadata={
            "help": "ast (recipes/train_ast.py), cnn (recipes/train_cnn.py) or lstm (recipes/train_lstm.py); the "
            "recipe sets it."
        },
    )
    model_name_or_path: str = field(
        default="tiny",
        metadata={
            "help": f"AST: a preset ({', '.join(AST_PRESETS)}; 'audioset' fine-tunes the AudioSet checkpoint) or "
            f"an AST checkpoint (Hub name or folder) to fine-tune. CNN: a preset ({', '.join(CNN_PRESETS)}). "
            f"LSTM: a preset ({', '.join(LSTM_PRESETS)})."
        },
    )
    num_mel_bins: int = field(default=128, metadata={"help": "Mel bins of the fbank (AST: 128)."})
    frequency_downscale: int = field(default=1, metadata={"help": "Mel bins average-pooled into one (study: 4)."})
    time_downscale: int = field(default=1, metadata={"help": "10 ms frames average-pooled into one (study: 4)."})
    num_mfcc: int = field(
        default=0,
        metadata={"help": "MFCC per frame (e.g. 13, 20, 40) of the (pooled) log-mel as the model's input; 0: log-mel."},
    )
    mfcc_delta_order: int = field(default=0, metadata={"help": "With num_mfcc: 1 adds deltas, 2 also delta-deltas."})
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
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "A Parquet export of FMA (`hf-fma export`): its folder or Hub dataset id, read with "
            "load_dataset(dataset_name, dataset_config_name) instead of the archives; data_dir is then not read."
        },
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
    crop_seconds: float = field(
        default=5.0, metadata={"help": "Training and evaluation crop length (the study: 5 s), a multiple of 0.01 s."}
    )
    eval_crops: int = field(
        default=6, metadata={"help": "Evenly spaced crops per track for track-level metrics (logits averaged)."}
    )
    train_segments: int = field(
        default=0,
        metadata={
            "help": "0: one random crop of each training track per epoch. N: each training track's N evenly spaced "
            "crops are N training examples every epoch (the references' protocol: 6 segments of 5 s), all "
            "within the training split."
        },
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
    # transformers 5 removed TrainingArguments.overwrite_output_dir; the flag keeps its documented meaning here.
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Train into an output_dir that already holds a run, replacing it (its files are replaced "
            "only once the new run is finished). Without it such a folder stops the run before any work; "
            "--resume_from_checkpoint last continues it instead."
        },
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
    """The flat {argument: value} mapping of a YAML or JSON config file (as `run_config.yaml` is written),
    or of a shipped config given by name."""
    path = config_file(path)
    with open(path, encoding="utf-8") as f:
        values = json.load(f) if path.suffix == ".json" else yaml.safe_load(f)
    if not isinstance(values, dict):
        raise ValueError(f"config file {path} must map argument names to values, got a {type(values).__name__}")
    return values


def parse_arguments(
    argv: Sequence[str] | None = None, defaults: Mapping[str, Any] | None = None, prog: str | None = None
) -> tuple[ModelArguments, DataArguments, FmaTrainingArguments]:
    """The three argument dataclasses from `--config FILE` (YAML or JSON, or the name of a shipped config;
    a first argument that is no flag is that FILE, as in transformers' examples) and command-line flags,
    which override the file. `defaults` (a recipe's) sit under both; `prog` names the command in --help.

    The file's values become the parser's defaults, so `HfArgumentParser` still types and checks every
    flag; keys that are no argument fail with the list of unknown ones, and TrainingArguments' own checks
    of their combination fail as ValueError naming the arguments.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):
        argv = ["--config", *argv]
    # The usage line argparse would write lists every one of TrainingArguments' options.
    parser = HfArgumentParser(
        ARGUMENT_CLASSES,
        prog=prog,
        usage="%(prog)s CONFIG [--argument value ...]",
        description="CONFIG (or --config CONFIG): a YAML/JSON file of arguments or a shipped config's name "
        "(`hf-fma configs`); the flags below override it.",
    )
    parser.add_argument(
        "--config",
        help=f"YAML or JSON file of arguments, or a shipped config's name ({', '.join(training_configs())}); "
        "command-line flags override it",
    )
    known = {action.dest for action in parser._actions}

    values = dict(defaults or {})
    config_path = _config_path(argv)
    if config_path is not None:
        values.update(read_config_file(config_path))
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"{config_path or 'defaults'}: unknown argument(s) {', '.join(unknown)}; see "
            "`hf-fma train --help` for the valid names"
        )
    parser.set_defaults(**values)
    try:
        *arguments, _config_flag = parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    except ValueError as error:  # TrainingArguments.__post_init__ on a combination of arguments
        raise ValueError(f"bad arguments: {error}") from error
    model_args, data_args, training_args = arguments
    check_no_stage_switches(argv, training_args)
    return model_args, data_args, training_args


def check_no_stage_switches(argv: Sequence[str], training_args: TrainingArguments) -> None:
    """Refuse `--do_train`, `--do_eval` and `--do_predict`, which choose the stages of transformers' example
    scripts (eval-only with `--do_eval` alone, say): an hf-fma run is always all of them, training, the
    validation of every eval_strategy and the test of the best model, because a run is finished only with
    its test metrics (which the card, the results table and the study read). Accepted, they would be
    ignored. do_eval is refused only as a flag: TrainingArguments sets it from eval_strategy itself, and
    run_config.yaml records it so."""
    switches = [name for name in ("do_train", "do_predict") if getattr(training_args, name)]
    if any(item.split("=", 1)[0] in ("--do_eval", "--do-eval") for item in argv):
        switches.append("do_eval")
    if switches:
        raise ValueError(
            f"{', '.join('--' + name for name in switches)}: an hf-fma run always trains, validates and tests the "
            "best model, so these stage switches of transformers' example scripts are not taken; drop them "
            "(`hf-fma evaluate MODEL` evaluates a saved one, `hf-fma predict` classifies files)"
        )


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
    resume_from_checkpoint and overwrite_output_dir, which say how this invocation started, not what the run
    is (a rerun from this file must not replace the run it describes)."""
    config = {**asdict(model_args), **asdict(data_args)}
    training = training_args.to_dict()
    invocation = ("resume_from_checkpoint", "overwrite_output_dir")
    for item in fields(training_args):
        left_out = item.name.endswith("token") or item.name in invocation
        if item.init and item.name in training and not left_out:
            config[item.name] = training[item.name]
    return config


def write_run_config(
    folder: str | os.PathLike,
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: TrainingArguments,
) -> Path:
    """Write `run_config.yaml` into folder (the run's output_dir, or where its final files are staged): the
    resolved arguments, to read back with `--config` and repeat the run."""
    config = resolved_config(model_args, data_args, training_args)
    final_path = Path(training_args.output_dir) / RUN_CONFIG_NAME
    return write_text_atomic(
        Path(folder) / RUN_CONFIG_NAME,
        # A new output_dir: the run's own folder holds it, so a rerun into it would be refused.
        f"# Resolved arguments of this run; repeat it with: hf-fma train {final_path} --output_dir rerun\n"
        + yaml.safe_dump(config, sort_keys=False),
    )


# TrainingArguments' schedules, each of which can be "epoch".
STRATEGIES = ("eval_strategy", "save_strategy", "logging_strategy")


def check_arguments(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments) -> None:
    """Fail at start, before any data is read, on a wrong name or a missing folder."""
    if data_args.dataset_config_name not in DATASET_CONFIGS:
        raise ValueError(
            f"unknown dataset config {data_args.dataset_config_name!r}; valid configs: {', '.join(DATASET_CONFIGS)}"
        )
    if data_args.dataset_name is None and data_args.data_dir is not None and not os.path.isdir(os.path.expanduser(data_args.data_dir)):
        raise FileNotFoundError(
            f"data_dir {data_args.data_dir!r} is not a folder: give the folder holding fma_metadata.zip and "
            f"fma_{data_args.dataset_config_name}.zip (or `hf-fma make-demo DIR` for the offline demo)"
        )
    if model_args.model_family not in MODEL_FAMILIES:
        raise ValueError(f"unknown model_family {model_args.model_family!r}; valid: {', '.join(MODEL_FAMILIES)}")
    name = model_args.model_name_or_path
    if model_args.model_family in BASELINES and name not in BASELINES[model_args.model_family][0]:
        presets = BASELINES[model_args.model_family][0]
        raise ValueError(
            f"unknown {model_args.model_family.upper()} preset {name!r}; valid presets: {', '.join(presets)}"
        )
    # A checkpoint is a folder or a Hub name ("owner/name"); any other bare word must be a preset.
    if model_args.model_family == "ast" and name not in AST_PRESETS and "/" not in name and not os.path.isdir(name):
        raise ValueError(
            f"unknown AST preset {name!r}; valid presets: {', '.join(AST_PRESETS)} (or an AST checkpoint folder "
            "or Hub name to fine-tune)"
        )
    if data_args.eval_crops < 1 or data_args.crop_seconds <= 0 or data_args.train_segments < 0:
        raise ValueError(
            f"eval_crops must be >= 1, crop_seconds > 0 and train_segments >= 0, got {data_args.eval_crops}, "
            f"{data_args.crop_seconds} and {data_args.train_segments}"
        )
    crop_frames(data_args.crop_seconds)  # raises now, not after the fbank statistics, unless whole 10 ms hops
    for tracker in training_args.report_to or ():  # TrainingArguments made "all" the available ones
        if tracker not in INTEGRATION_TO_CALLBACK:
            raise ValueError(
                f"--report_to {tracker}: transformers knows no such tracker; valid: all, none, "
                f"{', '.join(INTEGRATION_TO_CALLBACK)}"
            )
        is_available, needs = TRACKERS.get(tracker, (None, None))  # one newer than this table: Trainer checks it
        if is_available is not None and not is_available():
            raise ImportError(f"--report_to {tracker} needs {needs}")
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
    # datasets' loggers print through their own handler and, propagating, through the root one above too:
    # every line twice. Its own handler alone prints each once.
    datasets.utils.logging.disable_propagation()
    transformers.utils.logging.set_verbosity(log_level)
    # What loading a model says about its weights (missing, unexpected, newly initialised) is never noise:
    # it stays visible when --log_level(_replica) asks for errors only.
    logging.getLogger("transformers.modeling_utils").setLevel(min(log_level, logging.WARNING))
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


def describe_process(training_args: TrainingArguments) -> str:
    """One line on where this process trains, as transformers' examples log it at start-up."""
    precision = "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "fp32"
    return (
        f"process {training_args.process_index} of {training_args.world_size}: device {training_args.device}, "
        f"precision {precision}, {torch.get_num_threads()} torch threads, "
        f"{training_args.dataloader_num_workers} DataLoader workers"
    )


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
    """train/validation/test through `load_fma` (any datasets version), or of an export with `dataset_name`,
    audio left undecoded ({"path", "bytes"}: the transforms decode only their crops)."""
    if data_args.dataset_name:
        # An `hf-fma export` (folder or Hub repository): Parquet with the builder's columns and MP3 bytes.
        splits = load_dataset(data_args.dataset_name, data_args.dataset_config_name, streaming=data_args.streaming)
    else:
        splits = load_fma(
            data_args.dataset_config_name,
            data_dir=data_args.data_dir,
            streaming=data_args.streaming,
            num_proc=data_args.preprocessing_num_workers,
        )
    return {name: splits[name].cast_column("audio", Audio(decode=False)) for name in ("train", "validation", "test")}


def is_synthesized_demo(data_args: DataArguments) -> bool:
    """Whether the run reads `hf-fma make-demo`'s synthesized FMA (its archives, or a local export of them),
    as the data says of itself: the model card must not present it as FMA's music."""
    if data_args.dataset_name:
        return is_demo_export(data_args.dataset_name, data_args.dataset_config_name)
    return is_demo_data(data_args.data_dir)


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


def check_crop_fits(train: datasets.Dataset, crop_seconds: float, max_tracks: int = 16) -> None:
    """Fail when crop_seconds is longer than most training tracks (their median duration, read from the
    headers of up to `max_tracks`): the crops would be mostly padding and a track's evaluation crops all
    the same one. A few shorter tracks (FMA has some) are padded as usual."""
    sample = train.select(range(min(len(train), max_tracks)))
    durations = [audio_duration(source) for source in sample["audio"]]
    median = float(np.median(durations))
    if crop_seconds > median:
        raise ValueError(
            f"crop_seconds {crop_seconds} is longer than most training tracks ({median:.2f} s, the median of "
            f"{len(durations)}; the longest {max(durations):.2f} s): crops would be mostly padding; give "
            f"--crop_seconds {math.floor(median * 100) / 100:g} or less"
        )


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


def build_classifier(model_args: ModelArguments, feature_extractor, label_names: Sequence[str]):
    """AST (preset from scratch or checkpoint fine-tuned), the CNN or the LSTM, sized to the features."""
    if model_args.model_family in BASELINES:
        _, build_baseline = BASELINES[model_args.model_family]
        return build_baseline(model_args.model_name_or_path, feature_extractor, label_names)
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
    all_results.json (train_*, eval_* of the best model, validation_* and test_* track/clip metrics).

    The processes that write output_dir (Trainer's `should_save`: the main one) hold its lock
    (`run_folder_lock`) for the whole run: a second run into the folder stops at once, naming the first."""
    check_arguments(model_args, data_args, training_args)
    checkpoint = resolve_checkpoint(training_args)  # a missing checkpoint fails here, before the data is read
    lock = run_folder_lock(training_args.output_dir) if training_args.should_save else contextlib.nullcontext()
    with lock:
        return _train_in_locked_folder(model_args, data_args, training_args, checkpoint, callbacks)


def _train_in_locked_folder(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: FmaTrainingArguments,
    checkpoint: str | None,
    callbacks: Sequence[TrainerCallback],
) -> dict[str, float]:
    # A run already in output_dir is replaced only when asked (--overwrite_output_dir), else continued.
    check_output_dir(training_args.output_dir, training_args.overwrite_output_dir, resuming=checkpoint is not None)
    if training_args.overwrite_output_dir and training_args.should_save:
        set_aside_checkpoints(training_args.output_dir)  # the replaced run's, until this one is finished
    # Trainer pickles the whole arguments into every training_args.bin: the token must not be among them.
    # Pushing is the caller's (hf_fma.recipe reads the token first and keeps it in memory).
    training_args.hub_token = None
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
    # Start-up summary, on every process (warning: the level other processes log at, as in transformers'
    # examples), then the data sizes once.
    logger.warning(describe_process(training_args))
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
    if not data_args.streaming:
        check_crop_fits(labelled["train"], data_args.crop_seconds)
    if training_args.should_log:
        sizes = ", ".join(
            f"{name} {'streamed' if data_args.streaming else len(labelled[name])}"
            for name in ("train", "validation", "test")
        )
        logger.info(
            f"data: FMA {data_args.dataset_config_name}, {len(label_names)} genres, tracks: {sizes}; "
            f"{data_args.crop_seconds} s crops, {data_args.eval_crops} per track for track-level metrics"
        )

    # Features: a crop_seconds feature extractor normalised with the training split's statistics.
    workers = training_args.dataloader_num_workers
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=EMPTY_MEL_FILTER_WARNING)  # AST's standard set-up
        feature_extractor = build_feature_extractor(
            model_args, data_args, labelled["train"], seed=training_args.seed, num_workers=workers,
            checkpoint=checkpoint,
        )
    crop_seconds = data_args.crop_seconds

    # Transforms: decode a random crop per track for training, the centre crop for validation; the
    # collator computes the fbank of whole batches in the DataLoader workers.
    # Their random draws are keyed by seed, epoch and track (see TrainingSeeds): a resumed run repeats them.
    seeds = TrainingSeeds(training_args.data_seed if training_args.data_seed is not None else training_args.seed)
    center_crop = AudioCropTransform(crop_seconds, "center", sampling_rate=feature_extractor.sampling_rate)
    if data_args.train_segments:
        # The references' protocol: a track's evenly spaced segments as examples of their own, augmentable
        # like random crops. Expanded within the training split, so no segment of a validation or test
        # track is trained on.
        segments = AudioCropTransform(
            crop_seconds, "even", n_crops=data_args.train_segments, augment=True,
            sampling_rate=feature_extractor.sampling_rate,
        )  # fmt: skip
        train = with_crop_transform(expand_crops(labelled["train"], data_args.train_segments), segments)
    else:
        random_crop = AudioCropTransform(
            crop_seconds, "random", sampling_rate=feature_extractor.sampling_rate, seeds=seeds
        )
        train = with_crop_transform(labelled["train"], random_crop)
    validation = with_crop_transform(labelled["validation"], center_crop)
    if data_args.streaming and training_args.world_size > 1:
        validation = WholeStream(validation)
    collator = build_collator(data_args, feature_extractor, len(label_names), seeds)
    if data_args.streaming:
        # accelerate shards a stream across processes itself (IterableDataset.shard or IterableDatasetShard,
        # as split_dataset_by_node would); dispatching would make process 0 decode every process's batches.
        training_args.accelerator_config.dispatch_batches = False

    # Model: the genre labels, then AST or the CNN sized to the features. A checkpoint to resume must be
    # of this model family and these genres: checked now, before any training.
    model = build_classifier(model_args, feature_extractor, label_names)
    if checkpoint is not None:
        check_checkpoint_matches(checkpoint, model)

    # Trainer. compute_loss_func: with mixup, training labels are class probabilities (batch, num_labels);
    # ASTForAudioClassification's own loss flattens labels to class indices and fails on them (or, without
    # a problem_type, switches to BCE for good), so the loss is the cross-entropy that takes both forms.
    # Trainer skips its own label smoother when given a compute_loss_func: the loss smooths the labels.
    # FmaTrainer reloads the best checkpoint (and a resumed one) with exactly its weights (see checkpoints).
    trainer = FmaTrainer(
        model=model,
        args=training_args,
        data_collator=collator,
        train_dataset=train,
        eval_dataset=validation,
        processing_class=feature_extractor,
        compute_metrics=GenreMetrics(label_names),
        compute_loss_func=partial(cross_entropy_loss, label_smoothing=training_args.label_smoothing_factor),
        callbacks=[EpochOfTrainingSeeds(seeds), *callbacks],
    )
    if training_args.early_stopping_patience:
        trainer.add_callback(EarlyStoppingCallback(training_args.early_stopping_patience))
    if not data_args.streaming and data_args.train_eval_samples != 0:
        size = data_args.train_eval_samples or len(labelled["validation"])
        train_sample = balanced_sample(labelled["train"], size, seed=training_args.seed)
        train_split_evaluation = TrainSplitEvaluation(with_crop_transform(train_sample, center_crop))
        train_split_evaluation.trainer = trainer
        trainer.add_callback(train_split_evaluation)

    # Train, then save the best model and its feature extractor, with the run's final files, in a staging
    # folder: they replace a previous run's only once this one is evaluated (see hf_fma.run_folder).
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    is_main = trainer.is_world_process_zero()
    staging = staging_dir(training_args.output_dir, empty=is_main)  # the same folder for every process
    trainer.save_model(str(staging))
    metrics = dict(train_result.metrics)
    # What the results table and the model card need to know about the run.
    if not data_args.streaming:
        metrics["train_samples"] = len(labelled["train"])
    metrics["hardware"] = describe_hardware(training_args)
    metrics["synthesized_demo_data"] = is_synthesized_demo(data_args)
    trainer.log_metrics("train", metrics)
    if is_main:
        trainer.state.save_to_json(str(staging / TRAINER_STATE_NAME))

    # Evaluate the best model: clip accuracy on validation centre crops (as during training), then clip-
    # and track-level metrics from eval_crops crops per track on validation and test.
    eval_metrics = trainer.evaluate()
    trainer.log_metrics("eval", eval_metrics)
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
            progress=not training_args.disable_tqdm and trainer.is_local_process_zero(),
        )
        split_metrics = flat_metrics(evaluation, prefix=name)
        metrics.update(split_metrics)
        if is_main:
            trainer.log_metrics(name, split_metrics)
            evaluation = {"dataset_config": data_args.dataset_config_name, "split": name, **evaluation}
            write_json_atomic(staging / evaluation_json_name(name), evaluation)

    # The run's final files replace the folder's previous ones, all_results.json (the finished mark) last.
    if is_main:
        # The measured fbank statistics go into the resolved config: a rerun then skips measuring them.
        measured = replace(model_args, feature_mean=feature_extractor.mean, feature_std=feature_extractor.std)
        write_run_config(staging, measured, data_args, training_args)
        write_json_atomic(staging / ALL_RESULTS_NAME, metrics)
        # Card: README.md beside the saved model, so that any upload of the folder (model.push_to_hub,
        # `hf upload`) publishes a complete one. Written among the staged files, from them, so that it moves
        # in with the run: a finished run always has its card. Imported here: cards belong to the reporting
        # layer above training.
        from hf_fma.cards import write_run_card

        write_run_card(staging, repo_id=training_args.hub_model_id, location=training_args.output_dir)
        publish_staged(staging, training_args.output_dir)
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
    "check_crop_fits",
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
