"""One audio file as the windows a classifier scores, and its FilePrediction record.

A whole track is classified from windows laid across it, each as long as the model's training crop (the
feature extractor's `max_length` frames, 5.0 s for max_length=500): adjacent by default, overlapping with a
shorter hop, the last one aligned to the track's end. A track shorter than one window (but at least
MIN_DURATION) is one window, padded by the feature extractor as in training. Silent windows are left out,
with a warning; a file whose audio ends before its header says is classified from the audio it has.

Decoding is per window: `hf_fma.audio.load_audio` seeks to each one and decodes, mixes to mono and
resamples only it, so memory holds one batch of windows whatever the track's length - a 2-hour mix costs
what a 30 s clip does. Decoding the whole track first would hold all of it at the file's own rate and
channels before resampling (a 5-minute 44.1 kHz stereo MP3 is 106 MB of float32, a 2-hour mix 2.5 GB).
Reopening and seeking per window costs little beside the model. Formats libsndfile cannot open (M4A) are
decoded whole by the ffmpeg binary, once per file, and cut into windows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from hf_fma.audio import AudioDecodeError, audio_duration, load_audio
from hf_fma.transforms import FbankCollator
from hf_fma.geometry import seconds_to_samples

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


@dataclass
class FilePrediction(Mapping):
    """The outcome for one file: top-k `predictions` ({"label", "score"}, best first, as the audio pipeline
    gives them) or an `error` saying why not; a `warning` when some audio was left out (silent windows, a
    truncated file). `duration`: seconds of audio in the file (what decodes, when that is less than its
    header declares); `windows`: how many windows were averaged. `genres`: for a multi-label model, the
    genres predicted (scores at or above its threshold), in label order; None for a single-label model,
    whose results then have no `genres` key (its one genre is the first of `predictions`).

    It reads like the pipeline's dicts, `result["predictions"]`, `dict(result)`, and by attribute,
    `result.predictions`."""

    file: str
    predictions: list[dict[str, Any]] = field(default_factory=list)
    genres: list[str] | None = None
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
        return (item.name for item in fields(self) if item.name != "genres" or self.genres is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


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


def _libsndfile_reads(path: Path) -> bool:
    """Whether libsndfile opens the file, i.e. whether `hf_fma.audio` can seek in it; other formats (M4A)
    go through the ffmpeg binary, which hf_fma.audio runs on the whole file at every call."""
    try:
        sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError):
        return False
    return True


def decode_windows(
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
            windows = [] if error else list(decode_windows(result, *self.decoding))
            if windows and self.collator is not None:
                windows = self.collator([{"waveform": audio} for audio in windows])["input_values"]
            yield result, windows


def _as_given(item):
    """The DataLoader's collate_fn: items as the workers made them (the default turns arrays into tensors)."""
    return item


def decoded_files(
    files: list[tuple[Path, str | None]], sampling_rate: int, window: int, hop: int, max_windows: int | None,
    num_workers: int, worker_collator: FbankCollator | None = None,
) -> Iterator[tuple[FilePrediction, Iterable[np.ndarray] | torch.Tensor]]:
    """(result, windows) per file in input order; a result is complete once its windows are consumed.
    Without workers the windows are decoded as they are consumed, one at a time; with workers and a
    `worker_collator`, the workers turn them into model inputs too."""
    if num_workers == 0:
        for path, error in files:
            result = FilePrediction(file=str(path), error=error)
            yield result, () if error else decode_windows(result, sampling_rate, window, hop, max_windows)
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


__all__ = [
    "MIN_DURATION",
    "FilePrediction",
    "decode_windows",
    "decoded_files",
    "window_starts",
]
