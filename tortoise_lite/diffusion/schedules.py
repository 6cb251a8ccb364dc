"""Noise schedules in continuous time ``t in [0, 1]`` (t=0 clean data, t=1 noise).

Every schedule describes the marginal ``x_t = alpha(t) * x0 + sigma(t) * eps`` with ``eps ~ N(0, I)``.
All coefficients are computed in float64 and returned as float64 tensors shaped like ``t``: bf16/fp16
schedules round ``alpha_bar`` near t=0 and shift timesteps (diffusers PR #3005, #9405).

Derived quantities shared by all schedules:

* ``log_snr(t) = log(alpha^2 / sigma^2)`` (called lambda below) and its inverse ``t_from_log_snr``.
* ``ve_sigma(t) = sigma / alpha``: the equivalent variance-exploding noise level (Karras et al. 2022,
  section 4): ``x_t / alpha = x0 + ve_sigma * eps``. Karras grids and EDM preconditioning use it.
* ``d_alpha_sigma(t)``: time derivatives, used by native-time ODE integrators and the flow target.

Schedules:

* :class:`LinearBetaSchedule` -- DDPM's linear betas. Continuous VP-SDE form
  ``log alpha_bar(t) = -(b0 t + (b1 - b0) t^2 / 2)`` with ``b0 = T beta_start``, ``b1 = T beta_end``;
  with ``num_train_timesteps=T`` it becomes the *discrete view*: ``alpha_bar`` equals DDPM's
  ``cumprod(1 - betas)`` exactly at ``t_n = (n + 1) / T`` (n = 0..T-1, i.e. diffusers' timestep ``n``) and is
  interpolated linearly in ``log alpha_bar`` in between; ``t = 0`` is the clean point (alpha_bar = 1).
* :class:`CosineSchedule` -- improved-DDPM's ``alpha_bar = cos^2((t + s) / (1 + s) * pi / 2)`` normalised.
* :class:`SigmoidSchedule` -- Chen (2023) / Jabri et al. (2022) sigmoid ``alpha_bar``.
* :class:`EDMSchedule` -- Karras et al. (2022): ``alpha = 1``, ``sigma(t) = sigma_max * t^rho`` so that
  a uniform grid in ``t`` on ``[t_min, 1]`` is exactly the Karras rho-grid between sigma_min and sigma_max.
* :class:`FlowSchedule` -- rectified flow / OT-CFM as in Matcha-TTS (reversed to our t convention):
  ``x_t = (1 - t) x0 + (sigma_min + (1 - sigma_min) t) eps``.

VP schedules take ``zero_terminal_snr=True`` to rescale ``alpha`` linearly so that ``alpha(1) = 0``
(Lin et al. 2024, "Common diffusion noise schedules and sample steps are flawed").
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor

__all__ = [
    "Schedule",
    "VPSchedule",
    "LinearBetaSchedule",
    "CosineSchedule",
    "SigmoidSchedule",
    "EDMSchedule",
    "FlowSchedule",
    "broadcast_to",
]

_F64 = torch.float64


def _as_t(t: Tensor | float) -> Tensor:
    """Return ``t`` as a float64 tensor (keeps the device of a tensor input)."""
    if isinstance(t, Tensor):
        return t.to(_F64)
    return torch.tensor(float(t), dtype=_F64)


def broadcast_to(coef: Tensor, x: Tensor) -> Tensor:
    """Reshape a per-item coefficient ``(B,)`` (or scalar) to broadcast over ``x`` ``(B, ...)``, in x's dtype."""
    coef = coef.to(device=x.device, dtype=x.dtype)
    if coef.ndim == 0:
        return coef
    return coef.reshape(coef.shape[0], *([1] * (x.ndim - 1)))


