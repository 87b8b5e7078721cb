"""The arguments of a training run: three dataclasses that `HfArgumentParser` reads from a config file and
the command line, the resolved config a run saves, and the checks that fail before any data is read.

    >>> model_args, data_args, training_args = parse_arguments(["ast_demo", "--data_dir", "demo_data"])
    >>> check_arguments(model_args, data_args, training_args)

`--config` (or a first argument that is no flag) takes a YAML/JSON file or the name of a config shipped in
hf_fma/configs/; flags override its values. `run_config.yaml`, the resolved arguments a finished run holds,
reads back the same way to repeat the run.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser, TrainingArguments
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

from hf_fma.argparsing import both_spellings
from hf_fma.configs import config_file, training_configs
from hf_fma.data import DATASET_CONFIGS
from hf_fma.geometry import crop_frames
from hf_fma.models import AST_PRESETS, CNN_PRESETS, LSTM_PRESETS, build_cnn, build_lstm
from hf_fma.run_folder import RUN_CONFIG_NAME, write_text_atomic

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
    dataset_config_name: str = field(
        default="small",
        metadata={
            "help": f"One of {', '.join(DATASET_CONFIGS)}; with --dataset_name of another dataset, one of its "
            "configs (`default` for one without configs)."
        },
    )
    task: str = field(
        default="single_label",
        metadata={
            "help": "single_label: the top genre (`genre`), softmax. multi_label: every genre of a track's "
            "hierarchy (`genres`, parents included) as a multi-hot target, sigmoid and BCE; the label space is "
            "the training split's genres (see min_genre_tracks)."
        },
    )
    min_genre_tracks: int = field(
        default=1,
        metadata={
            "help": "multi_label: genres with fewer training tracks are left out of the label space (named in a "
            "warning); tracks left with no genre of it are not trained or evaluated on."
        },
    )
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "A Parquet export of FMA (`hf-fma export`) or any audio-classification dataset: its folder or "
            "Hub dataset id, read with load_dataset(dataset_name, dataset_config_name) instead of the archives; "
            "data_dir is then not read. An FMA config name with the columns audio and genre reads an export."
        },
    )
    audio_column_name: str = field(
        default="audio", metadata={"help": "The name of the dataset column containing the audio data."}
    )
    label_column_name: str = field(
        default="genre",
        metadata={"help": "The name of the dataset column containing the labels (label names or a ClassLabel)."},
    )
    split_seed: int = field(
        default=0,
        metadata={
            "help": "Seed of the stratified split making a validation or test split the dataset lacks (a tenth each "
            "of its rows); apart from --seed, so that the test tracks stay the same across a seed study."
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
    # transformers 5's TrainingArguments has no overwrite_output_dir; the flag keeps its documented meaning here.
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
    if any(item.split("=", 1)[0] in both_spellings(["--do_eval"]) for item in argv):
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


# `task`: the top genre (softmax over `genre`) or every genre of the hierarchy (sigmoids over `genres`).
TASKS = ("single_label", "multi_label")
# What a multi_label validation reports (hf_fma.trainer.MultiLabelGenreMetrics), and so can choose the best model.
MULTI_LABEL_METRICS = ("map", "loss")

# TrainingArguments' schedules, each of which can be "epoch".
STRATEGIES = ("eval_strategy", "save_strategy", "logging_strategy")


def check_arguments(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments) -> None:
    """Fail at start, before any data is read, on a wrong name or a missing folder."""
    if data_args.dataset_name is None and data_args.dataset_config_name not in DATASET_CONFIGS:
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
    crop_frames(data_args.crop_seconds)  # raises here, before the fbank statistics, unless whole 10 ms hops
    check_task(data_args, training_args)
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


def check_task(data_args: DataArguments, training_args: TrainingArguments) -> None:
    """The task's own arguments: a known task, a positive min_genre_tracks, and a best-model metric that the
    task's validation reports (multi-label reports `map`, mean average precision, and no accuracy)."""
    if data_args.task not in TASKS:
        raise ValueError(f"unknown task {data_args.task!r}; valid: {', '.join(TASKS)}")
    if data_args.min_genre_tracks < 1:
        raise ValueError(f"min_genre_tracks must be at least 1, got {data_args.min_genre_tracks}")
    if data_args.task != "multi_label":
        return
    if data_args.streaming:
        raise ValueError(
            "task multi_label fixes its genres from the whole training split before training, which a stream "
            "cannot give up front: set streaming=False"
        )
    if not training_args.load_best_model_at_end:
        return
    metric = training_args.metric_for_best_model.removeprefix("eval_")
    if metric not in MULTI_LABEL_METRICS:
        raise ValueError(
            f"metric_for_best_model {metric!r} is not reported by a multi_label run (its validation reports "
            f"{', '.join(MULTI_LABEL_METRICS)}): give --metric_for_best_model map"
        )


__all__ = [
    "ARGUMENT_CLASSES",
    "BASELINES",
    "MODEL_FAMILIES",
    "MULTI_LABEL_METRICS",
    "TASKS",
    "TRACKERS",
    "DataArguments",
    "FmaTrainingArguments",
    "ModelArguments",
    "check_arguments",
    "check_no_stage_switches",
    "check_task",
    "parse_arguments",
    "read_config_file",
    "resolved_config",
    "write_run_config",
]
