"""A miniature FMA in the official archive layout, synthesized offline in seconds.

The real FMA is 7.2 GiB (small) to 879 GiB (full) and only downloadable; the tests, the README's main-job
command and anyone trying the project without the data use this instead. One call writes into a folder:

    fma_metadata.zip   fma_metadata/{README.txt, checksums, tracks.csv, genres.csv}
    fma_small.zip      fma_small/{README.txt, checksums, 000/000123.mp3, ...}
    fma_medium.zip, fma_large.zip, fma_full.zip  (same layout)
    examples/          one test-split clip per small genre as a plain MP3, e.g. rock_153584.mp3

The layout follows the official archives as the FMA's creation script wrote them: bzip2-compressed
entries, README.txt and `checksums` ("<sha1>  000/000123.mp3" lines) first, then the MP3s in the
`f"{tid:06d}"[:3]` folders. fma_metadata.zip holds only tracks.csv and genres.csv, as the real files
are written (`hf_fma.demo.catalogue`; the real archive also has features.csv, echonest.csv and the
raw_*.csv files).

What is in it (for every seed; the seed changes ids, names and the audio's details, not the counts):
- small: the 8 small genres x 16 decodable tracks, 12 training / 2 validation / 2 test per genre, every
  artist in one split only; plus the tracks in DEMO_CORRUPT_TRACK_IDS (an ID3 tag and no audio frames,
  like the real 099134) and DEMO_SHORT_TRACK_IDS (0.3 s of audio, like the real 098565), which a loader
  must report and skip. Their metadata looks like any other small track's.
- medium: small + the 8 other top-level genres (3 to 6 tracks each, unbalanced) + a few more tracks of
  the small genres.
- large: medium + a few tracks tagged with sub-genres only, with several root genres, or with no genre
  (the last two have an empty genre_top).
- full: the tracks of large. Unlike the real fma_full (untrimmed tracks), it holds large's clips byte for
  byte, and `track.duration` (the full track's length in the real metadata) does not match them.

Audio: 10 s clips (configurable) encoded to MP3 with soundfile, mostly 22.05 kHz mono (fast to encode),
one track per small genre and a few others 44.1 kHz stereo, so loaders meet both. Each
genre has its own tempo, rhythm and percussion, timbres, register, filtering and texture (`hf_fma.demo.styles`);
each track draws its own key, tempo, melody, chord progression, levels and mix, so a model has to learn
the genre rather than a file. Deterministic for a given seed, archives included (fixed timestamps).

Run:
    hf-fma make-demo demo_data
    python -m hf_fma.demo demo_data --seed 1 --clip-seconds 10 --workers 2
"""

from __future__ import annotations

import hashlib
import os
import time
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# datasets' tqdm, as every hf-fma command's bar: off with datasets.disable_progress_bars() or
# HF_DATASETS_DISABLE_PROGRESS_BARS=1.
from datasets.utils.tqdm import tqdm

from hf_fma.argparsing import ArgumentParser
from hf_fma.metadata import ARCHIVES, DEMO_ARCHIVE_COMMENT, SMALL_GENRES, SUBSETS, audio_path

from .catalogue import (
    DEMO_CORRUPT_TRACK_IDS,
    DEMO_SHORT_SECONDS,
    DEMO_SHORT_TRACK_IDS,
    DEMO_SMALL_SPLIT_SIZES,
    Track,
    genres_csv,
    plan_tracks,
    tracks_csv,
)
from .music import audio_file

__all__ = [
    "DEMO_CLIP_SECONDS",
    "DEMO_CORRUPT_TRACK_IDS",
    "DEMO_EXAMPLES_FOLDER",
    "DEMO_SHORT_TRACK_IDS",
    "DEMO_SMALL_SPLIT_SIZES",
    "main",
    "make_demo",
]

DEMO_CLIP_SECONDS = 10.0
DEMO_EXAMPLES_FOLDER = "examples"

# The official README.txt of every archive, byte for byte (no final newline).
_README = (
    "This .zip archive is part of the FMA, a dataset for music analysis.\n"
    "Code & data: https://github.com/mdeff/fma\n"
    "Paper: https://arxiv.org/abs/1612.01840\n"
    "\n"
    "Each .mp3 is licensed by its artist.\n"
    "\n"
    "The content's integrity can be verified with sha1sum -c checksums."
).encode()
# The creation script stamped every entry with this date and read-only regular-file permissions.
_ARCHIVE_DATE = (2017, 4, 1, 0, 0, 0)
_ARCHIVE_MODE = 0o100444 << 16


def _write_archive(path: Path, members: list[tuple[str, bytes]]) -> None:
    """Write fma_x.zip as the creation script did: README.txt, checksums, then the files, all bzip2."""
    folder = path.stem
    checksums = "".join(f"{hashlib.sha1(data).hexdigest()}  {name}\n" for name, data in members).encode()
    partial = path.with_name(path.name + ".partial")  # a crash never leaves a valid-looking half archive
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_BZIP2) as archive:
        archive.comment = DEMO_ARCHIVE_COMMENT
        for name, data in [("README.txt", _README), ("checksums", checksums), *members]:
            info = zipfile.ZipInfo(f"{folder}/{name}", date_time=_ARCHIVE_DATE)
            info.compress_type = zipfile.ZIP_BZIP2
            info.external_attr = _ARCHIVE_MODE
            archive.writestr(info, data)
    os.replace(partial, path)


