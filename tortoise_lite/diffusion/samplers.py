"""Samplers: short functions over a denoiser ``x0_fn(x_t, t) -> x0_hat`` and a time grid.

Every sampler here sees only ``x0_fn`` (guidance, parameterization and network live inside it) and a
:class:`~tortoise_lite.diffusion.schedules.Schedule`, so each works with every schedule and objective.
Grids are float64 tensors ``ts`` (N + 1,), descending, normally ending at ``t = 0`` (the clean point).
Per grid point ``i``: ``a_i = alpha(t_i)``, ``s_i = sigma(t_i)``, half log-SNR ``l_i = log(a_i / s_i)``,
VE noise level ``S_i = s_i / a_i``, ``h = l_{i+1} - l_i``, ``D_i = x0_fn(x_i, t_i)``,
``eps_i = (x_i - a_i D_i) / s_i``.

The start (:meth:`Sampler.__call__`; the functions below take it as ``x``). The marginal at the grid's first
point is ``x_{t_0} = a_0 x0 + s_0 eps``; pure noise ``s_0 * noise`` drops ``a_0 x0``. That is the schedule's
own convention when the grid starts at the schedule's end ``t_max`` (DDPM's prior ``N(0, s_T^2)``, EDM's
``N(0, sigma_max^2)``), and exact where ``alpha(t_max) = 0``. But karras/logsnr grids on a schedule that
reaches alpha ~ 0 (cosine, sigmoid, flow, zero terminal SNR) start below it, at the VE cap ``S = 80``
(``a_0 = 0.0125``), and dropping ``a_0 x0`` there biases every sample by ``x0 / 80`` in VE units: on data far
from the origin the error then stops falling with steps. So, by default (``start="auto"``), when the
schedule's terminal point is pure noise (``S(t_max) > 8e4``, i.e. ``alpha(t_max) < 1.25e-5``) and the grid
starts below it, the sampler starts *at* ``t_max`` from pure noise and crosses to ``t_0`` with the exact
first-order (DDIM) step ``x_0 = s_0 noise + (a_0 - s_0 a_T / s_T) D``, ``D`` read at ``(s_0 noise, t_0)``
and reused as the first step's ``D_0`` (no extra model evaluation). Against the exact marginal (for data of
covariance C: ``x_0 = a_0 E[x0] + sqrt(s_0^2 + a_0^2 C) noise``) the error is ``a_0^2 C / (2 s_0)`` noise,
about 1e-4 C at ``S = 80``: second order in ``a_0``, where pure noise was first order (``a_0 E[x0]``).
``start="noise"`` keeps pure noise at ``t_0`` (k-diffusion / diffusers); ``"terminal"`` crosses from
``t_max`` whatever the schedule's terminal SNR. With a trained network ``D`` at ``t_0`` carries the model's
error at that noise level, and the auto start takes it at full weight where the pure-noise start's first step
took ``1 - e^{-h}`` of it (0.69 at 10 logsnr steps): on data with a mean far from 0 (or a conditional mean,
as in aligned text-to-mel) the auto start wins, on centred data it can lose a little where the network is
poor at S = 80 (eps-prediction, whose ``D`` error is 80x its eps error there; x0-prediction trained with
min-SNR weights, which give S = 80 almost no weight); ``start="noise"`` is the former behaviour.

Samplers (update from ``i`` to ``i + 1``; ``z`` fresh per-item Gaussian noise):

* ``euler``     Euler on the probability-flow ODE in Karras' coordinates ``y = x / a``, ``dy/dS = eps``:
                ``y' = y + (S' - S) eps`` (written ``D + S' eps`` so it also holds at ``a = 0``).
                Optional Karras churn (``s_churn``). With ``s_churn = 0`` this is the same map as DDIM(eta=0).
* ``heun``      Karras et al. (2022) Algorithm 1: Euler predictor, trapezoid corrector; 2 NFE per step.
* ``ddim``      ``x' = a' D + sqrt(s'^2 - c^2) eps + c z``, ``c = eta s' sqrt(1 - e^{-2h})`` (Song et al. 2021).
* ``ddpm``      ancestral DDPM posterior ``q(x' | x, D)``: mean ``(a s'^2 / (a' s^2)) x + a' (1 - e^{-2h}) D``,
                variance ``s'^2 (1 - e^{-2h})`` (equals DDIM with eta = 1).
* ``euler_ancestral``  k-diffusion: step down to ``S_down`` with Euler, add ``S_up`` noise (VE coordinates).
* ``dpmpp_2m``  DPM-Solver++(2M) (Lu et al. 2022): ``x' = (s'/s) x - a' expm1(-h) ((1 + 1/2r) D - (1/2r) D_prev)``,
                ``r = h_prev / h``; first step first order.
* ``dpmpp_2m_sde``  SDE-DPM-Solver++(2M), midpoint form (k-diffusion / diffusers), ``eta`` scales the noise.
* ``dpmpp_3m``  DPM-Solver++(3M), third-order multistep (diffusers' ``multistep_dpm_solver_third_order_update``).
* ``flow_euler`` / ``flow_midpoint``  Euler / explicit midpoint in native time on the velocity
                ``dx/dt = alpha'(t) D + sigma'(t) eps`` (rectified-flow samplers; any schedule).

The last step into the clean end of the grid (``t = 0``, or wherever ``s_{i+1} = 0``) is taken explicitly
as the first-order step ``x = a' D + s' eps`` (``= a' D`` when ``s' = 0``) by every solver except the flow
ones (their velocity is only evaluated at t > 0); a step *starting* at ``a = 0`` (log-SNR ``-inf``) is first
order too (higher-order terms vanish there: ``e^{-h} = 0``). Every call reports its number of model evaluations.
Given per-item generators (:func:`make_generators`), results do not depend on batch size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from .schedules import Schedule

__all__ = [
    "GRIDS",
    "SAMPLERS",
    "SampleResult",
    "Sampler",
    "make_generators",
    "randn",
    "randn_like",
    "time_grid",
    "terminal_is_pure_noise",
    "start_coefficient",
    "STARTS",
    "sample_euler",
    "sample_heun",
    "sample_ddim",
    "sample_ddpm",
    "sample_euler_ancestral",
    "sample_dpmpp_2m",
    "sample_dpmpp_2m_sde",
    "sample_dpmpp_3m",
    "sample_flow_euler",
    "sample_flow_midpoint",
]

X0Fn = Callable[[Tensor, Tensor], Tensor]
GeneratorLike = torch.Generator | Sequence[torch.Generator] | None
_F64 = torch.float64

#: default cap on the VE noise level for karras/logsnr grids when the schedule reaches alpha = 0
DEFAULT_SIGMA_MAX_CAP = 80.0
#: default floor of the VE noise level at the low end of karras/logsnr grids (EDM's sigma_min)
DEFAULT_SIGMA_MIN_FLOOR = 2e-3
#: a schedule whose VE noise level at t_max exceeds this (alpha(t_max) < 1.25e-5) ends in pure noise in practice
TERMINAL_PURE_NOISE_VE_SIGMA = DEFAULT_SIGMA_MAX_CAP * 1e3
#: how a sampler starts (see the module docstring)
STARTS = ("auto", "terminal", "noise")
#: heun takes a plain Euler step when S_i / S_{i+1} exceeds this: from (near) alpha = 0 the trapezoid over
#: a huge S interval is far less accurate than Euler, which is exact while D stays at the data mean
HEUN_EULER_RATIO = 1e3


# ---------------------------------------------------------------------------------------------------
# random numbers that do not depend on batch size
# ---------------------------------------------------------------------------------------------------
def make_generators(seed: int, batch_size: int, device: str | torch.device = "cpu", offset: int = 0):
    """One ``torch.Generator`` per item; item ``i`` is seeded from ``(seed, offset + i)`` through
    numpy's ``SeedSequence`` (decorrelated streams), so item ``k`` is the same whatever the batch it sits in
    (pass ``offset`` when generating a long list in chunks)."""
    gens = []
    for i in range(batch_size):
        state = np.random.SeedSequence(entropy=int(seed), spawn_key=(offset + i,)).generate_state(
            1, np.uint64
        )
        g = torch.Generator(device=device)
        g.manual_seed(int(state[0]) & ((1 << 63) - 1))
        gens.append(g)
    return gens


def randn(
    shape: Sequence[int],
    generator: GeneratorLike = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Standard normal noise (B, ...). A list of generators draws item ``b`` from ``generator[b]``.

    Per-item noise is padding-stable, so results depend on neither batch size nor batch composition:
    each call takes one fixed-size draw (a sub-seed) from the item's generator, whatever the shape, and
    draws the noise from that sub-seed in fixed-size blocks along the last axis (time). torch fills
    large tensors in a size-dependent order, so equal-sized blocks are what make an item's noise on
    its first T frames the same whether the batch is padded to T frames or to more.
    """
    shape = tuple(int(s) for s in shape)
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    if isinstance(generator, torch.Generator):
        return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)
    gens = list(generator)
    if len(gens) != shape[0]:
        raise ValueError(f"randn: got {len(gens)} generators for a batch of {shape[0]}; pass one per item")
    return torch.stack([_padding_stable_randn(shape[1:], g, dtype) for g in gens]).to(device)


