"""`hf-fma export`: the demo's small config as a Parquet dataset, read back with `load_dataset(OUT, "small")`
on the datasets version running the tests and, in a subprocess, on the other one (3.6 against 4+), checked
against tracks.csv and the archive's MP3 files read here with pandas and zipfile; its card; its upload
through an in-memory Hub; and a training run that reads it."""

import hashlib
import io
import json
import os
import subprocess
import textwrap
import zipfile
from pathlib import Path

import datasets
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from datasets import Audio, load_dataset
from huggingface_hub import DatasetCard, ModelCard

from hf_fma import cli, demo, hub
from hf_fma.metadata import KNOWN_BAD_TRACK_IDS

from .conftest import REPO_ROOT

SPLITS = ("train", "validation", "test")
DATASETS_MAJOR = int(datasets.__version__.split(".")[0])
# The environment with the other datasets major version (scripts/setup.sh makes both): .venv-datasets5
# (datasets 5) beside the test run's 3.6, .venv (3.6) beside a run under datasets 4+.
OTHER_PYTHON = REPO_ROOT / (".venv-datasets5" if DATASETS_MAJOR < 4 else ".venv") / "bin" / "python"


@pytest.fixture(scope="module")
def export_dir(demo_dir, tmp_path_factory):
    """The demo's small config exported through the command line, in shards of 1 MB (several per split)."""
    root = tmp_path_factory.mktemp("export")
    out = root / "fma"
    argv = ["export", str(out), "--data_dir", str(demo_dir), "--dataset_config_name", "small",
            "--max_shard_size", "1MB", "--repo_id", "me/fma", "--cache_dir", str(root / "cache")]  # fmt: skip
    # A cache of its own: the builder prepares the config here, and reports the demo's two bad files.
    with pytest.warns(UserWarning, match="left out"):
        assert cli.main(argv) == 0
    return out


@pytest.fixture(scope="module")
def expected(demo_dir):
    """From tracks.csv (plain pandas) and fma_small.zip: per split, {track_id: (sha1 of the MP3, licence)}
    of the small tracks, less the files the builder must leave out (the demo's corrupt and short ones)."""
    with zipfile.ZipFile(demo_dir / "fma_metadata.zip") as archive:
        tracks = pd.read_csv(io.BytesIO(archive.read("fma_metadata/tracks.csv")), index_col=0, header=[0, 1])
    small = tracks[tracks["set", "subset"] == "small"]
    left_out = set(demo.DEMO_CORRUPT_TRACK_IDS) | set(demo.DEMO_SHORT_TRACK_IDS) | KNOWN_BAD_TRACK_IDS
    small = small.drop(index=left_out & set(small.index))
    official = {"training": "train", "validation": "validation", "test": "test"}
    result = {split: {} for split in SPLITS}
    with zipfile.ZipFile(demo_dir / "fma_small.zip") as audio:
        for track_id, row in small.iterrows():
            name = f"{track_id:06d}"
            sha1 = hashlib.sha1(audio.read(f"fma_small/{name[:3]}/{name}.mp3")).hexdigest()
            result[official[row["set", "split"]]][int(track_id)] = (sha1, row["track", "license"])
    return result


def rows_by_track(dataset_dict):
    """{split: {track_id: (sha1 of the audio bytes, licence)}} of a loaded export."""
    result = {}
    for split in SPLITS:
        rows = dataset_dict[split].cast_column("audio", Audio(decode=False))
        result[split] = {
            row["track_id"]: (hashlib.sha1(row["audio"]["bytes"]).hexdigest(), row["license"]) for row in rows
        }
    return result


