"""A miniature FMA in the official archive layout, synthesized offline in seconds.

The real FMA is 7.2 GiB (small) to 879 GiB (full) and only downloadable; the tests, the README's main-job
command and anyone trying the project without the data use this instead. One call writes into a folder:

    fma_metadata.zip   fma_metadata/{README.txt, checksums, tracks.csv, genres.csv}
    fma_small.zip      fma_small/{README.txt, checksums, 000/000123.mp3, ...}
    fma_medium.zip, fma_large.zip, fma_full.zip  (same layout)
    examples/          one test-split clip per small genre as a plain MP3, e.g. rock_153584.mp3

The layout follows the official archives as the FMA's creation script wrote them: bzip2-compressed
entries, README.txt and `checksums` ("<sha1>  000/000123.mp3" lines) first, then the MP3s in the
`f"{tid:06d}"[:3]` folders. tracks.csv has the real three header lines and the 52 columns in their real
order, Python list literals in `genres`/`genres_all`/`tags`, HTML, quotes, commas and newlines in free
text, and an empty `genre_top` for tracks with several root genres or none. genres.csv uses FMA's real
genre ids (the 16 top-level genres and some of their sub-genres). fma_metadata.zip holds only these two
CSV files (the real one also has features.csv, echonest.csv and the raw_*.csv files).

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
genre has its own tempo, rhythm and percussion, timbres, register, filtering and texture (see _STYLES);
each track draws its own key, tempo, melody, chord progression, levels and mix, so a model has to learn
the genre rather than a file. Deterministic for a given seed, archives included (fixed timestamps).

Run:
    hf-fma make-demo demo_data
    python -m hf_fma.demo demo_data --seed 1 --clip-seconds 10 --workers 2
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import os
import sys
import time
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
# datasets' tqdm, as every hf-fma command's bar: off with datasets.disable_progress_bars() or
# HF_DATASETS_DISABLE_PROGRESS_BARS=1.
from datasets.utils.tqdm import tqdm

from hf_fma.argparsing import ArgumentParser
from hf_fma.metadata import ARCHIVES, DEMO_ARCHIVE_COMMENT, KNOWN_BAD_TRACK_IDS, SMALL_GENRES, SUBSETS, audio_path

__all__ = [
    "DEMO_CLIP_SECONDS",
    "DEMO_CORRUPT_TRACK_IDS",
    "DEMO_EXAMPLES_FOLDER",
    "DEMO_SHORT_TRACK_IDS",
    "DEMO_SMALL_SPLIT_SIZES",
    "main",
    "make_demo",
]

# Fixed whatever the seed, so loaders' tests can name the files they must exclude. They are not in
# KNOWN_BAD_TRACK_IDS (the real bad ids): a loader has to find them by checking the files.
DEMO_CORRUPT_TRACK_IDS: tuple[int, ...] = (71334,)
DEMO_SHORT_TRACK_IDS: tuple[int, ...] = (117902,)
DEMO_CLIP_SECONDS = 10.0
DEMO_EXAMPLES_FOLDER = "examples"
DEMO_SHORT_SECONDS = 0.3
# Decodable small tracks per genre and split (the real small has 800/100/100).
DEMO_SMALL_SPLIT_SIZES = {"training": 12, "validation": 2, "test": 2}

_MAX_TRACK_ID = 155320  # largest id in the real tracks.csv

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

# ---------------------------------------------------------------------------------------------------
# Metadata: genres and columns
# ---------------------------------------------------------------------------------------------------

# (genre_id, parent, title) with FMA's real ids: the 16 top-level genres (parent 0) and some sub-genres,
# including two-level ones (Post-Punk < Punk < Rock, Chiptune < Chip Music < Electronic).
_GENRES = (
    (1, 38, "Avant-Garde"), (2, 0, "International"), (3, 0, "Blues"), (4, 0, "Jazz"), (5, 0, "Classical"),
    (8, 0, "Old-Time / Historic"), (9, 0, "Country"), (10, 0, "Pop"), (11, 14, "Disco"), (12, 0, "Rock"),
    (13, 0, "Easy Listening"), (14, 0, "Soul-RnB"), (15, 0, "Electronic"), (17, 0, "Folk"),
    (18, 1235, "Soundtrack"), (19, 14, "Funk"), (20, 0, "Spoken"), (21, 0, "Hip-Hop"), (25, 12, "Punk"),
    (27, 12, "Lo-Fi"), (31, 12, "Metal"), (32, 38, "Noise"), (33, 17, "Psych-Folk"), (37, 4, "Jazz: Vocal"),
    (38, 0, "Experimental"), (46, 2, "Latin America"), (47, 38, "Drone"), (63, 9, "Bluegrass"),
    (66, 12, "Indie-Rock"), (74, 4, "Free-Jazz"), (76, 10, "Experimental Pop"), (79, 2, "Reggae - Dub"),
    (89, 25, "Post-Punk"), (92, 2, "African"), (100, 21, "Alternative Hip-Hop"),
    (103, 17, "Singer-Songwriter"), (107, 1235, "Ambient"), (137, 9, "Americana"), (180, 17, "British Folk"),
    (181, 15, "Techno"), (182, 15, "House"), (188, 20, "Poetry"), (236, 15, "IDM"), (240, 297, "Chiptune"),
    (250, 38, "Improv"), (267, 1235, "New Age"), (297, 15, "Chip Music"), (311, 13, "Lounge"),
    (362, 10, "Synth Pop"), (378, 20, "Spoken Word"), (442, 5, "Chamber Music"), (539, 21, "Rap"),
    (567, 3, "Gospel"), (651, 9, "Country & Western"), (659, 5, "Contemporary Classical"),
    (811, 21, "Hip-Hop Beats"), (1235, 0, "Instrumental"),
)
_PARENT = {gid: parent for gid, parent, _ in _GENRES}
_TITLE = {gid: title for gid, _, title in _GENRES}
_TOP_ID = {title: gid for gid, parent, title in _GENRES if parent == 0}


def _root(genre_id: int) -> int:
    while _PARENT[genre_id]:
        genre_id = _PARENT[genre_id]
    return genre_id


_SUBGENRES = {top: tuple(g for g in _PARENT if _PARENT[g] and _root(g) == top) for top in _TOP_ID.values()}

# Tracks medium adds per genre: unbalanced like the real medium (Rock 7,103 down to Easy Listening 21).
_MEDIUM_EXTRA = {
    "Classical": 6, "Jazz": 5, "Blues": 4, "Country": 4, "Soul-RnB": 3, "Old-Time / Historic": 3,
    "Spoken": 3, "Easy Listening": 3, "Rock": 2, "Electronic": 1,
}
# (genres, split) of the tracks large adds: sub-genres only, then several root genres or none, which
# leave genre_top empty (the real file has such tracks in large only).
_LARGE_EXTRA = (
    ((89,), "training"), ((236, 181), "training"), ((1,), "validation"), ((18,), "training"),
    ((103,), "test"), ((46,), "training"), ((76, 103), "training"), ((15, 92), "validation"),
    ((), "training"),
)

# tracks.csv columns in the real order (the reference file sorts them by name within each group).
_COLUMNS = tuple(
    (group, name)
    for group, names in (
        ("album", "comments date_created date_released engineer favorites id information listens producer "
                  "tags title tracks type"),
        ("artist", "active_year_begin active_year_end associated_labels bio comments date_created favorites "
                   "id latitude location longitude members name related_projects tags website wikipedia_page"),
        ("set", "split subset"),
        ("track", "bit_rate comments composer date_created date_recorded duration favorites genre_top genres "
                  "genres_all information interest language_code license listens lyricist number publisher "
                  "tags title"),
    )
    for name in names.split()
)

# Word pools for names and free text. Non-ASCII letters, commas and double quotes are on purpose: the
# real file has them, and a loader must read it as UTF-8 with a real CSV parser.
_ADJECTIVES = (
    "Velvet", "Paper", "Hollow", "Electric", "Quiet", "Golden", "Broken", "Lunar", "Rusty", "Neon",
    "Wandering", "Crystal", "Midnight", "Silver", "Feral", "Northern", "Distant", "Sleepy", "Burning", "Tiny",
)
_NOUNS = (
    "Owls", "Lanterns", "Engines", "Rivers", "Foxes", "Machines", "Choir", "Harbour", "Static", "Orchard",
    "Satellites", "Ghosts", "Tides", "Parade", "Signals", "Gardens", "Wolves", "Mirrors", "Comets", "Bicycles",
)
_PEOPLE = (
    "Zoë Hartmann", "José Álvarez", "Åsa Lindqvist", "Björn Øster", "Chloé Martin", "Nnamdi Okafor",
    "Siobhán Kelly", "Kenji Mori", "Ana Luísa Costa", "Dmitri Volkov", "Fatou Diop", "Marek Dvořák",
)
_TRICKY_ARTIST_NAMES = ("Earth, Wind & Fiyah", 'The "Real" Deal')
_CITIES = (
    ("New Jersey", 40.0583238, -74.4056612), ("Brooklyn, NY", 40.6781784, -73.9441579),
    ("Berlin", 52.5200066, 13.404954), ("Montréal, QC", 45.5016889, -73.567256),
    ("Lagos", 6.5243793, 3.3792057), ("Colchester UK", 51.895927, 0.891874),
    ("Oakland, CA", 37.8043637, -122.2711137), ("São Paulo", -23.5505199, -46.6333094),
    ("Tokyo", 35.6894875, 139.6917064), ("Glasgow", 55.864237, -4.251806),
)
# Real license strings, the trailing space of the UK one included.
_LICENSES = (
    "Attribution-NonCommercial-ShareAlike 3.0 International",
    "Attribution-Noncommercial-No Derivative Works 2.0 UK: England ",
    "Attribution-Noncommercial-No Derivative Works 3.0 United States",
    "Attribution-NonCommercial-NoDerivatives (aka Music Sharing) 3.0 International",
    "Attribution-Noncommercial-Share Alike 3.0 United States",
    "Attribution 4.0 International",
)
_FIRST_DAY = dt.datetime(2008, 11, 26, 1, 44, 45)  # FMA's first uploads (track 2's album was created then)
_LAST_DAY = dt.datetime(2017, 3, 30, 12, 0, 0)


@dataclass
class _Track:
    """One row of tracks.csv plus what the audio needs; album and dates are filled once ids are known."""

    genres: tuple[int, ...]
    split: str
    subset: str
    artist: dict
    kind: str = "valid"  # "valid" | "corrupt" | "short"
    stereo: bool = False
    track_id: int = 0
    album: dict = field(default_factory=dict)
    fields: dict = field(default_factory=dict)

    @property
    def genres_all(self) -> list[int]:
        ancestors = set()
        for genre_id in self.genres:
            while genre_id:
                ancestors.add(genre_id)
                genre_id = _PARENT[genre_id]
        # Python's set order: the real file was built the same way and matches it on every sampled row.
        return list(ancestors)

    @property
    def genre_top(self) -> str | None:
        roots = {_root(g) for g in self.genres}
        return _TITLE[roots.pop()] if len(roots) == 1 else None

    @property
    def style(self) -> str:
        """The genre whose sound the audio gets: genre_top, else the first root genre, else Experimental."""
        return self.genre_top or (_TITLE[_root(self.genres[0])] if self.genres else "Experimental")


class _Catalogue:
    """Draws artists, albums and track fields; all randomness comes from one generator, in a fixed order."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.artist_ids = iter(rng.choice(np.arange(1, 24000), size=400, replace=False).tolist())
        self.album_ids = iter(rng.choice(np.arange(1, 22000), size=800, replace=False).tolist())
        self.names: set[str] = set()

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def maybe(self, probability: float, value, empty=""):
        return value if self.rng.random() < probability else empty

    def band_name(self) -> str:
        # Two early artists always get the names a CSV writer must quote (whatever the seed).
        if len(self.names) in (3, 10):
            name = _TRICKY_ARTIST_NAMES[len(self.names) == 10]
            self.names.add(name)
            return name
        while True:
            roll = self.rng.random()
            if roll < 0.3:
                name = self.pick(_PEOPLE)
            elif roll < 0.65:
                name = f"The {self.pick(_ADJECTIVES)} {self.pick(_NOUNS)}"
            else:
                name = f"{self.pick(_ADJECTIVES)} {self.pick(_NOUNS)}"
            if name not in self.names:
                self.names.add(name)
                return name

    def title(self) -> str:
        roll = self.rng.random()
        if roll < 0.1:
            return self.pick(("Don't Stop (Radio Edit)", "Ça va, ça va", 'Track "7"', "Interlude #2", "Öresund"))
        if roll < 0.5:
            return f"{self.pick(_ADJECTIVES)} {self.pick(_NOUNS)}"
        return f"{self.pick(_NOUNS)} of the {self.pick(_ADJECTIVES)} {self.pick(_NOUNS)}"

    def artist(self, genre: str) -> dict:
        rng = self.rng
        name = self.band_name()
        city = self.pick(_CITIES) if rng.random() < 0.75 else None
        has_coordinates = city is not None and rng.random() < 0.7
        members = self.pick(("", f"{self.pick(_PEOPLE)}\n{self.pick(_PEOPLE)}",
                             f"{self.pick(_PEOPLE)}, {self.pick(_PEOPLE)}, {self.pick(_PEOPLE)}"))
        bio = self.pick((
            "",
            "<p></p>",
            f"<p>{name} is a {genre.lower()} project from {city[0] if city else 'nowhere in particular'}, "
            f'making "{self.pick(_ADJECTIVES).lower()}" music since {rng.integers(1995, 2016)}.</p>\n'
            f"<p>Influences: {self.pick(_PEOPLE)}, {self.pick(_PEOPLE)} &amp; friends.\xa0"
            f'Contact: <a href="mailto:hello@example.org">hello@example.org</a></p>',
            f"<p><strong>{name}</strong> formed when two friends found an old synth in a skip, "
            f"and they haven't stopped since.</p>",
        ))
        tags = [name.lower()] + (["rock 'n' roll"] if genre == "Rock" and rng.random() < 0.5 else [])
        slug = "".join(ch for ch in name.lower() if ch.isascii() and ch.isalnum())
        return {
            "active_year_begin": self.maybe(0.3, f"{rng.integers(1968, 2014)}-01-01 00:00:00"),
            "active_year_end": self.maybe(0.05, "2011-01-01 00:00:00"),
            "associated_labels": self.maybe(0.3, f"{self.pick(_NOUNS)} Records, {self.pick(_ADJECTIVES)} Tapes"),
            "bio": bio,
            "comments": int(rng.integers(0, 5)),
            "favorites": int(rng.integers(0, 60)),
            "id": next(self.artist_ids),
            "latitude": round(city[1], 7) if has_coordinates else "",
            "location": city[0] if city else "",
            "longitude": round(city[2], 7) if has_coordinates else "",
            "members": members,
            "name": name,
            "related_projects": self.maybe(0.3, f"{self.pick(_ADJECTIVES)} {self.pick(_NOUNS)}, side projects"),
            "tags": repr(tags),
            "website": self.maybe(0.8, f"http://{slug}.bandcamp.com"),
            "wikipedia_page": self.maybe(0.05, f"http://en.wikipedia.org/wiki/{slug}"),
        }

    def album(self) -> dict:
        rng = self.rng
        title = self.title()
        return {
            "comments": int(rng.integers(0, 3)),
            "date_released": self.maybe(0.8, f"{rng.integers(1990, 2017)}-{rng.integers(1, 13):02d}-"
                                             f"{rng.integers(1, 29):02d} 00:00:00"),
            "engineer": self.maybe(0.1, self.pick(_PEOPLE)),
            "favorites": int(rng.integers(0, 10)),
            "id": next(self.album_ids),
            "information": self.pick((
                "", "<p></p>",
                f'<p>"{title}" was recorded in a kitchen, a car and a church, in that order.</p>',
                "<p>Mastered by the band.\n\nThanks to everyone who came to the shows, especially "
                "<em>you</em>.</p>",
            )),
            "listens": int(rng.lognormal(8, 1.2)),
            "producer": self.maybe(0.1, f"{self.pick(_PEOPLE)}, {self.pick(_PEOPLE)}"),
            "tags": self.pick(("[]", "[]", "[]", "['lafms']")),
            "title": title,
            "type": self.pick(("Album", "Album", "Album", "Single Tracks", "Live Performance")),
        }

    def track_fields(self) -> dict:
        rng = self.rng
        return {
            "bit_rate": self.pick((128000, 192000, 256000, 256000, 320000, int(rng.integers(150000, 300000)))),
            "comments": int(rng.integers(0, 2)),
            "composer": self.maybe(0.1, self.pick(_PEOPLE)),
            "date_recorded": self.maybe(0.4, f"{rng.integers(1978, 2017)}-01-01 00:00:00"),
            # The full track's length in seconds (clips are its middle part), as in the real file.
            "duration": int(np.clip(rng.lognormal(5.4, 0.5), 31, 1200)),
            "favorites": int(rng.integers(0, 20)),
            "information": self.maybe(0.08, f'<p>Recorded live at "The Basement", {self.pick(_CITIES)[0]}.'
                                            f"</p>\n<p>Mixed by {self.pick(_PEOPLE)}.</p>"),
            "interest": int(rng.lognormal(7, 1.2)),
            "language_code": self.pick(("en", "en", "en", "", "", "fr", "es")),
            "license": self.pick(_LICENSES),
            "listens": int(rng.lognormal(6.5, 1.3)),
            "lyricist": self.maybe(0.03, self.pick(_PEOPLE)),
            "publisher": self.maybe(0.05, f"{self.pick(_NOUNS)} Music (UK)"),
            "tags": "[]",
            "title": self.title(),
        }

    def genres(self, top_title: str) -> tuple[int, ...]:
        """A track's own genres under one root: the root, a sub-genre, or both, as in the real file."""
        top, subs = _TOP_ID[top_title], _SUBGENRES[_TOP_ID[top_title]]
        roll = self.rng.random()
        if not subs or roll < 0.45:
            return (top,)
        sub = self.pick(subs)
        return (sub,) if roll < 0.8 else (top, sub)


