"""The `hf_fma` loading script on the offline demo archives and on the real FMA sample."""

import errno
import functools
import hashlib
import http.server
import io
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import threading
import time
import zipfile
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest
from datasets import Audio, load_dataset

from hf_fma import demo, metadata
from hf_fma.data import load_fma
from hf_fma.hf_fma import ARCHIVES, Fma

from .conftest import REPO_ROOT, with_cell

SCRIPT = str(REPO_ROOT / "hf_fma")
SPLITS = ("train", "validation", "test")
BAD_DEMO_IDS = set(demo.DEMO_CORRUPT_TRACK_IDS) | set(demo.DEMO_SHORT_TRACK_IDS)


@pytest.fixture(scope="module")
def demo_tracks(demo_dir):
    with zipfile.ZipFile(demo_dir / "fma_metadata.zip") as archive, archive.open("fma_metadata/tracks.csv") as f:
        return metadata.load_tracks(f)


def expected_split_ids(tracks, subset):
    """What the metadata says a config's splits hold, less the files the builder must leave out."""
    tracks = metadata.subset_tracks(tracks, subset)
    tracks = tracks.drop(index=(BAD_DEMO_IDS | metadata.KNOWN_BAD_TRACK_IDS) & set(tracks.index))
    return {
        split: set(tracks.index[tracks["set", "split"] == official])
        for official, split in metadata.SPLIT_NAMES.items()
    }


# Loading the script by name (`load_dataset("hf_fma", ...)`) is tested on datasets < 4 only: 4 refuses loading
# scripts. Everything else goes through load_fma, the builder class itself, which works on every version.
needs_loading_scripts = pytest.mark.skipif(
    int(datasets.__version__.split(".")[0]) >= 4, reason="datasets >= 4 does not run loading scripts"
)


def load(config, demo_dir, **kwargs):
    return load_fma(config, data_dir=demo_dir, **kwargs)


@pytest.mark.parametrize("config", ["small", "medium", "large", "full"])
def test_every_subset_prepares_with_the_official_splits(config, demo_dir, demo_tracks, tmp_path):
    # load_dataset imports its own copy of the script, so match the warning by base class and text.
    # A cache of its own: the reports come while a split is prepared, never from a cache another test made.
    with pytest.warns(UserWarning, match="left out") as caught:
        dataset = load(config, demo_dir, cache_dir=str(tmp_path / "cache"))
    expected = expected_split_ids(demo_tracks, config)
    assert set(dataset) == set(SPLITS)
    for split in SPLITS:
        assert set(dataset[split]["track_id"]) == expected[split], split
    # Bad files are reported by id, once per split they belong to, and never yielded.
    reported = " ".join(str(w.message) for w in caught if type(w.message).__name__ == "BadAudioWarning")
    for track_id in BAD_DEMO_IDS:
        assert f"{track_id:06d}" in reported
    assert "071334: the file holds only an ID3 tag (1061 bytes) and no audio frames" in reported
    # Labels are what tracks.csv says, in the documented order.
    names = dataset["train"].features["genre"].names
    assert names == list(metadata.SMALL_GENRES if config == "small" else metadata.TOP_GENRES)
    rows = dataset["train"].select_columns(["track_id", "genre"]).to_list()
    for row in rows:
        genre_top = demo_tracks.at[row["track_id"], ("track", "genre_top")]
        assert row["genre"] == (names.index(genre_top) if isinstance(genre_top, str) else -1)


def test_small_label_counts_and_fields(demo_dir, demo_tracks):
    dataset = load("small", demo_dir)
    counts = {split: Counter(dataset[split].features["genre"].int2str(dataset[split]["genre"])) for split in SPLITS}
    assert counts["train"] == {genre: 12 for genre in metadata.SMALL_GENRES}
    assert counts["validation"] == counts["test"] == {genre: 2 for genre in metadata.SMALL_GENRES}
    example = dataset["train"][0]
    track = demo_tracks.loc[example["track_id"]]
    assert example["title"] == track["track", "title"]
    assert example["artist"] == track["artist", "name"]
    assert example["album"] == track["album", "title"]
    assert track["track", "genre_top"] in example["genres"]
    assert example["duration"] == pytest.approx(10.0, abs=0.1)
    assert example["audio"]["array"].ndim == 1 and example["audio"]["sampling_rate"] in (22050, 44100)


