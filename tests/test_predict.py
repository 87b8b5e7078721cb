"""`hf-fma predict` and `predict_files` on real audio formats, whole tracks and broken files."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import ASTFeatureExtractor, pipeline

import hf_fma.predict as predict_module
import hf_fma.track_windows as track_windows_module
from hf_fma import cli
from hf_fma.arguments import DataArguments, ModelArguments
from hf_fma.geometry import extractor_crop_samples, extractor_crop_seconds
from hf_fma.transforms import AudioCropTransform
from hf_fma.metadata import SMALL_GENRES
from hf_fma.models.ast import build_ast, build_model
from hf_fma.models.baselines import build_cnn
from hf_fma.models.feature_extraction_fma_ast import FmaASTFeatureExtractor
from hf_fma.audio_files import find_audio_files
from hf_fma.models.loading import load_classifier
from hf_fma.predict import main, predict_files
from hf_fma.prediction_output import write_predictions
from hf_fma.track_windows import MIN_DURATION, window_starts
from hf_fma.training import build_classifier, build_feature_extractor

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="the ffmpeg binary is not installed")
MAX_LENGTH = 500  # frames: 5 s crops, the study's


def music(seconds: float, sampling_rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A few seconds of something music-like: a chord whose notes change every half second, plus noise.
    (samples, channels) float32."""
    rng = np.random.default_rng(seed)
    time = np.arange(round(seconds * sampling_rate)) / sampling_rate
    notes = rng.uniform(110, 1760, size=(int(np.ceil(seconds * 2)) + 1, 3))[(time * 2).astype(int)]  # (samples, 3)
    signal = np.sin(2 * np.pi * notes * time[:, None]).sum(axis=1) / 6 + 0.02 * rng.standard_normal(len(time))
    return np.repeat(signal[:, None], channels, axis=1).astype(np.float32)


def write_m4a(path: Path, audio: np.ndarray, sampling_rate: int) -> Path:
    subprocess.run(
        [FFMPEG, "-v", "error", "-y", "-f", "f32le", "-ar", str(sampling_rate), "-ac", str(audio.shape[1]),
         "-i", "pipe:0", "-c:a", "aac", str(path)],
        input=np.ascontiguousarray(audio).tobytes(), check=True,
    )
    return path


@pytest.fixture(scope="session")
def feature_extractor() -> ASTFeatureExtractor:
    return ASTFeatureExtractor(max_length=MAX_LENGTH)


def saved(model, extractor, folder: Path) -> Path:
    """`folder` holding the model and its feature extractor, as a training run leaves them."""
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def ast_dir(tmp_path_factory, feature_extractor) -> Path:
    """A tiny AST (hidden 32, 2 layers) with the FMA small genres."""
    torch.manual_seed(0)
    model = build_ast("tiny", num_mel_bins=128, max_length=MAX_LENGTH, id2label=SMALL_GENRES)
    return saved(model, feature_extractor, tmp_path_factory.mktemp("tiny-ast"))


@pytest.fixture(scope="session")
def cnn_dir(tmp_path_factory, feature_extractor) -> Path:
    torch.manual_seed(0)
    model = build_cnn("tiny", feature_extractor, SMALL_GENRES)
    # Batch norm's initial running statistics (mean 0, var 1) shrink a fresh CNN's activations to ~1e-5 and
    # its scores to a uniform 1/8 in eval mode; a few training-mode passes set them as training would.
    with torch.no_grad():
        for _ in range(5):
            model(input_values=torch.randn(4, MAX_LENGTH, 128))
    return saved(model, feature_extractor, tmp_path_factory.mktemp("tiny-cnn"))


@pytest.fixture(scope="session")
def downscaled_ast_dir(tmp_path_factory) -> Path:
    """A tiny AST on the study's features, pooled 4 x 4: (125 frames, 32 mel bins) from 5 s windows."""
    torch.manual_seed(0)
    extractor = FmaASTFeatureExtractor(max_length=MAX_LENGTH, frequency_downscale=4, time_downscale=4)
    model = build_model("tiny", extractor, SMALL_GENRES, patch_size=4, frequency_stride=4, time_stride=4)
    return saved(model, extractor, tmp_path_factory.mktemp("tiny-ast-4x4"))


