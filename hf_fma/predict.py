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

A whole track is classified from windows laid across it, each as long as the model's training crop (the
feature extractor's `max_length` frames, 5.0 s for max_length=500): adjacent by default, `--hop` to overlap
them, the last one aligned to the track's end; the windows' class probabilities are averaged. Windows of
all files share batches. A track shorter than one window (but at least MIN_DURATION, 0.1 s) is one window,
padded by the feature extractor as in training. Silent windows (peak under -80 dBFS) carry no genre and
are left out of the average, with a warning. A file whose audio ends before its header says (an MP3 cut
short still declares its full length) is classified from the audio it has, with a warning.

Decoding is per window: `hf_fma.audio.load_audio` seeks to each one and decodes, mixes to mono and
resamples only it, so memory holds one batch of windows whatever the track's length - a 2-hour mix costs
what a 30 s clip does. Decoding the whole track first would hold all of it at the file's own rate and
channels before resampling (a 5-minute 44.1 kHz stereo MP3 is 106 MB of float32, a 2-hour mix 2.5 GB).
Reopening and seeking per window costs about 30% more decoding time than one pass (measured on MP3), small
beside the model. Formats libsndfile cannot open (M4A) are decoded whole by the ffmpeg binary, once per
file, and cut into windows.

Bad input never stops a run: a missing, empty, unreadable, non-audio, silent or too-short file, a broken
or looping link, a FIFO gets a result with `error` giving the reason, and the rest are classified.
`--output FILE` keeps the old file until the first row is finished, then holds the rows finished so far. Exit status: 0 when every file was
classified, 1 when any failed, 2 for usage errors (bad option, a model that does not load).
"""

from __future__ import annotations

import argparse
import csv
import errno
import json
import os
import stat
import sys
import tempfile
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import soundfile as sf
import torch
from tqdm.auto import tqdm
from transformers import (
    ASTConfig,
    ASTFeatureExtractor,
    AutoFeatureExtractor,
    AutoModelForAudioClassification,
    PreTrainedModel,
)
from transformers.utils import logging as transformers_logging

from hf_fma.argparsing import ArgumentParser
from hf_fma.audio import AudioDecodeError, audio_duration, load_audio
from hf_fma.features import EMPTY_MEL_FILTER_WARNING, BatchedFbank, FbankCollator
from hf_fma.geometry import extractor_crop_samples, seconds_to_samples
from hf_fma.models.ast import input_shape
from hf_fma.run_folder import new_file_mode
import hf_fma.models  # noqa: F401  registers the CNN and FmaASTFeatureExtractor with the Auto classes

# Extensions a folder search picks up. Files named on the command line are tried whatever their name.
AUDIO_EXTENSIONS = frozenset(
    {".aac", ".aif", ".aifc", ".aiff", ".flac", ".m4a", ".mka", ".mp3", ".mp4", ".oga", ".ogg", ".opus",
     ".wav", ".webm", ".wma"}
)
# Shorter files are reported as too short rather than classified: below 0.1 s there are under 8 fbank
# frames (25 ms frames every 10 ms), no musical content to speak of.
MIN_DURATION = 0.1
# Windows whose peak stays under -80 dBFS carry no genre: they are left out of a track's average, and a
# file with nothing else is an error.
SILENCE_DBFS = -80
SILENCE_PEAK = 10 ** (SILENCE_DBFS / 20)
# Audio that ends this many seconds before its header's duration is reported as truncated (smaller gaps are
# encoder padding and rounding); an MP3 cut short still declares its full length in its header.
TRUNCATION_TOLERANCE = 0.5
OUTPUT_FORMATS = ("table", "jsonl", "csv")


@dataclass
class FilePrediction(Mapping):
    """The outcome for one file: top-k `predictions` ({"label", "score"}, best first, as the audio pipeline
    gives them) or an `error` saying why not; a `warning` when some audio was left out (silent windows, a
    truncated file). `duration`: seconds of audio in the file (what decodes, when that is less than its
    header declares); `windows`: how many windows were averaged.

    It reads like the pipeline's dicts, `result["predictions"]`, `dict(result)`, and by attribute,
    `result.predictions`."""

    file: str
    predictions: list[dict[str, Any]] = field(default_factory=list)
    duration: float | None = None
    windows: int = 0
    error: str | None = None
    warning: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def __getitem__(self, key: str) -> Any:
        if key not in list(self):
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return (item.name for item in fields(self))

    def __len__(self) -> int:
        return len(fields(self))


# ---------------------------------------------------------------------------------------------------------
# Inputs: model, device, files, windows


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """"auto" (or None): the first GPU when there is one, else the CPU; otherwise any torch device name."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but torch sees no CUDA GPU; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} requested but MPS is not available; use --device cpu")
    return device


