"""A finished run read back from its folder: the model family and preset, the features, the dataset, the
metrics and evaluations, as the results table, the published comparison and the model card report them.
The files and their names are hf_fma.run_folder's."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hf_fma.geometry import extractor_crop_frames, run_crop_seconds
from hf_fma.multi_label import MULTI_LABEL_PROBLEM_TYPE
from hf_fma.run_folder import ALL_RESULTS_NAME, RUN_CONFIG_NAME, evaluation_json_name, read_json

# A saved config.json's model_type -> the family that cards and the results table name.
MODEL_FAMILIES = {"audio-spectrogram-transformer": "AST", "fma_cnn": "CNN", "fma_lstm": "LSTM"}


def dataset_title(dataset_name: str | Path | None, config_name: str, fma: bool) -> str:
    """How logs, cards and reports name a run's data: "FMA small", or another dataset by its name (Hub id or
    folder) and its config unless the one a dataset without configs has ("default")."""
    if fma:
        return f"FMA {config_name}"
    return str(dataset_name) if config_name == "default" else f"{dataset_name} ({config_name})"


@dataclass
class Run:
    """What a training run left in its folder (see hf_fma.training): the saved model's `config.json` and
    `preprocessor_config.json`, the resolved arguments `run_config.yaml` and the metrics `all_results.json`."""

    path: Path
    model_config: dict[str, Any]
    feature_config: dict[str, Any]
    run_config: dict[str, Any]
    results: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> Run:
        path = Path(path)
        files = {name: path / name for name in ("config.json", "preprocessor_config.json", ALL_RESULTS_NAME, RUN_CONFIG_NAME)}
        missing = [name for name, file in files.items() if not file.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{path} is not a finished training run: it lacks {', '.join(missing)} "
                "(written by recipes/train_ast.py and recipes/train_cnn.py at the end of training)"
            )
        run_config = yaml.safe_load(files[RUN_CONFIG_NAME].read_text(encoding="utf-8")) or {}
        if not isinstance(run_config, dict):
            raise ValueError(f"{files[RUN_CONFIG_NAME]} must hold a mapping of argument names to values")
        return cls(
            path=path,
            model_config=read_json(files["config.json"]),
            feature_config=read_json(files["preprocessor_config.json"]),
            run_config=run_config,
            results=read_json(files[ALL_RESULTS_NAME]),
        )

    @property
    def family(self) -> str:
        """"AST", "CNN" or "LSTM"."""
        model_type = self.model_config.get("model_type")
        if model_type not in MODEL_FAMILIES:
            raise ValueError(
                f"{self.path / 'config.json'}: model_type {model_type!r} is neither of {', '.join(MODEL_FAMILIES)}"
            )
        return MODEL_FAMILIES[model_type]

    @property
    def task(self) -> str:
        """"multi_label" for a model that scores each genre on its own (hf_fma.multi_label), else
        "single_label" (one genre per track)."""
        return "multi_label" if self.model_config.get("problem_type") == MULTI_LABEL_PROBLEM_TYPE else "single_label"

    @property
    def model_name(self) -> str:
        """The recipe's preset or checkpoint, e.g. "study-scratch", "audioset" or "MIT/ast-..."."""
        return str(self.run_config.get("model_name_or_path", "?"))

    @property
    def model(self) -> str:
        """The table's model column: family and preset, e.g. "AST (study-scratch)"."""
        return f"{self.family} ({self.model_name})"

    @property
    def fma_data(self) -> bool:
        """Whether the run trained on FMA (its archives or an hf-fma export) rather than another dataset, as
        training recorded it (`hf_fma.data.is_fma_source`); runs that predate the record trained on FMA."""
        return bool(self.results.get("fma_data", True))

    @property
    def dataset_config(self) -> str:
        """The config the run trained on: FMA's (small, mini, medium, ...) or the other dataset's."""
        return str(self.run_config.get("dataset_config_name", "?"))

    @property
    def dataset(self) -> str:
        """The dataset column of the results table: FMA's config (small, mini, ...), or the other dataset's
        name (`dataset_title`)."""
        return self.dataset_config if self.fma_data else self.data_title

    @property
    def data_title(self) -> str:
        """The run's data as cards name it: "FMA small", or the other dataset (`dataset_title`)."""
        return dataset_title(self.run_config.get("dataset_name"), self.dataset_config, self.fma_data)

    @property
    def input_shape(self) -> tuple[int, int]:
        """(frames, values per frame) of the model's input, after any pooling or MFCC of the feature extractor:
        mel bins, or MFCC with their deltas."""
        frames = extractor_crop_frames(self.feature_config) // int(self.feature_config.get("time_downscale", 1))
        mel_bins = int(self.feature_config["num_mel_bins"]) // int(self.feature_config.get("frequency_downscale", 1))
        num_mfcc = int(self.feature_config.get("num_mfcc", 0))
        if num_mfcc:
            return frames, num_mfcc * (1 + int(self.feature_config.get("mfcc_delta_order", 0)))
        return frames, mel_bins

    @property
    def crop_seconds(self) -> float:
        return run_crop_seconds(self.run_config, self.feature_config)

    @property
    def features(self) -> str:
        """The table's features column, e.g. "log-mel 32x125 (4x4 pooled), 5 s"."""
        frames, mel_bins = self.input_shape
        frequency = int(self.feature_config.get("frequency_downscale", 1))
        time = int(self.feature_config.get("time_downscale", 1))
        pooled = f" ({frequency}x{time} pooled)" if (frequency, time) != (1, 1) else ""
        kind = "MFCC" if self.feature_config.get("num_mfcc") else "log-mel"
        # Each training track's evenly spaced segments as examples: another protocol, so another row.
        segments = int(self.run_config.get("train_segments") or 0)
        per_track = f" x {segments} per track" if segments else ""
        return f"{kind} {mel_bins}x{frames}{pooled}, {self.crop_seconds:g} s{per_track}"

    @property
    def training_tracks(self) -> int | None:
        """Tracks the model trained on: `train_samples` when the run recorded it, else `max_train_samples`."""
        tracks = self.results.get("train_samples", self.run_config.get("max_train_samples"))
        return None if tracks is None else int(tracks)

    @property
    def synthesized_demo(self) -> bool:
        """Whether the run trained on `hf-fma make-demo`'s synthesized FMA, as training recorded from the
        data itself (the demo archives' zip comment, or an export of them)."""
        return bool(self.results.get("synthesized_demo_data", False))

    @property
    def seed(self) -> int | None:
        return self.run_config.get("seed")

    def metric(self, name: str) -> float:
        if name not in self.results:
            numeric = sorted(key for key, value in self.results.items() if isinstance(value, (int, float)))
            raise KeyError(f"{self.path / ALL_RESULTS_NAME} has no metric {name!r}; it has: {', '.join(numeric)}")
        return float(self.results[name])

    def evaluation(self, split: str) -> dict[str, Any] | None:
        """The clip- and track-level evaluation of a split of the run's dataset config: the run's own
        `evaluation_{split}.json` when it was made on that config, else the one `hf-fma evaluate
        --dataset_config_name` wrote (`evaluation_{config}_{split}.json`); None when neither exists. Each
        file's recorded `dataset_config` (and, for a run not on FMA, `dataset_name`) decides (files without
        them are the run's own), so numbers of other data are never reported as this run's."""
        config, name = self.dataset_config, self.run_config.get("dataset_name")
        for path in (self.path / evaluation_json_name(split), self.path / evaluation_json_name(split, config)):
            if path.is_file():
                evaluation = read_json(path)
                same_name = self.fma_data or evaluation.get("dataset_name", name) == name
                if evaluation.get("dataset_config", config) == config and same_name:
                    return evaluation
        return None


def find_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Runs from run folders, or from folders whose sub-folders are runs (a study's output folder)."""
    runs = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise FileNotFoundError(f"{path} is not a folder")
        if (path / ALL_RESULTS_NAME).is_file():
            runs.append(Run.load(path))
            continue
        children = sorted(child.parent for child in path.glob(f"*/{ALL_RESULTS_NAME}"))
        if not children:
            raise FileNotFoundError(f"{path} holds no run: neither it nor a sub-folder has {ALL_RESULTS_NAME}")
        runs.extend(Run.load(child) for child in children)
    return runs


__all__ = ["MODEL_FAMILIES", "Run", "dataset_title", "find_runs"]
