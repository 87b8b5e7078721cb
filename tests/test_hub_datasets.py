"""Training on any audio-classification dataset: a GTZAN-like `audiofolder` (a folder per genre of generated
WAV files, genre names in its metadata, a train split only) mapped to hf-fma's columns, trained with the
shipped GTZAN config, and reported as that dataset, never as FMA, by the card, its evaluate command and
the results table."""

import json
import re
import shlex
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf
import yaml
from huggingface_hub import ModelCard

from hf_fma.configs import config_file
from hf_fma.data import load_splits
from hf_fma.hub_datasets import to_fma_columns

GENRES = ("blues", "classical", "metal", "reggae")  # each genre a tone of its own pitch in noise
CLIPS_PER_GENRE = 10
SAMPLE_RATE = 16000


@pytest.fixture(scope="module")
def gtzan_like(tmp_path_factory) -> Path:
    """GTZAN's layout, `<genre>/<genre>.000NN.wav`, 2 s each, with a metadata.jsonl giving each file's genre
    name in a `genre` column of strings (the columns of ast_gtzan.yaml's dataset: audio, genre); no
    validation or test split."""
    root = tmp_path_factory.mktemp("gtzan")
    rng = np.random.default_rng(0)
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    rows = []
    for index, genre in enumerate(GENRES):
        (root / genre).mkdir()
        for clip in range(CLIPS_PER_GENRE):
            tone = 0.5 * np.sin(2 * np.pi * 220 * 2**index * t) + 0.05 * rng.standard_normal(len(t))
            sf.write(root / genre / f"{genre}.{clip:05d}.wav", tone.astype(np.float32), SAMPLE_RATE)
            rows.append(json.dumps({"file_name": f"{genre}/{genre}.{clip:05d}.wav", "genre": genre}))
    (root / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return root


def _genre_counts(split: datasets.Dataset) -> Counter:
    names = split.features["genre"].names
    return Counter(names[label] for label in split["genre"])


def test_an_audiofolder_gets_hf_fma_columns_and_stratified_splits(gtzan_like):
    loaded = datasets.load_dataset(str(gtzan_like))
    assert set(loaded) == {"train"} and loaded["train"].features["genre"].dtype == "string"
    mapped = to_fma_columns(loaded)
    # 40 clips: 10% each (4 clips) for validation and test, 1 per genre; train keeps 8 per genre
    assert {name: _genre_counts(split) for name, split in mapped.items()} == {
        "train": Counter({genre: 8 for genre in GENRES}),
        "validation": Counter({genre: 1 for genre in GENRES}),
        "test": Counter({genre: 1 for genre in GENRES}),
    }
    assert mapped["train"].features["genre"].names == list(GENRES)  # the genre names, sorted
    track_ids = [track for split in mapped.values() for track in split["track_id"]]
    assert sorted(track_ids) == list(range(40))
    # the audio still is each clip's own file: its folder is its genre
    for split in mapped.values():
        names = split.features["genre"].names
        for example in split.cast_column("audio", datasets.Audio(decode=False)):
            assert Path(example["audio"]["path"]).parent.name == names[example["genre"]]


def test_the_made_splits_follow_the_seed(gtzan_like):
    loaded = datasets.load_dataset(str(gtzan_like))

    def test_files(seed):
        test = to_fma_columns(loaded, seed=seed)["test"].cast_column("audio", datasets.Audio(decode=False))
        return sorted(Path(audio["path"]).name for audio in test["audio"])

    assert test_files(0) == test_files(0)
    assert test_files(0) != test_files(1)


def test_string_labels_become_a_classlabel_and_given_splits_are_kept(gtzan_like):
    files = sorted(gtzan_like.glob("*/*.wav"))

    def split(rows):
        return datasets.Dataset.from_dict(
            {"file": [str(path) for path in rows], "style": [path.parent.name for path in rows]}
        ).cast_column("file", datasets.Audio())

    # the test split lacks "reggae": the genre names still come from all splits
    given = datasets.DatasetDict(
        {"train": split(files[::2]), "validation": split(files[1:20:2]), "test": split(files[21::2])}
    )
    mapped = to_fma_columns(given, audio_column_name="file", label_column_name="style")
    assert {name: len(split) for name, split in mapped.items()} == {"train": 20, "validation": 10, "test": 10}
    for split in mapped.values():  # one numbering of the genres in every split
        assert split.features["genre"] == datasets.ClassLabel(names=list(GENRES))
    for name, split_rows in (("train", files[::2]), ("test", files[21::2])):
        names = mapped[name].features["genre"].names
        assert [names[label] for label in mapped[name]["genre"]] == [path.parent.name for path in split_rows]


def test_a_wrong_column_name_lists_the_columns(gtzan_like):
    loaded = datasets.load_dataset(str(gtzan_like))
    with pytest.raises(ValueError, match=r"--label_column_name 'style' not found.* one of audio, genre\.$"):
        to_fma_columns(loaded, label_column_name="style")
    with pytest.raises(ValueError, match=r"--audio_column_name 'file' not found.* one of audio, genre\.$"):
        to_fma_columns(loaded, audio_column_name="file")
    numbers = datasets.DatasetDict({"train": loaded["train"].remove_columns("genre").add_column("genre", [1] * 40)})
    with pytest.raises(ValueError, match=r"label column 'genre' is .*int64.* neither a ClassLabel nor strings"):
        to_fma_columns(numbers)


def test_streaming_another_dataset_fails_clearly(gtzan_like):
    with pytest.raises(ValueError, match=r"--streaming reads hf-fma exports only.* train without --streaming"):
        load_splits("default", dataset_name=gtzan_like, streaming=True)


def test_a_config_the_dataset_lacks_names_its_configs(gtzan_like):
    # FMA's default config name, small, on a dataset without configs
    with pytest.raises(ValueError, match=r"--dataset_config_name small: .* has no such config; its configs: default$"):
        load_splits("small", dataset_name=gtzan_like)


# --------------------------------------------------------------------------------------------------
# A run of the shipped GTZAN config on the GTZAN-like folder, and everything that reports it
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gtzan_run(gtzan_like, tmp_path_factory):
    """ast_gtzan.yaml as shipped but for its data (the local folder, same columns), another split seed, a
    tiny AST and 2 epochs."""
    from hf_fma.arguments import parse_arguments
    from hf_fma.train import run_training

    output_dir = tmp_path_factory.mktemp("ast-gtzan")
    argv = [
        "ast_gtzan", "--dataset_name", str(gtzan_like), "--split_seed", "3", "--output_dir", str(output_dir),
        "--model_name_or_path", "tiny", "--frequency_downscale", "2", "--time_downscale", "2",
        "--crop_seconds", "1", "--eval_crops", "2", "--num_train_epochs", "2", "--per_device_train_batch_size", "8",
        "--per_device_eval_batch_size", "8", "--dataloader_num_workers", "0", "--dataloader_persistent_workers",
        "false", "--dataloader_pin_memory", "false", "--disable_tqdm", "true",
    ]  # fmt: skip
    metrics = run_training(*parse_arguments(argv))
    return output_dir, metrics


def test_the_gtzan_config_trains_on_a_folder_with_its_columns_and_records_the_data(gtzan_run, gtzan_like):
    output_dir, metrics = gtzan_run
    assert metrics["test_tracks"] == 4 and 0 <= metrics["test_track_accuracy"] <= 1  # a tenth of 40 clips
    results = json.loads((output_dir / "all_results.json").read_text())
    assert results["fma_data"] is False and results["splits_made_from_train"] == ["validation", "test"]
    config = json.loads((output_dir / "config.json").read_text())
    assert config["model_type"] == "audio-spectrogram-transformer"
    assert config["id2label"] == {str(index): genre for index, genre in enumerate(GENRES)}
    run_config = yaml.safe_load((output_dir / "run_config.yaml").read_text())
    shipped = yaml.safe_load(config_file("ast_gtzan").read_text())
    assert (shipped["dataset_name"], shipped["dataset_config_name"]) == ("sanchit-gandhi/gtzan", "default")
    data = ("dataset_name", "dataset_config_name", "audio_column_name", "label_column_name", "split_seed")
    assert {key: run_config[key] for key in data} == {
        **{key: shipped[key] for key in data}, "dataset_name": str(gtzan_like), "split_seed": 3
    }


def card_command(text, name):
    """The `hf-fma NAME ...` command a card shows, as argv after `hf-fma NAME`."""
    (command,) = re.findall(rf"`(hf-fma {name} [^`]*)`", text)
    return shlex.split(command)[2:]


def test_the_card_names_the_dataset_never_fma(gtzan_run, gtzan_like):
    output_dir, _ = gtzan_run
    card = ModelCard.load(output_dir / "README.md")
    text = " ".join(card.text.split())  # the template wraps its lines
    assert f"# AST music-genre classifier for {gtzan_like}" in text
    assert f"| Dataset | `{gtzan_like}`, config `default`, not FMA |" in text
    assert "has no validation or test split: hf-fma made validation and test from its train split" in text
    assert "seeded by `--split_seed 3`" in text
    assert "FMA" not in text.replace("not FMA", "")  # no FMA taxonomy, licences, split or citation
    assert "fma" not in card.data.tags
    indexed = {(result.dataset_name, result.dataset_type, result.dataset_config) for result in card.data.eval_results}
    assert indexed == {(gtzan_like.name, gtzan_like.name, "default")}  # Hub metadata: the folder's name


def test_the_card_s_evaluate_command_as_printed_gives_the_run_s_test_numbers(gtzan_run, gtzan_like):
    from hf_fma.evaluate_run import _build_evaluate_parser, evaluate_main

    output_dir, _ = gtzan_run
    evaluate_argv = card_command(ModelCard.load(output_dir / "README.md").text, "evaluate")
    # The run's data and its test split, made with the run's split seed: every genre being one tone, the
    # numbers alone may not tell another split's clips apart.
    shown = vars(_build_evaluate_parser().parse_args(evaluate_argv))
    run_config = yaml.safe_load((output_dir / "run_config.yaml").read_text())
    data = ("dataset_name", "dataset_config_name", "audio_column_name", "label_column_name", "split_seed")
    assert {key: shown[key] for key in data} == {key: run_config[key] for key in data}
    assert shown["split"] == "test" and shown["n_crops"] == run_config["eval_crops"]
    assert evaluate_main(evaluate_argv) == 0
    recorded = json.loads((output_dir / "evaluation_test.json").read_text())
    reproduced = json.loads((output_dir / "evaluation_default_test.json").read_text())
    assert reproduced["num_tracks"] == recorded["num_tracks"] == 4
    for level in ("clip", "track"):
        assert reproduced[level]["confusion_matrix"] == recorded[level]["confusion_matrix"]
        assert reproduced[level]["accuracy"] == pytest.approx(recorded[level]["accuracy"])


def test_the_results_table_names_the_dataset(gtzan_run, gtzan_like):
    from hf_fma.results import format_results_table, results_table
    from hf_fma.runs import find_runs

    output_dir, metrics = gtzan_run
    (row,) = results_table(find_runs([output_dir]))
    assert row.dataset == str(gtzan_like)
    assert f"| {gtzan_like} | 32 | {100 * metrics['test_track_accuracy']:.1f} | 1 |" in format_results_table([row])


def test_a_published_card_shows_no_folder_of_the_training_machine(gtzan_run, gtzan_like, tmp_path):
    from hf_fma import hub

    output_dir, _ = gtzan_run
    assert hub.main([str(output_dir), "me/ast-gtzan", "--dry_run", str(tmp_path / "repo")]) == 0  # `hf-fma push`
    card = ModelCard.load(tmp_path / "repo" / "README.md")
    assert str(gtzan_like.parent) not in str(card.content)
    assert f"# AST music-genre classifier for {gtzan_like.name}: ast-gtzan\n" in card.text
    evaluate_argv = card_command(card.text, "evaluate")
    assert evaluate_argv[:1] == ["me/ast-gtzan"] and evaluate_argv[evaluate_argv.index("--dataset_name") + 1] == "DIR"
    assert "`DIR` is the folder of that dataset on your machine" in card.text