def _split_among_artists(rng: np.random.Generator, count: int) -> list[int]:
    """Sizes of the artists that share `count` tracks: one to three artists, uneven as in reality."""
    n_artists = 1 if count <= 2 and rng.random() < 0.6 else min(count, 2 if count <= 5 else 3)
    cuts = np.sort(rng.choice(np.arange(1, count), size=n_artists - 1, replace=False)) if n_artists > 1 else []
    return np.diff([0, *cuts, count]).tolist()


def _plan_tracks(seed: int) -> list[_Track]:
    """Every demo track with its metadata, sorted by id. The split of each artist is fixed at creation."""
    rng = np.random.default_rng(seed)
    catalogue = _Catalogue(rng)
    tracks: list[_Track] = []
    artists_of: dict[tuple[str, str], list[dict]] = {}

    def add(genre: str, split: str, subset: str, count: int) -> None:
        for size in _split_among_artists(rng, count):
            artist = catalogue.artist(genre)
            artists_of.setdefault((genre, split), []).append(artist)
            tracks.extend(_Track(catalogue.genres(genre), split, subset, artist) for _ in range(size))

    for genre in SMALL_GENRES:
        first = len(tracks)
        for split, count in DEMO_SMALL_SPLIT_SIZES.items():
            add(genre, split, "small", count)
        tracks[first + int(rng.integers(16))].stereo = True  # one 44.1 kHz stereo track per small genre

    # The bad files sit in two splits, so a loader must filter every split, not only training.
    for ids, genre, split, kind in ((DEMO_CORRUPT_TRACK_IDS, "Rock", "training", "corrupt"),
                                    (DEMO_SHORT_TRACK_IDS, "Folk", "test", "short")):
        for track_id in ids:
            artist = artists_of[(genre, split)][0]
            tracks.append(_Track(catalogue.genres(genre), split, "small", artist, kind, track_id=track_id))

    for genre, count in _MEDIUM_EXTRA.items():
        if genre in SMALL_GENRES:
            # Same artists as in small (one artist can span subsets, like AWOL in the real file).
            for _ in range(count):
                artist = catalogue.pick(artists_of[(genre, "training")])
                tracks.append(_Track(catalogue.genres(genre), "training", "medium", artist))
        else:
            add(genre, "validation", "medium", 1)
            add(genre, "test", "medium", 1)
            add(genre, "training", "medium", count - 2)

    for genres, split in _LARGE_EXTRA:
        tracks.append(_Track(genres, split, "large", catalogue.artist("Experimental")))

    for track in tracks:
        if track.subset != "small" and rng.random() < 0.06:  # few: a stereo 44.1 kHz clip takes 4x to encode
            track.stereo = True
    _assign_ids(rng, tracks)
    tracks.sort(key=lambda t: t.track_id)
    _fill_albums_and_dates(catalogue, tracks)
    return tracks


