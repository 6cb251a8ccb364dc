"""HarmonicCombs: pitch read from a log-mel, checked on tones of known F0, noise, and against librosa's
pyin on eSpeak speech."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tortoise_lite.audio.mel import MelSpec
from tortoise_lite.audio.pitch import HarmonicCombs


@pytest.fixture(scope="module")
def mel_spec() -> MelSpec:
    return MelSpec.preset("hifigan_22k_80")


@pytest.fixture(scope="module")
def combs(mel_spec) -> HarmonicCombs:
    return HarmonicCombs(mel_spec)


def _tone(sr: int, f0: float, seconds: float = 0.5, decay: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    k = torch.arange(1, int(4000 // f0) + 1, dtype=torch.float64)[:, None]
    # a speech-like falling spectrum (amplitude 1/k^decay) with random phases
    g = torch.Generator().manual_seed(int(f0))
    phase = 2 * math.pi * torch.rand(k.shape, generator=g, dtype=torch.float64)
    wav = (torch.cos(2 * math.pi * f0 * k * t + phase) / k**decay).sum(0)
    return (0.3 * wav / wav.abs().max()).float()


@pytest.mark.parametrize("f0", [85.0, 120.0, 180.0, 260.0])
def test_tone_pitch_within_a_quarter_tone(mel_spec, combs, f0):
    mel = mel_spec(_tone(mel_spec.sample_rate, f0))[None]
    est, voiced, score = combs.estimate(mel)
    inner = slice(4, -4)
    assert voiced[0, inner].all(), score
    cents = 1200 * torch.log2(est[0, inner] / f0)
    assert cents.abs().max() <= 50, cents


def test_noise_and_padding_are_unvoiced(mel_spec, combs):
    noise = 0.1 * torch.randn(mel_spec.sample_rate // 2, generator=torch.Generator().manual_seed(0))
    mel = mel_spec(noise)[None]
    _, voiced, _ = combs.estimate(mel)
    assert voiced.float().mean() < 0.05
    tone = mel_spec(_tone(mel_spec.sample_rate, 120.0))[None]
    mask = torch.zeros(tone.shape[0], tone.shape[-1], dtype=torch.bool)
    mask[:, :10] = True
    _, voiced, _ = combs.estimate(tone, mask)
    assert voiced[:, :10].any() and not voiced[:, 10:].any()


def test_comb_round_trip(combs):
    f0 = torch.tensor([[100.0] * 5 + [150.0] * 5 + [220.0] * 5 + [150.0] * 5])
    voiced = torch.ones_like(f0, dtype=torch.bool)
    voiced[:, 15:] = False
    comb = combs.comb(f0, voiced)
    assert comb.shape == (1, combs.templates.shape[1], 20)
    assert torch.all(comb[0, :, 15:] == 0)
    # a comb read back as a "mel" gives its own pitch (each pitch held over the estimator's context)
    est, v, _ = combs.estimate(comb[:, :, :15])
    inner = [1, 2, 3, 6, 7, 8, 11, 12, 13]
    assert v[0, inner].all()
    torch.testing.assert_close(est[0, inner], f0[0, inner], rtol=0.02, atol=0.0)


def test_agrees_with_pyin_on_espeak_speech(mel_spec, combs):
    from tortoise_lite.audio.io import resample
    from tortoise_lite.audio.metrics import f0_track
    from tortoise_lite.text.espeak import synthesize

    out = synthesize("Seven red lamps keep a river warm today.")
    wav = torch.from_numpy(resample(out.float_audio, out.sample_rate, mel_spec.sample_rate))
    f_pyin, v_pyin = f0_track(mel_spec, wav)
    est, voiced, _ = combs.estimate(mel_spec(wav)[None])
    n = min(len(f_pyin), est.shape[-1])
    both = v_pyin[:n] & voiced[0, :n].numpy() & np.isfinite(f_pyin[:n])
    assert both.sum() > 20
    cents = 1200 * np.log2(est[0, :n].numpy()[both] / f_pyin[:n][both])
    # measured on eSpeak references: ~80 % of frames voiced in both are within 50 cents
    assert np.mean(np.abs(cents) < 50) >= 0.6
