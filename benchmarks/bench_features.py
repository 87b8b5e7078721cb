"""Examples/s of the training input pipelines on this machine, over real-format FMA MP3s.

    python benchmarks/bench_features.py                      # 16 tracks, batch 64, markdown table
    python benchmarks/bench_features.py --threads 2 --output bench_features.json

Paths, each in a fresh single process (no DataLoader workers), on 5 s crops of 30 s, 44.1 kHz stereo,
256 kbps CBR MP3s (the real fma_small 000002.mp3 from ../shared/fma-sample when present, plus tracks
re-encoded from its audio or, without it, synthesized):
  (a) usual: what transformers' audio-classification example does: `datasets.Audio(sampling_rate=16000)`
      decodes and resamples the whole track, a random 5 s crop, `ASTFeatureExtractor` per clip;
  (b) on the fly: `AudioCropTransform` (seek to the crop, decode it only) + `FbankCollator` (batched fbank),
      DataLoader batch 64;
  (c) cached: `build_fbank_cache` once (its build rate is reported too), then `CachedCropTransform`
      + `FbankCollator`, DataLoader batch 64;
  (d) the fbank alone: `BatchedFbank` on a (64, 80000) batch vs `ASTFeatureExtractor` clip by clip;
  (e) MFCC: (b) and (d) with 13 MFCC, deltas and delta-deltas (`FmaASTFeatureExtractor(num_mfcc=13,
      mfcc_delta_order=2)`) instead of the log-mel.
Peak memory is the process's maximum resident set size (imports included; `baseline` is imports only).
Targets: (b) >= 6 x (a), (c) >= 50 x (a), (d) >= 10 x, (e) within 1.1 x of the log-mel's examples/s.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from hf_fma.argparsing import ArgumentParser

REAL_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "fma-sample" / "fma_small" / "000" / "000002.mp3"
CROP_SECONDS = 5.0
MAX_LENGTH = 500  # frames of a 5 s crop (498), as the recipes use
MFCC = {"num_mfcc": 13, "mfcc_delta_order": 2}  # 39 values per frame


def make_tracks(folder: Path, count: int) -> list[str]:
    """`count` 30 s 44.1 kHz stereo 256 kbps MP3s in `folder` (kept between runs), the real sample first."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    if REAL_SAMPLE.is_file():
        paths.append(str(REAL_SAMPLE))
        source, sampling_rate = sf.read(REAL_SAMPLE, dtype="float32")
    else:
        sampling_rate = 44100
        t = np.arange(30 * sampling_rate) / sampling_rate
        rng = np.random.default_rng(0)
        notes = 110 * 2 ** (rng.integers(0, 36, size=120) / 12)  # a note every 0.25 s
        melody = 0.3 * np.sin(2 * np.pi * np.repeat(notes, len(t) // 120 + 1)[: len(t)] * t)
        source = np.stack([melody + 0.05 * rng.standard_normal(len(t)) for _ in range(2)], axis=1).astype(np.float32)
    for index in range(count - len(paths)):
        path = folder / f"{index:06d}.mp3"
        if not path.exists():
            shifted = np.roll(source, (index + 1) * 73_129, axis=0) * (0.6 + 0.4 * (index % 3) / 2)
            with sf.SoundFile(path, "w", sampling_rate, 2, format="MP3", bitrate_mode="CONSTANT",
                              compression_level=0.2) as file:  # 0.2 = 256 kbps, as most FMA files
                file.write(shifted)
        paths.append(str(path))
    return paths


def dataset_of(paths: list[str], examples: int):
    from datasets import Audio, Dataset

    rows = {"track_id": list(range(len(paths))), "audio": paths, "genre": [i % 8 for i in range(len(paths))]}
    dataset = Dataset.from_dict(rows).cast_column("audio", Audio(decode=False))
    return dataset.select(np.resize(np.arange(len(paths)), examples))  # tracks cycled


def examples_per_second(loader, examples: int, batch_size: int) -> float:
    iterator = iter(loader)
    next(iterator)  # warm-up batch, not timed
    start = time.perf_counter()
    timed = sum(len(batch["labels"]) for batch in iterator)
    assert timed == examples - batch_size
    return timed / (time.perf_counter() - start)


def run_usual(paths, examples, batch_size):
    import torch
    from datasets import Audio
    from transformers import ASTFeatureExtractor, default_data_collator

    extractor = ASTFeatureExtractor(max_length=MAX_LENGTH)
    window = int(CROP_SECONDS * extractor.sampling_rate)

    def train_transforms(batch):  # run_audio_classification.py's, with its random_subsample
        crops = []
        for audio in batch["audio"]:
            offset = np.random.randint(0, len(audio["array"]) - window - 1)
            crops.append(audio["array"][offset : offset + window])
        inputs = extractor(crops, sampling_rate=extractor.sampling_rate)
        return {"input_values": inputs["input_values"], "labels": list(batch["genre"])}

    dataset = dataset_of(paths, examples).cast_column("audio", Audio(sampling_rate=extractor.sampling_rate))
    dataset.set_transform(train_transforms)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=default_data_collator)
    return {"examples_per_s": examples_per_second(loader, examples, batch_size)}


def run_on_the_fly(paths, examples, batch_size, mfcc=False):
    import torch

    from hf_fma.transforms import AudioCropTransform, FbankCollator
    from hf_fma.models import FmaASTFeatureExtractor  # without MFCC settings, ASTFeatureExtractor's features

    dataset = dataset_of(paths, examples).with_transform(AudioCropTransform(CROP_SECONDS, policy="random"))
    collator = FbankCollator(FmaASTFeatureExtractor(max_length=MAX_LENGTH, **(MFCC if mfcc else {})))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collator)
    return {"examples_per_s": examples_per_second(loader, examples, batch_size)}


