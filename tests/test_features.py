"""The features layer: batched fbank (hf_fma.fbank), crop transforms and collator (hf_fma.transforms),
augmentation (hf_fma.augment), the fbank cache (hf_fma.fbank_cache) and statistics (hf_fma.fbank_stats);
the pooling feature extractor (hf_fma.models.feature_extraction_fma_ast); the training loss
(hf_fma.trainer), which mixup's labels need."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from datasets import Audio, Dataset
from transformers import ASTFeatureExtractor, AutoFeatureExtractor

from hf_fma.audio import AudioDecodeError, load_audio, load_crop
from hf_fma.augment import Mixup, SpecAugment
from hf_fma.fbank import BatchedFbank
from hf_fma.fbank_cache import CachedCropTransform, build_fbank_cache
from hf_fma.fbank_stats import compute_fbank_stats, stats_main
from hf_fma.trainer import cross_entropy_loss
from hf_fma.transforms import AudioCropTransform, FbankCollator, expand_crops
from hf_fma.models.feature_extraction_fma_ast import FmaASTFeatureExtractor, mfcc

TARGET = 16000
# ASTFeatureExtractor warns that 128 Kaldi bins leave the lowest filters empty at 512 FFT points.
pytestmark = pytest.mark.filterwarnings("ignore:At least one mel filter has all zero values")


def synthetic_signals() -> dict[str, np.ndarray]:
    """Signals that stress the fbank: a tone (deep spectral valleys), noise, a quiet tone, silence."""
    t = np.arange(2 * TARGET) / TARGET
    rng = np.random.default_rng(0)
    return {
        "tone": 0.5 * np.sin(2 * np.pi * 440 * t),
        "chirp": 0.8 * np.sin(2 * np.pi * (50 + 1500 * t) * t),
        "noise": 0.1 * rng.standard_normal(len(t)),
        "quiet": 1e-4 * np.sin(2 * np.pi * 3000 * t),
        "silence": np.zeros(len(t)),
    }


def batched(waveforms):
    """(batch, samples) zero-padded tensor and the lengths, as FbankCollator builds them."""
    tensors = [torch.as_tensor(np.asarray(w, dtype=np.float32)) for w in waveforms]
    return torch.nn.utils.rnn.pad_sequence(tensors, batch_first=True), torch.tensor([len(w) for w in tensors])


CONFIGS = [
    {},  # AST's defaults: 128 bins, 1024 frames, AudioSet mean/std
    {"max_length": 498, "do_normalize": False},  # raw log-mel, the hardest tolerance
    {"num_mel_bins": 64, "max_length": 300, "mean": -2.0, "std": 1.5},
    {"num_mel_bins": 32, "max_length": 200, "mean": 0.5, "std": 3.0},
]


@pytest.mark.parametrize("config", CONFIGS)
def test_batched_fbank_equals_ast_feature_extractor_on_synthetic_audio(config):
    signals = synthetic_signals()
    # clips of other lengths in the same batch: shorter (padded frames) and under one frame
    waveforms = list(signals.values()) + [signals["noise"][:1234], signals["tone"][:300]]
    extractor = ASTFeatureExtractor(**config)
    expected = extractor(waveforms, sampling_rate=TARGET, return_tensors="np")["input_values"]
    exact = BatchedFbank.from_feature_extractor(extractor, dtype=torch.float64)(*batched(waveforms))
    assert exact.dtype == torch.float32 and exact.shape == expected.shape
    np.testing.assert_allclose(exact.numpy(), expected, atol=1e-5, rtol=0)
    # float32 rounding is relative to a frame's loudest bin: the loud chirp's bins 110 dB down, at the
    # mel floor, differ by up to 2e-2 in raw log-mel (float64 above is exact); every other signal is held
    # to 1e-3, as real music is below.
    fast = BatchedFbank.from_feature_extractor(extractor)(*batched(waveforms))
    ordinary = [index for index, name in enumerate(list(signals) + ["short", "tiny"]) if name != "chirp"]
    np.testing.assert_allclose(fast.numpy()[ordinary], expected[ordinary], atol=1e-3, rtol=0)


@pytest.mark.parametrize("config", CONFIGS[:3])
def test_batched_fbank_equals_ast_feature_extractor_on_real_music(fma_sample, config):
    music = load_audio(fma_sample / "fma_small" / "000" / "000002.mp3")
    waveforms = [music[:80000], music[12345 : 12345 + 80000], music[-50000:], music]
    extractor = ASTFeatureExtractor(**config)
    expected = extractor(waveforms, sampling_rate=TARGET, return_tensors="np")["input_values"]
    features = BatchedFbank.from_feature_extractor(extractor)(*batched(waveforms))
    np.testing.assert_allclose(features.numpy(), expected, atol=1e-3, rtol=0)


def test_pooling_extractor_and_batched_fbank_agree():
    waveforms = list(synthetic_signals().values())
    extractor = FmaASTFeatureExtractor(max_length=512, frequency_downscale=4, time_downscale=4)
    expected = extractor(waveforms, sampling_rate=TARGET, return_tensors="pt")["input_values"]
    assert expected.shape == (5, 128, 32)
    plain = ASTFeatureExtractor(max_length=512)(waveforms, sampling_rate=TARGET, return_tensors="np")["input_values"]
    np.testing.assert_allclose(expected.numpy(), plain.reshape(5, 128, 4, 32, 4).mean(axis=(2, 4)), atol=1e-5)
    features = BatchedFbank.from_feature_extractor(extractor)(*batched(waveforms))
    np.testing.assert_allclose(features.numpy(), expected.numpy(), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="time_downscale must be a positive integer"):
        FmaASTFeatureExtractor(time_downscale=0)


def _numpy_mfcc(log_mel: np.ndarray, num_mfcc: int, delta_order: int) -> np.ndarray:
    """MFCC (and deltas) of (batch, frames, bands) written out from the textbook definitions, in float64:
    the orthonormal DCT-II sum X_k = s_k sum_m x_m cos(pi k (2m + 1) / 2M), s_0 = sqrt(1/M), s_k = sqrt(2/M);
    HTK's delta regression over +-4 frames, edge frames repeated (torchaudio's compute_deltas, win_length 9)."""
    bands = log_mel.shape[-1]
    cepstra = np.zeros(log_mel.shape[:-1] + (num_mfcc,))
    for k in range(num_mfcc):
        scale = np.sqrt((1 if k == 0 else 2) / bands)
        for m in range(bands):
            cepstra[..., k] += scale * log_mel[..., m] * np.cos(np.pi * k * (2 * m + 1) / (2 * bands))
    stack = [cepstra]
    for _ in range(delta_order):
        previous = np.pad(stack[-1], ((0, 0), (4, 4), (0, 0)), mode="edge")
        frames = stack[-1].shape[1]
        regression = sum(n * (previous[:, 4 + n : 4 + n + frames] - previous[:, 4 - n : 4 - n + frames]) for n in range(1, 5))
        stack.append(regression / (2 * sum(n * n for n in range(1, 5))))
    return np.concatenate(stack, axis=-1)


@pytest.mark.parametrize(
    "settings",
    [
        {"num_mfcc": 13},
        {"num_mfcc": 20, "mfcc_delta_order": 2},
        {"num_mfcc": 40, "mfcc_delta_order": 1},
        {"num_mfcc": 13, "mfcc_delta_order": 2, "frequency_downscale": 2, "time_downscale": 2},
    ],
    ids=["13", "20+deltas+delta-deltas", "40+deltas", "13+deltas+delta-deltas of pooled bands"],
)
def test_mfcc_of_extractor_and_batched_fbank_equal_a_numpy_dct_on_real_music(fma_sample, settings):
    music = load_audio(fma_sample / "fma_small" / "000" / "000002.mp3")
    waveforms = [music[:48000], music[-40000:], music[20000:30000]]  # the last one padded to max_length
    extractor = FmaASTFeatureExtractor(max_length=300, mean=-3.0, std=4.0, **settings)
    pooled = FmaASTFeatureExtractor(
        max_length=300, mean=-3.0, std=4.0, frequency_downscale=settings.get("frequency_downscale", 1),
        time_downscale=settings.get("time_downscale", 1),
    )  # fmt: skip
    log_mel = pooled(waveforms, sampling_rate=TARGET, return_tensors="np")["input_values"].astype(np.float64)
    expected = _numpy_mfcc(log_mel, settings["num_mfcc"], settings.get("mfcc_delta_order", 0))
    features = extractor(waveforms, sampling_rate=TARGET, return_tensors="np")["input_values"]
    assert features.shape == expected.shape == (3, log_mel.shape[1], settings["num_mfcc"] * (1 + settings.get("mfcc_delta_order", 0)))
    np.testing.assert_allclose(features, expected, atol=1e-4, rtol=0)
    batch = BatchedFbank.from_feature_extractor(extractor)(*batched(waveforms))
    np.testing.assert_allclose(batch.numpy(), expected, atol=2e-3, rtol=0)


def test_mfcc_settings_are_checked_and_reach_batched_fbank_through_the_saved_config(tmp_path):
    with pytest.raises(ValueError, match="num_mfcc must be an integer from 0 .no MFCC. to the 32 mel bands, got 33"):
        FmaASTFeatureExtractor(num_mel_bins=128, frequency_downscale=4, num_mfcc=33)
    with pytest.raises(ValueError, match="mfcc_delta_order must be 0, 1 or 2, and needs num_mfcc > 0, got 3"):
        FmaASTFeatureExtractor(num_mfcc=13, mfcc_delta_order=3)
    FmaASTFeatureExtractor(max_length=200, num_mfcc=20, mfcc_delta_order=1).save_pretrained(tmp_path)
    loaded = AutoFeatureExtractor.from_pretrained(tmp_path)
    assert type(loaded) is FmaASTFeatureExtractor and (loaded.num_mfcc, loaded.mfcc_delta_order) == (20, 1)
    fbank = BatchedFbank.from_feature_extractor(loaded)
    with torch.inference_mode():  # as evaluation computes features, before training does again
        assert fbank(torch.zeros(2, 16000)).shape == (2, 200, 40)
    features = torch.randn(1, 20, 128, requires_grad=True)
    mfcc(features, 20, 1).sum().backward()  # the same (cached) DCT in a computation autograd records
    assert features.grad.abs().sum() > 0


def test_pooling_with_unequal_factors_averages_frames_by_time_and_bins_by_frequency():
    """Time 2 x frequency 4 (equal factors cannot tell the kernel's axes apart), trailing frames and bins
    that fill no window dropped; expectations are numpy block means."""
    features = torch.arange(2 * 7 * 9, dtype=torch.float32).reshape(2, 7, 9)  # (batch, frames, mel bins)
    blocks = features.numpy()[:, :6, :8].reshape(2, 3, 2, 2, 4)  # (batch, frames', 2 frames, mel', 4 bins)
    expected = blocks.mean(axis=(2, 4))  # (2, 3, 2)
    fbank = BatchedFbank(num_mel_bins=9, max_length=7, time_downscale=2, frequency_downscale=4)
    extractor = FmaASTFeatureExtractor(num_mel_bins=9, max_length=7, time_downscale=2, frequency_downscale=4)
    for pooled in (fbank.downscale(features), extractor.downscale(features)):
        np.testing.assert_allclose(pooled.numpy(), expected, rtol=0, atol=1e-6)
    # The whole chain, on music: the plain extractor's features, block-averaged.
    waveforms = list(synthetic_signals().values())
    plain = ASTFeatureExtractor(max_length=512)(waveforms, sampling_rate=TARGET, return_tensors="np")["input_values"]
    pooled = BatchedFbank(max_length=512, time_downscale=2, frequency_downscale=4)(*batched(waveforms))
    assert pooled.shape == (5, 256, 32)
    np.testing.assert_allclose(pooled.numpy(), plain.reshape(5, 256, 2, 32, 4).mean(axis=(2, 4)), atol=1e-3, rtol=0)


def test_extractor_without_pooling_is_saved_as_a_plain_ast_feature_extractor(tmp_path):
    FmaASTFeatureExtractor(max_length=500, mean=-3.0, std=4.0).save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["preprocessor_config.json"]
    loaded = AutoFeatureExtractor.from_pretrained(tmp_path)
    assert type(loaded) is ASTFeatureExtractor
    assert (loaded.max_length, loaded.mean, loaded.std) == (500, -3.0, 4.0)


def test_pooling_extractor_loads_as_remote_code_without_hf_fma(tmp_path):
    extractor = FmaASTFeatureExtractor(max_length=256, num_mel_bins=64, frequency_downscale=4, time_downscale=2)
    extractor.save_pretrained(tmp_path)
    assert "feature_extraction_fma_ast.py" in os.listdir(tmp_path)
    waveform = synthetic_signals()["chirp"].astype(np.float32)
    np.save(tmp_path / "waveform.npy", waveform)
    script = (
        "import sys, numpy as np; sys.modules['hf_fma'] = None  # hf_fma cannot be imported\n"
        "from transformers import AutoFeatureExtractor\n"
        f"fe = AutoFeatureExtractor.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)\n"
        f"x = fe(np.load({str(tmp_path / 'waveform.npy')!r}), sampling_rate=16000, return_tensors='np')\n"
        f"np.save({str(tmp_path / 'features.npy')!r}, x['input_values'])\n"
    )
    environment = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")}
    subprocess.run([sys.executable, "-c", script], check=True, env=environment, cwd=tmp_path, capture_output=True)
    expected = extractor(waveform, sampling_rate=TARGET, return_tensors="np")["input_values"]
    np.testing.assert_array_equal(np.load(tmp_path / "features.npy"), expected)
    assert expected.shape == (1, 128, 16)


@pytest.fixture(scope="module")
def tracks(tmp_path_factory):
    """Six 7 s MP3 tracks as the dataset gives them (audio cast with decode=False), one of them short."""
    folder = tmp_path_factory.mktemp("tracks")
    rng = np.random.default_rng(1)
    paths = []
    for index, (sampling_rate, channels, seconds) in enumerate(
        [(44100, 2, 7), (22050, 1, 7), (8000, 1, 7), (48000, 2, 7), (44100, 2, 3), (44100, 1, 7)]
    ):
        t = np.arange(sampling_rate * seconds) / sampling_rate
        music = 0.3 * np.sin(2 * np.pi * 110 * (index + 1) * t)[:, None] + 0.05 * rng.standard_normal((len(t), channels))
        paths.append(str(folder / f"{index:06d}.mp3"))
        sf.write(paths[-1], music.astype(np.float32), sampling_rate, format="MP3")
    rows = {"track_id": list(range(6)), "audio": paths, "genre": [0, 1, 2, 3, 0, 1]}
    return Dataset.from_dict(rows).cast_column("audio", Audio(decode=False))


def test_training_transform_and_collator_give_model_inputs(tracks):
    dataset = tracks.with_transform(AudioCropTransform(crop_seconds=5.0, policy="random"))
    row = dataset[0]
    assert row["waveform"].shape == (5 * TARGET,) and row["labels"] == 0 and row["augment"] is True
    collator = FbankCollator(ASTFeatureExtractor(max_length=500))
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, collate_fn=collator)
    batch = next(iter(loader))
    assert set(batch) == {"input_values", "labels"}
    assert batch["input_values"].shape == (4, 500, 128) and batch["input_values"].dtype == torch.float32
    assert batch["labels"].tolist() == [0, 1, 2, 3] and batch["labels"].dtype == torch.long


def test_decoded_audio_of_every_datasets_version_is_cropped(tracks):
    # datasets 3.x decodes an Audio column to {"array", "sampling_rate"} dicts, datasets 4 and later to
    # torchcodec's AudioDecoder: the transform takes both, and crops what the decoder decodes.
    rows = tracks.cast_column("audio", Audio())[:]
    as_dicts = [{"array": audio["array"], "sampling_rate": audio["sampling_rate"]} for audio in rows["audio"]]
    transform = AudioCropTransform(crop_seconds=2.0, policy="center")
    expected = transform({**rows, "audio": as_dicts})["waveform"]
    for waveform, want in zip(transform(rows)["waveform"], expected, strict=True):
        assert waveform.shape == (2 * TARGET,)
        np.testing.assert_allclose(waveform, want, atol=1e-5)


def test_evaluation_batches_equal_ast_features_of_the_same_crops(tracks):
    extractor = ASTFeatureExtractor(max_length=500)
    dataset = tracks.with_transform(AudioCropTransform(crop_seconds=5.0, policy="center"))
    batch = FbankCollator(extractor)([dataset[index] for index in range(6)])
    crops = [load_crop(path, 5.0, "center") for path in tracks.with_format(None)["audio"]]
    expected = extractor([crop for crop in crops], sampling_rate=TARGET, return_tensors="np")["input_values"]
    np.testing.assert_allclose(batch["input_values"].numpy(), expected, atol=1e-3, rtol=0)


def test_track_level_crops_are_evenly_spaced_and_carry_their_track(tracks):
    expanded = expand_crops(tracks, n_crops=3)
    assert expanded["track_id"] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5]
    dataset = expanded.with_transform(AudioCropTransform(crop_seconds=5.0, policy="even", n_crops=3))
    assert dataset["track_id"][:3] == [0, 0, 0]  # column access passes through the transform
    rows = [dataset[index] for index in range(3)]
    assert [row["crop_index"] for row in rows] == [0, 1, 2] and not any(row["augment"] for row in rows)
    path = tracks.with_format(None)[0]["audio"]["path"]
    total = len(load_audio(path))
    for row, start in zip(rows, [0, (total - 5 * TARGET) // 2, total - 5 * TARGET]):
        np.testing.assert_allclose(row["waveform"], load_audio(path, offset=start / TARGET, duration=5.0), atol=1e-5)
    with pytest.raises(ValueError, match="expand_crops"):
        tracks.with_transform(AudioCropTransform(5.0, policy="even", n_crops=3))[0]


def test_augmentation_changes_only_training_batches(tracks):
    extractor = ASTFeatureExtractor(max_length=500)
    augmenting = FbankCollator(extractor, spec_augment=SpecAugment(freq_mask=40, time_mask=200), mixup=Mixup(4, prob=1.0))
    plain = FbankCollator(extractor)
    evaluation = [tracks.with_transform(AudioCropTransform(5.0, policy="center"))[index] for index in range(4)]
    torch.manual_seed(0)
    augmented_eval = augmenting(evaluation)
    assert augmented_eval["labels"].dtype == torch.long
    torch.testing.assert_close(augmented_eval, plain(evaluation), rtol=0, atol=0)

    training = [dict(row, augment=True) for row in evaluation]  # the same crops, marked as training rows
    torch.manual_seed(0)
    augmented = augmenting(training)
    assert not torch.equal(augmented["input_values"], plain(training)["input_values"])
    labels = augmented["labels"]
    assert labels.shape == (4, 4) and labels.dtype == torch.float32
    torch.testing.assert_close(labels.sum(dim=1), torch.ones(4))
    assert (labels.max(dim=1).values < 1).all()  # prob=1: every example is mixed with another


def test_spec_augment_masks_within_its_widths_with_the_padding_value():
    features = torch.randn(8, 100, 64)
    fill = 0.75
    torch.manual_seed(0)
    masked = SpecAugment(freq_mask=10, time_mask=20)(features, fill=fill)
    changed = masked != features
    assert (masked[changed] == fill).all()
    masked_bins = changed.all(dim=1).sum(dim=1)  # (batch,) mel bins masked over every frame
    masked_frames = changed.all(dim=2).sum(dim=1)  # (batch,) frames masked over every bin
    assert (masked_bins < 10).all() and (masked_frames < 20).all() and masked_frames.sum() > 0


def test_spec_augment_widths_are_uniform_from_zero_to_below_the_limit_on_their_own_axis():
    """Over 400 examples, frequency masks of 0..9 whole mel bins (mean 4.5) and time masks of 0..19 whole
    frames (mean 9.5), each a band along its own axis: a mask never drawn, halved or on the other axis
    shows in these counts."""
    features = torch.randn(400, 100, 64)
    torch.manual_seed(0)
    changed = SpecAugment(freq_mask=10, time_mask=20)(features, fill=0.75) != features
    masked_bins = changed.all(dim=1).sum(dim=1)  # (batch,) mel bins masked over every frame
    masked_frames = changed.all(dim=2).sum(dim=1)  # (batch,) frames masked over every bin
    assert masked_bins.max() == 9 and 4.0 <= masked_bins.float().mean() <= 5.0
    assert masked_frames.max() == 19 and 8.6 <= masked_frames.float().mean() <= 10.4
    # Nothing else changed: every changed cell lies in a masked bin or a masked frame.
    band = changed.all(dim=1, keepdim=True) | changed.all(dim=2, keepdim=True)  # (batch, frames, mel)
    assert not (changed & ~band).any()


def test_cross_entropy_loss_takes_class_indices_and_probabilities():
    logits = torch.randn(4, 3)
    labels = torch.tensor([0, 2, 1, 2])
    outputs = {"logits": logits}
    expected = torch.nn.functional.cross_entropy(logits, labels)
    torch.testing.assert_close(cross_entropy_loss(outputs, labels), expected)
    probabilities = torch.nn.functional.one_hot(labels, 3).float()
    torch.testing.assert_close(cross_entropy_loss(outputs, probabilities), expected)
    # Trainer's num_items_in_batch for accumulating 2 such batches: 8 labels, or 8 x 3 probability cells
    torch.testing.assert_close(cross_entropy_loss(outputs, labels, num_items_in_batch=8), expected / 2)
    torch.testing.assert_close(cross_entropy_loss(outputs, probabilities, num_items_in_batch=24), expected / 2)


def _smoothed_cross_entropy_by_hand(logits: np.ndarray, targets: np.ndarray, epsilon: float) -> float:
    """Mean over the batch of -sum_c q_c log p_c, with q = (1 - epsilon) * targets + epsilon / classes."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    q = (1 - epsilon) * targets + epsilon / logits.shape[1]
    return float(-(q * log_p).sum(axis=1).mean())


def test_cross_entropy_loss_smooths_class_indices_and_mixup_labels():
    from transformers.trainer_pt_utils import LabelSmoother

    logits = torch.randn(4, 3, dtype=torch.float64)
    labels = torch.tensor([0, 2, 1, 2])
    outputs = {"logits": logits}
    one_hot = np.eye(3)[labels.numpy()]
    by_hand = _smoothed_cross_entropy_by_hand(logits.numpy(), one_hot, 0.1)
    assert cross_entropy_loss(outputs, labels, label_smoothing=0.1).item() == pytest.approx(by_hand, rel=1e-9)
    # what Trainer's own label smoother gives with label_smoothing_factor=0.1 and no compute_loss_func
    assert LabelSmoother(epsilon=0.1)(outputs, labels).item() == pytest.approx(by_hand, rel=1e-6)  # it sums in float32
    # Mixup's probabilities (each example mixed with another's genre), smoothed the same way
    mixed = Mixup(3, prob=1.0)(torch.zeros(4, 5), labels, torch.full((4,), 5))[1].double()
    assert mixed.shape == (4, 3) and (mixed < 1).any()
    by_hand = _smoothed_cross_entropy_by_hand(logits.numpy(), mixed.numpy(), 0.1)
    assert cross_entropy_loss(outputs, mixed, label_smoothing=0.1).item() == pytest.approx(by_hand, rel=1e-9)


def test_a_corrupt_file_in_a_batch_names_its_track(tracks, tmp_path):
    corrupt = tmp_path / "099134.mp3"
    corrupt.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(1000))
    rows = tracks.with_format(None)[:2]
    paths = [audio["path"] for audio in rows["audio"]] + [str(corrupt)]
    rows = {"track_id": rows["track_id"] + [99134], "audio": paths, "genre": [0, 1, 2]}
    dataset = Dataset.from_dict(rows).cast_column("audio", Audio(decode=False))
    dataset.set_transform(AudioCropTransform(5.0))
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, collate_fn=FbankCollator(ASTFeatureExtractor()))
    with pytest.raises(AudioDecodeError, match=r"track 99134 \(.*099134\.mp3\)"):
        next(iter(loader))