def _parallel_map(function: Callable, items: Iterable, workers: int) -> list:
    """Map on `workers` threads, in order. MP3 encoding (libsndfile), bzip2 and numpy's array loops release
    the GIL, so threads overlap the bulk of the work, without processes' start-up, pickling of the audio,
    or fork's hazards in a process that has already started threads (torch's, under pytest)."""
    if workers == 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(function, items))


def _counted(function: Callable, bar: tqdm) -> Callable:
    """function, advancing the progress bar by one per call (tqdm's updates are thread-safe)."""

    def call(*args):
        result = function(*args)
        bar.update()
        return result

    return call


def make_demo(out_dir: str | os.PathLike, seed: int = 0, *, clip_seconds: float = DEMO_CLIP_SECONDS,
              workers: int = 2, progress: bool = False) -> Path:
    """Write the demo FMA (fma_metadata.zip and fma_{small,medium,large,full}.zip) into out_dir.

    Existing demo archives in out_dir are replaced; nothing else there is touched. Returns out_dir.
    `workers` threads share synthesis, encoding and compression; the output does not depend on it.
    `progress`: a bar of the audio files and archives written, on stderr.

    >>> from hf_fma.demo import make_demo
    >>> make_demo("demo_data")
    >>> from hf_fma import load_fma
    >>> ds = load_fma("small", data_dir="demo_data")
    """
    if not clip_seconds >= 1.0:
        raise ValueError(f"clip_seconds must be at least 1 s (the short bad file is {DEMO_SHORT_SECONDS} s), "
                         f"got {clip_seconds!r}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers!r}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)

    tracks = plan_tracks(seed)
    bar = tqdm(total=len(tracks) + len(ARCHIVES), desc="make-demo", unit="file", disable=not progress)
    files = _parallel_map(_counted(lambda track: audio_file(track, seed, clip_seconds), bar), tracks, workers)
    audio = {track.track_id: data for track, data in zip(tracks, files)}

    def audio_members(subset: str) -> list[tuple[str, bytes]]:
        # Subsets nest: a track belongs to its `subset` cell's subset and every larger one.
        largest = SUBSETS.index("large" if subset == "full" else subset)
        return [(audio_path(t.track_id), audio[t.track_id]) for t in tracks if SUBSETS.index(t.subset) <= largest]

    metadata_members = [("tracks.csv", tracks_csv(tracks)), ("genres.csv", genres_csv(tracks))]
    archives = [  # biggest first, so the two workers finish together
        *((out_dir / ARCHIVES[s].filename, audio_members(s)) for s in ("full", "large", "medium", "small")),
        (out_dir / ARCHIVES["metadata"].filename, metadata_members),
    ]
    _parallel_map(_counted(lambda archive: _write_archive(*archive), bar), archives, workers)
    bar.close()
    _write_examples(out_dir / DEMO_EXAMPLES_FOLDER, tracks, audio)
    return out_dir


def _write_examples(folder: Path, tracks: list[Track], audio: dict[int, bytes]) -> None:
    """One test-split clip per small genre as a plain MP3 (`examples/rock_153584.mp3`), to try a trained
    model on files (`hf-fma predict`, `pipeline`) without unpacking an archive. Test split: no model
    trained on the demo has heard them."""
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.mp3"):
        old.unlink()
    for genre in SMALL_GENRES:
        track = next(t for t in tracks if t.kind == "valid" and t.split == "test" and t.subset == "small" and t.genre_top == genre)
        name = genre.lower().replace("-", "").replace(" ", "_")
        (folder / f"{name}_{track.track_id:06d}.mp3").write_bytes(audio[track.track_id])


def main(argv: list[str] | None = None) -> int:
    """`hf-fma make-demo DIR [--seed N] [--clip-seconds S] [--workers N]`."""
    parser = ArgumentParser(
        prog="hf-fma make-demo",
        description="Write a miniature FMA (official archive layout, synthesized audio) for offline runs.",
    )
    parser.add_argument("out_dir", type=Path, help="folder for fma_metadata.zip and fma_{small,medium,large,full}.zip")
    parser.add_argument("--seed", type=int, default=0, help="changes ids, names and audio, not the counts")
    parser.add_argument("--clip_seconds", type=float, default=DEMO_CLIP_SECONDS, help="length of each clip")
    parser.add_argument("--workers", type=int, default=2, help="threads for synthesis, encoding and compression")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        out_dir = make_demo(args.out_dir, args.seed, clip_seconds=args.clip_seconds, workers=args.workers, progress=True)
    except ValueError as error:
        parser.error(str(error))
    sizes = {p.name: p.stat().st_size for p in sorted(out_dir.glob("fma_*.zip"))}
    print(f"wrote the demo FMA to {out_dir} in {time.perf_counter() - start:.1f} s:")
    for name, size in sizes.items():
        print(f"  {name:<18} {size / 2**20:6.1f} MiB")
    return 0
