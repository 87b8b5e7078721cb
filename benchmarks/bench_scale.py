"""How hf-fma's data paths grow with the number of tracks, and what extra processes buy.

    python benchmarks/bench_scale.py                                     # 1,000 / 4,000 / 16,000 tracks
    python benchmarks/bench_scale.py --sizes 200 800 --predict_files 16  # a quick check (a few minutes)
    python benchmarks/bench_scale.py --sizes 1000 --num_proc 1 2 4 --output bench_scale.json

On synthetic FMA trees in the extracted layout (`fma_metadata/tracks.csv`, `genres.csv` and
`fma_large/NNN/NNNNNN.mp3`): `--sizes` tracks of 30 s 44.1 kHz stereo MP3, track ids spread over the
archive's 3-digit folders as in the real one. The audio files are hard links to a few encoded clips
(`--clips`), so a 16,000-track tree takes a few MB of disk; they stay in the page cache, so the figures are
CPU costs, not disk reads. tracks.csv holds the demo's rows (`hf_fma.demo`) repeated under new ids, with
the real file's 52 columns and three header lines. Measured, each in fresh processes:
  - preparation: `hf_fma.load_fma("large", num_proc=N)` into an empty cache (tracks.csv parsed, every
    file opened and its first second decoded), seconds per track, for each `--num_proc`;
  - streaming: the train split read by `--stream_processes` processes at once, each its share of the
    shards (`IterableDataset.shard`, as accelerate splits a stream), audio undecoded: examples/s over all
    processes and the share of the split's bytes each one read;
  - predict: `hf_fma.predict.predict_files` of `--predict_files` 30 s MP3s (each its own path: predict
    classifies a path once) with the tiny AST, batch 8, one torch thread, for each `--predict_workers`
    (decoding processes): files/s.
Targets: per-track preparation at the largest size within 1.2x of the smallest; num_proc 2 >= 1.6x
num_proc 1; each of 2 streaming processes reads <= 55% of the bytes; predict with 2 workers >= 1.6x 0.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench_predict import MAX_LENGTH, build, write_mp3

from hf_fma.argparsing import ArgumentParser

CLIP_SECONDS = 30.0
FOLDERS = 156  # 3-digit folders of fma_large: ids up to 155,320


def make_tree(root: Path, size: int, clips: list[Path]) -> Path:
    """An extracted FMA tree with `size` tracks (kept between runs): ids spread over every folder."""
    from hf_fma.demo.catalogue import genres_csv, plan_tracks, tracks_csv
    from hf_fma.metadata import audio_path

    data_dir = root / f"fma-{size}"
    if (data_dir / "fma_metadata" / "tracks.csv").exists():
        return data_dir
    planned = [track for track in plan_tracks(0) if track.kind == "valid"]
    step = FOLDERS * 1000 // size
    tracks = [dataclasses.replace(planned[i % len(planned)], track_id=2 + i * step) for i in range(size)]
    for track in tracks:
        path = data_dir / "fma_large" / audio_path(track.track_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.link(clips[track.track_id % len(clips)], path)
    metadata = data_dir / "fma_metadata"
    metadata.mkdir(parents=True, exist_ok=True)
    (metadata / "genres.csv").write_bytes(genres_csv(tracks))
    (metadata / "tracks.csv").write_bytes(tracks_csv(tracks))  # last: it marks the tree complete
    return data_dir


def run_preparation(data_dir: str, num_proc: int) -> dict:
    from hf_fma import load_fma

    with tempfile.TemporaryDirectory() as cache_dir:
        start = time.perf_counter()
        splits = load_fma("large", data_dir=data_dir, cache_dir=cache_dir, num_proc=num_proc)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "tracks": sum(len(split) for split in splits.values())}


def run_stream_share(data_dir: str, rank: int, processes: int) -> dict:
    from datasets import Audio

    from hf_fma import load_fma

    stream = load_fma("large", data_dir=data_dir, split="train", streaming=True)
    share = stream.cast_column("audio", Audio(decode=False)).shard(num_shards=processes, index=rank)
    examples = read = 0
    start = time.perf_counter()
    for example in share:
        examples += 1
        read += len(example["audio"]["bytes"])
    return {"examples": examples, "bytes": read, "seconds": time.perf_counter() - start, "shards": stream.n_shards}


def run_predict(model_dir: str, files: list[str], workers: int) -> dict:
    import warnings

    from transformers.utils import logging as transformers_logging

    from hf_fma.fbank import EMPTY_MEL_FILTER_WARNING
    from hf_fma.predict import predict_files

    transformers_logging.disable_progress_bar()  # as `hf-fma predict` does: the weight-loading bar, twice
    warnings.filterwarnings("ignore", message=EMPTY_MEL_FILTER_WARNING)

    predict_files(model_dir, files[:2], device="cpu", num_workers=workers)  # warm-up: model load, imports
    start = time.perf_counter()
    results = predict_files(model_dir, files, device="cpu", batch_size=8, num_workers=workers)
    seconds = time.perf_counter() - start
    failed = [f"{result.file}: {result.error}" for result in results if not result.ok]
    if len(results) != len(files) or failed:
        raise RuntimeError(f"predict gave {len(results)} results for {len(files)} files; failed: {failed}")
    return {"files_per_s": len(files) / seconds}


def _child(function, *args):
    import torch

    # A spawned process inherits "spawn" as its start method; back to the platform's default (fork on
    # Linux), as a user's process has, for the DataLoader workers of predict and datasets' num_proc pool.
    multiprocessing.set_start_method(None, force=True)
    torch.set_num_threads(1)
    return function(*args)


def in_fresh_processes(function, argument_lists: list[tuple]) -> list:
    """`function(*arguments)` for each list, all at once, each in its own new process (not a daemon, so
    that it can start DataLoader workers and preparation processes of its own)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(argument_lists), mp_context=context) as pool:
        pending = [pool.submit(_child, function, *arguments) for arguments in argument_lists]
        return [job.result() for job in pending]


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000], help="tracks per tree")
    parser.add_argument("--num_proc", type=int, nargs="+", default=[1, 2], help="preparation processes")
    parser.add_argument("--stream_processes", type=int, nargs="*", default=[1, 2], help="streaming readers")
    parser.add_argument("--predict_workers", type=int, nargs="*", default=[0, 1, 2], help="predict --num_workers")
    parser.add_argument("--predict_files", type=int, default=64, help="30 s MP3s classified per predict run")
    parser.add_argument("--clips", type=int, default=4, help="distinct encoded clips the trees link to")
    parser.add_argument("--work_dir", type=Path, default=Path(tempfile.gettempdir()) / "hf-fma-bench-scale")
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")

    clip_dir = args.work_dir / "clips"
    clip_dir.mkdir(parents=True, exist_ok=True)
    clips = [clip_dir / f"clip{seed}.mp3" for seed in range(args.clips)]
    for seed, clip in enumerate(clips):
        if not clip.exists():
            write_mp3(clip, CLIP_SECONDS, seed)
    load_before = os.getloadavg()
    results = {"sizes": {}, "predict": {}}

    for size in args.sizes:
        data_dir = str(make_tree(args.work_dir, size, clips))
        row = results["sizes"][size] = {}
        for num_proc in args.num_proc:
            [prepared] = in_fresh_processes(run_preparation, [(data_dir, num_proc)])
            row[f"prepare_num_proc_{num_proc}"] = prepared
            print(f"{size} tracks, num_proc {num_proc}: {prepared['seconds']:.1f} s, "
                  f"{1000 * prepared['seconds'] / size:.2f} ms/track", flush=True)
        for processes in args.stream_processes:
            start = time.perf_counter()
            shares = in_fresh_processes(run_stream_share, [(data_dir, rank, processes) for rank in range(processes)])
            wall = time.perf_counter() - start
            row[f"stream_{processes}"] = {"shares": shares, "wall_seconds": wall}
            print(f"{size} tracks, {processes} stream reader(s): {shares}", flush=True)

    model_dir = args.work_dir / "tiny-ast"
    if not (model_dir / "config.json").exists():
        from transformers import ASTFeatureExtractor

        build("tiny").save_pretrained(model_dir)
        ASTFeatureExtractor(max_length=MAX_LENGTH).save_pretrained(model_dir)
    # Hard links, each its own path: predict classifies a path given twice once.
    files = []
    for index in range(args.predict_files):
        link = args.work_dir / "predict" / f"track{index:04d}.mp3"
        if not link.exists():
            link.parent.mkdir(exist_ok=True)
            os.link(clips[index % len(clips)], link)
        files.append(str(link))
    for workers in args.predict_workers:
        [measured] = in_fresh_processes(run_predict, [(str(model_dir), files, workers)])
        results["predict"][workers] = measured
        print(f"predict, {workers} workers: {measured['files_per_s']:.2f} files/s", flush=True)
    load_after = os.getloadavg()

    print(f"\nmachine: {os.cpu_count()} cores; load average (1, 5, 15 min) before {load_before[0]:.1f} "
          f"{load_before[1]:.1f} {load_before[2]:.1f}, after {load_after[0]:.1f} {load_after[1]:.1f} "
          f"{load_after[2]:.1f}; 30 s 44.1 kHz stereo MP3s, one torch thread per process\n")
    print(_table(results, args))
    if args.output:
        args.output.write_text(json.dumps({"load_before": load_before, "load_after": load_after,
                                           "arguments": vars(args) | {"work_dir": str(args.work_dir),
                                                                      "output": str(args.output)},
                                           "results": results}, indent=2) + "\n")
    return 0


