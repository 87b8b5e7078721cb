"""The study's comparison as published: each row's system, features, dataset, protocol and accuracy as its
source reports it, and the shipped hf-fma config that trains the same set-up, for `hf-fma table
--published` to print beside our runs, always labelled as the source's numbers, never as runs.

    hf-fma table runs/ --published

A run repeats a published row when it trained the row's config on the whole training split of the row's
real data (FMA, or the dataset_name its config names) with the config's set-up (`SETUP_KEYS`: model,
dataset, features and training protocol) unchanged; optimiser settings, epochs, batch and seed are free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import yaml

from hf_fma.configs import config_file

# The arguments that make a run the experiment of a published row: model and its size, data, input
# features and how training tracks become examples. Every config a published row names states them all.
SETUP_KEYS = (
    "model_family",
    "model_name_or_path",
    "dataset_config_name",
    "num_mel_bins",
    "frequency_downscale",
    "time_downscale",
    "num_mfcc",
    "mfcc_delta_order",
    "crop_seconds",
    "train_segments",
)

STUDY = "the study's group"
REFERENCE = "the study's reference paper"


@dataclass(frozen=True)
class PublishedResult:
    """One published row: what the source trained and the accuracy it reported, in percent as printed."""

    system: str
    features: str
    dataset: str
    protocol: str
    metric: str
    value: float  # percent, as published
    source: str
    config: str  # the shipped config that trains this set-up


# How the reference trained and tested: a track's segments were split at random, so one track's segments
# could fall in training and test alike (hf-fma's `train_segments` keeps them in their track's split).
SEGMENTS_SPLIT_BY_SEGMENT = "six 5 s segments per track, split by segment"
MINI = "mini: 1,000 tracks of fma_small"

PUBLISHED_RESULTS: tuple[PublishedResult, ...] = (
    PublishedResult("AST from scratch", "log-mel, downscaled 4 x 4", "fma_small", "5 s crops", "accuracy", 40.8, STUDY, "ast_study_small"),
    PublishedResult("CNN", "log-mel", "fma_small", "5 s crops", "accuracy", 54.2, STUDY, "cnn_study_small"),
    PublishedResult("AST from scratch", "log-mel, downscaled 4 x 4", MINI, "5 s crops", "accuracy", 26.5, STUDY, "ast_study_mini"),
    PublishedResult("CNN", "log-mel", MINI, "5 s crops", "accuracy", 21.9, STUDY, "cnn_study_mini"),
    PublishedResult("RNN-LSTM", "MFCC", "fma_small", SEGMENTS_SPLIT_BY_SEGMENT, "accuracy", 57.1, REFERENCE, "lstm_mfcc_small"),
    PublishedResult("CNN", "MFCC", "fma_small", SEGMENTS_SPLIT_BY_SEGMENT, "accuracy", 51.6, REFERENCE, "cnn_mfcc_small"),
    PublishedResult("ViT", "MFCC", "fma_small", SEGMENTS_SPLIT_BY_SEGMENT, "accuracy", 56.9, REFERENCE, "ast_mfcc_small"),
    PublishedResult("ViT", "not stated", "GTZAN: 1,000 clips", "not stated", "accuracy", 78.0, REFERENCE, "ast_gtzan"),
)  # fmt: skip


class RunFolder(Protocol):
    """What matching reads of a run folder (`hf_fma.runs.Run`)."""

    path: Any
    run_config: dict[str, Any]

    @property
    def synthesized_demo(self) -> bool: ...

    @property
    def fma_data(self) -> bool: ...


class ResultRow(Protocol):
    """What the comparison reads of a line of our results table (`hf_fma.results.TableRow`)."""

    runs: list[str]

    @property
    def percent(self) -> str: ...

    @property
    def values(self) -> list[float]: ...


def config_setup(name: str) -> dict[str, Any]:
    """The set-up (`SETUP_KEYS`, and the dataset_name of a config on another dataset than FMA) of a shipped
    config; an error names the keys it leaves unstated."""
    path = config_file(name)
    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    missing = [key for key in SETUP_KEYS if key not in config]
    if missing:
        raise ValueError(f"{path} must state {', '.join(missing)}: a published row's runs are matched on them")
    # FMA's configs leave dataset_name free: the archives and an export of them are the same data.
    return {key: config[key] for key in (*SETUP_KEYS, "dataset_name") if key in config}


def repeats(run: RunFolder, setup: Mapping[str, Any]) -> bool:
    """Whether the run trained a published row's set-up (`config_setup` of its config) on the whole training
    split of the row's real data (a run on `hf-fma make-demo`'s synthesized data repeats nothing published)."""
    if run.synthesized_demo or run.run_config.get("max_train_samples") is not None:
        return False
    if "dataset_name" not in setup and not run.fma_data:  # an FMA row: another dataset with an FMA config's name
        return False
    return all(run.run_config.get(key) == value for key, value in setup.items())


def published_markdown(rows: Sequence[ResultRow], runs: Sequence[RunFolder], metric: str, metric_title: str) -> str:
    """Each published row, labelled with its source, beside the lines of our table whose runs all repeat
    it; a published row no run repeats shows the config to run. metric: the table's key of
    all_results.json, which must be an accuracy, as every published value is."""
    if not metric.endswith("accuracy"):
        raise ValueError(f"the published results are accuracies; --published needs an accuracy --metric, not {metric!r}")
    by_path = {str(run.path): run for run in runs}
    lines = [
        "Published results, as their sources report them (not runs of hf-fma), beside the hf-fma runs that "
        "repeat their set-up (the config's model, features and protocol, the whole training split of the "
        "row's real data):",
        "",
        f"| Published (source) | System | Features | Dataset | Protocol | Published accuracy | hf-fma config "
        f"| hf-fma: {metric_title} | Runs |",
        "| --- | --- | --- | --- | --- | ---: | --- | ---: | ---: |",
    ]
    for result in PUBLISHED_RESULTS:
        published = (
            f"| published ({result.source}) | {result.system} | {result.features} | {result.dataset} "
            f"| {result.protocol} | {result.value:.1f}"
        )
        setup = config_setup(result.config)
        ours = [row for row in rows if all(repeats(by_path[path], setup) for path in row.runs)]
        lines.extend(f"{published} | {result.config} | {row.percent} | {len(row.values)} |" for row in ours)
        if not ours:
            lines.append(f"{published} | {result.config} | not run | 0 |")
    return "\n".join(lines) + "\n"


__all__ = ["PUBLISHED_RESULTS", "SETUP_KEYS", "PublishedResult", "config_setup", "published_markdown", "repeats"]
