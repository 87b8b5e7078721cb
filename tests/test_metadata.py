"""The metadata parser against the real tracks.csv sample and the reference loader's reading of it."""

import ast
import re

import pandas as pd
import pytest

from hf_fma import metadata

from .conftest import with_cell


@pytest.fixture(scope="module")
def sample_tracks_csv(fma_sample):
    return fma_sample / "fma_metadata" / "tracks.csv"


def test_load_tracks_matches_reference_reading(sample_tracks_csv):
    reference = pd.read_csv(sample_tracks_csv, index_col=0, header=[0, 1])
    tracks = metadata.load_tracks(sample_tracks_csv)

    assert tracks.shape == reference.shape == (13, 52)
    assert tracks.index.name == "track_id"
    assert list(tracks.index) == list(reference.index)
    assert list(tracks.columns) == list(reference.columns)
    assert set(tracks.columns.get_level_values(0)) == {"album", "artist", "set", "track"}
    assert list(tracks["set", "split"]) == list(reference["set", "split"])
    assert list(tracks["set", "subset"].astype(str)) == list(reference["set", "subset"])
    genre_top = reference["track", "genre_top"]
    assert tracks["track", "genre_top"].isna().sum() == genre_top.isna().sum() > 0
    assert list(tracks["track", "genre_top"].dropna().astype(str)) == list(genre_top.dropna())
    # List literals parsed as the reference loader's ast.literal_eval does.
    for column in [("track", "genres"), ("track", "genres_all"), ("artist", "tags")]:
        assert list(tracks[column]) == [ast.literal_eval(cell) for cell in reference[column]]
    assert tracks.at[2, ("track", "genres")] == [21]
    assert tracks.at[2, ("artist", "tags")] == ["awol"]


def test_subsets_nest(sample_tracks_csv):
    tracks = metadata.load_tracks(sample_tracks_csv)
    small, medium, large = (metadata.subset_tracks(tracks, s) for s in ("small", "medium", "large"))
    assert (len(small), len(medium), len(large)) == (6, 10, 13)  # tests/data: small 6, medium 4, large 3
    assert set(small.index) < set(medium.index) < set(large.index)
    assert set(metadata.subset_tracks(tracks, "full").index) == set(large.index)
    assert small["track", "genre_top"].notna().all()
    with pytest.raises(ValueError, match="valid subsets: small, medium, large, full"):
        metadata.subset_tracks(tracks, "tiny")


def test_genres_of_the_real_taxonomy(fma_sample):
    genres = metadata.load_genres(fma_sample / "fma_metadata" / "genres.csv")
    assert len(genres) == 163
    top = genres[genres["parent"] == 0]
    assert sorted(top["title"]) == list(metadata.TOP_GENRES)
    assert set(metadata.SMALL_GENRES) < set(metadata.TOP_GENRES)


def test_example_records_title_genres_all_and_name_ids_genres_csv_lacks(sample_tracks_csv, fma_sample):
    tracks = metadata.load_tracks(sample_tracks_csv)
    genres = metadata.load_genres(fma_sample / "fma_metadata" / "genres.csv")
    tracks.at[2, ("track", "genres_all")] = [21, 100, 999999]  # 999999: no such genre
    with pytest.warns(UserWarning, match=r"genres.csv does not have: 999999 \(track 2\)"):
        records = metadata.example_records(tracks, genres, "large", metadata.TOP_GENRES)
    assert records["training"][2]["genres"] == ["Hip-Hop", "Alternative Hip-Hop"]  # genres.csv, read by eye
    assert records["validation"][148]["genres"] == ["Avant-Garde", "Experimental"]


def test_audio_paths_round_trip():
    assert metadata.audio_path(2) == "000/000002.mp3"
    assert metadata.audio_path(155066) == "155/155066.mp3"


def test_split_quotas_give_the_mini_sizes():
    quotas = [metadata.split_quotas(125, index) for index in range(8)]
    assert all(sum(q.values()) == 125 for q in quotas)
    assert sum(q["training"] for q in quotas) == 800
    assert sum(q["validation"] for q in quotas) == sum(q["test"] for q in quotas) == 100


