"""Window decoding, mono mixing, resampling and crops (hf_fma.audio) on real-format MP3 files."""

import io
import shutil
import subprocess
import zipfile

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from hf_fma.audio import AudioDecodeError, audio_duration, crop_offset, load_audio, load_crop

TARGET = 16000


def tone(sampling_rate: int, seconds: float, channels: int, frequency: float = 440.0) -> np.ndarray:
    """A tone plus a little noise, (samples, channels) float32, different in each channel."""
    t = np.arange(round(sampling_rate * seconds)) / sampling_rate
    rng = np.random.default_rng(sampling_rate)
    columns = [0.3 * np.sin(2 * np.pi * frequency * (c + 1) * t) + 0.02 * rng.standard_normal(len(t))
               for c in range(channels)]
    return np.stack(columns, axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def mp3s(tmp_path_factory):
    """MP3 files as FMA and other sources have them: 44.1 kHz stereo, 22.05 kHz mono, 8 kHz, 48 kHz."""
    folder = tmp_path_factory.mktemp("mp3")
    files = {}
    for sampling_rate, channels in ((44100, 2), (22050, 1), (8000, 1), (48000, 2)):
        path = folder / f"{sampling_rate}_{channels}ch.mp3"
        sf.write(path, tone(sampling_rate, 4.0, channels), sampling_rate, format="MP3")
        files[sampling_rate] = path
    return files


def decode_whole(path) -> np.ndarray:
    """The usual path: decode all of it, average the channels, resample all of it."""
    samples, sampling_rate = sf.read(path, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    return soxr.resample(mono, sampling_rate, TARGET) if sampling_rate != TARGET else mono


@pytest.mark.parametrize("sampling_rate", [44100, 22050, 8000, 48000])
@pytest.mark.parametrize("offset", [0.0, 0.37, 1.5])
def test_window_equals_the_same_samples_of_the_whole_decoded_track(mp3s, sampling_rate, offset):
    whole = decode_whole(mp3s[sampling_rate])
    window = load_audio(mp3s[sampling_rate], offset=offset, duration=2.0)
    start = round(offset * TARGET)
    assert window.dtype == np.float32 and window.shape == (2 * TARGET,)
    np.testing.assert_allclose(window, whole[start : start + 2 * TARGET], atol=1e-5)


def test_real_fma_mp3_window_bytes_and_dict_sources_agree(fma_sample):
    path = fma_sample / "fma_small" / "000" / "000002.mp3"
    whole = decode_whole(path)
    assert audio_duration(path) == pytest.approx(10.02, abs=0.01)
    assert len(load_audio(path)) == len(whole)
    window = load_audio(path, offset=2.345, duration=5.0)
    start = round(2.345 * TARGET)
    np.testing.assert_allclose(window, whole[start : start + 5 * TARGET], atol=1e-5)
    data = path.read_bytes()
    np.testing.assert_array_equal(load_audio(data, offset=2.345, duration=5.0), window)
    streamed = {"path": "fma_small/000/000002.mp3", "bytes": data}
    np.testing.assert_array_equal(load_audio(streamed, offset=2.345, duration=5.0), window)
    np.testing.assert_array_equal(load_audio({"path": str(path), "bytes": None}, offset=2.345, duration=5.0), window)


def test_crops_of_every_demo_clip_and_the_real_one_equal_the_whole_decoded_track(demo_dir, fma_sample):
    # The demo's low-bitrate VBR clips borrow bits from up to ~18 frames back (the bit reservoir): decoded
    # from a seek alone, their first frames came out wrong, by up to 0.92 at 16 kHz (the center crop of
    # 000884 by 0.43). 3 s crops, as the demo configs cut; fma_large.zip holds every demo clip, 071334
    # being the one with no audio at all.
    with zipfile.ZipFile(demo_dir / "fma_large.zip") as archive:
        clips = {name: archive.read(name) for name in archive.namelist()
                 if name.endswith(".mp3") and not name.endswith("071334.mp3")}
    clips["000002.mp3 (real)"] = (fma_sample / "fma_small" / "000" / "000002.mp3").read_bytes()
    assert len(clips) == 173
    rng = np.random.default_rng(0)
    mismatches = []
    for name, data in clips.items():
        whole = decode_whole(io.BytesIO(data))
        room = max(0, len(whole) - 3 * TARGET)
        expected = np.pad(whole, (0, 3 * TARGET))  # a crop past the end of a short clip is zero-padded
        random_start = int(rng.integers(room + 1))
        crops = {
            "center": (room // 2, load_crop(data, 3.0, "center")),
            "first": (0, load_crop(data, 3.0, "even", 0, 3)),
            "last": (room, load_crop(data, 3.0, "even", 2, 3)),
            f"at {random_start}": (random_start, load_audio(data, offset=random_start / TARGET, duration=3.0)),
        }
        for crop_name, (start, crop) in crops.items():
            difference = np.abs(crop - expected[start : start + len(crop)]).max()
            # float32 rounding in the decoder and soxr leaves <= 5e-7; the wrong crops were off by 3e-5 to 0.92
            if difference > 1e-5:
                mismatches.append(f"{name} {crop_name}: {difference:.2g}")
    assert not mismatches, mismatches


def test_stereo_is_the_mean_of_its_channels(tmp_path):
    left = tone(TARGET, 1.0, 1)[:, 0]
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, np.zeros_like(left)], axis=1), TARGET, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), left / 2, atol=1e-7)