@pytest.fixture(scope="session")
def classifier(ast_dir):
    return load_classifier(ast_dir, device="cpu")


@pytest.fixture(scope="session")
def library(tmp_path_factory) -> dict[str, Path]:
    """3 s clips at 44.1 kHz stereo in each format, plus the odd inputs a real library holds."""
    folder = tmp_path_factory.mktemp("library")
    files = {}
    for seed, extension in enumerate(("mp3", "wav", "flac", "ogg")):
        files[extension] = folder / f"clip.{extension}"
        sf.write(files[extension], music(3.0, 44100, channels=2, seed=seed), 44100)
    if FFMPEG:
        files["m4a"] = write_m4a(folder / "clip.m4a", music(3.0, 44100, channels=2, seed=9), 44100)
    files["silent"] = folder / "silent.wav"
    sf.write(files["silent"], np.zeros((3 * 16000, 1), np.float32), 16000)
    files["8k_mono"] = folder / "phone.wav"
    sf.write(files["8k_mono"], music(2.0, 8000, channels=1, seed=5), 8000)
    files["48k_6ch"] = folder / "surround.flac"
    sf.write(files["48k_6ch"], music(2.0, 48000, channels=6, seed=6), 48000)
    files["short"] = folder / "blip.wav"
    sf.write(files["short"], music(0.05, 16000), 16000)
    files["text"] = folder / "notes.mp3"
    files["text"].write_text("this is a playlist, not audio\n" * 20)
    files["empty"] = folder / "empty.flac"
    files["empty"].touch()
    # A download cut short: the MP3's header still declares 20 s but only the first ~40% of frames exist.
    whole = folder / "whole.mp3"
    sf.write(whole, music(20.0, 44100, channels=2, seed=7), 44100)
    files["truncated"] = folder / "truncated.mp3"
    data = whole.read_bytes()
    files["truncated"].write_bytes(data[: int(len(data) * 0.4)])
    whole.unlink()
    return files


# --- windows -----------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:At least one mel filter has all zero values")  # AST's own 128-bin set-up
@pytest.mark.parametrize("crop_seconds, crop_samples", [(3.0, 48_000), (5.0, 80_000)])
def test_predict_cuts_the_windows_training_and_evaluation_cut(tmp_path, monkeypatch, crop_seconds, crop_samples):
    """A model saved by training with crop_seconds crops: training's random crops, evaluation's crops and
    predict's windows all hold crop_seconds x 16,000 samples (not the 48,240 that make 300 whole frames)."""
    model_args = ModelArguments(model_family="cnn", model_name_or_path="tiny", feature_mean=-4.0, feature_std=4.0)
    data_args = DataArguments(crop_seconds=crop_seconds)
    extractor = build_feature_extractor(model_args, data_args, train=None)  # given statistics: no data read
    folder = saved(build_classifier(model_args, extractor, SMALL_GENRES), extractor, tmp_path / "run")

    audio = music(12.0, 16000, seed=4)[:, 0]
    row = {"audio": [{"array": audio, "sampling_rate": 16000}], "genre": [0]}
    # The transforms run_training and evaluate_model build (the latter from the saved extractor).
    training_crop = AudioCropTransform(data_args.crop_seconds, "random", sampling_rate=extractor.sampling_rate)
    loaded = load_classifier(folder, device="cpu")[1]
    evaluation_crop = AudioCropTransform(extractor_crop_seconds(loaded), "center", sampling_rate=loaded.sampling_rate)
    assert len(training_crop(row)["waveform"][0]) == crop_samples
    assert len(evaluation_crop(row)["waveform"][0]) == crop_samples

    windows = []
    real_load_audio = track_windows_module.load_audio

    def spy(*args, **kwargs):
        window = real_load_audio(*args, **kwargs)
        windows.append(len(window))
        return window

    monkeypatch.setattr(track_windows_module, "load_audio", spy)
    path = tmp_path / "twelve_seconds.wav"
    sf.write(path, audio, 16000)
    [result] = predict_files(folder, [path], device="cpu")
    assert result.ok and windows and set(windows) == {crop_samples}
    assert extractor_crop_samples(loaded) == crop_samples