def load_classifier(
    model_or_path: str | os.PathLike | PreTrainedModel,
    feature_extractor: ASTFeatureExtractor | None = None,
    device: str | torch.device | None = "auto",
    trust_remote_code: bool = False,
) -> tuple[PreTrainedModel, ASTFeatureExtractor]:
    """The model in eval mode on `device`, and its feature extractor.

    model_or_path: a saved model folder (or Hub name) holding the feature extractor too, or a loaded
    audio-classification model, in which case `feature_extractor` is required.
    trust_remote_code: run the Python files the folder's `auto_map` names. Off, a model whose classes only
    that code defines is refused, whether it is a Hub repository or a local folder (a folder may be a copy
    of one); transformers' own models and the classes `import hf_fma` registers (the CNN, the pooling
    feature extractor) load from the installed packages, never from the folder's copies of their code.
    """
    device = resolve_device(device)
    if isinstance(model_or_path, PreTrainedModel):
        if feature_extractor is None:
            raise ValueError("predicting with a loaded model needs its feature_extractor too")
        model = model_or_path
    else:
        try:
            # trust_remote_code is always given: left None, transformers would prompt on a terminal.
            model = AutoModelForAudioClassification.from_pretrained(model_or_path, trust_remote_code=trust_remote_code)
            if feature_extractor is None:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=EMPTY_MEL_FILTER_WARNING)
                    feature_extractor = AutoFeatureExtractor.from_pretrained(model_or_path, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as error:
            if not trust_remote_code and "trust_remote_code" in str(error):
                raise ValueError(
                    f"{model_or_path!s} needs Python code of its own (auto_map in its config) to load; hf-fma runs it "
                    "only when asked: read the code, then pass --trust_remote_code"
                ) from error
            raise ValueError(f"cannot load an audio-classification model from {model_or_path!s}: {error}") from error
    if not isinstance(feature_extractor, ASTFeatureExtractor):
        raise ValueError(
            f"predict computes AST log-mel features (ASTFeatureExtractor or FmaASTFeatureExtractor), but the "
            f"model comes with a {type(feature_extractor).__name__}"
        )
    _check_model_takes_features(model, feature_extractor)
    return model.to(device).eval(), feature_extractor


def _check_model_takes_features(model: PreTrainedModel, feature_extractor: ASTFeatureExtractor) -> None:
    """Refuse, before any decoding, a model that does not take the extractor's (frames, mel bins) input:
    the AST and the CNN declare the mel bins they take (`num_mel_bins`), the AST also its frames
    (`max_length`); a model without them (Wav2Vec2 takes raw samples) would fail deep in its first layer."""
    model_class, extractor_class = type(model).__name__, type(feature_extractor).__name__
    config = model.config
    if getattr(config, "num_mel_bins", None) is None:
        raise ValueError(
            f"the model {model_class} does not take the log-mel features of its feature extractor "
            f"{extractor_class} (its config declares no num_mel_bins): predict needs an AST or hf-fma CNN model"
        )
    frames, mel_bins = input_shape(feature_extractor)  # pooled, for FmaASTFeatureExtractor's 4 x 4 features
    expected = {"mel bins": (config.num_mel_bins, mel_bins)}
    if isinstance(config, ASTConfig):  # position embeddings for exactly max_length frames
        expected["frames"] = (config.max_length, frames)
    wrong = [f"{takes} {name} but {extractor_class} gives {gives}" for name, (takes, gives) in expected.items() if takes != gives]
    if wrong:
        raise ValueError(f"the model {model_class} does not fit its feature extractor: it takes {'; '.join(wrong)}")


def window_starts(total: int, window: int, hop: int, max_windows: int | None = None) -> list[int]:
    """Start samples of the windows that cover `total` samples: every `hop` samples, plus one aligned to the
    end when the last regular one stops short of it; one window at 0 when the track is shorter than a
    window. With `max_windows`, that many evenly spaced windows instead when there would be more."""
    if window <= 0 or hop <= 0:
        raise ValueError(f"window and hop must be positive sample counts, got window={window}, hop={hop}")
    if total <= window:
        return [0]
    starts = list(range(0, total - window + 1, hop))
    if starts[-1] + window < total:
        starts.append(total - window)
    if max_windows is not None and len(starts) > max_windows:
        starts = np.linspace(0, total - window, max_windows).round().astype(int).tolist()
    return starts


def find_audio_files(paths: Iterable[str | os.PathLike]) -> list[tuple[Path, str | None]]:
    """(file, error) pairs in the order given: a file is taken as is; a folder is searched recursively, in
    sorted order, for files with an audio extension (hidden files skipped: macOS leaves `._song.mp3`
    resource forks beside the real ones); each file once. The error names what is wrong with a path, to be
    reported like an undecodable file: missing, a broken or looping symbolic link, not a regular file (a
    FIFO would block the run), unreadable, or a folder with no audio or one that cannot be listed."""
    found: list[tuple[Path, str | None]] = []
    seen: set[str] = set()

    def add(path: Path, error: str | None = None) -> None:
        # realpath, unlike Path.resolve, does not raise on a link loop; a dangling link is its own key.
        key = os.path.realpath(path) if path.exists() else os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            found.append((path, error))

    for path in (Path(name).expanduser() for name in paths):
        if path.is_dir():
            files = _audio_files_under(path)
            if not files:
                add(path, f"no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) in this folder")
            for file, error in files:
                add(file, error or _unreadable_reason(file))
        else:
            add(path, _unreadable_reason(path))
    return found


# File types a path can be besides a regular file, as a row's error names them.
_FILE_TYPES = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _unreadable_reason(path: Path) -> str | None:
    """Why `path` cannot be read as an audio file, from its metadata alone (a FIFO is never opened: reading
    it would wait for a writer forever); None for a readable regular file."""
    try:
        info = path.stat()
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "symbolic link loop (the link leads back to itself)"
        if path.is_symlink():
            return f"broken symbolic link (to {os.readlink(path)}, which does not exist)"
        if error.errno == errno.ENOENT:
            return "no such file or folder"
        return error.strerror or str(error)
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for is_kind, name in _FILE_TYPES if is_kind(info.st_mode)), "not a file")
        return f"not a regular file: {kind}"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