NOISE_BLOCK = 16  # frames per block of padding-stable noise


def _padding_stable_randn(item_shape: tuple[int, ...], g: torch.Generator, dtype: torch.dtype) -> Tensor:
    sub = torch.Generator(device=g.device)
    sub.manual_seed(int(torch.randint(0, 2**62, (1,), generator=g, device=g.device)))
    if not item_shape:
        return torch.randn((), generator=sub, device=g.device, dtype=dtype)
    *lead, t = item_shape
    n_blocks = -(-t // NOISE_BLOCK)
    blocks = [
        torch.randn((*lead, NOISE_BLOCK), generator=sub, device=g.device, dtype=dtype)
        for _ in range(n_blocks)
    ]
    return (
        torch.cat(blocks, dim=-1)[..., :t]
        if blocks
        else torch.empty(item_shape, device=g.device, dtype=dtype)
    )


def randn_like(x: Tensor, generator: GeneratorLike = None) -> Tensor:
    return randn(x.shape, generator, device=x.device, dtype=x.dtype)


# ---------------------------------------------------------------------------------------------------
# time grids
# ---------------------------------------------------------------------------------------------------
GRIDS = ("uniform", "trailing", "karras", "logsnr")


def terminal_is_pure_noise(schedule: Schedule) -> bool:
    """Does the schedule end (at ``t_max``) in pure noise, ``alpha(t_max) / sigma(t_max) < 1.25e-5``?
    True for cosine (alpha(1) ~ 6e-17), sigmoid, flow and zero-terminal-SNR schedules; False for linear betas
    (alpha(1) = 0.0066) and EDM (sigma_max = 80)."""
    return not float(schedule.ve_sigma(schedule.t_max)) <= TERMINAL_PURE_NOISE_VE_SIGMA  # inf/nan-safe


def start_coefficient(schedule: Schedule, t0: float, start: str = "auto") -> float:
    """``c`` of the start ``x_0 = s_0 noise + c D(s_0 noise, t_0)`` (0: pure noise at ``t_0``).

    ``c = a_0 - s_0 a_T / s_T`` is the first-order (DDIM) step from pure noise ``s_T noise`` at ``t_max`` to
    ``t_0``; it is used when ``t_0 < t_max`` and either ``start="terminal"`` or ``start="auto"`` and the
    schedule ends in pure noise (:func:`terminal_is_pure_noise`).
    """
    if start not in STARTS:
        raise ValueError(f"Sampler.start must be one of {STARTS}, got {start!r}")
    t_max = schedule.t_max
    if start == "noise" or not t0 < t_max or (start == "auto" and not terminal_is_pure_noise(schedule)):
        return 0.0
    a0, s0 = (float(v) for v in schedule.alpha_sigma(t0))
    a_t, s_t = (float(v) for v in schedule.alpha_sigma(t_max))
    return a0 - s0 * a_t / s_t


def _sigma_range(schedule: Schedule, sigma_min: float | None, sigma_max: float | None) -> tuple[float, float]:
    s_lo = float(schedule.ve_sigma(schedule.t_min)) if sigma_min is None else float(sigma_min)
    s_hi = float(schedule.ve_sigma(schedule.t_max)) if sigma_max is None else float(sigma_max)
    if sigma_max is None and terminal_is_pure_noise(schedule):
        # alpha(t_max) ~ 0: space the grid from the EDM sigma_max instead of infinity (a log-SNR grid from
        # S = 1e16 would spend most steps where D is the data mean); the sampler starts at t_max all the same
        s_hi = DEFAULT_SIGMA_MAX_CAP
    if sigma_min is None:
        s_lo = max(s_lo, DEFAULT_SIGMA_MIN_FLOOR)
    if not 0.0 < s_lo < s_hi < math.inf:
        raise ValueError(f"time grid: need 0 < sigma_min < sigma_max < inf, got {s_lo}, {s_hi}")
    return s_lo, s_hi


def time_grid(
    schedule: Schedule,
    steps: int,
    kind: str = "karras",
    rho: float = 7.0,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
) -> Tensor:
    """Descending float64 grid ``(steps + 1,)`` ending at ``t = 0``.

    kinds:
        ``uniform``: ``linspace(t_max, t_min, steps)`` then 0 (diffusers' "linspace").
        ``trailing``: ``linspace(t_max, 0, steps + 1)`` (diffusers' "trailing"; Lin et al. 2024).
        ``karras``: uniform in ``S^(1/rho)`` between ``sigma_max`` and ``sigma_min`` (VE noise levels
            ``S = sigma/alpha``; defaults from the schedule's ``t_max``/``t_min``, capped at 80), then 0.
        ``logsnr``: uniform in log-SNR between the same ends, then 0 (DPM-Solver's "logSNR" grid).
    """
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"time grid: steps must be >= 1, got {steps}")
    zero = torch.zeros(1, dtype=_F64)
    if kind == "uniform":
        if schedule.t_min <= 0.0:  # the grid would end on 0 twice: the clean point is t_min itself
            return torch.linspace(schedule.t_max, 0.0, steps + 1, dtype=_F64)
        return torch.cat([torch.linspace(schedule.t_max, schedule.t_min, steps, dtype=_F64), zero])
    if kind == "trailing":
        return torch.linspace(schedule.t_max, 0.0, steps + 1, dtype=_F64)
    if kind in ("karras", "logsnr"):
        s_lo, s_hi = _sigma_range(schedule, sigma_min, sigma_max)
        if kind == "karras":
            ramp = torch.linspace(0.0, 1.0, steps, dtype=_F64)
            hi, lo = s_hi ** (1.0 / rho), s_lo ** (1.0 / rho)
            sig = (hi + ramp * (lo - hi)) ** rho
            ts = schedule.t_from_ve_sigma(sig)
        else:
            lam = torch.linspace(-2.0 * math.log(s_hi), -2.0 * math.log(s_lo), steps, dtype=_F64)
            ts = schedule.t_from_log_snr(lam)
        return torch.cat([ts, zero])
    raise ValueError(f"time grid: kind must be one of {GRIDS}, got {kind!r}")


