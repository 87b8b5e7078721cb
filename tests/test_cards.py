"""Model cards from real tiny runs: their Hub metadata, what they say about the run, its data and licence,
the commands that reproduce it, and the card in the run folder that training, `hf-fma evaluate` and
`hf-fma push` write."""

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard

from hf_fma import hub
from hf_fma.cards import model_card
from hf_fma.run_folder import evaluation_json_name


# ----------------------------------------------------------------------------------------------------
# Cards
# ----------------------------------------------------------------------------------------------------


def test_ast_card_from_a_real_run_has_the_hub_metadata_and_the_run_facts(tiny_runs, tmp_path):
    run_dir = tiny_runs["ast"]
    evaluation = json.loads((run_dir / "evaluation_test.json").read_text())
    card_path = tmp_path / "README.md"
    model_card(run_dir, repo_id="me/ast-fma-demo").save(card_path)

    card = ModelCard.load(card_path)  # what the Hub parses
    metadata = card.data.to_dict()
    assert metadata["pipeline_tag"] == "audio-classification"
    assert metadata["license"] == "cc-by-nc-sa-4.0"
    assert "datasets" not in metadata  # trained on the archives, not on a Hub dataset
    assert metadata["metrics"] == ["accuracy", "f1"]
    assert metadata["library_name"] == "transformers"
    assert "base_model" not in metadata  # trained from scratch
    # metric_name: "Test accuracy (track level, 2 crops of 1 s)" -> key ("accuracy", "track")
    results = {(result.metric_type, result.metric_name.split("(")[1].split(" level")[0]): result
               for result in card.data.eval_results}
    assert results["accuracy", "track"].metric_value == pytest.approx(evaluation["track"]["accuracy"], abs=1e-4)
    assert results["accuracy", "clip"].metric_value == pytest.approx(evaluation["clip"]["accuracy"], abs=1e-4)
    assert results["f1", "track"].metric_value == pytest.approx(evaluation["track"]["macro_f1"], abs=1e-4)
    for result in card.data.eval_results:
        assert (result.task_type, result.dataset_type, result.dataset_config, result.dataset_split) == (
            "audio-classification", "hf-fma-demo", "small", "test"
        )
        assert result.metric_args == ({"average": "macro"} if result.metric_type == "f1" else None)
    assert card.data.model_name == "ast-fma-demo"

    text = card.text
    feature_config = json.loads((run_dir / "preprocessor_config.json").read_text())
    assert 'pipeline("audio-classification", model="me/ast-fma-demo", trust_remote_code=True)' in text
    assert f"mean {feature_config['mean']:.4f}, std {feature_config['std']:.4f}" in text
    assert "Average-pooled by 2 frames x 2 mel bins" in text and "50 x 64 (frames x mel bins)" in text
    assert "| learning rate | 0.003 |" in text and "| seed | 0 |" in text
    assert "| train | 24 |" in text and f"| test | {evaluation['num_tracks']} |" in text
    assert f"| track | {100 * evaluation['track']['accuracy']:.1f}% |" in text
    assert "2 evenly spaced crops of 1 s" in text
    assert "Genre taxonomy" in text and "non-commercial (NC)" in text  # limitations: taxonomy, licences
    assert "Trained for 2 epochs" in text
    assert "{{ " not in text and "{%" not in text  # every template expression rendered


def test_card_takes_each_model_index_number_from_its_level_and_metric(tiny_runs, tmp_path):
    """Four different numbers in the run's test evaluation: each model-index result, the clip macro-F1
    among them, carries its own (not the accuracy, nor the other level's)."""
    run_dir = shutil.copytree(tiny_runs["ast"], tmp_path / "run")
    evaluation_path = run_dir / evaluation_json_name("test")
    evaluation = json.loads(evaluation_path.read_text())
    numbers = {("accuracy", "track"): 0.61, ("f1", "track"): 0.52, ("accuracy", "clip"): 0.43, ("f1", "clip"): 0.34}
    for (metric, level), value in numbers.items():
        evaluation[level]["accuracy" if metric == "accuracy" else "macro_f1"] = value
    evaluation_path.write_text(json.dumps(evaluation))

    card = model_card(run_dir, repo_id="me/ast-fma-demo")
    results = {(result.metric_type, result.metric_name.split("(")[1].split(" level")[0]): result.metric_value
               for result in card.data.eval_results}
    assert results == numbers
    assert "| clip | 43.0% | 0.340 |" in card.text and "| track | 61.0% | 0.520 |" in card.text


def test_cnn_card_describes_the_blocks_and_remote_code(tiny_runs):
    card = model_card(tiny_runs["cnn"], repo_id="me/cnn-fma-demo")
    assert "cnn" in card.data.tags
    assert "| 5 | 32 | 3 x 3 | 2 x 2 |" in card.text  # the tiny preset's last block
    assert "`configuration_fma_cnn.py` and `modeling_fma_cnn.py`" in card.text
    assert "trust_remote_code=True" in card.text


