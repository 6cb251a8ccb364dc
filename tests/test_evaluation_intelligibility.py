"""The intelligibility metric: the offline recognizer finds the words in real eSpeak audio, and not in noise."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from tortoise_lite.audio.io import resample
from tortoise_lite.audio.mel import MelSpec
from tortoise_lite.data.corpora.synthetic_speech import make_prompt
from tortoise_lite.evaluation.intelligibility import (
    Recognizer,
    UnknownWordError,
    bigram_arpa,
    char_error_rate,
    edit_distance,
    intelligibility,
    normalize_words,
    word_error_rate,
)
from tortoise_lite.text import espeak
from tortoise_lite.vocoders import GriffinLim

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def test_word_and_character_error_rates():
    assert normalize_words("Well, 4 cats sit!") == ["well", "four", "cats", "sit"]
    assert edit_distance("kitten", "sitting") == 3
    assert word_error_rate("4 0 7", "four zero seven") == 0.0
    assert word_error_rate("the red cat", "the cat") == pytest.approx(1 / 3)  # one deletion
    assert word_error_rate("the red cat", "a the red cat sat") == pytest.approx(2 / 3)  # two insertions
    assert char_error_rate("cat", "bat") == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="no words"):
        word_error_rate("?!", "cat")


def test_unknown_words_are_named():
    with pytest.raises(UnknownWordError, match="qzxv"):
        Recognizer(["the cat", "qzxv"])


def test_bigram_language_model_is_normalized():
    arpa = bigram_arpa([["one", "two"], ["one", "three"]], ["one", "two", "three", "four"])
    assert "ngram 1=6" in arpa and "ngram 2=" in arpa
    uni = {}
    section = None
    for line in arpa.splitlines():
        if line.startswith("\\"):
            section = line
            continue
        if section == "\\1-grams:" and line:
            parts = line.split()
            uni[parts[1]] = 10 ** float(parts[0])
    del uni["<s>"]
    assert sum(uni.values()) == pytest.approx(1.0, abs=1e-3)
    assert uni["four"] > 0  # every vocabulary word stays reachable


def _espeak(text: str, spec: MelSpec, voice: str = "en-us") -> np.ndarray:
    syn = espeak.synthesize(text, voice)
    return resample(syn.float_audio, syn.sample_rate, spec.sample_rate)


@pytest.fixture(scope="module")
def spec_and_vocoder():
    spec = MelSpec()
    return spec, GriffinLim(spec, n_iter=32)


def test_recognizer_hears_digit_strings_through_mel_and_griffin_lim(spec_and_vocoder):
    spec, gl = spec_and_vocoder
    rng = random.Random(1)
    texts = [" ".join(rng.choice(DIGITS) for _ in range(rng.randint(3, 5))) for _ in range(12)]
    wavs = [gl(spec(torch.from_numpy(_espeak(t, spec)).float())[None])[0].numpy() for t in texts]
    report = intelligibility(Recognizer(DIGITS), wavs, texts, spec.sample_rate)
    # a word loop (no language model) over the ten digits: 0.15-0.27 seen across thread counts and runs
    assert report.wer <= 0.35, report.items
    # noise of the same length is not heard as the digits
    noise = [np.random.default_rng(k).normal(0, 0.1, len(w)).astype(np.float32) for k, w in enumerate(wavs)]
    assert intelligibility(Recognizer(DIGITS), noise, texts, spec.sample_rate).wer >= 0.7


def test_corpus_recognizer_hears_held_out_sentences(spec_and_vocoder):
    spec, gl = spec_and_vocoder
    train = [make_prompt(random.Random(k)) for k in range(300)]
    test = [p for p in (make_prompt(random.Random(10_000 + k)) for k in range(12)) if p not in train][:8]
    rec = Recognizer.for_texts(train, extra_vocabulary=test)
    wavs = [gl(spec(torch.from_numpy(_espeak(t, spec)).float())[None])[0].numpy() for t in test]
    report = intelligibility(rec, wavs, test, spec.sample_rate)
    assert report.wer <= 0.3, report.items
    # the same sentences read backwards are far from the references: the metric tracks the words
    shuffled = intelligibility(rec, wavs[::-1], test, spec.sample_rate)
    assert shuffled.wer >= report.wer + 0.4
