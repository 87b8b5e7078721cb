"""Genre predictions for a music library: `hf-fma predict MODEL PATH...` and `predict_files`.

Any model folder saved by the training recipes works (AST or the CNN baseline, with its feature extractor
beside it), on files or folders (searched recursively) of any length and any format soundfile or the ffmpeg
binary reads (MP3, WAV, FLAC, OGG, M4A, ...):

    hf-fma predict runs/ast-small song.mp3 ~/Music                       # table on stdout
    hf-fma predict runs/ast-small ~/Music --format jsonl --output genres.jsonl --batch-size 16
    hf-fma predict runs/ast-small ~/Music --format csv --top-k 5 --hop 2.5 --device cuda
    python -m hf_fma.predict runs/ast-small song.mp3                     # the same without the entry point

    >>> from hf_fma.predict import predict_files
    >>> [result] = predict_files("runs/ast-small", ["song.mp3"], top_k=3)
    >>> result["predictions"]   # [{"label": "Rock", "score": 0.71}, ...], the pipeline's format

A multi-label model (`problem_type` "multi_label_classification", hf_fma.multi_label) scores every genre
on its own: the sigmoid of the windows' mean logits, as its evaluation scores a track, and `genres` lists
those scoring at least its saved `multi_label_threshold` (chosen on the validation split).
`--hierarchy_consistent` first raises each parent genre's score to its best sub-genre's (`make_consistent`
over `config.genre_parents`), so no sub-genre is predicted without its parents.

A whole track is classified from windows laid across it, each as long as the model's training crop (the
feature extractor's `max_length` frames, 5.0 s for max_length=500): adjacent by default, `--hop` to overlap
them, the last one aligned to the track's end; the windows' class probabilities are averaged. Windows of
all files share batches. A track shorter than one window (but at least MIN_DURATION, 0.1 s) is one window,
padded by the feature extractor as in training. Silent windows (peak under -80 dBFS) carry no genre and
are left out of the average, with a warning. A file whose audio ends before its header says (an MP3 cut
short still declares its full length) is classified from the audio it has, with a warning.

Each window is decoded on its own (`hf_fma.track_windows`), so memory holds one batch of windows whatever
the track's length.

Bad input never stops a run: a missing, empty, unreadable, non-audio, silent or too-short file, a broken
or looping link, a FIFO gets a result with `error` giving the reason, and the rest are classified.
`--output FILE` keeps the old file until the first row is finished, then holds the rows finished so far.
Exit status: 0 when every file was classified, 1 when any failed, 2 for usage errors (bad option, a model
that does not load).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import ASTFeatureExtractor, PreTrainedModel
from transformers.utils import logging as transformers_logging

from hf_fma.argparsing import ArgumentParser
from hf_fma.audio_files import find_audio_files
from hf_fma.fbank import BatchedFbank
from hf_fma.geometry import extractor_crop_samples, seconds_to_samples
from hf_fma.models.loading import load_classifier
from hf_fma.multi_label import ancestor_pairs, is_multi_label, make_consistent
from hf_fma.prediction_output import OUTPUT_FORMATS, OutputFile, write_predictions
from hf_fma.track_windows import FilePrediction, decoded_files
from hf_fma.transforms import FbankCollator


@dataclass
class _Track:
    """One file's progress: windows decoded and not yet scored, and the sum of their scores (probabilities;
    a multi-label model's logits)."""

    result: FilePrediction
    pending: int = 0
    decoded: bool = False
    score_sum: torch.Tensor | None = None


@dataclass(frozen=True)
class GenreDecision:
    """How a multi-label model's track scores become genres: those >= `threshold`, after raising each
    ancestor to its descendants' best score for the (child, ancestor) column `pairs` (none: as scored)."""

    threshold: float
    pairs: tuple[tuple[int, int], ...] = ()


def genre_decision(model: PreTrainedModel, hierarchy_consistent: bool = False) -> GenreDecision | None:
    """The GenreDecision of a multi-label model (None for a single-label one, which has no threshold to
    apply); ValueError when `hierarchy_consistent` asks for one of a single-label model, or the model saved
    no threshold."""
    config = model.config
    if not is_multi_label(config):
        if hierarchy_consistent:
            raise ValueError(
                "--hierarchy_consistent applies to multi-label models; this one is single-label (one genre per track)"
            )
        return None
    threshold = getattr(config, "multi_label_threshold", None)
    if threshold is None:
        raise ValueError(
            "the multi-label model's config.json has no multi_label_threshold (training sets it on the validation "
            "split): set one to predict genres, or use its scores from `pipeline(\"audio-classification\")`"
        )
    labels = [config.id2label[index] for index in range(config.num_labels)]
    pairs = ancestor_pairs(labels, getattr(config, "genre_parents", None) or {}) if hierarchy_consistent else []
    return GenreDecision(float(threshold), tuple(pairs))


