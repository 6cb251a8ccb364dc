"""The speaker-similarity metric (tortoise_lite.evaluation.speaker) on eSpeak voices.

Ground truth is synthesized directly with eSpeak NG: 16 voice variants to train on, 4 other variants held
out (the zero-shot case), 8 short sentences each, one base pitch per voice with +-3 jitter per utterance
(as the synthetic corpus does). eSpeak's variants add random flutter/noise, so the audio (and the figures)
vary a little from run to run even with the same seeds: the bounds below leave room for that.
"""

from __future__ import annotations

import math
import random

import pytest
import torch

from tortoise_lite.audio import MelSpec
from tortoise_lite.data.corpora.synthetic_speech import make_prompt
from tortoise_lite.evaluation import speaker
from tortoise_lite.text import espeak

TRAIN_VOICES = ("f1", "f2", "f3", "m1", "m2", "m3", "m4", "m6", "klatt", "Andy", "belinda", "Denis", "Jacky")
TRAIN_VOICES += ("edward", "grandma", "iven")
HELD_VOICES = ("f4", "m7", "klatt3", "Annie")
SENTENCES = 8
ENROLL = 3


def _clips(voices, seed: int, spec: MelSpec) -> dict[str, list[torch.Tensor]]:
    rng = random.Random(seed)
    out = {}
    for v in voices:
        base = rng.randint(25, 75)
        wavs = [
            espeak.synthesize(make_prompt(rng), f"en-us+{v}", 175, base + rng.randint(-3, 3)).float_audio
            for _ in range(SENTENCES)
        ]
        out[v] = [spec(torch.from_numpy(w)) for w in wavs]  # eSpeak's 22050 Hz is the MelSpec's rate
    return out


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    spec = MelSpec()
    train = _clips(TRAIN_VOICES, 1, spec)
    held = _clips(HELD_VOICES, 2, spec)
    verifier = speaker.train_speaker_encoder(train, spec, steps=150, batch_size=32, seed=0)
    return verifier, train, held


def test_equal_error_rate_exact_values():
    two = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    assert speaker.equal_error_rate(two, ["a", "a", "b", "b"]) == 0.0  # perfectly separable
    same = torch.ones(6, 3)  # every pair scores 1: the scores carry nothing
    assert speaker.equal_error_rate(same, [0, 0, 1, 1, 2, 2]) == pytest.approx(0.5, abs=1e-12)
    # Angles (degrees) on the unit circle; targets score cos 5, cos 5, cos 120 and 4 of the 12 non-target
    # pairs score above cos 120: FAR = FRR = 1/3 at that threshold.
    deg = torch.tensor([0.0, 5.0, 90.0, 95.0, 180.0, 300.0], dtype=torch.float64) * math.pi / 180
    circle = torch.stack([deg.cos(), deg.sin()], 1)
    assert speaker.equal_error_rate(circle, list("aabbcc")) == pytest.approx(1 / 3, abs=1e-12)
    with pytest.raises(ValueError, match="same speaker"):
        speaker.equal_error_rate(two, ["a", "b", "c", "d"])


def test_identify_nearest_centroid():
    enroll = {"x": torch.tensor([[1.0, 0.0], [1.0, 0.2]]), "y": torch.tensor([[0.0, 3.0]])}
    assert speaker.identify(torch.tensor([[2.0, 0.1], [0.1, 1.0], [-1.0, 0.0]]), enroll) == ["x", "y", "y"]


