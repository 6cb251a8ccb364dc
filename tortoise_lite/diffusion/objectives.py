"""Training objectives: what the network predicts, how the loss is weighted over noise levels, and
how noise levels are drawn.

Notation (per item, float64 coefficients): ``x_t = alpha x0 + sigma eps``, ``SNR = alpha^2 / sigma^2``,
``alpha', sigma'`` the time derivatives, ``sd`` the data standard deviation (``sigma_data``).

Parameterizations (``prediction``) and their exact conversions to the clean estimate ``x0_hat``:

============  ==============================================  =========================================================
prediction    target                                          x0 from raw output ``r``
============  ==============================================  =========================================================
``eps``       ``eps``                                         ``(x_t - sigma r) / alpha``   (undefined where alpha = 0)
``x0``        ``x0``                                          ``r``
``v``         ``alpha eps - sigma x0`` (Salimans & Ho)        ``(alpha x_t - sigma r) / (alpha^2 + sigma^2)``
``edm``       ``(x0 - c_skip x_t) / c_out`` (Karras et al.)   ``c_skip x_t + c_out r``
``flow``      ``alpha' x0 + sigma' eps`` (= dx_t/dt)          ``(sigma r - sigma' x_t) / (alpha' sigma - sigma' alpha)``
============  ==============================================  =========================================================

EDM preconditioning written directly in ``x_t`` (so it also holds where alpha = 0):
``c_in = 1 / sqrt(sigma^2 + alpha^2 sd^2)`` (the network sees ``c_in x_t``),
``c_skip = sd^2 alpha / (sigma^2 + alpha^2 sd^2)``, ``c_out = sigma sd / sqrt(sigma^2 + alpha^2 sd^2)``.
This is Karras' ``c_skip(s) y + c_out(s) F(c_in(s) y)`` with ``y = x_t / alpha`` and ``s = sigma / alpha``.

Loss weightings are defined as a weight ``w_x0(t)`` on the *x0-space* squared error, which makes them
comparable across parameterizations (Hang et al. 2023; Kingma & Gao 2023). The raw-output error relates to
the x0 error by ``|r - target|^2 = k(t)^2 |x0_hat - x0|^2`` (``k`` = :meth:`Objective.x0_scale`), so the
per-item loss is ``w_x0 / k^2 * mse(r, target)``. ``uniform`` is the plain MSE on the raw output (the
"simple" loss of each parameterization). With ``sd = 1`` the ``edm`` weighting equals the v-loss.

=============  ==========================================  ==============================================
weighting      w_x0(t)                                     reference
=============  ==========================================  ==============================================
uniform        ``k^2`` (raw MSE, weight 1)                 Ho et al. 2020 ("simple" loss)
min_snr        ``min(SNR, gamma)``                         Hang et al. 2023 (gamma = 5)
soft_min_snr   ``SNR gamma / (SNR + gamma)``               Crowson et al. 2024 (HDiT)
p2             ``SNR / (k + SNR)^gamma``                   Choi et al. 2022 (k = 1, gamma = 1)
edm            ``SNR + 1 / sd^2``                          Karras et al. 2022 (``lambda(sigma)``)
=============  ==========================================  ==============================================

Noise-level samplers return ``t`` (B,) and importance weights (B,) that keep the loss an unbiased estimate
of the loss under uniform ``t``: ``uniform``, ``logit_normal`` (Esser et al. 2024), ``lognormal`` (EDM's
``ln(sigma/alpha) ~ N(P_mean, P_std^2)``) and :class:`LossAwareTimeSampler`, improved-DDPM's
second-moment resampler (``p(bin) ~ sqrt(E[L^2])`` with ``1/p`` weights), whose statistics are summed with
``all_reduce`` when ``torch.distributed`` is initialized, so every rank samples from the same ``p``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.distributed as dist
from torch import Tensor

from .schedules import Schedule, broadcast_to

__all__ = [
    "PREDICTIONS",
    "Objective",
    "Weighting",
    "UniformWeighting",
    "MinSNRWeighting",
    "SoftMinSNRWeighting",
    "P2Weighting",
    "EDMWeighting",
    "TimeSampler",
    "UniformTimeSampler",
    "LogitNormalTimeSampler",
    "LogNormalSigmaTimeSampler",
    "LossAwareTimeSampler",
]

PREDICTIONS = ("eps", "x0", "v", "edm", "flow")
Prediction = Literal["eps", "x0", "v", "edm", "flow"]
_F64 = torch.float64


# ---------------------------------------------------------------------------------------------------
# loss weightings: w_x0(t) on the x0-space squared error
# ---------------------------------------------------------------------------------------------------
class Weighting:
    """Weight on the x0-space squared error as a function of SNR (float64 (B,) -> float64 (B,)).

    ``None`` from :meth:`x0_weight` means "weight 1 on the raw-output MSE" (the uniform/simple loss).
    """

    name = "base"

    def x0_weight(self, snr: Tensor, sigma_data: float) -> Tensor | None:
        raise NotImplementedError


class UniformWeighting(Weighting):
    name = "uniform"

    def x0_weight(self, snr: Tensor, sigma_data: float) -> Tensor | None:
        return None


class MinSNRWeighting(Weighting):
    name = "min_snr"

    def __init__(self, gamma: float = 5.0) -> None:
        self.gamma = float(gamma)

    def x0_weight(self, snr: Tensor, sigma_data: float) -> Tensor:
        return snr.clamp_max(self.gamma)


class SoftMinSNRWeighting(Weighting):
    name = "soft_min_snr"

    def __init__(self, gamma: float = 5.0) -> None:
        self.gamma = float(gamma)

    def x0_weight(self, snr: Tensor, sigma_data: float) -> Tensor:
        # harmonic-style soft minimum of SNR and gamma; finite for snr = inf
        return self.gamma / (1.0 + self.gamma / snr)


class P2Weighting(Weighting):
    name = "p2"

    def __init__(self, k: float = 1.0, gamma: float = 1.0) -> None:
        self.k, self.gamma = float(k), float(gamma)

    def x0_weight(self, snr: Tensor, sigma_data: float) -> Tensor:
        return snr / (self.k + snr) ** self.gamma


class EDMWeighting(Weighting):
    name = "edm"

    def x0_weight(self, snr: Tensor, sigma_data: float) -> Tensor:
        return snr + 1.0 / sigma_data**2


# ---------------------------------------------------------------------------------------------------
# noise-level (time) samplers
# ---------------------------------------------------------------------------------------------------
def _randn(n: int, generator: torch.Generator | None, device: torch.device | str) -> Tensor:
    gdev = generator.device if generator is not None else device
    return torch.randn(n, generator=generator, device=gdev, dtype=_F64).to(device)


def _rand(n: int, generator: torch.Generator | None, device: torch.device | str) -> Tensor:
    gdev = generator.device if generator is not None else device
    return torch.rand(n, generator=generator, device=gdev, dtype=_F64).to(device)


class TimeSampler:
    """Draws training times. ``sample`` returns ``(t (B,) float64, importance_weight (B,) float64)``."""

    def sample(
        self, batch_size: int, schedule: Schedule, generator: torch.Generator | None = None, device="cpu"
    ) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def update(self, t: Tensor, losses: Tensor) -> None:
        """Feed back per-item losses (only loss-aware samplers use them)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class UniformTimeSampler(TimeSampler):
    """``t ~ U(t_min, t_max)`` of the schedule."""

    def sample(self, batch_size, schedule, generator=None, device="cpu"):
        u = _rand(batch_size, generator, device)
        t = schedule.t_min + (schedule.t_max - schedule.t_min) * u
        return t, torch.ones_like(t)