# ---------------------------------------------------------------------------------------------------
# helpers shared by the samplers
# ---------------------------------------------------------------------------------------------------
class _Table:
    """Python-float coefficients of a grid (exact float64, and inf/0 behave as the formulas want)."""

    def __init__(self, schedule: Schedule, ts: Tensor) -> None:
        ts = ts.to(_F64).cpu()
        a, s = schedule.alpha_sigma(ts)
        self.t = [float(v) for v in ts]
        self.a = [float(v) for v in a]
        self.s = [float(v) for v in s]
        self.lam = [_log(ai) - _log(si) for ai, si in zip(self.a, self.s)]  # half log-SNR
        self.n = len(self.t) - 1

    def final(self, i: int) -> bool:
        """Is step i -> i+1 the explicit last step (into sigma = 0, or into the grid's clean end t = 0)?"""
        return self.s[i + 1] == 0.0 or (i + 1 == self.n and self.t[i + 1] == 0.0)

    def h(self, i: int) -> float:
        return self.lam[i + 1] - self.lam[i]

    def S(self, i: int) -> float:
        return math.inf if self.a[i] == 0.0 else self.s[i] / self.a[i]


def _log(v: float) -> float:
    return math.log(v) if v > 0.0 else -math.inf


def _call(x0_fn: X0Fn, x: Tensor, t: float) -> Tensor:
    return x0_fn(x, torch.full((x.shape[0],), t, dtype=_F64, device=x.device))


