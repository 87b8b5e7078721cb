"""What a plain `pip install` gets: the package's declared dependencies, a torchcodec that may not load,
and a dataset cache that another datasets version may share. (The fresh-environment install itself is
`scripts/check_plain_install.sh`, run by CI.)"""

import ast
import importlib.metadata
import json
import re
import sys
import tomllib
from pathlib import Path

import datasets
import pytest
from datasets import Audio

from hf_fma import load_fma
from hf_fma.environment import environment_report

REPO_ROOT = Path(__file__).resolve().parents[1]
MISSING_LIBRARY = "libnvrtc.so.13: cannot open shared object file: No such file or directory"


@pytest.fixture
def broken_torchcodec(tmp_path, monkeypatch):
    """An installed torchcodec that fails to load, as PyPI's CUDA build of torchcodec 0.17 does beside the
    CPU torch: its import raises OSError about a missing CUDA library."""
    site = tmp_path / "site"
    (site / "torchcodec").mkdir(parents=True)
    (site / "torchcodec" / "__init__.py").write_text(
        f"raise OSError('Could not load this library: libtorchcodec_core.so') from OSError({MISSING_LIBRARY!r})\n"
    )
    (site / "torchcodec-0.17.0.dist-info").mkdir()
    (site / "torchcodec-0.17.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: torchcodec\nVersion: 0.17.0\n")
    monkeypatch.syspath_prepend(str(site))
    for name in [name for name in sys.modules if name.split(".")[0] == "torchcodec"]:
        monkeypatch.delitem(sys.modules, name)
    # datasets >= 4 looks for torchcodec once, at import: it now finds it (3.x never uses it).
    monkeypatch.setattr(datasets.config, "TORCHCODEC_AVAILABLE", True, raising=False)


def test_preparing_and_streaming_need_no_torchcodec(broken_torchcodec, demo_dir, tmp_path):
    prepared = load_fma("small", data_dir=demo_dir, cache_dir=tmp_path / "cache", split="train")
    streamed = load_fma("small", data_dir=demo_dir, split="train", streaming=True)
    prepared_rows = list(prepared.cast_column("audio", Audio(decode=False)))
    streamed_rows = list(streamed.cast_column("audio", Audio(decode=False)))
    assert [row["track_id"] for row in streamed_rows] == [row["track_id"] for row in prepared_rows]
    assert prepared_rows and all(Path(row["audio"]["path"]).is_file() for row in prepared_rows)
    # Streaming reads the zip's members: the bytes are the MP3 file the prepared row points at.
    first = Path(prepared_rows[0]["audio"]["path"]).read_bytes()
    assert streamed_rows[0]["audio"]["bytes"] == first


def test_env_says_torchcodec_does_not_load_and_how_to_fix_it(broken_torchcodec):
    line = dict(environment_report())["torchcodec"]
    assert "\n" not in line
    assert line.startswith("0.17.0, does not load") and MISSING_LIBRARY.split(":")[0] in line
    assert re.search(r'pip install "torchcodec==[0-9.]+"|pip install the torchcodec release', line)


def test_a_cache_from_another_datasets_major_version_is_prepared_again(demo_dir, tmp_path, monkeypatch):
    """Two datasets versions sharing one cache: each major version writes feature types the others may not
    know (datasets 5's `List` on 3.6: "Feature type 'List' not found")."""
    cache_dir = tmp_path / "cache"
    with monkeypatch.context() as other_version:
        other_version.setattr(datasets, "__version__", "99.0.0")
        foreign = load_fma("small", data_dir=demo_dir, cache_dir=cache_dir, split="test")
    foreign_folder = Path(foreign.cache_files[0]["filename"]).parent
    info_path = foreign_folder / "dataset_info.json"
    info = json.loads(info_path.read_text())
    info["features"]["genres"]["_type"] = "FeatureTypeOfVersion99"
    info_path.write_text(json.dumps(info))

    test = load_fma("small", data_dir=demo_dir, cache_dir=cache_dir, split="test")
    assert Path(test.cache_files[0]["filename"]).parent != foreign_folder
    assert test["track_id"] == foreign["track_id"]


def _imported_top_level_modules(folder: Path) -> set[str]:
    modules = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"hf_fma"}


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_imported_package_is_declared():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    declared = {_requirement_name(r) for r in project["dependencies"]}
    declared |= {_requirement_name(r) for extra in project["optional-dependencies"].values() for r in extra}
    distributions = importlib.metadata.packages_distributions()
    undeclared = {
        module: distributions[module]
        for module in _imported_top_level_modules(REPO_ROOT / "hf_fma")
        if not {name.lower().replace("_", "-") for name in distributions[module]} & declared
    }
    assert not undeclared