class _BatchScorer:
    """Windows of consecutive files gathered into batches of `batch_size` and scored; each file's result
    comes out, in input order, once all its windows are scored.

    worker_features: the windows come as model inputs computed by the decoding workers, not waveforms."""

    def __init__(self, model: PreTrainedModel, collator: FbankCollator, worker_features: bool, top_k: int,
                 batch_size: int, decision: GenreDecision | None = None):
        self.model, self.collator, self.worker_features = model, collator, worker_features
        self.decision = decision
        self.labels = [model.config.id2label[index] for index in range(model.config.num_labels)]
        self.top_k, self.batch_size = min(top_k, len(self.labels)), batch_size
        self.queue: deque[_Track] = deque()  # tracks whose result is not yet out, in input order
        self.batch: list[tuple[_Track, np.ndarray | torch.Tensor]] = []  # windows, or their model inputs

    def add(self, result: FilePrediction, windows: Iterable[np.ndarray] | torch.Tensor) -> None:
        """Queue a file and its windows (consumed here, as they decode), scoring each batch they fill."""
        track = _Track(result)
        self.queue.append(track)
        for audio in windows:  # a waveform, or with worker_features its (frames, mel) model input
            track.pending += 1
            self.batch.append((track, audio))
            if len(self.batch) == self.batch_size:
                self.score()
        track.decoded = True

    def score(self) -> None:
        """Score the windows gathered so far, adding their scores to their tracks'."""
        if not self.batch:
            return
        if self.worker_features:
            input_values = torch.stack([features for _, features in self.batch])  # (batch, frames, mel)
        else:
            input_values = self.collator([{"waveform": audio} for _, audio in self.batch])["input_values"]
        model = self.model
        with torch.inference_mode():
            logits = model(input_values=input_values.to(device=model.device, dtype=model.dtype)).logits
        # A multi-label model's windows are averaged as logits, as its evaluation averages crops: its
        # threshold was chosen on the sigmoid of such means.
        scores = (logits if self.decision else logits.softmax(dim=-1)).float().cpu()  # (batch, num_labels)
        for (track, _), row in zip(self.batch, scores):  # row: (num_labels,)
            track.score_sum = row if track.score_sum is None else track.score_sum + row
            track.pending -= 1
        self.batch.clear()

    def _track_scores(self, track: _Track) -> torch.Tensor:
        """The file's scores per genre: mean window probabilities; for a multi-label model the sigmoid of
        the mean window logits (made consistent with the hierarchy when asked)."""
        mean = track.score_sum / track.result.windows
        if self.decision is None:
            return mean
        if self.decision.pairs:
            mean = torch.from_numpy(make_consistent(mean.numpy(), self.decision.pairs))
        return mean.sigmoid()

    def finished(self) -> Iterator[FilePrediction]:
        """The results of the leading files whose windows are all scored, with their top-k genres."""
        while self.queue and self.queue[0].decoded and self.queue[0].pending == 0:
            track = self.queue.popleft()
            result = track.result
            if result.ok:
                track_scores = self._track_scores(track)
                scores, indices = track_scores.topk(self.top_k)
                result.predictions = [
                    {"label": self.labels[index], "score": round(score, 6)}
                    for score, index in zip(scores.tolist(), indices.tolist())
                ]
                if self.decision is not None:
                    result.genres = [
                        label for label, score in zip(self.labels, track_scores.tolist()) if score >= self.decision.threshold
                    ]
            else:
                result.windows, result.duration = 0, None
            yield result