def _eps(x: Tensor, d: Tensor, a: float, s: float) -> Tensor:
    return (x - a * d) / s


Callback = Callable[[int, Tensor, Tensor], None] | None  # (step index, x after the step, D used)


def _cb(callback: Callback, i: int, x: Tensor, d: Tensor) -> None:
    if callback is not None:
        callback(i, x, d)


# ---------------------------------------------------------------------------------------------------
# the samplers
# ---------------------------------------------------------------------------------------------------
@torch.no_grad()
def sample_euler(x0_fn, x, ts, schedule, generator=None, callback=None, s_churn=0.0, s_noise=1.0, **_):
    """Euler in VE coordinates, optional Karras churn ``gamma = min(s_churn / N, sqrt 2 - 1)``."""
    tb = _Table(schedule, ts)
    gamma = min(s_churn / tb.n, math.sqrt(2.0) - 1.0) if s_churn > 0 else 0.0
    for i in range(tb.n):
        t, a, s = tb.t[i], tb.a[i], tb.s[i]
        if gamma > 0 and a > 0 and tb.s[i + 1] > 0:
            # raise the noise level S -> S_hat = S (1 + gamma) with fresh noise, then take the step from there
            S_hat = tb.S(i) * (1.0 + gamma)
            t = float(schedule.t_from_ve_sigma(S_hat))
            a_hat, s_hat = (float(v) for v in schedule.alpha_sigma(t))
            y = x / a + math.sqrt(S_hat**2 - tb.S(i) ** 2) * s_noise * randn_like(x, generator)
            x, a, s = a_hat * y, a_hat, s_hat
        d = _call(x0_fn, x, t)
        x = tb.a[i + 1] * d + tb.s[i + 1] * _eps(x, d, a, s)  # = a' (D + S' eps), finite at a' = 0 too
        _cb(callback, i, x, d)
    return x


