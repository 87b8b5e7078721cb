"""Shared test set-up: no network, throw-away caches, fixed seeds, and the offline FMA fixtures.

The environment is set at import time, before any test module imports `datasets` or `transformers`,
because both read their cache locations and offline flags when first imported.
"""

import base64
import csv
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_CACHE_ROOT = Path(tempfile.mkdtemp(prefix="hf-fma-tests-"))
os.environ.update(
    HF_HUB_OFFLINE="1",
    HF_DATASETS_OFFLINE="1",
    HF_HOME=str(_CACHE_ROOT / "hf"),
    HF_DATASETS_CACHE=str(_CACHE_ROOT / "datasets"),
    HF_MODULES_CACHE=str(_CACHE_ROOT / "modules"),
    TOKENIZERS_PARALLELISM="false",
    WANDB_DISABLED="true",
)
# A user's token must never be read, let alone used, by the tests.
os.environ.pop("HF_TOKEN", None)

import httpx2  # noqa: E402
import huggingface_hub  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from huggingface_hub import set_client_factory  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
# Real FMA files vendored in the repository (tests/data/README.md gives their source and licences).
FMA_SAMPLE = Path(__file__).resolve().parent / "data" / "fma-sample"


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency; keeps metadata tests importable
        return
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def fma_sample() -> Path:
    """Real FMA files in the official layout: tracks.csv records, genres.csv and a 10 s excerpt of track 2."""
    return FMA_SAMPLE


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """The offline demo FMA (`hf-fma make-demo`): official archive layout, synthesized genres."""
    from hf_fma.demo import make_demo

    return make_demo(tmp_path_factory.mktemp("fma-demo"))


def with_cell(tracks_csv: Path, destination: Path, track_id: int, column: tuple[str, str], value: str) -> Path:
    """tracks.csv with one cell changed, written as pandas writes it (QUOTE_MINIMAL, `\\n` line ends)."""
    rows = list(csv.reader(io.StringIO(tracks_csv.read_text(encoding="utf-8"))))
    index = next(i for i, (group, name) in enumerate(zip(rows[0], rows[1])) if (group, name) == column)
    next(row for row in rows[3:] if row[0] == str(track_id))[index] = value
    with open(destination, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return destination


# ----------------------------------------------------------------------------------------------------
# Finished runs, shared by the tests of cards, the Hub and the run folder
# ----------------------------------------------------------------------------------------------------


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


CNN_DEMO = REPO_ROOT / "hf_fma" / "configs" / "cnn_demo.yaml"
FAKE_TOKEN = "hf_FAKEtokenNEVERwrittenQx7Zr2Lp9Vd"
TINY = [
    "--crop_seconds", "1", "--eval_crops", "2", "--max_train_samples", "24", "--max_eval_samples", "16",
    "--num_train_epochs", "2", "--per_device_train_batch_size", "8", "--learning_rate", "3e-3",
    "--dataloader_num_workers", "0", "--dataloader_persistent_workers", "false", "--disable_tqdm", "true",
]  # fmt: skip


def cnn_argv(demo_dir, output_dir, *extra):
    return ["--config", str(CNN_DEMO), "--data_dir", str(demo_dir), "--output_dir", str(output_dir), *TINY, *extra]


def train_cnn_recipe(argv, env=None) -> str:
    """`python recipes/train_cnn.py ARGV` in a fresh process; its stdout and stderr."""
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "recipes" / "train_cnn.py"), *argv],
        capture_output=True, text=True, cwd=REPO_ROOT, env=env,
    )  # fmt: skip
    if result.returncode != 0:
        raise AssertionError(f"train_cnn.py failed:\n{result.stderr[-4000:]}")
    return result.stdout + result.stderr


@pytest.fixture(scope="session")
def cnn_run(demo_dir, tmp_path_factory):
    """A finished CNN run trained with `--hub_token FAKE_TOKEN`, and everything the recipe printed."""
    output_dir = tmp_path_factory.mktemp("cnn-run")
    log = train_cnn_recipe(cnn_argv(demo_dir, output_dir, "--hub_token", FAKE_TOKEN))
    return output_dir, log


def copy_run(run_dir, destination):
    shutil.copytree(run_dir, destination)
    return destination


# ----------------------------------------------------------------------------------------------------
# An in-memory Hub behind huggingface_hub
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
