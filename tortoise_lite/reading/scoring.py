"""Candidate scorers: which of K generated takes of a sentence to keep.

A scorer is any callable ``scorer(wav, sample_rate, text) -> error`` (lower is better): ``wav`` a float32
numpy array ``(samples,)``, ``text`` the normalized sentence. The default, :class:`RecognizerScorer`, is
the offline recognizer's word error rate against the text (pocketsphinx through
:mod:`tortoise_lite.evaluation.intelligibility`); a learned scorer (a MOS predictor, a speaker-similarity
model) plugs in the same way. Ties keep the earliest candidate, so K = 1 is always the first take.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Scorer(Protocol):
    """``scorer(wav, sample_rate, text) -> error``; lower is better."""

    def __call__(self, wav: np.ndarray, sample_rate: int, text: str) -> float: ...


def words_of(text: str) -> list[str]:
    """Lower-case words of a text as the recognizer's word error rate compares them."""
    try:
        from tortoise_lite.evaluation.intelligibility import normalize_words
    except ImportError:
        return re.findall(r"[a-z']+", text.lower())
    return normalize_words(text)


class RecognizerScorer:
    """Word error rate of the offline recognizer's transcript against the text (0 = every word heard).

    ``vocabulary``: words the recognizer may hear; :meth:`prepare` (called by the reader with all the
    texts of a reading) adds the words of the texts, so one recognizer serves a whole chapter.
    """

    name = "recognizer"

    def __init__(self, vocabulary: Iterable[str] = ()) -> None:
        self.vocabulary: set[str] = set(vocabulary)
        self._recognizer: Any = None
        self._built_for: frozenset[str] = frozenset()

    @staticmethod
    def _module() -> Any:
        try:
            from tortoise_lite.evaluation import intelligibility
        except ImportError as e:
            raise ImportError(
                "candidates > 1 with the recognizer scorer needs tortoise_lite.evaluation.intelligibility "
                f"(pocketsphinx), which is not importable here ({e}); install pocketsphinx or pass "
                "scorer=<callable(wav, sample_rate, text) -> error>"
            ) from e
        return intelligibility

    def prepare(self, texts: Sequence[str]) -> None:
        for t in texts:
            self.vocabulary.update(words_of(t))

    def _get(self) -> Any:
        vocab = frozenset(self.vocabulary)
        if self._recognizer is None or not vocab <= self._built_for:
            module = self._module()
            # words outside the recognizer's pronunciation dictionary (names...) cannot be heard by any
            # candidate: they cost every take the same, so they are left out of the vocabulary
            lexicon = module._dictionary() if hasattr(module, "_dictionary") else None
            known = sorted(w for w in vocab if lexicon is None or w in lexicon)
            if not known:
                raise ValueError("the recognizer scorer knows none of the words to score; use another scorer")
            self._recognizer = module.Recognizer(known)
            self._built_for = vocab
        return self._recognizer

    def transcribe(self, wav: np.ndarray, sample_rate: int) -> str:
        return str(self._get().transcribe(np.asarray(wav, dtype=np.float32), int(sample_rate)))

    def __call__(self, wav: np.ndarray, sample_rate: int, text: str) -> float:
        self.vocabulary.update(words_of(text))
        return float(self._module().word_error_rate(text, self.transcribe(wav, sample_rate)))


SCORERS = {"recognizer": RecognizerScorer}


def build_scorer(scorer: Any) -> Any:
    """A scorer from a name (``"recognizer"``), a callable, or None (the recognizer)."""
    if scorer is None:
        return RecognizerScorer()
    if isinstance(scorer, str):
        if scorer not in SCORERS:
            raise ValueError(
                f"unknown scorer {scorer!r}; built in: {', '.join(SCORERS)} (or pass a callable "
                "scorer(wav, sample_rate, text) -> error from Python)"
            )
        return SCORERS[scorer]()
    if not callable(scorer):
        raise TypeError(
            f"scorer must be a name or a callable(wav, sample_rate, text) -> error, got {scorer!r}"
        )
    return scorer


def best_candidate(errors: Sequence[float]) -> int:
    """Index of the lowest error (the first one on ties; NaN counts as worst)."""
    vals = [float("inf") if not np.isfinite(e) else float(e) for e in errors]
    return int(np.argmin(vals))