@torch.no_grad()
def sample_heun(x0_fn, x, ts, schedule, generator=None, callback=None, **_):
    """Heun (trapezoid) in VE coordinates; Euler on the last step (to sigma=0) and from alpha ~ 0
    (``S_i > HEUN_EULER_RATIO * S_{i+1}``)."""
    tb = _Table(schedule, ts)
    for i in range(tb.n):
        a, s, a1 = tb.a[i], tb.s[i], tb.a[i + 1]
        d = _call(x0_fn, x, tb.t[i])
        eps = _eps(x, d, a, s)
        if tb.final(i) or a == 0.0 or tb.S(i) > HEUN_EULER_RATIO * tb.S(i + 1):
            x = a1 * d + tb.s[i + 1] * eps
        else:
            S, S1 = tb.S(i), tb.S(i + 1)
            y_pred = d + S1 * eps  # Euler predictor in y = x / a
            d2 = _call(x0_fn, a1 * y_pred, tb.t[i + 1])
            eps2 = (y_pred - d2) / S1
            x = a1 * (x / a + (S1 - S) * 0.5 * (eps + eps2))
        _cb(callback, i, x, d)
    return x


@torch.no_grad()
def sample_ddim(x0_fn, x, ts, schedule, generator=None, callback=None, eta=0.0, s_noise=1.0, **_):
    """DDIM with stochasticity ``eta`` (0: deterministic; 1: DDPM posterior variance)."""
    tb = _Table(schedule, ts)
    for i in range(tb.n):
        a, s, a1, s1 = tb.a[i], tb.s[i], tb.a[i + 1], tb.s[i + 1]
        d = _call(x0_fn, x, tb.t[i])
        if tb.final(i):
            x = a1 * d + s1 * _eps(x, d, tb.a[i], s)
        else:
            eps = _eps(x, d, a, s)
            c = eta * s1 * math.sqrt(-math.expm1(-2.0 * tb.h(i)))
            x = a1 * d + math.sqrt(max(s1 * s1 - c * c, 0.0)) * eps
            if c > 0:
                x = x + c * s_noise * randn_like(x, generator)
        _cb(callback, i, x, d)
    return x


@torch.no_grad()
def sample_ddpm(x0_fn, x, ts, schedule, generator=None, callback=None, s_noise=1.0, **_):
    """Ancestral sampling from the DDPM posterior ``q(x_{i+1} | x_i, x0 = D_i)``."""
    tb = _Table(schedule, ts)
    for i in range(tb.n):
        a, s, a1, s1 = tb.a[i], tb.s[i], tb.a[i + 1], tb.s[i + 1]
        d = _call(x0_fn, x, tb.t[i])
        if tb.final(i):
            x = a1 * d + s1 * _eps(x, d, tb.a[i], s)
        else:
            e2h = math.exp(-2.0 * tb.h(i))  # (a s' / (a' s))^2
            mean = (a * s1 * s1 / (a1 * s * s)) * x + a1 * (1.0 - e2h) * d
            x = mean + s1 * math.sqrt(1.0 - e2h) * s_noise * randn_like(x, generator)
        _cb(callback, i, x, d)
    return x