def test_held_out_voices_verified_and_identified(trained):
    verifier, _, held = trained
    mels = [m for v in HELD_VOICES for m in held[v]]
    labels = [v for v in HELD_VOICES for _ in held[v]]
    eer = speaker.equal_error_rate(verifier.embed_mels(mels), labels)
    assert eer < 0.15, f"held-out EER {eer:.3f} (measured 0.008-0.055 over 6 seeds; chance 0.5)"
    report = speaker.similarity_report(
        verifier,
        {v: held[v][:ENROLL] for v in HELD_VOICES},
        [(m, v) for v in HELD_VOICES for m in held[v][ENROLL:]],
    )
    assert report["n_voices"] == 4 and report["chance"] == 0.25
    assert report["n_probes"] == len(HELD_VOICES) * (SENTENCES - ENROLL)
    assert report["accuracy"] >= 0.8, report  # measured 1.0 over 6 seeds (20 probes)
    assert set(report["per_voice"]) == set(HELD_VOICES)
    asked = [v for v in HELD_VOICES for _ in held[v][ENROLL:]]
    hits = [got == want for got, want in zip(report["identified"], asked)]
    assert len(hits) == report["n_probes"] and sum(hits) / len(hits) == pytest.approx(report["accuracy"])
    with pytest.raises(ValueError, match="not enrolled: \\['f1'\\]"):
        speaker.similarity_report(verifier, {"f4": held["f4"][:2]}, [(held["f4"][3], "f1")])


def test_embedding_independent_of_batch_and_padding(trained):
    verifier, train, held = trained
    clip = held["f4"][0]
    alone = verifier.embed_mels([clip])
    longer = max((m for ms in train.values() for m in ms), key=lambda m: m.shape[1])
    assert longer.shape[1] > clip.shape[1] + 20  # the batch really pads `clip`
    batch = verifier.embed_mels([train["m1"][1], longer, clip, held["Annie"][2]])
    assert torch.allclose(batch[2], alone[0], atol=1e-5)
    assert torch.allclose(batch.norm(dim=-1), torch.ones(4), atol=1e-5)
    # level-free: a gain change (added constant in log-mel) leaves the embedding unchanged
    assert torch.allclose(verifier.embed_mels([clip + 1.5])[0], alone[0], atol=1e-4)


def test_save_load_round_trip_and_wavs(trained, tmp_path):
    verifier, _, held = trained
    mels = held["klatt3"][:3]
    path = verifier.save(tmp_path / "spk.pt")
    loaded = speaker.SpeakerVerifier.load(path)
    assert torch.equal(loaded.embed_mels(mels), verifier.embed_mels(mels))
    assert loaded.mel_spec == verifier.mel_spec and loaded.speakers == sorted(TRAIN_VOICES)
    assert not list(tmp_path.glob("*.tmp*"))
    syn = espeak.synthesize("A quiet river.", "en-us+m7", 175, 50)
    from_wav = verifier.embed_wavs([(torch.from_numpy(syn.float_audio), syn.sample_rate)])
    assert torch.allclose(from_wav, verifier.embed_mels([verifier.mel_spec(syn.float_audio)]), atol=1e-6)
    from tortoise_lite.audio.io import resample

    at16k = resample(syn.float_audio, syn.sample_rate, 16000)
    assert float(verifier.embed_wavs([(at16k, 16000)]) @ from_wav[0]) > 0.9  # resampled to 22050 first
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        speaker.SpeakerVerifier.load(tmp_path / "bad.pt")


def test_training_is_seeded_and_cached(trained, tmp_path):
    _, train, _ = trained
    small = {v: train[v][:2] for v in TRAIN_VOICES[:3]}
    a = speaker.load_or_train(small, MelSpec(), cache_dir=tmp_path, steps=3, batch_size=4)
    assert "cached" not in a.info and len(list(tmp_path.glob("speaker-v*.pt"))) == 1
    b = speaker.load_or_train(small, MelSpec(), cache_dir=tmp_path, steps=3, batch_size=4)
    assert b.info["cached"].startswith(str(tmp_path))
    c = speaker.train_speaker_encoder(small, MelSpec(), steps=3, batch_size=4)  # same seed, no cache
    probe = train["f1"][3:5]
    assert torch.equal(a.embed_mels(probe), b.embed_mels(probe))
    assert torch.equal(a.embed_mels(probe), c.embed_mels(probe))
    speaker.load_or_train(small, MelSpec(), cache_dir=tmp_path, steps=3, batch_size=4, seed=1)
    assert len(list(tmp_path.glob("speaker-v*.pt"))) == 2  # other settings, other file
    with pytest.raises(ValueError, match=r"training clip 0 has shape \(40, 10\)"):
        speaker.train_speaker_encoder({"a": [torch.zeros(40, 10)], "b": [torch.zeros(40, 10)]}, MelSpec())
