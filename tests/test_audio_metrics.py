import numpy as np
import pytest

from tortoise_lite.audio import MelSpec
from tortoise_lite.audio.metrics import (
    f0_metrics,
    mcd_dtw,
    mel_l1,
    multi_resolution_stft_distance,
    note_pitch_accuracy,
)

SPEC = MelSpec()
SR = SPEC.sample_rate


def _harmonic(freqs_and_durations, sr=SR):
    out = []
    for f, d in freqs_and_durations:
        t = np.arange(int(d * sr)) / sr
        env = np.minimum(1, np.minimum(t, d - t) / 0.02)
        out.append(env * sum(0.3 / k * np.sin(2 * np.pi * k * f * t) for k in range(1, 8)))
    return np.concatenate(out).astype(np.float32)


def test_mcd_zero_for_identical_and_grows_with_difference():
    a = _harmonic([(200, 0.5), (300, 0.5)])
    assert mcd_dtw(SPEC, a, a) == pytest.approx(0.0, abs=1e-6)
    noisy = a + 0.01 * np.random.default_rng(0).standard_normal(len(a)).astype(np.float32)
    very = a + 0.1 * np.random.default_rng(1).standard_normal(len(a)).astype(np.float32)
    assert 0 < mcd_dtw(SPEC, a, noisy) < mcd_dtw(SPEC, a, very)
    # DTW absorbs a delay that a frame-by-frame distance would punish
    delayed = np.concatenate([np.zeros(SPEC.hop * 8, np.float32), a])
    assert mcd_dtw(SPEC, a, delayed) < mcd_dtw(SPEC, a, very)


def test_f0_metrics_measure_a_known_detune():
    a = _harmonic([(200, 0.8)])
    b = _harmonic([(200 * 2 ** (100 / 1200), 0.8)])  # +100 cents
    m = f0_metrics(SPEC, a, b)
    assert m.voiced_frames > 20
    assert m.log_f0_rmse_cents == pytest.approx(100, abs=15)
    assert m.vuv_error < 0.1
    silent_tail = np.concatenate([a[: len(a) // 2], np.zeros(len(a) // 2, np.float32)])
    assert f0_metrics(SPEC, a, silent_tail).vuv_error > 0.2


def test_note_pitch_accuracy():
    freqs = [261.63, 329.63, 392.0]
    wav = _harmonic([(f, 0.4) for f in freqs])
    notes = [(i * 0.4, (i + 1) * 0.4, f) for i, f in enumerate(freqs)]
    acc, errs = note_pitch_accuracy(SPEC, wav, notes)
    assert acc == 1.0 and max(abs(e) for e in errs) < 20
    detuned = [(s, e, f * 2 ** (80 / 1200) if i == 1 else f) for i, (s, e, f) in enumerate(notes)]
    acc, errs = note_pitch_accuracy(SPEC, wav, detuned)
    assert acc == pytest.approx(2 / 3) and errs[1] == pytest.approx(-80, abs=20)


def test_reanalysis_distances():
    a = _harmonic([(220, 0.5)])
    b = a + 0.05 * np.random.default_rng(0).standard_normal(len(a)).astype(np.float32)
    assert mel_l1(SPEC, a, a) == 0.0 and mel_l1(SPEC, a, b) > 0.05
    assert multi_resolution_stft_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert multi_resolution_stft_distance(a, b) > 0.1
    with pytest.raises(ValueError, match="empty waveform"):
        mel_l1(SPEC, a, np.zeros(0, np.float32))


def test_note_pitch_accuracy_high_notes_have_no_octave_errors():
    """High harmonic notes: a wide pyin range would lock onto the sub-octave; the per-note window must not."""
    freqs = [1046.5, 783.99, 1479.98]  # C6, G5, F#6
    wav = _harmonic([(f, 0.25) for f in freqs])
    notes = [(i * 0.25, (i + 1) * 0.25, f) for i, f in enumerate(freqs)]
    acc, errs = note_pitch_accuracy(SPEC, wav, notes)
    assert acc == 1.0 and max(abs(e) for e in errs) < 20
    octave_off = [(s, e, 2 * f) for s, e, f in notes]  # (a target an octave *below* is inherently ambiguous)
    assert note_pitch_accuracy(SPEC, wav, octave_off)[0] == 0.0