def test_decoded_audio_dicts_are_cropped_and_resampled():
    samples = tone(22050, 3.0, 1)[:, 0]
    decoded = {"path": "x.mp3", "array": samples, "sampling_rate": 22050}
    expected = soxr.resample(samples, 22050, TARGET)[TARGET : 2 * TARGET]
    np.testing.assert_allclose(load_audio(decoded, offset=1.0, duration=1.0), expected, atol=1e-5)


def test_window_past_the_end_is_shorter_but_a_crop_is_padded(mp3s):
    path = mp3s[44100]  # 4 s
    assert len(load_audio(path, offset=3.0, duration=5.0)) == pytest.approx(TARGET, abs=2)
    crop = load_crop(path, crop_seconds=6.0)
    assert crop.shape == (6 * TARGET,)
    assert not crop[5 * TARGET :].any()  # zero padding at the end of a short track
    np.testing.assert_allclose(crop[: 3 * TARGET], decode_whole(path)[: 3 * TARGET], atol=1e-5)


def test_silent_and_very_short_clips(tmp_path):
    silent = tmp_path / "silent.mp3"
    sf.write(silent, np.zeros((44100 * 2, 2), np.float32), 44100, format="MP3")
    assert not load_crop(silent, crop_seconds=1.0, policy="random").any()
    short = tmp_path / "short.wav"
    sf.write(short, tone(44100, 0.05, 2), 44100)
    crop = load_crop(short, crop_seconds=1.0, policy="center")
    assert crop.shape == (TARGET,) and crop[:700].any() and not crop[900:].any()


def test_crop_positions_for_each_policy():
    total, crop = 30 * TARGET, 5 * TARGET
    assert crop_offset(total, crop, "center") == 25 * TARGET // 2
    starts = [crop_offset(total, crop, "even", index, 6) for index in range(6)]
    assert starts == [0, 5 * TARGET, 10 * TARGET, 15 * TARGET, 20 * TARGET, 25 * TARGET]
    assert crop_offset(total, crop, "even", 0, 1) == crop_offset(total, crop, "center")
    generator = torch.Generator().manual_seed(0)
    random_starts = {crop_offset(total, crop, "random", generator=generator) for _ in range(50)}
    assert len(random_starts) > 40 and min(random_starts) >= 0 and max(random_starts) <= total - crop
    assert {crop_offset(crop - 10, crop, policy) for policy in ("random", "center", "even")} == {0}
    with pytest.raises(ValueError, match="valid policies: random, center, even"):
        crop_offset(total, crop, "middle")
    with pytest.raises(ValueError, match="crop_index"):
        crop_offset(total, crop, "even", 6, 6)


def test_crops_are_cut_where_their_policy_says(mp3s):
    path = mp3s[48000]  # 4 s
    whole = decode_whole(path)
    last = load_crop(path, crop_seconds=1.0, policy="even", crop_index=3, n_crops=4)
    np.testing.assert_allclose(last, whole[len(whole) - TARGET :], atol=1e-5)
    center = load_crop(path, crop_seconds=1.0, policy="center")
    start = (len(whole) - TARGET) // 2
    np.testing.assert_allclose(center, whole[start : start + TARGET], atol=1e-5)
    torch.manual_seed(1)
    first, second = load_crop(path, 1.0, "random"), load_crop(path, 1.0, "random")
    assert first.shape == second.shape == (TARGET,) and not np.array_equal(first, second)


def test_undecodable_files_raise_an_error_naming_them(tmp_path):
    corrupt = tmp_path / "099134.mp3"
    corrupt.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 8)
    with pytest.raises(AudioDecodeError, match="099134.mp3"):
        load_crop(corrupt, crop_seconds=5.0)
    with pytest.raises(AudioDecodeError, match="fma_small/099/099134.mp3"):
        load_audio({"path": "fma_small/099/099134.mp3", "bytes": corrupt.read_bytes()})
    with pytest.raises(AudioDecodeError, match="missing.mp3: no such file"):
        audio_duration(tmp_path / "missing.mp3")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg binary")
def test_formats_libsndfile_cannot_read_fall_back_to_ffmpeg(tmp_path):
    source = tmp_path / "tone.wav"
    sf.write(source, tone(44100, 1.0, 2), 44100)
    m4a = tmp_path / "tone.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(source), "-c:a", "aac", str(m4a)], check=True)
    window = load_audio(m4a, offset=0.25, duration=0.5)
    reference = decode_whole(source)[4000:12000]
    assert window.shape == (8000,)
    assert np.corrcoef(window, reference)[0, 1] > 0.99  # a lossy codec: same signal, not same samples
