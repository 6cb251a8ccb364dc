"""Objective audio quality measures shared by evaluation and benchmarks.

- ``mcd_dtw``: mel-cepstral distortion (dB) after dynamic time warping, on cepstra of the MelSpec's log-mel.
- ``f0_metrics``: log-F0 RMSE (cents) and voiced/unvoiced error on DTW-aligned frames, F0 by ``librosa.pyin``.
- ``note_pitch_accuracy``: share of notes whose median F0 lies within a tolerance (cents) of the target pitch.
- ``mel_l1`` and ``multi_resolution_stft_distance``: re-analysis distances between two waveforms.

All functions take mono waveforms ``(S,)`` (numpy or torch) at the MelSpec's sample rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import librosa
import numpy as np
import scipy.fft
import torch

from tortoise_lite.audio.mel import MelSpec

_DB = 10.0 / math.log(10.0)


def _np(wav: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().float().cpu().numpy()
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if wav.size == 0:
        raise ValueError("cannot measure an empty waveform")
    return wav


def cepstrum_from_log_mel(log_mel: torch.Tensor | np.ndarray, n_coeffs: int = 24) -> np.ndarray:
    """Mel cepstra ``(frames, n_coeffs)`` (c1..cN, c0 dropped) of a natural-log amplitude mel ``(n_mels, T)``.

    Scaled like a truncated cepstrum, ``ln|H| = c0 + 2 sum_m c_m cos(...)``, i.e. ``c_m = sqrt(2 / N)`` times the
    orthonormal DCT-II over the N mel bands, so MCD values land on the usual scale (a few dB).
    """
    log_mel = log_mel.detach().cpu().numpy() if isinstance(log_mel, torch.Tensor) else np.asarray(log_mel)
    n = log_mel.shape[0]
    cep = scipy.fft.dct(log_mel.astype(np.float64), type=2, norm="ortho", axis=0) * math.sqrt(2.0 / n)
    return cep[1 : n_coeffs + 1].T


def mel_cepstrum(mel_spec: MelSpec, wav: torch.Tensor | np.ndarray, n_coeffs: int = 24) -> np.ndarray:
    """Mel cepstra ``(frames, n_coeffs)`` of a waveform through the MelSpec (see ``cepstrum_from_log_mel``)."""
    return cepstrum_from_log_mel(mel_spec(torch.from_numpy(_np(wav))), n_coeffs)


def dtw_path(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices ``(ia, ib)`` of the Euclidean DTW path between ``a (Ta, D)`` and ``b (Tb, D)``."""
    _, wp = librosa.sequence.dtw(X=a.T, Y=b.T, metric="euclidean")
    wp = wp[::-1]
    return wp[:, 0], wp[:, 1]


def mcd_dtw_cepstra(ca: np.ndarray, cb: np.ndarray) -> float:
    """MCD (dB) ``10/ln10 * sqrt(2 * sum_d (c_d - c'_d)^2)`` averaged over the DTW path of two cepstra."""
    ia, ib = dtw_path(ca, cb)
    diff = ca[ia] - cb[ib]
    return float(np.mean(_DB * np.sqrt(2.0 * np.sum(diff * diff, axis=1))))


def mcd_dtw(
    mel_spec: MelSpec, ref: torch.Tensor | np.ndarray, test: torch.Tensor | np.ndarray, n_coeffs: int = 24
) -> float:
    """Mel-cepstral distortion in dB between two waveforms, after DTW (see ``mcd_dtw_cepstra``)."""
    return mcd_dtw_cepstra(mel_cepstrum(mel_spec, ref, n_coeffs), mel_cepstrum(mel_spec, test, n_coeffs))


