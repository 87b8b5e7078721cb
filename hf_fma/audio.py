"""Audio loading for training on the fly: decode only the window needed, mix to mono, resample, crop.

Training reads each 30 s FMA clip many times but looks at 5 s of it: decoding the whole MP3 and
resampling all of it (what `datasets.Audio` does) costs about six times the work that is kept. Here a
crop is read by seeking in the file (libsndfile seeks MP3 sample-exactly; an MP3 is decoded from a little
before the crop, see `_mp3_preroll`), with a small aligned margin on each side so that the soxr-resampled
window equals the same samples of the whole resampled track.

Every function takes an audio *source*: a path, raw bytes, or a `datasets` audio value - either
`{"path": ..., "bytes": ...}` (the column cast with `Audio(decode=False)`, which is what hf_fma's
transforms expect) or an already decoded one: `{"array": ..., "sampling_rate": ...}` (datasets 3.x) or
torchcodec's `AudioDecoder` (datasets 4 and later).

    >>> from hf_fma.audio import load_audio, load_crop
    >>> clip = load_audio("fma_small/000/000002.mp3", offset=10.0, duration=5.0)  # (80000,) float32, 16 kHz
    >>> crop = load_crop("fma_small/000/000002.mp3", crop_seconds=5.0, policy="random")
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import soundfile as sf
import soxr
import torch

from hf_fma.geometry import SAMPLING_RATE, seconds_to_samples

CROP_POLICIES = ("random", "center", "even")
# Resampling context kept on each side of a window, so soxr's filter sees the same neighbours as when it
# resamples the whole track (10 ms already gives 3e-7 agreement on FMA MP3s; 20 ms leaves room).
_RESAMPLING_MARGIN_SECONDS = 0.02

AudioSource = Any  # str | os.PathLike | bytes | Mapping (datasets audio dict) | torchcodec AudioDecoder


class AudioDecodeError(ValueError):
    """An audio file could not be decoded; the message names the file (or track) and the reason."""

    def __init__(self, source_name: str, reason: str):
        super().__init__(f"cannot decode audio {source_name}: {reason}")
        self.source_name = source_name
        self.reason = reason


def _is_audio_decoder(source: AudioSource) -> bool:
    """torchcodec's `AudioDecoder`, what datasets >= 4 decodes an `Audio` column to (duck-typed, so that
    torchcodec is imported only by datasets, where it is installed)."""
    return hasattr(source, "get_all_samples")


def source_name(source: AudioSource) -> str:
    """A short human-readable name for an audio source, for error messages."""
    if _is_audio_decoder(source):
        return "<decoded audio (AudioDecoder)>"
    if isinstance(source, Mapping):
        if source.get("path"):
            return str(source["path"])
        if source.get("bytes") is not None:
            return f"<{len(source['bytes'])} bytes>"
        return "<decoded array>"
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    return os.fspath(source)


# What libmpg123 prints on stderr for the first frames it decodes after a seek: a Layer III frame borrows
# bits from the frames before it (the bit reservoir), which a seek did not read. Those frames lie in the
# pre-roll that `_AudioReader.frames` decodes and throws away (`_mp3_preroll`; tests/test_audio.py: crops
# equal the same samples of the whole decoded track); the lines only swamp the terminal (~1,400 per demo
# run). libsndfile gives no way to pass libmpg123 its MPG123_QUIET flag, so they are dropped where they are
# produced, in `_seek_stderr_filtered`.
_SEEK_NOISE = re.compile(
    rb"\[src/libmpg123/layer3\.c:[^\]]*\] error: "
    rb"(part2_3_length \(\d+\) too large for available bit count \(\d+\)|dequantization failed!)"
)
# fd 2 belongs to the whole process: threads decoding at once share one redirection (the first one in
# opens it, the last one out restores fd 2 and passes on what was caught), under this lock.
_stderr_lock = threading.Lock()
_stderr_capture: dict[str, Any] = {"depth": 0, "saved_fd": None, "file": None}


def _stderr_capture_after_fork() -> None:
    """A forked child (a DataLoader worker) gets its own capture file (a shared one would share its file
    offset with the parent), fd 2 back if it was forked mid-capture, and a lock no other thread holds."""
    global _stderr_lock
    if _stderr_capture["depth"]:
        os.dup2(_stderr_capture["saved_fd"], 2)
        os.close(_stderr_capture["saved_fd"])
    _stderr_capture.update(depth=0, saved_fd=None, file=None)
    _stderr_lock = threading.Lock()


os.register_at_fork(after_in_child=_stderr_capture_after_fork)


@contextmanager
def _seek_stderr_filtered() -> Iterator[None]:
    """Run a libsndfile seek and read with the C library's stderr caught, then write every caught line back
    to stderr except libmpg123's seek noise (`_SEEK_NOISE`). Anything else written meanwhile (a real
    decode error's messages, another thread's logs) still reaches stderr, a moment later."""
    with _stderr_lock:
        capture = _stderr_capture
        if capture["depth"] == 0:
            if capture["file"] is None:
                capture["file"] = tempfile.TemporaryFile()
            sys.stderr.flush()
            capture["saved_fd"] = os.dup(2)
            os.dup2(capture["file"].fileno(), 2)
        capture["depth"] += 1
    try:
        yield
    finally:
        with _stderr_lock:
            capture["depth"] -= 1
            if capture["depth"] == 0:
                sys.stderr.flush()
                os.dup2(capture["saved_fd"], 2)
                os.close(capture["saved_fd"])
                caught_file = capture["file"]
                caught_file.seek(0)
                caught = caught_file.read()
                caught_file.seek(0)
                caught_file.truncate()
                kept = b"".join(line for line in caught.splitlines(keepends=True) if not _SEEK_NOISE.search(line))
                if kept:
                    os.write(2, kept)


def _mp3_preroll(sampling_rate: int, channels: int) -> int:
    """Samples to decode, and throw away, before a seek target in a Layer III MP3, so that the samples from
    the target on equal those of a decode from the start of the file.

    A Layer III frame's data may begin up to 511 bytes (MPEG-1; 255 in MPEG-2 and 2.5) back in the data of
    the frames before it: the bit reservoir. After a seek, libmpg123 decodes only a few frames before the
    target, too few at low bitrates: a frame whose reservoir starts before them decodes wrong ("part2_3_length
    too large"), off by up to 0.9 on the demo's 22.05 kHz clips. The reservoir spans the most frames when each
    is the smallest the format allows (its lowest bitrate, with a CRC): that many frames, plus two for the
    decoder's memory of the frame before (the IMDCT overlap, then the synthesis filter bank), are enough.
    The lowest rates of the header tables are used, not the file's own: in a VBR file any frame may be small.
    That is 0.68 s at 22.05 kHz mono (the demo's clips needed up to 0.47 s) and 0.26 s at 44.1 kHz stereo.
    """
    mpeg1 = sampling_rate >= 32000  # MPEG-1 has 32, 44.1 and 48 kHz; MPEG-2 and 2.5 the lower rates
    samples_per_frame = 1152 if mpeg1 else 576
    reservoir_bytes = 511 if mpeg1 else 255
    lowest_bitrate = 32000 if mpeg1 else 8000
    side_info_bytes = (17 if channels == 1 else 32) if mpeg1 else (9 if channels == 1 else 17)
    smallest_frame_bytes = samples_per_frame // 8 * lowest_bitrate // sampling_rate
    main_data_bytes = max(1, smallest_frame_bytes - 4 - 2 - side_info_bytes)  # 4-byte header, 2-byte CRC
    return (-(-reservoir_bytes // main_data_bytes) + 2) * samples_per_frame


def resampled_length(num_frames: int, source_rate: int, target_rate: int) -> int:
    """Samples soxr returns for `num_frames` samples resampled from `source_rate` to `target_rate`."""
    return (num_frames * target_rate + source_rate // 2) // source_rate


class _AudioReader:
    """An open audio source read in windows: `frames(start, stop)` -> (samples, channels) float32."""

    def __init__(self, source: AudioSource):
        self.name = source_name(source)
        self._sound_file = None
        self._array = None
        if _is_audio_decoder(source):
            try:
                samples = source.get_all_samples()  # data: (channels, samples) float32 tensor
            except RuntimeError as error:  # torchcodec reports decoding failures as RuntimeError
                raise AudioDecodeError(self.name, str(error)) from error
            self._array = samples.data.cpu().numpy().T  # (samples, channels)
            self.sampling_rate = int(samples.sample_rate)
            self.num_frames = len(self._array)
            return
        if isinstance(source, Mapping) and source.get("array") is not None:
            if not source.get("sampling_rate"):
                raise AudioDecodeError(self.name, "a decoded audio dict needs its 'sampling_rate'")
            array = np.asarray(source["array"], dtype=np.float32)
            # datasets decodes to (samples,) or, with mono=False, to (channels, samples)
            self._array = array[:, None] if array.ndim == 1 else array.T  # (samples, channels)
            self.sampling_rate = int(source["sampling_rate"])
            self.num_frames = len(self._array)
            return
        file = _file_object(source)
        if isinstance(file, str) and not os.path.isfile(file):
            raise AudioDecodeError(self.name, "no such file")
        try:
            self._sound_file = sf.SoundFile(file)
        except (sf.LibsndfileError, RuntimeError, TypeError) as error:
            # Formats libsndfile cannot read (M4A, some FMA files): ffmpeg when present, else a clear error.
            self._array, self.sampling_rate = _decode_with_ffmpeg(source, self.name, error)
            self.num_frames = len(self._array)
            return
        self.sampling_rate = self._sound_file.samplerate
        self.num_frames = self._sound_file.frames
        self._seek_preroll = (
            _mp3_preroll(self.sampling_rate, self._sound_file.channels)
            if self._sound_file.subtype == "MPEG_LAYER_III" else 0
        )
        if self.num_frames <= 0:
            self.close()
            raise AudioDecodeError(self.name, "the file holds no audio samples")

    def frames(self, start: int, stop: int) -> np.ndarray:
        stop = min(stop, self.num_frames)
        if stop <= start:
            return np.zeros((0, 1), dtype=np.float32)
        if self._array is not None:
            return self._array[start:stop]
        first = max(0, start - self._seek_preroll)
        try:
            # Only libmpg123 prints seek noise: other formats' reads leave stderr alone.
            with _seek_stderr_filtered() if self._seek_preroll else contextlib.nullcontext():
                self._sound_file.seek(first)
                frames = self._sound_file.read(stop - first, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as error:
            raise AudioDecodeError(self.name, f"decoding failed at sample {start}: {error}") from error
        if len(frames) <= start - first:
            # A corrupt or cut file whose decodable audio ends before `start`: the error a seek to `start` gives.
            raise AudioDecodeError(
                self.name, f"decoding failed at sample {start}: the audio ends at sample {first + len(frames)} "
                f"(the header declares {self.num_frames})"
            )
        return frames[start - first :]

    def close(self) -> None:
        if self._sound_file is not None:
            self._sound_file.close()
            self._sound_file = None

    def __enter__(self) -> _AudioReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _file_object(source: AudioSource):
    if isinstance(source, Mapping):
        if source.get("bytes") is not None:
            return io.BytesIO(source["bytes"])
        if source.get("path"):
            return os.fspath(source["path"])
        raise AudioDecodeError(source_name(source), "the audio dict has neither 'bytes' nor 'path' nor 'array'")
    if isinstance(source, (bytes, bytearray)):
        return io.BytesIO(source)
    return os.fspath(source)


def _decode_with_ffmpeg(source: AudioSource, name: str, soundfile_error: Exception) -> tuple[np.ndarray, int]:
    """Whole-file decode by the ffmpeg binary to float32 (samples, channels) at the file's own rate."""
    reason = f"libsndfile cannot read it ({soundfile_error})"
    if shutil.which("ffmpeg") is None:
        raise AudioDecodeError(name, f"{reason}, and no ffmpeg binary is installed to try instead")
    file = _file_object(source)
    data = file.getvalue() if isinstance(file, io.BytesIO) else None
    source_arg = "pipe:0" if data is not None else file
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=sample_rate,channels",
         "-of", "csv=p=0", source_arg],
        input=data, capture_output=True,
    )
    fields = probe.stdout.decode().strip().split(",")
    if probe.returncode != 0 or len(fields) != 2 or not all(field.isdigit() for field in fields):
        raise AudioDecodeError(name, f"{reason}; ffprobe: {_ffmpeg_message(probe.stderr) or 'no audio stream'}")
    sampling_rate, channels = int(fields[0]), int(fields[1])
    decoded = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", source_arg, "-map", "0:a:0", "-f", "f32le", "pipe:1"],
        input=data, capture_output=True,
    )
    samples = np.frombuffer(decoded.stdout, dtype=np.float32)
    if decoded.returncode != 0 or samples.size == 0:
        raise AudioDecodeError(name, f"{reason}; ffmpeg: {_ffmpeg_message(decoded.stderr) or 'no samples'}")
    return samples.reshape(-1, channels), sampling_rate  # (samples, channels)


