"""Inverse STFT that frames exactly like the MelSpec front end.

``torch.istft(center=False)`` refuses Hann windows because the window sum is zero at the signal edges
(pytorch/pytorch#62323), yet the HiFi-GAN convention is ``center=False`` with ``(n_fft - hop) / 2``
reflect padding ("same" padding). Here the overlap-add is done with ``F.fold`` and the padded edges are
trimmed, so frame ``t`` of the output is centred where frame ``t`` of the analysis was.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def padded_window(win_length: int, n_fft: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Periodic Hann window of ``win_length`` zero-padded (centred) to ``n_fft``, as ``torch.stft`` does."""
    w = torch.hann_window(win_length, device=device, dtype=dtype)
    left = (n_fft - win_length) // 2
    return F.pad(w, (left, n_fft - win_length - left))


def overlap_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """``(B, n_fft, T)`` frames -> ``(B, (T - 1) * hop + n_fft)`` overlap-added signal (differentiable).

    When ``hop`` divides ``n_fft`` (the usual case) the frames are summed as ``n_fft / hop`` shifted
    contiguous copies, ~5x faster on CPU than ``F.fold``; other hops use ``F.fold``.
    """
    n_batch, n_fft, n_frames = frames.shape
    total = (n_frames - 1) * hop + n_fft
    if n_fft % hop:
        out = F.fold(frames, output_size=(1, total), kernel_size=(1, n_fft), stride=(1, hop))
        return out[:, 0, 0]
    overlap = n_fft // hop
    # (B, overlap, hop, T) -> (B, overlap, T * hop): chunk j of every frame, frames one after another
    chunks = frames.reshape(n_batch, overlap, hop, n_frames).transpose(2, 3).reshape(n_batch, overlap, -1)
    out = frames.new_zeros(n_batch, total)
    for j in range(overlap):
        out[:, j * hop : j * hop + n_frames * hop] += chunks[:, j]
    return out


class ISTFT(nn.Module):
    """Complex spectrogram ``(B, n_fft // 2 + 1, T)`` -> waveform ``(B, S)``.

    Args:
        n_fft, hop, win_length: STFT framing.
        padding: ``"same"`` (analysis was ``center=False`` after ``(n_fft - hop) // 2`` reflect padding per
            side; output has ``T * hop`` samples) or ``"center"`` (analysis was ``center=True``; output has
            ``(T - 1) * hop`` samples unless ``length`` is given).
    """

    def __init__(self, n_fft: int, hop: int, win_length: int | None = None, padding: str = "same") -> None:
        super().__init__()
        if padding not in ("same", "center"):
            raise ValueError(f"padding must be 'same' or 'center', got {padding!r}")
        self.n_fft, self.hop = n_fft, hop
        self.win_length = win_length or n_fft
        self.padding = padding
        self.register_buffer("window", padded_window(self.win_length, n_fft), persistent=False)

    def trim(self) -> int:
        """Samples dropped at the start of the overlap-added signal."""
        return (self.n_fft - self.hop) // 2 if self.padding == "same" else self.n_fft // 2

    def forward(self, spec: torch.Tensor, length: int | None = None) -> torch.Tensor:
        if spec.ndim != 3:
            raise ValueError(f"ISTFT expects (B, freqs, frames), got {tuple(spec.shape)}")
        n_frames = spec.shape[-1]
        if length is None:
            length = n_frames * self.hop if self.padding == "same" else (n_frames - 1) * self.hop
        window = self.window.to(dtype=spec.real.dtype)
        frames = torch.fft.irfft(spec, n=self.n_fft, dim=1) * window[None, :, None]  # (B, n_fft, T)
        start = self.trim()
        # Overlap-add; frames past the last one are zero so `length` may reach slightly beyond it.
        ola = overlap_add(frames, self.hop)
        env = overlap_add(window.square()[None, :, None].expand(1, -1, n_frames), self.hop)
        y = ola[:, start : start + length]
        env = env[0, start : start + length]
        # Where no window overlaps (only possible at the far edges) leave zeros instead of dividing by ~0.
        tiny = torch.finfo(env.dtype).tiny ** 0.5
        y = torch.where(env > tiny, y / env.clamp_min(tiny), torch.zeros_like(y))
        if y.shape[-1] < length:
            y = F.pad(y, (0, length - y.shape[-1]))
        return y
