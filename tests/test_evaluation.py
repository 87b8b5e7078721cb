"""The genre metric module and clip-/track-level evaluation on the offline demo FMA."""

import numpy as np
import pytest
import soundfile as sf
import torch
from datasets import Audio, ClassLabel, Dataset, Features, Value
from transformers import PretrainedConfig
from transformers.modeling_outputs import SequenceClassifierOutput

from hf_fma.evaluation import evaluate_model, load_genre_metric, predict_crops
from hf_fma.metadata import SMALL_GENRES
from hf_fma.models import build_cnn
from hf_fma.models.feature_extraction_fma_ast import FmaASTFeatureExtractor
from hf_fma.data import load_fma


def test_metric_module_scores_a_hand_checked_example():
    metric = load_genre_metric()  # evaluate.load by local path: no Hub
    # Folk: 2 of 3 right; Rock: 1 of 1; Pop: none in the references, predicted once (a false positive).
    scores = metric.compute(
        predictions=[0, 0, 2, 1], references=[0, 0, 0, 1], label_names=["Folk", "Rock", "Pop"]
    )
    assert scores["accuracy"] == pytest.approx(0.75)
    assert scores["confusion_matrix"] == [[2, 0, 1], [0, 1, 0], [0, 0, 0]]  # rows: true, columns: predicted
    assert scores["per_genre_accuracy"] == pytest.approx({"Folk": 2 / 3, "Rock": 1.0, "Pop": 0.0})
    assert scores["per_genre_precision"] == pytest.approx({"Folk": 1.0, "Rock": 1.0, "Pop": 0.0})
    assert scores["per_genre_recall"] == scores["per_genre_accuracy"]
    # Macro-F1 over the three genres: Folk 0.8, Rock 1, Pop 0 (predicted but never right).
    assert scores["macro_f1"] == pytest.approx((0.8 + 1.0 + 0.0) / 3)


def test_metric_module_leaves_out_genres_absent_from_references_and_predictions():
    scores = load_genre_metric().compute(predictions=[0, 1], references=[0, 1], label_names=["Folk", "Rock", "Pop"])
    assert scores["macro_f1"] == 1.0


def test_metric_module_rejects_indices_outside_the_label_names():
    with pytest.raises(ValueError, match="outside 0..1"):
        load_genre_metric().compute(predictions=[0, 2], references=[0, 1], label_names=["Folk", "Rock"])


@pytest.fixture(scope="module")
def demo_test_split(demo_dir):
    return load_fma("small", data_dir=demo_dir, split="test")


@pytest.fixture(scope="module")
def extractor():
    # 1 s crops, 32 mel bins x 50 frames after 4 x 4 pooling: cheap, and real fbank inputs.
    return FmaASTFeatureExtractor(max_length=100, frequency_downscale=4, time_downscale=4)


def test_track_prediction_is_the_argmax_of_the_mean_crop_logits(demo_test_split, extractor):
    torch.manual_seed(0)
    model = build_cnn("tiny", extractor, SMALL_GENRES).eval()
    result = evaluate_model(model, extractor, demo_test_split, n_crops=3, batch_size=8)

    tracks = len(demo_test_split)
    assert result["num_tracks"] == tracks and result["num_clips"] == 3 * tracks
    assert result["labels"] == list(SMALL_GENRES) and result["crop_seconds"] == pytest.approx(1.0)
    crops = predict_crops(model, extractor, demo_test_split, n_crops=3, batch_size=8)
    for position, track_id in enumerate(result["tracks"]["track_id"]):
        of_track = crops["track_id"] == track_id
        assert of_track.sum() == 3  # every crop of a track, none of another
        assert result["tracks"]["predicted"][position] == crops["logits"][of_track].mean(axis=0).argmax()
    assert result["tracks"]["label"] == _genres_by_track(demo_test_split, result)
    clip_correct = (crops["logits"].argmax(axis=1) == crops["label"]).mean()
    assert result["clip"]["accuracy"] == pytest.approx(clip_correct)
    assert np.sum(result["track"]["confusion_matrix"]) == tracks
    assert set(result["clip"]["per_genre_precision"]) == set(SMALL_GENRES)


