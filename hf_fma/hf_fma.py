"""The Free Music Archive (FMA) as a `datasets` loading script.

    >>> from datasets import load_dataset
    >>> ds = load_dataset("hf_fma", "small", trust_remote_code=True)             # official archives
    >>> ds = load_dataset("hf_fma", "small", data_dir="/data/fma", trust_remote_code=True)  # local copies
    >>> ds = load_dataset("hf_fma", "mini", streaming=True, trust_remote_code=True)     # no extraction

`"hf_fma"` is this folder (run from the repository root, or give its path; the installed package's is
`os.path.dirname(hf_fma.__file__)`). The builder is also a plain class: `hf_fma.hf_fma.Fma`. datasets 4
and later refuse loading scripts: there (and on 3.6 alike) `hf_fma.load_fma("small", data_dir=...)` runs
this builder class itself.

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
(`metadata.KNOWN_BAD_TRACK_IDS`), files that cannot be read or decoded and files shorter than
`min_duration` are left out, and one `BadAudioWarning` per split lists their ids and reasons. A split
that keeps no track is loaded empty with the loudest warning (an archive extracted in part loads what it
has); a config none of whose splits keeps a track is an error naming the folder and what is missing. A
split that loses more than `_LOSS_WARNING_SHARE` of its tracks gets a second, louder warning with the count.

Damaged, changed and partial data:
- A zip in `data_dir` named like an official archive is checked against the official sha1 once (the
  result is remembered in `<zip>.sha1`, valid only for that zip's size and mtime); the demo's archives
  say in their zip comment that they are not official ones and are not checked. `verify_sha1=False`
  skips the check.
- Zips are extracted all or nothing (into a temporary folder, renamed when complete) and a member that
  cannot be read is an error naming the zip and the member; a member whose path would leave the
  extraction folder (`../`, an absolute path, a symlink) makes the whole archive refused, and so does a
  zip that expands to more than the disk's free space.
- The prepared dataset's cache is keyed on the size and mtime of the zips and of every file in the
  extracted folders in `data_dir` (`FmaConfig.create_config_id`): changing the data prepares it again.

Sharding: each split is a list of shards, one per 3-digit folder of the archive (balanced configs: one shard), so
`load_dataset(..., num_proc=N)` prepares in N processes, and a stream split across processes
(`split_dataset_by_node`, accelerate) or DataLoader workers gives each its own shards: each reads only its
share of the audio. Prepared rows are in track-id order whatever `num_proc`; a stream read by several
readers warns in each reader about the tracks it left out. `datasets` starts a process pool per split
(about 0.25 s on 2 cores), so `num_proc` pays from a few thousand tracks per split.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import shutil
import stat
import tempfile
import warnings
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Optional

import datasets
import pyarrow as pa
import soundfile as sf
from filelock import FileLock

from .metadata import (
    ARCHIVES,
    DEMO_ARCHIVE_COMMENT,
    FMA_BASE_URL,
    KNOWN_BAD_TRACK_IDS,
    SMALL_GENRES,
    SPLIT_NAMES,
    TOP_GENRES,
    audio_path,
    balanced_order,
    example_records,
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


# datasets 4 renamed the list feature type `List` (`Sequence` is its deprecated alias there); each version
# gets its own, so that its features, and the files written from them, use its native type.
_List = getattr(datasets, "List", datasets.Sequence)


class BadAudioWarning(UserWarning):
    """Tracks left out of a split because their audio is known bad, missing, undecodable or too short."""


# A split losing more than this share of its tracks, and more than _FEW_BAD_FILES of them, is warned
# about loudly: FMA's bad files are a few per thousand tracks (6 of small's 8,000, 21 of medium's 25,000),
# so a tenth missing means a folder was not extracted or an archive is incomplete. The floor keeps small
# splits (mini's 100, the demo's 8 to 17 tracks) from crying wolf over one bad file.
_LOSS_WARNING_SHARE = 0.1
_FEW_BAD_FILES = 10
# Rows per Arrow table when preparing (datasets' writer batch): a row is a path and a few fields.
_ROWS_PER_TABLE = 1000
# How many left-out tracks a warning lists by id (a missing folder would otherwise list thousands).
_LISTED_TRACKS = 20


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

    The cache of a prepared dataset is keyed on these fields and, with `data_dir`, on the data itself
    (`create_config_id`).
    """

    subset: str = "small"
    tracks_per_genre: Optional[int] = None
    mirror_url: Optional[str] = None
    verify_sha1: bool = True
    min_duration: float = 2.0

    @property
    def genre_names(self) -> tuple[str, ...]:
        return SMALL_GENRES if self.subset == "small" else TOP_GENRES

    def create_config_id(self, *args, **kwargs) -> str:
        """datasets' id (the name and the keyword arguments, `data_dir` by its path) plus a fingerprint of
        what `data_dir` holds, so that a changed zip or extracted folder is prepared again instead of the
        cache built from the old data being returned."""
        config_id = super().create_config_id(*args, **kwargs)
        if not self.data_dir:
            return config_id
        names = (ARCHIVES["metadata"].name, ARCHIVES[self.subset].name)
        return f"{config_id}-data-{_data_fingerprint(os.path.expanduser(self.data_dir), names)}"


