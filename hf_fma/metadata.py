"""FMA metadata: the official archives, tracks.csv and genres.csv, subsets, splits and genre lists.

Pure functions over pandas, usable on their own::

    >>> from hf_fma import metadata
    >>> tracks = metadata.load_tracks("fma_metadata/tracks.csv")
    >>> small = metadata.subset_tracks(tracks, "small")
    >>> small["set", "split"].value_counts()

`load_tracks` reads tracks.csv exactly as the reference loader (mdeff/fma utils.py) does, so code and
numbers written against the reference carry over. This module imports only the standard library,
numpy and pandas: the `datasets` loading script copies it next to itself, and a Hub dataset repository
holding the two files must work where `hf_fma` is not installed.
"""

from __future__ import annotations

import ast
import hashlib
import os
import warnings
from dataclasses import dataclass

import pandas as pd

FMA_BASE_URL = "https://os.unil.cloud.switch.ch/fma/"


@dataclass(frozen=True)
class Archive:
    """One official FMA archive: its file name (also its top folder, without `.zip`) and sha1."""

    name: str
    sha1: str
    size: str

    @property
    def filename(self) -> str:
        return f"{self.name}.zip"


ARCHIVES = {
    "metadata": Archive("fma_metadata", "f0df49ffe5f2a6008d7dc83c6915b31835dfe733", "342 MiB"),
    "small": Archive("fma_small", "ade154f733639d52e35e32f5593efe5be76c6d70", "7.2 GiB"),
    "medium": Archive("fma_medium", "c67b69ea232021025fca9231fc1c7c1a063ab50b", "22 GiB"),
    "large": Archive("fma_large", "497109f4dd721066b5ce5e5f250ec604dc78939e", "93 GiB"),
    "full": Archive("fma_full", "0f0ace23fbe9ba30ecb7e95f763e435ea802b8ab", "879 GiB"),
}

# The zip comment of `hf-fma make-demo`'s archives: they carry the official names but not the official
# content, and say so, so that the loading script does not check them against the official sha1.
DEMO_ARCHIVE_COMMENT = b"hf-fma make-demo: synthesized, not an official FMA archive"

# Ordered as the reference loader orders its categorical: a track's `subset` cell is the smallest
# subset holding it, and every subset contains the smaller ones.
SUBSETS = ("small", "medium", "large")

# The label order of the `genre` ClassLabel is alphabetical and fixed here, not read from the data,
# so that label ids mean the same thing in every config, run and published model.
SMALL_GENRES = ("Electronic", "Experimental", "Folk", "Hip-Hop", "Instrumental", "International", "Pop", "Rock")
TOP_GENRES = (
    "Blues", "Classical", "Country", "Easy Listening", "Electronic", "Experimental", "Folk", "Hip-Hop",
    "Instrumental", "International", "Jazz", "Old-Time / Historic", "Pop", "Rock", "Soul-RnB", "Spoken",
)  # fmt: skip

# fma_small tracks without usable audio (099134, 108925, 133297) or far shorter than 30 s (098565,
# 098567, 098569): FMA issues #8, #36, #44, #70. Other subsets have more; the loading script checks
# every file as well, so this list is a known floor, not the whole story.
KNOWN_BAD_TRACK_IDS = frozenset({99134, 108925, 133297, 98565, 98567, 98569})

# Official split names in tracks.csv -> `datasets` split names.
SPLIT_NAMES = {"training": "train", "validation": "validation", "test": "test"}

_LIST_COLUMNS = [("track", "tags"), ("album", "tags"), ("artist", "tags"), ("track", "genres"), ("track", "genres_all")]
_DATE_COLUMNS = [
    ("track", "date_created"), ("track", "date_recorded"), ("album", "date_created"), ("album", "date_released"),
    ("artist", "date_created"), ("artist", "active_year_begin"), ("artist", "active_year_end"),
]  # fmt: skip
_REQUIRED_COLUMNS = [("set", "split"), ("set", "subset"), ("track", "genre_top"), ("track", "title"),
                     ("artist", "name"), ("album", "title"), *_LIST_COLUMNS, *_DATE_COLUMNS]
