"""A multi-label model (FMA's second task) evaluated, run on files, in the pipeline and on its card.

The models are tiny and untrained, built directly and given the multi-label config by hand, as training
saves it: problem_type, the genre vocabulary as labels, `genre_parents`, `multi_label_threshold`. Their
classifier weights are drawn wide, so that genres score apart. Expectations come from scikit-learn on
logits averaged by hand, from the model run on the audio by hand, and from genres.csv's hierarchy.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score
from transformers import AutoModelForAudioClassification, pipeline

from hf_fma.audio import load_audio
from hf_fma.cards import model_card
from hf_fma.data import load_fma
from hf_fma.evaluate_run import evaluate_main
from hf_fma.evaluation import evaluate_model, predict_crops
from hf_fma.evaluation_report import flat_metrics, write_evaluation
from hf_fma.metadata import genre_parents, load_genres
from hf_fma.models import build_cnn
from hf_fma.models.feature_extraction_fma_ast import FmaASTFeatureExtractor
from hf_fma.predict import main as predict_main
from hf_fma.predict import predict_files
from hf_fma.results import format_results_table, results_table
from hf_fma.runs import Run

# Genres of the demo's test split (its `genres` lists): top-level ones, sub-genres of three of them (Punk,
# Rap, Synth Pop), a sub-sub-genre (Post-Punk, of Punk, of Rock), and Ambient, whose parent is not among them.
GENRES = ["Ambient", "Electronic", "Experimental", "Folk", "Hip-Hop", "Pop", "Post-Punk", "Punk", "Rap", "Rock",
          "Synth Pop"]
MP3 = Path(__file__).resolve().parent / "data" / "fma-sample" / "fma_small" / "000" / "000002.mp3"


@pytest.fixture(scope="module")
def parents(fma_sample):
    """FMA's hierarchy as genres.csv gives it."""
    return genre_parents(load_genres(fma_sample / "fma_metadata" / "genres.csv"))


@pytest.fixture(scope="module")
def extractor():
    # 1 s crops, 32 mel bins x 25 frames after 4 x 4 pooling: cheap, and real fbank inputs.
    return FmaASTFeatureExtractor(max_length=100, frequency_downscale=4, time_downscale=4)


def multi_label_cnn(extractor, parents, threshold=None, seed=0):
    torch.manual_seed(seed)
    model = build_cnn("tiny", extractor, GENRES).eval()
    torch.nn.init.normal_(model.classifier.weight, std=1.5)  # scores spread over (0, 1), not all near 0.5
    model.config.problem_type = "multi_label_classification"
    model.config.genre_parents = {genre: parents[genre] for genre in GENRES}
    model.config.multi_label_threshold = threshold
    return model


def saved(model, extractor, folder: Path) -> Path:
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def demo_splits(demo_dir):
    return load_fma("small", data_dir=demo_dir)


def by_hand(model, extractor, split, n_crops):
    """(track ids, multi-hot truth, sigmoid of the mean crop logits) of the tracks with a genre of GENRES.
    The crop logits are predict_crops', which test_evaluation checks against the crops' own."""
    crops = predict_crops(model, extractor, split, n_crops=n_crops, batch_size=8)
    genres_of = dict(zip(split["track_id"], split["genres"]))
    track_ids = sorted(track_id for track_id, genres in genres_of.items() if set(genres) & set(GENRES))
    truth = np.array([[genre in genres_of[track_id] for genre in GENRES] for track_id in track_ids], dtype=int)
    logits = np.stack([crops["logits"][crops["track_id"] == track_id].astype(np.float64).mean(axis=0) for track_id in track_ids])
    # float32, as the metric module's features store the scores (ties where float32 rounds them together)
    return track_ids, truth, torch.sigmoid(torch.from_numpy(logits)).numpy().astype(np.float32)


def ancestors(genre, parents):
    while parents.get(genre) is not None:
        genre = parents[genre]
        yield genre