@torch.no_grad()
def sample_euler_ancestral(x0_fn, x, ts, schedule, generator=None, callback=None, eta=1.0, s_noise=1.0, **_):
    """k-diffusion's Euler ancestral in VE coordinates."""
    tb = _Table(schedule, ts)
    for i in range(tb.n):
        a, s, a1 = tb.a[i], tb.s[i], tb.a[i + 1]
        d = _call(x0_fn, x, tb.t[i])
        if tb.final(i):
            x = a1 * d + tb.s[i + 1] * _eps(x, d, a, s)
        else:
            S, S1 = tb.S(i), tb.S(i + 1)
            ratio = 0.0 if math.isinf(S) else S1 / S
            s_up = min(S1, eta * S1 * math.sqrt(max(1.0 - ratio * ratio, 0.0)))
            s_down = math.sqrt(S1 * S1 - s_up * s_up)
            y = d + s_down * _eps(x, d, a, s)
            if s_up > 0:
                y = y + s_up * s_noise * randn_like(x, generator)
            x = a1 * y
        _cb(callback, i, x, d)
    return x


@torch.no_grad()
def sample_dpmpp_2m(x0_fn, x, ts, schedule, generator=None, callback=None, **_):
    """DPM-Solver++(2M), data prediction, multistep."""
    tb = _Table(schedule, ts)
    d_prev, h_prev = None, None
    for i in range(tb.n):
        d = _call(x0_fn, x, tb.t[i])
        s, a1, s1 = tb.s[i], tb.a[i + 1], tb.s[i + 1]
        if tb.final(i):
            x = a1 * d + s1 * _eps(x, d, tb.a[i], s)
        else:
            h = tb.h(i)
            if d_prev is None:
                dd = d
            else:
                r = h_prev / h  # inf after a step from alpha = 0: the correction vanishes
                dd = (1.0 + 1.0 / (2.0 * r)) * d - (1.0 / (2.0 * r)) * d_prev
            x = (s1 / s) * x - a1 * math.expm1(-h) * dd
            h_prev = h
        d_prev = d
        _cb(callback, i, x, d)
    return x


@torch.no_grad()
def sample_dpmpp_2m_sde(x0_fn, x, ts, schedule, generator=None, callback=None, eta=1.0, s_noise=1.0, **_):
    """SDE-DPM-Solver++(2M), midpoint variant."""
    tb = _Table(schedule, ts)
    d_prev, h_prev = None, None
    for i in range(tb.n):
        d = _call(x0_fn, x, tb.t[i])
        s, a1, s1 = tb.s[i], tb.a[i + 1], tb.s[i + 1]
        if tb.final(i):
            x = a1 * d + s1 * _eps(x, d, tb.a[i], s)
        else:
            h = tb.h(i)
            eh = eta * h if eta > 0 else 0.0
            coef = -math.expm1(-h - eh)
            x = (s1 / s) * math.exp(-eh) * x + a1 * coef * d
            if d_prev is not None:
                x = x + a1 * 0.5 * coef * (h / h_prev) * (d - d_prev)
            if eh > 0:
                x = x + s1 * math.sqrt(-math.expm1(-2.0 * eh)) * s_noise * randn_like(x, generator)
            h_prev = h
        d_prev = d
        _cb(callback, i, x, d)
    return x


@torch.no_grad()
def sample_dpmpp_3m(x0_fn, x, ts, schedule, generator=None, callback=None, lower_order_final=True, **_):
    """DPM-Solver++(3M): orders 1, 2, 3, 3, ...; with fewer than 15 steps the second-to-last step is
    second order (``lower_order_final``, as diffusers), the last step to sigma=0 first order."""
    tb = _Table(schedule, ts)
    hist: list[Tensor] = []  # previous D's, newest first
    hs: list[float] = []  # previous h's, newest first
    for i in range(tb.n):
        d = _call(x0_fn, x, tb.t[i])
        s, a1, s1 = tb.s[i], tb.a[i + 1], tb.s[i + 1]
        if tb.final(i):
            x = a1 * d + s1 * _eps(x, d, tb.a[i], s)
        else:
            h = tb.h(i)
            order = min(3, len(hist) + 1)
            if lower_order_final and tb.n < 15 and i == tb.n - 2:
                order = min(order, 2)
            em = math.expm1(-h)  # e^{-h} - 1
            x = (s1 / s) * x - a1 * em * d
            if order == 2:
                r0 = hs[0] / h
                x = x - a1 * 0.5 * em * (d - hist[0]) / r0
            elif order == 3:
                r0, r1 = hs[0] / h, hs[1] / h
                d1_0 = (d - hist[0]) / r0
                d1_1 = (hist[0] - hist[1]) / r1
                d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                x = x + a1 * (em / h + 1.0) * d1 - a1 * ((em + h) / (h * h) - 0.5) * d2
            hs.insert(0, h)
        hist.insert(0, d)
        del hist[2:], hs[2:]
        _cb(callback, i, x, d)
    return x


