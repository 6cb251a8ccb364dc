"""The multi-voice corpus ``synthetic_voices``: alignment, held-out voices, per-voice pitch, determinism."""

import json
from collections import Counter

import numpy as np
import pytest
import torch

from tortoise_lite.audio import MelSpec, load_audio
from tortoise_lite.data.cache import load_npy
from tortoise_lite.data.corpora import CORPORA, synthetic_voices
from tortoise_lite.data.corpora.synthetic_voices import (
    HELDOUT_VOICES,
    TRAINING_VOICES,
    screen_passes,
    screen_variant,
    variants,
    voice_base,
)
from tortoise_lite.data.sources import CorpusSource
from tortoise_lite.text.tokenizers import PhonemeTokenizer

TRAIN = ["en-us+f3", "en-us+m3", "en-us+klatt4"]
HELD = ["en-us+Annie", "en-us+m1"]
SMALL = dict(voices=TRAIN, heldout_voices=HELD, utterances_per_heldout_voice=2, n_heldout=4, progress=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return synthetic_voices(n_utterances=6, cache_dir=tmp_path_factory.mktemp("voices"), **SMALL)


def test_durations_sum_to_mel_frames(corpus):
    mel, tok = MelSpec(), PhonemeTokenizer()
    items = corpus.items() + corpus.heldout_voice_items()
    assert len(items) == 6 + 2 * 2
    for it in items:
        d = load_npy(it.durations)
        wav = load_audio(it.audio)
        assert len(d) == len(tok.encode(it.text)) and (d >= 0).all()
        assert int(d.sum()) == mel(wav).shape[-1] == mel.num_frames(len(wav))
        assert 1.0 <= len(wav) / mel.sample_rate <= 3.0


def test_heldout_voices_stay_out_of_training(corpus):
    train, held = corpus.items(), corpus.heldout_voice_items()
    manifest_speakers = {json.loads(line)["speaker"] for line in corpus.manifest.read_text().splitlines()}
    assert manifest_speakers == set(TRAIN)  # round-robin: 6 utterances over 3 voices -> 2 each
    assert Counter(it.speaker for it in train) == {v: 2 for v in TRAIN}
    assert Counter(it.speaker for it in held) == {v: 2 for v in HELD}
    assert all(it.audio.startswith(str(corpus.root)) for it in held)  # absolute, like items()
    texts = [it.text for it in train + held]
    assert len(set(texts)) == len(texts)  # held-out clips speak prompts absent from training
    assert not set(corpus.heldout_prompts()) & set(texts)
    table = corpus.voice_table()
    assert set(table) == set(TRAIN + HELD)
    assert [v for v, row in table.items() if row["heldout"]] == HELD
    src = CorpusSource("synthetic_voices", cache_dir=str(corpus.root.parent), **{**SMALL, "n_utterances": 6})
    assert src.heldout_voice_items(MelSpec()) == held


def test_base_pitch_is_per_voice_and_stable(corpus, tmp_path):
    other = synthetic_voices(
        n_utterances=2, cache_dir=tmp_path, **{**SMALL, "voices": ["en-us+f3", "en-us+f5"]}
    )
    a, b = corpus.voice_table(), other.voice_table()
    assert a["en-us+f3"] == b["en-us+f3"] and a["en-us+Annie"] == b["en-us+Annie"]
    for voice, row in a.items():
        assert (row["pitch"], row["rate"]) == voice_base(voice, 0, (25, 75), (140, 210))
        assert 25 <= row["pitch"] <= 75 and 140 <= row["rate"] <= 210
    assert len({row["pitch"] for row in a.values()}) > 1


def test_deterministic(corpus, tmp_path):
    from tortoise_lite.text import espeak

    espeak.synthesize("Something else first.", "en-us+croak", 150, 40)
    again = synthetic_voices(n_utterances=6, cache_dir=tmp_path, **SMALL)
    assert again.root.name == corpus.root.name
    assert again.manifest.read_text() == corpus.manifest.read_text()
    assert (again.root / "heldout_voices.jsonl").read_text() == (
        corpus.root / "heldout_voices.jsonl"
    ).read_text()
    # byte for byte, although this process synthesized other things in between (eSpeak keeps state)
    for x, y in zip(
        again.items() + again.heldout_voice_items(), corpus.items() + corpus.heldout_voice_items()
    ):
        assert open(x.audio, "rb").read() == open(y.audio, "rb").read()
        assert (load_npy(x.durations) == load_npy(y.durations)).all()


def test_bad_voice_lists_raise(tmp_path):
    with pytest.raises(ValueError, match=r"en-us\+Annie.*held out"):
        synthetic_voices(
            n_utterances=2, cache_dir=tmp_path, **{**SMALL, "voices": ["en-us+f3", "en-us+Annie"]}
        )
    with pytest.raises(ValueError, match="nosuchvoice"):
        synthetic_voices(n_utterances=2, cache_dir=tmp_path, **{**SMALL, "voices": ["en-us+nosuchvoice"]})
    with pytest.raises(ValueError, match="xx-nolang"):
        synthetic_voices(n_utterances=2, cache_dir=tmp_path, **{**SMALL, "heldout_voices": ["xx-nolang"]})
    assert not list(tmp_path.iterdir())  # nothing generated


def test_default_voice_lists():
    assert not set(TRAINING_VOICES) & set(HELDOUT_VOICES)
    assert len(HELDOUT_VOICES) >= 8 and 40 <= len(TRAINING_VOICES) <= 100
    assert len(set(TRAINING_VOICES)) == len(TRAINING_VOICES)
    known = set(variants())
    assert {v.split("+", 1)[1] for v in TRAINING_VOICES + HELDOUT_VOICES} <= known
    assert not {"whisper", "whisperf"} & {v.split("+", 1)[1] for v in TRAINING_VOICES}
    assert CORPORA["synthetic_voices"] is synthetic_voices


def test_screen_rejects_whisper():
    ref = screen_variant("", n_prompts=4)
    assert screen_passes(screen_variant("f3", n_prompts=4), ref, n_prompts=4)
    assert not screen_passes(screen_variant("whisper", n_prompts=4), ref, n_prompts=4)


def test_two_voices_differ_more_than_one_voice_with_itself(tmp_path):
    """Mean log-mel of f3 vs m3 is further apart than two halves of one voice's utterances."""
    c = synthetic_voices(n_utterances=16, cache_dir=tmp_path, **{**SMALL, "voices": ["en-us+f3", "en-us+m3"]})
    mel = MelSpec()
    means: dict[str, list[torch.Tensor]] = {}
    for it in c.items():
        means.setdefault(it.speaker, []).append(mel(load_audio(it.audio)))

    def avg(ms):
        return torch.cat(ms, -1).mean(-1)

    f3, m3 = means["en-us+f3"], means["en-us+m3"]
    between = (avg(f3) - avg(m3)).pow(2).mean().sqrt().item()
    within = max((avg(v[::2]) - avg(v[1::2])).pow(2).mean().sqrt().item() for v in (f3, m3))
    assert between > 1.5 * within, (between, within)
    assert np.isfinite(between)