def f0_track(
    mel_spec: MelSpec,
    wav: torch.Tensor | np.ndarray,
    fmin: float = 60.0,
    fmax: float = 600.0,
    frames_per_window: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """``librosa.pyin`` F0 (Hz, NaN when unvoiced) and voiced flags, one value per MelSpec hop.

    The analysis window spans ``frames_per_window`` hops (~93 ms at 22050/256: stable voicing for speech).
    """
    f0, voiced, _ = librosa.pyin(
        _np(wav),
        fmin=fmin,
        fmax=fmax,
        sr=mel_spec.sample_rate,
        frame_length=frames_per_window * mel_spec.hop,
        hop_length=mel_spec.hop,
    )
    return f0, voiced.astype(bool)


@dataclass
class F0Metrics:
    log_f0_rmse_cents: float  # over frames voiced in both (NaN if none)
    vuv_error: float  # share of aligned frames whose voicing decision differs
    voiced_frames: int


def f0_metrics(
    mel_spec: MelSpec,
    ref: torch.Tensor | np.ndarray,
    test: torch.Tensor | np.ndarray,
    fmin: float = 60.0,
    fmax: float = 600.0,
) -> F0Metrics:
    """Log-F0 RMSE (cents) and V/UV error along the mel-cepstral DTW path between ``ref`` and ``test``."""
    ref, test = _np(ref), _np(test)
    ia, ib = dtw_path(mel_cepstrum(mel_spec, ref), mel_cepstrum(mel_spec, test))
    fa, va = f0_track(mel_spec, ref, fmin, fmax)
    fb, vb = f0_track(mel_spec, test, fmin, fmax)
    ia, ib = np.minimum(ia, len(fa) - 1), np.minimum(ib, len(fb) - 1)
    va, vb, fa, fb = va[ia], vb[ib], fa[ia], fb[ib]
    both = va & vb & np.isfinite(fa) & np.isfinite(fb)
    rmse = float(np.sqrt(np.mean((1200 * np.log2(fa[both] / fb[both])) ** 2))) if both.any() else float("nan")
    return F0Metrics(
        log_f0_rmse_cents=rmse, vuv_error=float(np.mean(va != vb)), voiced_frames=int(both.sum())
    )


def cents(f: float | np.ndarray, ref: float | np.ndarray) -> np.ndarray:
    return 1200.0 * np.log2(np.asarray(f) / np.asarray(ref))


def note_pitch_accuracy(
    mel_spec: MelSpec,
    wav: torch.Tensor | np.ndarray,
    notes: Sequence[tuple[float, float, float]],
    tolerance_cents: float = 50.0,
) -> tuple[float, list[float]]:
    """Share of notes whose median pyin F0 lies within ``tolerance_cents`` of the target.

    ``notes``: ``(start_s, end_s, target_hz)``; the outer 20 % of each note is ignored (onsets, releases).
    pyin searches each note within half an octave of its target: with a wider range it locks onto
    sub-harmonics of high or bell-like notes (octave errors of the *measurement*, seen on clean synthetic
    tones). A pitch outside that window leaves the note unvoiced, which counts as a miss. (A sound an
    octave *above* its target still passes as periodic at the target: no pitch tracker can tell those apart.)
    Returns the accuracy and each note's error in cents (NaN where the note was not voiced).
    """
    wav = _np(wav)
    errors = []
    for start, end, target in notes:
        margin = 0.2 * (end - start)
        lo, hi = int((start + margin) * mel_spec.sample_rate), int((end - margin) * mel_spec.sample_rate)
        # one analysis frame of context each side, so pyin's frames centred inside the note are complete
        ctx = 2 * mel_spec.hop
        seg_wav = wav[max(0, lo - ctx) : hi + ctx]
        if hi <= lo or seg_wav.size < 4 * mel_spec.hop:
            errors.append(float("nan"))
            continue
        f0, voiced = f0_track(
            mel_spec, seg_wav, target / 2**0.5, min(mel_spec.sample_rate / 4, target * 2**0.5)
        )
        inner = slice(ctx // mel_spec.hop, max(ctx // mel_spec.hop + 1, len(f0) - ctx // mel_spec.hop))
        seg = f0[inner][voiced[inner]]
        seg = seg[np.isfinite(seg)]
        errors.append(float(cents(np.median(seg), target)) if seg.size else float("nan"))
    ok = [abs(e) <= tolerance_cents for e in errors if not math.isnan(e)]
    return (sum(ok) / len(notes) if notes else float("nan")), errors


def mel_l1(mel_spec: MelSpec, ref: torch.Tensor | np.ndarray, test: torch.Tensor | np.ndarray) -> float:
    """Mean |log-mel difference| over the common length (no warping: for vocoder re-analysis)."""
    a = mel_spec(torch.from_numpy(_np(ref)))
    b = mel_spec(torch.from_numpy(_np(test)))
    n = min(a.shape[-1], b.shape[-1])
    return float((a[:, :n] - b[:, :n]).abs().mean())


def multi_resolution_stft_distance(
    ref: torch.Tensor | np.ndarray,
    test: torch.Tensor | np.ndarray,
    resolutions: Sequence[tuple[int, int]] = ((512, 128), (1024, 256), (2048, 512)),
) -> float:
    """Mean over resolutions of spectral convergence + mean |log magnitude difference| (Parallel WaveGAN)."""
    a, b = torch.from_numpy(_np(ref)), torch.from_numpy(_np(test))
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    total = 0.0
    for n_fft, hop in resolutions:
        win = torch.hann_window(n_fft)
        sa = torch.stft(a, n_fft, hop, window=win, return_complex=True).abs().clamp_min(1e-7)
        sb = torch.stft(b, n_fft, hop, window=win, return_complex=True).abs().clamp_min(1e-7)
        sc = torch.linalg.norm(sa - sb) / torch.linalg.norm(sa)
        mag = (sa.log() - sb.log()).abs().mean()
        total += float(sc + mag)
    return total / len(resolutions)
