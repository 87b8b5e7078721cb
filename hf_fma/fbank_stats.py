"""Normalisation statistics: the mean and std of the raw log-mel fbank over a training split
(`compute_fbank_stats`), and `hf-fma stats`, which saves them as the feature extractor training loads.

    hf-fma stats --data_dir DIR --dataset_config_name small --output_dir runs/stats-small
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from hf_fma.argparsing import ArgumentParser
from hf_fma.fbank import BatchedFbank
from hf_fma.geometry import SAMPLING_RATE
from hf_fma.transforms import AudioCropTransform


class _FbankMoments:
    """DataLoader collate function: whole tracks -> (values, sum, sum of squares) of their log-mel, in
    float64, so the DataLoader workers do the decoding and the fbank."""

    def __init__(self, fbank: BatchedFbank):
        self.fbank = fbank

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        moments = torch.zeros(3, dtype=torch.float64)
        for row in rows:
            log_mel = self.fbank.log_mel(torch.from_numpy(row["waveform"])[None])[0].double()  # (frames, mel)
            moments += torch.stack([torch.tensor(log_mel.numel()), log_mel.sum(), log_mel.square().sum()])
        return moments


def compute_fbank_stats(
    dataset,
    num_mel_bins: int = 128,
    sampling_rate: int = SAMPLING_RATE,
    audio_column: str = "audio",
    max_tracks: int | None = None,
    num_workers: int = 0,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, float]:
    """Mean and standard deviation of the raw log-mel fbank over every frame of the dataset's tracks.

    The AST authors' get_norm_stats averages per-batch means and stds over padded training clips; this is
    the exact mean and (population) std over all frames of whole tracks, with no padding frames: the values
    `ASTFeatureExtractor(mean=..., std=...)` takes. `max_tracks` uses a random subset (by `seed`); the
    statistics settle within a few hundred tracks. Returns {"mean", "std", "num_tracks", "num_frames"}.
    progress: a bar of the batches measured, on stderr (off too when datasets' bars are).
    """
    from datasets import Audio
    from datasets.utils.tqdm import tqdm

    if isinstance(dataset.features.get(audio_column), Audio) and dataset.features[audio_column].decode:
        dataset = dataset.cast_column(audio_column, Audio(decode=False))
    if max_tracks is not None and max_tracks < len(dataset):
        dataset = dataset.shuffle(seed=seed).select(range(max_tracks))
    if len(dataset) == 0:
        raise ValueError("cannot compute fbank statistics of an empty dataset")
    dataset = dataset.with_transform(
        AudioCropTransform(crop_seconds=None, policy="center", sampling_rate=sampling_rate,
                           audio_column=audio_column, label_column=None)
    )
    fbank = BatchedFbank(num_mel_bins=num_mel_bins, sampling_rate=sampling_rate)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=4, num_workers=num_workers, collate_fn=_FbankMoments(fbank)
    )
    batches = tqdm(loader, desc="fbank statistics", unit="batch", disable=not progress)
    count, total, squares = sum(batches).tolist()
    mean = total / count
    return {
        "mean": mean,
        "std": max(squares / count - mean * mean, 0.0) ** 0.5,
        "num_tracks": len(dataset),
        "num_frames": int(count // num_mel_bins),
    }


def stats_main(argv: list[str] | None = None) -> int:
    """`hf-fma stats`: fbank mean/std of a training split, saved as the feature extractor training loads.

        hf-fma stats --data_dir DIR --dataset_config_name small --output_dir runs/stats-small [--max_tracks 1000]

    Writes OUTPUT_DIR/preprocessor_config.json (an ASTFeatureExtractor with the computed mean and std, or
    an FmaASTFeatureExtractor when downscaling) and OUTPUT_DIR/fbank_stats.json.
    """
    parser = ArgumentParser(prog="hf-fma stats", description=stats_main.__doc__.splitlines()[0])
    parser.add_argument("--data_dir", required=True, help="folder of the FMA archives (or their extracted folders)")
    parser.add_argument(
        "--dataset_config_name", default="small", help="dataset config: small, medium, large, full, mini (default: small)"
    )
    parser.add_argument("--split", default="train")
    parser.add_argument("--output_dir", required=True, type=Path)
    parser.add_argument("--max_tracks", type=int, default=None, help="random subset of this many tracks")
    parser.add_argument("--num_workers", type=int, default=2, help="DataLoader processes decoding tracks")
    parser.add_argument("--num_mel_bins", type=int, default=128)
    parser.add_argument("--max_length", type=int, default=1024, help="frames the extractor pads/truncates to")
    parser.add_argument("--frequency_downscale", type=int, default=1)
    parser.add_argument("--time_downscale", type=int, default=1)
    args = parser.parse_args(argv)

    from hf_fma.data import load_fma

    # The extractor lives with the models (it is saved with them); imported here so that importing
    # this module does not import the model code.
    from hf_fma.models.feature_extraction_fma_ast import FmaASTFeatureExtractor

    extractor = FmaASTFeatureExtractor(
        num_mel_bins=args.num_mel_bins, max_length=args.max_length,
        frequency_downscale=args.frequency_downscale, time_downscale=args.time_downscale,
    )
    dataset = load_fma(args.dataset_config_name, data_dir=args.data_dir, split=args.split)
    stats = compute_fbank_stats(
        dataset, num_mel_bins=args.num_mel_bins, sampling_rate=extractor.sampling_rate,
        max_tracks=args.max_tracks, num_workers=args.num_workers, progress=True,
    )
    extractor.mean, extractor.std = stats["mean"], stats["std"]
    args.output_dir.mkdir(parents=True, exist_ok=True)
    extractor.save_pretrained(args.output_dir)
    record = {**stats, "dataset_config_name": args.dataset_config_name, "split": args.split, "num_mel_bins": args.num_mel_bins}
    (args.output_dir / "fbank_stats.json").write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"fbank mean {stats['mean']:.6f} std {stats['std']:.6f} over {stats['num_tracks']} tracks "
        f"({stats['num_frames']} frames); wrote {args.output_dir / 'preprocessor_config.json'}"
    )
    return 0


__all__ = ["compute_fbank_stats", "stats_main"]

if __name__ == "__main__":
    sys.exit(stats_main())