def _assign_ids(rng: np.random.Generator, tracks: list[_Track]) -> None:
    """Ids spread over the real range (3-digit folders 000 to 155), interleaving genres as the real ids do."""
    # Never a real known-bad id: the loader's fixed exclusion list would drop a track the demo counts.
    taken = {t.track_id for t in tracks if t.track_id} | KNOWN_BAD_TRACK_IDS
    pool = np.setdiff1d(np.arange(2, _MAX_TRACK_ID + 1), np.fromiter(taken, int))
    unassigned = [t for t in tracks if not t.track_id]
    for track, track_id in zip(unassigned, rng.choice(pool, size=len(unassigned), replace=False).tolist()):
        track.track_id = track_id


def _date(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S")


def _fill_albums_and_dates(catalogue: _Catalogue, tracks: list[_Track]) -> None:
    """Albums per artist and dates that grow with the id (FMA ids were given in upload order)."""
    rng = catalogue.rng
    by_artist: dict[int, list[_Track]] = {}
    for track in tracks:  # sorted by id
        by_artist.setdefault(track.artist["id"], []).append(track)
    span = (_LAST_DAY - _FIRST_DAY).total_seconds()
    for artist_tracks in by_artist.values():
        n_albums = 1 if len(artist_tracks) <= 3 else 2
        albums = [catalogue.album() for _ in range(n_albums)]
        created = []
        for position, track in enumerate(artist_tracks):
            album = albums[position * n_albums // len(artist_tracks)]
            track.album = album
            album.setdefault("_members", []).append(track)
            when = _FIRST_DAY + dt.timedelta(seconds=span * track.track_id / _MAX_TRACK_ID
                                             + float(rng.uniform(0, 86400)))
            created.append(when)
            track.fields = catalogue.track_fields() | {"date_created": _date(when)}
        artist_created = min(created) - dt.timedelta(days=float(rng.uniform(0, 120)))
        artist_tracks[0].artist["date_created"] = _date(max(artist_created, _FIRST_DAY - dt.timedelta(hours=1)))
        for album in albums:
            members = album.pop("_members")
            album["date_created"] = _date(
                max(dt.datetime.strptime(members[0].fields["date_created"], "%Y-%m-%d %H:%M:%S")
                    - dt.timedelta(minutes=float(rng.uniform(1, 600))), artist_created))
            album["tracks"] = max(len(members), int(rng.integers(1, 15)))
            for number, track in enumerate(members, start=1):
                track.fields["number"] = number


def _cell(value) -> str:
    # The real file is pandas' to_csv output: floats in their shortest repr, missing values empty ("").
    return repr(value) if isinstance(value, float) else str(value)


def _tracks_csv(tracks: list[_Track]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")  # QUOTE_MINIMAL on '"', ',' and newlines, like pandas
    writer.writerow(["", *(group for group, _ in _COLUMNS)])
    writer.writerow(["", *(name for _, name in _COLUMNS)])
    writer.writerow(["track_id", *([""] * len(_COLUMNS))])
    for track in tracks:
        groups = {
            "album": track.album,
            "artist": track.artist,
            "set": {"split": track.split, "subset": track.subset},
            "track": track.fields | {
                "genre_top": track.genre_top or "",
                "genres": repr(list(track.genres)),
                "genres_all": repr(track.genres_all),
            },
        }
        writer.writerow([track.track_id, *(_cell(groups[group][name]) for group, name in _COLUMNS)])
    return out.getvalue().encode("utf-8")


def _genres_csv(tracks: list[_Track]) -> bytes:
    # #tracks: the tracks whose genres_all holds the genre, so a sub-genre's tracks count for its parents.
    counts = {gid: 0 for gid in _PARENT}
    for track in tracks:
        for gid in track.genres_all:
            counts[gid] += 1
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["genre_id", "#tracks", "parent", "title", "top_level"])
    for gid in sorted(_PARENT):
        writer.writerow([gid, counts[gid], _PARENT[gid], _TITLE[gid], _root(gid)])
    return out.getvalue().encode("utf-8")


# ---------------------------------------------------------------------------------------------------
# Audio: one synthesis recipe per genre
# ---------------------------------------------------------------------------------------------------

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)
_MIXOLYDIAN = (0, 2, 4, 5, 7, 9, 10)
_PHRYGIAN_DOMINANT = (0, 1, 4, 5, 7, 8, 10)
_MAJOR_PENTATONIC = (0, 2, 4, 7, 9)
_MINOR_PENTATONIC = (0, 3, 5, 7, 10)
_BLUES = (0, 3, 5, 6, 7, 10)
# Chord progressions as degrees of the style's 7-note mode, one chord per bar.
_PROGRESSIONS = ((0, 5, 3, 4), (0, 3, 4, 3), (0, 4, 5, 3), (5, 3, 0, 4), (0, 0, 3, 4), (0, 3, 0, 4))
# Timbres whose notes die away on their own (length = decay time); the others hold for `length`.
_DECAYING = {"pluck", "piano", "buzz", "epiano"}


@dataclass(frozen=True)
class _Voice:
    """One pitched part of a style. Durations are in beats so they follow the track's tempo."""

    timbre: str  # sine/triangle/square/saw/string: held waveform; organ: additive; _DECAYING: plucked/struck
    octave: int  # semitones above the style's root
    play: str  # walk: melody | arp: chord tones in turn | chord: all tones | root: bass | drone: tonic chord
    every: int = 4  # grid steps between onsets
    pattern: str = ""  # one bar of onsets ('x'), instead of `every`
    density: float = 1.0  # probability that an onset sounds
    length: float = 1.0  # beats
    level: float = 0.3
    attack: float = 0.005  # seconds
    vibrato: float = 0.0  # depth in semitones
    tones: tuple[int, ...] = (0, 2, 4)  # chord tones as mode degrees above the chord's root
    strum: float = 0.0  # seconds between successive chord tones


@dataclass(frozen=True)
class _Style:
    """How a genre sounds: grid and tempo, drums, harmony, parts and the mix around them."""

    bpm: float = 0.0
    steps: int = 4  # grid steps per beat: 4 = sixteenths, 3 = triplets / shuffle
    swing: float = 0.0  # fraction of a step by which every second step is late
    drums: tuple[tuple[str, str], ...] = ()  # (drum, one bar: 'x' hit, 'o' soft hit, '.' rest)
    drum_level: float = 0.5
    mode: tuple[int, ...] = _MAJOR
    melody: tuple[int, ...] | None = None  # scale of "walk" parts (default: the mode)
    root: int = 48  # MIDI note of the tonic, before the per-track transposition
    voices: tuple[_Voice, ...] = ()
    texture: str = "grid"  # grid: parts on a beat grid | free: no pulse | speech: a talking voice
    distortion: float = 0.0  # tanh drive on the pitched parts
    lowpass: float = 10000.0
    highpass: float = 40.0
    reverb: float = 0.0
    hiss: float = 0.0
    crackle: float = 0.0  # clicks per second, as on a worn record


_STYLES = {
    # Four-on-the-floor kick, offbeat open hats and claps; sawtooth bass and fast arpeggios, bright.
    "Electronic": _Style(
        bpm=126, drums=(("kick", "x...x...x...x..."), ("clap", "....x.......x..."), ("openhat", "..x...x...x...x."),
                        ("hat", "oooooooooooooooo")),
        mode=_MINOR, root=45, lowpass=11000, voices=(
            _Voice("saw", 0, "root", every=2, length=0.4, level=0.45),
            _Voice("saw", 24, "arp", every=1, density=0.9, length=0.2, level=0.2),
            _Voice("saw", 12, "chord", every=16, length=4, level=0.07, attack=0.2))),
    # No pulse: glissandi, FM clangs, noise bursts and beating drones.
    "Experimental": _Style(texture="free", lowpass=14000, reverb=0.4),
    # Plucked strings, strummed chords, no drums, mid register.
    "Folk": _Style(
        bpm=96, mode=_MAJOR, root=55, lowpass=7000, reverb=0.15, voices=(
            _Voice("pluck", 12, "walk", every=2, density=0.7, length=1.2, level=0.45),
            _Voice("pluck", 0, "chord", every=8, length=2.5, level=0.3, strum=0.025),
            _Voice("pluck", -12, "root", every=8, length=2.5, level=0.35))),
    # Slow swung beat, long sub-bass 808 kick and bass, sparse keys, dusty top end.
    "Hip-Hop": _Style(
        bpm=88, swing=0.3, drums=(("kick808", "x......x..x....."), ("snare", "....x.......x..."),
                                  ("hat", "x.o.x.o.x.o.x.o.")),
        drum_level=0.7, mode=_MINOR, melody=_MINOR_PENTATONIC, root=36, lowpass=6000, hiss=0.004, voices=(
            _Voice("sine", 0, "root", pattern="x......x..x.....", length=1.5, level=0.5),
            _Voice("epiano", 24, "walk", every=4, density=0.45, length=1.5, level=0.22),
            _Voice("epiano", 12, "chord", every=16, length=3, level=0.1))),
    # Slow piano melody over soft pads, no drums, reverberant.
    "Instrumental": _Style(
        bpm=66, mode=_MAJOR, root=52, lowpass=5000, reverb=0.5, voices=(
            _Voice("piano", 12, "walk", every=4, density=0.8, length=2.5, level=0.5),
            _Voice("sine", 0, "chord", every=16, length=4.2, level=0.18, attack=0.5),
            _Voice("sine", -12, "root", every=16, length=4, level=0.25, attack=0.1))),
    # 12/8 hand drums and shaker, a sitar-like buzzing lead with vibrato over a tonic drone.
    "International": _Style(
        bpm=100, steps=3, drums=(("handdrum", "x..x.xx..x.x"), ("doum", "x.....x....."), ("shaker", "oooooooooooo")),
        mode=_PHRYGIAN_DOMINANT, root=50, lowpass=9000, voices=(
            _Voice("buzz", 12, "walk", every=3, density=0.75, length=1.2, level=0.35, vibrato=0.3),
            _Voice("saw", -12, "drone", every=12, length=4.2, level=0.08, tones=(0, 4)))),
    # Backbeat, square-wave stabs and a catchy square lead in a major pentatonic.
    "Pop": _Style(
        bpm=116, drums=(("kick", "x.......x.x....."), ("snare", "....x.......x..."), ("hat", "x.x.x.x.x.x.x.x.")),
        mode=_MAJOR, melody=_MAJOR_PENTATONIC, root=48, lowpass=10000, voices=(
            _Voice("triangle", -12, "root", every=2, length=0.45, level=0.4),
            _Voice("square", 12, "chord", every=4, length=0.4, level=0.07),
            _Voice("square", 24, "walk", every=2, density=0.7, length=0.45, level=0.13))),
    # Fast, loud drums with crash; distorted power-chord eighths and bass.
    "Rock": _Style(
        bpm=144, drums=(("kick", "x.....x.x......."), ("snare", "....x.......x..."), ("hat", "x.x.x.x.x.x.x.x."),
                        ("crash", "x...............")),
        drum_level=0.6, mode=_MINOR, root=40, distortion=6.0, lowpass=8000, voices=(
            _Voice("saw", 0, "chord", every=2, length=0.45, level=0.4, tones=(0, 4, 7)),
            _Voice("saw", -12, "root", every=2, length=0.45, level=0.3))),
    # Triplet shuffle, bent triangle lead on the blues scale, walking bass, organ bed.
    "Blues": _Style(
        bpm=76, steps=3, drums=(("kick", "x.....x....."), ("snare", "...x.....x.."), ("hat", "x.xx.xx.xx.x")),
        drum_level=0.35, mode=_MIXOLYDIAN, melody=_BLUES, root=45, lowpass=6000, voices=(
            _Voice("triangle", 12, "walk", every=3, density=0.6, length=0.9, level=0.35, vibrato=0.4),
            _Voice("triangle", -12, "walk", every=3, length=0.9, level=0.3),
            _Voice("organ", 0, "chord", every=12, length=4, level=0.08, attack=0.05))),
    # Bowed strings: slow attacks, vibrato, sustained four-part chords, no drums, reverberant.
    "Classical": _Style(
        bpm=72, mode=_MAJOR, root=55, lowpass=4500, reverb=0.6, voices=(
            _Voice("string", 12, "walk", every=4, density=0.9, length=1.1, level=0.22, attack=0.08, vibrato=0.15),
            _Voice("string", 0, "chord", every=16, length=4.1, level=0.1, attack=0.3, vibrato=0.1,
                   tones=(0, 2, 4, 7)),
            _Voice("string", -12, "root", every=8, length=2.1, level=0.14, attack=0.1))),
    # Boom-chick: bass on 1 and 3, strummed chord on 2 and 4, twangy plucked lead.
    "Country": _Style(
        bpm=108, drums=(("kick", "x.......x......."), ("snare", "....o.......o...")), drum_level=0.35,
        mode=_MAJOR, melody=_MAJOR_PENTATONIC, root=50, lowpass=8000, voices=(
            _Voice("triangle", -12, "root", pattern="x.......x.......", length=0.9, level=0.4),
            _Voice("pluck", 0, "chord", pattern="....x.......x...", length=0.8, level=0.25, strum=0.012),
            _Voice("pluck", 24, "walk", every=2, density=0.6, length=0.7, level=0.3))),
    # Brushes, warm pads and a breathy flute-like lead with vibrato, reverberant.
    "Easy Listening": _Style(
        bpm=84, drums=(("brush", "x.x.x.x.x.x.x.x."), ("kick", "x.......x.......")), drum_level=0.2,
        mode=_MAJOR, root=53, lowpass=5000, reverb=0.4, voices=(
            _Voice("sine", 0, "chord", every=16, length=4.2, level=0.2, attack=0.4),
            _Voice("sine", 24, "walk", every=4, density=0.7, length=1.6, level=0.25, attack=0.05, vibrato=0.2),
            _Voice("sine", -12, "root", every=8, length=1.8, level=0.25))),
    # Swing ride, hi-hat on 2 and 4, walking bass, sparse seventh-chord comping.
    "Jazz": _Style(
        bpm=132, steps=3, drums=(("ride", "x..x.xx..x.x"), ("hat", "...o.....o..")), drum_level=0.4,
        mode=_MIXOLYDIAN, root=41, lowpass=6000, reverb=0.2, voices=(
            _Voice("sine", 0, "walk", every=3, length=0.9, level=0.45),
            _Voice("triangle", 12, "chord", every=3, density=0.3, length=0.6, level=0.08, tones=(0, 2, 4, 6)),
            _Voice("square", 24, "walk", every=3, density=0.35, length=0.8, level=0.05, vibrato=0.15))),
    # A narrow-band gramophone sound: oom-pah piano, hiss and crackle.
    "Old-Time / Historic": _Style(
        bpm=100, mode=_MAJOR, root=48, highpass=350, lowpass=2800, hiss=0.03, crackle=12, voices=(
            _Voice("piano", -12, "root", pattern="x.......x.......", length=1, level=0.4),
            _Voice("piano", 0, "chord", pattern="....x.......x...", length=0.8, level=0.25),
            _Voice("piano", 12, "walk", every=2, density=0.8, length=1, level=0.35))),
    # Backbeat with syncopated bass, organ chords and electric-piano fills.
    "Soul-RnB": _Style(
        bpm=96, swing=0.12, drums=(("kick", "x..x......x....."), ("snare", "....x.......x..."),
                                   ("hat", "x.x.x.x.x.x.x.x.")),
        mode=_MINOR, root=43, lowpass=7000, voices=(
            _Voice("sine", 0, "root", pattern="x..x..x...x.x...", length=0.6, level=0.45),
            _Voice("organ", 12, "chord", every=16, length=4, level=0.09, attack=0.03),
            _Voice("epiano", 24, "walk", every=2, density=0.5, length=1, level=0.18))),
    # A voice talking: formant-shaped harmonics in syllables, words and pauses; no music.
    "Spoken": _Style(texture="speech", highpass=80, lowpass=7000, hiss=0.003),
}


def _time(n: int, sr: int) -> np.ndarray:
    # Synthesis runs in float32: twice as fast as float64, and far more precise than the MP3 it becomes.
    return np.arange(n, dtype=np.float32) / np.float32(sr)


def _midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def _degree(scale: tuple[int, ...], degree: int) -> int:
    """Semitones of a scale degree; degrees beyond the scale wrap into the next octaves."""
    return scale[degree % len(scale)] + 12 * (degree // len(scale))


def _add(out: np.ndarray, sound: np.ndarray, start: float, sr: int, gain: float = 1.0) -> None:
    begin = int(round(start * sr))
    if begin >= len(out) or begin + len(sound) <= 0:
        return
    skip = max(0, -begin)
    end = min(len(out), begin + len(sound))
    out[begin + skip:end] += gain * sound[skip:end - begin]


def _note(voice: _Voice, hz: float, seconds: float, sr: int) -> np.ndarray:
    """One note of a timbre. Decaying timbres ring for several time constants; others hold, then release."""
    decaying = voice.timbre in _DECAYING
    n = int(min(3.0 * seconds, 2.0) * sr) if decaying else int((seconds + 0.05) * sr)
    t = _time(n, sr)
    if voice.vibrato:
        cycles = np.cumsum(hz * 2.0 ** (voice.vibrato * np.sin(2 * np.pi * 5.5 * t) / 12)) / sr
    else:
        cycles = hz * t
    frac = cycles % 1.0
    if voice.timbre in ("pluck", "piano"):
        # Additive partials whose upper harmonics die first: bright attack, mellow tail. The recurrences
        # sin(kx) = 2 cos(x) sin((k-1)x) - sin((k-2)x) and e^-(a k t) = e^-(a (k-1) t) e^-(a t) replace a
        # sin and an exp per partial with multiplications (long plucked notes are the costliest to make).
        n_partials = min(8 if voice.timbre == "pluck" else 6, int(0.45 * sr / hz))
        faster = 0.6 if voice.timbre == "pluck" else 0.3  # how much quicker each partial decays
        phase = 2 * np.pi * cycles
        two_cos, previous, current = 2 * np.cos(phase), np.zeros(n, np.float32), np.sin(phase)
        envelope, step = np.exp(-t / seconds), np.exp(-t * faster / seconds)
        wave = current * envelope
        for k in range(2, n_partials + 1):
            previous, current = current, two_cos * current - previous
            envelope = envelope * step
            wave += current * envelope / (k if voice.timbre == "pluck" else k**1.5)
    elif voice.timbre == "buzz":
        wave = np.tanh(3 * (2 * frac - 1)) * np.exp(-t / seconds)
    elif voice.timbre == "epiano":
        index = 2.5 * np.exp(-t / 0.15)  # FM bell attack, fading to a near-sine
        wave = np.sin(2 * np.pi * cycles + index * np.sin(2 * np.pi * cycles)) * np.exp(-t / seconds)
    elif voice.timbre == "organ":
        k = np.array([1, 2, 3, 4, 6, 8], np.float32)[:, None]
        amps = np.array([1.0, 0.7, 0.5, 0.35, 0.25, 0.2], np.float32)[:, None] * (k * hz < 0.45 * sr)
        wave = (amps * np.sin(2 * np.pi * k * cycles)).sum(axis=0) / 2
    elif voice.timbre in ("saw", "string"):
        wave = 2 * frac - 1
    elif voice.timbre == "square":
        wave = np.sign(0.5 - frac)
    elif voice.timbre == "triangle":
        wave = 4 * np.abs(frac - 0.5) - 1
    else:  # sine
        wave = np.sin(2 * np.pi * cycles)
    envelope = np.minimum(1.0, t / max(voice.attack, 1e-4))
    release = 0.02 if decaying else 0.05  # decaying notes are cut after 3 time constants (or 2 s): fade
    envelope *= np.clip((n / sr - t) / release, 0.0, 1.0)
    return wave * envelope


def _drum_kit(rng: np.random.Generator, sr: int, names: Iterable[str]) -> dict[str, np.ndarray]:
    """The drums a style uses, each peak-normalised. Every track tunes its own kit slightly."""

    def t(seconds):
        return _time(int(seconds * sr), sr)

    def noise(seconds):
        return rng.standard_normal(int(seconds * sr), np.float32)

    def tone(seconds, hz, sweep, sweep_time, decay):
        time_ = t(seconds)
        cycles = np.cumsum(hz + sweep * np.exp(-time_ / sweep_time)) / sr
        return np.sin(2 * np.pi * cycles) * np.exp(-time_ / decay)

    def hiss(seconds, decay, order=2):
        sound = noise(seconds)
        for _ in range(order):  # each difference tilts the spectrum up: a cheap high-pass
            sound = np.diff(sound, prepend=0.0)
        return sound * np.exp(-t(seconds) / decay)

    def clap():
        time_ = t(0.25)
        bursts = sum(np.exp(-np.clip(time_ - d, 0, None) / 0.006) * (time_ >= d) for d in (0.0, 0.011, 0.022))
        return np.diff(noise(0.25), prepend=0.0) * (bursts + 0.5 * np.exp(-time_ / 0.08))

    def ride():
        time_ = t(1.0)
        bell = sum(np.sin(2 * np.pi * f * rng.uniform(0.97, 1.03) * time_) for f in (3150, 3890, 5210, 6470))
        return bell * np.exp(-time_ / 0.35) + 0.3 * hiss(1.0, 0.2)

    recipes = {
        "kick": lambda: tone(0.5, rng.uniform(45, 55), rng.uniform(90, 130), 0.03, rng.uniform(0.12, 0.2)),
        "kick808": lambda: tone(1.2, rng.uniform(40, 48), 70, 0.04, rng.uniform(0.45, 0.7)),
        "snare": lambda: hiss(0.3, rng.uniform(0.07, 0.11), 1) * 0.4 + tone(0.3, rng.uniform(175, 200), 40, 0.01, 0.05),
        "clap": clap,
        "hat": lambda: hiss(0.08, rng.uniform(0.015, 0.03)),
        "openhat": lambda: hiss(0.35, rng.uniform(0.1, 0.15)),
        "crash": lambda: hiss(1.5, rng.uniform(0.6, 0.9), 1),
        "ride": ride,
        "handdrum": lambda: tone(0.4, rng.uniform(260, 320), 80, 0.02, 0.12) + 0.3 * hiss(0.4, 0.01, 1),
        "doum": lambda: tone(0.6, rng.uniform(90, 120), 40, 0.03, 0.2),
        "shaker": lambda: hiss(0.1, 0.03) * np.minimum(1.0, t(0.1) / 0.02),
        "brush": lambda: noise(0.3) * np.exp(-t(0.3) / 0.12),
    }
    kit = {name: recipes[name]() for name in names}
    return {name: sound / np.abs(sound).max() for name, sound in kit.items()}


def _grid(style: _Style, rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    """A beat-grid piece: drums and pitched parts over a chord progression, starting mid-bar."""
    beat = 60.0 / (style.bpm * rng.uniform(0.94, 1.06))
    step = beat / style.steps
    bar_steps = 4 * style.steps
    bar = bar_steps * step
    # Real clips start anywhere in a track; starting off the bar line keeps onsets from lining up.
    offset = rng.uniform(0, bar)
    n_bars = int(np.ceil((seconds + offset) / bar)) + 1
    n = int(seconds * sr)
    root = style.root + int(rng.integers(-3, 4))
    progression = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    swing = style.swing * rng.uniform(0.8, 1.2)

    def onset(bar_index: int, step_index: int) -> float:
        late = swing * step if step_index % 2 else 0.0
        return (bar_index * bar_steps + step_index) * step + late - offset

    pitched = np.zeros(n, np.float32)
    for voice in style.voices:
        pattern = voice.pattern or "".join("x" if s % voice.every == 0 else "." for s in range(bar_steps))
        level = voice.level * rng.uniform(0.75, 1.25)
        melody = style.melody or style.mode
        position = int(rng.integers(len(melody), 2 * len(melody)))  # walks start around the middle octave
        arp = 0
        cache: dict[int, np.ndarray] = {}
        for bar_index in range(n_bars):
            chord_root = 0 if voice.play == "drone" else progression[bar_index % len(progression)]
            for step_index, mark in enumerate(pattern):
                if mark != "x" or rng.random() > voice.density:
                    continue
                if voice.play == "walk":
                    position = int(np.clip(position + rng.choice((-2, -1, -1, 0, 1, 1, 2)), 0, 3 * len(melody)))
                    notes = [_degree(melody, position) - 12]
                elif voice.play == "arp":
                    notes = [_degree(style.mode, chord_root + voice.tones[arp % len(voice.tones)])]
                    arp += 1
                elif voice.play == "root":
                    notes = [_degree(style.mode, chord_root)]
                else:  # chord, drone
                    notes = [_degree(style.mode, chord_root + tone) for tone in voice.tones]
                start = onset(bar_index, step_index)
                for i, note in enumerate(notes):
                    # A part replays its few pitches many times: render each once per track.
                    if note not in cache:
                        cache[note] = _note(voice, _midi_hz(root + voice.octave + note), voice.length * beat, sr)
                    sound = cache[note]
                    _add(pitched, sound, start + i * voice.strum, sr, level)
    if style.distortion:
        pitched = np.tanh(style.distortion * pitched) / np.tanh(style.distortion)

    drums = np.zeros(n, np.float32)
    kit = _drum_kit(rng, sr, (name for name, _ in style.drums))
    for name, pattern in style.drums:
        for bar_index in range(n_bars):
            for step_index, mark in enumerate(pattern):
                # Soft hits drop out now and then, like a drummer's hand, not a loop.
                if mark == "x" or (mark == "o" and rng.random() > 0.15):
                    gain = (1.0 if mark == "x" else 0.4) * rng.uniform(0.8, 1.0)
                    _add(drums, kit[name], onset(bar_index, step_index), sr, gain)
    return pitched + style.drum_level * rng.uniform(0.8, 1.2) * drums


def _free(rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    """No pulse: slow beating drones, sweeping FM glissandi and band-limited noise bursts at random times."""
    n = int(seconds * sr)
    t = _time(n, sr)
    out = np.zeros(n, np.float32)
    for _ in range(int(rng.integers(2, 4))):
        hz = rng.uniform(60, 400)
        out += 0.15 * (np.sin(2 * np.pi * hz * t) + np.sin(2 * np.pi * (hz + rng.uniform(0.5, 3)) * t))
    for _ in range(int(rng.integers(6, 12))):
        length = rng.uniform(0.3, 2.0)
        local = _time(int(length * sr), sr)
        start_hz, end_hz = rng.uniform(100, 4000, size=2)
        hz = start_hz * (end_hz / start_hz) ** (local / length)  # exponential sweep
        cycles = np.cumsum(hz) / sr
        ratio, index = rng.uniform(1.1, 3.7), rng.uniform(0.5, 6)  # inharmonic ratios: clangs, not notes
        sound = np.sin(2 * np.pi * cycles + index * np.sin(2 * np.pi * ratio * cycles))
        _add(out, sound * np.sin(np.pi * local / length) * rng.uniform(0.2, 0.5), rng.uniform(-0.5, seconds), sr)
    for _ in range(int(rng.integers(4, 10))):
        length = rng.uniform(0.05, 0.8)
        sound = rng.standard_normal(int(length * sr), np.float32)
        if rng.random() < 0.5:
            sound = np.cumsum(sound) / np.sqrt(len(sound))  # brown noise: a rumble instead of a hiss
        envelope = np.exp(-_time(len(sound), sr) / (length / 3))
        _add(out, sound / np.abs(sound).max() * envelope * rng.uniform(0.2, 0.6), rng.uniform(0, seconds), sr)
    return out


# Vowel formants (F1, F2, F3) in Hz: /a/, /i/, /u/, /e/, /o/, /æ/.
_VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410),
           (660, 1720, 2410))


def _speech(rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    """A talking voice: syllables of formant-weighted harmonics, falling intonation, consonant noise, pauses."""
    n = int(seconds * sr)
    out = np.zeros(n, np.float32)
    pitch = rng.uniform(95, 210)  # the speaker's voice
    time_ = rng.uniform(-0.3, 0.2)
    while time_ < seconds:
        n_words = int(rng.integers(3, 9))
        for word in range(n_words):
            for _ in range(int(rng.integers(1, 4))):
                length = rng.uniform(0.12, 0.26)
                local = _time(int(length * sr), sr)
                # Intonation falls across the phrase and moves a little within each syllable.
                f0 = pitch * (1.1 - 0.25 * word / n_words) * (1 + rng.uniform(-0.08, 0.08) * local / length)
                cycles = np.cumsum(f0) / sr
                formants = np.array(_VOWELS[int(rng.integers(len(_VOWELS)))]) * rng.uniform(0.92, 1.08)
                k = np.arange(1, int(4000 / f0[0]) + 1)[:, None]
                weights = np.exp(-(((k * f0[0]) - formants[:, None, None]) / 110.0) ** 2).sum(axis=0) + 0.02
                voiced = (weights / k**0.5 * np.sin(2 * np.pi * k * cycles)).sum(axis=0)
                sound = voiced * np.sin(np.pi * local / length) ** 0.7
                if rng.random() < 0.6:  # a consonant before the vowel: a short high noise burst
                    burst = np.diff(rng.standard_normal(int(0.04 * sr), np.float32), prepend=0.0) * 0.15
                    _add(out, burst * np.hanning(len(burst)), time_, sr)
                    time_ += 0.03
                _add(out, sound / np.abs(sound).max() * rng.uniform(0.5, 0.9), time_, sr)
                time_ += length
            time_ += rng.uniform(0.04, 0.15)
        time_ += rng.uniform(0.3, 0.8)
    return out


def _filter(audio: np.ndarray, sr: int, highpass: float, lowpass: float) -> np.ndarray:
    """Butterworth-shaped magnitude response applied in the frequency domain (no scipy needed)."""
    spectrum = np.fft.rfft(audio)
    freqs = np.fft.rfftfreq(len(audio), 1.0 / sr)
    response = 1.0 / np.sqrt(1.0 + (freqs / lowpass) ** 8)
    response *= 1.0 / np.sqrt(1.0 + (highpass / np.maximum(freqs, 1e-3)) ** 4)
    return np.fft.irfft(spectrum * response.astype(np.float32), n=len(audio))


def _reverb(audio: np.ndarray, sr: int, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Convolution with a decaying-noise impulse response: a room, cheaply."""
    tail = _time(int(1.2 * sr), sr)
    response = rng.standard_normal(len(tail), np.float32) * np.exp(-tail / 0.3)
    size = 1 << int(np.ceil(np.log2(len(audio) + len(response))))
    wet = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(response, size), size)[: len(audio)]
    return audio + amount * wet * (np.abs(audio).max() / max(np.abs(wet).max(), 1e-9))


def _synthesize(style_name: str, rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    """A mono clip of one genre, float32 in [-1, 1], shape (samples,)."""
    style = _STYLES[style_name]
    if style.texture == "free":
        audio = _free(rng, seconds, sr)
    elif style.texture == "speech":
        audio = _speech(rng, seconds, sr)
    else:
        audio = _grid(style, rng, seconds, sr)
    audio = audio / max(np.abs(audio).max(), 1e-9)
    if style.hiss:
        audio = audio + style.hiss * rng.standard_normal(len(audio), np.float32)
    if style.crackle:
        clicks = np.zeros(len(audio), np.float32)
        positions = rng.integers(0, len(audio), size=int(style.crackle * seconds))
        clicks[positions] = rng.uniform(-0.6, 0.6, size=len(positions))
        audio = audio + clicks
    audio = _filter(audio, sr, style.highpass, style.lowpass * rng.uniform(0.85, 1.15))
    if style.reverb:
        audio = _reverb(audio, sr, style.reverb, rng)
    ramp = _time(len(audio), sr) / 0.01  # 10 ms fades in and out
    fade = np.minimum(1.0, np.minimum(ramp, ramp[::-1]))
    audio = audio * fade
    audio *= rng.uniform(0.5, 0.9) / max(np.abs(audio).max(), 1e-9)  # levels differ between tracks
    return audio.astype(np.float32)


def _id3_tag_only(title: str) -> bytes:
    """An ID3v2.3 tag with a title and padding but no MPEG frames: an .mp3 that holds no audio at all."""
    text = b"\x00" + title.encode("latin-1", "replace")
    frame = b"TIT2" + len(text).to_bytes(4, "big") + b"\x00\x00" + text
    body = frame + bytes(1024)
    size = len(body)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + syncsafe + body


def _audio_file(track: _Track, seed: int, clip_seconds: float) -> bytes:
    """The bytes of one track's .mp3."""
    if track.kind == "corrupt":
        return _id3_tag_only(f"demo track {track.track_id}")
    # Seeded by (seed, track id): a track sounds the same whichever thread makes it, in whatever order.
    rng = np.random.default_rng([seed, track.track_id])
    seconds = DEMO_SHORT_SECONDS if track.kind == "short" else clip_seconds
    sample_rate = 44100 if track.stereo else 22050
    audio = _synthesize(track.style, rng, seconds, sample_rate)
    if track.stereo:
        # Right = a quieter mix with a 13 ms echo: a stereo image that still sums to the same music.
        delay = int(0.013 * sample_rate)
        right = 0.8 * audio + 0.2 * np.concatenate([np.zeros(delay, np.float32), audio[:-delay]])
        audio = np.stack([audio, right], axis=1)  # (samples, 2)
    buffer = io.BytesIO()
    # compression_level 0.7: a third smaller than libsndfile's default at the same encoding speed and the
    # same audio bandwidth, which makes the archives' bzip2 pass a third faster.
    sf.write(buffer, audio, sample_rate, format="MP3", subtype="MPEG_LAYER_III", compression_level=0.7)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------
# Archives and entry points
# ---------------------------------------------------------------------------------------------------


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

    tracks = _plan_tracks(seed)
    bar = tqdm(total=len(tracks) + len(ARCHIVES), desc="make-demo", unit="file", disable=not progress)
    files = _parallel_map(_counted(lambda track: _audio_file(track, seed, clip_seconds), bar), tracks, workers)
    audio = {track.track_id: data for track, data in zip(tracks, files)}

    def audio_members(subset: str) -> list[tuple[str, bytes]]:
        # Subsets nest: a track belongs to its `subset` cell's subset and every larger one.
        largest = SUBSETS.index("large" if subset == "full" else subset)
        return [(audio_path(t.track_id), audio[t.track_id]) for t in tracks if SUBSETS.index(t.subset) <= largest]

    metadata_members = [("tracks.csv", _tracks_csv(tracks)), ("genres.csv", _genres_csv(tracks))]
    archives = [  # biggest first, so the two workers finish together
        *((out_dir / ARCHIVES[s].filename, audio_members(s)) for s in ("full", "large", "medium", "small")),
        (out_dir / ARCHIVES["metadata"].filename, metadata_members),
    ]
    _parallel_map(_counted(lambda archive: _write_archive(*archive), bar), archives, workers)
    bar.close()
    _write_examples(out_dir / DEMO_EXAMPLES_FOLDER, tracks, audio)
    return out_dir


def _write_examples(folder: Path, tracks: list[_Track], audio: dict[int, bytes]) -> None:
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


if __name__ == "__main__":
    sys.exit(main())