def test_cached_crops_equal_crops_computed_from_audio(tracks, tmp_path):
    cache = build_fbank_cache(tracks, dtype="float32", cache_file_name=str(tmp_path / "fbank.arrow"))
    assert "audio" not in cache.column_names and cache["fbank_frames"][0] == 698  # 7 s
    half = build_fbank_cache(tracks, cache_file_name=str(tmp_path / "fbank16.arrow"))
    assert len(half[0]["fbank"]) * 2 == len(cache[0]["fbank"])  # float16 halves the disk

    crops = cache.with_transform(CachedCropTransform(crop_seconds=5.0, policy="even", n_crops=1, dtype="float32"))
    row = crops[0]
    assert row["fbank"].shape == (498, 128) and row["labels"] == 0 and row["augment"] is False
    path = tracks.with_format(None)[0]["audio"]["path"]
    start = (698 - 498) // 2  # centre crop, in 10 ms frames
    waveform = load_audio(path, offset=start * 0.01, duration=5.0)
    expected = BatchedFbank().log_mel(torch.from_numpy(waveform)[None])[0]
    np.testing.assert_allclose(row["fbank"], expected.numpy(), atol=1e-3)

    extractor = ASTFeatureExtractor(max_length=500)
    batch = FbankCollator(extractor)([crops[index] for index in range(6)])
    assert batch["input_values"].shape == (6, 500, 128)
    short = extractor(load_crop(tracks.with_format(None)[4]["audio"], None), sampling_rate=TARGET)["input_values"][0]
    np.testing.assert_allclose(batch["input_values"][4].numpy(), short, atol=1e-3)  # the 3 s track, padded
    mfcc = FmaASTFeatureExtractor(max_length=500, num_mfcc=13, mfcc_delta_order=1)  # cached frames give MFCC too
    expected = mfcc(load_crop(tracks.with_format(None)[4]["audio"], None), sampling_rate=TARGET)["input_values"][0]
    np.testing.assert_allclose(FbankCollator(mfcc)([crops[4]])["input_values"][0].numpy(), expected, atol=2e-3)

    training = half.with_transform(CachedCropTransform(crop_seconds=5.0, policy="random"))
    assert training[0]["augment"] is True and training[0]["fbank"].shape == (498, 128)


