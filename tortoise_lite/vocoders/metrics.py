"""Vocoder quality measures against ground truth (used by the benchmark and training validation).

All take waveforms ``(B, S)`` or ``(S,)``; lengths are cut to the shorter of the two, since vocoders
may return a few samples more or fewer than the reference.

* ``mel_l1``: mean |log-mel(output) - log-mel(reference)| with the vocoder's own MelSpec (re-analysis).
* ``mel_cepstral_distortion``: MCD in dB over cepstra c1..c_K from an orthonormal DCT of the natural-log
  mel (c0, the frame energy, excluded as usual): ``10 / ln 10 * sqrt(2 * sum_k (c_k - c'_k)^2)``, averaged
  over frames. A log-mel-based MCD, comparable between vocoders sharing a MelSpec, not to SPTK figures.
* ``multi_resolution_stft_distance``: spectral convergence + log-magnitude L1, averaged over resolutions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from tortoise_lite.audio.mel import MelSpec


def _pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a = a.unsqueeze(0) if a.ndim == 1 else a
    b = b.unsqueeze(0) if b.ndim == 1 else b
    n = min(a.shape[-1], b.shape[-1])
    return a[..., :n].float(), b[..., :n].float()


def mel_l1(output: torch.Tensor, reference: torch.Tensor, mel_spec: MelSpec) -> float:
    out, ref = _pair(output, reference)
    return (mel_spec(out) - mel_spec(ref)).abs().mean().item()


def dct_matrix(n: int, dtype=torch.float64) -> torch.Tensor:
    """Orthonormal DCT-II ``(n, n)``: ``c = D @ x``."""
    k = torch.arange(n, dtype=dtype)[:, None]
    i = torch.arange(n, dtype=dtype)[None, :]
    d = torch.cos(math.pi / n * (i + 0.5) * k) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d


def mel_cepstral_distortion(
    output: torch.Tensor, reference: torch.Tensor, mel_spec: MelSpec, n_cepstra: int = 24
) -> float:
    """MCD (dB) over c1..c_{n_cepstra} of the log-mel cepstrum; see module doc."""
    out, ref = _pair(output, reference)
    d = dct_matrix(mel_spec.n_mels)[1 : n_cepstra + 1].float()
    diff = d @ (mel_spec(out) - mel_spec(ref))  # (B, K, T)
    per_frame = (2.0 * diff.square().sum(dim=1)).sqrt() * (10.0 / math.log(10.0))
    return per_frame.mean().item()


def multi_resolution_stft_distance(
    output: torch.Tensor,
    reference: torch.Tensor,
    fft_sizes: Sequence[int] = (512, 1024, 2048),
    hop_divisor: int = 4,
    floor: float = 1e-5,
) -> float:
    """Mean over resolutions of spectral convergence + mean |log|X| - log|Y||."""
    out, ref = _pair(output, reference)
    total = 0.0
    for n_fft in fft_sizes:
        window = torch.hann_window(n_fft, device=out.device)
        kw = dict(n_fft=n_fft, hop_length=n_fft // hop_divisor, window=window, return_complex=True)
        x = torch.stft(out, **kw).abs()
        y = torch.stft(ref, **kw).abs()
        sc = torch.linalg.norm(y - x) / torch.linalg.norm(y).clamp_min(floor)
        log_l1 = (x.clamp_min(floor).log() - y.clamp_min(floor).log()).abs().mean()
        total += (sc + log_l1).item()
    return total / len(fft_sizes)