class Schedule(ABC):
    """Base class: ``x_t = alpha(t) x0 + sigma(t) eps``.

    Attributes:
        is_flow: True for rectified-flow style schedules (straight paths, ``alpha(1) = 0``).
        t_min, t_max: the range of ``t`` used for training and as sampling-grid ends (the sampler's
            last step always goes on to t=0, the clean point).
    """

    is_flow: bool = False

    def __init__(self, t_min: float = 1e-3, t_max: float = 1.0) -> None:
        if not 0.0 <= t_min < t_max <= 1.0:
            raise ValueError(
                f"{type(self).__name__}: need 0 <= t_min < t_max <= 1, got t_min={t_min}, t_max={t_max}"
            )
        self.t_min = float(t_min)
        self.t_max = float(t_max)

    # --- required -------------------------------------------------------------------------------
    @abstractmethod
    def alpha(self, t: Tensor | float) -> Tensor:
        """Signal scale, float64 shaped like t."""

    @abstractmethod
    def sigma(self, t: Tensor | float) -> Tensor:
        """Noise scale, float64 shaped like t."""

    @abstractmethod
    def t_from_log_snr(self, lam: Tensor | float) -> Tensor:
        """Inverse of :meth:`log_snr`, float64, clamped to [0, 1]."""

    # --- derived --------------------------------------------------------------------------------
    def log_snr(self, t: Tensor | float) -> Tensor:
        """``lambda(t) = 2 (log alpha - log sigma)`` in float64 (``-inf`` where alpha = 0)."""
        t = _as_t(t)
        return 2.0 * (torch.log(self.alpha(t)) - torch.log(self.sigma(t)))

    def snr(self, t: Tensor | float) -> Tensor:
        """``alpha^2 / sigma^2`` in float64."""
        t = _as_t(t)
        return (self.alpha(t) / self.sigma(t)) ** 2

    def ve_sigma(self, t: Tensor | float) -> Tensor:
        """Equivalent variance-exploding noise level ``sigma / alpha`` (inf where alpha = 0)."""
        t = _as_t(t)
        return self.sigma(t) / self.alpha(t)

    def t_from_ve_sigma(self, s: Tensor | float) -> Tensor:
        """Inverse of :meth:`ve_sigma` (through log-SNR = -2 log s)."""
        s = _as_t(s)
        return self.t_from_log_snr(-2.0 * torch.log(s))

    def alpha_sigma(self, t: Tensor | float) -> tuple[Tensor, Tensor]:
        t = _as_t(t)
        return self.alpha(t), self.sigma(t)

    def d_alpha_sigma(self, t: Tensor | float) -> tuple[Tensor, Tensor]:
        """``(d alpha / dt, d sigma / dt)`` in float64, by autograd on the float64 formulas.

        Subclasses with simple closed forms override this.
        """
        t = _as_t(t).detach().clone().requires_grad_(True)
        with torch.enable_grad():
            a = self.alpha(t)
            s = self.sigma(t)
            # one output at a time: grad of a tuple of outputs w.r.t. one input would sum them
            da = torch.autograd.grad(a.sum(), t, retain_graph=True)[0]
            ds = torch.autograd.grad(s.sum(), t)[0]
        return da.detach(), ds.detach()

    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """Noise a clean batch: ``alpha(t) x0 + sigma(t) noise``.

        Args:
            x0: (B, ...) clean data. noise: same shape. t: (B,) times in [0, 1].
        Returns:
            x_t: (B, ...) in x0's dtype (coefficients computed in float64 first).
        """
        if noise.shape != x0.shape:
            raise ValueError(f"add_noise: noise shape {tuple(noise.shape)} != x0 shape {tuple(x0.shape)}")
        t = _as_t(t).to(x0.device)
        if t.ndim != 1 or t.shape[0] != x0.shape[0]:
            raise ValueError(f"add_noise: t must have shape ({x0.shape[0]},), got {tuple(t.shape)}")
        a, s = self.alpha_sigma(t)
        out = broadcast_to(a, x0.to(_F64)) * x0.to(_F64) + broadcast_to(s, x0.to(_F64)) * noise.to(_F64)
        return out.to(x0.dtype)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class VPSchedule(Schedule):
    """Variance-preserving schedule defined by ``log alpha_bar(t)``: ``alpha = sqrt(alpha_bar)``,
    ``sigma = sqrt(1 - alpha_bar)``. Subclasses implement ``_log_alpha_bar`` and its inverse.

    ``zero_terminal_snr`` rescales ``alpha`` to ``(alpha - alpha(1)) alpha(0) / (alpha(0) - alpha(1))``
    (Lin et al. 2024, Algorithm 1, in continuous time) so that ``alpha(1) = 0`` exactly.
    """

    def __init__(self, t_min: float = 1e-3, t_max: float = 1.0, zero_terminal_snr: bool = False) -> None:
        super().__init__(t_min=t_min, t_max=t_max)
        self.zero_terminal_snr = bool(zero_terminal_snr)

    @abstractmethod
    def _log_alpha_bar(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def _t_from_log_alpha_bar(self, lab: Tensor) -> Tensor: ...

    def _lab(self, t: Tensor) -> Tensor:
        # rounding can leave log alpha_bar a hair above 0 at t = 0: clamp so sigma stays real
        return self._log_alpha_bar(t).clamp_max(0.0)

    def _ztsnr_ends(self) -> tuple[float, float]:
        a0 = math.exp(0.5 * float(self._lab(torch.tensor(0.0, dtype=_F64))))
        a1 = math.exp(0.5 * float(self._lab(torch.tensor(1.0, dtype=_F64))))
        return a0, a1

    def alpha(self, t: Tensor | float) -> Tensor:
        t = _as_t(t)
        a = torch.exp(0.5 * self._lab(t))
        if self.zero_terminal_snr:
            a0, a1 = self._ztsnr_ends()
            a = (a - a1) * (a0 / (a0 - a1))
        return a

    def sigma(self, t: Tensor | float) -> Tensor:
        t = _as_t(t)
        if self.zero_terminal_snr:
            return torch.sqrt((1.0 - self.alpha(t) ** 2).clamp_min(0.0))
        # -expm1 keeps 1 - alpha_bar accurate near t = 0
        return torch.sqrt(-torch.expm1(self._lab(t)))

    def log_snr(self, t: Tensor | float) -> Tensor:
        t = _as_t(t)
        if self.zero_terminal_snr:
            a2 = self.alpha(t) ** 2
            return torch.log(a2) - torch.log1p(-a2)
        lab = self._lab(t)
        return lab - torch.log(-torch.expm1(lab))

    def t_from_log_snr(self, lam: Tensor | float) -> Tensor:
        lam = _as_t(lam)
        # alpha^2 = sigmoid(lambda) for a VP schedule; log sigmoid(x) = -softplus(-x)
        if self.zero_terminal_snr:
            a0, a1 = self._ztsnr_ends()
            a_r = torch.exp(-0.5 * torch.nn.functional.softplus(-lam))
            a = a_r * ((a0 - a1) / a0) + a1
            lab = 2.0 * torch.log(a)
        else:
            lab = -torch.nn.functional.softplus(-lam)
        return self._t_from_log_alpha_bar(lab).clamp(0.0, 1.0)


class LinearBetaSchedule(VPSchedule):
    """DDPM linear betas (``beta_start=1e-4``, ``beta_end=0.02`` over ``T=1000`` steps by default).

    Args:
        num_train_timesteps: None for the continuous VP-SDE form; an integer T for the exact discrete
            view (``alpha_bar(t_n) = prod_{i<=n} (1 - beta_i)`` at ``t_n = (n + 1) / T``), which matches
            diffusers' schedulers with ``beta_schedule="linear"`` when its timestep n maps to ``t_n``.
    """

    def __init__(
        self,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        num_train_timesteps: int | None = None,
        reference_timesteps: int = 1000,
        t_min: float | None = None,
        t_max: float = 1.0,
        zero_terminal_snr: bool = False,
    ) -> None:
        if not 0.0 < beta_start < beta_end < 1.0:
            raise ValueError(
                f"LinearBetaSchedule: need 0 < beta_start < beta_end < 1, got {beta_start}, {beta_end}"
            )
        self.beta_start = float(beta_start)
        self.beta_end = float(beta_end)
        self.num_train_timesteps = None if num_train_timesteps is None else int(num_train_timesteps)
        T = self.num_train_timesteps or int(reference_timesteps)
        self.reference_timesteps = T
        self.b0 = self.beta_start * T
        self.b1 = self.beta_end * T
        if t_min is None:
            t_min = 1.0 / T
        if self.num_train_timesteps is not None:
            betas = torch.linspace(self.beta_start, self.beta_end, T, dtype=_F64)
            lab = torch.cumsum(torch.log1p(-betas), 0)
            self._knots_t = torch.arange(0, T + 1, dtype=_F64) / T
            self._knots_lab = torch.cat([torch.zeros(1, dtype=_F64), lab])
        super().__init__(t_min=t_min, t_max=t_max, zero_terminal_snr=zero_terminal_snr)

    def alphas_cumprod(self) -> Tensor:
        """The discrete ``alpha_bar_n`` for n = 0..T-1 (float64, (T,)), as DDPM/diffusers define them."""
        T = self.reference_timesteps
        return self.alpha(torch.arange(1, T + 1, dtype=_F64) / T) ** 2

    def t_of_timestep(self, n: Tensor | int) -> Tensor:
        """Continuous t of discrete timestep n (0-based, diffusers' convention): ``(n + 1) / T``."""
        return (_as_t(n) + 1.0) / self.reference_timesteps

    @staticmethod
    def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
        """Piecewise-linear interpolation (xp increasing), extrapolating with the end segments."""
        xp = xp.to(x.device)
        fp = fp.to(x.device)
        idx = (torch.searchsorted(xp, x.detach().contiguous(), right=True) - 1).clamp(0, xp.numel() - 2)
        x_lo, x_hi = xp[idx], xp[idx + 1]
        w = (x - x_lo) / (x_hi - x_lo)
        return fp[idx] + w * (fp[idx + 1] - fp[idx])

    def _log_alpha_bar(self, t: Tensor) -> Tensor:
        if self.num_train_timesteps is not None:
            return self._interp(t, self._knots_t, self._knots_lab)
        return -(self.b0 * t + 0.5 * (self.b1 - self.b0) * t * t)

    def _t_from_log_alpha_bar(self, lab: Tensor) -> Tensor:
        if self.num_train_timesteps is not None:
            # -lab is increasing in t
            return self._interp(-lab, -self._knots_lab, self._knots_t)
        a = 0.5 * (self.b1 - self.b0)
        return (-self.b0 + torch.sqrt(self.b0**2 - 4.0 * a * lab)) / (2.0 * a)


class CosineSchedule(VPSchedule):
    """Improved-DDPM cosine schedule (Nichol & Dhariwal 2021), ``s`` the small offset.

    ``alpha(1)`` is ~1e-17 (log-SNR ~ -150), i.e. practically zero terminal SNR.
    """

    def __init__(
        self, s: float = 0.008, t_min: float = 1e-3, t_max: float = 1.0, zero_terminal_snr: bool = False
    ) -> None:
        self.s = float(s)
        self._log_f0 = 2.0 * math.log(math.cos(self.s / (1.0 + self.s) * math.pi / 2.0))
        super().__init__(t_min=t_min, t_max=t_max, zero_terminal_snr=zero_terminal_snr)

    def _log_alpha_bar(self, t: Tensor) -> Tensor:
        c = torch.cos((t + self.s) / (1.0 + self.s) * (math.pi / 2.0)).clamp_min(1e-300)
        return 2.0 * torch.log(c) - self._log_f0

    def _t_from_log_alpha_bar(self, lab: Tensor) -> Tensor:
        c = torch.exp(0.5 * (lab + self._log_f0)).clamp(-1.0, 1.0)
        return torch.acos(c) * (2.0 / math.pi) * (1.0 + self.s) - self.s


class SigmoidSchedule(VPSchedule):
    """Sigmoid schedule (Chen 2023, "On the importance of noise scheduling"):
    ``alpha_bar(t) = (v_end - sigmoid((t (end - start) + start) / tau)) / (v_end - v_start)``.

    ``alpha_bar(1) = 0`` exactly (log-SNR ``-inf`` at t=1).
    """

    def __init__(
        self,
        start: float = -3.0,
        end: float = 3.0,
        tau: float = 1.0,
        t_min: float = 1e-3,
        t_max: float = 1.0,
        zero_terminal_snr: bool = False,
    ) -> None:
        if not end > start or tau <= 0:
            raise ValueError(f"SigmoidSchedule: need end > start and tau > 0, got {start}, {end}, {tau}")
        self.start, self.end, self.tau = float(start), float(end), float(tau)
        self._v_start = 1.0 / (1.0 + math.exp(-self.start / self.tau))
        self._v_end = 1.0 / (1.0 + math.exp(-self.end / self.tau))
        super().__init__(t_min=t_min, t_max=t_max, zero_terminal_snr=zero_terminal_snr)

    def _log_alpha_bar(self, t: Tensor) -> Tensor:
        v = torch.sigmoid((t * (self.end - self.start) + self.start) / self.tau)
        ab = ((self._v_end - v) / (self._v_end - self._v_start)).clamp(0.0, 1.0)
        return torch.log(ab)

    def _ztsnr_ends(self) -> tuple[float, float]:
        return 1.0, 0.0  # already zero terminal SNR: the rescale is the identity

    def _t_from_log_alpha_bar(self, lab: Tensor) -> Tensor:
        v = self._v_end - torch.exp(lab) * (self._v_end - self._v_start)
        v = v.clamp(1e-300, 1.0 - 1e-16)
        return (self.tau * torch.logit(v) - self.start) / (self.end - self.start)


class EDMSchedule(Schedule):
    """EDM / Karras et al. (2022) variance-exploding schedule: ``alpha = 1``, ``sigma(t) = sigma_max t^rho``.

    ``t_min = (sigma_min / sigma_max)^(1/rho)``, so uniform t on ``[t_min, 1]`` is the Karras grid.
    """

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> None:
        if not 0.0 < sigma_min < sigma_max:
            raise ValueError(f"EDMSchedule: need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max, self.rho = float(sigma_min), float(sigma_max), float(rho)
        super().__init__(t_min=(self.sigma_min / self.sigma_max) ** (1.0 / self.rho), t_max=1.0)

    def alpha(self, t: Tensor | float) -> Tensor:
        return torch.ones_like(_as_t(t))

    def sigma(self, t: Tensor | float) -> Tensor:
        return self.sigma_max * _as_t(t).clamp_min(0.0) ** self.rho

    def d_alpha_sigma(self, t: Tensor | float) -> tuple[Tensor, Tensor]:
        t = _as_t(t)
        return torch.zeros_like(t), self.sigma_max * self.rho * t.clamp_min(0.0) ** (self.rho - 1.0)

    def log_snr(self, t: Tensor | float) -> Tensor:
        return -2.0 * torch.log(self.sigma(t))

    def t_from_log_snr(self, lam: Tensor | float) -> Tensor:
        sig = torch.exp(-0.5 * _as_t(lam))
        return ((sig / self.sigma_max) ** (1.0 / self.rho)).clamp(0.0, 1.0)


class FlowSchedule(Schedule):
    """Rectified flow / OT-CFM path (Lipman et al. 2023; Matcha-TTS's ``sigma_min``), t=0 data, t=1 noise:
    ``alpha = 1 - t``, ``sigma = sigma_min + (1 - sigma_min) t``; velocity ``dx/dt = (1 - sigma_min) eps - x0``.
    """

    is_flow = True

    def __init__(self, sigma_min: float = 1e-4, t_min: float = 0.0, t_max: float = 1.0) -> None:
        if not 0.0 <= sigma_min < 1.0:
            raise ValueError(f"FlowSchedule: need 0 <= sigma_min < 1, got {sigma_min}")
        self.sigma_min = float(sigma_min)
        super().__init__(t_min=t_min, t_max=t_max)

    def alpha(self, t: Tensor | float) -> Tensor:
        return 1.0 - _as_t(t)

    def sigma(self, t: Tensor | float) -> Tensor:
        return self.sigma_min + (1.0 - self.sigma_min) * _as_t(t)

    def d_alpha_sigma(self, t: Tensor | float) -> tuple[Tensor, Tensor]:
        t = _as_t(t)
        return torch.full_like(t, -1.0), torch.full_like(t, 1.0 - self.sigma_min)

    def t_from_log_snr(self, lam: Tensor | float) -> Tensor:
        # alpha / sigma = r = exp(lam / 2): 1 - t = r (sm + (1 - sm) t)  ->  t = (1 - r sm) / (1 + r (1 - sm))
        r = torch.exp(0.5 * _as_t(lam))
        t = (1.0 - r * self.sigma_min) / (1.0 + r * (1.0 - self.sigma_min))
        return torch.where(torch.isinf(r), torch.zeros_like(t), t).clamp(0.0, 1.0)
