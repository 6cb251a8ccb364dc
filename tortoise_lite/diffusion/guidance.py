"""Classifier-free guidance as a wrapper of the denoiser, so every sampler gets it for free.

Signature (the one contract)::

    cfg_x0_fn(x0_fn_pair, scale, rescale_phi=0.0, ramp=None, interval=None) -> x0_fn

* ``x0_fn_pair(x (2B, ...), t (2B,)) -> x0 (2B, ...)`` evaluates the model ONCE on the doubled batch:
  rows ``[:B]`` conditional, rows ``[B:]`` unconditional (the caller binds the two conditionings, e.g. by
  concatenating the real and the null condition along the batch).
* the returned ``x0_fn(x (B, ...), t (B,)) -> x0 (B, ...)`` applies

      x0 = x0_u + s(t) (x0_c - x0_u)

  with ``s(t) = 1 + (scale - 1) * ramp(t)``; ``ramp`` is None (constant, ramp = 1), "linear" (``1 - t``:
  guidance grows toward the clean end), "cosine" (``(1 - cos(pi (1 - t))) / 2``), or a callable
  ``t (B,) float64 -> (B,)`` in [0, 1]. ``interval=(t_lo, t_hi)`` applies guidance only for t in that range
  (Kynkaanniemi et al. 2024) and uses ``x0_c`` elsewhere. Guiding x0 is the same as guiding eps or v at
  the same ``x_t`` (they are affine in x0 with the same x_t), so one formula serves every objective.
* ``rescale_phi`` > 0 blends in the std-rescaled result (Lin et al. 2024, Alg. 2, applied to x0):
  ``x0 = phi * x0_cfg * std(x0_c) / std(x0_cfg) + (1 - phi) * x0_cfg`` with per-item std over non-batch dims.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .schedules import broadcast_to

__all__ = ["cfg_x0_fn", "combined_x0_fn", "guidance_scale", "RAMPS"]

RAMPS = (None, "linear", "cosine")


def guidance_scale(
    scale: float,
    t: Tensor,
    ramp: str | Callable[[Tensor], Tensor] | None = None,
    interval: tuple[float, float] | None = None,
) -> Tensor:
    """Per-item guidance scale ``s(t)`` (B,) float64."""
    t = t.to(torch.float64)
    if ramp is None:
        r = torch.ones_like(t)
    elif ramp == "linear":
        r = 1.0 - t
    elif ramp == "cosine":
        r = 0.5 * (1.0 - torch.cos(math.pi * (1.0 - t)))
    elif callable(ramp):
        r = torch.as_tensor(ramp(t), dtype=torch.float64, device=t.device).expand_as(t)
    else:
        raise ValueError(f"guidance ramp must be one of {RAMPS} or a callable, got {ramp!r}")
    s = 1.0 + (float(scale) - 1.0) * r
    if interval is not None:
        lo, hi = interval
        s = torch.where((t >= lo) & (t <= hi), s, torch.ones_like(s))
    return s


def cfg_x0_fn(
    x0_fn_pair: Callable[[Tensor, Tensor], Tensor],
    scale: float,
    rescale_phi: float = 0.0,
    ramp: str | Callable[[Tensor], Tensor] | None = None,
    interval: tuple[float, float] | None = None,
) -> Callable[[Tensor, Tensor], Tensor]:
    """Wrap a paired (cond | uncond) denoiser into a guided ``x0_fn`` (one batched forward per call)."""
    if not 0.0 <= rescale_phi <= 1.0:
        raise ValueError(f"cfg_x0_fn: rescale_phi must be in [0, 1], got {rescale_phi}")
    if ramp not in RAMPS and not callable(ramp):
        raise ValueError(f"cfg_x0_fn: ramp must be one of {RAMPS} or a callable, got {ramp!r}")

    def x0_fn(x: Tensor, t: Tensor) -> Tensor:
        B = x.shape[0]
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(B)
        out = x0_fn_pair(torch.cat([x, x]), torch.cat([t, t]))
        if out.shape[0] != 2 * B:
            raise ValueError(f"cfg_x0_fn: x0_fn_pair returned batch {out.shape[0]}, expected 2B = {2 * B}")
        x_c, x_u = out[:B], out[B:]
        s = broadcast_to(guidance_scale(scale, t, ramp, interval), x_c)
        guided = x_u + s * (x_c - x_u)
        if rescale_phi > 0:
            dims = tuple(range(1, x.ndim))
            std_c = x_c.std(dim=dims, keepdim=True)
            std_g = guided.std(dim=dims, keepdim=True).clamp_min(1e-12)
            guided = rescale_phi * guided * (std_c / std_g) + (1.0 - rescale_phi) * guided
        return guided

    return x0_fn


def combined_x0_fn(
    x0_fn_multi: Callable[[Tensor, Tensor], Tensor], weights: Sequence[float]
) -> Callable[[Tensor, Tensor], Tensor]:
    """Guidance over K conditionings in ONE batched forward: ``x0 = sum_k w_k x0_k`` (weights sum to 1).

    ``x0_fn_multi(x (K*B, ...), t (K*B,))`` evaluates the K conditionings stacked along the batch (rows
    ``[k*B:(k+1)*B]`` = conditioning k). Two conditions guided with their own scales (e.g. text ``s_c`` and
    voice ``s_v``, InstructPix2Pix-style) are the weights ``[s_v, s_c - s_v, 1 - s_c]`` over the branches
    (text + voice, text only, neither)."""
    w = [float(v) for v in weights]
    if not w or abs(sum(w) - 1.0) > 1e-9:
        raise ValueError(f"combined_x0_fn: the weights must sum to 1, got {w}")

    def x0_fn(x: Tensor, t: Tensor) -> Tensor:
        B, K = x.shape[0], len(w)
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(B)
        out = x0_fn_multi(torch.cat([x] * K), torch.cat([t] * K))
        if out.shape[0] != K * B:
            raise ValueError(f"combined_x0_fn: x0_fn_multi returned batch {out.shape[0]}, expected {K} x {B}")
        parts = out.split(B)
        acc = parts[0] * w[0]
        for wk, part in zip(w[1:], parts[1:]):
            acc = acc + wk * part
        return acc

    return x0_fn