def _velocity(schedule: Schedule, x: Tensor, d: Tensor, t: float) -> Tensor:
    a, s = (float(v) for v in schedule.alpha_sigma(t))
    da, ds = (float(v) for v in schedule.d_alpha_sigma(torch.tensor(t, dtype=_F64)))
    return da * d + ds * _eps(x, d, a, s)


@torch.no_grad()
def sample_flow_euler(x0_fn, x, ts, schedule, generator=None, callback=None, **_):
    """Euler in native time: ``x' = x + (t' - t) v(x, t)``, ``v = alpha' D + sigma' eps``."""
    tb = _Table(schedule, ts)
    for i in range(tb.n):
        d = _call(x0_fn, x, tb.t[i])
        x = x + (tb.t[i + 1] - tb.t[i]) * _velocity(schedule, x, d, tb.t[i])
        _cb(callback, i, x, d)
    return x


@torch.no_grad()
def sample_flow_midpoint(x0_fn, x, ts, schedule, generator=None, callback=None, **_):
    """Explicit midpoint in native time (2 NFE per step)."""
    tb = _Table(schedule, ts)
    for i in range(tb.n):
        t, t1 = tb.t[i], tb.t[i + 1]
        tm = 0.5 * (t + t1)
        d = _call(x0_fn, x, t)
        x_mid = x + (tm - t) * _velocity(schedule, x, d, t)
        d_mid = _call(x0_fn, x_mid, tm)
        x = x + (t1 - t) * _velocity(schedule, x_mid, d_mid, tm)
        _cb(callback, i, x, d)
    return x


SAMPLERS: dict[str, Callable[..., Tensor]] = {
    "ddpm": sample_ddpm,
    "ddim": sample_ddim,
    "euler": sample_euler,
    "euler_ancestral": sample_euler_ancestral,
    "heun": sample_heun,
    "dpmpp_2m": sample_dpmpp_2m,
    "dpmpp_2m_sde": sample_dpmpp_2m_sde,
    "dpmpp_3m": sample_dpmpp_3m,
    "flow_euler": sample_flow_euler,
    "flow_midpoint": sample_flow_midpoint,
}
#: samplers that use noise after the start (need generators for reproducibility)
STOCHASTIC = frozenset({"ddpm", "euler_ancestral", "dpmpp_2m_sde"})
#: default eta per sampler (None = sampler has no eta)
_DEFAULT_ETA = {"ddim": 0.0, "euler_ancestral": 1.0, "dpmpp_2m_sde": 1.0}


# ---------------------------------------------------------------------------------------------------
# the configurable front end
# ---------------------------------------------------------------------------------------------------
@dataclass
class SampleResult:
    """x: (B, ...) final sample; nfe: model evaluations; trajectory: [x_0 (start), x_1, ..., x_N] or None;
    ts: the float64 grid (N + 1,) used."""

    x: Tensor
    nfe: int
    trajectory: list[Tensor] | None = None
    ts: Tensor | None = None