def _check_options(top_k: int, max_windows: int | None, batch_size: int, num_workers: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be 0 (decode in this process) or more, got {num_workers}")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    if max_windows is not None and max_windows < 1:
        raise ValueError(f"max_windows must be at least 1, got {max_windows}")


def iter_predictions(
    model: PreTrainedModel,
    feature_extractor: ASTFeatureExtractor,
    paths: Iterable[str | os.PathLike],
    *,
    top_k: int = 3,
    hop: float | None = None,
    max_windows: int | None = None,
    batch_size: int = 8,
    num_workers: int = 0,
    progress: bool = False,
    hierarchy_consistent: bool = False,
) -> Iterator[FilePrediction]:
    """`predict_files` one result at a time, in input order, each as soon as its last window is scored."""
    _check_options(top_k, max_windows, batch_size, num_workers)
    decision = genre_decision(model, hierarchy_consistent)
    sampling_rate = feature_extractor.sampling_rate
    window = extractor_crop_samples(feature_extractor)  # each window gets the features a training crop got
    hop_samples = window if hop is None else seconds_to_samples(hop, sampling_rate)
    if hop_samples < 1:
        raise ValueError(f"hop must be a positive number of seconds, got {hop}")

    files = find_audio_files(paths)
    # ASTFeatureExtractor's fbank for a whole batch at once, on the model's device: the extractor itself
    # loops over clips in numpy, and never runs on a GPU.
    collator = FbankCollator(BatchedFbank.from_feature_extractor(feature_extractor).to(model.device))
    # With the model on the CPU, decoding workers compute the fbank of their files too, leaving this process
    # the model alone (fbank and model in one process would hold the workers back); a GPU computes it faster
    # than they would. The records are the same: BatchedFbank gives each window the same values bit for bit
    # whatever the batch it is computed in.
    worker_features = num_workers > 0 and model.device.type == "cpu"
    scorer = _BatchScorer(model, collator, worker_features, top_k, batch_size, decision)

    # On stderr, and only for several files on a terminal (disable=None): piped output stays clean.
    show_bar = progress and len(files) > 1
    bar = tqdm(total=len(files), unit="file", desc="predict", disable=None if show_bar else True, file=sys.stderr)
    try:
        decoded = decoded_files(files, sampling_rate, window, hop_samples, max_windows, num_workers,
                                collator if worker_features else None)
        for result, windows in decoded:
            scorer.add(result, windows)
            for finished in scorer.finished():
                bar.update()
                yield finished
        scorer.score()  # the last, partial batch
        for finished in scorer.finished():
            bar.update()
            yield finished
    finally:
        bar.close()


def predict_files(
    model_or_path: str | os.PathLike | PreTrainedModel,
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    feature_extractor: ASTFeatureExtractor | None = None,
    top_k: int = 3,
    hop: float | None = None,
    max_windows: int | None = None,
    batch_size: int = 8,
    num_workers: int = 0,
    device: str | torch.device | None = "auto",
    progress: bool = False,
    hierarchy_consistent: bool = False,
) -> list[FilePrediction]:
    """Top-k genres of each audio file (folders are searched recursively), one FilePrediction per file in
    input order; files that cannot be classified get one with `error` set instead of raising. For a
    multi-label model, each result's `genres` are those scoring at least its saved threshold.

    model_or_path: a saved model folder (feature extractor beside it) or a loaded model plus
        `feature_extractor`.
    hop: seconds between window starts (default: the window length, i.e. adjacent windows).
    max_windows: at most this many evenly spaced windows per file (faster on long tracks; default: all).
    batch_size: windows per forward pass, drawn from consecutive files.
    num_workers: processes decoding and resampling files while the model scores (0: this process); for
        a model on the CPU they compute its features too. Leave them their cores: `torch.set_num_threads`
        (cores - num_workers), as `hf-fma predict` does.
    device: "auto" (GPU when present), "cpu", "cuda", "cuda:1", "mps".
    progress: a tqdm bar of files on stderr (when it is a terminal and there are several files).
    hierarchy_consistent: a multi-label model's parent genres score at least their sub-genres' best
        (ValueError for a single-label model).
    """
    model, feature_extractor = load_classifier(model_or_path, feature_extractor, device)
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return list(
        iter_predictions(
            model, feature_extractor, paths, top_k=top_k, hop=hop, max_windows=max_windows,
            batch_size=batch_size, num_workers=num_workers, progress=progress,
            hierarchy_consistent=hierarchy_consistent,
        )
    )


def _positive(kind: type) -> Any:
    """An argparse type: a number of `kind` above zero (argparse turns the ValueError into a usage error)."""

    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise ValueError(text)
        return value

    parse.__name__ = f"positive {kind.__name__}"  # argparse's message: "invalid positive int value: '0'"
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="hf-fma predict",
        description="Top genres of audio files or folders (searched recursively) with a trained model folder. "
        "Whole tracks are classified from windows of the model's crop length, probabilities averaged.",
        epilog="Exit status: 0 all files classified, 1 some failed (each has an error row), 2 usage error.",
    )
    parser.add_argument("model", metavar="MODEL", help="saved model folder (or Hub name) with its feature extractor")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    parser.add_argument("--top_k", type=_positive(int), default=3, metavar="K", help="genres per file (default: 3)")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, default="table", dest="output_format",
                        help="output format (default: table)")
    parser.add_argument("--output", "-o", type=Path, metavar="FILE", help="write to this file instead of stdout")
    parser.add_argument("--hop", type=_positive(float), metavar="SECONDS",
                        help="seconds between window starts (default: the window length, adjacent windows)")
    parser.add_argument("--max_windows", type=_positive(int), metavar="N",
                        help="at most N evenly spaced windows per file (faster on long tracks)")
    parser.add_argument("--batch_size", type=_positive(int), default=8, metavar="B",
                        help="windows per forward pass, across files (default: 8)")
    parser.add_argument("--num_workers", type=int, default=0, metavar="N",
                        help="processes decoding and resampling audio (and, for a model on the CPU, computing its "
                        "features) while the model scores (default: 0, decode in this process)")
    parser.add_argument("--device", default="auto", metavar="DEVICE",
                        help="auto (default: GPU when present), cpu, cuda, cuda:N or mps")
    parser.add_argument("--threads", type=_positive(int), metavar="N",
                        help="CPU threads for torch (default: one per core, less one per --num_workers worker when "
                        "the model runs on the CPU); 1 is several times faster when other programs keep the cores busy")
    parser.add_argument("--hierarchy_consistent", action="store_true",
                        help="multi-label models: raise each parent genre's score to its best sub-genre's before "
                        "thresholding, so no sub-genre is predicted without its parents")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--trust_remote_code", action="store_true",
                        help="run the Python code a Hub repository or folder names in its auto_map (off: such a "
                        "model is refused; hf-fma's own CNN and feature extractor need no code from the folder)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`hf-fma predict MODEL PATH... [--format table|jsonl|csv] [--output FILE] [--top-k K] [--hop SECONDS]
    [--max-windows N] [--batch-size B] [--num-workers N] [--device DEVICE] [--threads N] [--hierarchy_consistent]
    [--no-progress]`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.num_workers < 0:
        parser.error(f"--num_workers must be 0 (decode in this process) or more, got {args.num_workers}")
    # Keep stderr for this command's own messages: transformers' weight-loading bar says nothing a user can act on.
    transformers_logging.disable_progress_bar()
    try:
        if args.output is not None and args.output.is_dir():
            raise ValueError(f"--output {args.output} is a folder: give the name of a file to write")
        model, feature_extractor = load_classifier(args.model, device=args.device, trust_remote_code=args.trust_remote_code)
        decision = genre_decision(model, args.hierarchy_consistent)
        # Opened before any decoding so a bad --output path fails at once, not after an hour of audio.
        stream = sys.stdout if args.output is None else OutputFile(args.output, args.output_format)
    except (ValueError, OSError) as error:
        print(f"hf-fma predict: {error}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    elif args.num_workers and model.device.type == "cpu":
        # The workers keep their cores busy decoding: torch's default of a thread per core would make the
        # model's threads fight them for the same cores.
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()  # not on macOS
        torch.set_num_threads(max(1, cores - args.num_workers))

    results = iter_predictions(
        model, feature_extractor, args.paths, top_k=args.top_k, hop=args.hop, max_windows=args.max_windows,
        batch_size=args.batch_size, num_workers=args.num_workers, progress=not args.no_progress,
        hierarchy_consistent=args.hierarchy_consistent,
    )
    try:
        written = write_predictions(
            results, stream, args.output_format, min(args.top_k, model.config.num_labels),
            threshold=decision.threshold if decision else None,
        )
    finally:
        if stream is not sys.stdout:
            stream.close()
    failed = [result for result in written if not result.ok]
    if failed:
        print(f"hf-fma predict: {len(failed)} of {len(written)} files failed (see their error rows)", file=sys.stderr)
    return 1 if failed else 0


__all__ = ["GenreDecision", "build_parser", "genre_decision", "iter_predictions", "main", "predict_files"]


if __name__ == "__main__":
    sys.exit(main())
