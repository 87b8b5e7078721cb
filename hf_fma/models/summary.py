"""`hf-fma models`: parameter count and forward-pass cost of every model preset, for one 5 s clip.

    hf-fma models                                   # all presets, 128 x 500 and 32 x 125 inputs
    hf-fma models --threads 1                       # steadier timings on a busy machine
    hf-fma models --model ast/tiny --model cnn/tiny --shape 32x64 --repeats 1
    python -m hf_fma.models.summary --help

Cost is counted, not estimated: multiply-accumulates of one forward pass (torch's FlopCounterMode; batch
norm, activations, softmax and pooling are not counted) and the fastest of `--repeats` timed forward
passes of batch 1 after one warm-up (the minimum, as `timeit` advises: other processes only ever add
time), with torch's default threads or `--threads`. Weights are random: the cost does not depend on them, so the
AudioSet preset is measured on its architecture without downloading it.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import ASTConfig, ASTForAudioClassification, PreTrainedModel

from ..argparsing import ArgumentParser
from ..metadata import SMALL_GENRES
from .ast import AST_PRESETS, DEFAULT_AST_CHECKPOINT, build_ast, label_maps
from .baselines import CNN, LSTM, Baseline

# The 5 s crop at full resolution (128 mel bins, 10 ms hop) and the study's 4 x 4 downscaled version.
DEFAULT_SHAPES = ("128x500", "32x125")

# (mel bins, frames, attention implementation) -> a model with fma_small's 8 genres.
ModelFactory = Callable[[int, int, str], PreTrainedModel]


def _ast_factory(preset: str) -> ModelFactory:
    def build(mel_bins: int, frames: int, attention: str) -> PreTrainedModel:
        if AST_PRESETS[preset].checkpoint is None:
            return build_ast(preset, mel_bins, frames, SMALL_GENRES, attn_implementation=attention)
        if AST_PRESETS[preset].checkpoint != DEFAULT_AST_CHECKPOINT:
            raise ValueError(f"no offline architecture known for {AST_PRESETS[preset].checkpoint}")
        # transformers documents ASTConfig's defaults as the architecture of DEFAULT_AST_CHECKPOINT.
        config = ASTConfig(
            num_mel_bins=mel_bins, max_length=frames, attn_implementation=attention, **label_maps(SMALL_GENRES)
        )
        return ASTForAudioClassification(config)

    return build


def _baseline_factory(baseline: Baseline, preset: str) -> ModelFactory:
    def build(values_per_frame: int, frames: int, attention: str) -> PreTrainedModel:
        return baseline.model_class(baseline.config(preset, values_per_frame, SMALL_GENRES))

    return build


MODELS: dict[str, ModelFactory] = {
    **{f"ast/{name}": _ast_factory(name) for name in AST_PRESETS},
    **{f"{baseline.name.lower()}/{name}": _baseline_factory(baseline, name)
       for baseline in (CNN, LSTM) for name in baseline.presets},
}


def _parse_shape(text: str) -> tuple[int, int]:
    try:
        mel_bins, frames = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape must be MEL_BINSxFRAMES like 128x500, got {text!r}") from None
    return mel_bins, frames


def lstm_macs(model: torch.nn.Module, frames: int) -> int:
    """Multiply-accumulates of the model's `nn.LSTM` layers over `frames` steps of one clip: per step, layer
    and direction, the four gates' input and recurrent products, 4 x hidden x (inputs + hidden). Counted
    here because torch's FlopCounterMode has no formula for the LSTM kernels (it counts them as 0)."""
    total = 0
    for lstm in (module for module in model.modules() if isinstance(module, torch.nn.LSTM)):
        directions = 2 if lstm.bidirectional else 1
        for layer in range(lstm.num_layers):
            inputs = lstm.input_size if layer == 0 else lstm.hidden_size * directions
            total += frames * directions * 4 * lstm.hidden_size * (inputs + lstm.hidden_size)
    return total


def forward_cost(factory: ModelFactory, mel_bins: int, frames: int, repeats: int) -> dict[str, float]:
    """Parameters, multiply-accumulates and best CPU milliseconds of one forward pass of one clip."""
    clip = torch.randn(1, frames, mel_bins)  # (batch, frames, mel_bins)
    # Counted with eager attention: torch's counter has no formula for the CPU SDPA kernel, and the
    # arithmetic is the same.
    counted = factory(mel_bins, frames, "eager").eval()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        counted(clip)
    model = factory(mel_bins, frames, "sdpa").eval()
    timings = []
    with torch.inference_mode():
        model(clip)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            model(clip)
            timings.append((time.perf_counter() - start) * 1000)
    return {
        "parameters": model.num_parameters(),
        "mmacs": (counter.get_total_flops() / 2 + lstm_macs(model, frames)) / 1e6,
        "cpu_ms": min(timings),
    }


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="hf-fma models", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", action="append", choices=list(MODELS), help="a preset to measure (repeatable; default: all)"
    )
    parser.add_argument(
        "--shape",
        action="append",
        type=_parse_shape,
        help=f"input MEL_BINSxFRAMES (repeatable; default: {' and '.join(DEFAULT_SHAPES)})",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed forward passes per model (default 5)")
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (default: torch's); 1 keeps timings steady on a shared machine"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    shapes = args.shape or [_parse_shape(shape) for shape in DEFAULT_SHAPES]

    print(
        f"Forward pass of one clip, batch 1, random weights, {len(SMALL_GENRES)} genres; CPU "
        f"{platform.machine()} with {torch.get_num_threads()} torch threads, torch {torch.__version__}."
    )
    print("| model | input (mel x frames) | parameters | MMACs | CPU ms (best) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name in args.model or MODELS:
        for mel_bins, frames in shapes:
            cost = forward_cost(MODELS[name], mel_bins, frames, args.repeats)
            print(
                f"| {name} | {mel_bins} x {frames} | {cost['parameters']:,} | {cost['mmacs']:,.1f} "
                f"| {cost['cpu_ms']:.1f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
