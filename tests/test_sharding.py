"""Scaling past one process: the loading script's shards, parallel preparation (`num_proc`), streams
split across readers and across `torchrun` processes, each reading only its own audio files.

Run: python -m pytest tests/test_sharding.py -q
"""

import json
import logging
import os
import re
import subprocess
import sys
import warnings
import zipfile

import datasets
import pytest

from hf_fma import demo, load_fma, metadata
from hf_fma import hf_fma as builder_module
from hf_fma.arguments import parse_arguments
from hf_fma.data import load_splits

from .conftest import REPO_ROOT

SPLITS = ("train", "validation", "test")
BAD_DEMO_IDS = set(demo.DEMO_CORRUPT_TRACK_IDS) | set(demo.DEMO_SHORT_TRACK_IDS)
OPENED = re.compile(r"reading \S*?(\d{6})\.mp3")  # the builder's debug line for each audio file it opens


@pytest.fixture(scope="module")
def large_split_ids(demo_dir):
    """tracks.csv's large tracks per split, read with pandas here rather than through the builder."""
    with zipfile.ZipFile(demo_dir / "fma_metadata.zip") as archive, archive.open("fma_metadata/tracks.csv") as f:
        tracks = metadata.subset_tracks(metadata.load_tracks(f), "large")
    return {split: set(tracks.index[tracks["set", "split"] == official]) for official, split in metadata.SPLIT_NAMES.items()}


def load(demo_dir, **kwargs):
    return load_fma("large", data_dir=demo_dir, **kwargs)  # the builder, on datasets 3.6 and >= 4 alike


def reported_ids(caught) -> list[set[int]]:
    """The track ids each BadAudioWarning lists, one set per warning."""
    return [
        {int(track_id) for track_id in re.findall(r"(\d{6}): ", str(w.message))}
        for w in caught
        if type(w.message).__name__ == "BadAudioWarning"
    ]


def test_num_proc_prepares_the_same_rows_in_track_id_order_with_one_report_per_split(demo_dir, tmp_path):
    with pytest.warns(UserWarning, match="left out") as serial_warnings:
        serial = load(demo_dir, cache_dir=str(tmp_path / "serial"))
    with pytest.warns(UserWarning, match="left out") as parallel_warnings:
        parallel = load(demo_dir, cache_dir=str(tmp_path / "parallel"), num_proc=2)
    for split in SPLITS:
        rows = serial[split].remove_columns("audio").to_list()
        assert parallel[split].remove_columns("audio").to_list() == rows, split
        assert [row["track_id"] for row in rows] == sorted(row["track_id"] for row in rows), split
    # Each split's bad tracks in one warning, gathered from both preparation processes.
    assert sorted(map(sorted, reported_ids(parallel_warnings))) == sorted(map(sorted, reported_ids(serial_warnings)))
    assert set().union(*reported_ids(parallel_warnings)) == BAD_DEMO_IDS


def test_preprocessing_num_workers_prepares_the_dataset_in_that_many_processes(demo_dir, large_split_ids, tmp_path, monkeypatch):
    """The recipes' --preprocessing_num_workers reaches the builder's num_proc: the training split's files
    are probed by two processes other than this one, each file once. (Each probe appends its process id to
    a file: the preparation processes are forked, so they carry the patch.)"""
    probes = tmp_path / "probes.txt"
    open_audio = builder_module._open_audio

    def open_audio_noting_the_process(audio_folder, track_id, streaming):
        with open(probes, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {track_id}\n")
        return open_audio(audio_folder, track_id, streaming)

    monkeypatch.setattr(builder_module, "_open_audio", open_audio_noting_the_process)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))  # prepared here, anew
    _, data_args, _ = parse_arguments([
        "--config", str(REPO_ROOT / "hf_fma" / "configs" / "ast_demo.yaml"), "--data_dir", str(demo_dir),
        "--dataset_config_name", "large", "--output_dir", str(tmp_path / "run"), "--preprocessing-num-workers", "2",
    ])  # fmt: skip
    with warnings.catch_warnings():  # the demo's bad tracks
        warnings.filterwarnings("ignore", message=".*left out", category=UserWarning)
        load_splits(data_args.dataset_config_name, data_dir=data_args.data_dir, num_proc=data_args.preprocessing_num_workers)
    processes_of = {}
    for line in probes.read_text(encoding="utf-8").splitlines():
        pid, track_id = map(int, line.split())
        processes_of.setdefault(track_id, []).append(pid)
    train_processes = {pid for track_id in large_split_ids["train"] for pid in processes_of[track_id]}
    assert len(train_processes) == 2 and os.getpid() not in train_processes
    assert all(len(processes_of[track_id]) == 1 for track_id in large_split_ids["train"])


