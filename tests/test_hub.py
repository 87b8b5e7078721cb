"""The repository folders `hf-fma push` uploads (loaded with `pipeline` in a fresh process without
hf_fma), and the upload itself through huggingface_hub with its HTTP transport replaced by an in-memory Hub
(conftest's `in_memory_hub`)."""

import hashlib
import json
import subprocess
import sys
import textwrap

import httpx2
import huggingface_hub
import numpy as np
import pytest
import torch
import yaml

from hf_fma import hub, hub_checks

GENRES = ["Electronic", "Experimental", "Folk", "Hip-Hop", "Instrumental", "International", "Pop", "Rock"]


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
    from hf_fma.models.loading import load_classifier

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
    with pytest.raises(hub_checks.MissingTokenError, match="hf auth login"):
        hub.push_run(tmp_path / "no-such-run", "me/model")
    with pytest.raises(hub_checks.MissingTokenError):
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
    with pytest.raises(hub_checks.HubError, match="owner/name"):
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