class Fma(datasets.ArrowBasedBuilder):
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
                    "genres": _List(datasets.Value("string")),
                    "title": datasets.Value("string"),
                    "artist": datasets.Value("string"),
                    "album": datasets.Value("string"),
                    # The track's Creative Commons licence (`track.license`): redistributing the audio needs it.
                    "license": datasets.Value("string"),
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
                    "split": split,
                },
            )
            for split, (records, quotas) in self._select_tracks(tracks, genres).items()
        ]

    def _generate_tables(self, shards, quotas, audio_folder, streaming, split):
        """The split's usable tracks as Arrow tables typed with the features' own schema, in track-id order.

        Tables, not examples (`GeneratorBasedBuilder`): datasets >= 4 encodes each example's `Audio` with
        torchcodec, importing its encoder even for a path, so preparing failed wherever torchcodec does
        not load (a CUDA build beside a CPU torch). A table in the features' schema is written as it is,
        on every datasets version. Streaming yields one track per table, so that a reader holds one
        file's bytes at a time; preparing, up to `_ROWS_PER_TABLE` rows of paths."""
        schema = self.info.features.arrow_schema
        rows_per_table = 1 if streaming else _ROWS_PER_TABLE
        rows = []
        left_out = {}  # track_id -> reason, reported once per split (see `_report_left_out`)
        taken = Counter()  # genre label -> tracks yielded, to fill `quotas`
        for record in (record for shard in shards for record in shard):
            track_id = record["track_id"]
            if quotas is not None and taken[record["genre"]] >= quotas[record["genre"]]:
                continue
            source, audio, problem = _open_audio(audio_folder, track_id, streaming)
            if not problem:
                duration, problem = self._probe(source)
            if problem:
                left_out[track_id] = problem
                continue
            taken[record["genre"]] += 1
            rows.append({**record, "audio": audio, "duration": duration})
            if len(rows) == rows_per_table:
                yield rows[0]["track_id"], pa.Table.from_pylist(rows, schema=schema)
                rows = []
        if rows:
            yield rows[0]["track_id"], pa.Table.from_pylist(rows, schema=schema)
        listed = sum(map(len, shards))
        expected = listed if quotas is None else min(listed, sum(quotas.values()))
        self._report_left_out(split, audio_folder, expected, sum(taken.values()), left_out)
        if quotas is not None:
            names = self.config.genre_names
            short = [f"{names[label]} {taken[label]} of {quota}" for label, quota in quotas.items() if taken[label] < quota]
            if short:
                warnings.warn(f"FMA {self.config.name}: fewer usable tracks than asked for: {'; '.join(short)}")

    def _prepare_split(self, split_generator, *args, **kwargs):
        """datasets' preparation of one split, then one report of what it left out (`_check_split`).

        With `num_proc`, the split's shards are generated in several processes, each of which knows only
        its own shards: each writes its count and left-out tracks to a file in a folder made for this split
        (`_left_out_dir`, which reaches the processes with the pickled builder), and this process adds them
        up, so that the report, the empty-split error and the loss warning speak of the whole split."""
        with tempfile.TemporaryDirectory(prefix="hf-fma-left-out-") as folder:
            self._left_out_dir = folder
            try:
                super()._prepare_split(split_generator, *args, **kwargs)
            finally:
                self._left_out_dir = None
            expected = kept = 0
            left_out = {}
            for name in os.listdir(folder):
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    report = json.load(f)
                expected, kept = expected + report["expected"], kept + report["kept"]
                left_out.update({int(track_id): reason for track_id, reason in report["left_out"].items()})
        gen_kwargs = split_generator.gen_kwargs
        self._check_split(gen_kwargs["split"], gen_kwargs["audio_folder"], expected, kept, left_out)

    def _report_left_out(self, split, audio_folder, expected, kept, left_out) -> None:
        """Preparing, hand a generator's count and left-out tracks to `_prepare_split`, which reports the
        whole split once; streaming, report now: a reader reports its own shards (the whole split's when it
        reads all of them)."""
        if self._left_out_dir is None:
            # A reader sees some shards of the split (datasets may start one generator per shard): an empty
            # shard says nothing about the split, so only the whole-split check of `_prepare_split` raises.
            self._check_split(split, audio_folder, expected, kept, left_out, whole_split=False)
            return
        with tempfile.NamedTemporaryFile("w", dir=self._left_out_dir, suffix=".json", delete=False) as f:
            json.dump({"expected": expected, "kept": kept, "left_out": left_out}, f)

    # -- helpers ---------------------------------------------------------------------------------

    def _check_split(self, split, audio_folder, expected, kept, left_out, whole_split=True) -> None:
        """One BadAudioWarning listing the left-out tracks, a louder one when the split lost more than
        _LOSS_WARNING_SHARE. A (`whole_split`) split that keeps none of the tracks tracks.csv gives it is
        loaded empty with the loudest warning, so that a partly extracted archive still loads what it has;
        when the last split is prepared and no split kept any track (the wrong data_dir, an archive never
        extracted), that is an error."""
        if whole_split:
            self.__dict__.setdefault("_split_counts", {})[split] = (expected, kept)
        if not left_out:
            return
        listing = "; ".join(f"{t:06d}: {reason}" for t, reason in sorted(left_out.items())[:_LISTED_TRACKS])
        if len(left_out) > _LISTED_TRACKS:
            listing += f"; and {len(left_out) - _LISTED_TRACKS} more"
        missing = sum(reason.startswith("no file") for reason in left_out.values())
        causes = f"{missing} file(s) missing, {len(left_out) - missing} unusable"
        archive = ARCHIVES[self.config.subset].filename
        if whole_split and kept == 0 and expected:
            counts = self._split_counts
            if len(counts) == len(SPLIT_NAMES) and not any(kept for _, kept in counts.values()):
                listed = ", ".join(f"{name} {expected}" for name, (expected, _) in counts.items())
                raise ValueError(
                    f"FMA {self.config.name} has no usable audio: tracks.csv lists {listed} track(s) and none "
                    f"could be read from {audio_folder} (split {split!r}: {causes}: {listing}). Extract "
                    f"{archive} completely into data_dir (or put the zip itself there), or download it again."
                )
            warnings.warn(
                f"FMA {self.config.name}: SPLIT {split!r} HAS NO AUDIO and is loaded EMPTY: tracks.csv lists "
                f"{expected} track(s) for it and none could be read from {audio_folder} ({causes}: {listing}). "
                f"The other splits load the tracks they have; extract {archive} completely for all of them.",
                BadAudioWarning,
            )
            return
        warnings.warn(f"FMA {self.config.name}: {len(left_out)} track(s) of split {split!r} left out: {listing}", BadAudioWarning)
        if len(left_out) > max(_LOSS_WARNING_SHARE * (kept + len(left_out)), _FEW_BAD_FILES):
            warnings.warn(
                f"FMA {self.config.name}: split {split!r} LOST {len(left_out)} OF ITS {kept + len(left_out)} "
                f"TRACKS ({causes}) in {audio_folder}: a few bad files are normal in FMA, this many means "
                f"{archive} is incomplete or was not fully extracted. Check data_dir, or download it again.",
                BadAudioWarning,
            )

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
        quotas = {split: None for split in SPLIT_NAMES}
        if config.tracks_per_genre:
            tracks = balanced_order(tracks[tracks["track", "genre_top"].isin(config.genre_names)])
            for split in SPLIT_NAMES:
                quotas[split] = {label: split_quotas(config.tracks_per_genre, label)[split] for label in range(len(config.genre_names))}
        records = example_records(tracks, genres, config.subset, config.genre_names)
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
            return None, _undecodable_reason(source, error)
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
                if self.config.verify_sha1 and not _is_demo_archive(zip_path):
                    _verify_sha1(zip_path, archive, f"data_dir={data_dir!r}")
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
        if os.path.isdir(source):
            return source
        if getattr(dl_manager, "is_streaming", False):
            if os.path.isfile(source):
                _open_zip(source).close()  # a truncated local zip is named now, not by fsspec later
            return dl_manager.extract(source)
        config = dl_manager.download_config
        cache_dir = config.cache_dir or datasets.config.DOWNLOADED_DATASETS_PATH
        # force_extract is set by download_mode="force_redownload".
        return _extract_zip(source, os.path.join(cache_dir, "extracted", "hf_fma"), config.force_extract)