def run_cached(paths, examples, batch_size, cache_dir):
    import torch
    from transformers import ASTFeatureExtractor

    from hf_fma.fbank_cache import CachedCropTransform, build_fbank_cache
    from hf_fma.transforms import FbankCollator

    tracks = dataset_of(paths, len(paths))
    start = time.perf_counter()
    cache_file = Path(cache_dir) / "fbank.arrow"
    cache = build_fbank_cache(tracks, cache_file_name=str(cache_file))
    build_rate = len(paths) / (time.perf_counter() - start)
    dataset = cache.select(np.resize(np.arange(len(paths)), examples))
    dataset.set_transform(CachedCropTransform(CROP_SECONDS, policy="random"))
    collator = FbankCollator(ASTFeatureExtractor(max_length=MAX_LENGTH))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collator)
    return {
        "examples_per_s": examples_per_second(loader, examples, batch_size),
        "cache_build_tracks_per_s": build_rate,
        "cache_bytes_per_track": cache_file.stat().st_size / len(paths),
    }


def run_fbank_alone(paths, examples, batch_size):
    import torch
    from transformers import ASTFeatureExtractor

    from hf_fma.audio import load_crop
    from hf_fma.fbank import BatchedFbank

    extractor = ASTFeatureExtractor(max_length=MAX_LENGTH)
    crops = [load_crop(paths[i % len(paths)], CROP_SECONDS, "even", i % 6, 6) for i in range(batch_size)]
    batch = torch.from_numpy(np.stack(crops))  # (batch, samples)
    results = {}
    fbanks = {
        "float32": BatchedFbank.from_feature_extractor(extractor),
        "float64": BatchedFbank.from_feature_extractor(extractor, dtype=torch.float64),
        "mfcc": BatchedFbank(max_length=MAX_LENGTH, **MFCC),  # float32, as the log-mel one
    }
    timings = {name: [] for name in fbanks}
    for fbank in fbanks.values():
        fbank(batch)  # warm-up
    for _ in range(5):  # interleaved, so that a busy moment of the machine hits every variant alike
        for name, fbank in fbanks.items():
            start = time.perf_counter()
            fbank(batch)
            timings[name].append(time.perf_counter() - start)
    for name in fbanks:
        results[f"batched_{name}_clips_per_s"] = batch_size / min(timings[name])
    timings = []
    for _ in range(3):  # the best pass, as for BatchedFbank: what the code can do, not what the machine let it
        start = time.perf_counter()
        for crop in crops:
            extractor(crop, sampling_rate=extractor.sampling_rate)
        timings.append(time.perf_counter() - start)
    results["per_clip_clips_per_s"] = batch_size / min(timings)
    return results


def run_baseline(paths, examples, batch_size):
    import datasets  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    import hf_fma.transforms  # noqa: F401

    return {}