def _audio_files_under(folder: Path) -> list[tuple[Path, str | None]]:
    """(path, error) for the audio files in a folder and its sub-folders, symlinked ones included, sorted,
    hidden ones skipped: every entry with an audio extension that is not a folder (a broken link or a FIFO
    too, to get its error row), and each sub-folder that cannot be listed, with its error. A folder reached
    twice (two links to it, or a link to an ancestor) is searched once, so a loop of links ends."""
    files: list[tuple[Path, str | None]] = []
    searched: set[str] = set()

    def unlisted(error: OSError) -> None:
        files.append((Path(error.filename), f"folder cannot be listed: {error.strerror or error}"))

    for root, subfolders, names in os.walk(folder, onerror=unlisted, followlinks=True):
        real = os.path.realpath(root)
        if real in searched:
            subfolders[:] = []
            continue
        searched.add(real)
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))  # the first link wins
        files.extend(
            (Path(root, name), None) for name in names
            if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_EXTENSIONS
        )
    return sorted(files)


# ---------------------------------------------------------------------------------------------------------
# Prediction


@dataclass
class _Track:
    """One file's progress: windows decoded and not yet scored, and the sum of their probabilities."""

    result: FilePrediction
    pending: int = 0
    decoded: bool = False
    probability_sum: torch.Tensor | None = None