def _verify_sha1(path: str, archive, origin: str) -> None:
    """Check an archive against its official sha1, once: hashing fma_full takes hours, so a success is
    remembered in `<path>.sha1` with the file's size and mtime, and trusted only while they and the
    official sha1 are unchanged."""
    marker = path + ".sha1"
    info = os.stat(path)
    checked = {"sha1": archive.sha1, "size": info.st_size, "mtime_ns": info.st_mtime_ns}
    try:
        with open(marker, encoding="utf-8") as f:
            if json.load(f) == checked:
                return
    except (OSError, ValueError):  # no marker, or one this code did not write: hash the file
        pass
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 23), b""):
            digest.update(block)
    if digest.hexdigest() != archive.sha1:
        raise ValueError(
            f"{archive.filename} from {origin} has sha1 {digest.hexdigest()}, but the official archive's is "
            f"{archive.sha1}: it is damaged, truncated or not the official file. Delete {path} and download "
            "it again, or pass verify_sha1=False for a mirror that re-packs the archives."
        )
    try:
        with open(marker, "w", encoding="utf-8") as f:
            json.dump(checked, f)
    except OSError:  # a read-only data_dir: the check is simply repeated next time
        pass


def _is_demo_archive(path: str) -> bool:
    """Whether a zip says it is an `hf-fma make-demo` archive (synthesized, so no official sha1 applies)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.comment == DEMO_ARCHIVE_COMMENT
    except (OSError, zipfile.BadZipFile):
        return False


def _open_zip(path: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"{path} cannot be opened as a zip ({error}): it is truncated or damaged. Delete it and download "
            "it again (keep verify_sha1=True to have it checked against the official sha1)."
        ) from error


def _member_escapes(info: zipfile.ZipInfo) -> bool:
    """Whether extracting a member could write outside the extraction folder: an absolute path, a drive,
    a `..` component, or a symlink entry (which would point writes elsewhere)."""
    name = info.filename.replace("\\", "/")
    parts = name.split("/")
    is_symlink = stat.S_ISLNK(info.external_attr >> 16)
    return is_symlink or name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in parts


def _extract_zip(zip_path: str, extract_root: str, force: bool = False) -> str:
    """Extract a zip once (again with `force`), all or nothing, into a folder named after its path, size
    and mtime.

    Written here rather than with `dl_manager.extract`, which keys its output on the path alone, keeps a
    half-extracted folder after an error, and reports a damaged member without naming it or the zip.
    Processes extracting the same zip (two runs preparing the same config) take turns on a lock file,
    which the system releases when its holder dies: a `.partial` folder found by the lock's holder was
    left by a killed extraction (fma_full's would hold up to 879 GiB) and is deleted."""
    info = os.stat(zip_path)
    key = hashlib.sha1(f"{os.path.abspath(zip_path)}|{info.st_size}|{info.st_mtime_ns}".encode()).hexdigest()[:16]
    name = os.path.basename(zip_path)
    target = os.path.join(extract_root, f"{name}-{key}")
    os.makedirs(extract_root, exist_ok=True)
    with FileLock(target + ".lock"):
        if os.path.isdir(target):  # only ever created complete, by the rename below
            if not force:
                return target
            shutil.rmtree(target)
        for entry in os.listdir(extract_root):
            if entry.startswith(f"{name}-{key}.") and entry.endswith(".partial"):
                shutil.rmtree(os.path.join(extract_root, entry), ignore_errors=True)
        with _open_zip(zip_path) as archive:
            members = archive.infolist()
            escaping = [member.filename for member in members if _member_escapes(member)]
            if escaping:
                raise ValueError(
                    f"{zip_path} holds member(s) whose path leaves the extraction folder: {', '.join(escaping[:5])}. "
                    "No official FMA archive does; nothing was extracted. Delete it and download the official archive."
                )
            # Checked before writing anything: a full disk found at the end of fma_full costs hours.
            needed, free = sum(member.file_size for member in members), shutil.disk_usage(extract_root).free
            if needed > free:
                raise OSError(
                    errno.ENOSPC,
                    f"extracting {zip_path} into {target} needs {needed:,} bytes ({needed / 2**30:.1f} GiB) but its "
                    f"disk has {free:,} bytes ({free / 2**30:.1f} GiB) free: free space there, or give a cache_dir "
                    "on a bigger disk; nothing was extracted",
                )
            partial = tempfile.mkdtemp(prefix=f"{name}-{key}.", suffix=".partial", dir=extract_root)
            try:
                for member in members:
                    destination = os.path.join(partial, member.filename)
                    if member.is_dir():
                        os.makedirs(destination, exist_ok=True)
                        continue
                    os.makedirs(os.path.dirname(destination), exist_ok=True)
                    _copy_member(archive, member, destination, zip_path)
                os.rename(partial, target)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
    return target


def _copy_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, destination: str, zip_path: str) -> None:
    """Copy one member out; a member that cannot be read (bad data, a CRC mismatch, a truncated zip) is
    an error naming it, and a full disk an error naming the zip and where it was being extracted; other
    errors writing keep their own message."""
    try:
        with open(destination, "wb") as out:
            try:
                with archive.open(member) as source:
                    for block in iter(lambda: source.read(1 << 20), b""):
                        out.write(block)
            except (EOFError, zipfile.BadZipFile, zlib.error, OSError) as error:
                if isinstance(error, OSError) and error.errno is not None:  # the disk, not the zip
                    raise
                raise ValueError(
                    f"{zip_path} is damaged: its member {member.filename} cannot be read ({error}). Delete the zip "
                    "and download it again (keep verify_sha1=True to have it checked); nothing of it was kept."
                ) from error
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        raise OSError(
            errno.ENOSPC,
            f"the disk filled up extracting {zip_path} (its member {member.filename}, {member.file_size:,} bytes, "
            f"to {destination}): free space there, or give a cache_dir on a bigger disk; nothing of it was kept",
        ) from error