def test_export_loads_with_the_official_splits_mp3_bytes_and_licences(export_dir, expected, tmp_path):
    shards = {split: sorted((export_dir / "small").glob(f"{split}-*.parquet")) for split in SPLITS}
    assert len(shards["train"]) > 1  # 1 MB shards of ~4.7 MB of training audio
    assert [path.name for path in shards["train"]][0] == f"train-00000-of-{len(shards['train']):05d}.parquet"

    loaded = load_dataset(str(export_dir), "small", cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == set(SPLITS)
    assert {split: len(loaded[split]) for split in SPLITS} == {split: len(expected[split]) for split in SPLITS}
    assert rows_by_track(loaded) == expected  # same tracks per split, MP3 bytes untouched, licences
    features = loaded["train"].features
    assert features["genre"].names == ["Electronic", "Experimental", "Folk", "Hip-Hop", "Instrumental",
                                       "International", "Pop", "Rock"]  # fmt: skip
    assert list(features) == ["track_id", "audio", "genre", "genres", "title", "artist", "album", "license", "duration"]
    example = loaded["test"].cast_column("audio", Audio(decode=False))[0]
    assert example["audio"]["path"] == f"{example['track_id']:06d}.mp3"  # the file name, not a local path


def test_export_files_carry_features_that_datasets_3_reads(export_dir):
    """Each file on its own (the Hub's viewer, `load_dataset("parquet", ...)`) states its features in the form
    datasets 3.6 knows: a list is a `Sequence`; datasets >= 4 writes `List`, which 3.6 rejects."""
    for path in sorted((export_dir / "small").glob("*.parquet")):
        features = json.loads(pq.read_schema(path).metadata[b"huggingface"])["info"]["features"]
        assert features["genres"] == {"feature": {"dtype": "string", "_type": "Value"}, "_type": "Sequence"}
        assert features["audio"] == {"_type": "Audio"}
        assert features["license"] == {"dtype": "string", "_type": "Value"}


def test_export_loads_on_the_other_datasets_version(export_dir, expected, tmp_path):
    if not OTHER_PYTHON.is_file():
        pytest.skip(f"{OTHER_PYTHON} does not exist: make it to check the export on datasets "
                    f"{'5' if DATASETS_MAJOR < 4 else '3.6'} (README, 'The Parquet export')")
    script = textwrap.dedent(
        """
        import hashlib, json, sys
        import datasets
        from datasets import Audio, load_dataset
        loaded = load_dataset(sys.argv[1], "small", cache_dir=sys.argv[2])
        rows = {split: {row["track_id"]: [hashlib.sha1(row["audio"]["bytes"]).hexdigest(), row["license"]]
                        for row in loaded[split].cast_column("audio", Audio(decode=False))}
                for split in ("train", "validation", "test")}
        print(json.dumps({"version": datasets.__version__, "rows": rows, "genres": repr(loaded["train"].features["genres"])}))
        """
    )
    completed = subprocess.run(
        [str(OTHER_PYTHON), "-c", script, str(export_dir), str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert (int(result["version"].split(".")[0]) < 4) != (DATASETS_MAJOR < 4), result["version"]
    rows = {split: {int(track_id): tuple(value) for track_id, value in by_id.items()} for split, by_id in result["rows"].items()}
    assert rows == expected


def test_export_card_has_configs_dataset_info_labels_and_licences(export_dir, expected):
    card = DatasetCard.load(export_dir / "README.md")
    metadata = card.data.to_dict()
    assert metadata["configs"] == [{"config_name": "small", "data_files": [
        {"split": "train", "path": "small/train-*"}, {"split": "validation", "path": "small/validation-*"},
        {"split": "test", "path": "small/test-*"}]}]  # fmt: skip
    info = metadata["dataset_info"]
    assert info["config_name"] == "small"
    assert {split["name"]: split["num_examples"] for split in info["splits"]} == {
        split: len(expected[split]) for split in SPLITS
    }
    assert {"name": "genres", "sequence": "string"} in info["features"]  # datasets 3.6 reads `sequence`
    assert metadata["license"] == "other" and metadata["task_categories"] == ["audio-classification"]
    assert metadata["size_categories"] == ["n<1K"]
    text = card.text
    assert 'load_dataset("me/fma", "small")' in text and "trust_remote_code=True" not in text
    assert "0 Electronic, 1 Experimental, 2 Folk, 3 Hip-Hop, 4 Instrumental, 5 International, 6 Pop, 7 Rock" in text
    licences = pd.Series([licence for split in expected.values() for _, licence in split.values()]).value_counts()
    for licence, count in licences.items():
        assert f"| {licence} | {count} |" in text
    assert "Defferrard" in text  # FMA's citation
    # Exported from `hf-fma make-demo`'s archives: the card says so, and claims no official archive.
    assert metadata["pretty_name"] == "Synthesized demo data in the layout of FMA (hf-fma make-demo)"
    assert "synthetic" in metadata["tags"] and "paperswithcode_id" not in metadata
    assert "**Synthesized demo data, not FMA's music.**" in text and "as the demo archive has it" in text
    assert "as the official archive has it" not in text and "builder from the\nofficial archives" not in text
    assert "8,000" not in text and "30 s clips" not in text


def test_export_command_shows_a_progress_bar_on_stderr(export_dir, demo_dir, expected, tmp_path, capsys):
    tracks = sum(len(split) for split in expected.values())
    argv = ["export", str(tmp_path / "fma"), "--data_dir", str(demo_dir), "--max_shard_size", "1MB",
            "--cache_dir", str(export_dir.parent / "cache")]  # fmt: skip  the fixture's prepared config
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "exporting small: 100%" in err and f" {tracks}/{tracks} " in err
    datasets.disable_progress_bars()  # the switch every hf-fma bar follows
    try:
        assert cli.main([*argv[:1], str(tmp_path / "again"), *argv[2:]]) == 0
    finally:
        datasets.enable_progress_bars()
    assert "exporting" not in capsys.readouterr().err


def test_export_refuses_to_mix_runs_and_bad_configs(export_dir, demo_dir, capsys):
    assert cli.main(["export", str(export_dir), "--data_dir", str(demo_dir), "--dataset_config_name", "small"]) == 2
    assert "delete that folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["export", str(export_dir), "--dataset_config_name", "tiny"])


def test_export_keeps_a_readme_it_did_not_write(demo_dir, tmp_path, capsys):
    out = tmp_path / "my-dataset"
    out.mkdir()
    (out / "README.md").write_text("# My FMA\n\nNotes of my own.\n")
    argv = ["export", str(out), "--data_dir", str(demo_dir), "--cache_dir", str(tmp_path / "cache")]
    assert cli.main(argv) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"hf-fma export: {out / 'README.md'} was not written by hf-fma export")
    assert sorted(path.name for path in out.iterdir()) == ["README.md"]
    assert (out / "README.md").read_text() == "# My FMA\n\nNotes of my own.\n"
    assert not (tmp_path / "cache").exists()  # refused before preparing anything


def test_push_dataset_uploads_the_export_and_its_card(export_dir, in_memory_hub, tmp_path):  # noqa: F811
    copy = tmp_path / "fma"
    for path in export_dir.rglob("*"):
        if path.is_file():
            (copy / path.relative_to(export_dir)).parent.mkdir(parents=True, exist_ok=True)
            (copy / path.relative_to(export_dir)).write_bytes(path.read_bytes())
    (copy / "notes.txt").write_text("not part of the dataset")
    hub.push_dataset(copy, "me/fma-parquet", token="hf_test_token")
    assert in_memory_hub.created[0]["type"] == "dataset"
    uploaded = in_memory_hub.repositories["dataset", "me/fma-parquet"]
    shards = {path.relative_to(export_dir).as_posix() for path in export_dir.glob("small/*.parquet")}
    assert set(uploaded) == shards | {"README.md"}
    for name in shards:
        assert uploaded[name] == (export_dir / name).read_bytes()
    assert 'load_dataset("me/fma-parquet", "small")' in uploaded["README.md"].decode()  # card for this repository


def test_training_reads_the_export(export_dir, tmp_path, capsys):
    """A CNN run on the export alone: no data_dir, so the archives cannot be what it read."""
    from hf_fma.arguments import parse_arguments
    from hf_fma.train import run_training

    output_dir = tmp_path / "run"
    settings = dict(
        model_family="cnn", model_name_or_path="tiny", dataset_name=str(export_dir), dataset_config_name="small",
        output_dir=output_dir, crop_seconds=1, eval_crops=2, max_train_samples=16, num_train_epochs=1,
        per_device_train_batch_size=8, dataloader_num_workers=0, report_to="none", seed=0, disable_tqdm=False,
        train_eval_samples=0, dataloader_pin_memory=False,
    )
    argv = [item for key, value in settings.items() for item in (f"--{key}", str(value))]
    metrics = run_training(*parse_arguments(argv))
    # Trainer's bars are on (disable_tqdm false), and so are those of the final track-level evaluation of
    # validation and test, 2 crops per track.
    err = capsys.readouterr().err
    assert err.count("evaluating: 100%") >= 2 and f" {2 * metrics['test_tracks']}/{2 * metrics['test_tracks']} " in err
    assert metrics["train_samples"] == 16
    assert metrics["test_tracks"] == 16  # the export's whole test split
    card = ModelCard.load(output_dir / "README.md")
    assert card.data.datasets is None  # a local folder is no Hub dataset to link
    assert "trained on synthesized demo data" in card.text  # the export's files say they are the demo's
    assert json.loads((output_dir / "all_results.json").read_text())["synthesized_demo_data"] is True
    run_config = yaml.safe_load((output_dir / "run_config.yaml").read_text())
    assert run_config["dataset_name"] == str(export_dir)
    assert Path(run_config["output_dir"]) == output_dir