def test_window_starts_cover_the_track_and_end_at_its_end():
    assert window_starts(300, window=1000, hop=1000) == [0]  # shorter than a window: one (padded) window
    assert window_starts(3000, window=1000, hop=1000) == [0, 1000, 2000]
    assert window_starts(3500, window=1000, hop=1000) == [0, 1000, 2000, 2500]  # last one aligned to the end
    assert window_starts(3000, window=1000, hop=500) == [0, 500, 1000, 1500, 2000]
    assert window_starts(10_000, window=1000, hop=1000, max_windows=3) == [0, 4500, 9000]
    with pytest.raises(ValueError, match="hop"):
        window_starts(3000, window=1000, hop=0)


def test_a_long_track_is_the_mean_of_its_windows_decoded_one_at_a_time(tmp_path, classifier, monkeypatch):
    """A 2-minute track whose halves differ: its scores are the mean over windows spanning all of it, and no
    decode call ever asks for more than one window of audio."""
    model, feature_extractor = classifier
    audio = np.concatenate([music(60.0, 16000, seed=1), 0.3 * music(60.0, 16000, seed=2)])[:, 0]
    path = tmp_path / "long.wav"
    sf.write(path, audio, 16000)

    requests = []
    real_load_audio = track_windows_module.load_audio

    def spy(source, sampling_rate=16000, offset=0.0, duration=None):
        requests.append((offset, duration))
        return real_load_audio(source, sampling_rate=sampling_rate, offset=offset, duration=duration)

    monkeypatch.setattr(track_windows_module, "load_audio", spy)
    [result] = predict_files(model, [path], feature_extractor=feature_extractor, top_k=len(SMALL_GENRES), batch_size=16)

    window = extractor_crop_samples(feature_extractor)
    starts = window_starts(len(audio), window, hop=window)
    assert result.ok and result.windows == len(starts) == 24  # 24 adjacent 5 s windows
    assert result.duration == pytest.approx(120.0, abs=0.01)
    assert all(duration <= window / 16000 + 1e-9 for _, duration in requests)
    assert [round(offset * 16000) for offset, _ in requests] == starts

    crops = [audio[start : start + window] for start in starts]
    inputs = feature_extractor(crops, sampling_rate=16000, return_tensors="pt")
    with torch.inference_mode():
        expected = model(**inputs).logits.softmax(-1).mean(0)
    scores = {prediction["label"]: prediction["score"] for prediction in result.predictions}
    assert [scores[name] for name in SMALL_GENRES] == pytest.approx(expected.tolist(), abs=1e-5)
    assert [p["score"] for p in result.predictions] == sorted(scores.values(), reverse=True)


def test_hop_overlaps_windows(tmp_path, classifier):
    model, feature_extractor = classifier
    path = tmp_path / "twelve_seconds.wav"
    sf.write(path, music(12.0, 16000, seed=4), 16000)
    adjacent, overlapping = (
        predict_files(model, [path], feature_extractor=feature_extractor, hop=hop)[0] for hop in (None, 2.5)
    )
    assert (adjacent.windows, overlapping.windows) == (3, 4)  # starts 0, 5.0, 7.0 s and 0, 2.5, 5.0, 7.0 s


# --- formats and odd inputs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mp3", "wav", "flac", "ogg", pytest.param("m4a", marks=needs_ffmpeg)])
def test_each_format_gets_top_k_genres(library, classifier, kind):
    model, feature_extractor = classifier
    [result] = predict_files(model, [library[kind]], feature_extractor=feature_extractor, top_k=3)
    assert result.ok, result.error
    assert result.file == str(library[kind])
    assert result.duration == pytest.approx(3.0, abs=0.06)  # MP3/AAC encoders pad a few ms
    assert result.windows == 1
    assert len(result.predictions) == 3
    assert {p["label"] for p in result.predictions} <= set(SMALL_GENRES)
    scores = [p["score"] for p in result.predictions]
    assert scores == sorted(scores, reverse=True) and 0 < scores[-1] <= scores[0] <= 1


