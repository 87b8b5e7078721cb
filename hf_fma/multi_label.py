"""FMA's multi-label task: the genre vocabulary, multi-hot targets, and the genre hierarchy.

Every FMA track carries all genres of the hierarchy it belongs to (the builder's `genres` column: the titles
of `track.genres_all`, parents included). The multi-label task predicts that set. Its label space is fixed
by the training split alone, so validation and test are scored over the same genres; genres with fewer
training tracks than `min_tracks` cannot be learned and are dropped (and named).

    >>> from hf_fma.multi_label import GenreVocabulary
    >>> vocabulary = GenreVocabulary.from_genre_lists(ds["train"]["genres"], min_tracks=5)
    >>> vocabulary.multi_hot([["Rock", "Punk"]])          # (tracks, genres) float32, 1 where present

The hierarchy comes from genres.csv (`metadata.genre_parents`): a sub-genre implies its parent, so a
consistent prediction scores every parent at least as high as each of its children.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

# transformers' name for the task: its audio-classification pipeline applies a sigmoid to such a model's logits.
MULTI_LABEL_PROBLEM_TYPE = "multi_label_classification"


def is_multi_label(config) -> bool:
    """Whether a model config (a `PretrainedConfig`) is of a multi-label model: one sigmoid score per genre."""
    return getattr(config, "problem_type", None) == MULTI_LABEL_PROBLEM_TYPE


@dataclass(frozen=True)
class GenreVocabulary:
    """The genres of the multi-label task, in label order (alphabetical, like the top-genre ClassLabel)."""

    names: tuple[str, ...]
    # Genres of the training split left out for having fewer than `min_tracks` tracks -> their track count.
    dropped: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_genre_lists(cls, genre_lists: Iterable[Sequence[str]], min_tracks: int = 1) -> GenreVocabulary:
        """The genres of the training split's `genres` lists that at least `min_tracks` tracks have."""
        if min_tracks < 1:
            raise ValueError(f"min_tracks must be at least 1, not {min_tracks}")
        counts = Counter(genre for genres in genre_lists for genre in set(genres))
        if not counts:
            raise ValueError("the training split's `genres` lists are all empty: no genre to learn")
        kept = tuple(sorted(genre for genre, count in counts.items() if count >= min_tracks))
        dropped = {genre: count for genre, count in sorted(counts.items()) if count < min_tracks}
        if not kept:
            raise ValueError(
                f"no genre has {min_tracks} training tracks (the most any has is {max(counts.values())}): "
                "lower min_tracks"
            )
        if dropped:
            listed = ", ".join(f"{genre} ({count})" for genre, count in dropped.items())
            warnings.warn(
                f"multi-label: {len(dropped)} genre(s) with fewer than {min_tracks} training tracks are left out "
                f"of the label space: {listed}"
            )
        return cls(names=kept, dropped=dropped)

    @property
    def label2id(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(self.names)}

    def multi_hot(self, genre_lists: Iterable[Sequence[str]]) -> np.ndarray:
        """(tracks, genres) float32 targets: 1 for each of a track's genres in the vocabulary. Genres outside
        it (dropped, or never seen in training) are ignored: the model has no output for them."""
        genre_lists = list(genre_lists)
        index = self.label2id
        targets = np.zeros((len(genre_lists), len(self.names)), dtype=np.float32)
        for row, genres in enumerate(genre_lists):
            targets[row, [index[genre] for genre in genres if genre in index]] = 1.0
        return targets


def ancestor_pairs(names: Sequence[str], parents: Mapping[str, str | None]) -> list[tuple[int, int]]:
    """(child, ancestor) column pairs among `names`, for every ancestor of each genre that is also in
    `names`: the relations a consistent prediction keeps. `parents` maps a genre title to its parent's
    title (None for a root), as `metadata.genre_parents` reads them from genres.csv."""
    index = {name: position for position, name in enumerate(names)}
    pairs = []
    for name in names:
        seen = {name}
        ancestor = parents.get(name)
        while ancestor is not None and ancestor not in seen:  # `seen` guards against a cycle in a bad file
            seen.add(ancestor)
            if ancestor in index:
                pairs.append((index[name], index[ancestor]))
            ancestor = parents.get(ancestor)
    return pairs


def ancestry(names: Iterable[str], parents: Mapping[str, str | None]) -> dict[str, str | None]:
    """The part of the hierarchy `parents` (title -> parent title) above `names`: the parent of each of them
    and of each of their ancestors, so that `ancestor_pairs` still reaches a genre's grandparent when the
    parent between them is not among the names."""
    kept = {}
    for name in names:
        while name in parents and name not in kept:
            kept[name] = parents[name]
            name = parents[name]
    return kept


def hierarchy_violation_rate(predicted: np.ndarray, pairs: Sequence[tuple[int, int]]) -> float:
    """The fraction of predicted (track, sub-genre) decisions, among genres that have an ancestor in the
    vocabulary, that miss at least one of those ancestors. `predicted` is (tracks, genres) boolean; 0.0
    when no such sub-genre is predicted."""
    predicted = np.asarray(predicted, dtype=bool)
    if not pairs:
        return 0.0
    children, ancestors = np.asarray(pairs).T
    missing = np.zeros_like(predicted)  # (tracks, genres): some ancestor of the genre is not predicted
    np.logical_or.at(missing, (slice(None), children), ~predicted[:, ancestors])
    has_ancestor = np.unique(children)
    decisions = predicted[:, has_ancestor]
    return float((decisions & missing[:, has_ancestor]).sum() / decisions.sum()) if decisions.any() else 0.0


def make_consistent(scores: np.ndarray, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """Scores in which every ancestor scores at least as high as each descendant (the max over them), so a
    threshold never predicts a sub-genre without its parents. Works on probabilities or logits alike."""
    consistent = np.array(scores, copy=True)
    # `pairs` lists every ancestor of every genre, not only the parent, so one pass suffices.
    for child, ancestor in pairs:
        np.maximum(consistent[..., ancestor], scores[..., child], out=consistent[..., ancestor])
    return consistent


def set_multi_label_config(config, genre_parents: Mapping[str, str | None]) -> None:
    """A model config of the multi-label task, as every family saves it: problem_type (transformers'
    pipeline then applies a sigmoid), the genre hierarchy that inference and the evaluation's consistency
    check read, and no threshold yet: the validation split chooses it once the model is trained (a
    fine-tuned checkpoint's own would otherwise be taken for it)."""
    config.problem_type = MULTI_LABEL_PROBLEM_TYPE
    config.genre_parents = dict(genre_parents)
    config.multi_label_threshold = None