_GENRE_COLUMNS = ("#tracks", "parent", "title", "top_level")
_CATEGORY_COLUMNS = [("track", "genre_top"), ("track", "license"), ("album", "type"), ("album", "information"), ("artist", "bio")]


def load_tracks(path_or_file) -> pd.DataFrame:
    """tracks.csv as the reference loader gives it: two-level columns, literal lists parsed, dates,
    and `("set", "subset")` as an ordered categorical (small < medium < large).

    A cell the loader cannot use is a `ValueError` naming the file, the track id and the column: on the
    real 106,574-record file nothing else would find it."""
    source = _source_name(path_or_file)
    tracks = _read_csv(path_or_file, source, "tracks.csv", index_col=0, header=[0, 1])
    missing = [f"{group}.{name}" for group, name in _REQUIRED_COLUMNS if (group, name) not in tracks.columns]
    if missing:
        raise ValueError(f"{source} lacks the column(s) {', '.join(missing)}: it is not FMA's tracks.csv")
    if not pd.api.types.is_integer_dtype(tracks.index):
        bad = next(value for value in tracks.index if not str(value).isdigit())
        raise ValueError(f"{source}: the track id {bad!r} is not a whole number (the first column holds track ids)")
    for column in _LIST_COLUMNS:
        # Most cells repeat ("[]", "[21]"): each distinct text is parsed once, each track gets its own list.
        parsed = {}
        cells = []
        for track_id, cell in tracks[column].items():
            if cell not in parsed:
                parsed[cell] = _list_cell(cell, source, track_id, column)
            cells.append(list(parsed[cell]))
        tracks[column] = pd.Series(cells, index=tracks.index, dtype=object)
    for column in _DATE_COLUMNS:
        dates = pd.to_datetime(tracks[column], errors="coerce")
        _reject(tracks[column], dates.isna() & tracks[column].notna(), source, column, "is not a date")
        tracks[column] = dates
    for column, valid in ((("set", "split"), tuple(SPLIT_NAMES)), (("set", "subset"), SUBSETS)):
        _reject(tracks[column], ~tracks[column].isin(valid), source, column, f"is not one of {', '.join(valid)}")
    genre_top = tracks["track", "genre_top"]
    _reject(genre_top, genre_top.notna() & ~genre_top.isin(TOP_GENRES), source, ("track", "genre_top"),
            "is not one of the 16 top-level genres (or empty)")
    tracks["set", "subset"] = tracks["set", "subset"].astype(pd.CategoricalDtype(categories=SUBSETS, ordered=True))
    for column in _CATEGORY_COLUMNS:
        tracks[column] = tracks[column].astype("category")
    return tracks


def load_genres(path_or_file) -> pd.DataFrame:
    """genres.csv indexed by `genre_id`: columns `#tracks`, `parent`, `title`, `top_level`."""
    source = _source_name(path_or_file)
    genres = _read_csv(path_or_file, source, "genres.csv", index_col=0)
    missing = [column for column in _GENRE_COLUMNS if column not in genres.columns]
    if missing or genres.index.name != "genre_id":
        raise ValueError(
            f"{source} has the columns {', '.join([str(genres.index.name), *genres.columns])}, not "
            f"genre_id, {', '.join(_GENRE_COLUMNS)}: it is not FMA's genres.csv"
        )
    if not pd.api.types.is_integer_dtype(genres.index):
        bad = next(value for value in genres.index if not str(value).isdigit())
        raise ValueError(f"{source}: the genre_id {bad!r} is not a whole number")
    titles = genres["title"]
    _reject(titles, titles.isna(), source, "title", "is empty", row="genre")
    return genres