def test_stats_equal_a_direct_numpy_computation(tracks):
    stats = compute_fbank_stats(tracks)
    frames = []
    for audio in tracks.with_format(None)["audio"]:
        waveform = load_audio(audio)
        count = 1 + (len(waveform) - 400) // 160
        extractor = ASTFeatureExtractor(max_length=count, do_normalize=False)
        frames.append(extractor(waveform, sampling_rate=TARGET, return_tensors="np")["input_values"][0])
    values = np.concatenate(frames).astype(np.float64)
    assert stats["num_tracks"] == 6 and stats["num_frames"] == len(values)
    assert stats["mean"] == pytest.approx(values.mean(), abs=1e-4)
    assert stats["std"] == pytest.approx(values.std(), abs=1e-4)
    subset = compute_fbank_stats(tracks, max_tracks=2)
    assert subset["num_tracks"] == 2 and subset["mean"] != stats["mean"]


def test_stats_command_writes_the_feature_extractor_training_loads(demo_dir, tmp_path, capsys):
    output = tmp_path / "stats"
    argv = ["--data-dir", str(demo_dir), "--dataset_config_name", "small", "--output-dir", str(output),
            "--max-tracks", "6", "--num-workers", "0", "--max-length", "512", "--time-downscale", "4"]
    assert stats_main(argv) == 0
    assert "fbank statistics: 100%" in capsys.readouterr().err  # a bar on stderr: 2 batches of up to 4 tracks
    record = json.loads((output / "fbank_stats.json").read_text())
    assert record["num_tracks"] == 6 and -20 < record["mean"] < 10 and record["std"] > 0
    extractor = AutoFeatureExtractor.from_pretrained(output, trust_remote_code=True)
    assert extractor.mean == pytest.approx(record["mean"]) and extractor.std == pytest.approx(record["std"])
    assert (extractor.max_length, extractor.time_downscale, extractor.frequency_downscale) == (512, 4, 1)


def test_stats_command_reads_a_relative_data_dir_from_the_working_directory(demo_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(demo_dir.parent)
    argv = ["--data_dir", demo_dir.name, "--dataset_config_name", "small", "--output_dir", str(tmp_path), "--max_tracks", "2",
            "--num_workers", "0", "--max_length", "128"]
    assert stats_main(argv) == 0
    assert json.loads((tmp_path / "fbank_stats.json").read_text())["num_tracks"] == 2