def _child(name, threads, *args):
    """Runs one path in this (fresh) process; returns its results and peak resident memory."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    np.random.seed(0)
    torch.manual_seed(0)
    results = PATHS[name](*args)
    results["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return results


def run_on_the_fly_mfcc(paths, examples, batch_size):
    return run_on_the_fly(paths, examples, batch_size, mfcc=True)


PATHS = {
    "baseline": run_baseline,
    "usual": run_usual,
    "on_the_fly": run_on_the_fly,
    "on_the_fly_mfcc": run_on_the_fly_mfcc,
    "cached": run_cached,
    "fbank_alone": run_fbank_alone,
}


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=16, help="distinct MP3 files (the real sample included)")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--usual_examples", type=int, default=256)
    parser.add_argument("--on_the_fly_examples", type=int, default=640)
    parser.add_argument("--cached_examples", type=int, default=6400)
    # One thread: "one process" on one core, like the numpy path (a); DataLoader workers also run one
    # thread each. torch's default (all cores) thrashes when other processes share the cores.
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")

    parser.add_argument("--work_dir", type=Path, default=Path(tempfile.gettempdir()) / "hf-fma-bench-features")
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    for name in ("usual_examples", "on_the_fly_examples", "cached_examples"):
        if getattr(args, name) <= args.batch_size:  # the first batch is a warm-up, not timed
            parser.error(f"--{name} must be more than --batch_size ({args.batch_size}): the first batch is not timed")

    paths = make_tracks(args.work_dir / "mp3", args.tracks)
    cache_dir = tempfile.mkdtemp(prefix="fbank-cache-", dir=args.work_dir)
    os.environ.setdefault("HF_DATASETS_CACHE", str(Path(cache_dir) / "datasets"))
    if args.threads:  # numpy's BLAS (the extractor's mel product) too, read when the children import numpy
        for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[variable] = str(args.threads)
    load_before = os.getloadavg()[0]
    jobs = {
        "baseline": (paths, 0, args.batch_size),
        "usual": (paths, args.usual_examples, args.batch_size),
        "on_the_fly": (paths, args.on_the_fly_examples, args.batch_size),
        "on_the_fly_mfcc": (paths, args.on_the_fly_examples, args.batch_size),
        "cached": (paths, args.cached_examples, args.batch_size, cache_dir),
        "fbank_alone": (paths, args.batch_size, args.batch_size),
    }
    results = {}
    context = multiprocessing.get_context("spawn")
    for name, job_args in jobs.items():
        with context.Pool(1) as pool:
            results[name] = pool.apply(_child, (name, args.threads, *job_args))
        print(f"{name}: {results[name]}", flush=True)
    shutil.rmtree(cache_dir, ignore_errors=True)

    usual = results["usual"]["examples_per_s"]
    fbank = results["fbank_alone"]
    rows = [
        ("(a) usual: full decode + resample, ASTFeatureExtractor per clip", usual, 1.0, results["usual"]),
        ("(b) on the fly: window decode + batched fbank", results["on_the_fly"]["examples_per_s"],
         results["on_the_fly"]["examples_per_s"] / usual, results["on_the_fly"]),
        ("(c) cached fbank, crops from frames", results["cached"]["examples_per_s"],
         results["cached"]["examples_per_s"] / usual, results["cached"]),
        ("(e) on the fly, 13 MFCC + deltas + delta-deltas", results["on_the_fly_mfcc"]["examples_per_s"],
         results["on_the_fly_mfcc"]["examples_per_s"] / usual, results["on_the_fly_mfcc"]),
    ]
    print(f"\nmachine: {os.cpu_count()} cores, torch threads {args.threads or 'default'}, "
          f"load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after; batch {args.batch_size}, "
          f"{CROP_SECONDS:g} s crops of 30 s 44.1 kHz stereo 256 kbps MP3s ({len(paths)} files)\n")
    print("| path | examples/s | vs (a) | peak RSS MiB |")
    print("| --- | ---: | ---: | ---: |")
    for label, rate, ratio, result in rows:
        print(f"| {label} | {rate:.1f} | {ratio:.1f}x | {result['peak_rss_mib']:.0f} |")
    print(f"| baseline (imports only) | | | {results['baseline']['peak_rss_mib']:.0f} |")
    print(f"\ncache build: {results['cached']['cache_build_tracks_per_s']:.1f} tracks/s, "
          f"{results['cached']['cache_bytes_per_track'] / 2**20:.2f} MiB per 30 s track (float16)")
    per_clip = fbank["per_clip_clips_per_s"]
    print(f"fbank alone, clips/s: ASTFeatureExtractor per clip {per_clip:.0f}; BatchedFbank float32 "
          f"{fbank['batched_float32_clips_per_s']:.0f} ({fbank['batched_float32_clips_per_s'] / per_clip:.1f}x), "
          f"float64 {fbank['batched_float64_clips_per_s']:.0f} ({fbank['batched_float64_clips_per_s'] / per_clip:.1f}x)")
    log_mel, mfcc = fbank["batched_float32_clips_per_s"], fbank["batched_mfcc_clips_per_s"]
    on_the_fly, on_the_fly_mfcc = results["on_the_fly"]["examples_per_s"], results["on_the_fly_mfcc"]["examples_per_s"]
    print(f"MFCC against log-mel (target: within 1.1x): BatchedFbank {mfcc:.0f} against {log_mel:.0f} clips/s "
          f"({log_mel / mfcc:.3f}x slower); on the fly {on_the_fly_mfcc:.1f} against {on_the_fly:.1f} examples/s "
          f"({on_the_fly / on_the_fly_mfcc:.3f}x)")
    if args.output:
        args.output.write_text(json.dumps({"threads": args.threads, "load_average_before": load_before,
                                           "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
