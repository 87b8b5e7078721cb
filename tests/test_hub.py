"""Model and dataset cards from real tiny runs, the repository folders `hf-fma push` uploads (loaded with
`pipeline` / `load_dataset` in a fresh process without hf_fma), and the upload itself through
huggingface_hub with its HTTP transport replaced by an in-memory Hub."""

import base64
import hashlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx2
import huggingface_hub
import numpy as np
import pytest
import torch
import yaml
from huggingface_hub import ModelCard, set_client_factory

from hf_fma import hub
from hf_fma.cards import model_card
from hf_fma.reporting import evaluation_json_name

GENRES = ["Electronic", "Experimental", "Folk", "Hip-Hop", "Instrumental", "International", "Pop", "Rock"]


def train_tiny_run(family, data_dir, output_dir, **overrides):
    """A real run of the training recipe on the demo FMA, as small as it gets: 24 tracks, 2 epochs, 1 s
    crops pooled 2 x 2 (so the feature extractor is the remote-code FmaASTFeatureExtractor)."""
    from hf_fma.arguments import parse_arguments
    from hf_fma.train import run_training

    settings = dict(
        model_family=family, model_name_or_path="tiny", data_dir=data_dir, output_dir=output_dir,
        dataset_config_name="small", crop_seconds=1, eval_crops=2, frequency_downscale=2, time_downscale=2,
        max_train_samples=24, max_eval_samples=16, num_train_epochs=2, per_device_train_batch_size=8,
        learning_rate=3e-3, dataloader_num_workers=0, dataloader_pin_memory=False, report_to="none", seed=0,
        disable_tqdm=True,
    )
    settings.update(overrides)
    argv = [item for key, value in settings.items() for item in (f"--{key}", str(value))]
    run_training(*parse_arguments(argv))
    return output_dir