def test_real_fma_mp3_is_classified_from_windows_across_the_whole_clip(fma_sample, classifier):
    model, feature_extractor = classifier
    [result] = predict_files(model, [fma_sample / "fma_small"], feature_extractor=feature_extractor)
    assert result.ok, result.error
    assert result.file.endswith("000002.mp3")
    assert result.duration == pytest.approx(10.02, abs=0.05)
    assert result.windows == 3  # two whole 5 s windows (80,000 samples each), then one aligned to the end for the last 0.02 s
    assert result.warning is None


def test_resampled_and_downmixed_inputs_keep_their_duration(library, classifier):
    model, feature_extractor = classifier
    results = predict_files(model, [library["8k_mono"], library["48k_6ch"]], feature_extractor=feature_extractor)
    for result in results:
        assert result.ok, result.error
        assert result.duration == pytest.approx(2.0, abs=0.01)
        assert sum(p["score"] for p in result.predictions) <= 1.0


def test_a_silent_file_is_an_error_not_a_genre(library, classifier):
    model, feature_extractor = classifier
    [result] = predict_files(model, [library["silent"]], feature_extractor=feature_extractor)
    assert result.error == "nothing to classify: silent throughout (peak under -80 dBFS)"
    assert result.predictions == []


def test_silent_windows_are_left_out_of_a_track_s_average(tmp_path, classifier):
    model, feature_extractor = classifier
    path = tmp_path / "late_start.wav"  # 5.1 s of digital silence, then 6.9 s of music
    sf.write(path, np.concatenate([np.zeros((81600, 1), np.float32), music(6.9, 16000, seed=8)]), 16000)
    [result] = predict_files(model, [path], feature_extractor=feature_extractor)
    assert result.ok and result.windows == 2  # of 3: [0, 5.0 s] is silent, [5.0, 10.0] and [7.0, 12.0] are not
    assert result.warning == "1 silent window (peak under -80 dBFS) left out of the average"


def test_truncated_mp3_is_classified_from_the_audio_it_still_has(library, classifier):
    """Its header declares 20 s; only the first ~8 s remain, and windows stop where they end."""
    model, feature_extractor = classifier
    [result] = predict_files(model, [library["truncated"]], feature_extractor=feature_extractor)
    assert result.ok, result.error
    assert 5 < result.duration < 10  # ~40% of 20 s decodes
    assert result.windows == 2  # the first 5 s, then the rest up to the cut (of 4 windows across 20 s)
    assert result.warning.startswith(f"audio ends at {result.duration:.1f} s of the 20.0 s its header declares")
    assert len(result.predictions) == 3


def test_bad_files_get_error_rows_and_the_rest_are_classified(library, classifier, tmp_path):
    model, feature_extractor = classifier
    missing = tmp_path / "gone.mp3"
    inputs = [library["text"], library["wav"], library["empty"], library["short"], missing, library["flac"]]
    results = predict_files(model, inputs, feature_extractor=feature_extractor, batch_size=4)

    assert [result.file for result in results] == [str(path) for path in inputs]
    text, wav, empty, short, gone, flac = results
    assert wav.ok and flac.ok and len(wav.predictions) == 3
    assert text.error.startswith("libsndfile cannot read it") and "\n" not in text.error  # one line per row
    assert empty.error == "empty file (0 bytes)"
    assert short.error.startswith("too short") and f"{MIN_DURATION} s" in short.error
    assert gone.error == "no such file or folder"
    for failed in (text, empty, short, gone):
        assert failed.predictions == [] and failed.windows == 0


# --- batching, folders, both models, pipeline ----------------------------------------------------------------