def _libsndfile_reads(path: Path) -> bool:
    """Whether libsndfile opens the file, i.e. whether `hf_fma.audio` can seek in it; other formats (M4A)
    go through the ffmpeg binary, which hf_fma.audio runs on the whole file at every call."""
    try:
        sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError):
        return False
    return True


def _decode_windows(
    result: FilePrediction, sampling_rate: int, window: int, hop: int, max_windows: int | None
) -> Iterator[np.ndarray]:
    """The file's windows as mono arrays at `sampling_rate`, decoded one at a time, silent ones left out.
    Sets the result's duration and window count, its error when nothing can be classified, its warning
    when windows were left out."""
    path = Path(result.file)
    try:
        if path.stat().st_size == 0:
            result.error = "empty file (0 bytes)"
            return
        if _libsndfile_reads(path):
            duration = audio_duration(path)  # from the header, nothing decoded

            def read(start: int) -> np.ndarray:
                return load_audio(path, sampling_rate, offset=start / sampling_rate, duration=window / sampling_rate)
        else:
            whole = load_audio(path, sampling_rate)  # ffmpeg decodes it whole anyway: once, not per window
            duration = len(whole) / sampling_rate

            def read(start: int) -> np.ndarray:
                return whole[start : start + window]
    except (AudioDecodeError, OSError) as error:
        result.error = _reason(error)
        return
    result.duration = round(duration, 2)
    if duration < MIN_DURATION:
        result.error = f"too short: {duration:.3f} s of audio, under the {MIN_DURATION} s minimum"
        return

    total = seconds_to_samples(duration, sampling_rate)
    starts = window_starts(total, window, hop, max_windows)
    silent = 0
    end = 0  # the sample after the last one decoded
    for start in starts:
        try:
            audio = read(start)
        except AudioDecodeError as error:
            if result.windows == 0:
                result.error = _reason(error)
                return
            result.warning = (
                f"decoding failed at {start / sampling_rate:.1f} s ({_reason(error)}); "
                f"classified from the {result.windows} windows before"
            )
            return
        end = max(end, start + len(audio))
        if len(audio) >= MIN_DURATION * sampling_rate:  # not a sliver before a truncation
            if np.abs(audio).max() < SILENCE_PEAK:
                silent += 1
            else:
                result.windows += 1
                yield audio
        if len(audio) < min(window, total - start) - TRUNCATION_TOLERANCE * sampling_rate:
            break  # the audio ends here, before its header says: later windows would be empty

    notes = []
    if end < total - TRUNCATION_TOLERANCE * sampling_rate:
        result.duration = round(end / sampling_rate, 2)
        notes.append(f"audio ends at {end / sampling_rate:.1f} s of the {duration:.1f} s its header declares "
                     "(truncated or corrupt file)")
    if result.windows == 0:
        if silent:
            notes.append(f"silent throughout (peak under {SILENCE_DBFS} dBFS)")
        elif not notes:
            notes.append(f"only {end / sampling_rate:.3f} s of audio decodes, under the {MIN_DURATION} s minimum")
        result.error = "nothing to classify: " + "; ".join(notes)
        return
    if silent:
        notes.append(f"{silent} silent window{'s' * (silent > 1)} (peak under {SILENCE_DBFS} dBFS) left out of "
                     "the average")
    if notes:
        result.warning = "; ".join(notes)


class _DecodedFiles(torch.utils.data.IterableDataset):
    """Files' windows decoded in DataLoader workers: worker k of N takes files k, k + N, ... and yields one
    item per file, (its FilePrediction, its windows), so the DataLoader's round robin over the workers
    hands the files over in input order and the batches are those of decoding in one process. With a
    `collator`, the windows come as their model inputs, a (windows, frames, mel) tensor."""

    def __init__(self, files: list[tuple[Path, str | None]], sampling_rate: int, window: int, hop: int,
                 max_windows: int | None, collator: FbankCollator | None):
        self.files, self.decoding, self.collator = files, (sampling_rate, window, hop, max_windows), collator

    def __iter__(self) -> Iterator[tuple[FilePrediction, list[np.ndarray] | torch.Tensor]]:
        worker = torch.utils.data.get_worker_info()
        index, count = (worker.id, worker.num_workers) if worker else (0, 1)
        for path, error in self.files[index::count]:
            result = FilePrediction(file=str(path), error=error)
            windows = [] if error else list(_decode_windows(result, *self.decoding))
            if windows and self.collator is not None:
                windows = self.collator([{"waveform": audio} for audio in windows])["input_values"]
            yield result, windows


