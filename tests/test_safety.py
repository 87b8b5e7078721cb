"""Tokens never written, code from a model repository never run unasked.

All on one real finished run of the CNN recipe on the demo FMA (conftest's `cnn_run`: tiny, 24 tracks,
2 epochs, 1 s crops pooled 2 x 2, so its folder carries the CNN's and the pooling feature extractor's code
under `auto_map`).
"""

import json
import os
import shutil
import zipfile
from pathlib import Path

import huggingface_hub
import pytest

from hf_fma import predict, train
from hf_fma.evaluate_run import evaluate_main
from hf_fma.models.loading import load_classifier

from .conftest import FAKE_TOKEN, cnn_argv, copy_run, train_cnn_recipe


def files_holding(folder, secret: str) -> list[str]:
    """Every file under folder (binary included: pickles, safetensors) whose bytes contain secret."""
    needle = secret.encode()
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file() and needle in path.read_bytes())


# ----------------------------------------------------------------------------------------------------
# No token on disk or in a log
# ----------------------------------------------------------------------------------------------------


def test_a_token_given_with_hub_token_is_in_no_file_of_the_run_and_no_log(cnn_run):
    output_dir, log = cnn_run
    assert sorted(path.name for path in output_dir.glob("checkpoint-*"))  # checkpoints were searched too
    assert (output_dir / "training_args.bin").is_file()
    assert files_holding(output_dir, FAKE_TOKEN) == []
    assert FAKE_TOKEN not in log


def test_a_token_in_hf_token_is_in_no_file_of_the_run_and_no_log(demo_dir, tmp_path):
    output_dir = tmp_path / "run"
    log = train_cnn_recipe(cnn_argv(demo_dir, output_dir), env={**os.environ, "HF_TOKEN": FAKE_TOKEN})
    assert (output_dir / "all_results.json").is_file()
    assert files_holding(output_dir, FAKE_TOKEN) == []
    assert FAKE_TOKEN not in log


def test_push_to_hub_still_gets_the_token_and_a_token_free_checkpoint_still_resumes(cnn_run, demo_dir, tmp_path, monkeypatch, capfd):
    run_dir = copy_run(cnn_run[0], tmp_path / "run")
    pushed = []

    def push_run(output_dir, repo_id, token, private):  # in place of the upload: no network
        pushed.append((repo_id, token, files_holding(run_dir, FAKE_TOKEN)))

    monkeypatch.setattr(train, "push_run", push_run)
    # Out of conftest's offline mode, which the recipe's checks before training refuse: nothing is sent.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    argv = cnn_argv(demo_dir, run_dir, "--resume_from_checkpoint", "last", "--push_to_hub", "--hub_token", FAKE_TOKEN,
                    "--hub_model_id", "me/cnn-demo")  # fmt: skip
    assert train.train_main(argv, "cnn") == 0
    # the push got the token, and at that moment no file of the run held it
    assert pushed == [("me/cnn-demo", FAKE_TOKEN, [])]
    state = json.loads((run_dir / "trainer_state.json").read_text())
    assert state["global_step"] == 6  # resumed at the end of its 2 epochs x 3 steps: nothing retrained
    assert json.loads((run_dir / "all_results.json").read_text())["test_tracks"] == 16
    captured = capfd.readouterr()
    assert FAKE_TOKEN not in captured.out + captured.err


def test_a_saved_login_token_reaches_the_push_and_no_file_or_log(cnn_run, demo_dir, tmp_path, monkeypatch, capfd):
    """`hf auth login` saves the token in HF_HOME (the tests' own, throw-away); no --hub_token, no HF_TOKEN."""
    run_dir = copy_run(cnn_run[0], tmp_path / "run")
    saved_login = Path(huggingface_hub.constants.HF_TOKEN_PATH)
    assert str(saved_login).startswith(os.environ["HF_HOME"])  # conftest's folder, never the user's login
    pushed = []

    def push_run(output_dir, repo_id, token, private):  # in place of the upload: no network
        pushed.append((repo_id, token, files_holding(run_dir, FAKE_TOKEN)))

    monkeypatch.setattr(train, "push_run", push_run)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    saved_login.parent.mkdir(parents=True, exist_ok=True)
    saved_login.write_text(FAKE_TOKEN)
    try:
        argv = cnn_argv(demo_dir, run_dir, "--resume_from_checkpoint", "last", "--push_to_hub", "--hub_model_id", "me/cnn")
        assert train.train_main(argv, "cnn") == 0
    finally:
        saved_login.unlink()
    assert pushed == [("me/cnn", FAKE_TOKEN, [])]
    assert files_holding(run_dir, FAKE_TOKEN) == []
    captured = capfd.readouterr()
    assert FAKE_TOKEN not in captured.out + captured.err


