"""Embedded corpora generated on first use (deterministic from a seed, cached, atomic)."""

from tortoise_lite.data.corpora.common import Corpus, corpus_dir
from tortoise_lite.data.corpora.synthetic_speech import synthetic_speech
from tortoise_lite.data.corpora.synthetic_voices import synthetic_voices
from tortoise_lite.data.corpora.tones import tones

CORPORA = {"synthetic_speech": synthetic_speech, "synthetic_voices": synthetic_voices, "tones": tones}


def get_corpus(name: str, **kwargs) -> Corpus:
    """Generate (or reuse) the corpus ``name`` with ``kwargs`` (see each generator)."""
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; choose one of {sorted(CORPORA)}")
    return CORPORA[name](**kwargs)


__all__ = ["CORPORA", "Corpus", "corpus_dir", "get_corpus", "synthetic_speech", "synthetic_voices", "tones"]