def genre_parents(genres: pd.DataFrame) -> dict[str, str | None]:
    """Genre title -> its parent's title in FMA's hierarchy (None for the 16 top-level genres), from
    `load_genres`' frame: genres.csv gives parents as ids, 0 for a root."""
    titles = genres["title"].to_dict()
    return {title: titles.get(parent) for title, parent in zip(genres["title"], genres["parent"])}


def _source_name(path_or_file) -> str:
    """The file name an error should give: the path, or an open file's name."""
    if isinstance(path_or_file, (str, os.PathLike)):
        return str(path_or_file)
    return str(getattr(path_or_file, "name", "tracks.csv or genres.csv"))


def _read_csv(path_or_file, source: str, expected: str, **options) -> pd.DataFrame:
    """`pd.read_csv`, with an error naming the file when it is empty or not CSV text (pandas' own
    messages, "No columns to parse from file", name neither the file nor what it should be)."""
    try:
        return pd.read_csv(path_or_file, **options)
    except pd.errors.EmptyDataError:
        problem = "is empty"
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        problem = f"cannot be read as CSV text ({type(error).__name__}: {' '.join(str(error).split())})"
    raise ValueError(
        f"{source} {problem}: it is not FMA's {expected}. Extract fma_metadata.zip again (or delete it to have "
        "it downloaded again)."
    ) from None


