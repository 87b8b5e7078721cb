"""The Free Music Archive (FMA) as a `datasets` loading script.

    >>> from datasets import load_dataset
    >>> ds = load_dataset("hf_fma", "small", trust_remote_code=True)             # official archives
    >>> ds = load_dataset("hf_fma", "small", data_dir="/data/fma", trust_remote_code=True)  # local copies
    >>> ds = load_dataset("hf_fma", "mini", streaming=True, trust_remote_code=True)     # no extraction

`"hf_fma"` is this folder (run from the repository root, or give its path; the installed package's is
`os.path.dirname(hf_fma.__file__)`). The builder is also a plain class: `hf_fma.hf_fma.Fma`.

Configs: `small`, `medium`, `large`, `full` (the official subsets) and `mini` (the study's
GTZAN-sized set: 125 tracks per genre of small, deterministic, in the official split proportions).
Extra keyword arguments of `load_dataset` set the config's fields (see `FmaConfig`), e.g.
`mirror_url=...`, `tracks_per_genre=40` or `min_duration=5.0`.

Where each example's audio comes from:
- `data_dir` holding the official zips (`fma_metadata.zip`, `fma_small.zip`, ...) or their extracted
  folders (`fma_metadata/`, `fma_small/`), as the archives unpack;
- otherwise the official archives (or `mirror_url` + the same file names), downloaded once and checked
  against their published sha1.
Non-streaming, zips are extracted once and examples point at the MP3 files (`{"path": ..., "bytes":
None}`), so the Arrow cache holds no second copy of the audio. Streaming extracts nothing: it reads the
zip's members one by one, by name (the zip's central directory gives random access, locally and over
HTTP ranges), and yields their bytes. Both yield the same examples in the same order; reading by name
rather than in archive order (`iter_archive`) is what lets a balanced config replace an unusable track
by the next one in its ranking, identically in both modes.

Every audio file is opened and its first second decoded while the split is prepared: known bad tracks
(`metadata.KNOWN_BAD_TRACK_IDS`), files that cannot be decoded and files shorter than `min_duration`
are left out, and one `BadAudioWarning` per split lists their ids and reasons.

Each split is a list of shards, one per 3-digit folder of the archive (balanced configs: one shard), so
`load_dataset(..., num_proc=N)` prepares in N processes, and a stream split across processes
(`split_dataset_by_node`, accelerate) or DataLoader workers gives each its own shards: each reads only its
share of the audio. Prepared rows are in track-id order whatever `num_proc`; a stream read by several
readers warns in each reader about the tracks it left out.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Optional

import datasets
import soundfile as sf

from .metadata import (
    ARCHIVES,
    FMA_BASE_URL,
    KNOWN_BAD_TRACK_IDS,
    SMALL_GENRES,
    SPLIT_NAMES,
    TOP_GENRES,
    audio_path,
    balanced_order,
    genre_titles,
    load_genres,
    load_tracks,
    split_quotas,
    subset_tracks,
)

# Named, not __name__: `load_dataset` imports a copy of this script under a datasets_modules name, and the
# recipes set the level of the "hf_fma" loggers (`--log_level debug` lists every audio file read).
logger = logging.getLogger("hf_fma.hf_fma")

_CITATION = """\
@inproceedings{fma_dataset,
  title = {{FMA}: A Dataset for Music Analysis},
  author = {Defferrard, Micha\\"el and Benzi, Kirell and Vandergheynst, Pierre and Bresson, Xavier},
  booktitle = {18th International Society for Music Information Retrieval Conference (ISMIR)},
  year = {2017},
  archiveprefix = {arXiv},
  eprint = {1612.01840},
  url = {https://arxiv.org/abs/1612.01840},
}
"""

_DESCRIPTION = """\
The Free Music Archive (FMA): Creative Commons-licensed audio with track, album and artist metadata and a
hierarchical genre taxonomy. small: 8,000 30 s clips of 8 balanced genres; medium: 25,000 clips of 16
unbalanced genres; large: 106,574 clips of 161 genres (16 top-level); full: the same tracks untrimmed.
Splits are the official artist-filtered 80/10/10 training/validation/test split. `genre` is the track's
top-level genre (`genre_top`); large and full keep tracks without one (several or no root genres) with
`genre = -1`; their genres are in `genres`.
"""

_HOMEPAGE = "https://github.com/mdeff/fma"
_LICENSE = "Metadata: CC BY 4.0. Audio: each track under its artist's Creative Commons licence."


class BadAudioWarning(UserWarning):
    """Tracks left out of a split because their audio is known bad, undecodable or too short."""


@dataclass
class FmaConfig(datasets.BuilderConfig):
    """One FMA variant.

    Args:
        subset (`str`): which official subset's tracks and audio archive: small, medium, large or full.
        tracks_per_genre (`int`, *optional*): keep this many tracks per genre, balanced, in the official
            split proportions (`mini` = 125 of small). `None` keeps the whole subset.
        mirror_url (`str`, *optional*): base URL serving the official archive file names, instead of
            the FMA servers.
        verify_sha1 (`bool`, defaults to `True`): check downloaded archives against the official sha1
            (once; the result is remembered beside the download). Off for re-packed mirrors.
        min_duration (`float`, defaults to 2.0): audio shorter than this many seconds is left out.
    """

    subset: str = "small"
    tracks_per_genre: Optional[int] = None
    mirror_url: Optional[str] = None
    verify_sha1: bool = True
    min_duration: float = 2.0

    @property
    def genre_names(self) -> tuple[str, ...]:
        return SMALL_GENRES if self.subset == "small" else TOP_GENRES


class Fma(datasets.GeneratorBasedBuilder):
    """FMA: music-genre classification data with the official artist-filtered splits."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = FmaConfig
    BUILDER_CONFIGS = [
        FmaConfig(name="small", subset="small", description="8,000 30 s clips, 8 balanced genres."),
        FmaConfig(name="medium", subset="medium", description="25,000 30 s clips, 16 unbalanced genres."),
        FmaConfig(name="large", subset="large", description="106,574 30 s clips; 16 top-level genres."),
        FmaConfig(name="full", subset="full", description="106,574 untrimmed tracks; 16 top-level genres."),
        FmaConfig(
            name="mini",
            subset="small",
            tracks_per_genre=125,
            description="1,000 tracks of small, 125 per genre, official split proportions (800/100/100).",
        ),
    ]
    DEFAULT_CONFIG_NAME = "small"
    _left_out_dir: Optional[str] = None  # set while a split is prepared (see `_prepare_split`)

    def _info(self):
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=datasets.Features(
                {
                    "track_id": datasets.Value("int32"),
                    "audio": datasets.Audio(),
                    "genre": datasets.ClassLabel(names=list(self.config.genre_names)),
                    "genres": datasets.Sequence(datasets.Value("string")),
                    "title": datasets.Value("string"),
                    "artist": datasets.Value("string"),
                    "album": datasets.Value("string"),
                    "duration": datasets.Value("float32"),
                }
            ),
            supervised_keys=("audio", "genre"),
            homepage=_HOMEPAGE,
            license=_LICENSE,
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager):
        streaming = getattr(dl_manager, "is_streaming", False)
        metadata_root = self._extracted(dl_manager, self._locate(dl_manager, ARCHIVES["metadata"]))
        with open(os.path.join(metadata_root, "fma_metadata", "tracks.csv"), encoding="utf-8") as f:
            tracks = load_tracks(f)
        with open(os.path.join(metadata_root, "fma_metadata", "genres.csv"), encoding="utf-8") as f:
            genres = load_genres(f)
        audio_archive = ARCHIVES[self.config.subset]
        # Streaming, `_extracted` opens the zip lazily: members are then read one by one, by name.
        audio_root = self._extracted(dl_manager, self._locate(dl_manager, audio_archive))
        return [
            datasets.SplitGenerator(
                name=split,
                gen_kwargs={
                    # A list: datasets hands each preparation process (num_proc) and each streaming reader
                    # (split_dataset_by_node, DataLoader workers) its own shards.
                    "shards": self._shards(records, quotas),
                    "quotas": quotas,
                    "audio_folder": os.path.join(audio_root, audio_archive.name),
                    "streaming": streaming,
                },
            )
            for split, (records, quotas) in self._select_tracks(tracks, genres).items()
        ]

    def _generate_examples(self, shards, quotas, audio_folder, streaming):
        left_out = {}  # track_id -> reason, reported once per split (see `_report_left_out`)
        taken = Counter()  # genre label -> tracks yielded, to fill `quotas`
        for record in (record for shard in shards for record in shard):
            track_id = record["track_id"]
            if quotas is not None and taken[record["genre"]] >= quotas[record["genre"]]:
                continue
            location = os.path.join(audio_folder, audio_path(track_id))
            logger.debug("reading %s", location)
            if streaming:
                try:
                    with open(location, "rb") as f:
                        data = f.read()
                except FileNotFoundError:
                    left_out[track_id] = f"no file {audio_path(track_id)} in the audio archive"
                    continue
                source, audio = io.BytesIO(data), {"path": location, "bytes": data}
            elif not os.path.isfile(location):
                left_out[track_id] = f"no file {location}"
                continue
            else:
                source, audio = location, {"path": location, "bytes": None}
            duration, problem = self._probe(source)
            if problem:
                left_out[track_id] = problem
                continue
            taken[record["genre"]] += 1
            yield track_id, {**record, "audio": audio, "duration": duration}
        self._report_left_out(left_out)
        if quotas is not None:
            names = self.config.genre_names
            short = [f"{names[label]} {taken[label]} of {quota}" for label, quota in quotas.items() if taken[label] < quota]
            if short:
                warnings.warn(f"FMA {self.config.name}: fewer usable tracks than asked for: {'; '.join(short)}")

    def _prepare_split(self, split_generator, *args, **kwargs):
        """datasets' preparation of one split, then one `BadAudioWarning` listing every track it left out.

        With `num_proc`, the split's shards are generated in several processes, each of which knows only
        its own left-out tracks: each writes them to a file in a folder made for this split (`_left_out_dir`,
        which reaches the processes with the pickled builder) and this process reports the union."""
        with tempfile.TemporaryDirectory(prefix="hf-fma-left-out-") as folder:
            self._left_out_dir = folder
            try:
                super()._prepare_split(split_generator, *args, **kwargs)
            finally:
                self._left_out_dir = None
            left_out = {}
            for name in os.listdir(folder):
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    left_out.update({int(track_id): reason for track_id, reason in json.load(f).items()})
        _warn_left_out(self.config.name, left_out)

    def _report_left_out(self, left_out: dict[int, str]) -> None:
        """Preparing, hand the tracks a generator left out to `_prepare_split`; streaming, warn now: a reader
        reports its own shards' (the whole split's when it reads all of them)."""
        if self._left_out_dir is None:
            _warn_left_out(self.config.name, left_out)
            return
        with tempfile.NamedTemporaryFile("w", dir=self._left_out_dir, suffix=".json", delete=False) as f:
            json.dump(left_out, f)

    # -- helpers ---------------------------------------------------------------------------------

    def _select_tracks(self, tracks, genres) -> dict[str, tuple[dict[int, dict], Optional[dict[int, int]]]]:
        """Per split: the config's candidate tracks as example records without audio, in the order
        they are taken, and for balanced configs how many to take of each genre label.

        Balanced configs list every track of their genres, best-ranked first, and fill the quotas while
        generating, so that a track whose audio turns out unusable is replaced by the next one."""
        config = self.config
        tracks = subset_tracks(tracks, config.subset)
        known_bad = sorted(KNOWN_BAD_TRACK_IDS & set(tracks.index))
        if known_bad:
            warnings.warn(
                f"FMA {config.name}: {len(known_bad)} known bad track(s) left out (FMA issues #8, #36, #44, "
                f"#70): {', '.join(f'{t:06d}' for t in known_bad)}",
                BadAudioWarning,
            )
            tracks = tracks.drop(index=known_bad)
        label_of = {name: index for index, name in enumerate(config.genre_names)}
        quotas = {split: None for split in SPLIT_NAMES}
        if config.tracks_per_genre:
            tracks = balanced_order(tracks[tracks["track", "genre_top"].isin(config.genre_names)])
            for split in SPLIT_NAMES:
                quotas[split] = {label_of[genre]: split_quotas(config.tracks_per_genre, label_of[genre])[split] for genre in config.genre_names}
        records = {split: {} for split in SPLIT_NAMES}
        for track_id, row in tracks.iterrows():
            genre_top = row["track", "genre_top"]
            records[row["set", "split"]][int(track_id)] = {
                "track_id": int(track_id),
                # -1 is ClassLabel's "no label": large/full tracks with several or no root genres.
                "genre": label_of[genre_top] if isinstance(genre_top, str) else -1,
                "genres": genre_titles(row["track", "genres_all"], genres),
                "title": _text(row["track", "title"]),
                "artist": _text(row["artist", "name"]),
                "album": _text(row["album", "title"]),
            }
        return {name: (records[official], quotas[official]) for official, name in SPLIT_NAMES.items()}

    @staticmethod
    def _shards(records: dict[int, dict], quotas) -> list[list[dict]]:
        """The split's records as shards in track-id order: one per 3-digit folder of the archive (156 in
        large), so that shards hold similar numbers of tracks and concatenating them in order keeps rows
        in track-id order whatever the number of processes. A balanced config fills its quotas in ranking
        order, which only one generator can do: it is one shard."""
        if quotas is not None:
            return [list(records.values())]
        folders = {}
        for track_id in sorted(records):
            folders.setdefault(track_id // 1000, []).append(records[track_id])
        return list(folders.values())

    def _probe(self, source) -> tuple[Optional[float], Optional[str]]:
        """(duration in seconds, None) for usable audio, else (None, why it is left out)."""
        try:
            with sf.SoundFile(source) as f:
                duration = f.frames / f.samplerate
                # Decode the first second: a valid header alone does not prove the audio decodes.
                f.read(min(f.frames, f.samplerate), dtype="float32")
        except Exception as error:  # soundfile raises several types; every one means "unusable"
            return None, f"cannot be decoded ({type(error).__name__}: {error})"
        if duration < self.config.min_duration:
            return None, f"{duration:.2f} s of audio, under min_duration={self.config.min_duration} s"
        return duration, None

    def _locate(self, dl_manager, archive) -> str:
        """The archive's zip or extracted top folder in `data_dir`, else its (mirror) download."""
        data_dir = self.config.data_dir
        if data_dir:
            data_dir = os.path.expanduser(data_dir)
            if os.path.isdir(os.path.join(data_dir, archive.name)):
                return data_dir
            zip_path = os.path.join(data_dir, archive.filename)
            if os.path.isfile(zip_path):
                return zip_path
            if not os.path.isdir(data_dir):
                raise FileNotFoundError(
                    f"data_dir={data_dir!r} is not a folder. (`datasets` reads a relative data_dir from the "
                    "loading script's folder, not the working directory: give an absolute path.)"
                )
            present = ", ".join(sorted(os.listdir(data_dir))) or "nothing"
            raise FileNotFoundError(
                f"{archive.filename} (or its extracted folder {archive.name}/) is not in data_dir={data_dir!r}; "
                f"it holds: {present}"
            )
        url = (self.config.mirror_url or FMA_BASE_URL).rstrip("/") + "/" + archive.filename
        path = dl_manager.download(url)
        if self.config.verify_sha1 and not getattr(dl_manager, "is_streaming", False):
            _verify_sha1(path, archive, url)
        return path

    @staticmethod
    def _extracted(dl_manager, source: str) -> str:
        """A folder for an extracted folder; a zip is extracted once (or, streaming, opened lazily)."""
        return source if os.path.isdir(source) else dl_manager.extract(source)


def _warn_left_out(config_name: str, left_out: dict[int, str]) -> None:
    if left_out:
        listing = "; ".join(f"{track_id:06d}: {reason}" for track_id, reason in sorted(left_out.items()))
        warnings.warn(f"FMA {config_name}: {len(left_out)} track(s) left out: {listing}", BadAudioWarning)


def _text(value) -> Optional[str]:
    return value if isinstance(value, str) else None


def _verify_sha1(path: str, archive, url: str) -> None:
    """Check a downloaded archive against its official sha1, once: hashing fma_full takes hours, so a
    success is remembered in a file beside the download."""
    marker = path + ".sha1"
    if os.path.exists(marker):
        with open(marker) as f:
            if f.read().strip() == archive.sha1:
                return
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 23), b""):
            digest.update(block)
    if digest.hexdigest() != archive.sha1:
        raise ValueError(
            f"{archive.filename} from {url} has sha1 {digest.hexdigest()}, but the official archive's is "
            f"{archive.sha1}: the download is damaged or not the official file. Delete {path} and load "
            "again, or pass verify_sha1=False for a mirror that re-packs the archives."
        )
    with open(marker, "w") as f:
        f.write(archive.sha1)