def _genres_by_track(dataset, result):
    genre_of = dict(zip(dataset["track_id"], dataset["genre"]))
    return [genre_of[track_id] for track_id in result["tracks"]["track_id"]]


def test_labels_are_matched_by_name_when_the_model_orders_genres_differently(demo_test_split, extractor):
    reordered = list(reversed(SMALL_GENRES))  # a model whose label 0 is Rock
    model = build_cnn("tiny", extractor, reordered).eval()
    result = evaluate_model(model, extractor, demo_test_split, n_crops=1, batch_size=16)
    assert result["labels"] == reordered
    names = demo_test_split.features["genre"].names
    expected = [reordered.index(names[genre]) for genre in _genres_by_track(demo_test_split, result)]
    assert result["tracks"]["label"] == expected
    # The confusion matrix rows follow the model's order: each genre's 2 test tracks sit in its row.
    assert [sum(row) for row in result["track"]["confusion_matrix"]] == [2] * len(reordered)


def test_a_split_with_genres_the_model_lacks_is_refused(demo_test_split, extractor):
    model = build_cnn("tiny", extractor, ["Rock", "Folk"])
    with pytest.raises(ValueError, match="not labels of the model"):
        evaluate_model(model, extractor, demo_test_split, n_crops=1)


class _PitchBandClassifier(torch.nn.Module):
    """A stand-in for a trained model whose crop logits depend on the crop: the mel band (low, middle or
    high third) where the crop's mean spectrum peaks picks a row of `band_logits`."""

    def __init__(self, band_logits, label_names):
        super().__init__()
        self.band_logits = torch.nn.Parameter(torch.tensor(band_logits))  # (3 bands, num_labels)
        self.config = PretrainedConfig(
            id2label=dict(enumerate(label_names)), label2id={name: index for index, name in enumerate(label_names)}
        )

    def forward(self, input_values):
        peak = input_values.mean(dim=1).argmax(dim=-1)  # (batch,) mel bin of the loudest band
        band = peak * 3 // input_values.shape[-1]  # (batch,) 0, 1 or 2
        return SequenceClassifierOutput(logits=self.band_logits[band])


def test_track_level_averages_the_crop_logits_not_a_vote_or_the_first_crop(tmp_path, extractor):
    """A 3 s track of three 1 s tones (low, high, high) cut into 3 crops of 1 s. Crop logits (classes
    Folk, Pop, Rock): low [-30, 1, 0] -> Pop, high [10, 0, 9] -> Folk twice. First crop: Pop; majority
    vote: Folk; mean of probabilities [0.49, 0.24, 0.27]: Folk; mean of logits [-3.3, 0.3, 6]: Rock, the
    README's rule and the track's genre."""
    genres = ["Folk", "Pop", "Rock"]
    rate = 16000
    time = np.arange(rate) / rate
    tones = [0.5 * np.sin(2 * np.pi * hz * time) for hz in (200.0, 5000.0, 5000.0)]  # mel bins ~3, ~27 of 32
    path = tmp_path / "track.wav"
    sf.write(path, np.concatenate(tones).astype(np.float32), rate)
    track = Dataset.from_dict(
        {"track_id": [7], "audio": [{"path": str(path), "bytes": None}], "genre": [2]},
        features=Features(
            {"track_id": Value("int64"), "audio": Audio(decode=False), "genre": ClassLabel(names=genres)}
        ),
    )
    model = _PitchBandClassifier([[-30.0, 1.0, 0.0], [0.0, 0.0, 0.0], [10.0, 0.0, 9.0]], genres)

    result = evaluate_model(model, extractor, track, n_crops=3, batch_size=2)
    assert result["crop_seconds"] == 1.0 and result["num_clips"] == 3
    assert result["clip"]["confusion_matrix"] == [[0, 0, 0], [0, 0, 0], [2, 1, 0]]  # rows: true genre (Rock)
    assert result["tracks"] == {"track_id": [7], "label": [2], "predicted": [2]}
    assert result["track"]["accuracy"] == 1.0 and result["clip"]["accuracy"] == 0.0
