"""The demo's tracks and their metadata: which tracks each subset holds, their artists, albums and fields,
and tracks.csv and genres.csv as the real FMA writes them.

tracks.csv has the real three header lines and the 52 columns in their real order, Python list literals in
`genres`/`genres_all`/`tags`, HTML, quotes, commas and newlines in free text, and an empty `genre_top` for
tracks with several root genres or none. genres.csv uses FMA's real genre ids (the 16 top-level genres and
some of their sub-genres).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field

import numpy as np

from hf_fma.metadata import KNOWN_BAD_TRACK_IDS, SMALL_GENRES

# Fixed whatever the seed, so loaders' tests can name the files they must exclude. They are not in
# KNOWN_BAD_TRACK_IDS (the real bad ids): a loader has to find them by checking the files.
DEMO_CORRUPT_TRACK_IDS: tuple[int, ...] = (71334,)
DEMO_SHORT_TRACK_IDS: tuple[int, ...] = (117902,)
DEMO_SHORT_SECONDS = 0.3
# Decodable small tracks per genre and split (the real small has 800/100/100).
DEMO_SMALL_SPLIT_SIZES = {"training": 12, "validation": 2, "test": 2}

_MAX_TRACK_ID = 155320  # largest id in the real tracks.csv

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
class Track:
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


def plan_tracks(seed: int) -> list[Track]:
    """Every demo track with its metadata, sorted by id. The split of each artist is fixed at creation."""
    rng = np.random.default_rng(seed)
    catalogue = _Catalogue(rng)
    tracks: list[Track] = []
    artists_of: dict[tuple[str, str], list[dict]] = {}

    def add(genre: str, split: str, subset: str, count: int) -> None:
        for size in _split_among_artists(rng, count):
            artist = catalogue.artist(genre)
            artists_of.setdefault((genre, split), []).append(artist)
            tracks.extend(Track(catalogue.genres(genre), split, subset, artist) for _ in range(size))

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
            tracks.append(Track(catalogue.genres(genre), split, "small", artist, kind, track_id=track_id))

    for genre, count in _MEDIUM_EXTRA.items():
        if genre in SMALL_GENRES:
            # Same artists as in small (one artist can span subsets, like AWOL in the real file).
            for _ in range(count):
                artist = catalogue.pick(artists_of[(genre, "training")])
                tracks.append(Track(catalogue.genres(genre), "training", "medium", artist))
        else:
            add(genre, "validation", "medium", 1)
            add(genre, "test", "medium", 1)
            add(genre, "training", "medium", count - 2)

    for genres, split in _LARGE_EXTRA:
        tracks.append(Track(genres, split, "large", catalogue.artist("Experimental")))

    for track in tracks:
        if track.subset != "small" and rng.random() < 0.06:  # few: a stereo 44.1 kHz clip takes 4x to encode
            track.stereo = True
    _assign_ids(rng, tracks)
    tracks.sort(key=lambda t: t.track_id)
    _fill_albums_and_dates(catalogue, tracks)
    return tracks


def _assign_ids(rng: np.random.Generator, tracks: list[Track]) -> None:
    """Ids spread over the real range (3-digit folders 000 to 155), interleaving genres as the real ids do."""
    # Never a real known-bad id: the loader's fixed exclusion list would drop a track the demo counts.
    taken = {t.track_id for t in tracks if t.track_id} | KNOWN_BAD_TRACK_IDS
    pool = np.setdiff1d(np.arange(2, _MAX_TRACK_ID + 1), np.fromiter(taken, int))
    unassigned = [t for t in tracks if not t.track_id]
    for track, track_id in zip(unassigned, rng.choice(pool, size=len(unassigned), replace=False).tolist()):
        track.track_id = track_id


def _date(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S")


def _fill_albums_and_dates(catalogue: _Catalogue, tracks: list[Track]) -> None:
    """Albums per artist and dates that grow with the id (FMA ids were given in upload order)."""
    rng = catalogue.rng
    by_artist: dict[int, list[Track]] = {}
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


def tracks_csv(tracks: list[Track]) -> bytes:
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


def genres_csv(tracks: list[Track]) -> bytes:
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


__all__ = [
    "DEMO_CORRUPT_TRACK_IDS",
    "DEMO_SHORT_SECONDS",
    "DEMO_SHORT_TRACK_IDS",
    "DEMO_SMALL_SPLIT_SIZES",
    "Track",
    "genres_csv",
    "plan_tracks",
    "tracks_csv",
]