def test_batching_across_files_changes_no_file_s_scores(library, classifier):
    model, feature_extractor = classifier
    files = [library[kind] for kind in ("mp3", "wav", "flac", "ogg", "truncated")]
    one_by_one = predict_files(model, files, feature_extractor=feature_extractor, top_k=8, batch_size=1)
    batched = predict_files(model, files, feature_extractor=feature_extractor, top_k=8, batch_size=3)
    for single, shared in zip(one_by_one, batched):
        assert single.windows == shared.windows
        single_scores = {p["label"]: p["score"] for p in single.predictions}
        shared_scores = {p["label"]: p["score"] for p in shared.predictions}
        assert shared_scores == pytest.approx(single_scores, abs=1e-5)
    # the files really differ, so scores mixed up between files would show
    first, second = ({p["label"]: p["score"] for p in result.predictions} for result in one_by_one[:2])
    assert max(abs(first[name] - second[name]) for name in SMALL_GENRES) > 1e-4


def test_decoding_workers_give_the_records_of_one_process_in_input_order(library, classifier, tmp_path):
    model, feature_extractor = classifier
    kinds = ("text", "mp3", "silent", "wav", "empty", "truncated", "short", "flac", "8k_mono", "ogg", "48k_6ch")
    # A 40 s track among short clips: its 8 windows outlast its neighbours' decoding in the other worker.
    long_track = tmp_path / "long.flac"
    sf.write(long_track, music(40.0, 22050, seed=11), 22050)
    inputs = [library[kind] for kind in kinds[:5]] + [long_track, tmp_path / "gone.wav"] + [library[kind] for kind in kinds[5:]]
    records = {
        workers: [asdict(result) for result in predict_files(
            model, inputs, feature_extractor=feature_extractor, top_k=8, batch_size=3, num_workers=workers
        )]
        for workers in (0, 2)
    }  # fmt: skip
    assert records[2] == records[0]  # scores, durations, windows, errors and warnings, file by file
    assert [record["file"] for record in records[2]] == [str(path) for path in inputs]
    assert sum(record["error"] is not None for record in records[2]) == 5  # text, silent, empty, gone, short
    assert sum(record["warning"] is not None for record in records[2]) == 1  # the truncated MP3


