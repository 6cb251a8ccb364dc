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


def mel_cepstrum(mel_spec: MelSpec, wav: torch.Tensor | np.ndarray, n_coeffs: int = 24) -> np.ndarray:
    """Mel cepstra ``(frames, n_coeffs)`` (c1..cN, c0 dropped): orthonormal DCT-II of the log mel *power*."""
    log_mel = mel_spec(torch.from_numpy(_np(wav))).numpy()  # (n_mels, frames), ln magnitude
    cep = scipy.fft.dct(2.0 * log_mel, type=2, norm="ortho", axis=0)
    return cep[1 : n_coeffs + 1].T


def dtw_path(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices ``(ia, ib)`` of the Euclidean DTW path between ``a (Ta, D)`` and ``b (Tb, D)``."""
    _, wp = librosa.sequence.dtw(X=a.T, Y=b.T, metric="euclidean")
    wp = wp[::-1]
    return wp[:, 0], wp[:, 1]


def mcd_dtw(
    mel_spec: MelSpec, ref: torch.Tensor | np.ndarray, test: torch.Tensor | np.ndarray, n_coeffs: int = 24
) -> float:
    """Mel-cepstral distortion in dB, ``10/ln10 * sqrt(2 * sum_d (c_d - c'_d)^2)`` averaged over the DTW path."""
    ca, cb = mel_cepstrum(mel_spec, ref, n_coeffs), mel_cepstrum(mel_spec, test, n_coeffs)
    ia, ib = dtw_path(ca, cb)
    diff = ca[ia] - cb[ib]
    return float(np.mean(_DB * np.sqrt(2.0 * np.sum(diff * diff, axis=1))))


def f0_track(
    mel_spec: MelSpec, wav: torch.Tensor | np.ndarray, fmin: float = 60.0, fmax: float = 600.0
) -> tuple[np.ndarray, np.ndarray]:
    """``librosa.pyin`` F0 (Hz, NaN when unvoiced) and voiced flags, one value per MelSpec hop."""
    f0, voiced, _ = librosa.pyin(
        _np(wav),
        fmin=fmin,
        fmax=fmax,
        sr=mel_spec.sample_rate,
        frame_length=4 * mel_spec.hop * 2,
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
    Returns the accuracy and each note's error in cents (NaN where the note was not voiced).
    """
    fmin = max(30.0, min(n[2] for n in notes) / 2)
    fmax = min(mel_spec.sample_rate / 4, max(n[2] for n in notes) * 2)
    f0, voiced = f0_track(mel_spec, wav, fmin, fmax)
    frame_s = mel_spec.hop / mel_spec.sample_rate
    errors = []
    for start, end, target in notes:
        margin = 0.2 * (end - start)
        lo, hi = (
            int((start + margin) / frame_s),
            max(int((end - margin) / frame_s), int((start + margin) / frame_s) + 1),
        )
        seg = f0[lo:hi][voiced[lo:hi]]
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