def _open_audio(audio_folder: str, track_id: int, streaming: bool):
    """(source to probe, the example's `audio`, None), or (None, None, why the file cannot be read).
    Streaming, the file is a member of the zip, read whole; otherwise a file the example points at."""
    location = os.path.join(audio_folder, audio_path(track_id))
    logger.debug("reading %s", location)  # which files each process reads (tests/test_sharding.py)
    if not streaming:
        if not os.path.isfile(location):
            return None, None, f"no file {location}"
        return location, {"path": location, "bytes": None}, None
    try:
        with open(location, "rb") as f:  # datasets' streaming patches `open` to read inside the zip
            data = f.read()
    except FileNotFoundError:
        return None, None, f"no file {audio_path(track_id)} in the audio archive"
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        return None, None, f"its zip member {audio_path(track_id)} is damaged ({type(error).__name__}: {error})"
    return io.BytesIO(data), {"path": location, "bytes": data}, None


def _undecodable_reason(source, error: Exception) -> str:
    """What is wrong with a file soundfile cannot open: libsndfile says "File does not exist" for an
    existing file it does not recognise, so the bytes are looked at instead."""
    if isinstance(source, io.BytesIO):
        head, size = source.getvalue()[:10], len(source.getvalue())
    else:
        size = os.path.getsize(source)
        with open(source, "rb") as f:
            head = f.read(10)
    if size == 0:
        return "the file is empty (0 bytes)"
    if head[:3] == b"ID3" and len(head) == 10:
        tag_size = 10 + ((head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | head[9] & 0x7F)
        if tag_size >= size:
            return f"the file holds only an ID3 tag ({size} bytes) and no audio frames"
    detail = str(error).rsplit(": ", 1)[-1]
    if "does not exist" in detail:
        detail = "format not recognised"
    return f"cannot be decoded as audio ({size} bytes, starting {head[:4]!r}; {type(error).__name__}: {detail})"


def _data_fingerprint(data_dir: str, names) -> str:
    """A digest of the size and mtime of `names`' zips and of every file in their extracted folders in
    data_dir: stat calls only (about a second for fma_full's 106,574 files), no reading."""
    entries = []
    for name in names:
        for root in (os.path.join(data_dir, name + ".zip"), os.path.join(data_dir, name)):
            if os.path.isfile(root):
                entries.append(_stat_entry(root, data_dir))
            for folder, subfolders, files in os.walk(root):
                subfolders.sort()
                entries.extend(_stat_entry(os.path.join(folder, file), data_dir) for file in sorted(files))
    return hashlib.sha1("\n".join(entries).encode()).hexdigest()[:16]


def _stat_entry(path: str, data_dir: str) -> str:
    info = os.stat(path)
    return f"{os.path.relpath(path, data_dir)}|{info.st_size}|{info.st_mtime_ns}"