def test_progress_bar_counts_files_on_a_terminal(library, classifier, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    model, feature_extractor = classifier
    monkeypatch.setattr(sys, "stderr", Terminal())
    predict_files(model, [library["wav"], library["flac"]], feature_extractor=feature_extractor, progress=True)
    assert "2/2" in sys.stderr.getvalue()


def test_folders_are_searched_recursively_for_audio_only(tmp_path):
    (tmp_path / "album" / "disc 2").mkdir(parents=True)
    for name in ("album/b.mp3", "album/disc 2/a.FLAC", "album/cover.jpg", "album/._b.mp3", "album/notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    found = find_audio_files([tmp_path / "album", tmp_path / "album" / "b.mp3", tmp_path / "empty"])
    assert found == [
        (tmp_path / "album" / "b.mp3", None),
        (tmp_path / "album" / "disc 2" / "a.FLAC", None),
        (tmp_path / "empty", found[2][1]),
    ]
    assert found[2][1].startswith("no audio files")


def test_cnn_folder_predicts_like_the_ast(cnn_dir, library):
    [result] = predict_files(cnn_dir, [library["wav"]], device="cpu", top_k=2)
    assert result.ok and len(result.predictions) == 2


@needs_ffmpeg
@pytest.mark.parametrize("model_fixture", ["ast_dir", "cnn_dir", "downscaled_ast_dir"])
def test_pipeline_and_predict_agree_on_a_clip_within_one_window(request, model_fixture, tmp_path):
    """The README's `pipeline("audio-classification", model=folder)` works for both models and for the
    study's pooled features, and for a clip no longer than one window predict_files gives its scores."""
    folder = request.getfixturevalue(model_fixture)
    path = tmp_path / "clip.wav"
    sf.write(path, music(4.0, 16000, seed=3), 16000)
    classify = pipeline("audio-classification", model=str(folder), device="cpu", trust_remote_code=True)
    from_pipeline = classify(str(path), top_k=3)
    [result] = predict_files(folder, [path], device="cpu", top_k=3)
    assert [p["label"] for p in result.predictions] == [p["label"] for p in from_pipeline]
    assert [p["score"] for p in result.predictions] == pytest.approx([p["score"] for p in from_pipeline], abs=1e-5)


# --- command line --------------------------------------------------------------------------------------------


def test_symlinked_folders_are_followed_each_file_once_without_looping(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "deep").mkdir(parents=True)
    (elsewhere / "deep" / "b.mp3").write_bytes(b"x")
    library = tmp_path / "library"
    (library / "real").mkdir(parents=True)
    (library / "real" / "a.mp3").write_bytes(b"x")
    (library / "linked").symlink_to(elsewhere)  # a folder kept on another disk
    (library / "again").symlink_to(elsewhere)  # the same folder reached twice
    (library / "real" / "loop").symlink_to(library)  # a link back to an ancestor
    found = [path for path, error in find_audio_files([library])]
    assert found == [library / "again" / "deep" / "b.mp3", library / "real" / "a.mp3"]


def test_output_file_is_replaced_whole_when_the_run_ends(ast_dir, library, tmp_path, monkeypatch):
    output = tmp_path / "genres.jsonl"
    output.write_text("rows of an earlier run\n")
    seen_during_the_run = []

    def write_and_look(results, stream, output_format, top_k, **options):
        seen_during_the_run.append((output.read_text(), Path(stream.name).parent))
        return write_predictions(results, stream, output_format, top_k, **options)

    monkeypatch.setattr(predict_module, "write_predictions", write_and_look)
    assert main([str(ast_dir), str(library["wav"]), "--format", "jsonl", "-o", str(output)]) == 0
    # Another run reading or writing the file meanwhile sees the old file whole, never a truncated one.
    assert seen_during_the_run == [("rows of an earlier run\n", tmp_path)]
    [row] = map(json.loads, output.read_text().splitlines())
    assert row["file"] == str(library["wav"])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["genres.jsonl"]  # no temporary file left
    assert stat.S_IMODE(output.stat().st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_table_output_and_exit_code_0(ast_dir, library, capsys, monkeypatch):
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)  # keep this process's own setting
    arguments = [str(ast_dir), str(library["wav"]), str(library["mp3"]), "--device", "cpu", "--threads", "1"]
    assert cli.main(["predict", *arguments]) == 0
    assert threads == [1]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["file", "seconds", "windows", "genre", "1"]
    assert lines[1].startswith(str(library["wav"])) and lines[2].startswith(str(library["mp3"]))
    assert lines[1].split()[1:3] == ["3.0", "1"] and lines[1].split()[3] in SMALL_GENRES


@pytest.mark.parametrize(
    ("cores", "workers", "expected_threads", "has_affinity"),
    [(8, 2, 6, True), (2, 2, 1, True), (2, 0, None, True), (8, 3, 5, False)],  # False: macOS, no sched_getaffinity
)
def test_decoding_workers_leave_their_cores_to_themselves(cores, workers, expected_threads, has_affinity, ast_dir, library, monkeypatch):
    """Without --threads, a model on the CPU gets the cores the workers leave (at least one); without
    workers torch keeps its own default."""
    threads, set_num_threads, this_process = [], torch.set_num_threads, os.getpid()

    def note_this_process_setting(count: int) -> None:
        if os.getpid() == this_process:
            threads.append(count)
        else:  # a DataLoader worker setting its 1 thread: really, or its forked thread pool may deadlock
            set_num_threads(count)

    monkeypatch.setattr(torch, "set_num_threads", note_this_process_setting)
    if has_affinity:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    else:
        monkeypatch.delattr(os, "sched_getaffinity")
        monkeypatch.setattr(os, "cpu_count", lambda: cores)
    arguments = [str(ast_dir), str(library["wav"]), "--device", "cpu", "--num_workers", str(workers), "--no_progress"]
    assert main(arguments) == 0
    assert threads == ([] if expected_threads is None else [expected_threads])


def test_jsonl_output_names_failures_and_exit_code_1(ast_dir, library, capsys):
    code = main([str(ast_dir), str(library["flac"]), str(library["text"]), "--format", "jsonl", "--top-k", "2"])
    captured = capsys.readouterr()
    assert code == 1
    good, bad = map(json.loads, captured.out.splitlines())
    assert good["file"] == str(library["flac"]) and good["error"] is None and len(good["predictions"]) == 2
    assert set(good["predictions"][0]) == {"label", "score"}
    assert bad["file"] == str(library["text"]) and bad["error"] and bad["predictions"] == []
    assert "1 of 2 files failed" in captured.err


def test_csv_output_to_a_file(ast_dir, library, tmp_path):
    output = tmp_path / "genres.csv"
    code = main([str(ast_dir), str(library["ogg"]), str(library["empty"]), "--format", "csv", "-o", str(output),
                 "--top-k", "20", "--batch-size", "2", "--hop", "1"])
    assert code == 1
    rows = list(csv.DictReader(io.StringIO(output.read_text())))
    assert [row["file"] for row in rows] == [str(library["ogg"]), str(library["empty"])]
    assert rows[0]["genre_8"] in SMALL_GENRES and "genre_9" not in rows[0]  # top-k capped at the 8 genres
    assert int(rows[0]["windows"]) == 1 and rows[0]["error"] == ""
    assert rows[1]["error"] == "empty file (0 bytes)" and rows[1]["genre_1"] == ""


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--top-k", "0"], "invalid positive int value"),
        (["--format", "xml"], "invalid choice"),
        (["--num_workers", "-1"], "--num_workers must be 0"),
        (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "tpu"], "device"),
    ],
)
def test_usage_errors_exit_2(ast_dir, library, capsys, arguments, message):
    try:
        code = main([str(ast_dir), str(library["wav"]), *arguments])
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_a_folder_without_a_model_exits_2(tmp_path, library, capsys):
    assert main([str(tmp_path), str(library["wav"])]) == 2
    assert "cannot load an audio-classification model" in capsys.readouterr().err