class LogitNormalTimeSampler(TimeSampler):
    """``t = sigmoid(N(mean, std^2))`` (Esser et al. 2024), mapped into ``[t_min, t_max]``."""

    def __init__(self, mean: float = 0.0, std: float = 1.0) -> None:
        self.mean, self.std = float(mean), float(std)

    def sample(self, batch_size, schedule, generator=None, device="cpu"):
        u = torch.sigmoid(self.mean + self.std * _randn(batch_size, generator, device))
        t = schedule.t_min + (schedule.t_max - schedule.t_min) * u
        return t, torch.ones_like(t)


class LogNormalSigmaTimeSampler(TimeSampler):
    """EDM's ``ln(sigma/alpha) ~ N(p_mean, p_std^2)`` converted to t through log-SNR, clamped to the schedule."""

    def __init__(self, p_mean: float = -1.2, p_std: float = 1.2) -> None:
        self.p_mean, self.p_std = float(p_mean), float(p_std)

    def sample(self, batch_size, schedule, generator=None, device="cpu"):
        ln_s = self.p_mean + self.p_std * _randn(batch_size, generator, device)
        t = schedule.t_from_log_snr(-2.0 * ln_s).clamp(schedule.t_min, schedule.t_max)
        return t, torch.ones_like(t)


class LossAwareTimeSampler(TimeSampler):
    """Improved-DDPM's ``LossSecondMomentResampler`` over ``num_bins`` equal bins of ``[t_min, t_max]``.

    ``p(bin) ~ sqrt(E[L^2 | bin])`` mixed with ``uniform_prob`` of uniform; ``t`` uniform inside the bin; the
    importance weight ``1 / (num_bins p(bin))`` keeps the loss unbiased for the uniform-in-t objective.
    Statistics are an exponential moving average of per-bin mean squared loss (``decay``); until every bin
    has ``min_count`` observations sampling stays uniform. Under ``torch.distributed`` the per-update
    sums and counts are all-reduced, so every rank keeps identical statistics (call :meth:`update` on
    every rank every step, as :class:`Objective` does during training).
    """

    def __init__(
        self, num_bins: int = 32, decay: float = 0.99, uniform_prob: float = 0.001, min_count: int = 10
    ) -> None:
        if num_bins < 1:
            raise ValueError(f"LossAwareTimeSampler: num_bins must be >= 1, got {num_bins}")
        self.num_bins, self.decay = int(num_bins), float(decay)
        self.uniform_prob, self.min_count = float(uniform_prob), int(min_count)
        self.sq_loss = torch.zeros(self.num_bins, dtype=_F64)
        self.counts = torch.zeros(self.num_bins, dtype=_F64)
        self._range = (0.0, 1.0)

    def warmed_up(self) -> bool:
        return bool((self.counts >= self.min_count).all())

    def probs(self) -> Tensor:
        """Bin probabilities (num_bins,) float64."""
        if not self.warmed_up():
            return torch.full((self.num_bins,), 1.0 / self.num_bins, dtype=_F64)
        w = torch.sqrt(self.sq_loss.clamp_min(0.0))
        if float(w.sum()) <= 0.0:
            w = torch.ones_like(w)
        p = w / w.sum()
        return p * (1.0 - self.uniform_prob) + self.uniform_prob / self.num_bins

    def sample(self, batch_size, schedule, generator=None, device="cpu"):
        self._range = (schedule.t_min, schedule.t_max)
        p = self.probs()
        gdev = generator.device if generator is not None else "cpu"
        bins = torch.multinomial(p.to(gdev), batch_size, replacement=True, generator=generator).cpu()
        u = _rand(batch_size, generator, "cpu")
        lo, hi = self._range
        t = lo + (hi - lo) * (bins.to(_F64) + u) / self.num_bins
        weight = 1.0 / (self.num_bins * p[bins])
        return t.to(device), weight.to(device)

    def _bins(self, t: Tensor) -> Tensor:
        lo, hi = self._range
        b = ((t.detach().to(_F64).cpu() - lo) / (hi - lo) * self.num_bins).floor().long()
        return b.clamp(0, self.num_bins - 1)

    @torch.no_grad()
    def update(self, t: Tensor, losses: Tensor) -> None:
        bins = self._bins(t)
        l2 = losses.detach().to(_F64).cpu() ** 2
        stats = torch.stack(
            [
                torch.bincount(bins, weights=l2, minlength=self.num_bins),
                torch.bincount(bins, minlength=self.num_bins).to(_F64),
            ]
        )
        if dist.is_available() and dist.is_initialized():
            # NCCL needs device tensors; gloo takes CPU ones
            dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
            buf = stats.to(dev)
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            stats = buf.cpu()
        sums, counts = stats
        seen = counts > 0
        mean = torch.where(seen, sums / counts.clamp_min(1.0), torch.zeros_like(sums))
        first = seen & (self.counts == 0)
        ema = self.decay * self.sq_loss + (1.0 - self.decay) * mean
        self.sq_loss = torch.where(first, mean, torch.where(seen, ema, self.sq_loss))
        self.counts = self.counts + counts

    def state_dict(self) -> dict:
        return {"sq_loss": self.sq_loss.clone(), "counts": self.counts.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.sq_loss = state["sq_loss"].to(_F64).cpu()
        self.counts = state["counts"].to(_F64).cpu()


# ---------------------------------------------------------------------------------------------------
# the objective
# ---------------------------------------------------------------------------------------------------
DenoiseFn = Callable[[Tensor, Tensor], Tensor]


class Objective:
    """Parameterization + loss weighting + noise-level sampling over a :class:`Schedule`.

    Args:
        schedule: the noise schedule (passed by the app: ``instantiate(cfg.objective, schedule=...)``).
        prediction: "eps" | "x0" | "v" | "edm" | "flow" (see the module table).
        weighting: a :class:`Weighting` or its name ("uniform", "min_snr", "soft_min_snr", "p2", "edm").
        time_sampler: a :class:`TimeSampler` or its name ("uniform", "logit_normal", "lognormal", "loss_aware").
        sigma_data: data standard deviation for EDM preconditioning and weighting (1.0 for normalized mels).
        scale_input: feed ``c_in x_t`` to the network (default: True for "edm", else False).
        update_time_sampler: during training (grad enabled) feed losses back to the time sampler.
    """

    def __init__(
        self,
        schedule: Schedule,
        prediction: Prediction = "eps",
        weighting: Weighting | str = "uniform",
        time_sampler: TimeSampler | str = "uniform",
        sigma_data: float = 1.0,
        scale_input: bool | None = None,
        update_time_sampler: bool = True,
    ) -> None:
        if prediction not in PREDICTIONS:
            raise ValueError(f"Objective.prediction must be one of {PREDICTIONS}, got {prediction!r}")
        if not isinstance(schedule, Schedule):
            raise TypeError(f"Objective.schedule must be a Schedule, got {type(schedule).__name__}")
        self.schedule = schedule
        self.prediction = prediction
        self.weighting = _from_registry(weighting, Weighting, _WEIGHTINGS, "weighting")
        self.time_sampler = _from_registry(time_sampler, TimeSampler, _TIME_SAMPLERS, "time_sampler")
        self.sigma_data = float(sigma_data)
        self.scale_input = (prediction == "edm") if scale_input is None else bool(scale_input)
        self.update_time_sampler = bool(update_time_sampler)

    # --- per-t coefficients (float64, (B,)) ---------------------------------------------------------
    def _coefs(self, t: Tensor) -> dict[str, Tensor]:
        t = t.to(_F64)
        a, s = self.schedule.alpha_sigma(t)
        c = {"a": a, "s": s}
        if self.prediction == "flow":
            c["da"], c["ds"] = self.schedule.d_alpha_sigma(t)
        sd2 = self.sigma_data**2
        c["norm"] = torch.sqrt(s * s + a * a * sd2)  # std of x_t when x0 has std sigma_data
        return c

    def c_in(self, t: Tensor) -> Tensor:
        """Input scale (B,) float64 fed to the network: ``1/sqrt(sigma^2 + alpha^2 sd^2)`` or 1."""
        if not self.scale_input:
            return torch.ones_like(t, dtype=_F64)
        return 1.0 / self._coefs(t)["norm"]

    def net_input(self, x_t: Tensor, t: Tensor) -> Tensor:
        return x_t if not self.scale_input else x_t * broadcast_to(self.c_in(t), x_t)

    def x0_scale(self, t: Tensor) -> Tensor:
        """``k(t) = |d raw / d x0|`` at fixed ``x_t`` (B,) float64: raw MSE = k^2 x0 MSE."""
        c = self._coefs(t)
        a, s = c["a"], c["s"]
        if self.prediction == "eps":
            return a / s
        if self.prediction == "x0":
            return torch.ones_like(a)
        if self.prediction == "v":
            return (a * a + s * s) / s
        if self.prediction == "edm":
            return c["norm"] / (s * self.sigma_data)
        return (c["da"] * s - c["ds"] * a).abs() / s  # flow

    def target(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """Regression target for the raw network output, (B, ...) in x0's dtype."""
        c = self._coefs(t)
        x = x0.to(_F64)
        n = noise.to(_F64)
        a, s = broadcast_to(c["a"], x), broadcast_to(c["s"], x)
        if self.prediction == "eps":
            out = n
        elif self.prediction == "x0":
            out = x
        elif self.prediction == "v":
            out = a * n - s * x
        elif self.prediction == "edm":
            x_t = a * x + s * n
            c_skip, c_out = self._edm_skip_out(c, x)
            out = (x - c_skip * x_t) / c_out
        else:
            out = broadcast_to(c["da"], x) * x + broadcast_to(c["ds"], x) * n
        return out.to(x0.dtype)

    def _edm_skip_out(self, c: dict[str, Tensor], like: Tensor) -> tuple[Tensor, Tensor]:
        sd = self.sigma_data
        c_skip = sd * sd * c["a"] / c["norm"] ** 2
        c_out = c["s"] * sd / c["norm"]
        return broadcast_to(c_skip, like), broadcast_to(c_out, like)

    def to_x0(self, raw: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """Clean estimate from the raw output, (B, ...) in raw's dtype (math in float64)."""
        c = self._coefs(t)
        r = raw.to(_F64)
        x = x_t.to(_F64)
        a, s = broadcast_to(c["a"], x), broadcast_to(c["s"], x)
        if self.prediction == "eps":
            # undefined where alpha = 0 (zero terminal SNR): clamp keeps it finite; prefer v/flow/edm there
            out = (x - s * r) / a.clamp_min(1e-12)
        elif self.prediction == "x0":
            out = r
        elif self.prediction == "v":
            out = (a * x - s * r) / (a * a + s * s)
        elif self.prediction == "edm":
            c_skip, c_out = self._edm_skip_out(c, x)
            out = c_skip * x + c_out * r
        else:
            da, ds = broadcast_to(c["da"], x), broadcast_to(c["ds"], x)
            out = (s * r - ds * x) / (da * s - ds * a)
        return out.to(raw.dtype)

    def x0_fn(self, denoise_fn: DenoiseFn) -> Callable[[Tensor, Tensor], Tensor]:
        """Wrap a network ``denoise_fn(net_input, t_float32 (B,)) -> raw`` into ``x0_hat(x_t, t) -> x0``.

        ``t`` may be float64 (samplers pass float64 so coefficients match the grid exactly) or a scalar.
        """

        def x0_hat(x_t: Tensor, t: Tensor) -> Tensor:
            t = torch.as_tensor(t, device=x_t.device)
            if t.ndim == 0:
                t = t.expand(x_t.shape[0])
            raw = denoise_fn(self.net_input(x_t, t), t.to(torch.float32))
            return self.to_x0(raw, x_t, t)

        return x0_hat

    # --- the loss -----------------------------------------------------------------------------------
    def loss_weight(self, t: Tensor) -> Tensor:
        """Per-item factor on the raw-output MSE, (B,) float64: ``w_x0 / k^2`` (1 for uniform)."""
        snr = self.schedule.snr(t.to(_F64))
        w = self.weighting.x0_weight(snr, self.sigma_data)
        if w is None:
            return torch.ones_like(snr)
        k = self.x0_scale(t)
        return w / (k * k)

    def loss(
        self,
        denoise_fn: DenoiseFn,
        x0: Tensor,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
        t: Tensor | None = None,
        noise: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-item training loss.

        Args:
            denoise_fn: ``(net_input (B, ...), t float32 (B,)) -> raw`` (B, ...); conditioning is bound inside.
            x0: (B, ...) clean batch. mask: broadcastable to x0, 1 = real data; the loss is the masked mean.
            generator: optional ``torch.Generator`` for t and noise. t, noise: optional overrides.
        Returns:
            loss (B,) float32 (weighted, times importance weight), and info with "t" (B,), "loss_unweighted"
            (B,) (masked raw MSE), "weight" (B,) and "importance_weight" (B,).
        """
        B = x0.shape[0]
        device = x0.device
        if t is None:
            t, iw = self.time_sampler.sample(B, self.schedule, generator=generator, device=device)
        else:
            t, iw = t.to(device=device, dtype=_F64), torch.ones(B, dtype=_F64, device=device)
        if noise is None:
            gdev = generator.device if generator is not None else device
            noise = torch.randn(x0.shape, generator=generator, device=gdev, dtype=x0.dtype).to(device)
        x_t = self.schedule.add_noise(x0, noise, t)
        raw = denoise_fn(self.net_input(x_t, t), t.to(torch.float32))
        if raw.shape != x0.shape:
            raise ValueError(f"Objective.loss: network output {tuple(raw.shape)} != x0 {tuple(x0.shape)}")
        target = self.target(x0, noise, t)
        se = (raw.float() - target.float()) ** 2
        if mask is None:
            mse = se.flatten(1).mean(1)
        else:
            m = mask.to(se.dtype).expand_as(se)
            mse = (se * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1.0)
        weight = self.loss_weight(t)
        weighted = mse * weight.to(mse.dtype)
        if self.update_time_sampler and torch.is_grad_enabled():
            self.time_sampler.update(t, weighted.detach())
        loss = weighted * iw.to(mse.dtype)
        info = {
            "t": t.to(torch.float32),
            "loss_unweighted": mse.detach(),
            "weight": weight.to(torch.float32),
            "importance_weight": iw.to(torch.float32),
        }
        return loss, info

    def __repr__(self) -> str:
        return (
            f"Objective(prediction={self.prediction!r}, weighting={self.weighting.name!r}, "
            f"time_sampler={type(self.time_sampler).__name__}, schedule={self.schedule!r})"
        )


_WEIGHTINGS = {
    "uniform": UniformWeighting,
    "min_snr": MinSNRWeighting,
    "soft_min_snr": SoftMinSNRWeighting,
    "p2": P2Weighting,
    "edm": EDMWeighting,
}
_TIME_SAMPLERS = {
    "uniform": UniformTimeSampler,
    "logit_normal": LogitNormalTimeSampler,
    "lognormal": LogNormalSigmaTimeSampler,
    "loss_aware": LossAwareTimeSampler,
}


def _from_registry(value, base: type, registry: dict, field: str):
    """An instance of ``base`` as given, or built from its name in ``registry`` (error names ``field``)."""
    if isinstance(value, base):
        return value
    if value not in registry:
        raise ValueError(
            f"Objective.{field} must be one of {sorted(registry)} or a {base.__name__}, got {value!r}"
        )
    return registry[value]()
