"""The recipes' entry point: training, then hf-fma's own Hub push when --push_to_hub is given."""

import huggingface_hub
import pytest

from hf_fma import train

from .conftest import REPO_ROOT

AST_DEMO = str(REPO_ROOT / "hf_fma" / "configs" / "ast_demo.yaml")


@pytest.fixture
def fake_training(monkeypatch):
    """run_training replaced by a recorder: these tests are about what happens around it."""
    calls = []

    def run_training(model_args, data_args, training_args):
        calls.append(training_args)
        return {"test_track_accuracy": 0.5, "test_track_macro_f1": 0.4, "test_tracks": 16, "test_crops": 3,
                "test_clip_accuracy": 0.5, "validation_track_accuracy": 0.6}  # fmt: skip

    monkeypatch.setattr(train, "run_training", run_training)
    return calls


@pytest.fixture
def online(monkeypatch):
    """huggingface_hub out of the offline mode conftest sets, so that the push checks reach the token."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


def test_push_to_hub_without_a_token_fails_before_training(fake_training, online, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("hf_fma.hub_checks.get_token", lambda: None)
    argv = ["--config", AST_DEMO, "--output_dir", str(tmp_path / "run"), "--push_to_hub"]
    assert train.train_main(argv, "ast") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no Hugging Face token" in err and "hf auth login" in err  # no traceback
    assert fake_training == []


@pytest.mark.parametrize("hub_model_id, fix", [("not a repo id!!", "is not a repository id"), ("me/ast-demo", "HF_HUB_OFFLINE")])
def test_push_to_hub_that_cannot_happen_fails_before_training(hub_model_id, fix, fake_training, tmp_path, capsys):
    argv = ["--config", AST_DEMO, "--output_dir", str(tmp_path / "run"), "--push_to_hub", "--hub_model_id", hub_model_id,
            "--hub_token", "hf_test"]  # fmt: skip
    assert train.train_main(argv, "ast") == 2  # conftest's HF_HUB_OFFLINE=1 stops the valid id
    assert fix in capsys.readouterr().err
    assert fake_training == []


def test_push_to_hub_publishes_the_finished_run_with_hf_fma_not_trainer(fake_training, online, monkeypatch, tmp_path, capsys):
    pushed = []
    monkeypatch.setattr(train, "push_run", lambda run_dir, repo_id, token, private: pushed.append((run_dir, repo_id, token, private)))
    output_dir = str(tmp_path / "run")
    argv = ["--config", AST_DEMO, "--output_dir", output_dir, "--push_to_hub", "--hub_model_id", "me/ast-demo",
            "--hub_token", "hf_test", "--hub_private_repo", "true"]  # fmt: skip
    assert train.train_main(argv, "ast") == 0
    # Trainer itself must not push (every checkpoint, with its generic card): the recipe does, once.
    assert fake_training[0].push_to_hub is False
    assert pushed == [(output_dir, "me/ast-demo", "hf_test", True)]
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("test: track accuracy 0.5000")