@pytest.mark.parametrize("config", ["small", "large"])
def test_no_track_and_no_artist_in_two_splits(config, demo_dir):
    dataset = load(config, demo_dir)
    for column in ("track_id", "artist"):
        values = {split: set(dataset[split][column]) for split in SPLITS}
        assert not values["train"] & values["validation"], column
        assert not values["train"] & values["test"], column
        assert not values["validation"] & values["test"], column


def test_large_keeps_tracks_without_genre_top(demo_dir, demo_tracks):
    dataset = load("large", demo_dir)
    large = metadata.subset_tracks(demo_tracks, "large")
    without = set(large.index[large["track", "genre_top"].isna()])
    assert without, "the demo must hold large tracks without genre_top"
    kept = {row["track_id"]: row for split in SPLITS for row in dataset[split].select_columns(["track_id", "genre", "genres"])}
    for track_id in without:
        assert kept[track_id]["genre"] == -1


def test_mini_is_balanced_deterministic_and_keeps_split_proportions(demo_dir):
    # The demo has 16 tracks per genre, so ask for 10 (8 / 1 / 1 per genre) as mini's 125 asks for 100/12.5/12.5.
    first = load("mini", demo_dir, tracks_per_genre=10)
    again = load("mini", demo_dir, tracks_per_genre=10, download_mode="force_redownload")
    small = load("small", demo_dir)
    for split, per_genre in (("train", 8), ("validation", 1), ("test", 1)):
        labels = Counter(first[split]["genre"])
        assert labels == {label: per_genre for label in range(8)}, split
        assert set(first[split]["track_id"]) <= set(small[split]["track_id"])
        assert first[split]["track_id"] == again[split]["track_id"]


@pytest.mark.parametrize("config, options", [("small", {}), ("mini", {"tracks_per_genre": 10})])
def test_streaming_yields_the_same_examples(config, options, demo_dir):
    # The test split holds the demo's short file: both modes must skip it, and mini must replace it.
    prepared = load(config, demo_dir, split="test", **options)
    streamed = list(load(config, demo_dir, split="test", streaming=True, **options))
    by_id = {example["track_id"]: example for example in streamed}
    assert [example["track_id"] for example in streamed] == prepared["track_id"]
    assert not BAD_DEMO_IDS & set(by_id)
    for example in prepared:
        other = by_id[example["track_id"]]
        assert {k: v for k, v in example.items() if k != "audio"} == {k: v for k, v in other.items() if k != "audio"}
        assert example["audio"]["sampling_rate"] == other["audio"]["sampling_rate"]
        np.testing.assert_array_equal(example["audio"]["array"], other["audio"]["array"])


def test_extracted_folders_in_data_dir(demo_dir, tmp_path):
    for name in ("fma_metadata", "fma_small"):
        with zipfile.ZipFile(demo_dir / f"{name}.zip") as archive:
            archive.extractall(tmp_path)
    dataset = load_fma("small", data_dir=tmp_path, split="test")
    assert len(dataset) == 16
    # the undecoded column holds the path on every datasets version (datasets 4 decodes to an AudioDecoder)
    assert dataset.cast_column("audio", Audio(decode=False))[0]["audio"]["path"].startswith(str(tmp_path / "fma_small"))