def test_track_scores_are_the_sigmoid_of_mean_crop_logits_scored_as_scikit_learn_does(demo_splits, extractor, parents):
    model = multi_label_cnn(extractor, parents)
    test = demo_splits["test"]
    result = evaluate_model(model, extractor, test, n_crops=2, batch_size=8)
    track_ids, truth, scores = by_hand(model, extractor, test, n_crops=2)

    assert result["task"] == "multi_label" and result["tracks"]["track_id"] == track_ids
    assert result["num_tracks"] == len(track_ids) < len(test)  # tracks with none of the genres are left out
    track = result["track"]
    with_positives = truth.sum(axis=0) > 0
    per_genre = [average_precision_score(truth[:, j], scores[:, j]) for j in np.flatnonzero(with_positives)]
    assert track["mean_average_precision"] == pytest.approx(np.mean(per_genre), abs=1e-5)
    assert track["micro_average_precision"] == pytest.approx(average_precision_score(truth.ravel(), scores.ravel()), abs=1e-5)
    assert track["micro_roc_auc"] == pytest.approx(roc_auc_score(truth, scores, average="micro"), abs=1e-5)
    has_both = with_positives & (truth.sum(axis=0) < len(truth))
    assert track["macro_roc_auc"] == pytest.approx(roc_auc_score(truth[:, has_both], scores[:, has_both]), abs=1e-5)
    # No threshold given nor saved: the one of the best micro-F1 on this split.
    assert result["threshold_source"] == "chosen"
    best = max(f1_score(truth, scores >= candidate, average="micro") for candidate in np.unique(scores))
    assert track["micro_f1"] == pytest.approx(best, abs=1e-6)
    predicted = scores >= track["threshold"]
    assert result["tracks"]["predicted"] == [[g for g, p in zip(GENRES, row) if p] for row in predicted]
    # A predicted sub-genre whose parent (in GENRES) is not predicted is a violation.
    decisions = [(row, GENRES[j]) for row in predicted for j in np.flatnonzero(row) if parents[GENRES[j]] in GENRES]
    violations = [1 for row, genre in decisions if not row[GENRES.index(parents[genre])]]
    assert track["hierarchy_violation_rate"] == pytest.approx(len(violations) / len(decisions) if decisions else 0.0)

    flat = flat_metrics(result, "test")
    assert flat["test_track_map"] == track["mean_average_precision"] and flat["test_threshold"] == track["threshold"]
    assert flat["test_clip_map"] == result["clip"]["mean_average_precision"] and flat["test_tracks"] == len(track_ids)
    assert "test_track_accuracy" not in flat


