"""Data distributions with exact denoisers, and sample distances: the ground truth for testing samplers.

* :class:`DiagonalGaussian` ``N(mu, diag(c^2))``: ``E[x0 | x_t] = mu + a c^2 / (a^2 c^2 + s^2) (x_t - a mu)``;
  the probability-flow ODE keeps ``z = (x_t - a mu) / sqrt(a^2 c^2 + s^2)`` constant, so the exact ODE
  endpoint from any start is known (:meth:`DiagonalGaussian.ode_solution`).
* :class:`IsotropicGaussianMixture` ``sum_k w_k N(mu_k, c^2 I)``: exact posterior mean
  ``sum_k gamma_k(x_t) (mu_k + a c^2 / v (x_t - a mu_k))``, ``v = a^2 c^2 + s^2``,
  ``gamma = softmax_k(log w_k - |x_t - a mu_k|^2 / (2 v))``.
* :func:`sliced_wasserstein` (W2 over random 1-D projections) and :func:`mmd_rbf` between sample sets.

Shapes: samples are (N, D); denoisers follow the sampler contract ``x0_fn(x (B, D), t (B,)) -> (B, D)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .schedules import Schedule

__all__ = ["DiagonalGaussian", "IsotropicGaussianMixture", "sliced_wasserstein", "mmd_rbf"]

_F64 = torch.float64


def _ab(schedule: Schedule, t: Tensor) -> tuple[Tensor, Tensor]:
    a, s = schedule.alpha_sigma(t.to(_F64))
    return a[:, None], s[:, None]


class DiagonalGaussian:
    """``N(mu, diag(std^2))``; mu, std: (D,)."""

    def __init__(self, mu: Tensor, std: Tensor) -> None:
        self.mu, self.std = mu.to(_F64), std.to(_F64)

    def x0_fn(self, schedule: Schedule):
        def x0_hat(x: Tensor, t: Tensor) -> Tensor:
            a, s = _ab(schedule, t)
            v = a * a * self.std**2 + s * s
            xd = x.to(_F64)
            return (self.mu + a * self.std**2 / v * (xd - a * self.mu)).to(x.dtype)

        return x0_hat

    def ode_solution(self, schedule: Schedule, x_start: Tensor, t_start: float, t_end: float) -> Tensor:
        """Exact probability-flow ODE map from ``(x_start, t_start)`` to ``t_end`` (B, D) float64."""
        a0, s0 = (float(v) for v in schedule.alpha_sigma(torch.tensor(t_start, dtype=_F64)))
        a1, s1 = (float(v) for v in schedule.alpha_sigma(torch.tensor(t_end, dtype=_F64)))
        z = (x_start.to(_F64) - a0 * self.mu) / torch.sqrt(a0 * a0 * self.std**2 + s0 * s0)
        return a1 * self.mu + torch.sqrt(a1 * a1 * self.std**2 + s1 * s1) * z


class IsotropicGaussianMixture:
    """``sum_k w_k N(means_k, std^2 I)``; means (K, D), weights (K,) (normalised here)."""

    def __init__(self, means: Tensor, std: float, weights: Tensor | None = None) -> None:
        self.means = means.to(_F64)
        self.std = float(std)
        K = self.means.shape[0]
        w = torch.full((K,), 1.0 / K, dtype=_F64) if weights is None else weights.to(_F64)
        self.weights = w / w.sum()

    @classmethod
    def random(cls, dim: int, k: int, radius: float, std: float, seed: int = 0) -> IsotropicGaussianMixture:
        """K means on a sphere of ``radius`` in ``dim`` dims, uneven weights, fixed by ``seed``."""
        g = torch.Generator().manual_seed(seed)
        m = torch.randn(k, dim, generator=g, dtype=_F64)
        m = radius * m / m.norm(dim=1, keepdim=True)
        w = 0.5 + torch.rand(k, generator=g, dtype=_F64)
        return cls(m, std, w)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, D) float64 exact samples."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        return self.means[k] + self.std * torch.randn(n, self.dim, generator=generator, dtype=_F64)

    def x0_fn(self, schedule: Schedule):
        """Exact ``E[x0 | x_t]`` for this schedule (computed in float64, returned in x's dtype)."""
        logw = torch.log(self.weights)
        c2 = self.std**2

        def x0_hat(x: Tensor, t: Tensor) -> Tensor:
            a, s = _ab(schedule, t)  # (B, 1)
            xd = x.to(_F64)
            v = a * a * c2 + s * s  # (B, 1)
            am = a[:, :, None] * self.means[None]  # (B, K, D)
            d2 = ((xd[:, None, :] - am) ** 2).sum(-1)  # (B, K)
            gamma = torch.softmax(logw[None] - d2 / (2.0 * v), dim=1)
            shrink = (a * c2 / v)[:, :, None]  # (B, 1, 1)
            comp = self.means[None] + shrink * (xd[:, None, :] - am)  # (B, K, D)
            return (gamma[:, :, None] * comp).sum(1).to(x.dtype)

        return x0_hat


def sliced_wasserstein(a: Tensor, b: Tensor, n_proj: int = 256, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance between equal-size sample sets a, b (N, D) (random unit directions
    fixed by ``seed``, so the same projections compare every sampler)."""
    if a.shape != b.shape:
        raise ValueError(f"sliced_wasserstein: needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(a.shape[1], n_proj, generator=g, dtype=_F64)
    d = d / d.norm(dim=0, keepdim=True)
    # numpy's sort of contiguous (n_proj, N) rows is several times faster than torch.sort on CPU
    pa = np.sort((a.detach().cpu().to(_F64) @ d).T.contiguous().numpy(), axis=1)
    pb = np.sort((b.detach().cpu().to(_F64) @ d).T.contiguous().numpy(), axis=1)
    return float(np.sqrt(((pa - pb) ** 2).mean()))


def mmd_rbf(a: Tensor, b: Tensor, bandwidths: tuple[float, ...] | None = None) -> float:
    """Unbiased squared MMD with a sum of RBF kernels (bandwidths default to multiples of the median
    distance); a (N, D), b (M, D)."""
    a, b = a.to(_F64), b.to(_F64)
    xx, yy, xy = torch.cdist(a, a) ** 2, torch.cdist(b, b) ** 2, torch.cdist(a, b) ** 2
    if bandwidths is None:
        med = float(torch.median(xy))
        bandwidths = tuple(med * f for f in (0.25, 1.0, 4.0))
    n, m = a.shape[0], b.shape[0]
    total = 0.0
    for bw in bandwidths:
        kxx, kyy, kxy = torch.exp(-xx / bw), torch.exp(-yy / bw), torch.exp(-xy / bw)
        total += (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
        total += (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        total -= 2.0 * kxy.mean()
    return float(total) if math.isfinite(float(total)) else math.nan