@needs_loading_scripts
def test_load_by_name_from_the_repository_root(demo_dir, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    dataset = load_dataset("hf_fma", "small", data_dir=str(demo_dir), split="test", trust_remote_code=True)
    assert len(dataset) == 16
    # load_fma returns what the script returns
    through_builder = load_fma("small", data_dir=demo_dir, split="test")
    assert through_builder.features == dataset.features
    assert through_builder.select_columns(["track_id", "genre", "duration"]).to_list() == dataset.select_columns(
        ["track_id", "genre", "duration"]
    ).to_list()


def test_the_builder_is_a_plain_class(demo_dir, tmp_path):
    builder = Fma(config_name="small", data_dir=str(demo_dir), cache_dir=str(tmp_path))
    builder.download_and_prepare()
    assert builder.as_dataset(split="test").num_rows == 16


def test_unknown_config_lists_the_valid_ones():
    with pytest.raises(ValueError, match="small.*medium.*large.*full.*mini"):
        load_fma("tiny")


def test_missing_archive_names_the_file_and_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("not FMA")
    with pytest.raises(FileNotFoundError, match=r"fma_metadata\.zip .*notes\.txt"):
        load_fma("small", data_dir=tmp_path)


@pytest.fixture
def mirror(demo_dir, monkeypatch):
    """The demo archives served over HTTP on loopback: the download path, as from a mirror."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(demo_dir))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    import datasets.config

    # Offline mode refuses every http URL; the server is on loopback, so allow it for this test only.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def _sha1(path):
    return hashlib.sha1(path.read_bytes()).hexdigest()


def test_mirror_download_is_checked_against_the_official_sha1(demo_dir, mirror, tmp_path):
    builder = Fma(config_name="small", mirror_url=mirror, cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match=f"fma_metadata.zip from {mirror}.*{ARCHIVES['metadata'].sha1}"):
        builder.download_and_prepare()


def test_mirror_download_with_matching_sha1_prepares(demo_dir, mirror, tmp_path, monkeypatch):
    import hf_fma.hf_fma as script

    # Pretend the demo archives are the official ones: their real sha1 becomes the published one.
    for key in ("metadata", "small"):
        archive = ARCHIVES[key]
        monkeypatch.setitem(script.ARCHIVES, key, archive.__class__(archive.name, _sha1(demo_dir / archive.filename), archive.size))
    builder = Fma(config_name="small", mirror_url=mirror, cache_dir=str(tmp_path))
    builder.download_and_prepare()
    assert builder.as_dataset(split="test").num_rows == 16


# The official split of the real tracks.csv records in tests/data, read from their `set.split` and
# `set.subset` cells by eye (tests/data/README.md), not derived from the package's constants.
REAL_SPLITS = {
    "small": {"train": [2, 5, 10], "validation": [148, 459], "test": [182]},
    "large": {"train": [2, 3, 5, 10, 20, 134], "validation": [148, 458, 459], "test": [181, 182, 183, 185]},
}


@pytest.fixture
def real_data_dir(fma_sample, tmp_path):
    """The real tracks.csv records and genres.csv, plus track 99134 (one of FMA's known-bad ids, here a
    copy of track 2's record), each track's audio a copy of the real excerpt of track 2: 99134's audio
    decodes fine, so only the known-bad list can leave it out."""
    metadata_folder = tmp_path / "fma_metadata"
    shutil.copytree(fma_sample / "fma_metadata", metadata_folder)
    csv_text = (metadata_folder / "tracks.csv").read_text(encoding="utf-8")
    record_of_2 = csv_text[csv_text.index("\n2,") + 1 : csv_text.index("\n3,") + 1]
    (metadata_folder / "tracks.csv").write_text(csv_text + "99134," + record_of_2[2:], encoding="utf-8")
    clip = fma_sample / "fma_small" / "000" / "000002.mp3"
    for track_id in [*REAL_SPLITS["large"]["train"], *REAL_SPLITS["large"]["validation"], *REAL_SPLITS["large"]["test"], 99134]:
        target = tmp_path / "fma_large" / metadata.audio_path(track_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, target)
    shutil.copytree(tmp_path / "fma_large", tmp_path / "fma_small")
    return tmp_path


@pytest.mark.parametrize("config", ["small", "large"])
def test_real_tracks_get_their_official_split_and_the_known_bad_id_is_dropped(config, real_data_dir):
    with pytest.warns(UserWarning, match="known bad.*099134"):
        dataset = load(config, real_data_dir)
    assert {split: sorted(dataset[split]["track_id"]) for split in SPLITS} == REAL_SPLITS[config]
    train = dataset["train"]
    example = train[0]
    assert example["track_id"] == 2 and example["genre"] == train.features["genre"].names.index("Hip-Hop")
    assert (example["title"], example["artist"]) == ("Food", "AWOL")
    assert example["audio"]["sampling_rate"] == 44100
    assert len(example["audio"]["array"]) / 44100 == pytest.approx(10.02, abs=0.02)
    resampled = train.cast_column("audio", Audio(sampling_rate=16000))[0]["audio"]
    assert resampled["sampling_rate"] == 16000 and resampled["array"].ndim == 1
    assert len(resampled["array"]) / 16000 == pytest.approx(10.02, abs=0.02)
    assert (example["album"], example["genres"]) == ("AWOL - A Way Of Life", ["Hip-Hop"])
    assert example["license"] == "Attribution-NonCommercial-ShareAlike 3.0 International"
    if config == "large":  # tracks 20 and 185 have an empty genre_top in the real file
        genre_of = dict(zip(train["track_id"], train["genre"])) | dict(zip(dataset["test"]["track_id"], dataset["test"]["genre"]))
        assert genre_of[20] == genre_of[185] == -1
        # Read by eye: track 20's genres_all [17, 10, 76, 103], titled in genres.csv, in that order.
        track_20 = train.remove_columns("audio").filter(lambda row: row["track_id"] == 20)[0]
        assert track_20["genres"] == ["Folk", "Pop", "Experimental Pop", "Singer-Songwriter"]
        assert (track_20["title"], track_20["artist"], track_20["album"]) == ("Spiritual Level", "Nicky Cook", "Niris")
        assert track_20["license"] == "Attribution-NonCommercial-NoDerivatives (aka Music Sharing) 3.0 International"


def test_a_small_track_of_another_genre_is_named(real_data_dir):
    tracks_csv = real_data_dir / "fma_metadata" / "tracks.csv"
    with_cell(tracks_csv, tracks_csv, 10, ("track", "genre_top"), "Jazz")  # top-level, but not one of small's
    with pytest.raises(ValueError, match="tracks.csv: track 10, column track.genre_top: 'Jazz' is not a genre of FMA small"):
        load("small", real_data_dir)


# mini of the demo with 10 tracks per genre: the study's set must not change silently (an order by id
# instead of by hash, or another replacement rule, keeps the counts but changes these).
DEMO_MINI_IDS = {
    "train": [
        364, 2869, 3392, 9637, 10743, 12200, 13818, 14057, 14436, 21165, 22164, 23334, 24400, 25388, 26202, 28430,
        30105, 31341, 34119, 39546, 43081, 44270, 47190, 48646, 48876, 52285, 52453, 56870, 59292, 63266, 66768,
        66786, 67707, 68386, 76787, 79689, 81534, 82835, 82930, 88693, 91700, 93326, 95734, 96899, 97842, 97891,
        99061, 107469, 107511, 108293, 108703, 113707, 120856, 120998, 128099, 128604, 130585, 135460, 136467,
        137415, 139545, 141587, 142382, 152931,
    ],
    "validation": [41808, 61565, 73399, 92654, 100927, 129897, 132509, 134910],
    "test": [4293, 32373, 36992, 39993, 94908, 104619, 122080, 151628],
}


def test_demo_mini_track_ids_are_pinned(demo_dir):
    dataset = load("mini", demo_dir, tracks_per_genre=10)
    assert {split: sorted(dataset[split]["track_id"]) for split in SPLITS} == DEMO_MINI_IDS


# --- damaged, changed and partial data ----------------------------------------------------------------


def copy_archives(demo_dir, folder, names=("fma_metadata", "fma_small")):
    folder.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(demo_dir / f"{name}.zip", folder)
    return folder


def extract_archives(demo_dir, folder, names=("fma_metadata", "fma_small")):
    for name in names:
        with zipfile.ZipFile(demo_dir / f"{name}.zip") as archive:
            archive.extractall(folder)
    return folder


def small_ids(demo_tracks, split):
    """Decodable small tracks of an official split, by id, from the demo's tracks.csv."""
    small = demo_tracks[demo_tracks["set", "subset"] == "small"]
    return sorted(set(small.index[small["set", "split"] == split]) - BAD_DEMO_IDS)


def damage_member(zip_path, member):
    """Flip 64 bytes in the middle of a member's compressed data, as a bad disk or transfer would."""
    with zipfile.ZipFile(zip_path) as archive:
        info = archive.getinfo(member)
    with open(zip_path, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", f.read(4))
        middle = info.header_offset + 30 + name_length + extra_length + info.compress_size // 2
        f.seek(middle)
        chunk = f.read(64)
        f.seek(middle)
        f.write(bytes(byte ^ 0xFF for byte in chunk))


def rewrite_zip(zip_path, keep=lambda info: True, comment=None, extra=()):
    """Rewrite a zip with some members left out, another comment, or extra (ZipInfo, bytes) members."""
    with zipfile.ZipFile(zip_path) as old:
        members = [(info, old.read(info)) for info in old.infolist() if keep(info)]
        comment = old.comment if comment is None else comment
    with zipfile.ZipFile(zip_path, "w") as new:
        for info, data in [*members, *extra]:
            new.writestr(info, data)
        new.comment = comment


def builder(config, data_dir, cache_dir, **options):
    return Fma(config_name=config, data_dir=str(data_dir), cache_dir=str(cache_dir), **options)


def test_changed_extracted_folder_is_prepared_again(demo_dir, demo_tracks, tmp_path):
    data_dir = extract_archives(demo_dir, tmp_path)
    first = load("small", data_dir, split="test")
    assert sorted(first["track_id"]) == small_ids(demo_tracks, "test")
    removed = small_ids(demo_tracks, "test")[0]
    (data_dir / "fma_small" / metadata.audio_path(removed)).unlink()
    with pytest.warns(UserWarning, match=f"{removed:06d}: no file"):
        again = load("small", data_dir, split="test")
    assert sorted(again["track_id"]) == small_ids(demo_tracks, "test")[1:]


def test_changed_zip_is_prepared_again(demo_dir, demo_tracks, tmp_path):
    data_dir = copy_archives(demo_dir, tmp_path)
    assert sorted(load("small", data_dir, split="test")["track_id"]) == small_ids(demo_tracks, "test")
    removed = small_ids(demo_tracks, "test")[-1]
    rewrite_zip(data_dir / "fma_small.zip", keep=lambda info: not info.filename.endswith(f"{removed:06d}.mp3"))
    with pytest.warns(UserWarning, match=f"{removed:06d}: no file"):
        again = load("small", data_dir, split="test")
    assert sorted(again["track_id"]) == small_ids(demo_tracks, "test")[:-1]


def test_damaged_zip_names_the_member_and_is_never_half_used(demo_dir, demo_tracks, tmp_path):
    data_dir = copy_archives(demo_dir, tmp_path / "data")
    member = f"fma_small/{metadata.audio_path(small_ids(demo_tracks, 'training')[40])}"
    damage_member(data_dir / "fma_small.zip", member)
    for attempt in range(2):  # the second try must not use what the first extracted
        with pytest.raises(ValueError, match=f"fma_small.zip is damaged: its member {member} .*download it again"):
            builder("small", data_dir, tmp_path / "cache").download_and_prepare()
    assert [name for name in extracted_entries(tmp_path / "cache") if name.startswith("fma_small")] == []


@pytest.mark.parametrize("verify_sha1, message", [(True, "has sha1 .* truncated"), (False, "cannot be opened as a zip")])
def test_truncated_zip_is_named(verify_sha1, message, demo_dir, tmp_path):
    data_dir = copy_archives(demo_dir, tmp_path / "data")
    archive = data_dir / "fma_small.zip"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ValueError, match=f"fma_small.zip.*{message}.*download it again"):
        builder("small", data_dir, tmp_path / "cache", verify_sha1=verify_sha1).download_and_prepare()


def test_local_zip_with_an_official_name_is_checked_against_the_official_sha1(demo_dir, tmp_path, monkeypatch):
    import hf_fma.hf_fma as script

    data_dir = copy_archives(demo_dir, tmp_path / "data")
    archive = data_dir / "fma_small.zip"
    rewrite_zip(archive, comment=b"")  # no longer says it is a demo archive
    official = ARCHIVES["small"].sha1
    with pytest.raises(ValueError, match=f"fma_small.zip from data_dir=.* has sha1 {_sha1(archive)}.*{official}.*verify_sha1=False"):
        builder("small", data_dir, tmp_path / "cache").download_and_prepare()
    # A marker that does not record this very file (an old bare sha1, or another size) is not trusted.
    marker = data_dir / "fma_small.zip.sha1"
    for stale in (official, json.dumps({"sha1": official, "size": archive.stat().st_size + 1, "mtime_ns": archive.stat().st_mtime_ns})):
        marker.write_text(stale)
        with pytest.raises(ValueError, match=f"has sha1 {_sha1(archive)}"):
            builder("small", data_dir, tmp_path / "cache").download_and_prepare()
    # Checked once: a match is remembered for this size and mtime...
    monkeypatch.setitem(script.ARCHIVES, "small", ARCHIVES["small"].__class__("fma_small", _sha1(archive), "7.2 GiB"))
    builder("small", data_dir, tmp_path / "cache").download_and_prepare()
    assert json.loads(marker.read_text())["sha1"] == _sha1(archive)
    # ...and a changed file is hashed again, whatever the marker says.
    rewrite_zip(archive, comment=b"changed")
    with pytest.raises(ValueError, match=f"has sha1 {_sha1(archive)}"):
        builder("small", data_dir, tmp_path / "cache").download_and_prepare()
    assert builder("small", data_dir, tmp_path / "cache", verify_sha1=False).download_and_prepare() is None


@pytest.mark.parametrize("kind", ["parent", "absolute", "symlink"])
def test_zip_members_never_land_outside_the_extraction_folder(kind, demo_dir, tmp_path):
    data_dir = copy_archives(demo_dir, tmp_path / "data")
    outside = tmp_path / "outside.txt"
    name = {"parent": "fma_small/../../../../outside.txt", "absolute": str(outside), "symlink": "fma_small/link"}[kind]
    info = zipfile.ZipInfo(name)
    data = b"written by a hostile archive"
    if kind == "symlink":
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        data = str(tmp_path).encode()
    rewrite_zip(data_dir / "fma_small.zip", extra=[(info, data)])
    with pytest.raises(ValueError, match=f"fma_small.zip holds member.* {re.escape(name)}.*nothing was extracted"):
        builder("small", data_dir, tmp_path / "cache").download_and_prepare()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cache", "data"]
    assert not list((tmp_path / "cache").rglob("outside.txt")) and not list((tmp_path / "cache").rglob("link"))


def test_streaming_leaves_a_damaged_member_out(demo_dir, demo_tracks, tmp_path):
    data_dir = copy_archives(demo_dir, tmp_path)
    damaged = small_ids(demo_tracks, "test")[3]
    damage_member(data_dir / "fma_small.zip", f"fma_small/{metadata.audio_path(damaged)}")
    with pytest.warns(UserWarning) as caught:
        streamed = [example["track_id"] for example in load("small", data_dir, split="test", streaming=True)]
    assert sorted(streamed) == [t for t in small_ids(demo_tracks, "test") if t != damaged]
    reported = [str(w.message) for w in caught if type(w.message).__name__ == "BadAudioWarning"]
    assert any(f"{damaged:06d}: its zip member {metadata.audio_path(damaged)} is damaged" in m for m in reported)


def listed_small_ids(demo_tracks, split):
    """The small tracks tracks.csv gives an official split, less the known bad ones the builder drops first."""
    small = demo_tracks[demo_tracks["set", "subset"] == "small"]
    return sorted(set(small.index[small["set", "split"] == split]) - metadata.KNOWN_BAD_TRACK_IDS)


def test_config_without_audio_names_the_folder_the_counts_and_what_is_missing(demo_dir, demo_tracks, tmp_path):
    data_dir = extract_archives(demo_dir, tmp_path, names=("fma_metadata",))
    (data_dir / "fma_small").mkdir()  # an extraction that never happened
    # Raised once the splits' shards are all generated (whatever num_proc), so not wrapped by datasets;
    # until the last split, each empty one is only warned about, as partial data would be.
    with pytest.raises(ValueError) as excinfo, pytest.warns(UserWarning, match="HAS NO AUDIO") as caught:
        load("small", data_dir, split="train")
    assert [re.search(r"SPLIT '(\w+)' HAS NO AUDIO", str(w.message))[1] for w in caught] == ["train", "validation"]
    counts = {split: len(listed_small_ids(demo_tracks, official)) for official, split in metadata.SPLIT_NAMES.items()}
    message = str(excinfo.value)
    assert (f"FMA small has no usable audio: tracks.csv lists train {counts['train']}, validation "
            f"{counts['validation']}, test {counts['test']} track(s)") in message
    assert f"from {data_dir / 'fma_small'} (split 'test': {counts['test']} file(s) missing, 0 unusable" in message
    assert "Extract fma_small.zip completely" in message


def test_partial_data_loads_what_is_there_with_a_loud_warning_per_empty_split(demo_dir, demo_tracks, tmp_path):
    data_dir = extract_archives(demo_dir, tmp_path)
    validation = listed_small_ids(demo_tracks, "validation")
    for track_id in validation:  # an archive extracted in part
        (data_dir / "fma_small" / metadata.audio_path(track_id)).unlink()
    with pytest.warns(UserWarning) as caught:
        train = load("small", data_dir, split="train")
    assert sorted(train["track_id"]) == small_ids(demo_tracks, "training")
    [loud] = [str(w.message) for w in caught if "HAS NO AUDIO" in str(w.message)]
    assert loud.startswith(f"FMA small: SPLIT 'validation' HAS NO AUDIO and is loaded EMPTY: tracks.csv lists "
                           f"{len(validation)} track(s) for it and none could be read from {data_dir / 'fma_small'} "
                           f"({len(validation)} file(s) missing, 0 unusable")
    splits = load("small", data_dir)
    assert len(splits["validation"]) == 0 and splits["validation"].features == splits["train"].features
    assert sorted(splits["test"]["track_id"]) == small_ids(demo_tracks, "test")


def test_split_losing_many_tracks_warns_loudly_with_the_count(demo_dir, demo_tracks, tmp_path):
    data_dir = extract_archives(demo_dir, tmp_path)
    removed = small_ids(demo_tracks, "training")[::2]
    for track_id in removed:
        (data_dir / "fma_small" / metadata.audio_path(track_id)).unlink()
    with pytest.warns(UserWarning, match=f"split 'train' LOST {len(removed) + 1} OF ITS 97 TRACKS"):
        train = load("small", data_dir, split="train")
    assert len(train) == 97 - len(removed) - 1


def test_unusable_files_are_described_by_what_is_wrong(demo_dir, demo_tracks, tmp_path):
    data_dir = extract_archives(demo_dir, tmp_path)
    empty, garbage = small_ids(demo_tracks, "test")[:2]
    (data_dir / "fma_small" / metadata.audio_path(empty)).write_bytes(b"")
    (data_dir / "fma_small" / metadata.audio_path(garbage)).write_bytes(b"<html>Not Found</html>" * 10)
    with pytest.warns(UserWarning) as caught:
        load("small", data_dir, split="test")
    reported = " ".join(str(w.message) for w in caught if type(w.message).__name__ == "BadAudioWarning")
    assert f"{empty:06d}: the file is empty (0 bytes)" in reported
    assert f"{garbage:06d}: cannot be decoded as audio (220 bytes, starting b'<htm'" in reported
    assert "117902: 0.30 s of audio" in reported
    assert "does not exist" not in reported


@needs_loading_scripts
def test_relative_data_dir_that_is_not_there_explains_itself(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a folder.*absolute path"):
        load_dataset(SCRIPT, "small", data_dir="no_such_folder", trust_remote_code=True)


# --- extraction: disk space, killed and concurrent extractions ------------------------------------------


def extracted_entries(cache_dir):
    """What the extraction cache holds, lock files aside."""
    root = cache_dir / "downloads" / "extracted" / "hf_fma"
    return sorted(path.name for path in root.iterdir() if not path.name.endswith(".lock")) if root.exists() else []


def test_zip_bigger_than_the_free_space_is_refused_before_writing_anything(demo_dir, tmp_path, monkeypatch):
    data_dir = copy_archives(demo_dir, tmp_path / "data")
    with zipfile.ZipFile(data_dir / "fma_small.zip") as archive:
        needed = sum(info.file_size for info in archive.infolist())
    disk = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: disk._replace(free=needed - 1))
    with pytest.raises(OSError) as excinfo:
        builder("small", data_dir, tmp_path / "cache").download_and_prepare()
    extract_root = tmp_path / "cache" / "downloads" / "extracted" / "hf_fma"
    assert excinfo.value.errno == errno.ENOSPC
    assert re.search(
        f"extracting {re.escape(str(data_dir / 'fma_small.zip'))} into {re.escape(str(extract_root))}/fma_small.zip-"
        f"[0-9a-f]+ needs {needed:,} bytes .* has {needed - 1:,} bytes .* free", str(excinfo.value)
    )
    assert [name for name in extracted_entries(tmp_path / "cache") if name.startswith("fma_small")] == []


def test_a_full_disk_while_extracting_names_the_zip_and_the_member(demo_dir, tmp_path, monkeypatch):
    import hf_fma.hf_fma as script

    class FullDisk(io.FileIO):
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    data_dir = copy_archives(demo_dir, tmp_path / "data", names=("fma_metadata",))
    shutil.copy(demo_dir / "fma_small.zip", data_dir)
    extract_root = tmp_path / "cache" / "downloads" / "extracted" / "hf_fma"
    script._extract_zip(str(data_dir / "fma_metadata.zip"), str(extract_root))  # before the disk fills
    monkeypatch.setattr(script, "open", lambda path, mode="r", **kw: FullDisk(path, mode) if mode == "wb" else open(path, mode, **kw), raising=False)
    with pytest.raises(OSError, match=rf"the disk filled up extracting {re.escape(str(data_dir / 'fma_small.zip'))} \(its member fma_small/"):
        builder("small", data_dir, tmp_path / "cache").download_and_prepare()
    assert [name for name in extracted_entries(tmp_path / "cache") if name.startswith("fma_small")] == []


EXTRACT_IN_A_CHILD = """
import os, sys, time
import hf_fma.hf_fma as script
zip_path, extract_root, signal = sys.argv[1:]
copy_member, copied = script._copy_member, []

def copy_then_stop(*args):
    copy_member(*args)
    copied.append(args)
    if len(copied) == 3:
        if signal == "kill":
            os._exit(9)  # as kill -9 would: no finally runs
        open(os.path.join(extract_root, "started"), "w").close()
        while not os.path.exists(os.path.join(extract_root, "go")):
            time.sleep(0.01)

script._copy_member = copy_then_stop
script._extract_zip(zip_path, extract_root)
"""


def extract_in_a_child(zip_path, extract_root, signal):
    return subprocess.Popen([sys.executable, "-c", EXTRACT_IN_A_CHILD, str(zip_path), str(extract_root), signal])


def test_a_killed_extraction_s_partial_folder_is_removed_by_the_next(demo_dir, tmp_path):
    from hf_fma.hf_fma import _extract_zip

    zip_path, extract_root = demo_dir / "fma_small.zip", tmp_path / "extracted"
    assert extract_in_a_child(zip_path, extract_root, "kill").wait() == 9
    [partial] = [path for path in extract_root.iterdir() if path.name.endswith(".partial")]
    target = _extract_zip(str(zip_path), str(extract_root))
    assert not partial.exists()
    assert not [path for path in extract_root.iterdir() if path.name.endswith(".partial")]
    with zipfile.ZipFile(zip_path) as archive:
        expected = sorted(info.filename for info in archive.infolist() if not info.is_dir())
    assert sorted(path.relative_to(target).as_posix() for path in Path(target).rglob("*") if path.is_file()) == expected


def test_an_extraction_in_progress_elsewhere_is_waited_for_not_removed(demo_dir, tmp_path, monkeypatch):
    import hf_fma.hf_fma as script

    zip_path, extract_root = demo_dir / "fma_small.zip", tmp_path / "extracted"
    child = extract_in_a_child(zip_path, extract_root, "wait")
    while not (extract_root / "started").exists():
        assert child.poll() is None, "the extracting child ended before it started"
        time.sleep(0.01)
    waiting = threading.Event()

    class NotedLock(script.FileLock):
        def acquire(self, *args, **kwargs):
            waiting.set()
            return super().acquire(*args, **kwargs)

    monkeypatch.setattr(script, "FileLock", NotedLock)
    result = {}
    here = threading.Thread(target=lambda: result.update(target=script._extract_zip(str(zip_path), str(extract_root))))
    here.start()
    waiting.wait()
    (extract_root / "go").touch()
    here.join()
    assert child.wait() == 0  # its partial folder was left alone
    [target] = [path for path in extract_root.iterdir() if path.is_dir()]
    assert result["target"] == str(target)
    assert not [path for path in extract_root.iterdir() if path.name.endswith(".partial")]


def test_a_file_replaced_by_one_of_the_same_size_is_prepared_again(demo_dir, demo_tracks, tmp_path):
    data_dir = extract_archives(demo_dir, tmp_path)
    ids = small_ids(demo_tracks, "test")
    assert sorted(load("small", data_dir, split="test")["track_id"]) == ids
    path = data_dir / "fma_small" / metadata.audio_path(ids[0])
    info = path.stat()
    path.write_bytes(b"\0" * info.st_size)  # a copy that went wrong: same length, no audio
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))  # a later mtime, whatever the clock's grain
    with pytest.warns(UserWarning, match=f"{ids[0]:06d}: cannot be decoded as audio"):
        again = load("small", data_dir, split="test")
    assert sorted(again["track_id"]) == ids[1:]