@dataclass
class Sampler:
    """A configured sampler (what ``conf/sampler/*.yaml`` builds).

    Args:
        name: one of :data:`SAMPLERS`.
        steps: grid intervals N (first-order samplers use N model evaluations; heun 2N - 1,
            flow_midpoint 2N).
        grid: "uniform" | "trailing" | "karras" | "logsnr" (see :func:`time_grid`).
        eta: noise scale of ddim / euler_ancestral / dpmpp_2m_sde (None: 0 for ddim, else 1).
        rho, sigma_min, sigma_max: karras/logsnr grid parameters (VE noise levels sigma/alpha).
        s_noise: scale on injected noise; s_churn: Karras churn for euler.
        lower_order_final: dpmpp_3m drops to second order on the second-to-last step when N < 15.
        record_trajectory: keep x after every step in the result.
        start: "auto" | "terminal" | "noise": how the start at the grid's first point is drawn (module
            docstring): "auto" starts at the schedule's end t_max when that is pure noise and crosses to the
            grid's first point at no extra NFE (one more with euler's churn, which moves the first evaluation
            to a higher noise level); "noise" is pure noise at the first point (k-diffusion's start).
    """

    name: str = "dpmpp_2m"
    steps: int = 20
    grid: str = "logsnr"
    eta: float | None = None
    rho: float = 7.0
    sigma_min: float | None = None
    sigma_max: float | None = None
    s_noise: float = 1.0
    s_churn: float = 0.0
    lower_order_final: bool = True
    record_trajectory: bool = False
    start: str = "auto"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in SAMPLERS:
            raise ValueError(f"Sampler.name must be one of {sorted(SAMPLERS)}, got {self.name!r}")
        if self.grid not in GRIDS:
            raise ValueError(f"Sampler.grid must be one of {GRIDS}, got {self.grid!r}")
        if int(self.steps) < 1:
            raise ValueError(f"Sampler.steps must be >= 1, got {self.steps}")
        if self.start not in STARTS:
            raise ValueError(f"Sampler.start must be one of {STARTS}, got {self.start!r}")

    @property
    def stochastic(self) -> bool:
        return self.name in STOCHASTIC or (self.name == "ddim" and (self.eta or 0.0) > 0) or self.s_churn > 0

    def time_grid(self, schedule: Schedule, steps: int | None = None) -> Tensor:
        return time_grid(
            schedule, int(steps or self.steps), self.grid, self.rho, self.sigma_min, self.sigma_max
        )

    def __call__(
        self,
        x0_fn: X0Fn,
        schedule: Schedule,
        noise_or_shape: Tensor | Sequence[int],
        generator: GeneratorLike = None,
        steps: int | None = None,
        ts: Tensor | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        callback: Callback = None,
        offset: Tensor | None = None,
    ) -> SampleResult:
        """Sample.

        Args:
            x0_fn: ``(x_t (B, ...), t float64 (B,)) -> x0_hat (B, ...)``.
            schedule: the schedule the model was trained with.
            noise_or_shape: standard-normal start noise (B, ...) or a shape to draw it from ``generator``.
            generator: None, one ``torch.Generator``, or one per item (batch-size independent results).
            steps: overrides ``self.steps``; ts: an explicit float64 grid (overrides grid and steps).
            offset: a mean the diffused data was taken relative to (``x0 = offset + r``, the model
                diffuses ``r``; Grad-TTS / PriorGrad priors). ``x0_fn`` works in ``r`` space; the
                result, trajectory and the callback's ``d`` are reported with ``offset`` added.
        Returns:
            :class:`SampleResult` with ``x`` (B, ...) in the noise dtype and the NFE actually used.
        """
        if isinstance(noise_or_shape, Tensor):
            noise = noise_or_shape
        else:
            noise = randn(noise_or_shape, generator, device=device or "cpu", dtype=dtype)
        if ts is None:
            ts = self.time_grid(schedule, steps)
        ts = torch.as_tensor(ts, dtype=_F64).cpu()
        if ts.ndim != 1 or ts.numel() < 2 or not bool((ts[1:] < ts[:-1]).all()):
            raise ValueError(
                f"Sampler: the time grid must be 1-D, strictly decreasing, >= 2 points; got {ts}"
            )
        nfe = 0
        t0 = float(ts[0])
        first: Tensor | None = None  # D read at the start, handed to the first step instead of a new call

        def counted(x: Tensor, t: Tensor) -> Tensor:
            nonlocal nfe, first
            if first is not None:
                d, first = first, None
                if bool((t == t0).all()):  # the first step evaluates at t_0 (not so after euler's churn)
                    return d
            nfe += 1
            return x0_fn(x, t)

        x = float(schedule.sigma(ts[0])) * noise
        c = start_coefficient(schedule, t0, self.start)
        if c != 0.0:
            # start at t_max (pure noise) and take the DDIM step to t_0 with D read at (s_0 noise, t_0); that D
            # then serves the first step: moving x by c D changes D by O(a_0^2 C / s_0^2), below the step's error
            first = counted(x, torch.full((x.shape[0],), t0, dtype=_F64, device=x.device))
            x = x + c * first
        traj = [x] if self.record_trajectory else None

        def shifted(v: Tensor) -> Tensor:
            return v if offset is None else v + offset

        def cb(i: int, xi: Tensor, d: Tensor) -> None:
            if traj is not None:
                traj.append(shifted(xi))
            if callback is not None:
                callback(i, shifted(xi), shifted(d))

        eta = self.eta if self.eta is not None else _DEFAULT_ETA.get(self.name, 0.0)
        fn = SAMPLERS[self.name]
        x = fn(
            counted,
            x,
            ts,
            schedule,
            generator=generator,
            callback=cb,
            eta=eta,
            s_noise=self.s_noise,
            s_churn=self.s_churn,
            lower_order_final=self.lower_order_final,
            **self.extra,
        )
        if traj is not None:
            traj[0] = shifted(traj[0])
        return SampleResult(x=shifted(x), nfe=nfe, trajectory=traj, ts=ts)