# --- paths that are not files, output that is never lost --------------------------------------------------


def test_folder_files_come_in_sorted_order_whatever_the_walk_order(tmp_path):
    album = tmp_path / "album"
    (album / "a").mkdir(parents=True)
    names = ["b.mp3", "a/z.mp3", "a/y.mp3", "c.wav", "a/x.flac"]  # a walk lists album/ before album/a/
    for name in names:
        (album / name).write_bytes(b"x")
    found = find_audio_files([album])
    assert found == [(album / name, None) for name in sorted(names)]


@pytest.mark.filterwarnings("ignore:At least one mel filter has all zero values")  # AST's own 128-bin set-up
def test_every_bad_path_gets_a_row_and_the_good_files_theirs(ast_dir, library, tmp_path):
    folder = tmp_path / "music"
    folder.mkdir()
    shutil.copy(library["wav"], folder / "good.wav")
    (folder / "dangling.mp3").symlink_to(tmp_path / "moved-away.mp3")
    os.mkfifo(folder / "pipe.mp3")  # reading it would wait for a writer forever
    loop = tmp_path / "loop.mp3"
    loop.symlink_to(loop)
    output = tmp_path / "genres.csv"
    code = main([str(ast_dir), str(loop), str(folder), str(library["flac"]), "--format", "csv", "-o", str(output),
                 "--device", "cpu", "--no_progress"])
    assert code == 1
    rows = {row["file"]: row for row in csv.DictReader(io.StringIO(output.read_text()))}
    assert list(rows) == [str(loop), str(folder / "dangling.mp3"), str(folder / "good.wav"),
                          str(folder / "pipe.mp3"), str(library["flac"])]
    assert rows[str(loop)]["error"].startswith("symbolic link loop")
    assert rows[str(folder / "dangling.mp3")]["error"].startswith("broken symbolic link")
    assert str(tmp_path / "moved-away.mp3") in rows[str(folder / "dangling.mp3")]["error"]
    assert rows[str(folder / "pipe.mp3")]["error"] == "not a regular file: a named pipe (FIFO)"
    for good in (folder / "good.wav", library["flac"]):
        assert rows[str(good)]["error"] == "" and rows[str(good)]["genre_1"] in SMALL_GENRES


