"""Classifier-free guidance: one batched forward, the documented formula, rescale, ramp and interval."""

import pytest
import torch

from tortoise_lite.diffusion import (
    CosineSchedule,
    IsotropicGaussianMixture,
    Sampler,
    cfg_x0_fn,
    guidance_scale,
)


def make_pair(calls):
    def pair(x, t):
        calls.append(x.shape[0])
        B = x.shape[0] // 2
        cond = torch.ones_like(x[:B]) * 2.0 + 0.1 * x[:B]
        uncond = torch.zeros_like(x[B:]) + 0.1 * x[B:]
        return torch.cat([cond, uncond])

    return pair


def test_cfg_formula_and_single_forward():
    calls = []
    fn = cfg_x0_fn(make_pair(calls), scale=3.0)
    x = torch.randn(4, 5)
    out = fn(x, torch.full((4,), 0.5))
    assert calls == [8]
    torch.testing.assert_close(out, 0.1 * x + 3.0 * 2.0)  # x_u + s (x_c - x_u)
    torch.testing.assert_close(cfg_x0_fn(make_pair([]), 1.0)(x, torch.full((4,), 0.5)), 0.1 * x + 2.0)


def test_rescale_ramp_interval():
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    torch.testing.assert_close(
        guidance_scale(5.0, t, "linear"), torch.tensor([5.0, 3.0, 1.0], dtype=torch.float64)
    )
    torch.testing.assert_close(
        guidance_scale(5.0, t, "cosine"), torch.tensor([5.0, 3.0, 1.0], dtype=torch.float64)
    )
    torch.testing.assert_close(
        guidance_scale(5.0, t, None, interval=(0.2, 0.8)), torch.tensor([1.0, 5.0, 1.0], dtype=torch.float64)
    )
    x = torch.randn(3, 50)
    guided = cfg_x0_fn(make_pair([]), 4.0, rescale_phi=1.0)(x, torch.full((3,), 0.5))
    cond = 2.0 + 0.1 * x
    torch.testing.assert_close(guided.std(dim=1), cond.std(dim=1))
    with pytest.raises(ValueError, match="ramp"):
        cfg_x0_fn(make_pair([]), 2.0, ramp="bogus")


def test_guided_sampling_counts_one_nfe_per_step_and_moves_toward_condition():
    sch = CosineSchedule()
    cond_mix = IsotropicGaussianMixture(torch.tensor([[2.0, 2.0]]), 0.3)
    uncond_mix = IsotropicGaussianMixture(torch.tensor([[2.0, 2.0], [-2.0, -2.0]]), 0.3)
    fc, fu = cond_mix.x0_fn(sch), uncond_mix.x0_fn(sch)
    calls = []

    def pair(x, t):
        calls.append(x.shape[0])
        B = x.shape[0] // 2
        return torch.cat([fc(x[:B], t[:B]), fu(x[B:], t[B:])])

    res = Sampler(name="dpmpp_2m", steps=8)(
        cfg_x0_fn(pair, 3.0), sch, torch.randn(256, 2, dtype=torch.float64)
    )
    assert res.nfe == 8 and calls == [512] * 8
    assert float((res.x.sum(1) > 0).double().mean()) > 0.99