def test_test_split_is_scored_at_the_threshold_chosen_on_validation(demo_splits, extractor, parents, tmp_path, demo_dir, capsys):
    model = multi_label_cnn(extractor, parents)
    validation = evaluate_model(model, extractor, demo_splits["validation"], n_crops=2, batch_size=8)
    assert validation["threshold_source"] == "chosen"
    # As training does: the validation threshold into the saved config, then the test evaluation.
    model.config.multi_label_threshold = validation["track"]["threshold"]
    folder = saved(model, extractor, tmp_path / "model")
    reloaded = AutoModelForAudioClassification.from_pretrained(folder).eval()
    test = evaluate_model(reloaded, extractor, demo_splits["test"], n_crops=2, batch_size=8)

    assert test["threshold_source"] == "model"
    assert test["track"]["threshold"] == validation["track"]["threshold"]
    _, truth, scores = by_hand(reloaded, extractor, demo_splits["test"], n_crops=2)
    at_validation_threshold = f1_score(truth, scores >= validation["track"]["threshold"], average="micro")
    assert test["track"]["micro_f1"] == pytest.approx(at_validation_threshold, abs=1e-6)
    given = evaluate_model(reloaded, extractor, demo_splits["test"], n_crops=2, batch_size=8, threshold=0.9)
    assert given["threshold_source"] == "given" and given["track"]["threshold"] == 0.9

    # `hf-fma evaluate` on the saved model: the saved threshold, said so, and no confusion matrix.
    out = tmp_path / "reports"
    code = evaluate_main([str(folder), "--data_dir", str(demo_dir), "--n_crops", "2", "--output_dir", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert f"at least {validation['track']['threshold']:.4f} (the model's saved `multi_label_threshold`" in printed
    written = json.loads((out / "evaluation_small_test.json").read_text())
    assert written["track"]["mean_average_precision"] == pytest.approx(test["track"]["mean_average_precision"])
    assert sorted(path.name for path in out.iterdir()) == ["evaluation_small_test.json", "evaluation_small_test.md"]


def hand_scores(model, extractor) -> np.ndarray:
    """The model's sigmoid scores for the first window (1 s) of the real FMA MP3, computed here."""
    audio = load_audio(MP3, extractor.sampling_rate, offset=0.0, duration=1.0)
    inputs = extractor(audio, sampling_rate=extractor.sampling_rate, return_tensors="pt")
    with torch.inference_mode():
        return torch.sigmoid(model(**inputs).logits[0]).numpy()


def test_predict_names_the_genres_at_or_above_the_saved_threshold(extractor, parents, tmp_path, capsys):
    model = multi_label_cnn(extractor, parents, seed=1)
    scores = hand_scores(model, extractor)
    ranked = np.sort(scores)[::-1]
    k = int(np.argmax(ranked[:-1] - ranked[1:])) + 1  # the widest gap between ranked scores
    model.config.multi_label_threshold = float((ranked[k - 1] + ranked[k]) / 2)
    expected = [genre for genre, score in zip(GENRES, scores) if score >= model.config.multi_label_threshold]
    assert len(expected) == k
    folder = saved(model, extractor, tmp_path / "model")

    [result] = predict_files(folder, MP3, max_windows=1, top_k=2, device="cpu")
    assert result.genres == expected
    top = [GENRES[j] for j in np.argsort(-scores)[:2]]
    assert [prediction["label"] for prediction in result.predictions] == top
    assert [prediction["score"] for prediction in result.predictions] == pytest.approx(np.sort(scores)[::-1][:2], abs=1e-4)

    outputs = {}
    for output_format in ("jsonl", "csv", "table"):
        assert predict_main([str(folder), str(MP3), "--max_windows", "1", "--format", output_format, "--no_progress"]) == 0
        outputs[output_format] = capsys.readouterr().out
    assert json.loads(outputs["jsonl"])["genres"] == expected
    [row] = csv.DictReader(io.StringIO(outputs["csv"]))
    assert row["genres"].split(";") == expected
    header, line = outputs["table"].splitlines()
    assert f"genres (score >= {model.config.multi_label_threshold:.4f})" in header and ", ".join(expected) in line


def test_hierarchy_consistent_never_predicts_a_sub_genre_without_its_parent(extractor, parents, tmp_path, capsys):
    model = multi_label_cnn(extractor, parents, threshold=0.5)
    with torch.no_grad():  # sub-genres certain, their parents ruled out: inconsistent as it gets
        for genre in GENRES:
            model.classifier.bias[GENRES.index(genre)] = 20.0 if parents[genre] in GENRES else -20.0
    folder = saved(model, extractor, tmp_path / "model")

    [raw] = predict_files(folder, MP3, max_windows=2, device="cpu")
    assert {"Post-Punk", "Punk", "Rap", "Synth Pop"} <= set(raw.genres) and "Rock" not in raw.genres
    [consistent] = predict_files(folder, MP3, max_windows=2, device="cpu", hierarchy_consistent=True, top_k=len(GENRES))
    for genre in consistent.genres:
        assert all(ancestor in consistent.genres for ancestor in ancestors(genre, parents) if ancestor in GENRES)
    assert {"Hip-Hop", "Pop", "Rock"} <= set(consistent.genres)
    score = {prediction["label"]: prediction["score"] for prediction in consistent.predictions}
    assert score["Pop"] == score["Synth Pop"]  # a parent scores its best child's score
    assert score["Rock"] == max(score["Punk"], score["Post-Punk"])

    # A single-label model has no hierarchy to keep: refused in one line, exit 2.
    single = build_cnn("tiny", extractor, GENRES)
    single_folder = saved(single, extractor, tmp_path / "single")
    capsys.readouterr()  # saving's progress bar
    assert predict_main([str(single_folder), str(MP3), "--hierarchy_consistent"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--hierarchy_consistent applies to multi-label models" in error


def test_pipeline_applies_a_sigmoid_to_a_multi_label_model(extractor, parents, tmp_path):
    model = multi_label_cnn(extractor, parents, threshold=0.5)
    folder = saved(model, extractor, tmp_path / "model")
    audio = load_audio(MP3, extractor.sampling_rate, offset=0.0, duration=1.0)
    classifier = pipeline("audio-classification", model=str(folder), top_k=None, device="cpu")
    scores = {item["label"]: item["score"] for item in classifier({"raw": audio, "sampling_rate": extractor.sampling_rate})}
    expected = hand_scores(model, extractor)
    assert [scores[genre] for genre in GENRES] == pytest.approx(expected, abs=1e-5)
    assert sum(scores.values()) != pytest.approx(1.0, abs=1e-3)  # not a softmax


@pytest.fixture(scope="module")
def multi_label_run(demo_splits, extractor, parents, tmp_path_factory, demo_dir):
    """A run folder as training leaves one for a multi-label model: model, extractor, evaluations of
    validation and test, all_results.json, run_config.yaml."""
    folder = tmp_path_factory.mktemp("multi-label-run")
    model = multi_label_cnn(extractor, parents)
    validation = evaluate_model(model, extractor, demo_splits["validation"], n_crops=2, batch_size=8)
    model.config.multi_label_threshold = validation["track"]["threshold"]
    test = evaluate_model(model, extractor, demo_splits["test"], n_crops=2, batch_size=8)
    saved(model, extractor, folder)
    results = {"train_samples": 95, "validation_tracks": validation["num_tracks"], "synthesized_demo_data": True}
    for name, evaluation in (("validation", validation), ("test", test)):
        write_evaluation({"dataset_config": "small", "split": name, **evaluation}, folder, name)
        results.update(flat_metrics(evaluation, name))
    (folder / "all_results.json").write_text(json.dumps(results))
    (folder / "run_config.yaml").write_text(yaml.safe_dump(
        {"model_family": "cnn", "model_name_or_path": "tiny", "dataset_config_name": "small", "task": "multi_label",
         "data_dir": str(demo_dir), "seed": 0}
    ))
    return folder, test


def test_card_of_a_multi_label_run_indexes_its_test_map_and_micro_f1(multi_label_run):
    folder, test = multi_label_run
    card = model_card(folder, repo_id="me/cnn-fma-multi-label")
    results = {(result.metric_type, result.metric_name.split("(")[1].split(" level")[0]): result
               for result in card.data.eval_results}
    assert set(results) == {("map", "track"), ("map", "clip"), ("f1", "track")}
    assert results["map", "track"].metric_value == pytest.approx(test["track"]["mean_average_precision"], abs=1e-4)
    assert results["map", "clip"].metric_value == pytest.approx(test["clip"]["mean_average_precision"], abs=1e-4)
    micro_f1 = results["f1", "track"]
    assert micro_f1.metric_value == pytest.approx(test["track"]["micro_f1"], abs=1e-4)
    assert micro_f1.metric_args == {"average": "micro", "threshold": round(test["track"]["threshold"], 4)}
    assert card.data.to_dict()["metrics"] == ["map", "f1", "roc_auc"]
    text = card.text
    assert f"multi-label music-genre classification: {len(GENRES)} genres" in text
    assert f"| track | {test['track']['mean_average_precision']:.3f} |" in text and "Accuracy" not in text
    assert "{{ " not in text and "{%" not in text


def test_results_table_keeps_multi_label_runs_apart_with_their_map(multi_label_run, tmp_path):
    folder, test = multi_label_run
    single = tmp_path / "single"
    single.mkdir()
    for name in ("preprocessor_config.json", "run_config.yaml"):
        (single / name).write_text((folder / name).read_text())
    (single / "config.json").write_text(json.dumps({"model_type": "fma_cnn"}))
    (single / "all_results.json").write_text(json.dumps({"test_track_accuracy": 0.5, "train_samples": 95}))

    rows = results_table([Run.load(folder), Run.load(single)])
    assert [(row.task, row.metric, row.mean) for row in rows] == [
        ("single_label", "test_track_accuracy", 0.5),
        ("multi_label", "test_track_map", test["track"]["mean_average_precision"]),
    ]
    table = format_results_table(rows)
    single_part, multi_part = table.split("Multi-label runs")
    assert "Accuracy (test, track level)" in single_part and "mAP" not in single_part
    assert "mAP (test, track level)" in multi_part and "Accuracy" not in multi_part
    assert f"| {100 * test['track']['mean_average_precision']:.1f} | 1 |" in multi_part


def test_pushing_a_multi_label_run_publishes_its_map(multi_label_run, in_memory_hub, tmp_path):
    import shutil

    from huggingface_hub import ModelCard

    from hf_fma import hub

    folder, test = multi_label_run
    run_dir = shutil.copytree(folder, tmp_path / "run")
    hub.push_run(run_dir, "me/cnn-fma-multi-label", token="hf_test_token")
    files = in_memory_hub.repositories["model", "me/cnn-fma-multi-label"]
    published = ModelCard(files["README.md"].decode())
    [track_map] = [result for result in published.data.eval_results
                   if result.metric_type == "map" and "track level" in result.metric_name]
    assert track_map.metric_value == pytest.approx(test["track"]["mean_average_precision"], abs=1e-4)
    assert json.loads(files["config.json"])["multi_label_threshold"] == test["track"]["threshold"]
    assert not any(name.startswith("confusion_matrix") for name in files)


def test_predict_refuses_a_multi_label_model_without_a_saved_threshold(extractor, parents, tmp_path, capsys):
    folder = saved(multi_label_cnn(extractor, parents, threshold=None), extractor, tmp_path / "model")
    capsys.readouterr()  # saving's progress bar
    assert predict_main([str(folder), str(MP3)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no multi_label_threshold" in error