def _interrupt_at(monkeypatch, file: Path) -> None:
    """Ctrl-C while `file` is being decoded."""
    decode_windows = track_windows_module.decode_windows

    def decode_or_interrupt(result, *args):
        if result.file == str(file):
            raise KeyboardInterrupt
        return decode_windows(result, *args)

    monkeypatch.setattr(track_windows_module, "decode_windows", decode_or_interrupt)


@pytest.mark.parametrize("output_format", ["table", "csv", "jsonl"])
@pytest.mark.parametrize("finished", [0, 2])
def test_an_interrupted_run_leaves_the_rows_it_finished_or_the_old_file(ast_dir, library, tmp_path, monkeypatch,
                                                                         output_format, finished):
    output = tmp_path / "genres.txt"
    output.write_text("rows of an earlier run\n")
    files = [library["wav"], library["mp3"], library["flac"]]
    _interrupt_at(monkeypatch, files[finished])
    with pytest.raises(KeyboardInterrupt):
        main([str(ast_dir), *map(str, files), "--format", output_format, "-o", str(output), "--device", "cpu",
              "--batch_size", "1", "--no_progress"])
    text = output.read_text()
    if finished == 0:
        assert text == "rows of an earlier run\n"
    else:
        assert [str(file) in text for file in files] == [True, True, False]
        if output_format == "table":
            assert text.splitlines()[0].split()[:3] == ["file", "seconds", "windows"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["genres.txt"]  # no temporary file left


def test_output_naming_a_folder_is_refused_before_any_work(ast_dir, library, tmp_path, monkeypatch, capsys):
    _interrupt_at(monkeypatch, library["wav"])  # decoding would end the test with a KeyboardInterrupt
    assert main([str(ast_dir), str(library["wav"]), "-o", str(tmp_path), "--device", "cpu"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == f"hf-fma predict: --output {tmp_path} is a folder: give the name of a file to write"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.filterwarnings("ignore:At least one mel filter has all zero values")  # AST's own 128-bin set-up
def test_a_model_that_does_not_take_its_extractor_s_features_is_refused_naming_both(tmp_path, feature_extractor, ast_dir, capsys):
    from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            conv_dim=(32, 32), conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=16,
                            num_conv_pos_embedding_groups=2, num_labels=len(SMALL_GENRES))
    wav2vec2 = saved(Wav2Vec2ForSequenceClassification(config), feature_extractor, tmp_path / "wav2vec2")
    # An AST trained on 5 s crops, saved beside an extractor making 3 s ones.
    shorter = saved(*load_classifier(ast_dir, device="cpu")[:1], ASTFeatureExtractor(max_length=300), tmp_path / "ast")
    for folder in (wav2vec2, shorter):
        assert main([str(folder), str(tmp_path / "never-read.wav")]) == 2
    first, second = capsys.readouterr().err.splitlines()
    assert "Wav2Vec2ForSequenceClassification" in first and "ASTFeatureExtractor" in first
    assert second == ("hf-fma predict: the model ASTForAudioClassification does not fit its feature extractor: "
                      "it takes 500 frames but ASTFeatureExtractor gives 300")


def test_loading_a_model_says_nothing_about_ast_s_empty_mel_filter(ast_dir):
    # AST's 128 Kaldi mel bins leave the lowest filter empty: transformers warns each time the extractor is
    # built, which `hf-fma evaluate` and `predict_files` users saw as noise on every load.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_classifier(ast_dir, device="cpu")
    assert [str(warning.message) for warning in caught] == []