def copy_run(run_dir, destination, skip=()):
    destination.mkdir()
    for path in run_dir.iterdir():
        if path.is_file() and path.name not in skip:
            (destination / path.name).write_bytes(path.read_bytes())
    return destination


def test_card_of_a_fine_tuned_ast_names_its_base_model(tiny_runs, tmp_path):
    from hf_fma.models import DEFAULT_AST_CHECKPOINT

    run_dir = copy_run(tiny_runs["ast"], tmp_path / "run")
    run_config = yaml.safe_load((run_dir / "run_config.yaml").read_text())
    (run_dir / "run_config.yaml").write_text(yaml.safe_dump({**run_config, "model_name_or_path": "audioset"}))
    card = model_card(run_dir)
    assert card.data.base_model == DEFAULT_AST_CHECKPOINT
    assert f"fine-tuned from\n[`{DEFAULT_AST_CHECKPOINT}`]" in card.text
    assert "Position embeddings of" in card.text


def test_card_needs_the_test_evaluation(tiny_runs, tmp_path):
    run_copy = copy_run(tiny_runs["ast"], tmp_path / "run", skip=("evaluation_test.json",))
    with pytest.raises(FileNotFoundError, match="hf-fma evaluate"):
        model_card(run_copy)
    with pytest.raises(FileNotFoundError, match="hf-fma evaluate"):
        hub.prepare_model_repo(run_copy, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()  # failed before writing anything


# ----------------------------------------------------------------------------------------------------
# The card in the run folder
# ----------------------------------------------------------------------------------------------------


def test_training_leaves_a_complete_card_in_the_run_folder(tiny_runs):
    for family, run_dir in tiny_runs.items():
        content = (run_dir / "README.md").read_text()
        card = ModelCard.load(run_dir / "README.md")  # the YAML parses as the Hub parses it
        results = card.data.to_dict()["model-index"][0]["results"]
        assert {metric["type"] for result in results for metric in result["metrics"]} == {"accuracy", "f1"}
        assert "hf-fma/fma" not in content and "pip install hf-fma" not in content
        assert "trust_remote_code=True)`" not in content  # no load_dataset call that datasets >= 4 refuses
        assert "macro-F1" in card.text and "pip install transformers torch" in card.text
        assert "on **synthesized demo data, not on FMA's music**" in card.text, family  # the demo's archives
        # Written among the staged files, it names the run folder they moved into, not the staging folder
        # (a test in test_hub.py pushes the CNN run, which renames it after the repository).
        assert ".incoming" not in content, family
        assert family == "cnn" or f'model="{run_dir}"' in content


def test_card_names_the_hub_dataset_a_run_trained_on(tiny_runs, tmp_path):
    run_dir = copy_run(tiny_runs["ast"], tmp_path / "run")
    run_config = yaml.safe_load((run_dir / "run_config.yaml").read_text())
    (run_dir / "run_config.yaml").write_text(yaml.safe_dump({**run_config, "dataset_name": "me/fma"}))
    card = model_card(run_dir)
    assert card.data.datasets == ["me/fma"]
    assert {result.dataset_type for result in card.data.eval_results} == {"me/fma"}
    assert 'load_dataset("me/fma", "small")' in card.text
    # A local export folder is no Hub dataset: the card links FMA's page instead.
    (run_dir / "run_config.yaml").write_text(yaml.safe_dump({**run_config, "dataset_name": str(tmp_path)}))
    assert model_card(run_dir).data.datasets is None


def test_evaluate_and_push_refresh_the_run_card(tiny_runs, demo_dir, in_memory_hub, tmp_path):
    from hf_fma.evaluate_run import evaluate_main

    run_dir = copy_run(tiny_runs["cnn"], tmp_path / "run", skip=("README.md",))
    argv = [str(run_dir), "--dataset_config_name", "small", "--split", "test", "--data_dir", str(demo_dir), "--n_crops", "2",
            "--max_tracks", "16", "--no_plot", "--device", "cpu"]  # fmt: skip
    assert evaluate_main(argv) == 0
    assert ModelCard.load(run_dir / "README.md").data.eval_results
    hub.push_run(run_dir, "me/cnn-fma-demo", token="hf_test_token", license="mit", dataset_id="me/fma")
    assert 'model="me/cnn-fma-demo"' in (run_dir / "README.md").read_text()  # the card names the repository
    local = ModelCard.load(run_dir / "README.md")  # with the licence and dataset the published card gives
    published = ModelCard(in_memory_hub.repositories["model", "me/cnn-fma-demo"]["README.md"].decode())
    assert (local.data.license, local.data.datasets) == (published.data.license, published.data.datasets) == ("mit", ["me/fma"])
    assert evaluate_main(argv) == 0  # a refreshed card keeps the licence the run was published under
    assert ModelCard.load(run_dir / "README.md").data.license == "mit"


# ----------------------------------------------------------------------------------------------------
# What the cards say about the data, the licence and how to reproduce the run
# ----------------------------------------------------------------------------------------------------


def card_command(text, name):
    """The `hf-fma NAME ...` command a card shows, as argv after `hf-fma NAME`."""
    (command,) = re.findall(rf"`(hf-fma {name} [^`]*)`", text)
    return shlex.split(command)[2:]


def test_card_of_a_demo_run_says_so_and_reproduces_as_written(tiny_runs, tmp_path):
    """The tiny runs trained on `hf-fma make-demo`'s archives: the card must not call that FMA, and its
    evaluate command, run exactly as shown, gives the run's own test numbers."""
    from hf_fma.cards import write_run_card
    from hf_fma.evaluate_run import _build_evaluate_parser, evaluate_main
    from hf_fma.arguments import parse_arguments, resolved_config

    run_dir = copy_run(tiny_runs["cnn"], tmp_path / "run")
    card = ModelCard.load(write_run_card(run_dir))  # names this copy
    assert "# CNN music-genre classifier for FMA small trained on synthesized demo data\n" in card.text
    assert "| Dataset | synthesized demo data (`hf-fma make-demo`) in the layout of FMA `small`, not FMA's music |" in card.text
    assert "from the official archives" not in card.text
    assert {result.dataset_type for result in card.data.eval_results} == {"hf-fma-demo"}
    # A non-commercial default, and the card says why.
    assert card.data.license == "cc-by-nc-sa-4.0" and "hf-fma's default:\n  a non-commercial share-alike" in card.text

    evaluate_argv = card_command(card.text, "evaluate")
    run_config = yaml.safe_load((run_dir / "run_config.yaml").read_text())
    shown = _build_evaluate_parser().parse_args(evaluate_argv)  # the run's data, crops and sampled tracks
    assert (shown.data_dir, shown.n_crops, shown.max_tracks, shown.seed) == (
        run_config["data_dir"], run_config["eval_crops"], run_config["max_eval_samples"], run_config["seed"])
    assert evaluate_main(evaluate_argv) == 0
    recorded = json.loads((run_dir / "evaluation_test.json").read_text())
    reproduced = json.loads((run_dir / "evaluation_small_test.json").read_text())
    for level in ("clip", "track"):
        assert reproduced[level]["confusion_matrix"] == recorded[level]["confusion_matrix"]
        assert reproduced[level]["accuracy"] == pytest.approx(recorded[level]["accuracy"])
    # The training command reads the run's arguments back, all of them but the new output folder.
    train_argv = card_command(card.text, "train")
    rerun = resolved_config(*parse_arguments(["--config", *train_argv]))
    assert Path(rerun.pop("output_dir")) != Path(run_config.pop("output_dir"))
    assert {key: value for key, value in rerun.items() if key in run_config} == run_config


def test_published_card_of_a_demo_run_asks_for_the_data_folder(tiny_runs, demo_dir, tmp_path):
    """`hf-fma push --dry_run`: the repository's card says demo too, and its commands name DIR, the
    reader's data folder; with the demo folder as DIR its training command is the run's arguments."""
    from hf_fma.arguments import parse_arguments, resolved_config

    folder = tmp_path / "repo"
    assert hub.main([str(tiny_runs["ast"]), "me/ast-demo", "--dry_run", str(folder)]) == 0
    card = ModelCard.load(folder / "README.md")
    assert "trained on synthesized demo data" in card.text and "from the official archives" not in card.text
    assert card.data.license == "cc-by-nc-sa-4.0"
    evaluate_argv = card_command(card.text, "evaluate")
    assert evaluate_argv[:1] == ["me/ast-demo"] and evaluate_argv[evaluate_argv.index("--data_dir") + 1] == "DIR"
    assert "`DIR` is a folder of the demo data, written by `hf-fma make-demo DIR`" in card.text
    train_argv = [str(demo_dir) if item == "DIR" else item for item in card_command(card.text, "train")]
    assert train_argv[0] == "run_config.yaml"
    train_argv[0] = str(folder / "run_config.yaml")
    rerun = resolved_config(*parse_arguments(["--config", *train_argv]))
    run_config = yaml.safe_load((tiny_runs["ast"] / "run_config.yaml").read_text())
    del rerun["output_dir"], run_config["output_dir"]
    assert {key: value for key, value in rerun.items() if key in run_config} == run_config
    # Another licence is the publisher's choice.
    other = tmp_path / "mit"
    assert hub.main([str(tiny_runs["ast"]), "me/ast-demo", "--license", "mit", "--dry_run", str(other)]) == 0
    assert ModelCard.load(other / "README.md").data.license == "mit"


def test_card_of_a_run_on_the_official_archives_names_fma(tiny_runs, tmp_path):
    run_dir = copy_run(tiny_runs["ast"], tmp_path / "run")
    results = json.loads((run_dir / "all_results.json").read_text())
    (run_dir / "all_results.json").write_text(json.dumps({**results, "synthesized_demo_data": False}))
    card = model_card(run_dir)
    assert "[FMA](https://github.com/mdeff/fma) `small`, from the official archives" in card.text
    assert "synthesized" not in card.text
    assert {result.dataset_type for result in card.data.eval_results} == {"fma"}
