"""The metadata parser against the real tracks.csv sample and the reference loader's reading of it."""

import ast

import pandas as pd
import pytest

from hf_fma import metadata


@pytest.fixture(scope="module")
def sample_tracks_csv(fma_sample):
    return fma_sample / "fma_metadata" / "tracks.csv"


def test_load_tracks_matches_reference_reading(sample_tracks_csv):
    reference = pd.read_csv(sample_tracks_csv, index_col=0, header=[0, 1])
    tracks = metadata.load_tracks(sample_tracks_csv)

    assert tracks.shape == reference.shape == (250, 52)
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
    assert (len(small), len(medium), len(large)) == (24, 49, 250)  # the sample: small 24, medium 25, large 201
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
    assert metadata.genre_titles([21, 100, 999999], genres) == ["Hip-Hop", "Alternative Hip-Hop"]


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
