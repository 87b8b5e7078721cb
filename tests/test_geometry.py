"""AST's audio geometry against hand-computed values and against ASTFeatureExtractor itself.

Kaldi's fbank with snip_edges (what ASTFeatureExtractor computes) makes 1 + (N - 400) // 160 frames of N
samples at 16 kHz: 25 ms frames every 10 ms, none padded at the edges.

    .venv/bin/python -m pytest -q tests/test_geometry.py
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import ASTFeatureExtractor

from hf_fma.geometry import (
    crop_frames,
    crop_samples,
    extractor_crop_frames,
    extractor_crop_samples,
    extractor_crop_seconds,
    frames_to_seconds,
    num_frames,
    run_crop_seconds,
    seconds_to_samples,
)
from hf_fma.arguments import parse_arguments
from hf_fma.train import run_training


@pytest.mark.parametrize(
    "samples, frames",
    [
        (48_000, 298),  # 3 s: 1 + 47,600 // 160 = 1 + 297
        (80_000, 498),  # 5 s: 1 + 79,600 // 160 = 1 + 497
        (48_240, 300),  # 400 + 299 x 160: the fewest samples that make 300 frames
        (48_239, 299),
        (400, 1),  # one 25 ms frame
        (559, 1),
        (560, 2),
        (399, 0),  # less than one frame
        (0, 0),
    ],
)
def test_kaldi_frame_count(samples, frames):
    assert num_frames(samples) == frames


def test_kaldi_frame_count_works_on_tensors_of_lengths():
    lengths = torch.tensor([0, 399, 400, 560, 48_000])
    assert num_frames(lengths).tolist() == [0, 0, 1, 2, 298]


@pytest.mark.filterwarnings("ignore:At least one mel filter has all zero values")  # AST's own 128-bin set-up
@pytest.mark.parametrize("samples", [400, 1_000, 16_000, 48_000])
def test_frame_count_is_what_ast_feature_extractor_makes(samples):
    """Without normalisation the extractor pads with exact zeros: its non-zero frames are the real ones."""
    extractor = ASTFeatureExtractor(max_length=1_000, do_normalize=False)
    noise = np.random.default_rng(0).standard_normal(samples).astype(np.float32)
    features = extractor(noise, sampling_rate=16_000, return_tensors="np")["input_values"][0]  # (1000, 128)
    assert (np.abs(features).sum(axis=1) > 0).sum() == num_frames(samples)


def test_seconds_and_samples():
    assert seconds_to_samples(3.0) == 48_000
    assert seconds_to_samples(5.0) == 80_000
    assert seconds_to_samples(2.5, sampling_rate=44_100) == 110_250
    assert seconds_to_samples(0.1) == 1_600


@pytest.mark.parametrize("seconds, frames, samples", [(3.0, 300, 48_000), (5.0, 500, 80_000), (0.07, 7, 1_120)])
def test_a_crop_s_extractor_frames_give_back_its_seconds_and_samples(seconds, frames, samples):
    """A model trained on `seconds` crops has max_length = seconds x 100 frames (10 ms each), and every
    window cut for it holds seconds x 16,000 samples."""
    assert crop_frames(seconds) == frames
    assert frames_to_seconds(frames) == pytest.approx(seconds)
    assert crop_samples(frames) == samples


@pytest.mark.filterwarnings("ignore:At least one mel filter has all zero values")  # AST's own 128-bin set-up
@pytest.mark.parametrize(
    "max_length, sampling_rate, seconds, samples",
    [(300, 16_000, 3.0, 48_000), (500, 16_000, 5.0, 80_000), (300, 8_000, 3.0, 24_000)],
)
def test_a_model_s_crop_reads_back_alike_from_its_extractor_and_its_saved_config(
    tmp_path, max_length, sampling_rate, seconds, samples
):
    """Reports read preprocessor_config.json as a dict, predict and evaluation the loaded extractor: both
    give the crop the model was trained on, in samples at the extractor's own rate."""
    extractor = ASTFeatureExtractor(max_length=max_length, sampling_rate=sampling_rate)
    extractor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    for source in (extractor, saved):
        assert extractor_crop_frames(source) == max_length
        assert extractor_crop_seconds(source) == pytest.approx(seconds)
        assert extractor_crop_samples(source) == samples


def test_a_run_s_crop_is_the_one_its_arguments_recorded_else_its_extractor_s():
    assert run_crop_seconds({"crop_seconds": 2.5, "seed": 0}, {"max_length": 300}) == 2.5
    assert run_crop_seconds({"seed": 0}, {"max_length": 300}) == pytest.approx(3.0)


@pytest.mark.parametrize("seconds", [2.995, 0.0, -1.0, 0.001])
def test_a_crop_that_is_not_whole_10_ms_hops_is_refused(seconds):
    with pytest.raises(ValueError, match=f"crop_seconds must be a positive multiple of 0.01 s.*got {seconds}"):
        crop_frames(seconds)


def test_training_refuses_such_a_crop_before_reading_any_data(tmp_path):
    """2.995 s would train on 47,920-sample crops that evaluation and predict (reading 300 frames back as
    48,000 samples) could not reproduce."""
    argv = ["--crop_seconds", "2.995", "--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "run")]
    with pytest.raises(ValueError, match="crop_seconds must be a positive multiple of 0.01 s"):
        run_training(*parse_arguments(argv))
    assert not (tmp_path / "run").exists()