def test_two_stream_readers_open_disjoint_files_covering_the_split(demo_dir, large_split_ids, caplog):
    with warnings.catch_warnings():  # the split's BadAudioWarning, when this session prepares it first
        warnings.filterwarnings("ignore", message=".*left out", category=UserWarning)
        prepared = set(load(demo_dir, split="train")["track_id"])
    stream = load(demo_dir, split="train", streaming=True)
    assert stream.n_shards > 2
    opened, yielded, reported = [], [], []
    for index in range(2):  # the share of each of 2 processes, as accelerate cuts a stream
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="hf_fma.hf_fma"), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yielded.append({example["track_id"] for example in stream.shard(num_shards=2, index=index)})
        opened.append({int(track_id) for track_id in OPENED.findall(caplog.text)})
        reported.append(set().union(*reported_ids(caught)))
    assert opened[0] and opened[1] and not opened[0] & opened[1]
    assert opened[0] | opened[1] == large_split_ids["train"]
    assert not yielded[0] & yielded[1] and yielded[0] | yielded[1] == prepared
    # Each reader reports the bad tracks of its own shards; together, the split's.
    assert reported[0] | reported[1] == BAD_DEMO_IDS & large_split_ids["train"]


def test_torchrun_streaming_processes_read_disjoint_files_and_train(demo_dir, large_split_ids, tmp_path):
    output_dir, log_dir = tmp_path / "run", tmp_path / "logs"
    command = [
        # --standalone: the rendezvous store binds a port the system picks, where a port found free beforehand
        # can be taken by another program (other tests under load) before torchrun binds it.
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "--log_dir", str(log_dir), "--redirects", "3",  # each process's stdout and stderr in files of their own
        str(REPO_ROOT / "recipes" / "train_ast.py"), "--config", str(REPO_ROOT / "hf_fma" / "configs" / "ast_demo.yaml"),
        "--data_dir", str(demo_dir), "--dataset_config_name", "large", "--output_dir", str(output_dir),
        "--use_cpu", "--streaming", "--max_steps", "10", "--per_device_train_batch_size", "8",  # > 1 epoch
        "--eval_strategy", "steps", "--eval_steps", "5", "--logging_strategy", "steps", "--logging_steps", "5",
        "--save_strategy", "no", "--load_best_model_at_end", "false",
        "--log_level", "debug", "--log_level_replica", "debug",  # the builder logs each audio file it opens
    ]  # fmt: skip
    completed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    logs = [sorted(log_dir.rglob(f"attempt_0/{rank}/stdout.log")) for rank in (0, 1)]
    # A failing process's traceback is in its stderr.log: torchrun's own stderr only says which rank failed.
    outputs = "".join(f"\n--- {path.relative_to(log_dir)}:\n{path.read_text()[-3000:]}" for path in sorted(log_dir.rglob("*.log")))
    assert completed.returncode == 0, f"torchrun exited {completed.returncode}:\n{completed.stderr[-3000:]}{outputs}"
    opened = [{int(track_id) for path in paths for track_id in OPENED.findall(path.read_text())} for paths in logs]
    # Training (over an epoch of each share) and the final evaluation of test read disjoint shares of their
    # splits; Trainer's validation reads the whole validation stream in each process (equal batches to gather).
    for split in ("train", "test"):
        shares = [ids & large_split_ids[split] for ids in opened]
        assert shares[0] and shares[1] and not shares[0] & shares[1], split
        assert shares[0] | shares[1] == large_split_ids[split], split
    evaluation = json.loads((output_dir / "evaluation_test.json").read_text())
    with warnings.catch_warnings():  # the split's BadAudioWarning, when this session prepares it first
        warnings.filterwarnings("ignore", message=".*left out", category=UserWarning)
        test = load(demo_dir, split="test")
    assert evaluation["num_tracks"] == sum(1 for genre in test["genre"] if genre >= 0)