def _list_cell(cell, source: str, track_id, column) -> list:
    try:
        value = ast.literal_eval(cell)
    except (ValueError, SyntaxError, TypeError) as error:
        raise ValueError(
            f"{source}: track {track_id}, column {'.'.join(column)}: {cell!r} is not a Python list literal "
            f"such as \"[21]\" ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(value, list):
        raise ValueError(f"{source}: track {track_id}, column {'.'.join(column)}: {cell!r} is not a list")
    return value


def _reject(values: pd.Series, bad: pd.Series, source: str, column, problem: str, row: str = "track") -> None:
    """A ValueError naming the file, the first bad row's id and the column, when any `bad` is true."""
    if bad.any():
        row_id, value = next(iter(values[bad].items()))
        name = ".".join(column) if isinstance(column, tuple) else column
        also = f" ({bad.sum() - 1} more row(s) like it)" if bad.sum() > 1 else ""
        raise ValueError(f"{source}: {row} {row_id}, column {name}: {value!r} {problem}{also}")


def audio_path(track_id: int) -> str:
    """Where a track's MP3 sits inside an audio archive's top folder: 2 -> "000/000002.mp3"."""
    name = f"{int(track_id):06d}"
    return f"{name[:3]}/{name}.mp3"


def subset_tracks(tracks: pd.DataFrame, subset: str) -> pd.DataFrame:
    """The tracks of one subset. Subsets nest, so `medium` includes `small`; `full` holds every track
    of `large`, untrimmed."""
    if subset == "full":
        subset = "large"
    if subset not in SUBSETS:
        raise ValueError(f"unknown FMA subset {subset!r}; valid subsets: {', '.join(SUBSETS + ('full',))}")
    return tracks[tracks["set", "subset"] <= subset]


def example_records(tracks: pd.DataFrame, genres: pd.DataFrame, subset: str, genre_names) -> dict[str, dict[int, dict]]:
    """Per official split (`SPLIT_NAMES`' keys), in the order of `tracks`: track id -> the loading script's
    example fields but the audio. `genre` is the index of `track.genre_top` in `genre_names`, -1 for a
    track without one (large and full keep tracks with several or no root genres); `genres` are the
    titles genres.csv gives the ids of `track.genres_all`, in that list's order.

    A track of `subset` whose genre_top is not among `genre_names` is a ValueError naming it; genre ids
    that genres.csv lacks are left out of `genres`, with one warning naming them."""
    label_of = {name: index for index, name in enumerate(genre_names)}
    titles = genres["title"].to_dict()
    columns = (("set", "split"), ("track", "genre_top"), ("track", "genres_all"), ("track", "title"),
               ("artist", "name"), ("album", "title"), ("track", "license"))
    records = {split: {} for split in SPLIT_NAMES}
    unknown_genres = {}  # genre id missing from genres.csv -> the first track listing it
    # Whole columns as lists rather than `iterrows`, which builds a Series per track: 0.3 ms each, half a
    # minute of the single process that lists large's 106,574 tracks before any preparation process starts.
    rows = zip(tracks.index.tolist(), *(tracks[column].tolist() for column in columns))
    for track_id, split, genre_top, genres_all, title, artist, album, license_ in rows:
        if isinstance(genre_top, str) and genre_top not in label_of:
            raise ValueError(
                f"tracks.csv: track {track_id}, column track.genre_top: {genre_top!r} is not a genre of FMA "
                f"{subset} ({', '.join(genre_names)}), yet its set.subset says {subset}"
            )
        for genre_id in genres_all:
            if genre_id not in titles:
                unknown_genres.setdefault(genre_id, track_id)
        records[split][track_id] = {
            "track_id": track_id,
            # -1 is ClassLabel's "no label": large/full tracks with several or no root genres.
            "genre": label_of[genre_top] if isinstance(genre_top, str) else -1,
            "genres": [titles[genre_id] for genre_id in genres_all if genre_id in titles],
            "title": _text(title),
            "artist": _text(artist),
            "album": _text(album),
            "license": _text(license_),
        }
    if unknown_genres:
        listed = ", ".join(f"{genre_id} (track {track_id})" for genre_id, track_id in sorted(unknown_genres.items()))
        warnings.warn(
            f"tracks.csv lists genre id(s) that genres.csv does not have: {listed}; they are left out of the tracks' "
            "`genres`. Are both files from the same fma_metadata.zip?"
        )
    return records


def _text(value) -> str | None:
    """A text cell, or None for an empty one (pandas reads it as NaN)."""
    return value if isinstance(value, str) else None


def balanced_order(tracks: pd.DataFrame) -> pd.DataFrame:
    """Tracks in the order a balanced subset takes them: by the sha1 of their id. Ids cluster by upload
    date, album and artist, so "the first N ids" would take whole albums; the hash spreads the pick over
    the catalogue, and gives the same order everywhere."""
    return tracks.loc[sorted(tracks.index, key=lambda track_id: hashlib.sha1(str(int(track_id)).encode()).hexdigest())]


def split_quotas(tracks_per_genre: int, genre_index: int) -> dict[str, int]:
    """How many of a genre's tracks go to each official split in a balanced subset, keeping the
    official 80/10/10 proportions. The odd remainder alternates between validation and test by genre,
    so that 125 per genre over 8 genres gives exactly 800/100/100."""
    train = round(0.8 * tracks_per_genre)
    rest = tracks_per_genre - train
    validation = (rest + (genre_index % 2 == 0)) // 2
    return {"training": train, "validation": validation, "test": rest - validation}


def balanced_subset(tracks: pd.DataFrame, genre_names, tracks_per_genre: int) -> pd.DataFrame:
    """A deterministic genre-balanced subset that keeps every track in its official split (so the
    artist filter still holds): the study's 1,000-track "mini" set is `tracks_per_genre=125` of small.

    Where a genre/split has fewer tracks than its quota, all of them are taken. The loading script
    fills the same quotas in the same order but skips tracks whose audio turns out unusable."""
    ordered = balanced_order(tracks)
    chosen = []
    for genre_index, genre in enumerate(genre_names):
        of_genre = ordered[ordered["track", "genre_top"] == genre]
        for split, quota in split_quotas(tracks_per_genre, genre_index).items():
            chosen.extend(of_genre.index[of_genre["set", "split"] == split][:quota])
    return tracks.loc[sorted(chosen)]
