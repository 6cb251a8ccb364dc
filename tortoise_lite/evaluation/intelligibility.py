"""Intelligibility: word and character error rates from an offline recognizer, as TTS papers report.

The recognizer is PocketSphinx (``pocketsphinx`` on PyPI) with the en-us acoustic model and the CMU
dictionary that ship inside its wheel: nothing is downloaded. It decodes with a *word-loop grammar* over
a closed vocabulary (any sequence of the given words, optional silence between them), built from the
corpus' texts. That is how the digit-recognition literature scores small-vocabulary speech, and it keeps
the figure about the acoustics: the recognizer cannot lean on a language model's word order.

A WER is only meaningful next to its **ceiling**: the same recognizer on the ground-truth audio passed
through the same mel frontend and vocoder (what a perfect acoustic model would score).

    rec = Recognizer.for_texts(["4 0 7", "the red cat sees a ship."])
    hyp = rec.transcribe(wav, sample_rate)            # "four zero seven"
    word_error_rate("4 0 7", hyp)                      # 0.0 (references are normalized the same way)
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from tortoise_lite.text.normalize import expand_numbers_en, normalize_unicode

__all__ = [
    "IntelligibilityReport",
    "Recognizer",
    "UnknownWordError",
    "char_error_rate",
    "edit_distance",
    "intelligibility",
    "normalize_words",
    "word_error_rate",
]

#: the acoustic model's sampling rate (en-us continuous model, 16 kHz)
RECOGNIZER_SAMPLE_RATE = 16000
_WORD_RE = re.compile(r"[a-z']+")


class UnknownWordError(ValueError):
    """A vocabulary word is not in the recognizer's pronunciation dictionary."""


def normalize_words(text: str) -> list[str]:
    """Lower-case words with numbers spelled out and punctuation dropped: ``"4 cats!" -> ["four", "cats"]``."""
    text = expand_numbers_en(normalize_unicode(text, fold_accents=True)).lower()
    return _WORD_RE.findall(text.replace("-", " "))


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word edit distance / reference words, after :func:`normalize_words` on both (may exceed 1)."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    if not ref:
        raise ValueError(f"the reference text {reference!r} has no words to score against")
    return edit_distance(ref, hyp) / len(ref)


def char_error_rate(reference: str, hypothesis: str) -> float:
    """Character edit distance / reference characters over the normalized words joined by spaces."""
    ref, hyp = " ".join(normalize_words(reference)), " ".join(normalize_words(hypothesis))
    if not ref:
        raise ValueError(f"the reference text {reference!r} has no words to score against")
    return edit_distance(ref, hyp) / len(ref)


@lru_cache(maxsize=1)
def _dictionary() -> dict[str, str]:
    """The CMU dictionary shipped with pocketsphinx: word -> phones (first pronunciation)."""
    import os

    from pocketsphinx import get_model_path

    path = os.path.join(get_model_path(), "en-us", "cmudict-en-us.dict")
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            word, _, phones = line.strip().partition(" ")
            if word and "(" not in word:
                out.setdefault(word, phones.strip())
    return out


def bigram_arpa(sentences: Sequence[Sequence[str]], vocabulary: Sequence[str], discount: float = 0.5) -> str:
    """A bigram language model in ARPA format from word sequences (absolute discounting with backoff).

    Unigrams are add-one smoothed over ``vocabulary`` (every word stays reachable); bigrams seen in
    ``sentences`` keep ``(count - discount) / count(history)``, the rest backs off to the unigram.
    """
    from collections import Counter

    uni: Counter = Counter()
    bi: Counter = Counter()
    for words in sentences:
        seq = ["<s>", *words, "</s>"]
        uni.update(seq[1:])
        bi.update(zip(seq[:-1], seq[1:]))
    targets = sorted(set(vocabulary) | {w for w in uni if w != "</s>"}) + ["</s>"]
    total = sum(uni[w] + 1 for w in targets)
    p_uni = {w: (uni[w] + 1) / total for w in targets}
    history: Counter = Counter()
    followers: dict[str, list[str]] = {}
    for (h, w), c in bi.items():
        history[h] += c
        followers.setdefault(h, []).append(w)
    lines_1, lines_2 = [], []
    backoff: dict[str, float] = {}
    for h, ws in followers.items():
        seen_mass = sum(p_uni[w] for w in ws)
        left = discount * len(ws) / history[h]
        backoff[h] = left / max(1.0 - seen_mass, 1e-9)
        for w in sorted(ws):
            lines_2.append(f"{np.log10((bi[(h, w)] - discount) / history[h]):.5f} {h} {w}")
    for w in ["<s>", *targets]:
        logp = -99.0 if w == "<s>" else float(np.log10(p_uni[w]))
        bo = f" {np.log10(backoff[w]):.5f}" if w in backoff else ""
        lines_1.append(f"{logp:.5f} {w}{bo}")
    return "\n".join(
        ["\\data\\", f"ngram 1={len(lines_1)}", f"ngram 2={len(lines_2)}", "", "\\1-grams:", *lines_1,
         "", "\\2-grams:", *lines_2, "", "\\end\\", ""]
    )  # fmt: skip