def test_balanced_subset_keeps_official_splits(sample_tracks_csv):
    tracks = metadata.load_tracks(sample_tracks_csv)
    medium = metadata.subset_tracks(tracks, "medium")
    chosen = metadata.balanced_subset(medium, metadata.TOP_GENRES, tracks_per_genre=5)
    assert set(chosen.index) <= set(medium.index)
    assert chosen.equals(metadata.balanced_subset(medium, metadata.TOP_GENRES, tracks_per_genre=5))
    for genre_index, genre in enumerate(metadata.TOP_GENRES):
        of_genre = chosen[chosen["track", "genre_top"] == genre]
        available = medium[medium["track", "genre_top"] == genre]
        for split, quota in metadata.split_quotas(5, genre_index).items():
            in_split = (available["set", "split"] == split).sum()
            assert (of_genre["set", "split"] == split).sum() == min(quota, in_split)


def test_official_split_and_subset_cells_as_read_by_eye(sample_tracks_csv):
    tracks = metadata.load_tracks(sample_tracks_csv)
    splits = {split: sorted(tracks.index[tracks["set", "split"] == split]) for split in ("training", "validation", "test")}
    assert splits == {"training": [2, 3, 5, 10, 20, 134], "validation": [148, 458, 459], "test": [181, 182, 183, 185]}
    assert sorted(metadata.subset_tracks(tracks, "small").index) == [2, 5, 10, 148, 182, 459]


@pytest.mark.parametrize(
    "track_id, column, value, problem",
    [
        (5, ("set", "split"), "train", "'train' is not one of training, validation, test"),
        (10, ("set", "subset"), "tiny", "'tiny' is not one of small, medium, large"),
        (148, ("track", "genres"), "[21", "'[21' is not a Python list literal"),
        (182, ("track", "genres_all"), "", "nan is not a Python list literal"),
        (459, ("track", "genre_top"), "Hip Hop", "'Hip Hop' is not one of the 16 top-level genres"),
        (3, ("track", "date_created"), "yesterday", "'yesterday' is not a date"),
    ],
)
def test_a_bad_tracks_csv_cell_is_named_by_file_track_and_column(sample_tracks_csv, tmp_path, track_id, column, value, problem):
    path = with_cell(sample_tracks_csv, tmp_path / "tracks.csv", track_id, column, value)
    expected = f"{path}: track {track_id}, column {'.'.join(column)}: {problem}"
    with pytest.raises(ValueError, match=re.escape(expected)):
        metadata.load_tracks(path)
    with open(path, encoding="utf-8") as f, pytest.raises(ValueError, match=re.escape(expected)):  # as the builder reads it
        metadata.load_tracks(f)


def test_a_bad_genres_csv_is_named(fma_sample, tmp_path):
    lines = (fma_sample / "fma_metadata" / "genres.csv").read_text().splitlines()
    path = tmp_path / "genres.csv"
    path.write_text("\n".join([lines[0].replace("title", "name"), *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match=f"{re.escape(str(path))} has the columns genre_id, #tracks, parent, name, top_level"):
        metadata.load_genres(path)
    path.write_text("\n".join([lines[0], "x1,1,0,Broken,1", *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}: the genre_id 'x1' is not a whole number"):
        metadata.load_genres(path)


@pytest.mark.parametrize("load, name", [(metadata.load_tracks, "tracks.csv"), (metadata.load_genres, "genres.csv")])
@pytest.mark.parametrize("content, problem", [
    (b"", "is empty"),
    ("track_id,title\n".encode("utf-16"), "cannot be read as CSV text (UnicodeDecodeError"),  # saved by a spreadsheet
], ids=["empty", "utf-16"])  # fmt: skip
def test_an_empty_or_binary_metadata_file_is_named(load, name, content, problem, tmp_path):
    path = tmp_path / name
    path.write_bytes(content)
    expected = f"{path} {problem}"
    with pytest.raises(ValueError, match=re.escape(expected)) as excinfo:
        load(path)
    assert f"it is not FMA's {name}" in str(excinfo.value)
    with open(path, encoding="utf-8") as f, pytest.raises(ValueError, match=re.escape(expected)):  # as the builder reads it
        load(f)
