"""Training examples per second of hf-fma's data path against the usual one, same Trainer, same tiny AST.

    python benchmarks/bench_training.py                          # makes the demo FMA in a temporary folder
    python benchmarks/bench_training.py --data_dir demo_data --epochs 5 --num_workers 1 --threads 1
    python benchmarks/bench_training.py --clip_seconds 30        # demo clips as long as FMA's (30 s)

Both runs train the "tiny" AST preset of hf_fma/configs/ast_demo.yaml (3 s crops pooled 2 x 2, batch 16)
on the demo's training split for `--epochs` epochs with the same `Trainer` and `TrainingArguments`; only
the data path differs:
- hf-fma: the audio column cast with `Audio(decode=False)`, `AudioCropTransform` decoding only a random
  crop (seek, mono, soxr) in `set_transform`, and `FbankCollator` computing the fbank of whole batches;
- usual (transformers' examples/pytorch/audio-classification/run_audio_classification.py): the column
  cast with `Audio(sampling_rate=16000)` so every access decodes and resamples the whole file, a random
  crop cut from it, and the feature extractor called per example in `set_transform` (numpy Kaldi fbank).
The feature extractor is the same object (FmaASTFeatureExtractor, an ASTFeatureExtractor subclass), so the
model sees the same input shape. Reported: Trainer's `train_samples_per_second` (whole run: data loading,
forward, backward, optimizer) and the 1-minute load average before each run, since other processes on the
machine slow both down.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from datasets import Audio
from transformers import Trainer, TrainingArguments

from hf_fma.argparsing import ArgumentParser
from hf_fma.data import load_fma
from hf_fma.demo import make_demo
from hf_fma.evaluation import with_crop_transform
from hf_fma.transforms import AudioCropTransform, FbankCollator
from hf_fma.geometry import crop_frames
from hf_fma.models import build_model
from hf_fma.models.feature_extraction_fma_ast import FmaASTFeatureExtractor

CROP_SECONDS = 3.0
BATCH_SIZE = 16


class UsualTrainTransform:
    """run_audio_classification.py's train_transforms: a random crop of the decoded array, then the
    feature extractor on the batch's crops (one numpy fbank per example)."""

    def __init__(self, feature_extractor, crop_seconds: float, seed: int = 0):
        self.feature_extractor = feature_extractor
        self.crop_samples = round(crop_seconds * feature_extractor.sampling_rate)
        self.rng = np.random.default_rng(seed)

    def __call__(self, batch):
        crops = []
        for audio in batch["audio"]:
            array = audio["array"]
            start = self.rng.integers(0, max(1, len(array) - self.crop_samples + 1))
            crops.append(array[start : start + self.crop_samples])
        features = self.feature_extractor(crops, sampling_rate=self.feature_extractor.sampling_rate)
        return {"input_values": features["input_values"], "labels": list(batch["genre"])}


def train_throughput(train_dataset, collator, feature_extractor, label_names, epochs: int, num_workers: int) -> dict:
    torch.manual_seed(0)
    model = build_model("tiny", feature_extractor, label_names)
    with tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=BATCH_SIZE,
            num_train_epochs=epochs,
            learning_rate=3e-3,
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            remove_unused_columns=False,
            dataloader_num_workers=num_workers,
            disable_tqdm=True,
            use_cpu=True,
        )
        load = os.getloadavg()[0]
        trainer = Trainer(model=model, args=args, train_dataset=train_dataset, data_collator=collator)
        metrics = trainer.train().metrics
    return {"examples_per_second": metrics["train_samples_per_second"], "seconds": metrics["train_runtime"], "load": load}


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", type=Path, help="an `hf-fma make-demo` folder (default: a new one, temporary)")
    parser.add_argument("--clip_seconds", type=float, default=10.0, help="length of the demo clips it makes")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--num_workers", type=int, default=1, help="DataLoader workers (both paths)")
    parser.add_argument("--threads", type=int, help="torch threads of the training process (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data_dir or make_demo(Path(scratch) / "demo", clip_seconds=args.clip_seconds)
        train = load_fma("small", data_dir=data_dir, split="train")
        label_names = train.features["genre"].names
        extractor = FmaASTFeatureExtractor(
            max_length=crop_frames(CROP_SECONDS), frequency_downscale=2, time_downscale=2
        )

        ours = with_crop_transform(
            train.cast_column("audio", Audio(decode=False)), AudioCropTransform(CROP_SECONDS, "random")
        )
        usual = train.cast_column("audio", Audio(sampling_rate=extractor.sampling_rate))
        usual.set_transform(UsualTrainTransform(extractor, CROP_SECONDS))

        print(
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread(s); {len(train)} demo training tracks of {np.mean(train['duration']):.0f} s, "
            f"{args.epochs} epochs, batch {BATCH_SIZE}, {args.num_workers} DataLoader worker(s)"
        )
        results = {}
        for name, dataset, collator in (
            ("usual", usual, None),  # Trainer's default collator stacks the extractor's arrays
            ("hf-fma", ours, FbankCollator(extractor)),
        ):
            started = time.perf_counter()
            results[name] = train_throughput(dataset, collator, extractor, label_names, args.epochs, args.num_workers)
            print(
                f"{name:>7}: {results[name]['examples_per_second']:6.1f} examples/s "
                f"({results[name]['seconds']:.1f} s training, {time.perf_counter() - started:.1f} s in all; "
                f"load average {results[name]['load']:.1f})"
            )
        print(f"speed-up: {results['hf-fma']['examples_per_second'] / results['usual']['examples_per_second']:.2f}x")


if __name__ == "__main__":
    main()
