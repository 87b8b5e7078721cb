"""The multi-label task's label space (`hf_fma.multi_label`) and FMA's genre hierarchy (`metadata.genre_parents`),
on the real genres.csv in tests/data and hand-written genre lists."""

import numpy as np
import pytest

from hf_fma import metadata
from hf_fma.multi_label import GenreVocabulary, ancestor_pairs, hierarchy_violation_rate, make_consistent


@pytest.fixture(scope="module")
def parents(fma_sample):
    return metadata.genre_parents(metadata.load_genres(fma_sample / "fma_metadata" / "genres.csv"))


def test_genre_parents_of_the_real_file(parents):
    # Read off genres.csv by hand: 111 Power-Pop -> 25 Punk -> 12 Rock -> 0 (root); 76 Experimental Pop -> 10 Pop.
    assert parents["Power-Pop"] == "Punk"
    assert parents["Punk"] == "Rock"
    assert parents["Rock"] is None
    assert parents["Experimental Pop"] == "Pop"
    assert parents["Avant-Garde"] == "Experimental"
    assert sum(parent is None for parent in parents.values()) == 16  # FMA's 16 top-level genres


def test_vocabulary_keeps_genres_with_enough_training_tracks():
    train = [["Rock", "Punk"], ["Rock"], ["Pop", "Rock", "Rock"], ["Pop"]]
    with pytest.warns(UserWarning, match=r"left out of the label space: Punk \(1\)"):
        vocabulary = GenreVocabulary.from_genre_lists(train, min_tracks=2)
    assert vocabulary.names == ("Pop", "Rock")
    assert vocabulary.dropped == {"Punk": 1}
    # A genre outside the vocabulary (dropped, or unseen in training) has no output and is ignored.
    np.testing.assert_array_equal(vocabulary.multi_hot([["Punk", "Rock"], ["Jazz"], ["Pop", "Rock"]]),
                                  [[0, 1], [0, 0], [1, 1]])


def test_vocabulary_counts_a_track_once_per_genre():
    with pytest.raises(ValueError, match="no genre has 2 training tracks"):
        GenreVocabulary.from_genre_lists([["Rock", "Rock"], ["Pop"]], min_tracks=2)


def test_hierarchy_pairs_consistency_and_violations(parents):
    names = ["Pop", "Power-Pop", "Punk", "Rock"]
    # Power-Pop's ancestors Punk and Rock (two levels), Punk's Rock; Pop is a root here.
    assert sorted(ancestor_pairs(names, parents)) == [(1, 2), (1, 3), (2, 3)]
    pairs = ancestor_pairs(names, parents)

    scores = np.array([[0.1, 0.9, 0.2, 0.4],    # Power-Pop without Punk or Rock
                       [0.8, 0.1, 0.7, 0.95]])  # consistent already
    consistent = make_consistent(scores, pairs)
    np.testing.assert_array_equal(consistent, [[0.1, 0.9, 0.9, 0.9], [0.8, 0.1, 0.7, 0.95]])

    predicted = scores >= 0.5
    # Predicted sub-genres: track 0 Power-Pop (Punk and Rock missing), track 1 Punk (Rock present): 1 of 2.
    assert hierarchy_violation_rate(predicted, pairs) == pytest.approx(1 / 2)
    # Power-Pop with Rock but not Punk still misses an ancestor.
    assert hierarchy_violation_rate(np.array([[False, True, False, True]]), pairs) == 1.0
    assert hierarchy_violation_rate(consistent >= 0.5, pairs) == 0.0
