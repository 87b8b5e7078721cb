"""Files per second of `predict_files` on 30 s MP3 clips and 5-minute MP3 tracks, tiny and base-size AST,
batch 1 and batched.

    python benchmarks/bench_predict.py                                   # the README's figures
    python benchmarks/bench_predict.py --models tiny --clips 4 --tracks 1 --batch_sizes 1 8 --threads 1

Inputs are generated (44.1 kHz stereo MP3 at soundfile's default bit rate, music-like: chords and noise),
so the figures need no data. Models have random weights; their cost does not depend on them:
- tiny: the "tiny" AST preset (hidden 32, 2 layers), where decoding and fbank dominate;
- base: ASTConfig's defaults (the AudioSet AST's architecture: hidden 768, 12 layers, 86 M parameters).
Both take 5 s crops (ASTFeatureExtractor max_length=500), so a 30 s clip is 6 windows and a 5-minute
track 60. Each setting runs once after a one-window warm-up; the time covers decoding, resampling, fbank
and the forward passes of all files (the model is loaded beforehand). Each row shows the 1-minute load
average when it started: torch's threads slow down several-fold when other processes compete for cores.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

from hf_fma.argparsing import ArgumentParser
from hf_fma.metadata import SMALL_GENRES
from hf_fma.models.ast import build_ast, label_maps
from hf_fma.predict import iter_predictions

MAX_LENGTH = 500  # frames: 5 s crops


def build(name: str) -> ASTForAudioClassification:
    if name == "tiny":
        return build_ast("tiny", 128, MAX_LENGTH, SMALL_GENRES)
    if name == "base":
        return ASTForAudioClassification(ASTConfig(num_mel_bins=128, max_length=MAX_LENGTH, **label_maps(SMALL_GENRES)))
    raise ValueError(f"unknown model {name!r}; valid models: tiny, base")


def write_mp3(path: Path, seconds: float, seed: int, sampling_rate: int = 44100) -> Path:
    """Chords changing every half second plus noise, stereo, written in 30 s blocks to bound memory."""
    rng = np.random.default_rng(seed)
    with sf.SoundFile(path, "w", samplerate=sampling_rate, channels=2, format="MP3") as out:
        for block_start in np.arange(0, seconds, 30.0):
            time_ = block_start + np.arange(round(min(30.0, seconds - block_start) * sampling_rate)) / sampling_rate
            notes = rng.uniform(110, 1760, size=(61, 3))[((time_ - block_start) * 2).astype(int)]  # (samples, 3)
            mono = np.sin(2 * np.pi * notes * time_[:, None]).sum(axis=1) / 6 + 0.02 * rng.standard_normal(len(time_))
            out.write(np.stack([mono, 0.8 * mono], axis=1).astype(np.float32))  # (samples, 2)
    return path


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "base"], choices=["tiny", "base"])
    parser.add_argument("--clips", type=int, default=8, help="30 s MP3 clips (default: 8)")
    parser.add_argument("--tracks", type=int, default=2, help="5-minute MP3 tracks (default: 2)")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's, one per core)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    feature_extractor = ASTFeatureExtractor(max_length=MAX_LENGTH)
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        folder = Path(tmp)
        print("writing test audio ...", flush=True)
        sets = {
            "30 s MP3": [write_mp3(folder / f"clip{i}.mp3", 30.0, seed=i) for i in range(args.clips)],
            "5 min MP3": [write_mp3(folder / f"track{i}.mp3", 300.0, seed=100 + i) for i in range(args.tracks)],
        }
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"torch {torch.__version__} with {torch.get_num_threads()} threads, no GPU used")
        # Load average beside each row: on a shared machine other processes slow torch's threads a lot.
        print("| model | files | batch | files/s | s/file | windows/s | load avg |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        for name in args.models:
            model = build(name).eval()
            list(iter_predictions(model, feature_extractor, sets["30 s MP3"][:1], max_windows=1))  # warm-up
            for set_name, files in sets.items():
                for batch_size in args.batch_sizes:
                    load = os.getloadavg()[0]
                    start = time.perf_counter()
                    results = list(iter_predictions(model, feature_extractor, files, batch_size=batch_size))
                    seconds = time.perf_counter() - start
                    failed = [result.file for result in results if not result.ok]
                    if failed:
                        raise RuntimeError(f"benchmark inputs failed to decode: {failed}")
                    windows = sum(result.windows for result in results)
                    print(f"| {name} | {len(files)} x {set_name} | {batch_size} | {len(files) / seconds:.3g} | "
                          f"{seconds / len(files):.3g} | {windows / seconds:.3g} | {load:.1f} |", flush=True)


if __name__ == "__main__":
    main()