@pytest.fixture(scope="session")
def tiny_runs(demo_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {family: train_tiny_run(family, demo_dir, root / family) for family in ("ast", "cnn")}


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
# The folders that get uploaded
# ----------------------------------------------------------------------------------------------------

# Runs in a fresh interpreter where `import hf_fma` fails: a Hub user has transformers only.
PIPELINE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.modules["hf_fma"] = None  # any import of hf_fma now raises ImportError
    import numpy as np
    from transformers import pipeline

    wave_path, *folders = sys.argv[1:]
    for folder in folders:
        classifier = pipeline("audio-classification", model=folder, trust_remote_code=True, top_k=None)
        print(json.dumps(classifier({"raw": np.load(wave_path), "sampling_rate": 16000})))
    """
)


def test_pushed_folders_run_in_a_pipeline_without_hf_fma(tiny_runs, tmp_path):
    from hf_fma.predict import load_classifier

    folders = {}
    for family in ("ast", "cnn"):
        folder = hub.prepare_model_repo(tiny_runs[family], tmp_path / family, repo_id=f"me/{family}-fma-demo")
        expected = {"config.json", "model.safetensors", "preprocessor_config.json", "feature_extraction_fma_ast.py",
                    "README.md", "run_config.yaml", "all_results.json", "trainer_state.json", "evaluation_test.json",
                    "evaluation_validation.json", "learning_curves.png", "confusion_matrix_test.png"}
        if family == "cnn":
            expected |= {"configuration_fma_cnn.py", "modeling_fma_cnn.py"}
        assert {path.name for path in folder.iterdir()} == expected  # no checkpoints, optimizer, training_args.bin
        run_config = yaml.safe_load((folder / "run_config.yaml").read_text())
        assert not {"data_dir", "output_dir", "dataset_script"} & set(run_config)
        assert run_config["learning_rate"] == 0.003
        folders[family] = folder

    wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(32000) / 16000)).astype(np.float32)
    np.save(tmp_path / "wave.npy", wave)
    completed = subprocess.run(
        [sys.executable, "-c", PIPELINE_SCRIPT, str(tmp_path / "wave.npy"), *map(str, folders.values())],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    outputs = [json.loads(line) for line in completed.stdout.strip().splitlines()[-len(folders):]]
    for family, predictions in zip(folders, outputs):
        assert sorted(prediction["label"] for prediction in predictions) == sorted(GENRES)
        # The same scores as the run's model with hf_fma's own feature extractor: the folder's code
        # reproduces the training features (pooling included).
        model, extractor = load_classifier(tiny_runs[family], device="cpu")
        with torch.no_grad():
            logits = model(**extractor(wave, sampling_rate=16000, return_tensors="pt")).logits[0]
        expected_scores = dict(zip(GENRES, torch.softmax(logits, -1).tolist()))
        for prediction in predictions:
            assert prediction["score"] == pytest.approx(expected_scores[prediction["label"]], abs=1e-5), family


# ----------------------------------------------------------------------------------------------------
# Uploads through huggingface_hub, against an in-memory Hub
# ----------------------------------------------------------------------------------------------------


class InMemoryHub:
    """The Hub endpoints `create_repo` and `upload_folder` call, answered in memory: repository creation,
    card metadata validation, preupload (safetensors and PNG as LFS, the rest as regular files), the LFS batch API and its upload
    URLs, and the commit, whose files are kept by repository."""

    LFS_SUFFIXES = (".safetensors", ".png")

    def __init__(self):
        self.requests = []
        self.created = []
        self.validated = []
        self.lfs_objects = {}
        self.repositories = {}

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        path = request.url.path
        if request.method == "POST" and path == "/api/repos/create":
            payload = json.loads(request.content)
            self.created.append(payload)
            repo_id = f"{payload['organization']}/{payload['name']}"
            return httpx2.Response(200, json={"url": f"https://huggingface.co/{repo_id}", "name": repo_id})
        if request.method == "POST" and path == "/api/validate-yaml":  # create_commit checks README.md first
            payload = json.loads(request.content)
            self.validated.append((payload["repoType"], payload["content"]))
            return httpx2.Response(200, json={"errors": [], "warnings": []})
        if request.method == "POST" and "/preupload/" in path:
            files = json.loads(request.content)["files"]
            return httpx2.Response(200, json={"files": [
                {"path": file["path"], "uploadMode": "lfs" if file["path"].endswith(self.LFS_SUFFIXES) else "regular",
                 "shouldIgnore": False}
                for file in files
            ]})
        if request.method == "POST" and path.endswith(".git/info/lfs/objects/batch"):
            objects = json.loads(request.content)["objects"]
            return httpx2.Response(200, json={"transfer": "basic", "objects": [
                {"oid": item["oid"], "size": item["size"],
                 "actions": {"upload": {"href": f"https://lfs.example/{item['oid']}"}}}
                for item in objects
            ]})
        if request.method == "PUT" and request.url.host == "lfs.example":
            self.lfs_objects[path.strip("/")] = request.read()
            return httpx2.Response(200)
        if request.method == "POST" and "/commit/" in path:
            repo_type, repo_id = path.split("/commit/")[0].removeprefix("/api/").split("/", 1)
            files = self.repositories.setdefault((repo_type.rstrip("s"), repo_id), {})
            for line in request.read().decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] == "lfsFile":
                    files[item["value"]["path"]] = self.lfs_objects[item["value"]["oid"]]
            return httpx2.Response(200, json={
                "commitUrl": f"https://huggingface.co/{repo_id}/commit/{'1' * 40}", "commitOid": "1" * 40,
            })
        return httpx2.Response(404, json={"error": f"the in-memory Hub does not serve {request.method} {path}"})


@pytest.fixture
def serve_hub(monkeypatch):
    """serve_hub(handler): huggingface_hub's HTTP client with its transport replaced, so that every request
    ends in handler(request) -> response. Online (conftest sets HF_HUB_OFFLINE for every test); Xet off
    (HF_HUB_DISABLE_XET), as for a Hub without it, so LFS bytes go through the same transport."""
    from huggingface_hub.utils._http import default_client_factory

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    def serve(handler):
        set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(handler)))
        return handler

    yield serve
    set_client_factory(default_client_factory)


@pytest.fixture
def in_memory_hub(serve_hub):
    """Every request of huggingface_hub ends in an InMemoryHub."""
    return serve_hub(InMemoryHub())


def test_push_run_uploads_the_repository_folder(tiny_runs, in_memory_hub, tmp_path):
    commit = hub.push_run(tiny_runs["cnn"], "me/cnn-fma-demo", token="hf_test_token", private=True)
    assert commit.oid == "1" * 40
    assert in_memory_hub.created == [{"name": "cnn-fma-demo", "organization": "me", "visibility": "private", "type": "model"}]
    # Every request about the repository carries the token (not the LFS storage's, nor huggingface_hub's
    # own daily, anonymous fetch of its agent registry for the user agent).
    repository_requests = [request for request in in_memory_hub.requests
                           if request.url.host != "lfs.example" and request.url.path != "/api/agent-harnesses"]
    assert repository_requests and all(request.headers.get("authorization") == "Bearer hf_test_token"
                                       for request in repository_requests)

    uploaded = in_memory_hub.repositories["model", "me/cnn-fma-demo"]
    expected = hub.prepare_model_repo(tiny_runs["cnn"], tmp_path / "expected", repo_id="me/cnn-fma-demo")
    assert set(uploaded) == {path.name for path in expected.iterdir()}
    for name, content in uploaded.items():
        if not name.endswith(".png"):  # PNGs are redrawn: same figure, not necessarily the same bytes
            assert content == (expected / name).read_bytes(), name
    assert set(in_memory_hub.validated) == {("model", uploaded["README.md"].decode())}
    weights = (tiny_runs["cnn"] / "model.safetensors").read_bytes()
    assert in_memory_hub.lfs_objects[hashlib.sha256(weights).hexdigest()] == weights  # sent as LFS


def test_missing_token_stops_before_any_work(in_memory_hub, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    # The run folder does not exist: the token error must come first, before the folder is even read.
    with pytest.raises(hub.MissingTokenError, match="hf auth login"):
        hub.push_run(tmp_path / "no-such-run", "me/model")
    with pytest.raises(hub.MissingTokenError):
        hub.push_dataset(tmp_path / "no-such-export", "me/fma")
    assert hub.main([str(tmp_path / "no-such-run"), "me/model"]) == 2
    assert "no Hugging Face token" in capsys.readouterr().err
    assert in_memory_hub.requests == []


def test_push_command_line_needs_a_run_or_dataset(capsys):
    with pytest.raises(SystemExit) as exit_info:
        hub.main(["me/model"])
    assert exit_info.value.code == 2
    assert "--dataset" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------
# Hub errors: one line naming the fix, exit status 2, nothing sent
# ----------------------------------------------------------------------------------------------------


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_invalid_repo_id_is_refused_even_in_a_dry_run(tiny_runs, tmp_path, capsys):
    assert hub.main([str(tiny_runs["ast"]), "not a repo id!!", "--dry_run", str(tmp_path / "out")]) == 2
    assert "'not a repo id!!' is not a repository id" in one_line_error(capsys)
    assert not (tmp_path / "out").exists()
    with pytest.raises(hub.HubError, match="owner/name"):
        hub.push_run(tiny_runs["ast"], "me/two/slashes", token="hf_test_token")


def test_offline_mode_stops_before_any_work(tiny_runs, in_memory_hub, monkeypatch, capsys):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert hub.main([str(tiny_runs["ast"]), "me/model", "--token", "hf_test_token"]) == 2
    assert "HF_HUB_OFFLINE" in one_line_error(capsys)
    assert in_memory_hub.requests == []


def test_no_network_is_one_line(tiny_runs, serve_hub, capsys):
    def unreachable(request):
        raise httpx2.ConnectError("[Errno 101] Network is unreachable", request=request)

    serve_hub(unreachable)
    assert hub.main([str(tiny_runs["ast"]), "me/model", "--token", "hf_test_token"]) == 2
    assert "cannot reach https://huggingface.co" in one_line_error(capsys)


@pytest.mark.parametrize("status, fix", [(403, "no write access to me/model"), (401, "hf auth login")])
def test_a_refused_token_is_one_line_before_any_upload(status, fix, tiny_runs, serve_hub, capsys):
    requests = []

    def refusing(request):
        requests.append(request)
        return httpx2.Response(status, json={"error": "You don't have the rights to create a model under this namespace"})

    serve_hub(refusing)
    assert hub.main([str(tiny_runs["ast"]), "me/model", "--token", "hf_test_token"]) == 2
    assert fix in one_line_error(capsys)
    assert not [request for request in requests if "/preupload/" in request.url.path or "/commit/" in request.url.path]


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
        # (a test here pushes the CNN run, which renames it after the repository).
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
    from hf_fma.reporting import evaluate_main

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


def test_evaluate_without_matplotlib_writes_the_reports_and_names_the_extra(tiny_runs, demo_dir, monkeypatch, tmp_path, capsys):
    from hf_fma.reporting import evaluate_main

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import matplotlib.figure now fails
    argv = [str(tiny_runs["cnn"]), "--data_dir", str(demo_dir), "--n_crops", "2", "--max_tracks", "8", "--device", "cpu",
            "--output_dir", str(tmp_path)]  # fmt: skip
    assert evaluate_main(argv) == 0
    assert json.loads((tmp_path / "evaluation_small_test.json").read_text())["num_tracks"] == 8
    assert (tmp_path / "evaluation_small_test.md").is_file()
    assert not (tmp_path / "confusion_matrix_small_test.png").exists()
    err = capsys.readouterr().err
    assert "evaluating: 100%" in err and " 16/16 " in err  # a bar on stderr: 8 tracks x 2 crops
    notes = [line for line in err.splitlines() if "matplotlib" in line]
    assert notes == ['hf-fma evaluate: no confusion-matrix figure: Plots need matplotlib, an optional extra of hf-fma: '
                     'pip install "hf-fma[plots]"']


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
    from hf_fma.reporting import _build_evaluate_parser, evaluate_main
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