class Recognizer:
    """PocketSphinx over a closed vocabulary; thread-safe (one decoder per thread).

    ``vocabulary``: the words it may output (normalized like :func:`normalize_words`); each must be in
    the CMU dictionary, else :class:`UnknownWordError` names the missing ones. ``language_texts``: texts
    (the training transcripts) whose word order becomes a bigram language model, as a recognizer for that
    domain would have; without them it decodes with a word loop (any word after any word).
    """

    def __init__(self, vocabulary: Iterable[str], language_texts: Iterable[str] | None = None):
        corpus = [normalize_words(t) for t in (language_texts or [])]
        words = sorted({w for v in vocabulary for w in normalize_words(v)} | {w for s in corpus for w in s})
        if not words:
            raise ValueError("the recognizer needs a non-empty vocabulary")
        lexicon = _dictionary()
        missing = [w for w in words if w not in lexicon]
        if missing:
            raise UnknownWordError(
                f"words not in the recognizer's dictionary: {', '.join(missing[:20])}; "
                "spell them out or drop those texts from the evaluation"
            )
        self.vocabulary = tuple(words)
        self._arpa = bigram_arpa([s for s in corpus if s], words) if any(corpus) else None
        self._local = threading.local()

    @classmethod
    def for_texts(cls, texts: Iterable[str], extra_vocabulary: Iterable[str] = ()) -> Recognizer:
        """Vocabulary and bigram language model from ``texts`` (plus ``extra_vocabulary`` words)."""
        texts = list(texts)
        return cls([*texts, *extra_vocabulary], language_texts=texts)

    def _decoder(self):
        dec = getattr(self._local, "decoder", None)
        if dec is None:
            import os
            import tempfile

            from pocketsphinx import Decoder, get_model_path

            model = get_model_path()
            dec = Decoder(
                hmm=os.path.join(model, "en-us", "en-us"),
                dict=os.path.join(model, "en-us", "cmudict-en-us.dict"),
                lm=None,
                samprate=RECOGNIZER_SAMPLE_RATE,
                loglevel="FATAL",
                logfn=os.devnull,
            )
            if self._arpa is not None:
                with tempfile.TemporaryDirectory() as tmp:
                    path = os.path.join(tmp, "corpus.arpa")
                    with open(path, "w", encoding="utf-8") as fh:
                        fh.write(self._arpa)
                    dec.add_lm_file("words", path)
            else:
                alternatives = " | ".join(self.vocabulary)
                dec.add_jsgf_string(
                    "words", f"#JSGF V1.0;\ngrammar words;\npublic <utt> = ( {alternatives} )+ ;\n"
                )
            dec.activate_search("words")
            self._local.decoder = dec
        return dec

    def transcribe(self, wav: np.ndarray, sample_rate: int) -> str:
        """Words heard in ``wav`` ((S,) float in [-1, 1] at ``sample_rate``), space-separated ("" if none)."""
        from tortoise_lite.audio.io import resample

        audio = np.asarray(wav, dtype=np.float32).reshape(-1)
        if audio.size == 0:
            return ""
        audio = resample(audio, int(sample_rate), RECOGNIZER_SAMPLE_RATE)
        # The acoustic model expects speech near full scale; generated audio may come out quiet.
        peak = float(np.max(np.abs(audio)))
        if peak > 0:
            audio = audio * (0.9 / peak)
        pad = np.zeros(RECOGNIZER_SAMPLE_RATE // 4, dtype=np.float32)  # leading/trailing silence
        pcm = (np.concatenate([pad, audio, pad]) * 32767).astype(np.int16)
        dec = self._decoder()
        dec.start_utt()
        dec.process_raw(pcm.tobytes(), full_utt=True)
        dec.end_utt()
        hyp = dec.hyp()
        return hyp.hypstr.strip() if hyp is not None else ""


@dataclass
class IntelligibilityReport:
    """Corpus-level WER/CER (total edits / total reference words or characters) and per-item rows."""

    wer: float
    cer: float
    items: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"wer": self.wer, "cer": self.cer, "n": len(self.items), "items": self.items}


def intelligibility(
    recognizer: Recognizer, wavs: Sequence[np.ndarray], texts: Sequence[str], sample_rate: int
) -> IntelligibilityReport:
    """Recognize each wav and score it against its text; WER and CER pooled over all items."""
    if len(wavs) != len(texts):
        raise ValueError(f"{len(wavs)} wavs for {len(texts)} texts")
    rows, w_err, w_tot, c_err, c_tot = [], 0, 0, 0, 0
    for wav, text in zip(wavs, texts):
        hyp = recognizer.transcribe(wav, sample_rate)
        ref_w, hyp_w = normalize_words(text), normalize_words(hyp)
        ref_c, hyp_c = " ".join(ref_w), " ".join(hyp_w)
        we, ce = edit_distance(ref_w, hyp_w), edit_distance(ref_c, hyp_c)
        w_err, w_tot, c_err, c_tot = w_err + we, w_tot + len(ref_w), c_err + ce, c_tot + len(ref_c)
        rows.append({"text": text, "heard": hyp, "wer": we / max(len(ref_w), 1)})
    return IntelligibilityReport(wer=w_err / max(w_tot, 1), cer=c_err / max(c_tot, 1), items=rows)