def _as_given(item):
    """The DataLoader's collate_fn: items as the workers made them (the default turns arrays into tensors)."""
    return item


def _decoded_files(
    files: list[tuple[Path, str | None]], sampling_rate: int, window: int, hop: int, max_windows: int | None,
    num_workers: int, worker_collator: FbankCollator | None = None,
) -> Iterator[tuple[FilePrediction, Iterable[np.ndarray] | torch.Tensor]]:
    """(result, windows) per file in input order; a result is complete once its windows are consumed.
    Without workers the windows are decoded as they are consumed, one at a time; with workers and a
    `worker_collator`, the workers turn them into model inputs too."""
    if num_workers == 0:
        for path, error in files:
            result = FilePrediction(file=str(path), error=error)
            yield result, () if error else _decode_windows(result, sampling_rate, window, hop, max_windows)
        return
    decoded = _DecodedFiles(files, sampling_rate, window, hop, max_windows, worker_collator)
    yield from torch.utils.data.DataLoader(decoded, batch_size=None, num_workers=num_workers, collate_fn=_as_given)


def _reason(error: Exception) -> str:
    """What went wrong on one line (decoders' messages span several), without repeating the path in
    front: the file is named in its own column."""
    if isinstance(error, AudioDecodeError):
        reason = error.reason
    elif isinstance(error, OSError) and error.strerror:
        reason = error.strerror
    else:
        reason = str(error) or type(error).__name__
    return " ".join(reason.split())


