"""Data distributions with exact denoisers, and sample distances: the ground truth for testing samplers.

* :class:`DiagonalGaussian` ``N(mu, diag(c^2))``: ``E[x0 | x_t] = mu + a c^2 / (a^2 c^2 + s^2) (x_t - a mu)``;
  the probability-flow ODE keeps ``z = (x_t - a mu) / sqrt(a^2 c^2 + s^2)`` constant, so the exact ODE
  endpoint from any start is known (:meth:`DiagonalGaussian.ode_solution`).
* :class:`IsotropicGaussianMixture` ``sum_k w_k N(mu_k, c_k^2 I)`` (one std for all components or one per
  component): exact posterior mean ``sum_k gamma_k(x_t) (mu_k + a c_k^2 / v_k (x_t - a mu_k))``,
  ``v_k = a^2 c_k^2 + s^2``, ``gamma = softmax_k(log w_k - |x_t - a mu_k|^2 / (2 v_k) - (D / 2) log v_k)``.
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


def _weights_and_stds(
    g: torch.Generator, k: int, std: float | tuple[float, float]
) -> tuple[float | Tensor, Tensor]:
    """``(std, weights)`` of K components, drawn in this order from ``g``: uneven weights in [0.5, 1.5), and
    one std per component from the range ``(lo, hi)`` when ``std`` is a range (else the one std)."""
    w = 0.5 + torch.rand(k, generator=g, dtype=_F64)
    if isinstance(std, (tuple, list)):
        lo, hi = (float(v) for v in std)
        std = lo + (hi - lo) * torch.rand(k, generator=g, dtype=_F64)
    return std, w


class IsotropicGaussianMixture:
    """``sum_k w_k N(means_k, std_k^2 I)``; means (K, D), std a float or (K,), weights (K,) (normalised here)."""

    def __init__(self, means: Tensor, std: float | Tensor, weights: Tensor | None = None) -> None:
        self.means = means.to(_F64)
        K = self.means.shape[0]
        self.stds = torch.as_tensor(std, dtype=_F64).expand(K).clone()  # (K,)
        if not bool((self.stds > 0).all()):
            raise ValueError(
                f"IsotropicGaussianMixture: component stds must be > 0, got {self.stds.tolist()}"
            )
        # the scalar ``std`` attribute keeps its meaning (the common std) when all components share one
        self.std = float(self.stds[0]) if bool((self.stds == self.stds[0]).all()) else None
        w = torch.full((K,), 1.0 / K, dtype=_F64) if weights is None else weights.to(_F64)
        self.weights = w / w.sum()

    @classmethod
    def random(
        cls,
        dim: int,
        k: int,
        radius: float,
        std: float | tuple[float, float],
        seed: int = 0,
    ) -> IsotropicGaussianMixture:
        """K means on a sphere of ``radius`` in ``dim`` dims, uneven weights, fixed by ``seed``.
        ``std``: one std for all components, or a range ``(lo, hi)`` to draw one std per component from."""
        g = torch.Generator().manual_seed(seed)
        m = torch.randn(k, dim, generator=g, dtype=_F64)
        m = radius * m / m.norm(dim=1, keepdim=True)
        return cls(m, *_weights_and_stds(g, k, std))

    @classmethod
    def clustered(
        cls,
        dim: int,
        k: int,
        radius: float,
        spread: float,
        std: float | tuple[float, float],
        seed: int = 0,
    ) -> IsotropicGaussianMixture:
        """A non-centred mixture: K means on the sphere of ``radius`` around one random direction ``u``
        (``radius * normalize(u + spread * g_k / sqrt(dim))``, ``g_k`` standard normal), so the data mean lies
        far from the origin (``|mean| ~ radius / sqrt(1 + spread^2)``); uneven weights; ``std`` as in
        :meth:`random`."""
        g = torch.Generator().manual_seed(seed)
        u = torch.randn(dim, generator=g, dtype=_F64)
        m = u / u.norm() + spread * torch.randn(k, dim, generator=g, dtype=_F64) / math.sqrt(dim)
        m = radius * m / m.norm(dim=1, keepdim=True)
        return cls(m, *_weights_and_stds(g, k, std))

    @property
    def mean(self) -> Tensor:
        """(D,) float64 mixture mean ``sum_k w_k mu_k``."""
        return self.weights @ self.means

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, D) float64 exact samples."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        return self.means[k] + self.stds[k, None] * torch.randn(n, self.dim, generator=generator, dtype=_F64)

    def sample_noised(
        self, schedule: Schedule, t: float, n: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """(n, D) float64 exact samples of the marginal ``x_t = alpha(t) x0 + sigma(t) eps``."""
        a, s = (float(v) for v in schedule.alpha_sigma(torch.tensor(float(t), dtype=_F64)))
        x0 = self.sample(n, generator)
        return a * x0 + s * torch.randn(n, self.dim, generator=generator, dtype=_F64)

    def x0_fn(self, schedule: Schedule):
        """Exact ``E[x0 | x_t]`` for this schedule (computed in float64, returned in x's dtype)."""
        logw = torch.log(self.weights)
        c2 = self.stds[None] ** 2  # (1, K)
        dim = self.dim

        def x0_hat(x: Tensor, t: Tensor) -> Tensor:
            a, s = _ab(schedule, t)  # (B, 1)
            xd = x.to(_F64)
            v = a * a * c2 + s * s  # (B, K)
            am = a[:, :, None] * self.means[None]  # (B, K, D)
            d2 = ((xd[:, None, :] - am) ** 2).sum(-1)  # (B, K)
            # the log-det term matters once components have different stds (it cancels for equal ones)
            gamma = torch.softmax(logw[None] - d2 / (2.0 * v) - 0.5 * dim * torch.log(v), dim=1)
            shrink = (a * c2 / v)[:, :, None]  # (B, K, 1)
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
