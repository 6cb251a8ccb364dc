"""Griffin-Lim: the training-free default vocoder.

Two steps, both batched torch (GPU when the input is on a GPU):

1. log-mel -> linear STFT magnitude: non-negative least squares ``min ||F S - M||^2, S >= 0`` with the
   MelSpec's own filterbank ``F`` (pseudo-inverse start, then projected gradient steps of size 1/L with
   L = ||F||_2^2, which decrease the objective monotonically).
2. magnitude -> waveform: fast Griffin-Lim (Perraudin, Balazs & Sondergaard 2013), i.e. Griffin-Lim with
   a momentum term on the projected spectrogram, using the MelSpec's STFT framing (``center`` and the
   ``(n_fft - hop) / 2`` reflect padding) so frames line up with the analysis. It starts from a random
   phase (the classic algorithm, default) or from the phase-gradient integration of ``pghi.py``
   (``init="pghi"``), which needs half the iterations for the same re-analysis distance.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import torch

from tortoise_lite.audio.mel import MelSpec
from tortoise_lite.vocoders.base import Vocoder
from tortoise_lite.vocoders.pghi import pghi_phase
from tortoise_lite.vocoders.spectral import ISTFT

INITS = ("random", "pghi")


@lru_cache(maxsize=16)
def _nnls_operators(
    mel_spec: MelSpec, device: str, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """(F_used, pinv(F_used), F_used^T F_used, 1 / ||F_used||_2^2) for the FFT bins any mel filter touches.

    Bins above the last filter carry no weight: their magnitude is 0 in the NNLS solution anyway, so the
    solve runs on the used bins only. Cached: these do not change between calls.
    """
    fb = mel_spec.filterbank(device, dtype)
    used = int(torch.nonzero(fb.abs().sum(0)).max()) + 1
    fb = fb[:, :used].contiguous()
    step = 1.0 / float(torch.linalg.matrix_norm(fb, ord=2).square())
    return fb, torch.linalg.pinv(fb), fb.T @ fb, step


def mel_to_linear(log_mel: torch.Tensor, mel_spec: MelSpec, nnls_iters: int = 30) -> torch.Tensor:
    """Natural-log mel ``(B, n_mels, T)`` -> linear STFT magnitude ``(B, n_fft // 2 + 1, T)``.

    The mel is of ``|X|^power``; the NNLS solution is mapped back with ``1 / power``.
    """
    work = torch.float64 if log_mel.dtype == torch.float64 else torch.float32
    fb, pinv, gram, step = _nnls_operators(mel_spec, str(log_mel.device), work)
    target = log_mel.to(work).exp()  # (B, n_mels, T)
    s = (pinv @ target).clamp_min(0.0)  # (B, F_used, T) least-squares start
    if nnls_iters > 0:
        fbt_m = fb.T @ target  # gradient = F^T F s - F^T m
        for _ in range(nnls_iters):
            s = (s - step * (gram @ s - fbt_m)).clamp_min(0.0)
    if mel_spec.power != 1.0:
        s = s.pow(1.0 / mel_spec.power)
    s = torch.nn.functional.pad(s, (0, 0, 0, mel_spec.n_freqs - s.shape[1]))
    return s.to(log_mel.dtype)


def fast_griffin_lim(
    magnitude: torch.Tensor,
    mel_spec: MelSpec,
    n_iter: int = 32,
    momentum: float = 0.99,
    seed: int | None = 0,
    length: int | None = None,
    init: str = "random",
) -> torch.Tensor:
    """Linear magnitude ``(B, n_fft // 2 + 1, T)`` -> waveform ``(B, length)`` (default ``T * hop``).

    Args:
        n_iter: Griffin-Lim iterations (each is one iSTFT + one STFT).
        momentum: the "fast" Griffin-Lim acceleration in [0, 1); 0 gives classic Griffin-Lim.
        seed: random initial phase, drawn per item from its own generator so an item's result does not
            depend on the rest of the batch; ``None`` starts from zero phase.
        init: ``"random"`` (as ``seed`` says) or ``"pghi"`` (phase-gradient heuristic integration of the
            magnitude; ``seed`` then only draws the phase of near-silent bins).
    """
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    n_batch, _, n_frames = magnitude.shape
    length = mel_spec.num_samples(n_frames) if length is None else length
    istft = ISTFT(mel_spec.n_fft, mel_spec.hop, mel_spec.win, "center" if mel_spec.center else "same").to(
        magnitude.device
    )
    if init == "pghi":
        phase = pghi_phase(magnitude, mel_spec, seed=0 if seed is None else seed)
    elif seed is None:
        phase = torch.zeros_like(magnitude)
    else:
        phase = torch.stack(
            [
                torch.rand(
                    magnitude.shape[1:], generator=torch.Generator().manual_seed(seed), dtype=magnitude.dtype
                )
                for _ in range(n_batch)
            ]
        ).to(magnitude.device) * (2 * torch.pi)
    angles = torch.polar(torch.ones_like(magnitude), phase)
    spec = consistency_projections(magnitude, angles, mel_spec, istft, n_iter, momentum, length)
    return istft(spec, length=length)


def consistency_projections(
    magnitude: torch.Tensor,
    angles: torch.Tensor,
    mel_spec: MelSpec,
    istft: ISTFT,
    n_iter: int,
    momentum: float = 0.99,
    length: int | None = None,
) -> torch.Tensor:
    """``n_iter`` fast Griffin-Lim steps from unit phasors ``angles``; returns the complex STFT
    ``magnitude * angles`` ``(B, n_fft // 2 + 1, T)`` with the refined phase.

    Each step projects onto consistent spectrograms (iSTFT then STFT with ``mel_spec``'s framing) and back
    onto the target magnitude. Differentiable in ``magnitude`` and ``angles``, so a network that predicts
    them can be trained through the steps (Deep Griffin-Lim style; ``VocosVocoder(consistency_iters=...)``).
    ``length``: samples of the intermediate waveforms (default ``mel_spec.num_samples(T)``).
    """
    n_frames = magnitude.shape[-1]
    length = mel_spec.num_samples(n_frames) if length is None else length
    previous = torch.zeros_like(angles)
    tiny = torch.finfo(magnitude.dtype).eps ** 2
    for _ in range(n_iter):
        rebuilt = mel_spec.stft(istft(magnitude * angles, length=length))[..., :n_frames]
        angles = rebuilt - (momentum / (1.0 + momentum)) * previous
        # rsqrt(|z|^2 + tiny) rather than 1 / |z|: finite gradients where a bin is exactly zero
        angles = angles * torch.rsqrt(angles.real.square() + angles.imag.square() + tiny)
        previous = rebuilt
    return magnitude * angles


class GriffinLim(Vocoder):
    """Training-free vocoder: NNLS mel inversion + fast Griffin-Lim.

    Args:
        mel_spec: the MelSpec of the input mels (object, dict of fields, or preset name).
        n_iter: Griffin-Lim iterations; more = fewer phase artefacts, linear cost.
        momentum: fast Griffin-Lim momentum (0.99 as in torchaudio/librosa).
        nnls_iters: projected-gradient refinements of the mel -> linear magnitude solve.
        seed: initial random phase seed (per item); None = zero phase.
        init: initial phase, ``"random"`` (classic, default) or ``"pghi"`` (phase-gradient integration).
    """

    def __init__(
        self,
        mel_spec: MelSpec | Mapping[str, Any] | str | None = None,
        n_iter: int = 32,
        momentum: float = 0.99,
        nnls_iters: int = 30,
        seed: int | None = 0,
        init: str = "random",
    ) -> None:
        super().__init__(mel_spec)
        if n_iter < 0 or nnls_iters < 0:
            raise ValueError(f"n_iter ({n_iter}) and nnls_iters ({nnls_iters}) must be >= 0")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        self.n_iter, self.momentum, self.nnls_iters, self.seed = n_iter, momentum, nnls_iters, seed
        self.init = init
        self.register_buffer("filterbank", self.mel_spec.filterbank(), persistent=False)

    @torch.no_grad()
    def synthesize(self, mel: torch.Tensor) -> torch.Tensor:
        """``(B, n_mels, T)`` log-mel -> ``(B, T * hop)`` waveform."""
        mel = mel.to(self.filterbank.device, torch.float32)
        magnitude = mel_to_linear(mel, self.mel_spec, self.nnls_iters)
        return fast_griffin_lim(
            magnitude, self.mel_spec, self.n_iter, self.momentum, self.seed, init=self.init
        )

    def extra_repr(self) -> str:
        return (
            f"n_iter={self.n_iter}, momentum={self.momentum}, nnls_iters={self.nnls_iters}, init={self.init}, "
            f"{super().extra_repr()}"
        )