def _probabilities(model: PreTrainedModel, logits: torch.Tensor) -> torch.Tensor:
    """Scores as the audio-classification pipeline computes them: sigmoid for multi-label models, softmax
    otherwise."""
    if model.config.problem_type == "multi_label_classification":
        return logits.sigmoid()
    return logits.softmax(dim=-1)


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
) -> Iterator[FilePrediction]:
    """`predict_files` one result at a time, in input order, each as soon as its last window is scored."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be 0 (decode in this process) or more, got {num_workers}")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    if max_windows is not None and max_windows < 1:
        raise ValueError(f"max_windows must be at least 1, got {max_windows}")
    sampling_rate = feature_extractor.sampling_rate
    window = extractor_crop_samples(feature_extractor)  # each window gets the features a training crop got
    hop_samples = window if hop is None else seconds_to_samples(hop, sampling_rate)
    if hop_samples < 1:
        raise ValueError(f"hop must be a positive number of seconds, got {hop}")
    labels = [model.config.id2label[index] for index in range(model.config.num_labels)]
    top_k = min(top_k, len(labels))
    device = model.device

    files = find_audio_files(paths)
    queue: deque[_Track] = deque()  # tracks whose result is not yet out, in input order
    batch: list[tuple[_Track, np.ndarray | torch.Tensor]] = []  # windows, or their model inputs

    # ASTFeatureExtractor's fbank for a whole batch at once, on the model's device (the extractor itself
    # loops over clips in numpy: 4 times slower for 16 windows on this CPU, and never on a GPU).
    collator = FbankCollator(BatchedFbank.from_feature_extractor(feature_extractor).to(device))
    # With the model on the CPU, decoding workers compute the fbank of their files too, leaving this process
    # the model alone (on 2 cores, fbank and model in this process bound 2 workers to 1.4x the files/s of
    # none); a GPU computes it faster than they would. The records are the same: BatchedFbank gives each
    # window the same values bit for bit whatever the batch it is computed in.
    worker_features = num_workers > 0 and device.type == "cpu"

    def score() -> None:
        if worker_features:
            input_values = torch.stack([features for _, features in batch])  # (batch, frames, mel)
        else:
            input_values = collator([{"waveform": audio} for _, audio in batch])["input_values"]
        with torch.inference_mode():
            logits = model(input_values=input_values.to(device=device, dtype=model.dtype)).logits
        probabilities = _probabilities(model, logits).float().cpu()  # (batch, num_labels)
        for (track, _), row in zip(batch, probabilities):  # row: (num_labels,)
            track.probability_sum = row if track.probability_sum is None else track.probability_sum + row
            track.pending -= 1
        batch.clear()

    def finished() -> Iterator[FilePrediction]:
        while queue and queue[0].decoded and queue[0].pending == 0:
            track = queue.popleft()
            result = track.result
            if result.ok:
                mean = track.probability_sum / result.windows
                scores, indices = mean.topk(top_k)
                result.predictions = [
                    {"label": labels[index], "score": round(score, 6)}
                    for score, index in zip(scores.tolist(), indices.tolist())
                ]
            else:
                result.windows, result.duration = 0, None
            bar.update()
            yield result

    # On stderr, and only for several files on a terminal (disable=None): piped output stays clean.
    show_bar = progress and len(files) > 1
    bar = tqdm(total=len(files), unit="file", desc="predict", disable=None if show_bar else True, file=sys.stderr)
    try:
        decoded = _decoded_files(files, sampling_rate, window, hop_samples, max_windows, num_workers,
                                 collator if worker_features else None)
        for result, windows in decoded:
            track = _Track(result)
            queue.append(track)
            for audio in windows:  # a waveform, or with worker_features its (frames, mel) model input
                track.pending += 1
                batch.append((track, audio))
                if len(batch) == batch_size:
                    score()
            track.decoded = True
            yield from finished()
        if batch:
            score()
        yield from finished()
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
) -> list[FilePrediction]:
    """Top-k genres of each audio file (folders are searched recursively), one FilePrediction per file in
    input order; files that cannot be classified get one with `error` set instead of raising.

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
    """
    model, feature_extractor = load_classifier(model_or_path, feature_extractor, device)
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return list(
        iter_predictions(
            model, feature_extractor, paths, top_k=top_k, hop=hop, max_windows=max_windows,
            batch_size=batch_size, num_workers=num_workers, progress=progress,
        )
    )


# ---------------------------------------------------------------------------------------------------------
# Output


def _ranked_cells(result: FilePrediction, top_k: int, digits: int) -> list[str]:
    """Genre and score for ranks 1 to top_k, blank where the result has none (errors)."""
    cells = []
    for rank in range(top_k):
        if rank < len(result.predictions):
            prediction = result.predictions[rank]
            cells += [prediction["label"], f"{prediction['score']:.{digits}f}"]
        else:
            cells += ["", ""]
    return cells


def _csv_header(top_k: int) -> list[str]:
    ranked = [column for rank in range(1, top_k + 1) for column in (f"genre_{rank}", f"score_{rank}")]
    return ["file", "duration", "windows", *ranked, "error", "warning"]


def _csv_row(result: FilePrediction, top_k: int) -> list[Any]:
    duration = "" if result.duration is None else result.duration
    ranked = _ranked_cells(result, top_k, digits=4)
    return [result.file, duration, result.windows, *ranked, result.error or "", result.warning or ""]


def format_table(results: Sequence[FilePrediction], top_k: int) -> str:
    """Aligned columns: file, seconds, windows, then genre and score per rank; errors and warnings last."""
    header = ["file", "seconds", "windows"]
    for rank in range(1, top_k + 1):
        header += [f"genre {rank}", "score"]
    header.append("note")
    rows = []
    for result in results:
        row = [result.file, f"{result.duration:.1f}", str(result.windows)] if result.ok else [result.file, "-", "-"]
        row += _ranked_cells(result, top_k, digits=3)
        row.append(f"error: {result.error}" if result.error else f"warning: {result.warning}" if result.warning else "")
        rows.append(row)
    numeric = {1, 2, *range(4, 3 + 2 * top_k, 2)}  # right-aligned columns: seconds, windows, scores
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.rjust(width) if column in numeric else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def write_predictions(
    results: Iterable[FilePrediction], stream: TextIO, output_format: str, top_k: int
) -> list[FilePrediction]:
    """Write results as a table, JSON lines or CSV. JSON lines and CSV rows go out as each result arrives,
    each followed by a flush (a long run's output survives an interruption); the table waits for all to
    align its columns, or for an interruption (Ctrl-C, an error) to print the rows finished before it.
    Returns the results."""
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {output_format!r}; valid formats: {', '.join(OUTPUT_FORMATS)}")
    written = []
    writer = csv.writer(stream) if output_format == "csv" else None
    if writer:
        writer.writerow(_csv_header(top_k))
    try:
        for result in results:
            written.append(result)
            if output_format == "jsonl":
                stream.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")
            elif writer:
                writer.writerow(_csv_row(result, top_k))
            stream.flush()
    finally:
        if output_format == "table" and written:
            stream.write(format_table(written, top_k))
            stream.flush()
    return written


# ---------------------------------------------------------------------------------------------------------
# Command line


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
    parser.add_argument("--no_progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--trust_remote_code", action="store_true",
                        help="run the Python code a Hub repository or folder names in its auto_map (off: such a "
                        "model is refused; hf-fma's own CNN and feature extractor need no code from the folder)")
    return parser


class _OutputFile:
    """The `--output` file, written as a temporary file beside it (same folder, so the rename is atomic,
    with the permissions a plain `open` would give it) that takes the file's name at the first flush
    after a row, i.e. as soon as it holds one whole row; later rows are written to it in place. Until
    then the old file is kept; closed without a row (an interrupt before the first file finished), the
    temporary file is deleted and the old one stays. Two runs writing the same file each replace it whole
    instead of interleaving or truncating each other."""

    def __init__(self, path: Path, output_format: str):
        self.path = path
        self.stream = tempfile.NamedTemporaryFile(
            "w", dir=path.parent, prefix=f".{path.name}.", suffix=".partial", delete=False,
            newline="" if output_format == "csv" else None, encoding="utf-8",
        )
        self.name = self.stream.name
        self.holds_rows = False  # a flush after a row has put it in place of `path`
        os.chmod(self.name, new_file_mode())

    def write(self, text: str) -> int:
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()
        if not self.holds_rows:
            os.replace(self.name, self.path)
            self.holds_rows = True

    def close(self) -> None:
        self.stream.close()
        if not self.holds_rows:
            os.unlink(self.name)


def main(argv: list[str] | None = None) -> int:
    """`hf-fma predict MODEL PATH... [--format table|jsonl|csv] [--output FILE] [--top-k K] [--hop SECONDS]
    [--max-windows N] [--batch-size B] [--num-workers N] [--device DEVICE] [--threads N] [--no-progress]`."""
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
        # Opened before any decoding so a bad --output path fails at once, not after an hour of audio.
        stream = sys.stdout if args.output is None else _OutputFile(args.output, args.output_format)
    except (ValueError, OSError) as error:
        print(f"hf-fma predict: {error}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    elif args.num_workers and model.device.type == "cpu":
        # The workers keep their cores busy decoding: torch's default of a thread per core would make the
        # model's threads fight them (2 cores, 2 workers: 1.2x the files/s of no worker, against 1.75x).
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()  # not on macOS
        torch.set_num_threads(max(1, cores - args.num_workers))

    results = iter_predictions(
        model, feature_extractor, args.paths, top_k=args.top_k, hop=args.hop, max_windows=args.max_windows,
        batch_size=args.batch_size, num_workers=args.num_workers, progress=not args.no_progress,
    )
    try:
        written = write_predictions(results, stream, args.output_format, min(args.top_k, model.config.num_labels))
    finally:
        if stream is not sys.stdout:
            stream.close()
    failed = [result for result in written if not result.ok]
    if failed:
        print(f"hf-fma predict: {len(failed)} of {len(written)} files failed (see their error rows)", file=sys.stderr)
    return 1 if failed else 0


__all__ = [
    "AUDIO_EXTENSIONS",
    "MIN_DURATION",
    "FilePrediction",
    "find_audio_files",
    "format_table",
    "iter_predictions",
    "load_classifier",
    "main",
    "predict_files",
    "resolve_device",
    "window_starts",
    "write_predictions",
]


if __name__ == "__main__":
    sys.exit(main())
