"""The `hf_fma` loading script on the offline demo archives and on the real FMA sample."""

import functools
import hashlib
import http.server
import threading
import zipfile
from collections import Counter

import datasets
import numpy as np
import pytest
from datasets import Audio, load_dataset

from hf_fma import demo, metadata
from hf_fma.data import load_fma
from hf_fma.hf_fma import ARCHIVES, Fma

from .conftest import REPO_ROOT

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
def test_every_subset_prepares_with_the_official_splits(config, demo_dir, demo_tracks):
    # load_dataset imports its own copy of the script, so match the warning by base class and text.
    with pytest.warns(UserWarning, match="left out") as caught:
        dataset = load(config, demo_dir)
    expected = expected_split_ids(demo_tracks, config)
    assert set(dataset) == set(SPLITS)
    for split in SPLITS:
        assert set(dataset[split]["track_id"]) == expected[split], split
    # Bad files are reported by id, once per split they belong to, and never yielded.
    reported = " ".join(str(w.message) for w in caught if type(w.message).__name__ == "BadAudioWarning")
    for track_id in BAD_DEMO_IDS:
        assert f"{track_id:06d}" in reported
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


def test_real_sample_decodes_to_30_s(fma_sample):
    # The sample holds one MP3 of small; the other tracks of its tracks.csv are reported missing.
    with pytest.warns(UserWarning, match="no file"):
        train = load_fma("small", data_dir=fma_sample, split="train")
    assert train["track_id"] == [2]
    example = train[0]
    assert example["genre"] == metadata.SMALL_GENRES.index("Hip-Hop")
    assert (example["title"], example["artist"]) == ("Food", "AWOL")
    assert example["audio"]["sampling_rate"] == 44100
    assert len(example["audio"]["array"]) / 44100 == pytest.approx(29.98, abs=0.02)
    resampled = train.cast_column("audio", Audio(sampling_rate=16000))[0]["audio"]
    assert resampled["sampling_rate"] == 16000
    assert resampled["array"].ndim == 1
    assert len(resampled["array"]) / 16000 == pytest.approx(29.98, abs=0.02)


@needs_loading_scripts
def test_relative_data_dir_that_is_not_there_explains_itself(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a folder.*absolute path"):
        load_dataset(SCRIPT, "small", data_dir="no_such_folder", trust_remote_code=True)
