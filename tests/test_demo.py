"""The demo FMA (`hf-fma make-demo`) must look like the official archives to any loader, and its genres
must be learnable. Most tests read the session's `demo_dir` (generated once, seed 0)."""

import ast
import hashlib
import io
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from hf_fma import demo, metadata
from hf_fma.demo import DEMO_CORRUPT_TRACK_IDS, DEMO_SHORT_TRACK_IDS, DEMO_SMALL_SPLIT_SIZES, main, make_demo
from hf_fma.demo.catalogue import plan_tracks, tracks_csv
from hf_fma.demo.music import audio_file

# Facts of the real FMA (../shared/FMA.md), stated here independently of the generator.
SMALL_GENRES = ["Electronic", "Experimental", "Folk", "Hip-Hop", "Instrumental", "International", "Pop", "Rock"]
TOP_GENRE_IDS = {
    "International": 2, "Blues": 3, "Jazz": 4, "Classical": 5, "Old-Time / Historic": 8, "Country": 9,
    "Pop": 10, "Rock": 12, "Easy Listening": 13, "Soul-RnB": 14, "Electronic": 15, "Folk": 17, "Spoken": 20,
    "Hip-Hop": 21, "Experimental": 38, "Instrumental": 1235,
}
COLUMN_GROUP_SIZES = {"album": 13, "artist": 17, "set": 2, "track": 20}
LIST_COLUMNS = [("track", "genres"), ("track", "genres_all"), ("track", "tags"), ("album", "tags"), ("artist", "tags")]
ARCHIVES = ["fma_metadata", "fma_small", "fma_medium", "fma_large", "fma_full"]
BAD_IDS = set(DEMO_CORRUPT_TRACK_IDS) | set(DEMO_SHORT_TRACK_IDS)


def read_tracks(raw: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(raw), index_col=0, header=[0, 1])  # as the reference loader does


@pytest.fixture(scope="module")
def archives(demo_dir):
    opened = {name: zipfile.ZipFile(demo_dir / f"{name}.zip") for name in ARCHIVES}
    yield opened
    for archive in opened.values():
        archive.close()


@pytest.fixture(scope="module")
def tracks_raw(archives) -> bytes:
    return archives["fma_metadata"].read("fma_metadata/tracks.csv")


@pytest.fixture(scope="module")
def tracks(tracks_raw) -> pd.DataFrame:
    return read_tracks(tracks_raw)


@pytest.fixture(scope="module")
def genres(archives) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(archives["fma_metadata"].read("fma_metadata/genres.csv")), index_col=0)


def audio_ids(archive: zipfile.ZipFile) -> set[int]:
    return {int(name[-10:-4]) for name in archive.namelist() if name.endswith(".mp3")}


def decode(archive: zipfile.ZipFile, folder: str, track_id: int) -> tuple[np.ndarray, int]:
    name = f"{track_id:06d}"
    return sf.read(io.BytesIO(archive.read(f"{folder}/{name[:3]}/{name}.mp3")), dtype="float32")


# --- layout ------------------------------------------------------------------------------------------


def test_archives_have_the_official_layout(archives):
    for folder, archive in archives.items():
        infos = archive.infolist()
        assert [i.filename for i in infos[:2]] == [f"{folder}/README.txt", f"{folder}/checksums"]
        assert {i.compress_type for i in infos} == {zipfile.ZIP_BZIP2}
        readme = archive.read(f"{folder}/README.txt").decode()
        assert readme.startswith("This .zip archive is part of the FMA") and "sha1sum -c checksums" in readme
        names = [i.filename for i in infos[2:]]
        if folder == "fma_metadata":
            assert names == ["fma_metadata/tracks.csv", "fma_metadata/genres.csv"]
            continue
        for name in names:
            match = re.fullmatch(rf"{folder}/(\d{{3}})/(\d{{6}})\.mp3", name)
            assert match and match[2][:3] == match[1], name


def test_checksums_list_every_file_with_its_sha1(archives):
    for folder, archive in archives.items():
        lines = archive.read(f"{folder}/checksums").decode().splitlines()
        listed = dict(reversed(re.fullmatch(r"([0-9a-f]{40})  (\S+)", line).groups()) for line in lines)
        files = [n for n in archive.namelist() if n not in (f"{folder}/README.txt", f"{folder}/checksums")]
        assert sorted(listed) == sorted(n.removeprefix(f"{folder}/") for n in files)
        for name in files:
            assert hashlib.sha1(archive.read(name)).hexdigest() == listed[name.removeprefix(f"{folder}/")], name


