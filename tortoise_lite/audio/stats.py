"""Normalization statistics of log-mels over a dataset (global and per mel bin)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class MelStats:
    """Mean/std of log-mel values. ``per_bin`` selects per-mel-bin (``(n_mels,)``) or global statistics.

    ``normalize(mel)``: ``(B, n_mels, T)`` -> ``(mel - mean) / std``; ``denormalize`` is its inverse.
    """

    mean: torch.Tensor  # (n_mels,)
    std: torch.Tensor  # (n_mels,)
    global_mean: float
    global_std: float
    per_bin: bool = True
    count: int = 0  # number of frames seen

    @classmethod
    def identity(cls, n_mels: int) -> MelStats:
        return cls(torch.zeros(n_mels), torch.ones(n_mels), 0.0, 1.0, per_bin=True, count=0)

    @classmethod
    def from_mels(cls, mels: Iterable[torch.Tensor], per_bin: bool = True, min_std: float = 1e-3) -> MelStats:
        """Accumulate over mels shaped ``(n_mels, T)`` (or ``(B, n_mels, T)`` with no padding) in float64."""
        s = s2 = None
        n = 0
        for m in mels:
            m = m.detach().to(torch.float64)
            if m.ndim == 3:
                m = m.transpose(0, 1).reshape(m.shape[1], -1)
            if s is None:
                s = torch.zeros(m.shape[0], dtype=torch.float64)
                s2 = torch.zeros_like(s)
            s += m.sum(dim=1)
            s2 += (m * m).sum(dim=1)
            n += m.shape[1]
        if s is None or n == 0:
            raise ValueError("cannot compute mel statistics from an empty dataset")
        mean = s / n
        var = (s2 / n - mean * mean).clamp_min(0)
        g_mean = float(s.sum() / (n * len(s)))
        g_var = max(float(s2.sum() / (n * len(s))) - g_mean**2, 0.0)
        return cls(
            mean=mean.float(),
            std=var.sqrt().clamp_min(min_std).float(),
            global_mean=g_mean,
            global_std=max(g_var**0.5, min_std),
            per_bin=per_bin,
            count=n,
        )

    @property
    def n_mels(self) -> int:
        return int(self.mean.numel())

    def _params(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.per_bin:
            mean, std = self.mean, self.std
        else:
            mean = torch.full_like(self.mean, self.global_mean)
            std = torch.full_like(self.std, self.global_std)
        if like.shape[-2] != mean.numel():
            raise ValueError(
                f"mel has {like.shape[-2]} bins but the normalization statistics have {mean.numel()}; "
                "recompute the statistics with `python -m tortoise_lite.prepare` for this MelSpec"
            )
        return mean.to(like).unsqueeze(-1), std.to(like).unsqueeze(-1)

    def normalize(self, mel: torch.Tensor) -> torch.Tensor:
        mean, std = self._params(mel)
        return (mel - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._params(x)
        return x * std + mean

    def to_dict(self) -> dict:
        return {
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "global_mean": self.global_mean,
            "global_std": self.global_std,
            "per_bin": self.per_bin,
            "count": self.count,
        }

    @classmethod
    def from_dict(cls, d: dict) -> MelStats:
        return cls(
            mean=torch.tensor(d["mean"], dtype=torch.float32),
            std=torch.tensor(d["std"], dtype=torch.float32),
            global_mean=float(d["global_mean"]),
            global_std=float(d["global_std"]),
            per_bin=bool(d.get("per_bin", True)),
            count=int(d.get("count", 0)),
        )

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_dict(), f, indent=1)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> MelStats:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(
                f"{path}: normalization statistics not found; run `python -m tortoise_lite.prepare` first"
            )
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(
                f"{path}: not a valid statistics file ({e}); delete it and re-run prepare"
            ) from None