def _ffmpeg_message(stderr: bytes) -> str:
    """What ffprobe or ffmpeg printed, without the decoder's memory address they tag it with ("[mp3 @
    0x5569da49d740]"), which differs from run to run and process to process and tells a user nothing."""
    return re.sub(r" @ 0x[0-9a-f]+\]", "]", stderr.decode().strip())


def _read_window(
    reader: _AudioReader, start: int, num_samples: int | None, sampling_rate: int, pad: bool
) -> np.ndarray:
    """Samples [start, start + num_samples) of the track mixed to mono and resampled to `sampling_rate`.

    The source window is widened by a margin aligned to the rate ratio (a whole number of source samples
    that maps to a whole number of target samples), so the result equals the same slice of the whole
    track resampled at once. Where the audio ends first, the window is shorter, or zero-padded if `pad`.
    """
    total = resampled_length(reader.num_frames, reader.sampling_rate, sampling_rate)
    stop = total if num_samples is None else start + num_samples
    common = math.gcd(reader.sampling_rate, sampling_rate)
    source_unit, target_unit = reader.sampling_rate // common, sampling_rate // common
    margin = 0 if source_unit == target_unit else math.ceil(
        _RESAMPLING_MARGIN_SECONDS * reader.sampling_rate / source_unit
    )
    first_unit = max(0, start // target_unit - margin)
    last_unit = -(-stop // target_unit) + margin
    frames = reader.frames(first_unit * source_unit, last_unit * source_unit)  # (samples, channels)
    mono = frames @ np.full(frames.shape[1], 1.0 / frames.shape[1], dtype=np.float32)  # (samples,)
    if source_unit != target_unit and len(mono):
        mono = soxr.resample(mono, reader.sampling_rate, sampling_rate)
    skip = start - first_unit * target_unit
    window = mono[skip : skip + (stop - start)]
    if pad and len(window) < stop - start:
        window = np.pad(window, (0, stop - start - len(window)))
    return np.ascontiguousarray(window, dtype=np.float32)


def audio_duration(source: AudioSource) -> float:
    """Duration of an audio source in seconds (from the header: the file is not decoded)."""
    with _AudioReader(source) as reader:
        return reader.num_frames / reader.sampling_rate


def load_audio(
    source: AudioSource, sampling_rate: int = SAMPLING_RATE, offset: float = 0.0, duration: float | None = None
) -> np.ndarray:
    """Mono float32 samples at `sampling_rate` from `offset` seconds, decoding only that window.

    With `duration`, `round(duration * sampling_rate)` samples, fewer where the audio ends first (a
    truncated file decodes less than its header declares: callers can tell); without it, everything from
    `offset` to the end. Raises AudioDecodeError (naming the file) when the source cannot be decoded.
    """
    if offset < 0 or (duration is not None and duration < 0):
        raise ValueError(f"offset and duration must be >= 0, got offset={offset}, duration={duration}")
    with _AudioReader(source) as reader:
        num_samples = None if duration is None else seconds_to_samples(duration, sampling_rate)
        return _read_window(reader, seconds_to_samples(offset, sampling_rate), num_samples, sampling_rate, pad=False)


def crop_offset(
    num_samples: int,
    crop_samples: int,
    policy: str,
    crop_index: int = 0,
    n_crops: int = 1,
    generator: torch.Generator | None = None,
) -> int:
    """First sample of a crop of `crop_samples` in a track of `num_samples` samples.

    policy "random": uniform over all whole crops (training; drawn from `generator`, else from torch's
    global one, which the DataLoader seeds differently in each worker); "center": the middle crop (evaluation); "even": crop
    `crop_index` of `n_crops` evenly spaced crops, the first at the start and the last at the end
    (track-level evaluation; one crop is the center one). A track shorter than the crop starts at 0.
    """
    if policy not in CROP_POLICIES:
        raise ValueError(f"unknown crop policy {policy!r}; valid policies: {', '.join(CROP_POLICIES)}")
    if not 0 <= crop_index < n_crops:
        raise ValueError(f"crop_index must be in [0, {n_crops}), got {crop_index}")
    room = max(0, num_samples - crop_samples)
    if policy == "random":
        return int(torch.randint(room + 1, (), generator=generator))
    if policy == "center" or n_crops == 1:
        return room // 2
    return round(crop_index * room / (n_crops - 1))


def load_crop(
    source: AudioSource,
    crop_seconds: float | None,
    policy: str = "center",
    crop_index: int = 0,
    n_crops: int = 1,
    sampling_rate: int = SAMPLING_RATE,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """One crop of `crop_seconds` (mono float32 at `sampling_rate`) chosen by `policy` (see crop_offset).

    The file is opened once: its length comes from the header, then only the crop is decoded. Tracks
    shorter than the crop are zero-padded at the end. `crop_seconds=None` returns the whole track.
    """
    with _AudioReader(source) as reader:
        if crop_seconds is None:
            return _read_window(reader, 0, None, sampling_rate, pad=False)
        crop_samples = seconds_to_samples(crop_seconds, sampling_rate)
        total = resampled_length(reader.num_frames, reader.sampling_rate, sampling_rate)
        start = crop_offset(total, crop_samples, policy, crop_index, n_crops, generator)
        return _read_window(reader, start, crop_samples, sampling_rate, pad=True)


__all__ = [
    "CROP_POLICIES",
    "AudioDecodeError",
    "audio_duration",
    "crop_offset",
    "load_audio",
    "load_crop",
    "resampled_length",
    "source_name",
]