def test_subsets_nest_and_full_holds_large(archives, tracks):
    subset = tracks["set", "subset"]
    small, medium, large = (audio_ids(archives[f"fma_{s}"]) for s in ("small", "medium", "large"))
    assert small == set(tracks.index[subset == "small"])
    assert medium == small | set(tracks.index[subset == "medium"])
    assert large == set(tracks.index) and small < medium < large
    assert audio_ids(archives["fma_full"]) == large


# --- tracks.csv and genres.csv ------------------------------------------------------------------------


def test_tracks_csv_has_the_real_header_and_columns(tracks_raw, tracks):
    top, second, index_line = tracks_raw.decode().split("\n")[:3]
    assert top.startswith(",album,album") and second.startswith(",comments,date_created,date_released")
    assert index_line == "track_id" + "," * 52
    assert tracks.index.name == "track_id" and tracks.shape[1] == 52
    assert tracks.columns.get_level_values(0).value_counts().to_dict() == COLUMN_GROUP_SIZES
    assert tracks.index.is_unique and tracks.index.is_monotonic_increasing


def test_header_and_readme_match_the_real_files(tracks_raw, archives, fma_sample):
    real = (fma_sample / "fma_metadata" / "tracks.csv").read_bytes()
    assert tracks_raw.split(b"\n")[:3] == real.split(b"\n")[:3]
    real_readme = (fma_sample / "fma_metadata" / "README.txt").read_bytes()
    assert all(archive.read(f"{folder}/README.txt") == real_readme for folder, archive in archives.items())


def test_cells_have_real_formats(tracks):
    for column in LIST_COLUMNS:
        values = tracks[column].map(ast.literal_eval)
        assert values.map(lambda v: isinstance(v, list)).all(), column
    genres = tracks["track", "genres"].map(ast.literal_eval)
    genres_all = tracks["track", "genres_all"].map(ast.literal_eval)
    assert all(set(g) <= set(a) for g, a in zip(genres, genres_all))
    assert genres.map(len).max() >= 2 and (genres.map(len) == 0).any()  # several genres; no genre
    # Free text needs a real CSV parser: HTML, double quotes, commas and newlines inside cells.
    text = pd.concat([tracks["artist", "bio"], tracks["artist", "name"], tracks["track", "information"],
                      tracks["album", "information"]]).dropna()
    for needle in ("<p>", '"', ",", "\n"):
        assert text.str.contains(needle, regex=False).any(), needle
    assert set(tracks["set", "split"]) == {"training", "validation", "test"}
    assert tracks["track", "date_created"].str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d").all()
    ids = tracks.index
    assert ids.min() >= 2 and ids.max() <= 155320 and (ids >= 100000).sum() >= 10


def test_genres_csv_has_the_real_top_level_genres(genres, tracks):
    assert list(genres.columns) == ["#tracks", "parent", "title", "top_level"] and genres.index.name == "genre_id"
    top = genres[genres["parent"] == 0]
    assert dict(zip(top["title"], top.index)) == TOP_GENRE_IDS
    assert (top["top_level"] == top.index).all()
    assert len(genres) > len(top)  # sub-genres too
    for genre_id, row in genres.iterrows():  # top_level is the root of the parent chain
        while genres.loc[genre_id, "parent"]:
            genre_id = genres.loc[genre_id, "parent"]
        assert row["top_level"] == genre_id
    genres_all = tracks["track", "genres_all"].map(ast.literal_eval)
    used = {g for gs in genres_all for g in gs}
    assert used <= set(genres.index)
    assert genres.loc[12, "#tracks"] == sum(12 in gs for gs in genres_all)
    assert set(tracks["track", "genre_top"].dropna()) == set(TOP_GENRE_IDS)


def test_genres_csv_rows_are_real(genres, fma_sample):
    real = pd.read_csv(fma_sample / "fma_metadata" / "genres.csv", index_col=0)
    columns = ["parent", "title", "top_level"]
    pd.testing.assert_frame_equal(genres[columns], real.loc[genres.index, columns])


# --- subsets, splits, counts --------------------------------------------------------------------------


def test_small_has_exact_counts_per_genre_and_split(tracks):
    small = tracks[(tracks["set", "subset"] == "small") & ~tracks.index.isin(BAD_IDS)]
    counts = small.groupby([("track", "genre_top"), ("set", "split")]).size()
    assert DEMO_SMALL_SPLIT_SIZES == {"training": 12, "validation": 2, "test": 2}
    assert counts.to_dict() == {(g, s): n for g in SMALL_GENRES for s, n in DEMO_SMALL_SPLIT_SIZES.items()}
    bad = tracks.loc[sorted(BAD_IDS)]
    assert (bad["set", "subset"] == "small").all() and bad["track", "genre_top"].isin(SMALL_GENRES).all()
    # A demo track on a real known-bad id would be dropped by the loader's fixed list, not by its checks.
    assert not set(tracks.index) & metadata.KNOWN_BAD_TRACK_IDS