def _table(results: dict, args) -> str:
    """Markdown: per size, ms per prepared track for each num_proc (and its speed-up over the first), then
    streamed examples/s and the largest share of the bytes one reader took for each reader count; then
    predict files/s per worker count (and speed-up over the first)."""
    first = args.num_proc[0]
    header = ["tracks"]
    header += [f"prepare ms/track, num_proc {n}" for n in args.num_proc]
    header += [f"num_proc {n} speed-up" for n in args.num_proc[1:]]
    for processes in args.stream_processes:
        header += [f"streamed examples/s, {processes} proc", f"largest share of bytes, {processes} proc"]
    lines = ["| " + " | ".join(header) + " |", "|" + " ---: |" * len(header)]
    for size, row in results["sizes"].items():
        cells = [f"{size:,}"]
        seconds = {n: row[f"prepare_num_proc_{n}"]["seconds"] for n in args.num_proc}
        cells += [f"{1000 * seconds[n] / size:.2f}" for n in args.num_proc]
        cells += [f"{seconds[first] / seconds[n]:.2f}x" for n in args.num_proc[1:]]
        for processes in args.stream_processes:
            shares = row[f"stream_{processes}"]["shares"]
            total_bytes = sum(share["bytes"] for share in shares)
            examples = sum(share["examples"] for share in shares)
            slowest = max(share["seconds"] for share in shares)
            cells += [f"{examples / slowest:.0f}", f"{max(share['bytes'] for share in shares) / total_bytes:.0%}"]
        lines.append("| " + " | ".join(cells) + " |")
    rates = {workers: measured["files_per_s"] for workers, measured in results["predict"].items()}
    baseline = next(iter(rates.values()), None)
    predict = ", ".join(f"{workers} workers {rate:.2f} ({rate / baseline:.2f}x)" for workers, rate in rates.items())
    return "\n".join(lines) + f"\n\npredict files/s ({args.predict_files} 30 s MP3s, tiny AST): {predict}\n"


if __name__ == "__main__":
    sys.exit(main())