# ----------------------------------------------------------------------------------------------------
# Code from a model repository runs only with --trust_remote_code
# ----------------------------------------------------------------------------------------------------


def cache_as_hub_repo(run_dir, repo_id, edit_config=None):
    """Put the run's model files into the offline Hugging Face cache as the Hub repository repo_id (the
    layout `hf download` leaves: refs/main naming a snapshot), so that from_pretrained(repo_id) resolves it
    through huggingface_hub exactly as a download, without the network. Every .py file gets a line that
    leaves a mark when Python runs it."""
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for name in ("config.json", "model.safetensors", "preprocessor_config.json"):
        shutil.copy(run_dir / name, snapshot / name)
    for module in run_dir.glob("*.py"):
        marked = f"import os, pathlib\npathlib.Path(os.environ['HF_FMA_CODE_RAN'], {module.stem!r}).touch()\n"
        (snapshot / module.name).write_text(marked + module.read_text())
    if edit_config:
        config = json.loads((snapshot / "config.json").read_text())
        edit_config(config)
        (snapshot / "config.json").write_text(json.dumps(config))
    return repo_id


def demo_track(demo_dir, folder) -> Path:
    """An MP3 of the demo's small archive (not one of its two deliberately bad files)."""
    with zipfile.ZipFile(demo_dir / "fma_small.zip") as archive:
        name = next(n for n in sorted(archive.namelist()) if n.endswith(".mp3") and "071334" not in n and "117902" not in n)
        path = folder / Path(name).name
        path.write_bytes(archive.read(name))
    return path


@pytest.fixture
def code_marks(tmp_path, monkeypatch):
    marks = tmp_path / "code-ran"
    marks.mkdir()
    monkeypatch.setenv("HF_FMA_CODE_RAN", str(marks))
    return marks


def test_hf_fmas_own_classes_load_from_a_hub_repo_without_running_its_code(cnn_run, code_marks):
    repo_id = cache_as_hub_repo(cnn_run[0], "someone/cnn-fma-ours")
    model, feature_extractor = load_classifier(repo_id, device="cpu")
    assert type(model).__module__ == "hf_fma.models.modeling_fma_cnn"  # the installed class, not the repo's copy
    assert type(feature_extractor).__module__ == "hf_fma.models.feature_extraction_fma_ast"
    assert list(code_marks.iterdir()) == []


def test_a_hub_repo_needing_its_own_code_is_refused_without_trust_remote_code(cnn_run, demo_dir, code_marks, capsys):
    def foreign(config):  # a model type hf_fma does not register: only the repository's code defines it
        config["model_type"] = "fma_cnn_fork"

    repo_id = cache_as_hub_repo(cnn_run[0], "someone/cnn-fork", edit_config=foreign)
    audio = demo_track(demo_dir, code_marks.parent)
    assert predict.main([repo_id, str(audio), "--device", "cpu", "--no_progress"]) == 2
    assert "--trust_remote_code" in capsys.readouterr().err
    assert evaluate_main([repo_id, "--data_dir", str(demo_dir), "--device", "cpu"]) == 2
    assert "--trust_remote_code" in capsys.readouterr().err
    assert list(code_marks.iterdir()) == []  # nothing of the repository ran

    assert predict.main([repo_id, str(audio), "--device", "cpu", "--no_progress", "--trust_remote_code"]) == 0
    assert "configuration_fma_cnn" in {mark.name for mark in code_marks.iterdir()}  # asked for: its code ran