def test_medium_adds_the_other_genres_unbalanced(tracks):
    medium = tracks[tracks["set", "subset"].isin(["small", "medium"])]
    per_genre = medium["track", "genre_top"].value_counts()
    assert set(per_genre.index) == set(TOP_GENRE_IDS) and per_genre.nunique() > 2
    others = medium[~medium["track", "genre_top"].isin(SMALL_GENRES)]
    assert set(others["set", "subset"]) == {"medium"}
    for split in ("training", "validation", "test"):  # every genre can be trained and scored
        in_split = others.loc[others["set", "split"] == split, ("track", "genre_top")]
        assert set(in_split) == set(TOP_GENRE_IDS) - set(SMALL_GENRES), split


def test_only_large_has_tracks_without_genre_top(tracks, genres):
    no_top = tracks[tracks["track", "genre_top"].isna()]
    assert len(no_top) >= 2 and set(no_top["set", "subset"]) == {"large"}
    for genres_all in no_top["track", "genres_all"].map(ast.literal_eval):
        assert len({genres.loc[g, "top_level"] for g in genres_all}) != 1  # several roots, or none


def test_no_artist_is_in_two_splits(tracks):
    splits_per_artist = tracks["set", "split"].groupby(tracks["artist", "id"]).nunique()
    assert (splits_per_artist == 1).all()
    small = tracks[tracks["set", "subset"] == "small"]
    assert small["artist", "id"].groupby(small["track", "genre_top"]).nunique().min() >= 3  # several per genre


# --- audio ---------------------------------------------------------------------------------------------


