"""Duration and total-length predictors.

``DurationPredictor`` (FastSpeech/Glow-TTS): two masked conv layers on the (detached) text encoding
predict log(1 + frames) per token. ``LengthPredictor`` (cross-attention mode, where tokens are not
aligned to frames): masked mean pooling + MLP predicts log(total frames).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class DurationPredictor(nn.Module):
    """h (B, L, D), mask (B, L) bool -> log(1 + duration) (B, L), zero at padded tokens."""

    def __init__(self, in_dim: int, hidden: int = 256, kernel_size: int = 3, dropout: float = 0.1):
        super().__init__()
        self.convs = nn.ModuleList(
            [
                nn.Conv1d(in_dim, hidden, kernel_size, padding=kernel_size // 2),
                nn.Conv1d(hidden, hidden, kernel_size, padding=kernel_size // 2),
            ]
        )
        self.norms = nn.ModuleList([nn.LayerNorm(hidden), nn.LayerNorm(hidden)])
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(hidden, 1)

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        m = mask[:, None, :].to(h.dtype)
        x = h.transpose(1, 2) * m
        for conv, norm in zip(self.convs, self.norms):
            x = conv(x * m)
            x = self.dropout(norm(F.relu(x).transpose(1, 2))).transpose(1, 2)
        return self.proj(x.transpose(1, 2)).squeeze(-1) * mask.to(h.dtype)


def durations_from_log(log_dur: Tensor, mask: Tensor, length_scale: float | Tensor = 1.0) -> Tensor:
    """log(1 + d) (B, L) -> integer durations (B, L) long, scaled by ``length_scale`` (>1 = slower).

    Every real token gets at least one frame so no text is skipped; padded tokens get 0."""
    scale = torch.as_tensor(length_scale, dtype=torch.float32, device=log_dur.device)
    if scale.dim() == 1:
        scale = scale[:, None]
    d = torch.round(torch.expm1(log_dur.float()).clamp_min(0.0) * scale).long().clamp_min(1)
    return d * mask.long()


class LengthPredictor(nn.Module):
    """h (B, L, D), mask (B, L) -> log(total frames) (B,)."""

    def __init__(self, in_dim: int, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim + 1, hidden),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        m = mask[..., None].to(h.dtype)
        n = m.sum(1).clamp_min(1.0)
        pooled = (h * m).sum(1) / n
        # the token count carries most of the length information: give it explicitly (log scale)
        return self.net(torch.cat([pooled, n.log()], dim=-1)).squeeze(-1)


def lengths_from_log(log_len: Tensor, length_scale: float | Tensor = 1.0, min_frames: int = 1) -> Tensor:
    """log(total frames) (B,) -> frames (B,) long."""
    scale = torch.as_tensor(length_scale, dtype=torch.float32, device=log_len.device)
    return torch.round(log_len.float().exp() * scale).long().clamp_min(min_frames)