def spectral_features(audio: np.ndarray, sr: int) -> np.ndarray:
    """Mean and spread over time of log energies in 32 log-spaced bands up to 11 kHz, whatever the rate."""
    mono = audio.mean(axis=1) if audio.ndim == 2 else audio
    n_fft = 1024 * sr // 22050  # the same Hz per bin at 22.05 and 44.1 kHz
    frames = mono[: len(mono) // n_fft * n_fft].reshape(-1, n_fft) * np.hanning(n_fft)  # (frames, n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1))[:, :512] ** 2  # (frames, 512): 0 to 11 kHz
    bands = np.log(np.add.reduceat(power, np.unique(np.geomspace(1, 511, 33).astype(int)), axis=1) + 1e-8)
    return np.concatenate([bands.mean(axis=0), bands.std(axis=0)])


@pytest.fixture(scope="module")
def clips(archives, tracks) -> pd.DataFrame:
    """Every decodable clip of large, decoded once: format, length, loudness, digest and features."""
    rows = {}
    for track_id in tracks.index.difference(sorted(BAD_IDS)):
        audio, sr = decode(archives["fma_large"], "fma_large", track_id)
        rows[track_id] = {
            "format": (sr, 1 if audio.ndim == 1 else audio.shape[1]),
            "seconds": len(audio) / sr,
            "rms": float(np.sqrt(np.mean(audio**2))),
            "digest": hashlib.sha1(audio.tobytes()).hexdigest(),
            "features": spectral_features(audio, sr),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def test_valid_clips_decode_at_their_format_and_length(clips, tracks):
    assert set(clips["format"]) == {(22050, 1), (44100, 2)}
    assert np.allclose(clips["seconds"], 10.0, atol=0.05)
    assert (clips["rms"] > 0.01).all()  # no silence
    assert clips["digest"].is_unique and len(clips) == len(tracks) - len(BAD_IDS)  # no two tracks are copies


def test_bad_files_are_bad(archives):
    for track_id in DEMO_CORRUPT_TRACK_IDS:
        with pytest.raises(sf.LibsndfileError):
            decode(archives["fma_small"], "fma_small", track_id)
    for track_id in DEMO_SHORT_TRACK_IDS:
        audio, sr = decode(archives["fma_small"], "fma_small", track_id)
        assert 0 < len(audio) / sr < 0.5


def test_genres_are_learnable(clips, tracks):
    """A nearest-centroid classifier on spectral statistics, fit on small's training split, must get the
    validation and test tracks right: genres differ audibly, and tracks within a genre vary."""
    small = tracks[(tracks["set", "subset"] == "small") & ~tracks.index.isin(BAD_IDS)]
    features = np.stack(clips.loc[small.index, "features"])  # (tracks, 64)
    labels = small["track", "genre_top"].to_numpy()
    train = (small["set", "split"] == "training").to_numpy()
    mean, std = features[train].mean(axis=0), features[train].std(axis=0) + 1e-6
    normalised = (features - mean) / std
    centroids = np.stack([normalised[train & (labels == g)].mean(axis=0) for g in SMALL_GENRES])  # (8, 64)
    distances = ((normalised[~train, None, :] - centroids[None]) ** 2).sum(axis=-1)  # (eval tracks, 8)
    predicted = np.array(SMALL_GENRES)[distances.argmin(axis=1)]
    assert (predicted == labels[~train]).mean() >= 0.8


# --- determinism and the command line -------------------------------------------------------------------


def test_same_seed_gives_the_same_files_and_another_seed_other_ones(tracks_raw, tracks, archives):
    # Each clip is seeded by (seed, track id), so it does not depend on which worker made it, or when.
    plan = plan_tracks(0)
    assert tracks_csv(plan) == tracks_raw
    track = next(t for t in plan if t.stereo and t.subset == "small")
    name = f"{track.track_id:06d}"
    assert audio_file(track, 0, 10.0) == archives["fma_small"].read(
        f"fma_small/{name[:3]}/{name}.mp3")
    other = read_tracks(tracks_csv(plan_tracks(1)))
    assert set(other.index) != set(tracks.index)
    assert other["set", "subset"].value_counts().to_dict() == tracks["set", "subset"].value_counts().to_dict()


def test_clip_length_is_configurable():
    track = next(t for t in plan_tracks(0) if t.kind == "valid")
    audio, sr = sf.read(io.BytesIO(audio_file(track, 0, 2.5)))
    assert len(audio) / sr == pytest.approx(2.5, abs=0.05)


def test_bad_arguments_fail_with_a_clear_message(tmp_path, capsys):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(SystemExit) as exit_info:
        main([str(not_a_folder)])
    assert exit_info.value.code == 2 and "is not a folder" in capsys.readouterr().err
    with pytest.raises(ValueError, match="clip_seconds"):
        make_demo(tmp_path / "demo", clip_seconds=0.2)


def test_examples_are_test_clips_one_per_small_genre(demo_dir, archives, tracks):
    examples = sorted((demo_dir / demo.DEMO_EXAMPLES_FOLDER).glob("*.mp3"))
    assert len(examples) == len(metadata.SMALL_GENRES)
    for path in examples:
        track_id = int(path.stem.rsplit("_", 1)[1])
        assert tracks.at[track_id, ("set", "split")] == "test"
        genre = tracks.at[track_id, ("track", "genre_top")]
        assert path.stem.startswith(genre.lower().replace("-", ""))
        assert path.read_bytes() == archives["fma_small"].read(f"fma_small/{metadata.audio_path(track_id)}")


def test_make_demo_command_shows_a_progress_bar_on_stderr_unless_datasets_bars_are_off(tmp_path, capsys):
    import datasets

    files = len(plan_tracks(0)) + len(ARCHIVES)  # every audio file, then every archive
    assert main([str(tmp_path / "demo"), "--clip_seconds", "1"]) == 0
    captured = capsys.readouterr()
    assert "make-demo: 100%" in captured.err and f" {files}/{files} " in captured.err
    assert "make-demo" not in captured.out  # stdout keeps the summary only
    datasets.disable_progress_bars()  # the switch every hf-fma bar follows
    try:
        assert main([str(tmp_path / "demo"), "--clip_seconds", "1"]) == 0
    finally:
        datasets.enable_progress_bars()
    assert "make-demo:" not in capsys.readouterr().err


def test_the_demo_archives_say_they_are_synthesized_and_official_files_do_not(demo_dir, fma_sample, tmp_path):
    from hf_fma.data import is_demo_data

    assert is_demo_data(demo_dir)
    assert not is_demo_data(fma_sample)  # real FMA files, extracted
    assert not is_demo_data(None)  # the official archives, downloaded
    # The same archive without its zip comment (as an official one has none) is not taken for the demo.
    with zipfile.ZipFile(demo_dir / "fma_metadata.zip") as source, zipfile.ZipFile(tmp_path / "fma_metadata.zip", "w") as copy:
        for member in source.infolist():
            copy.writestr(member, source.read(member))
    assert not is_demo_data(tmp_path)
